//! `slipway bench --kubeconfig`: the same workload against an external management plane (a
//! `slipway up --no-controller` in another process), with the controllers and the in-memory
//! provider in the bench's process. The plane really holds the clusters, the requests are
//! counted by verb on the bench's clients, a CRD missing from the plane is installed, and an
//! unreadable kubeconfig, an unreachable plane or a plane holding an earlier run's clusters is a
//! clear error naming the flag.
//! Needs `kubectl` on PATH (`.ci/run` installs it).

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use serde_json::Value;
use slipway_testsupport::*;

/// Not used by the bench's non-topology clusters, so deleting it first shows the bench
/// installing what the plane lacks.
const SPARE_CRD: &str = "inmemoryclustertemplates.infrastructure.cluster.x-k8s.io";

#[test]
fn the_bench_runs_against_an_external_plane_given_by_kubeconfig() {
    let m = Mgmt::start("bench-external", true);
    m.ok(&["delete", "crd", SPARE_CRD], None);
    let mut bench = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["bench", "--kubeconfig"])
        .arg(&m.kubeconfig)
        .args([
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
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("slipway bench starts");
    let mut lines = vec![];
    let mut held = None;
    for line in BufReader::new(bench.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // Every Machine is Ready and the idle window starts: the external plane, read by
        // kubectl in its own process, holds both clusters, Available.
        if line.starts_with("all 4 machines Ready") {
            held = Some(m.items(&["get", "clusters"]));
        }
        lines.push(line);
    }
    let out = bench.wait_with_output().unwrap();
    let stdout = lines.join("\n");
    assert!(
        out.status.success(),
        "bench failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("installing 1 CRDs the plane does not serve"),
        "{stdout}"
    );
    m.ok(&["get", "crd", SPARE_CRD], None);
    let held = held.unwrap_or_else(|| panic!("no 'all 4 machines Ready' line:\n{stdout}"));
    let mut names: Vec<&str> = held
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["bench-00000", "bench-00001"], "{held:?}");
    for c in &held {
        assert_eq!(condition(c, "Available").as_deref(), Some("True"), "{c}");
    }
    let last = lines.last().expect("output");
    let j: Value = serde_json::from_str(last).expect("the last line is one JSON object");
    assert_eq!(j["plane"], "external", "{last}");
    assert_eq!(j["clusters"], 2, "{last}");
    for phase in [
        "seconds_created",
        "seconds_to_all_infrastructure_ready",
        "seconds_to_all_control_planes_initialized",
        "seconds_to_all_available",
        "seconds_to_all_registered",
        "seconds_to_all_machines_ready",
        "seconds_to_all_deleted",
    ] {
        assert!(j[phase].as_f64().unwrap_or(0.0) > 0.0, "{phase}: {last}");
    }
    let verb = |v: &str| j["requests_by_verb"][v].as_u64().unwrap_or(0);
    assert!(
        verb("list") > 0 && verb("watch") > 0 && verb("get") > 0,
        "{last}"
    );
    // The user's creates alone are the generated objects of both clusters; the controllers
    // create more (Machines, configs, Secrets).
    let created = |r: &str| {
        j["requests_by_resource_verb"][r]["create"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(created("cluster.x-k8s.io/clusters") >= 2, "{last}");
    assert!(created("cluster.x-k8s.io/machines") >= 4, "{last}");
    assert!(created("/secrets") >= 2, "{last}");
    assert!(verb("create") >= 18, "{last}");
    assert!(
        j["requests_per_cluster"].as_f64().unwrap_or(0.0) > 0.0,
        "{last}"
    );
    // Writes come from the external plane's resourceVersion: every successful create is one.
    let failed_creates: u64 = j["failed_requests_by_resource_verb"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .map(|verbs| verbs["create"].as_u64().unwrap_or(0))
        .sum();
    let creates = verb("create") - failed_creates;
    assert!(
        j["writes_per_cluster"].as_f64().unwrap() * 2.0 + 0.2 >= creates as f64,
        "{creates} successful creates: {last}"
    );
    assert!(j["writes_by_resource"].is_null(), "{last}");
    assert!(
        j["requests_while_deleting"].as_u64().unwrap_or(0) > 0,
        "{last}"
    );
    assert!(
        m.items(&["get", "clusters"]).is_empty(),
        "--delete removed the clusters from the external plane"
    );
    // A Cluster left by an earlier run would be taken for one just created: refused.
    m.ok(
        &["apply", "-f", "-"],
        Some("apiVersion: cluster.x-k8s.io/v1beta2\nkind: Cluster\nmetadata: {name: bench-00000, namespace: default}\nspec: {}\n"),
    );
    let err = bench_error(&m.kubeconfig);
    assert!(
        err.contains(&format!("--kubeconfig {}", m.kubeconfig.display()))
            && err.contains("already holds 1 Clusters of an earlier bench"),
        "{err}"
    );
}

fn bench_error(kubeconfig: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "bench",
            "--clusters",
            "1",
            "--idle-seconds",
            "0",
            "--kubeconfig",
        ])
        .arg(kubeconfig)
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .expect("run slipway bench");
    assert!(!out.status.success(), "{}", text(&out.stdout));
    text(&out.stderr)
}

#[test]
fn an_unreadable_kubeconfig_or_an_unreachable_plane_is_an_error_naming_the_flag() {
    let dir = temp_dir("bench-external-errors");
    let missing = dir.join("missing.kubeconfig");
    let err = bench_error(&missing);
    assert!(
        err.contains(&format!("--kubeconfig {}", missing.display()))
            && err.contains("cannot read the kubeconfig"),
        "{err}"
    );
    let closed = dir.join("closed.kubeconfig");
    let port = free_port();
    std::fs::write(
        &closed,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}\nusers:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    let err = bench_error(&closed);
    assert!(
        err.contains(&format!("--kubeconfig {}", closed.display()))
            && err.contains(&format!("https://127.0.0.1:{port}"))
            && err.contains("unreachable"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
