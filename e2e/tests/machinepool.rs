//! MachinePools end to end with the in-memory provider, driven by kubectl against `slipway
//! up`: a MachinePool with a KubeadmConfig and an InMemoryMachinePool scales from 0 to 5 and
//! back to 2, its instances joining the workload cluster with the pool's one bootstrap config;
//! `status.nodeRefs` and the counters follow; a new version rolls its instances (new ones
//! first, never fewer Ready than the replicas); deleting the pool removes its Nodes.
//! Needs `kubectl` on PATH.

use std::{collections::BTreeSet, process::Command};

use serde_json::Value;
use slipway_testsupport::*;

const POOL: &str = r#"---
apiVersion: cluster.x-k8s.io/v1beta2
kind: MachinePool
metadata:
  name: demo-mp-0
spec:
  clusterName: demo
  replicas: 0
  template:
    spec:
      clusterName: demo
      version: v1.31.0
      bootstrap:
        configRef:
          apiGroup: bootstrap.cluster.x-k8s.io
          kind: KubeadmConfig
          name: demo-mp-0
      infrastructureRef:
        apiGroup: infrastructure.cluster.x-k8s.io
        kind: InMemoryMachinePool
        name: demo-mp-0
---
apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
kind: KubeadmConfig
metadata:
  name: demo-mp-0
spec:
  joinConfiguration:
    nodeRegistration: {}
---
apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1
kind: InMemoryMachinePool
metadata:
  name: demo-mp-0
spec: {}
"#;

fn pool(m: &Mgmt) -> Value {
    m.json(&["get", "machinepool", "demo-mp-0"])
}

/// Waits until the pool reports `n` replicas, all Ready with nodeRefs, and the workload cluster
/// has exactly those Nodes of the pool.
fn wait_pool(m: &Mgmt, kc: &std::path::Path, n: usize) {
    eventually(90, &format!("{n} pool nodes"), || {
        let p = pool(m);
        let s = &p["status"];
        let refs: BTreeSet<String> = s["nodeRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str().map(str::to_string))
            .collect();
        let ids = p["spec"]["providerIDList"].as_array().map_or(0, Vec::len);
        let nodes: BTreeSet<String> = m
            .nodes(kc)?
            .into_iter()
            .filter(|(name, ready, _)| name.starts_with("demo-mp-0-") && ready == "True")
            .map(|(name, _, _)| name)
            .collect();
        let ok = s["replicas"] == n
            && s["readyReplicas"] == n
            && s["availableReplicas"] == n
            && ids == n
            && refs.len() == n
            && refs == nodes
            && s["phase"] == "Running"
            && condition(&p, "Available").as_deref() == Some("True");
        ok.then_some(())
            .ok_or_else(|| format!("nodes {nodes:?}; pool {:#}", p["status"]))
    });
}

/// The pool's Nodes in the workload cluster: name -> (Ready status, kubelet version).
fn pool_nodes(
    m: &Mgmt,
    kc: &std::path::Path,
) -> std::collections::BTreeMap<String, (String, String)> {
    m.nodes(kc)
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _, _)| name.starts_with("demo-mp-0-"))
        .map(|(name, ready, version)| (name, (ready, version)))
        .collect()
}

#[test]
fn an_in_memory_machine_pool_scales_from_zero_to_five_and_back_to_two() {
    let m = Mgmt::start("machinepool", false);
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("demo", 1, 0, "v1.31.0")),
    );
    m.ok(&["apply", "-f", "-"], Some(POOL));
    // The built-in flavor writes the same shape.
    let flavor = Command::new(slipway_bin())
        .args([
            "generate",
            "cluster",
            "other",
            "--infrastructure",
            "in-memory",
        ])
        .args(["--flavor", "machinepool", "--worker-machine-count", "3"])
        .output()
        .unwrap();
    assert!(flavor.status.success(), "{}", text(&flavor.stderr));
    let flavor = text(&flavor.stdout);
    for want in [
        "kind: MachinePool",
        "kind: InMemoryMachinePool",
        "kind: KubeadmConfig\n",
        "replicas: 3",
    ] {
        assert!(flavor.contains(want), "{want} in {flavor}");
    }
    assert!(!flavor.contains("kind: MachineDeployment"), "{flavor}");
    m.ok(&["apply", "--dry-run=server", "-f", "-"], Some(&flavor));
    wait_available(&m, "demo", 120);
    let kc = m.workload_kubeconfig("demo");
    // Scale from zero: provisioned, no instance, Running at 0.
    wait_pool(&m, &kc, 0);
    let p = pool(&m);
    assert_eq!(
        p["status"]["initialization"]["infrastructureProvisioned"],
        true
    );
    assert_eq!(
        p["status"]["initialization"]["bootstrapDataSecretCreated"],
        true
    );
    assert_eq!(
        p["spec"]["template"]["spec"]["bootstrap"]["dataSecretName"],
        "demo-mp-0"
    );
    // The pool controls its bootstrap config and infrastructure pool.
    for kind in ["kubeadmconfig", "inmemorymachinepool"] {
        let o = m.json(&["get", kind, "demo-mp-0"]);
        let owner = &o["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "MachinePool", "{kind}");
        assert_eq!(owner["controller"], true, "{kind}");
    }

    m.ok(
        &["scale", "machinepool", "demo-mp-0", "--replicas", "5"],
        None,
    );
    wait_pool(&m, &kc, 5);
    let p = pool(&m);
    let ids: Vec<&str> = p["spec"]["providerIDList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        ids.iter()
            .all(|id| id.starts_with("in-memory://default/demo/demo-mp-0-")),
        "{ids:?}"
    );
    assert_eq!(p["status"]["versions"][0]["version"], "v1.31.0");
    assert_eq!(p["status"]["versions"][0]["replicas"], 5);
    let out = Command::new(slipway_bin())
        .args(["describe", "cluster", "demo"])
        .env("KUBECONFIG", &m.kubeconfig)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let tree = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(tree.contains("MachinePool/demo-mp-0 (5/5 ready)"), "{tree}");
    assert_eq!(tree.matches("Node/demo-mp-0-").count(), 5, "{tree}");

    m.ok(
        &["scale", "machinepool", "demo-mp-0", "--replicas", "2"],
        None,
    );
    wait_pool(&m, &kc, 2);
    let old: BTreeSet<String> = pool_nodes(&m, &kc).into_keys().collect();

    // A new version rolls the pool: new instances join at v1.31.1 and replace the old ones,
    // never leaving fewer than 2 Ready instances on the way.
    m.ok(
        &[
            "patch",
            "machinepool",
            "demo-mp-0",
            "--type=merge",
            "-p",
            r#"{"spec":{"template":{"spec":{"version":"v1.31.1"}}}}"#,
        ],
        None,
    );
    let mut fewest_ready = usize::MAX;
    eventually(90, "2 pool nodes at v1.31.1 replacing the old ones", || {
        let nodes = pool_nodes(&m, &kc);
        fewest_ready = fewest_ready.min(nodes.values().filter(|(r, _)| r == "True").count());
        let p = pool(&m);
        let new: Vec<&String> = nodes.keys().collect();
        let ok = nodes.len() == 2
            && nodes.values().all(|(r, v)| r == "True" && v == "v1.31.1")
            && new.iter().all(|n| !old.contains(*n))
            && p["status"]["upToDateReplicas"] == 2
            && p["status"]["readyReplicas"] == 2
            && p["status"]["phase"] == "Running";
        ok.then_some(())
            .ok_or_else(|| format!("nodes {nodes:?}; pool {:#}", p["status"]))
    });
    assert!(
        fewest_ready >= 2,
        "the roll dropped to {fewest_ready} Ready nodes"
    );
    wait_pool(&m, &kc, 2);

    // Deleting the pool removes its instances' Nodes, then the pool's objects.
    m.ok(&["delete", "machinepool", "demo-mp-0"], None);
    eventually(60, "pool nodes gone", || {
        let left: Vec<String> = m
            .nodes(&kc)?
            .into_iter()
            .map(|(n, _, _)| n)
            .filter(|n| n.starts_with("demo-mp-0-"))
            .collect();
        left.is_empty().then_some(()).ok_or(format!("{left:?}"))
    });
    for kind in ["machinepool", "inmemorymachinepool", "kubeadmconfig"] {
        eventually(60, &format!("{kind} gone"), || {
            let out = m.kubectl_with(&m.kubeconfig, &["get", kind, "demo-mp-0"], None);
            (!out.status.success())
                .then_some(())
                .ok_or(text(&out.stdout))
        });
    }
}
