//! The provisioning core end to end, driven by the real kubectl against `slipway up` with the
//! in-memory provider: a cluster comes up, its generated kubeconfig authenticates over TLS to
//! the simulated workload API server, it scales, rolls out a new version, survives a
//! controller restart and tampering, and deletes without leaving anything behind.
//! Needs `kubectl` on PATH (`.ci/run` installs it).

use std::{collections::BTreeSet, time::Duration};

use serde_json::Value;
use slipway_testsupport::*;

#[test]
fn a_cluster_comes_up_scales_upgrades_and_deletes_cleanly() {
    let m = Mgmt::start("lifecycle", false);
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("demo", 3, 2, "v1.31.0")),
    );
    wait_available(&m, "demo", 120);

    // The generated admin kubeconfig authenticates over TLS (client certificate signed by the
    // cluster CA) against the simulated workload API server.
    let kc = m.workload_kubeconfig("demo");
    let kc_text = std::fs::read_to_string(&kc).unwrap();
    assert!(kc_text.contains("client-certificate-data") && !kc_text.contains("token:"));
    wait_shape(&m, "demo", 3, 2, &kc);
    let ms = machines(&m, "demo");
    for x in &ms {
        let pid = x["spec"]["providerID"].as_str().unwrap();
        assert!(pid.starts_with("in-memory://default/demo/"), "{pid}");
        assert_eq!(condition(x, "Ready").as_deref(), Some("True"));
    }
    // Join tokens live in the workload cluster, one per join (2 control-plane joins + 2
    // workers) plus the one `kubeadm init` created.
    let tokens = m.kubectl_with(
        &kc,
        &["get", "secrets", "-n", "kube-system", "-o", "name"],
        None,
    );
    let tokens = text(&tokens.stdout);
    assert_eq!(
        tokens
            .lines()
            .filter(|l| l.contains("bootstrap-token-"))
            .count(),
        5,
        "{tokens}"
    );

    // Scale the workers to 4, then to 1.
    m.ok(
        &["scale", "machinedeployment", "demo-md-0", "--replicas", "4"],
        None,
    );
    wait_shape(&m, "demo", 3, 4, &kc);
    m.ok(
        &["scale", "machinedeployment", "demo-md-0", "--replicas", "1"],
        None,
    );
    wait_shape(&m, "demo", 3, 1, &kc);

    // A new version rolls the control plane one machine at a time (maxSurge 1: never more
    // than 4 control-plane machines), and the Nodes report it.
    let before: BTreeSet<String> = machines(&m, "demo")
        .iter()
        .filter(|x| {
            x["metadata"]["labels"]
                .get("cluster.x-k8s.io/control-plane")
                .is_some()
        })
        .map(|x| x["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    m.ok(
        &[
            "patch",
            "kubeadmcontrolplane",
            "demo-control-plane",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"version":"v1.32.0"}}"#,
        ],
        None,
    );
    let mut most = 0;
    eventually(120, "control plane rolled out to v1.32.0", || {
        let cps: Vec<Value> = machines(&m, "demo")
            .into_iter()
            .filter(|x| {
                x["metadata"]["labels"]
                    .get("cluster.x-k8s.io/control-plane")
                    .is_some()
            })
            .collect();
        most = most.max(cps.len());
        let upgraded = cps
            .iter()
            .filter(|x| x["spec"]["version"] == "v1.32.0" && x["status"]["phase"] == "Running")
            .count();
        let nodes = m.nodes(&kc)?;
        let new_nodes = nodes
            .iter()
            .filter(|n| n.2 == "v1.32.0" && n.1 == "True")
            .count();
        (cps.len() == 3 && upgraded == 3 && new_nodes == 3 && nodes.len() == 4)
            .then_some(())
            .ok_or_else(|| format!("{upgraded} upgraded of {}, nodes {nodes:?}", cps.len()))
    });
    assert!(most <= 4, "at most one surge machine, saw {most}");
    let after: BTreeSet<String> = machines(&m, "demo")
        .iter()
        .filter(|x| {
            x["metadata"]["labels"]
                .get("cluster.x-k8s.io/control-plane")
                .is_some()
        })
        .map(|x| x["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(before.is_disjoint(&after), "every machine was replaced");
    let kcp = m.json(&["get", "kcp", "demo-control-plane"]);
    assert_eq!(kcp["status"]["version"], "v1.32.0");
    assert_eq!(kcp["status"]["upToDateReplicas"], 3);

    // Delete: every object and the simulated server go; no finalizer is left behind.
    let endpoint = m.json(&["get", "cluster", "demo"])["spec"]["controlPlaneEndpoint"].clone();
    m.ok(&["delete", "cluster", "demo", "--timeout", "90s"], None);
    let left = m.ok(&["get", "cluster-api", "-o", "name"], None);
    assert_eq!(left.trim(), "", "objects left: {left}");
    let secrets = m.ok(&["get", "secrets", "-o", "name"], None);
    assert_eq!(secrets.trim(), "", "secrets left: {secrets}");
    // Its endpoint may share a port (and a listener) with other clusters' servers: what
    // must be gone is an API server answering there with the cluster's credentials.
    let out = m.kubectl_with(&kc, &["get", "namespaces", "--request-timeout", "5s"], None);
    assert!(
        !out.status.success(),
        "the workload API server still answers at {endpoint}"
    );
    assert!(!m.dir.join("in-memory/default/demo").exists());
}

#[test]
fn tampering_is_repaired_and_a_ready_cluster_writes_nothing() {
    let m = Mgmt::start("resilience", false);
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("res", 1, 1, "v1.31.0")),
    );
    wait_available(&m, "res", 120);
    let kc = m.workload_kubeconfig("res");
    wait_shape(&m, "res", 1, 1, &kc);

    // Owner references and finalizers removed from live objects come back.
    let machine = machines(&m, "res")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    m.ok(
        &[
            "patch",
            "machine",
            &machine,
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
        None,
    );
    m.ok(
        &[
            "patch",
            "inmemorymachine",
            &machine,
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/ownerReferences"}]"#,
        ],
        None,
    );
    m.ok(
        &[
            "patch",
            "inmemorycluster",
            "res",
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/ownerReferences"}]"#,
        ],
        None,
    );
    eventually(30, "finalizer and owner references restored", || {
        let mach = m.json(&["get", "machine", &machine]);
        let imm = m.json(&["get", "inmemorymachine", &machine]);
        let imc = m.json(&["get", "inmemorycluster", "res"]);
        let fin = mach["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        let owner = |o: &Value, kind: &str| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x["kind"] == kind))
        };
        (fin && owner(&imm, "Machine") && owner(&imc, "Cluster"))
            .then_some(())
            .ok_or_else(|| "not yet".to_string())
    });

    // Once Available, nothing is written for 30 s: no hot loop.
    let snapshot = || {
        let mut v: Vec<(String, String)> = m
            .items(&["get", "cluster-api,secrets,configmaps"])
            .iter()
            .map(|o| {
                (
                    format!("{}/{}", o["kind"], o["metadata"]["name"]),
                    o["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    // Let the repairs above and the registration (first health probe) settle first.
    eventually(40, "the cluster is registered healthy", || {
        let p = m.json(&["get", "clusterprofile", "res"]);
        (condition(&p, "ControlPlaneHealthy").as_deref() == Some("True"))
            .then_some(())
            .ok_or_else(|| format!("{:#}", p["status"]))
    });
    std::thread::sleep(Duration::from_secs(3));
    let first = snapshot();
    std::thread::sleep(Duration::from_secs(30));
    assert_eq!(
        first,
        snapshot(),
        "objects were written while the cluster was Ready"
    );
}

#[test]
fn a_controller_killed_mid_provisioning_converges_without_duplicates() {
    let mut m = Mgmt::start("restart", true);
    // Simulated boot delays keep provisioning going long enough to be interrupted.
    let manifests =
        generate("rs", 3, 2, "v1.31.0").replace("vmStartupSeconds: 0.0", "vmStartupSeconds: 1.0");
    m.start_controller();
    m.ok(&["apply", "-f", "-"], Some(&manifests));
    for wait_ms in [1500, 2500] {
        std::thread::sleep(Duration::from_millis(wait_ms));
        m.kill_controller();
        m.start_controller();
    }
    wait_available(&m, "rs", 120);
    let kc = m.workload_kubeconfig("rs");
    wait_shape(&m, "rs", 3, 2, &kc);
    assert_eq!(
        m.items(&["get", "inmemorymachines"]).len(),
        5,
        "one infrastructure machine per Machine"
    );
    assert_eq!(m.items(&["get", "kubeadmconfigs"]).len(), 5);
    assert_eq!(m.items(&["get", "machinesets"]).len(), 1);

    // The simulated machines and the workload API server keep running across a restart.
    m.kill_controller();
    m.start_controller();
    let kc = m.workload_kubeconfig("rs");
    eventually(30, "workload cluster answers after the restart", || {
        let n = m.nodes(&kc)?;
        (n.len() == 5).then_some(()).ok_or_else(|| format!("{n:?}"))
    });
}

#[test]
fn a_machine_that_fails_to_boot_is_reported_never_running() {
    let m = Mgmt::start("faults", false);
    // The workers' template is the last document: give it a boot fault.
    let manifests = format!(
        "{}\n      faults: {{boot: Fail, message: disk on fire}}\n",
        generate("bad", 1, 1, "v1.31.0").trim_end()
    );
    assert!(manifests.contains("disk on fire"), "{manifests}");
    m.ok(&["apply", "-f", "-"], Some(&manifests));
    let worker = eventually(120, "the worker reports its failed boot", || {
        machines(&m, "bad")
            .into_iter()
            .find(|x| {
                x["metadata"]["labels"]
                    .get("cluster.x-k8s.io/control-plane")
                    .is_none()
                    && x["status"]["phase"] == "Failed"
            })
            .ok_or_else(|| "no failed worker yet".to_string())
    });
    let infra = worker["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "InfrastructureReady")
        .unwrap();
    assert_eq!(infra["status"], "False");
    assert_eq!(infra["reason"], "ProviderTerminalError");
    assert!(infra["message"].as_str().unwrap().contains("disk on fire"));
    assert!(worker["status"]["nodeRef"].is_null());
}
