use super::*;
use slipway_api::ClusterClass;

fn cluster(version: &str, cp: i32, mds: &[(&str, i32)]) -> Cluster {
    let mds: Vec<Value> = mds
        .iter()
        .map(|(n, r)| json!({"class": "default-worker", "name": n, "replicas": r}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": {"name": "c1", "namespace": "ns", "uid": "u-1"},
        "spec": {"topology": {"classRef": {"name": "in-memory"}, "version": version,
            "controlPlane": {"replicas": cp},
            "workers": {"machineDeployments": mds}}}
    }))
    .unwrap()
}

fn class() -> ClusterClass {
    let docs: Vec<Value> = serde_saphyr::from_multiple(include_str!(
        "../../../e2e/tests/fixtures/capi-upstream/clusterclass-in-memory.yaml"
    ))
    .unwrap();
    serde_json::from_value(docs.last().unwrap().clone()).unwrap()
}

fn tpl(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": kind,
        "metadata": {"name": name, "namespace": "ns"}, "spec": {"template": {"spec": spec}}})
}

fn templates(mds: &[&str], worker_spec: Value) -> Templates {
    Templates {
        infrastructure_cluster: tpl("DevClusterTemplate", "in-memory-cluster", json!({"backend": {"inMemory": {}}})),
        control_plane: json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta2",
            "kind": "KubeadmControlPlaneTemplate", "metadata": {"name": "in-memory-control-plane"},
            "spec": {"template": {"spec": {"kubeadmConfigSpec": {}}}}}),
        control_plane_machine: Some(tpl("DevMachineTemplate", "in-memory-control-plane", json!({"backend": {"inMemory": {}}}))),
        machine_deployments: mds
            .iter()
            .map(|m| {
                (
                    m.to_string(),
                    (
                        json!({"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfigTemplate",
                            "metadata": {"name": "boot"}, "spec": {"template": {"spec": {}}}}),
                        tpl("DevMachineTemplate", "worker", worker_spec.clone()),
                    ),
                )
            })
            .collect(),
    }
}

fn cp(version: &str, status: Option<&str>, replicas: i32, up: i32) -> CurrentControlPlane {
    CurrentControlPlane {
        name: "c1-cp".into(),
        version: version.into(),
        replicas,
        status_version: status.map(Into::into),
        status_replicas: replicas,
        up_to_date: up,
    }
}

fn md(version: &str, replicas: i32, up: i32) -> CurrentMachineDeployment {
    CurrentMachineDeployment {
        name: "x".into(),
        version: version.into(),
        replicas,
        status_replicas: replicas,
        up_to_date: up,
    }
}

#[test]
fn new_cluster_objects_names_labels_and_refs() {
    let c = cluster("v1.31.0", 3, &[("md-0", 2)]);
    let d = compute(
        &c,
        &class().spec,
        &templates(&["md-0"], json!({})),
        &Current::default(),
    )
    .unwrap();
    assert_eq!(d.waiting, None);
    let infra = &d.infrastructure_cluster;
    assert_eq!(infra["kind"], "DevCluster");
    let name = infra["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("c1-") && name.len() == 8, "{name}");
    assert_eq!(infra["metadata"]["labels"][OWNED], "");
    assert_eq!(infra["metadata"]["labels"][labels::CLUSTER_NAME], "c1");
    assert_eq!(infra["spec"], json!({"backend": {"inMemory": {}}}));
    assert_eq!(
        infra["metadata"]["annotations"][CLONED_FROM_NAME],
        "in-memory-cluster"
    );

    let kcp = &d.control_plane;
    assert_eq!(kcp["kind"], "KubeadmControlPlane");
    assert_eq!(kcp["spec"]["replicas"], 3);
    assert_eq!(kcp["spec"]["version"], "v1.31.0");
    let mt = d.control_plane_machine.as_ref().unwrap();
    assert_eq!(mt["kind"], "DevMachineTemplate");
    assert_eq!(
        kcp["spec"]["machineTemplate"]["spec"]["infrastructureRef"],
        json!({"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DevMachineTemplate", "name": mt["metadata"]["name"]})
    );

    let m = &d.machine_deployments[0];
    let mname = m.object["metadata"]["name"].as_str().unwrap();
    assert!(mname.starts_with("c1-md-0-"), "{mname}");
    assert_eq!(m.object["spec"]["replicas"], 2);
    assert_eq!(m.object["spec"]["template"]["spec"]["version"], "v1.31.0");
    assert_eq!(m.object["metadata"]["labels"][DEPLOYMENT_NAME], "md-0");
    assert_eq!(
        m.object["spec"]["template"]["spec"]["infrastructureRef"]["name"],
        m.infrastructure["metadata"]["name"]
    );
    assert_eq!(
        m.object["spec"]["template"]["spec"]["bootstrap"]["configRef"]["kind"],
        "KubeadmConfigTemplate"
    );

    // The class defines health checks for the control plane and the workers.
    assert_eq!(d.health_checks.len(), 2);
    assert_eq!(
        d.health_checks[0]["spec"]["selector"]["matchLabels"][labels::CONTROL_PLANE],
        ""
    );
    assert_eq!(d.health_checks[1]["metadata"]["name"], mname);

    // Same inputs, same names: a crash and a rerun never make a second object.
    let again = compute(
        &c,
        &class().spec,
        &templates(&["md-0"], json!({})),
        &Current::default(),
    )
    .unwrap();
    assert_eq!(again, d);
}

#[test]
fn template_content_change_rotates_the_template_name() {
    let c = cluster("v1.31.0", 1, &[("md-0", 1)]);
    let a = compute(
        &c,
        &class().spec,
        &templates(&["md-0"], json!({"x": 1})),
        &Current::default(),
    )
    .unwrap();
    let b = compute(
        &c,
        &class().spec,
        &templates(&["md-0"], json!({"x": 2})),
        &Current::default(),
    )
    .unwrap();
    let name = |d: &Desired| d.machine_deployments[0].infrastructure["metadata"]["name"].clone();
    assert_ne!(name(&a), name(&b));
    assert_eq!(
        b.machine_deployments[0].object["spec"]["template"]["spec"]["infrastructureRef"]["name"],
        name(&b)
    );
    // The MachineDeployment keeps its name.
    assert_eq!(
        a.machine_deployments[0].object["metadata"]["name"],
        b.machine_deployments[0].object["metadata"]["name"]
    );
}

#[test]
fn upgrade_sequencing_control_plane_then_workers_one_at_a_time() {
    let c = cluster("v1.32.0", 3, &[("md-0", 2), ("md-1", 2)]);
    let t = templates(&["md-0", "md-1"], json!({}));
    let mds = |a: CurrentMachineDeployment, b: CurrentMachineDeployment| {
        BTreeMap::from([("md-0".to_string(), a), ("md-1".to_string(), b)])
    };
    let version = |d: &Desired, i: usize| {
        d.machine_deployments[i].object["spec"]["template"]["spec"]["version"].clone()
    };
    struct Case {
        what: &'static str,
        cp: CurrentControlPlane,
        mds: BTreeMap<String, CurrentMachineDeployment>,
        cp_version: &'static str,
        md_versions: [&'static str; 2],
        reason: Option<&'static str>,
    }
    let cases = [
        Case {
            what: "bump: control plane first, workers wait",
            cp: cp("v1.31.0", Some("v1.31.0"), 3, 3),
            mds: mds(md("v1.31.0", 2, 2), md("v1.31.0", 2, 2)),
            cp_version: "v1.32.0",
            md_versions: ["v1.31.0", "v1.31.0"],
            reason: Some(reasons::CLUSTER_UPGRADING),
        },
        Case {
            what: "control plane rolling",
            cp: cp("v1.32.0", Some("v1.31.0"), 3, 1),
            mds: mds(md("v1.31.0", 2, 2), md("v1.31.0", 2, 2)),
            cp_version: "v1.32.0",
            md_versions: ["v1.31.0", "v1.31.0"],
            reason: Some(reasons::CLUSTER_UPGRADING),
        },
        Case {
            what: "control plane done: first MachineDeployment",
            cp: cp("v1.32.0", Some("v1.32.0"), 3, 3),
            mds: mds(md("v1.31.0", 2, 2), md("v1.31.0", 2, 2)),
            cp_version: "v1.32.0",
            md_versions: ["v1.32.0", "v1.31.0"],
            reason: Some(reasons::MACHINE_DEPLOYMENTS_UPGRADE_PENDING),
        },
        Case {
            what: "first rolling: second waits",
            cp: cp("v1.32.0", Some("v1.32.0"), 3, 3),
            mds: mds(md("v1.32.0", 2, 0), md("v1.31.0", 2, 2)),
            cp_version: "v1.32.0",
            md_versions: ["v1.32.0", "v1.31.0"],
            reason: Some(reasons::MACHINE_DEPLOYMENTS_UPGRADE_PENDING),
        },
        Case {
            what: "first done: second goes",
            cp: cp("v1.32.0", Some("v1.32.0"), 3, 3),
            mds: mds(md("v1.32.0", 2, 2), md("v1.31.0", 2, 2)),
            cp_version: "v1.32.0",
            md_versions: ["v1.32.0", "v1.32.0"],
            reason: None,
        },
    ];
    for case in cases {
        let current = Current {
            infrastructure_cluster: Some("c1-infra".into()),
            control_plane: Some(case.cp),
            machine_deployments: case.mds,
        };
        let d = compute(&c, &class().spec, &t, &current).unwrap();
        assert_eq!(
            d.control_plane["spec"]["version"], case.cp_version,
            "{}",
            case.what
        );
        assert_eq!(
            d.control_plane["metadata"]["name"], "c1-cp",
            "{}: names kept",
            case.what
        );
        assert_eq!(version(&d, 0), case.md_versions[0], "{}", case.what);
        assert_eq!(version(&d, 1), case.md_versions[1], "{}", case.what);
        assert_eq!(
            d.waiting.as_ref().map(|w| w.reason),
            case.reason,
            "{}",
            case.what
        );
    }

    // A second bump while the control plane still rolls the first one is held.
    let current = Current {
        infrastructure_cluster: Some("c1-infra".into()),
        control_plane: Some(cp("v1.31.0", Some("v1.30.0"), 3, 1)),
        machine_deployments: mds(md("v1.30.0", 2, 2), md("v1.30.0", 2, 2)),
    };
    let d = compute(&c, &class().spec, &t, &current).unwrap();
    assert_eq!(d.control_plane["spec"]["version"], "v1.31.0");
    assert_eq!(
        d.waiting.unwrap().reason,
        reasons::CONTROL_PLANE_UPGRADE_PENDING
    );
}

#[test]
fn unknown_class_and_bad_naming_template_are_named() {
    let mut c = cluster("v1.31.0", 1, &[("md-0", 1)]);
    c.spec
        .topology
        .as_mut()
        .unwrap()
        .workers
        .as_mut()
        .unwrap()
        .machine_deployments
        .as_mut()
        .unwrap()[0]
        .class = "nope".into();
    let e = compute(
        &c,
        &class().spec,
        &templates(&["md-0"], json!({})),
        &Current::default(),
    )
    .unwrap_err();
    assert!(e.contains("\"nope\"") && e.contains("md-0"), "{e}");

    let e = name_from("{{ .cluster.name ", "c", "r", json!({})).unwrap_err();
    assert!(e.contains("naming template"), "{e}");
    let long = "x".repeat(70);
    let n = name_from(
        "{{ .cluster.name }}-{{ .random }}",
        &long,
        "abcde",
        json!({}),
    )
    .unwrap();
    assert_eq!(n.len(), 63);
    assert!(n.ends_with("abcde"));
}
