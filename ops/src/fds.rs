//! File descriptors: the process's open-file limit and how many it holds. Every simulated
//! workload cluster of the in-memory provider holds a listener, SQLite files and the
//! connections its clients keep open, so thousands of clusters in one process need far more
//! descriptors than a default soft limit of 1024.

use crate::OpsError;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (an unprivileged process may) and
/// returns the (soft, hard) limits in force afterwards. A failure leaves the limit as it was
/// and is reported, never fatal: the process may still fit.
pub fn raise_nofile_limit() -> std::io::Result<(u64, u64)> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    if soft < hard {
        rlimit::Resource::NOFILE.set(hard, hard)?;
    }
    rlimit::Resource::NOFILE.get()
}

/// Raises the limit at start and logs what is in force (or why it could not be raised).
pub fn raise_at_start() {
    match raise_nofile_limit() {
        Ok((soft, hard)) => tracing::debug!(soft, hard, "open-file limit (RLIMIT_NOFILE)"),
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit (RLIMIT_NOFILE) to its hard limit")
        }
    }
}

/// Descriptors this process holds now (entries of /proc/self/fd; 0 where there is no /proc).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Descriptors one simulated cluster of 1 control-plane + 1 worker machine held in the bench
/// (debug build, 10 clusters at rest: 60 sockets, both ends of the in-process connections
/// between clients and workload API servers, plus 3 SQLite files); each further machine adds
/// connections of its own.
pub const FDS_PER_CLUSTER: u64 = 64;

/// Whether `clusters` simulated clusters of `machines_per_cluster` machines fit under the
/// soft limit `soft` (with `hard` named in the error), by [`FDS_PER_CLUSTER`]; the error names
/// the limit and the ways out.
pub fn check_fits(
    clusters: u64,
    machines_per_cluster: u64,
    soft: u64,
    hard: u64,
) -> Result<(), OpsError> {
    let per = FDS_PER_CLUSTER + FDS_PER_CLUSTER / 2 * machines_per_cluster.saturating_sub(2);
    let need = clusters.saturating_mul(per).saturating_add(256);
    if need <= soft {
        return Ok(());
    }
    Err(OpsError::invalid(
        "the open-file limit (RLIMIT_NOFILE)",
        format!(
            "{clusters} simulated clusters need about {need} file descriptors (about {per} each: listener, SQLite files, connections) but the soft limit is {soft} (hard limit {hard}); raise it (`ulimit -n`, LimitNOFILE= of a systemd unit, --ulimit of a container) or bench fewer clusters"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_raised_and_descriptors_are_counted() {
        let (soft, hard) = raise_nofile_limit().expect("getrlimit");
        assert_eq!(soft, hard, "the soft limit is raised to the hard one");
        let before = open_fds();
        assert!(before > 0, "this process holds stdin/stdout/stderr");
        let f = std::fs::File::open("/proc/self/status").expect("open");
        assert_eq!(open_fds(), before + 1);
        drop(f);
    }

    #[test]
    fn a_count_that_cannot_fit_names_the_limit() {
        assert!(check_fits(10, 2, 20_000, 20_000).is_ok());
        let e = check_fits(10_000, 2, 20_000, 20_000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("RLIMIT_NOFILE"), "{e}");
        assert!(e.contains("soft limit is 20000"), "{e}");
        assert!(e.contains("ulimit -n"), "{e}");
    }
}
