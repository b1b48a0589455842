//! The clusterctl-style commands against `slipway up`: `get kubeconfig` (and `--merge`)
//! output works with kubectl, `describe cluster` shows why a machine failed, `delete cluster
//! --wait` reports progress, and `init --dry-run` output applies cleanly.

use std::process::{Command, Output};

use slipway_testsupport::*;

fn slipway(m: &Mgmt, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .env("KUBECONFIG", &m.kubeconfig)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn get_kubeconfig_describe_and_delete() {
    let m = Mgmt::start("clusterctl", false);
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("good", 1, 0, "v1.31.0")),
    );
    let faulty = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "generate",
            "cluster",
            "bad",
            "--flavor",
            "faulty",
            "--worker-machine-count",
            "1",
        ])
        .env("IN_MEMORY_FAULT_MESSAGE", "no disk")
        .output()
        .unwrap();
    assert!(faulty.status.success(), "{}", text(&faulty.stderr));
    m.ok(&["apply", "-f", "-"], Some(&text(&faulty.stdout)));
    wait_available(&m, "good", 120);

    // get kubeconfig: kubectl uses it as is.
    let out = slipway(&m, &["get", "kubeconfig", "good"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let kc = m.dir.join("good.kc");
    std::fs::write(&kc, &out.stdout).unwrap();
    let nodes = m.kubectl_with(&kc, &["get", "nodes", "-o", "name"], None);
    assert!(nodes.status.success(), "{}", text(&nodes.stderr));
    assert_eq!(text(&nodes.stdout).lines().count(), 1);

    // --merge: a context of the workload cluster beside the existing one.
    let merged = m.dir.join("merged.kc");
    std::fs::copy(&m.kubeconfig, &merged).unwrap();
    let out = slipway(
        &m,
        &[
            "get",
            "kubeconfig",
            "good",
            "--merge",
            merged.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let via_context = m.kubectl_with(
        &merged,
        &["--context", "good-admin@good", "get", "nodes", "-o", "name"],
        None,
    );
    assert!(
        via_context.status.success(),
        "{}",
        text(&via_context.stderr)
    );
    let still = m.kubectl_with(&merged, &["get", "clusters", "-o", "name"], None);
    assert!(
        text(&still.stdout).contains("cluster.cluster.x-k8s.io/good"),
        "the existing current context still works: {}",
        text(&still.stderr)
    );

    // A missing cluster is a clear error naming the Secret.
    let out = slipway(&m, &["get", "kubeconfig", "nope"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nope-kubeconfig"),
        "{}",
        text(&out.stderr)
    );

    // describe shows the failing machine's reason and message.
    let tree = eventually(90, "describe shows the failed worker", || {
        let out = slipway(&m, &["describe", "cluster", "bad"]);
        let t = text(&out.stdout);
        (out.status.success() && t.contains("ProviderTerminalError") && t.contains("no disk"))
            .then_some(t.clone())
            .ok_or(t)
    });
    assert!(tree.starts_with("NAME"), "{tree}");
    assert!(
        tree.contains("ControlPlane KubeadmControlPlane/bad-control-plane"),
        "{tree}"
    );
    assert!(tree.contains("MachineDeployment/bad-md-0"), "{tree}");
    assert!(!tree.contains("\x1b["), "no colour when not a terminal");

    // delete --wait reports progress until the cluster is gone.
    let out = slipway(
        &m,
        &["delete", "cluster", "good", "--wait", "--timeout", "90"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let progress = text(&out.stdout);
    assert!(
        progress.lines().last().unwrap().contains("deleted"),
        "{progress}"
    );
    assert!(
        !m.kubectl_with(&m.kubeconfig, &["get", "cluster", "good"], None)
            .status
            .success()
    );
}

#[test]
fn init_dry_run_applies_to_an_empty_management_plane() {
    let m = Mgmt::start("init", true);
    let out = slipway(&m, &["init", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    // What a careful operator runs first: the server accepts every document and stores none
    // (like kube-apiserver, a server dry run needs the namespace of namespaced objects).
    m.ok(&["create", "namespace", "slipway-system"], None);
    let dry = m.ok(&["apply", "--dry-run=server", "-f", "-"], Some(&yaml));
    assert!(
        dry.contains("poddisruptionbudget.policy/slipway-controller created (server dry run)"),
        "{dry}"
    );
    assert!(
        m.json(&["get", "deployments", "-A"])["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    m.ok(&["apply", "-f", "-"], Some(&yaml));
    let pdb = m.json(&["get", "pdb", "-n", "slipway-system", "slipway-controller"]);
    assert_eq!(pdb["spec"]["minAvailable"], 1, "{pdb}");
    let deploy = m.json(&[
        "get",
        "deployment",
        "-n",
        "slipway-system",
        "slipway-controller",
    ]);
    assert_eq!(deploy["spec"]["replicas"], 2);
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["resources"]["requests"]["cpu"], "100m", "{c}");
    let args = c["args"].clone();
    assert!(
        args.as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--leader-elect"),
        "{args}"
    );
    let role = m.json(&["get", "clusterrole", "slipway-controller"]);
    assert!(role["rules"].as_array().unwrap().len() >= 4);
    // Applying twice changes nothing; the real install path (server-side apply) works too.
    let again = m.ok(&["apply", "-f", "-"], Some(&yaml));
    assert!(again.lines().all(|l| l.ends_with("unchanged")), "{again}");
    let out = slipway(&m, &["init"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("deployment/slipway-controller applied"));
}
