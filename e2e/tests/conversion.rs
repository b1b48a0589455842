//! Cluster API v1beta1 beside v1beta2, driven by the real kubectl against `slipway up` with
//! the in-memory provider: a cluster written by hand in upstream's v1beta1 shape provisions
//! like a v1beta2 one, every kind reads the same at either version, and patches, server-side
//! apply, lists and watches at v1beta1 go through conversion. Needs `kubectl` on PATH.

use serde_json::Value;
use slipway_testsupport::*;

const ANNOTATION: &str = "cluster.x-k8s.io/conversion-data";

fn v1(m: &Mgmt, resource: &str, name: &str) -> Value {
    m.json(&["get", resource, name])
}

#[test]
fn a_v1beta1_cluster_goes_available_and_reads_the_same_at_both_versions() {
    let m = Mgmt::start("conversion", false);
    let manifest = std::fs::read_to_string(fixture("v1beta1/in-memory-cluster.yaml")).unwrap();
    m.ok(&["apply", "-f", "-"], Some(&manifest));
    wait_available(&m, "old", 120);
    let kc = m.workload_kubeconfig("old");
    wait_shape(&m, "old", 1, 1, &kc);

    // The Cluster at v1beta1 is the object applied, with v1beta1 status; at v1beta2 the same
    // object (uid, resourceVersion) in the v1beta2 shape.
    let old = v1(&m, "clusters.v1beta1.cluster.x-k8s.io", "old");
    let new = v1(&m, "clusters.v1beta2.cluster.x-k8s.io", "old");
    assert_eq!(old["apiVersion"], "cluster.x-k8s.io/v1beta1");
    assert_eq!(new["apiVersion"], "cluster.x-k8s.io/v1beta2");
    assert_eq!(old["metadata"]["uid"], new["metadata"]["uid"]);
    assert_eq!(
        old["metadata"]["resourceVersion"],
        new["metadata"]["resourceVersion"]
    );
    assert_eq!(
        old["spec"]["controlPlaneRef"]["apiVersion"], "controlplane.cluster.x-k8s.io/v1beta1",
        "the reference reads back as applied"
    );
    assert_eq!(
        new["spec"]["controlPlaneRef"]["apiGroup"],
        "controlplane.cluster.x-k8s.io"
    );
    assert_eq!(old["status"]["infrastructureReady"], true);
    assert_eq!(old["status"]["controlPlaneReady"], true);
    assert_eq!(
        condition(
            &serde_json::json!({"status": old["status"]["v1beta2"]}),
            "Available"
        )
        .as_deref(),
        Some("True")
    );

    // KubeadmControlPlane: durations, extraArgs and the machine template's ref, both ways.
    let kcp1 = v1(
        &m,
        "kubeadmcontrolplanes.v1beta1.controlplane.cluster.x-k8s.io",
        "old-control-plane",
    );
    let kcp2 = v1(
        &m,
        "kubeadmcontrolplanes.v1beta2.controlplane.cluster.x-k8s.io",
        "old-control-plane",
    );
    assert_eq!(kcp1["spec"]["machineTemplate"]["nodeDrainTimeout"], "2m");
    assert_eq!(
        kcp2["spec"]["machineTemplate"]["spec"]["deletion"]["nodeDrainTimeoutSeconds"],
        120
    );
    assert_eq!(
        kcp1["spec"]["kubeadmConfigSpec"]["clusterConfiguration"]["apiServer"]["extraArgs"]["audit-log-maxage"],
        "30"
    );
    assert_eq!(
        kcp2["spec"]["kubeadmConfigSpec"]["clusterConfiguration"]["apiServer"]["extraArgs"],
        serde_json::json!([{"name": "audit-log-maxage", "value": "30"}])
    );
    assert_eq!(kcp1["status"]["initialized"], true);
    assert!(
        kcp1["metadata"]["annotations"].get(ANNOTATION).is_none(),
        "v1beta1 readers see no record of their own fields"
    );

    // Machines the controllers created at v1beta2 read at v1beta1 with versioned references.
    let machines = m.items(&["get", "machines.v1beta1.cluster.x-k8s.io"]);
    assert_eq!(machines.len(), 2);
    for x in &machines {
        assert_eq!(x["apiVersion"], "cluster.x-k8s.io/v1beta1");
        assert_eq!(
            x["spec"]["infrastructureRef"]["apiVersion"],
            "infrastructure.cluster.x-k8s.io/v1alpha1"
        );
        assert_eq!(x["status"]["nodeRef"]["kind"], "Node");
        assert_eq!(x["status"]["bootstrapReady"], true);
    }

    // A JSON patch addressed to v1beta1 paths.
    m.ok(
        &[
            "patch",
            "machinedeployments.v1beta1.cluster.x-k8s.io",
            "old-md-0",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/template/spec/nodeDrainTimeout","value":"5m"}]"#,
        ],
        None,
    );
    let md2 = v1(
        &m,
        "machinedeployments.v1beta2.cluster.x-k8s.io",
        "old-md-0",
    );
    assert_eq!(
        md2["spec"]["template"]["spec"]["deletion"]["nodeDrainTimeoutSeconds"],
        300
    );
    assert_eq!(md2["spec"]["deletion"]["order"], "Oldest");

    // Server-side apply of a v1beta1 object: scales the workers.
    let apply = manifest
        .split("\n---\n")
        .find(|d| d.contains("kind: MachineDeployment"))
        .unwrap()
        .replace("replicas: 1", "replicas: 2");
    m.ok(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=e2e",
            "-f",
            "-",
        ],
        Some(&apply),
    );
    let md1 = v1(
        &m,
        "machinedeployments.v1beta1.cluster.x-k8s.io",
        "old-md-0",
    );
    assert_eq!(md1["spec"]["replicas"], 2);
    assert_eq!(
        md1["spec"]["template"]["spec"]["nodeDrainTimeout"], "90s",
        "the applied value wins over the earlier patch"
    );
    wait_shape(&m, "old", 1, 2, &kc);

    // Lists and watches are converted too.
    let listed = m.ok(
        &[
            "get",
            "--raw",
            "/apis/cluster.x-k8s.io/v1beta1/namespaces/default/machinedeployments",
        ],
        None,
    );
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        listed["items"][0]["spec"]["strategy"]["rollingUpdate"]["deletePolicy"],
        "Oldest"
    );
    let watched = m.ok(
        &[
            "get",
            "--raw",
            "/apis/cluster.x-k8s.io/v1beta1/namespaces/default/clusters?watch=1&timeoutSeconds=1",
        ],
        None,
    );
    let event: Value = serde_json::from_str(watched.lines().next().unwrap()).unwrap();
    assert_eq!(event["object"]["apiVersion"], "cluster.x-k8s.io/v1beta1");
    assert_eq!(event["object"]["status"]["infrastructureReady"], true);

    // What v1beta2 cannot hold is refused with the field named, and nothing is stored.
    let bad = "apiVersion: cluster.x-k8s.io/v1beta1\nkind: Machine\nmetadata: {name: bad, namespace: default}\nspec:\n  clusterName: old\n  bootstrap: {dataSecretName: x}\n  nodeDrainTimeout: ten minutes\n  infrastructureRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1, kind: InMemoryMachine, name: bad}\n";
    let out = m.kubectl_with(&m.kubeconfig, &["apply", "-f", "-"], Some(bad));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("spec.nodeDrainTimeout") && err.contains("Invalid"),
        "{err}"
    );
    let out = m.kubectl_with(&m.kubeconfig, &["get", "machine", "bad"], None);
    assert!(
        text(&out.stderr).contains("NotFound"),
        "{}",
        text(&out.stderr)
    );
}

/// v1beta1 schemas are closed: a typo is refused under kubectl's Strict naming the field, and
/// pruned with a warning under Warn (nothing of it kept), for core, kubeadm and AWS kinds.
#[test]
fn typos_at_v1beta1_are_refused_under_strict_and_pruned_under_warn() {
    let m = Mgmt::start("conversion-strict", true);
    let cluster = |name: &str, typo: &str| {
        format!(
            "apiVersion: cluster.x-k8s.io/v1beta1\nkind: Cluster\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  paused: true\n  clusterNetwork:\n    pods: {{cidrBlocks: [192.168.0.0/16]}}\n    {typo}: x\n  controlPlaneRef: {{apiVersion: controlplane.cluster.x-k8s.io/v1beta1, kind: KubeadmControlPlane, name: {name}-cp}}\n"
        )
    };
    let kcp = "apiVersion: controlplane.cluster.x-k8s.io/v1beta1\nkind: KubeadmControlPlane\nmetadata: {name: typo-cp, namespace: default}\nspec:\n  replicas: 1\n  version: v1.31.0\n  machineTemplate:\n    nodeDrainTimout: 2m\n    infrastructureRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1, kind: InMemoryMachineTemplate, name: x}\n  kubeadmConfigSpec:\n    clusterConfiguration:\n      apiServer:\n        extraArgs: {audit-log-maxage: \"30\"}\n";
    let aws = "apiVersion: infrastructure.cluster.x-k8s.io/v1beta1\nkind: AWSCluster\nmetadata: {name: typo, namespace: default}\nspec:\n  region: us-east-1\n  sshKeyNmae: default\n";
    for (doc, field) in [
        (
            cluster("typo", "serviceDomian"),
            "spec.clusterNetwork.serviceDomian",
        ),
        (kcp.to_string(), "spec.machineTemplate.nodeDrainTimout"),
        (aws.to_string(), "spec.sshKeyNmae"),
    ] {
        for validate in ["--validate=strict", "--validate=true"] {
            let out = m.kubectl_with(&m.kubeconfig, &["apply", validate, "-f", "-"], Some(&doc));
            let err = text(&out.stderr);
            assert!(!out.status.success(), "{field} was accepted");
            assert!(
                err.contains(&format!("unknown field \"{field}\"")),
                "{field}: {err}"
            );
        }
    }
    assert!(
        text(
            &m.kubectl_with(&m.kubeconfig, &["get", "clusters", "-A"], None)
                .stdout
        )
        .trim()
        .is_empty(),
        "nothing is stored"
    );

    // Warn: applied, the typo named in a warning and pruned (not kept in the annotation).
    let out = m.kubectl_with(
        &m.kubeconfig,
        &["apply", "--validate=warn", "-f", "-"],
        Some(&cluster("warned", "serviceDomian")),
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("unknown field \"spec.clusterNetwork.serviceDomian\""),
        "{err}"
    );
    let got = v1(&m, "clusters.v1beta1.cluster.x-k8s.io", "warned");
    assert_eq!(
        got["spec"]["clusterNetwork"],
        serde_json::json!({"pods": {"cidrBlocks": ["192.168.0.0/16"]}}),
        "{got}"
    );
    let kept = got["metadata"]["annotations"][ANNOTATION].to_string();
    assert!(!kept.contains("serviceDomian"), "{kept}");
    // The same manifest without the typo, and its v1beta1-only fields, apply under Strict.
    let md = "apiVersion: cluster.x-k8s.io/v1beta1\nkind: MachineDeployment\nmetadata: {name: warned-md, namespace: default}\nspec:\n  clusterName: warned\n  revisionHistoryLimit: 3\n  progressDeadlineSeconds: 600\n  selector: {matchLabels: {}}\n  template:\n    spec:\n      clusterName: warned\n      version: v1.31.0\n      nodeDrainTimeout: 90s\n      bootstrap: {configRef: {apiVersion: bootstrap.cluster.x-k8s.io/v1beta1, kind: KubeadmConfigTemplate, name: x}}\n      infrastructureRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1, kind: InMemoryMachineTemplate, name: x}\n";
    m.ok(&["apply", "-f", "-"], Some(md));
    let got = v1(
        &m,
        "machinedeployments.v1beta1.cluster.x-k8s.io",
        "warned-md",
    );
    assert_eq!(got["spec"]["revisionHistoryLimit"], 3, "{got}");
    assert_eq!(got["spec"]["template"]["spec"]["nodeDrainTimeout"], "90s");
}
