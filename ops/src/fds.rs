//! File descriptors: the process's open-file limit and how many it holds. Every simulated
//! workload cluster of the in-memory provider holds its SQLite file and, while in use, the
//! connections of its clients (both ends in this process), so thousands of clusters in one
//! process need far more descriptors than a default soft limit of 1024.

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

/// The fewest and the most descriptors this process holds while sleeping `d`, sampled every
/// 100 ms (at least once).
pub async fn fewest_and_most_while_sleeping(d: std::time::Duration) -> (usize, usize) {
    let end = tokio::time::Instant::now() + d;
    let (mut fewest, mut most) = (usize::MAX, 0);
    loop {
        let n = open_fds();
        (fewest, most) = (fewest.min(n), most.max(n));
        if tokio::time::Instant::now() >= end {
            return (fewest, most);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Sockets of this process with either end on `port` (127.0.0.1 or ::1): with the plane's
/// port, both ends of the controllers' and the bench's own connections to the management
/// plane, which are per process, not per simulated cluster. 0 where there is no /proc.
pub fn sockets_on_port(port: u16) -> usize {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port_of = |addr: &str| {
                addr.rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            };
            if f.len() > 9 && (port_of(f[1]) == Some(port) || port_of(f[2]) == Some(port)) {
                inodes.insert(format!("socket:[{}]", f[9]));
            }
        }
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|l| inodes.contains(l.to_string_lossy().as_ref()))
        .count()
}

/// Descriptors of one simulated 1+1 cluster, measured in the bench (debug build, 20 and 200
/// clusters, the fewest while idle): its SQLite database (one file at rest) and, on average,
/// the connections its clients have open at a given instant (both ends counted, since client
/// and server share this process; they close after a second idle). Its server listens through
/// the process's shared listener. Before: 12-14 (a listener, three SQLite files and about five
/// pooled connections each).
pub const FDS_PER_CLUSTER: f64 = 1.6;
/// Descriptors per simulated machine beside its cluster's: none (it holds no connection).
pub const FDS_PER_MACHINE: f64 = 0.0;
/// Descriptors of the process beside the clusters: the management plane's listener and
/// database, and both ends of the watches and pooled requests of the controllers (400-520
/// measured at 16 reconciles per kind), and the shared workload listener.
pub const FDS_PER_PROCESS: f64 = 640.0;

/// Whether `clusters` simulated clusters of `machines_per_cluster` machines fit under the
/// soft limit `soft` (with `hard` named in the error), by the estimates above; the error names
/// the limit and the ways out.
pub fn check_fits(
    clusters: u64,
    machines_per_cluster: u64,
    soft: u64,
    hard: u64,
) -> Result<(), OpsError> {
    let per = FDS_PER_CLUSTER + FDS_PER_MACHINE * machines_per_cluster as f64;
    let need = (clusters as f64 * per + FDS_PER_PROCESS).ceil() as u64;
    if need <= soft {
        return Ok(());
    }
    Err(OpsError::invalid(
        "the open-file limit (RLIMIT_NOFILE)",
        format!(
            "{clusters} simulated clusters need about {need} file descriptors (about {per:.1} each: its SQLite file and its clients' connections) but the soft limit is {soft} (hard limit {hard}); raise it (`ulimit -n`, LimitNOFILE= of a systemd unit, --ulimit of a container) or bench fewer clusters"
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
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        assert_eq!(sockets_on_port(port), 1, "the listener");
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (s, _) = l.accept().expect("accept");
        assert_eq!(sockets_on_port(port), 3, "listener and both ends");
        drop((c, s));
    }

    #[test]
    fn a_count_that_cannot_fit_names_the_limit() {
        assert!(check_fits(10, 2, 20_000, 20_000).is_ok());
        assert!(
            check_fits(1000, 2, 20_000, 20_000).is_ok(),
            "as measured before"
        );
        assert!(
            check_fits(10_000, 2, 20_000, 20_000).is_ok(),
            "10,000 clusters of 1+1 fit a limit of 20,000"
        );
        let e = check_fits(20_000, 2, 20_000, 20_000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("RLIMIT_NOFILE"), "{e}");
        assert!(e.contains("soft limit is 20000"), "{e}");
        assert!(e.contains("ulimit -n"), "{e}");
    }
}
