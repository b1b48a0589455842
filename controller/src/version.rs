//! Kubernetes versions and upstream's version-skew rules, pure and table-tested:
//! a control plane upgrades one minor at a time and never downgrades below the minor it runs
//! ([`control_plane_change`]); workers are never newer than the control plane, nor more than
//! [`MAX_WORKER_SKEW`] minors older ([`worker_version`]).

use std::fmt;

/// How many minors kubelets may lag the API server (Kubernetes' skew policy since 1.28).
pub const MAX_WORKER_SKEW: u64 = 3;

/// A parsed `vMAJOR.MINOR.PATCH[-pre][+build]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Parses a Kubernetes version (`v1.31.0`, `1.31.0`, `v1.31.0-rc.1+build`).
pub fn parse(v: &str) -> Option<Version> {
    let v = v.strip_prefix('v').unwrap_or(v);
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
    let (major, minor, patch) = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(Version {
        major,
        minor,
        patch,
    })
}

/// Whether a control plane running `current` (its lowest machine version; `None` before it
/// has machines) may move to `desired`: `Err` says why not.
pub fn control_plane_change(current: Option<&str>, desired: &str) -> Result<(), String> {
    let want = parse(desired).ok_or_else(|| {
        format!("spec.version {desired:?} is not a Kubernetes version (vMAJOR.MINOR.PATCH)")
    })?;
    let Some(have) = current.and_then(parse) else {
        return Ok(());
    };
    if want.major != have.major {
        return Err(format!(
            "spec.version {want} changes the major version of the running {have}"
        ));
    }
    if want.minor > have.minor + 1 {
        return Err(format!(
            "spec.version {want} skips a minor version: the control plane runs {have}; upgrade to v{}.{} first",
            have.major,
            have.minor + 1
        ));
    }
    if want.minor < have.minor {
        return Err(format!(
            "spec.version {want} downgrades below the running minor version {have}"
        ));
    }
    Ok(())
}

/// Whether workers may run `worker` against a control plane at `control_plane`: `Err` says
/// why not.
pub fn worker_version(control_plane: &str, worker: &str) -> Result<(), String> {
    let (Some(cp), Some(w)) = (parse(control_plane), parse(worker)) else {
        return Ok(());
    };
    if (w.major, w.minor) > (cp.major, cp.minor) {
        return Err(format!(
            "version {w} is newer than the control plane's {cp}: workers may not be newer than the control plane"
        ));
    }
    if w.major == cp.major && cp.minor - w.minor > MAX_WORKER_SKEW {
        return Err(format!(
            "version {w} is more than {MAX_WORKER_SKEW} minor versions older than the control plane's {cp}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(
            parse("v1.31.2"),
            Some(Version {
                major: 1,
                minor: 31,
                patch: 2
            })
        );
        assert_eq!(parse("1.31.0-rc.1+abc").map(|v| v.minor), Some(31));
        assert_eq!(parse("v1.31"), None);
        assert_eq!(parse("latest"), None);
    }

    #[test]
    fn control_plane_skew() {
        let table = [
            (None, "v1.33.0", true),
            (Some("v1.31.0"), "v1.31.5", true),
            (Some("v1.31.0"), "v1.32.0", true),
            (Some("v1.31.0"), "v1.33.0", false),
            (Some("v1.32.3"), "v1.32.1", true),
            (Some("v1.32.0"), "v1.31.9", false),
            (Some("v1.32.0"), "v2.0.0", false),
            (Some("v1.32.0"), "bogus", false),
        ];
        for (have, want, ok) in table {
            assert_eq!(
                control_plane_change(have, want).is_ok(),
                ok,
                "{have:?} -> {want}"
            );
        }
        let e = control_plane_change(Some("v1.31.0"), "v1.33.0").unwrap_err();
        assert!(e.contains("skips a minor") && e.contains("v1.32"), "{e}");
    }

    #[test]
    fn worker_skew() {
        assert!(worker_version("v1.32.0", "v1.32.0").is_ok());
        assert!(worker_version("v1.32.0", "v1.29.0").is_ok());
        assert!(worker_version("v1.32.0", "v1.28.0").is_err());
        let e = worker_version("v1.31.0", "v1.32.0").unwrap_err();
        assert!(e.contains("newer than the control plane"), "{e}");
    }
}
