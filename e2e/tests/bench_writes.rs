//! `slipway bench` at a small size as a regression guard on what it counts (never on time):
//! management API writes per cluster from apply to Ready, no writes at rest, descriptors per
//! simulated cluster within a budget, and a delete that leaves no descriptor behind.

use std::process::{Command, Stdio};

use serde_json::Value;

/// Writes per 1+1 cluster (every create and update from apply to every Machine Ready, the
/// bench's own creates included), debug build, 2 clusters: 145 when a pass that read a stale
/// cache rewrote its status, about 123 since status writes are guarded by resourceVersion.
const MAX_WRITES_PER_CLUSTER: f64 = 135.0;
/// Updates per Machine: finalizer, adoption, a status per step it passes through, its
/// bootstrap Secret name and providerID, the health check's verdict.
const MAX_MACHINE_UPDATES_PER_MACHINE: f64 = 11.0;

/// Descriptors per simulated 1+1 cluster at rest, beside connections to the management plane:
/// about 14 with a listener, three SQLite files and pooled connections per cluster; about 2
/// with one shared listener, a one-file journal and clients that close idle connections.
const MAX_FDS_PER_CLUSTER: f64 = 4.0;

#[test]
fn a_small_bench_stays_within_its_write_budget_and_deletes_cleanly() {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "bench",
            "--clusters",
            "2",
            "--worker-machine-count",
            "1",
            "--idle-seconds",
            "3",
            "--timeout",
            "300",
            "--delete",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run slipway bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("output");
    let j: Value = serde_json::from_str(last).expect("the last line is one JSON object");
    let f = |k: &str| {
        j[k].as_f64()
            .unwrap_or_else(|| panic!("{k} missing in {last}"))
    };
    assert_eq!(f("clusters"), 2.0);
    assert!(
        f("writes_per_cluster") <= MAX_WRITES_PER_CLUSTER,
        "writes per cluster above the budget of {MAX_WRITES_PER_CLUSTER}:\n{stdout}"
    );
    let machine_updates = j["writes_by_resource"]["cluster.x-k8s.io/machines MODIFIED"]
        .as_f64()
        .expect("Machine updates counted");
    assert!(
        machine_updates / f("machines") <= MAX_MACHINE_UPDATES_PER_MACHINE,
        "{machine_updates} Machine updates for {} Machines:\n{stdout}",
        f("machines")
    );
    assert_eq!(
        f("idle_writes"),
        0.0,
        "nothing is written at rest:\n{stdout}"
    );
    assert!(f("fds_per_cluster") > 0.0, "{last}");
    let per = f("fds_per_cluster_without_plane_connections");
    assert!(
        (0.5..=MAX_FDS_PER_CLUSTER).contains(&per),
        "descriptors per cluster at rest (at least its database): {per}, budget {MAX_FDS_PER_CLUSTER}:\n{stdout}"
    );
    assert!(f("nofile_soft_limit") > 0.0, "{last}");
    assert!(f("seconds_to_all_deleted") > 0.0, "{last}");
    assert!(
        f("fds_left_by_deleted_clusters") <= 2.0,
        "deleting the clusters closes their descriptors (databases, listeners, cached clients' connections): {last}"
    );
}
