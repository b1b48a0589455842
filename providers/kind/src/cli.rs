//! Running the `kind` and `docker` binaries: finding them on a PATH (the process's, or one a
//! test supplies), feeding stdin, and turning every failure into a [`ProviderError`] that names
//! the command, its exit status and its trimmed stderr. Stdout is never put into a message: it
//! carries kubeconfigs.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Stdio,
};

use tokio::{io::AsyncWriteExt, process::Command};

use slipway_providers::ProviderError;

/// Where to get kind.
pub const KIND_INSTALL: &str = "install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) \
     and put it on the controller's PATH";
/// Where to get Docker.
pub const DOCKER_INSTALL: &str = "install Docker (https://docs.docker.com/engine/install/) and put \
     `docker` on the controller's PATH";

/// The binaries the kind provider runs, looked up on one PATH.
#[derive(Clone, Debug)]
pub struct Tools {
    path: OsString,
}

impl Default for Tools {
    fn default() -> Self {
        Self::with_path(std::env::var_os("PATH").unwrap_or_default())
    }
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Tools {
    /// Tools found on `path` (a `PATH`-style list of directories).
    pub fn with_path(path: impl Into<OsString>) -> Self {
        Self { path: path.into() }
    }

    /// The executable `name` on this PATH.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        std::env::split_paths(&self.path)
            .map(|d| d.join(name))
            .find(|p| is_executable(p))
    }

    /// Runs `bin args...` with `stdin`, and fails unless it exits 0.
    pub async fn run(
        &self,
        bin: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Output, ProviderError> {
        let exe = self.find(bin).ok_or_else(|| missing(bin))?;
        let shown = format!("`{bin} {}`", args.join(" "));
        let mut child = Command::new(exe)
            .args(args)
            .env("PATH", &self.path)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| ProviderError::Transient {
                message: format!("{shown} could not start"),
                source: Some(Box::new(e)),
            })?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(data)
                .await
                .map_err(|e| ProviderError::Transient {
                    message: format!("writing the standard input of {shown}"),
                    source: Some(Box::new(e)),
                })?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| ProviderError::Transient {
                message: format!("{shown} did not finish"),
                source: Some(Box::new(e)),
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            let status = out
                .status
                .code()
                .map_or_else(|| "a signal".to_string(), |c| format!("exit status {c}"));
            return Err(ProviderError::transient(format!(
                "{shown} failed with {status}: {}",
                trimmed(&stderr)
            )));
        }
        Ok(Output { stdout, stderr })
    }

    /// Fails with `Unavailable` unless kind and docker are installed and the Docker daemon
    /// answers.
    pub async fn check(&self) -> Result<(), ProviderError> {
        for bin in ["kind", "docker"] {
            if self.find(bin).is_none() {
                return Err(missing(bin));
            }
        }
        match self
            .run("docker", &["info", "--format", "{{.ServerVersion}}"], None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(ProviderError::unavailable(
                "the Docker daemon",
                format!(
                    "`docker info` failed, so kind cannot create or inspect node containers; \
                     start Docker: {e}"
                ),
            )),
        }
    }
}

/// The error for a binary that is not on the PATH.
pub fn missing(bin: &str) -> ProviderError {
    let how = if bin == "docker" {
        DOCKER_INSTALL
    } else {
        KIND_INSTALL
    };
    ProviderError::unavailable(
        format!("the `{bin}` binary"),
        format!("it is not on the controller's PATH; {how}"),
    )
}

/// The end of a command's stderr, on one line, short enough for a condition message.
pub fn trimmed(stderr: &str) -> String {
    const MAX: usize = 600;
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines.join(" | ");
    if joined.is_empty() {
        return "no error output".into();
    }
    if joined.len() <= MAX {
        return joined;
    }
    let mut start = joined.len() - MAX;
    while !joined.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &joined[start..])
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_is_trimmed_to_its_end_on_one_line() {
        assert_eq!(trimmed(""), "no error output");
        assert_eq!(
            trimmed("ERROR: failed to create cluster\n\n  node(s) already exist\n"),
            "ERROR: failed to create cluster | node(s) already exist"
        );
        let long = "x".repeat(2000) + "\nthe end";
        let t = trimmed(&long);
        assert!(t.len() <= 603 && t.starts_with("...") && t.ends_with("the end"));
    }

    #[test]
    fn missing_binaries_name_themselves_and_how_to_get_them() {
        let e = missing("kind").to_string();
        assert!(e.starts_with("the `kind` binary is unavailable"), "{e}");
        assert!(e.contains("kind.sigs.k8s.io"), "{e}");
        let e = missing("docker").to_string();
        assert!(
            e.contains("`docker`") && e.contains("docs.docker.com"),
            "{e}"
        );
    }
}
