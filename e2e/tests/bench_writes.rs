//! `slipway bench` at a small size as a regression guard on what it counts (never on time):
//! management API writes per cluster from apply to Ready, no writes at rest, descriptors per
//! simulated cluster within a budget, and a delete that leaves no descriptor behind.

use std::process::{Command, Stdio};

use serde_json::Value;

/// Writes per 1+1 cluster (every create and update from apply to every Machine Ready, the
/// bench's own creates included), debug build, 2 clusters: 145 when a pass that read a stale
/// cache rewrote its status, about 123 since status writes are guarded by resourceVersion,
/// about 101 since objects slipway creates carry their finalizers, KubeadmControlPlane
/// machines skip the init lock, the registry probes before its first write, the join token's
/// id rides on the bootstrap Secret and wording-only status changes wait for company. The
/// budget leaves about 10 % for timing.
const MAX_WRITES_PER_CLUSTER: f64 = 112.0;
/// Updates per Machine: a status per step it passes through (4), its bootstrap Secret name
/// and providerID, the health check's verdict; created with its finalizer, and owned
/// through its MachineSet or control plane (no adoption write).
const MAX_MACHINE_UPDATES_PER_MACHINE: f64 = 8.0;

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

/// Counts of `j[field][resource][verb]`, 0 where absent.
fn count(j: &Value, field: &str, resource: &str, verb: &str) -> u64 {
    j[field][resource][verb].as_u64().unwrap_or(0)
}

/// Requests by resource and verb, counted on the clients, agree with the writes the embedded
/// plane committed (counted from its store): every object added was a successful create, every
/// modification a successful update or patch (of the object or a subresource); reads are
/// counted too, and the bench's own polling is kept apart.
#[test]
fn the_bench_counts_requests_by_resource_and_verb_consistently_with_the_writes() {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "bench",
            "--clusters",
            "2",
            "--worker-machine-count",
            "1",
            "--idle-seconds",
            "2",
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
    assert_eq!(j["plane"], "embedded", "{last}");
    let by_verb = &j["requests_by_verb"];
    for verb in ["list", "watch", "create", "get"] {
        assert!(
            by_verb[verb].as_u64().unwrap_or(0) > 0,
            "no {verb} requests counted: {last}"
        );
    }
    let resources = j["requests_by_resource_verb"]
        .as_object()
        .expect("requests_by_resource_verb");
    let sum: u64 = resources
        .values()
        .flat_map(|verbs| verbs.as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    let verbs_sum: u64 = by_verb
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(sum, verbs_sum, "by resource and by verb disagree: {last}");
    let clusters = j["clusters"].as_f64().unwrap();
    let per_cluster = j["requests_per_cluster"].as_f64().unwrap();
    assert!(
        (per_cluster * clusters - sum as f64).abs() <= 0.05 * clusters + 0.01,
        "requests_per_cluster {per_cluster} x {clusters} != {sum}: {last}"
    );
    let by_client = &j["requests_by_client"];
    let client = |c: &str| by_client[c].as_u64().unwrap_or(0);
    assert_eq!(
        client("controllers") + client("user"),
        sum,
        "the workload's requests are the controllers' and the user's: {last}"
    );
    assert!(
        client("observer") > 0,
        "the bench's polling is counted apart: {last}"
    );
    // Per resource (subresources folded into their object), from the requests answered with
    // success: every object the store added came from a create, or from a server-side apply
    // (a patch) that made it; every addition and modification came from one such request.
    let writes = j["writes_by_resource"]
        .as_object()
        .expect("writes_by_resource");
    let mut base: std::collections::BTreeMap<String, [u64; 2]> = Default::default();
    for resource in resources.keys() {
        let object = resource
            .splitn(3, '/')
            .take(2)
            .collect::<Vec<_>>()
            .join("/");
        let ok = |verb: &str| {
            count(&j, "requests_by_resource_verb", resource, verb)
                - count(&j, "failed_requests_by_resource_verb", resource, verb)
        };
        let e = base.entry(object).or_default();
        e[0] += ok("create");
        e[1] += ok("update") + ok("patch");
    }
    let event = |resource: &str, kind: &str| {
        writes
            .get(&format!("{resource} {kind}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    // The window closes while the last status writes may be in flight: the store may count a
    // write whose response has not reached the client yet, or the other way round.
    const IN_FLIGHT: u64 = 2;
    let mut added_total = 0;
    for (resource, [created, changed]) in &base {
        let (added, modified) = (event(resource, "ADDED"), event(resource, "MODIFIED"));
        added_total += added;
        assert!(
            *created <= added + IN_FLIGHT && added <= created + changed + IN_FLIGHT,
            "{resource}: {created} successful creates and {changed} updates and patches, {added} objects added:\n{stdout}"
        );
        assert!(
            added + modified <= created + changed + IN_FLIGHT,
            "{resource}: {added} added and {modified} modified from {created} successful creates and {changed} updates and patches:\n{stdout}"
        );
    }
    assert!(added_total > 0, "{last}");
    assert!(
        j["requests_while_deleting"].as_u64().unwrap_or(0) > 0,
        "{last}"
    );
    assert!(
        j["seconds_to_all_deleted"].as_f64().unwrap_or(0.0) > 0.0,
        "{last}"
    );
}
