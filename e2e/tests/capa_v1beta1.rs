//! CAPA-shaped v1beta1 manifests (CAPA's v1beta1 `templates/cluster-template.yaml`: core kinds,
//! AWSCluster and AWSMachineTemplates all at v1beta1) through `slipway generate cluster --from`
//! and kubectl, provisioned by `slipway controller` against a real `moto_server`, and read the
//! same at v1beta1 and v1beta2. As in `aws.rs`, a second `slipway up` plays the workload
//! cluster's API server and the test registers each instance's Node as its kubelet would.

use std::process::Command;

use serde_json::Value;
use slipway_aws::network::model::owner_tag;
use slipway_testsupport::{
    Mgmt, condition, eventually, fixture, machines, moto::moto, register_node, text,
};

fn generate(name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["generate", "cluster", name, "--from"])
        .arg(fixture("v1beta1/capa-cluster-template.yaml"))
        .args([
            "--kubernetes-version",
            "v1.31.0",
            "--worker-machine-count",
            "1",
        ])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_SSH_KEY_NAME", "slipway-e2e")
        .env("AWS_CONTROL_PLANE_MACHINE_TYPE", "t3.large")
        .env("AWS_NODE_MACHINE_TYPE", "t3.medium")
        .env("AWS_AMI_ID", "ami-760aaa0f")
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// `<cluster>-kubeconfig` pointing at the stand-in API server.
fn kubeconfig_secret(m: &Mgmt, cluster: &str, workload: &Mgmt) {
    use base64::Engine;
    let kc = std::fs::read(&workload.kubeconfig).unwrap();
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": format!("{cluster}-kubeconfig"), "namespace": "default",
            "labels": {"cluster.x-k8s.io/cluster-name": cluster},
            "annotations": {"slipway.dev/kubeconfig-provider": "e2e-stand-in"},
        },
        "type": "cluster.x-k8s.io/secret",
        "data": {"value": base64::engine::general_purpose::STANDARD.encode(kc)},
    });
    m.ok(&["apply", "-f", "-"], Some(&secret.to_string()));
}

fn at(m: &Mgmt, resource: &str, version: &str, group: &str, name: &str) -> Value {
    m.json(&["get", &format!("{resource}.{version}.{group}"), name])
}

const INFRA: &str = "infrastructure.cluster.x-k8s.io";

#[test]
fn capa_v1beta1_manifests_provision_on_moto_and_read_the_same_at_both_versions() {
    let Some(aws) = moto(&[]) else { return };
    // As `clusterawsadm bootstrap iam` leaves an account: the template's instance profiles.
    aws.create_capa_instance_profiles();
    let workload = Mgmt::start("capa-v1beta1-workload", true);
    let mut m = Mgmt::start("capa-v1beta1", true);
    let mut env = aws.env();
    env.push(("RUST_LOG", "warn,slipway_aws=info".into()));
    m.start_controller_env(&env);
    kubeconfig_secret(&m, "c1", &workload);

    let manifest = generate("c1");
    assert!(
        manifest.contains("apiVersion: infrastructure.cluster.x-k8s.io/v1beta1"),
        "{manifest}"
    );
    m.ok(&["apply", "-f", "-"], Some(&manifest));

    eventually(150, "2 Running machines and an Available cluster", || {
        for am in m.items(&["get", "awsmachines"]) {
            if let Some(pid) = am["spec"]["providerID"].as_str() {
                register_node(
                    &workload,
                    am["metadata"]["name"].as_str().unwrap(),
                    pid,
                    "v1.31.0",
                );
            }
        }
        let ms = machines(&m, "c1");
        let running = ms
            .iter()
            .filter(|x| x["status"]["phase"] == "Running")
            .count();
        let c = m.json(&["get", "cluster", "c1"]);
        (ms.len() == 2 && running == 2 && condition(&c, "Available").as_deref() == Some("True"))
            .then_some(())
            .ok_or_else(|| {
                format!(
                    "{running}/{} running; cluster {:#}",
                    ms.len(),
                    c["status"]["conditions"]
                )
            })
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(aws.instances(&owner_tag("c1"))).len(), 2);

    // AWSCluster: the object applied at v1beta1, with CAPA's v1beta1 status; the same object
    // at v1beta2 in slipway's contract-v1beta2 shape.
    let old = at(&m, "awsclusters", "v1beta1", INFRA, "c1");
    let new = at(&m, "awsclusters", "v1beta2", INFRA, "c1");
    assert_eq!(old["apiVersion"], "infrastructure.cluster.x-k8s.io/v1beta1");
    assert_eq!(old["metadata"]["uid"], new["metadata"]["uid"]);
    assert_eq!(
        old["metadata"]["resourceVersion"],
        new["metadata"]["resourceVersion"]
    );
    for v in [&old, &new] {
        assert_eq!(v["spec"]["region"], "us-east-1");
        assert_eq!(v["spec"]["sshKeyName"], "slipway-e2e");
        assert_eq!(
            v["spec"]["controlPlaneEndpoint"],
            new["spec"]["controlPlaneEndpoint"]
        );
    }
    assert!(
        new["spec"]["controlPlaneEndpoint"]["host"]
            .as_str()
            .unwrap()
            .ends_with(".elb.amazonaws.com")
    );
    assert_eq!(old["status"]["ready"], true);
    assert_eq!(new["status"]["initialization"]["provisioned"], true);
    let zones = old["status"]["failureDomains"].as_object().unwrap();
    let listed = new["status"]["failureDomains"].as_array().unwrap();
    assert_eq!(zones.len(), 3);
    assert_eq!(listed.len(), 3);
    for fd in listed {
        let name = fd["name"].as_str().unwrap();
        assert_eq!(zones[name]["controlPlane"], fd["controlPlane"], "{name}");
    }

    // The machine templates read back at v1beta1 exactly as CAPA's template wrote them.
    let tmpl = at(
        &m,
        "awsmachinetemplates",
        "v1beta1",
        INFRA,
        "c1-control-plane",
    );
    assert_eq!(
        tmpl["spec"]["template"]["spec"],
        serde_json::json!({"instanceType": "t3.large",
                           "ami": {"id": "ami-760aaa0f"},
                           "iamInstanceProfile": "control-plane.cluster-api-provider-aws.sigs.k8s.io",
                           "sshKeyName": "slipway-e2e"})
    );
    let tmpl2 = at(&m, "awsmachinetemplates", "v1beta2", INFRA, "c1-md-0");
    assert_eq!(
        tmpl2["spec"]["template"]["spec"]["instanceType"],
        "t3.medium"
    );

    // AWSMachines the controllers made at v1beta2 read at v1beta1 with CAPA's `ready`.
    let ams = m.items(&["get", &format!("awsmachines.v1beta1.{INFRA}")]);
    assert_eq!(ams.len(), 2);
    for am in &ams {
        assert_eq!(am["apiVersion"], "infrastructure.cluster.x-k8s.io/v1beta1");
        assert_eq!(am["status"]["ready"], true, "{am:#}");
        assert!(am["status"].get("initialization").is_none());
        assert_eq!(am["status"]["instanceState"], "running");
    }

    // The Cluster's reference reads back at v1beta1 as applied.
    let c = at(&m, "clusters", "v1beta1", "cluster.x-k8s.io", "c1");
    assert_eq!(
        c["spec"]["infrastructureRef"],
        serde_json::json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AWSCluster", "name": "c1"})
    );

    // Re-applying the v1beta1 manifest changes nothing.
    let rv = new["metadata"]["resourceVersion"].clone();
    m.ok(&["apply", "-f", "-"], Some(&manifest));
    let again = at(&m, "awsclusters", "v1beta2", INFRA, "c1");
    assert_eq!(again["metadata"]["resourceVersion"], rv);

    // And everything it made goes when the cluster is deleted.
    let out = m.kubectl_with(
        &m.kubeconfig,
        &["delete", "cluster", "c1", "--timeout=150s"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(rt.block_on(aws.instances(&owner_tag("c1"))).len(), 0);
}
