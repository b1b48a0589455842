//! ClusterClass and managed topologies end to end, driven by the real kubectl against
//! `slipway up`: Cluster API's own in-memory ClusterClass and topology Cluster template (taken
//! unmodified, `e2e/tests/fixtures/capi-upstream/`, variables filled by `slipway generate
//! cluster --from`) come up Available; a worker replica change scales; a version bump rolls the
//! control plane first, then the workers; bad classes and values are named in conditions or
//! refused. slipway's own `generate cluster --flavor topology` comes up the same way, for the
//! in-memory provider and for AWS against `moto_server` (skipped with a message when moto is
//! not installed). Needs `kubectl` on PATH (`.ci/run` installs it).

use std::process::Command;

use serde_json::Value;
use slipway_testsupport::*;

fn condition_of(obj: &Value, type_: &str) -> (String, String, String) {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("status"), s("reason"), s("message"))
        })
        .unwrap_or_default()
}

fn generate_from(m: &Mgmt, name: &str, version: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .env("KUBECONFIG", &m.kubeconfig)
        .args(["generate", "cluster", name, "--from"])
        .arg(fixture("capi-upstream/cluster-template-in-memory.yaml"))
        .args(["--kubernetes-version", version])
        .args(["--control-plane-machine-count", "1"])
        .args(["--worker-machine-count", "1"])
        .args(["-n", "default"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn versions(m: &Mgmt, cluster: &str) -> (String, Vec<String>) {
    let kcp = m.items(&[
        "get",
        "kubeadmcontrolplanes",
        "-l",
        &format!("cluster.x-k8s.io/cluster-name={cluster}"),
    ]);
    let mds = m.items(&[
        "get",
        "machinedeployments",
        "-l",
        &format!("cluster.x-k8s.io/cluster-name={cluster}"),
    ]);
    (
        kcp.first()
            .map(|k| {
                k["spec"]["version"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default(),
        mds.iter()
            .map(|d| {
                d["spec"]["template"]["spec"]["version"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect(),
    )
}

#[test]
fn upstream_in_memory_clusterclass_comes_up_scales_and_upgrades_in_order() {
    let m = Mgmt::start("topology", false);
    let class =
        std::fs::read_to_string(fixture("capi-upstream/clusterclass-in-memory.yaml")).unwrap();
    m.ok(&["apply", "-f", "-"], Some(&class));
    let cluster = generate_from(&m, "topo", "v1.31.0");
    assert!(
        cluster.contains("classRef") && cluster.contains("replicas: 1"),
        "{cluster}"
    );
    m.ok(&["apply", "-f", "-"], Some(&cluster));

    eventually(60, "ClusterClass status", || {
        let cc = m.json(&["get", "clusterclass", "in-memory"]);
        let v = condition_of(&cc, "VariablesReady");
        let r = condition_of(&cc, "RefVersionsUpToDate");
        (v.0 == "True" && r.0 == "True")
            .then_some(())
            .ok_or_else(|| format!("{:#}", cc["status"]))
    });
    wait_available(&m, "topo", 180);
    let kc = m.workload_kubeconfig("topo");
    wait_shape(&m, "topo", 1, 1, &kc);
    let c = m.json(&["get", "cluster", "topo"]);
    assert_eq!(
        condition_of(&c, "TopologyReconciled").0,
        "True",
        "{:#}",
        c["status"]
    );
    // Objects derived from the class: owned, labelled, named as upstream names them.
    let infra = m.items(&[
        "get",
        "devclusters",
        "-l",
        "topology.cluster.x-k8s.io/owned",
    ]);
    assert_eq!(infra.len(), 1);
    assert!(
        infra[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("topo-")
    );
    let mds = m.items(&[
        "get",
        "machinedeployments",
        "-l",
        "topology.cluster.x-k8s.io/deployment-name=md-0",
    ]);
    assert_eq!(mds.len(), 1);
    assert!(
        mds[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("topo-md-0-")
    );
    assert_eq!(
        m.items(&[
            "get",
            "machinehealthchecks",
            "-l",
            "cluster.x-k8s.io/cluster-name=topo"
        ])
        .len(),
        2
    );

    // A worker replica change scales.
    m.ok(&["patch", "cluster", "topo", "--type", "json", "-p",
        r#"[{"op":"replace","path":"/spec/topology/workers/machineDeployments/0/replicas","value":2}]"#], None);
    wait_shape(&m, "topo", 1, 2, &kc);

    // A version bump: the control plane first, the workers only once it is done.
    m.ok(
        &[
            "patch",
            "cluster",
            "topo",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"topology":{"version":"v1.32.0"}}}"#,
        ],
        None,
    );
    let mut seen_cp_first = false;
    eventually(240, "control plane then workers on v1.32.0", || {
        let (cp, mds) = versions(&m, "topo");
        if cp == "v1.32.0" && mds.iter().all(|v| v == "v1.31.0") {
            seen_cp_first = true;
        }
        assert!(
            !(cp == "v1.31.0" && mds.iter().any(|v| v == "v1.32.0")),
            "workers upgraded before the control plane"
        );
        let ms = machines(&m, "topo");
        let done = cp == "v1.32.0"
            && mds.iter().all(|v| v == "v1.32.0")
            && ms.len() == 3
            && ms
                .iter()
                .all(|x| x["spec"]["version"] == "v1.32.0" && x["status"]["phase"] == "Running");
        done.then_some(())
            .ok_or_else(|| format!("cp {cp}, mds {mds:?}, machines {}", ms.len()))
    });
    assert!(
        seen_cp_first,
        "the control plane was never seen upgraded ahead of the workers"
    );
    wait_available(&m, "topo", 120);
}

/// `slipway generate cluster NAME --flavor topology` with `args` and `env`.
fn generate_topology(name: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["generate", "cluster", name, "--flavor", "topology"])
        .args(args)
        .args(["--kubernetes-version", "v1.31.0", "-n", "default"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn describe(m: &Mgmt, name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .env("KUBECONFIG", &m.kubeconfig)
        .env("NO_COLOR", "1")
        .args(["describe", "cluster", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn generated_in_memory_topology_comes_up_and_describe_shows_its_class() {
    let m = Mgmt::start("topology-gen", false);
    let set = generate_topology(
        "gen",
        &[
            "--infrastructure",
            "in-memory",
            "--control-plane-machine-count",
            "1",
            "--worker-machine-count",
            "1",
        ],
        &[("IN_MEMORY_VM_STARTUP_SECONDS", "0.5")],
    );
    m.ok(&["apply", "-f", "-"], Some(&set));
    wait_available(&m, "gen", 120);
    let kc = m.workload_kubeconfig("gen");
    wait_shape(&m, "gen", 1, 1, &kc);
    // The infrastructure cluster comes from the class's InMemoryClusterTemplate; the
    // simulated delay from the class's variable, patched into the machine templates.
    let infra = m.items(&[
        "get",
        "inmemoryclusters",
        "-l",
        "topology.cluster.x-k8s.io/owned",
    ]);
    assert_eq!(infra.len(), 1);
    let templates = m.items(&[
        "get",
        "inmemorymachinetemplates",
        "-l",
        "cluster.x-k8s.io/cluster-name=gen",
    ]);
    assert_eq!(templates.len(), 2, "control plane and md-0 copies");
    for t in &templates {
        assert_eq!(
            t["spec"]["template"]["spec"]["simulation"]["vmStartupSeconds"], 0.5,
            "{t:#}"
        );
    }
    // The class reads at v1beta1 in upstream's v1beta1 shape.
    let old = m.json(&[
        "get",
        "clusterclasses.v1beta1.cluster.x-k8s.io",
        "in-memory-quick-start",
    ]);
    assert_eq!(old["apiVersion"], "cluster.x-k8s.io/v1beta1");
    assert_eq!(
        old["spec"]["infrastructure"]["ref"]["kind"], "InMemoryClusterTemplate",
        "{old:#}"
    );
    assert_eq!(
        old["spec"]["workers"]["machineDeployments"][0]["template"]["bootstrap"]["ref"]["kind"],
        "KubeadmConfigTemplate"
    );
    let tree = describe(&m, "gen");
    for want in [
        "ClusterClass default/in-memory-quick-start (topology v1.31.0)",
        "(v1.31.0, up to date)",
        "(topology md-0: v1.31.0, up to date)",
    ] {
        assert!(tree.contains(want), "{want:?} not in\n{tree}");
    }
    // A version bump shows as pending or upgrading while it rolls.
    m.ok(
        &[
            "patch",
            "cluster",
            "gen",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"topology":{"version":"v1.32.0"}}}"#,
        ],
        None,
    );
    let tree = describe(&m, "gen");
    assert!(
        tree.contains("(topology v1.32.0)")
            && (tree.contains("upgrade to v1.32.0 pending")
                || tree.contains("upgrading to v1.32.0")),
        "{tree}"
    );
}

/// Registers a Ready Node for every AWSMachine that has a providerID, as its kubelet would.
fn register_aws_nodes(m: &Mgmt, workload: &Mgmt) {
    for am in m.items(&["get", "awsmachines"]) {
        if let Some(pid) = am["spec"]["providerID"].as_str() {
            register_node(
                workload,
                am["metadata"]["name"].as_str().unwrap(),
                pid,
                "v1.31.0",
            );
        }
    }
}

#[test]
fn generated_aws_topology_comes_up_on_moto() {
    let Some(aws) = slipway_testsupport::moto::moto(&[]) else {
        return;
    };
    let workload = Mgmt::start("topology-aws-workload", true);
    let mut m = Mgmt::start("topology-aws", true);
    m.start_controller_env(&aws.env());
    m.stand_in_kubeconfig("ct", &workload);
    let set = generate_topology(
        "ct",
        &[
            "--infrastructure",
            "aws",
            "--control-plane-machine-count",
            "1",
            "--worker-machine-count",
            "1",
        ],
        &[
            ("AWS_REGION", "us-east-1"),
            ("AWS_AMI_ID", "ami-760aaa0f"),
            ("AWS_SSH_KEY_NAME", "slipway-e2e"),
            ("AWS_CONTROL_PLANE_IAM_INSTANCE_PROFILE", ""),
            ("AWS_NODE_IAM_INSTANCE_PROFILE", ""),
        ],
    );
    m.ok(&["apply", "-f", "-"], Some(&set));
    eventually(150, "2 Running machines and an Available cluster", || {
        register_aws_nodes(&m, &workload);
        let ms = machines(&m, "ct");
        let running = ms
            .iter()
            .filter(|x| x["status"]["phase"] == "Running")
            .count();
        let c = m.json(&["get", "cluster", "ct"]);
        (ms.len() == 2 && running == 2 && condition(&c, "Available").as_deref() == Some("True"))
            .then_some(())
            .ok_or_else(|| {
                format!(
                    "{running}/{} running; {:#}",
                    ms.len(),
                    c["status"]["conditions"]
                )
            })
    });
    // The AWSCluster came from the class's AWSClusterTemplate with the Cluster's variables.
    let acs = m.items(&[
        "get",
        "awsclusters",
        "-l",
        "topology.cluster.x-k8s.io/owned",
    ]);
    assert_eq!(acs.len(), 1);
    let ac = &acs[0];
    assert_eq!(ac["spec"]["region"], "us-east-1");
    assert_eq!(ac["spec"]["sshKeyName"], "slipway-e2e");
    assert_eq!(ac["spec"]["network"]["vpc"]["cidrBlock"], "10.0.0.0/16");
    assert!(
        ac["spec"]["controlPlaneEndpoint"]["host"]
            .as_str()
            .unwrap_or_default()
            .ends_with(".elb.amazonaws.com"),
        "{:#}",
        ac["spec"]
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let inventory = rt.block_on(aws.inventory(&slipway_aws::network::model::owner_tag("ct")));
    assert_eq!(inventory["vpcs"], 1, "{inventory:?}");
    assert_eq!(inventory["instances"], 2, "{inventory:?}");
    for am in m.items(&["get", "awsmachines"]) {
        assert_eq!(am["spec"]["ami"]["id"], "ami-760aaa0f", "{am:#}");
        assert_eq!(am["spec"]["instanceType"], "t3.large");
    }
}

#[test]
fn bad_classes_values_and_backends_are_named() {
    let m = Mgmt::start("topology-bad", false);
    // A class whose templates do not exist.
    let class = r#"
apiVersion: cluster.x-k8s.io/v1beta2
kind: ClusterClass
metadata: {name: broken}
spec:
  controlPlane:
    templateRef: {apiVersion: controlplane.cluster.x-k8s.io/v1beta2, kind: KubeadmControlPlaneTemplate, name: missing-cp}
  infrastructure:
    templateRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: DevClusterTemplate, name: missing-infra}
  variables:
    - name: count
      required: true
      schema: {openAPIV3Schema: {type: integer, minimum: 1}}
"#;
    m.ok(&["apply", "-f", "-"], Some(class));
    eventually(60, "RefVersionsUpToDate False naming the template", || {
        let cc = m.json(&["get", "clusterclass", "broken"]);
        let r = condition_of(&cc, "RefVersionsUpToDate");
        (r.0 == "False"
            && r.2.contains("missing-cp")
            && r.2.contains("spec.controlPlane.templateRef"))
        .then_some(())
        .ok_or_else(|| format!("{r:?}"))
    });
    let cluster = |name: &str, class: &str, vars: &str| {
        format!(
            r#"
apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata: {{name: {name}}}
spec:
  topology:
    classRef: {{name: {class}}}
    version: v1.31.0
    variables: {vars}
"#
        )
    };
    m.ok(
        &["apply", "-f", "-"],
        Some(&cluster("noclass", "absent", "[]")),
    );
    m.ok(
        &["apply", "-f", "-"],
        Some(&cluster("notemplates", "broken", "[]")),
    );
    // The upstream class has no variables: an unknown one is refused by name.
    let upstream =
        std::fs::read_to_string(fixture("capi-upstream/clusterclass-in-memory.yaml")).unwrap();
    m.ok(&["apply", "-f", "-"], Some(&upstream));
    m.ok(
        &["apply", "-f", "-"],
        Some(&cluster("badvar", "in-memory", "[{name: count, value: 0}]")),
    );
    for (name, wants) in [
        ("noclass", vec!["ClusterClass default/absent"]),
        (
            "notemplates",
            vec!["missing-infra", "spec.infrastructure.templateRef"],
        ),
        ("badvar", vec!["\"count\"", "not defined"]),
    ] {
        eventually(60, &format!("{name}: TopologyReconciled False"), || {
            let c = m.json(&["get", "cluster", name]);
            let t = condition_of(&c, "TopologyReconciled");
            (t.0 == "False" && wants.iter().all(|w| t.2.contains(w)))
                .then_some(())
                .ok_or_else(|| format!("{t:?}"))
        });
        // Nothing was made for it.
        let c = m.json(&["get", "cluster", name]);
        assert!(
            c["spec"]["controlPlaneRef"].is_null(),
            "{name}: {:#}",
            c["spec"]
        );
        assert!(
            m.items(&[
                "get",
                "machinedeployments",
                "-l",
                &format!("cluster.x-k8s.io/cluster-name={name}")
            ])
            .is_empty()
        );
    }
    // backend.docker is refused at admission with a message saying why.
    let docker = r#"
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: DevMachineTemplate
metadata: {name: docker}
spec: {template: {spec: {backend: {docker: {}}}}}
"#;
    let out = m.kubectl_with(&m.kubeconfig, &["apply", "-f", "-"], Some(docker));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("backend.docker is not supported"),
        "{}",
        text(&out.stderr)
    );
}
