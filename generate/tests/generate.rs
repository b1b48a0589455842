//! `generate cluster` for every provider and flavor: complete sets whose every object passes the
//! CRD schemas and CEL rules with nothing pruned; clear errors and no output on bad input.

use std::collections::BTreeMap;

use serde_json::Value;
use slipway_apiserver::schema;
use slipway_generate::{
    self as generate, GenerateError, Infrastructure, ObjectsError, Request, objects, vars::Sources,
};
use slipway_providers::Plugins;

/// The providers the binary carries, as the binary lists them.
fn plugins() -> Plugins {
    Plugins::default()
        .with(slipway_aws::plugin())
        .with(slipway_kind::plugin())
        .with(slipway_inmemory::plugin())
}

/// The `generate cluster` entry named `name`.
fn infra(name: &str) -> Infrastructure {
    plugins()
        .infrastructures()
        .into_iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no infrastructure {name}"))
}

fn request(infra: Infrastructure, flavor: Option<&str>, vars: &[(&str, &str)]) -> Request {
    let mut flags: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    flags
        .entry("CLUSTER_NAME".into())
        .or_insert_with(|| "demo".into());
    Request {
        infrastructure: infra,
        flavor: flavor.map(str::to_string),
        from: None,
        labels: vec![],
        sources: Sources {
            flags,
            ..Default::default()
        },
        config_hint: "/nonexistent/config.yaml".into(),
    }
}

fn required_vars(infra: &Infrastructure) -> Vec<(&'static str, &'static str)> {
    match infra.name {
        "aws" | "aws-eks" => vec![
            ("AWS_REGION", "eu-west-1"),
            ("AWS_SSH_KEY_NAME", "ops"),
            ("KUBERNETES_VERSION", "v1.31.0"),
        ],
        _ => vec![],
    }
}

/// Validates one object against its CRD; returns the kind.
fn assert_valid(obj: &Value) -> String {
    let kind = obj["kind"].as_str().unwrap().to_string();
    let api_version = obj["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap();
    // Building every CRD is slow: once per test binary.
    static CRDS: std::sync::OnceLock<
        Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>,
    > = std::sync::OnceLock::new();
    let crds = CRDS.get_or_init(|| {
        let mut crds = slipway_api::crds::core();
        crds.extend(plugins().crds());
        crds
    });
    let crd = crds
        .iter()
        .find(|c| c.spec.group == group && c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD serves {api_version} {kind}"));
    let s = schema::version_schema(crd, version)
        .unwrap_or_else(|| panic!("{kind}: version {version} not served"));
    let pruned = schema::unknown_fields(&s, obj);
    assert!(
        pruned.is_empty(),
        "{kind}: the schema would prune {pruned:?}"
    );
    if let Err(errs) = schema::admit(&s, obj, None) {
        panic!(
            "{kind} rejected: {:#?}",
            errs.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
    }
    kind
}

fn kinds_of(out: &str) -> Vec<String> {
    objects(out).unwrap().iter().map(assert_valid).collect()
}

#[test]
fn every_flavor_renders_a_complete_valid_set() {
    let all = plugins().infrastructures();
    assert_eq!(
        all.iter().map(|i| i.name).collect::<Vec<_>>(),
        ["aws", "aws-eks", "kind", "in-memory"]
    );
    for infra in &all {
        for flavor in infra.flavors {
            let workers: &[&str] = if infra.name == "aws-eks" {
                &["0"]
            } else {
                &["0", "2"]
            };
            for w in workers {
                let mut vars = required_vars(infra);
                vars.push(("WORKER_MACHINE_COUNT", w));
                vars.push(("CONTROL_PLANE_MACHINE_COUNT", "3"));
                let out = generate::generate(&request(infra.clone(), Some(flavor), &vars))
                    .unwrap_or_else(|e| panic!("{} {flavor} workers={w}: {e}", infra.name));
                let kinds = kinds_of(&out);
                let (infra_cluster, machine_template) = match infra.name {
                    "aws" => ("AWSCluster", "AWSMachineTemplate"),
                    "aws-eks" => ("AWSManagedCluster", ""),
                    "kind" => ("KindCluster", "KindMachineTemplate"),
                    "in-memory" => ("InMemoryCluster", "InMemoryMachineTemplate"),
                    other => panic!("unexpected infrastructure {other}"),
                };
                let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
                assert_eq!(count("Cluster"), 1, "{kinds:?}");
                if *flavor == "topology" {
                    // The class and its templates; the topology controller makes the rest.
                    for k in [
                        "ClusterClass",
                        "KubeadmControlPlaneTemplate",
                        "KubeadmConfigTemplate",
                        &format!("{infra_cluster}Template"),
                    ] {
                        assert_eq!(count(k), 1, "{k}: {kinds:?}");
                    }
                    assert_eq!(count(machine_template), 2, "{kinds:?}");
                    for k in [infra_cluster, "KubeadmControlPlane", "MachineDeployment"] {
                        assert_eq!(count(k), 0, "{k}: {kinds:?}");
                    }
                    continue;
                }
                assert_eq!(count(infra_cluster), 1, "{kinds:?}");
                if infra.name == "aws-eks" {
                    assert_eq!(count("AWSManagedControlPlane"), 1, "{kinds:?}");
                    continue;
                }
                assert_eq!(count("KubeadmControlPlane"), 1, "{kinds:?}");
                let with_workers = *w != "0";
                if *flavor == "machinepool" {
                    // One MachinePool with its KubeadmConfig and infrastructure pool instead.
                    assert_eq!(count(machine_template), 1, "{kinds:?}");
                    assert_eq!(count("MachineDeployment"), 0, "{kinds:?}");
                    let pool = match infra.name {
                        "aws" => "AWSMachinePool",
                        _ => "InMemoryMachinePool",
                    };
                    for k in ["MachinePool", "KubeadmConfig", pool] {
                        assert_eq!(count(k), usize::from(with_workers), "{k}: {kinds:?}");
                    }
                    continue;
                }
                assert_eq!(
                    count(machine_template),
                    1 + usize::from(with_workers),
                    "{kinds:?}"
                );
                assert_eq!(
                    count("MachineDeployment"),
                    usize::from(with_workers),
                    "{kinds:?}"
                );
                assert_eq!(
                    count("KubeadmConfigTemplate"),
                    usize::from(with_workers),
                    "{kinds:?}"
                );
            }
        }
    }
}

#[test]
fn the_aws_machinepool_flavor_is_capas_machinepool_template() {
    for (workers, max) in [("3", 10), ("12", 12)] {
        let mut vars = required_vars(&infra("aws"));
        vars.push(("WORKER_MACHINE_COUNT", workers));
        vars.push(("AWS_AMI_ID", "ami-123"));
        let docs = objects(
            &generate::generate(&request(infra("aws"), Some("machinepool"), &vars)).unwrap(),
        )
        .unwrap();
        for d in &docs {
            assert_valid(d);
        }
        let get = |kind: &str| {
            docs.iter()
                .find(|d| d["kind"] == kind)
                .unwrap_or_else(|| panic!("no {kind}"))
        };
        let mp = get("MachinePool");
        assert_eq!(mp["metadata"]["name"], "demo-mp-0");
        assert_eq!(mp["spec"]["replicas"], workers.parse::<i64>().unwrap());
        assert_eq!(mp["spec"]["template"]["spec"]["version"], "v1.31.0");
        let t = &mp["spec"]["template"]["spec"];
        assert_eq!(t["bootstrap"]["configRef"]["kind"], "KubeadmConfig");
        assert_eq!(t["infrastructureRef"]["kind"], "AWSMachinePool");
        let find = |kind: &str, name: &Value| {
            docs.iter()
                .find(|d| d["kind"] == kind && d["metadata"]["name"] == *name)
                .unwrap_or_else(|| panic!("{kind}/{name} does not resolve"))
        };
        let cfg = find("KubeadmConfig", &t["bootstrap"]["configRef"]["name"]);
        let reg = &cfg["spec"]["joinConfiguration"]["nodeRegistration"];
        assert_eq!(reg["name"], "{{ ds.meta_data.local_hostname }}");
        assert_eq!(reg["kubeletExtraArgs"][0]["value"], "external");
        let pool = find("AWSMachinePool", &t["infrastructureRef"]["name"]);
        assert_eq!(pool["spec"]["minSize"], 0);
        assert_eq!(pool["spec"]["maxSize"], max);
        let lt = &pool["spec"]["awsLaunchTemplate"];
        assert_eq!(lt["instanceType"], "t3.large");
        assert_eq!(
            lt["iamInstanceProfile"],
            "nodes.cluster-api-provider-aws.sigs.k8s.io"
        );
        assert_eq!(lt["sshKeyName"], "ops");
        assert_eq!(lt["ami"]["id"], "ami-123");
        // No MachineDeployment and no worker machine template: the pool replaces them.
        assert!(!docs.iter().any(|d| d["kind"] == "MachineDeployment"));
        assert_eq!(
            docs.iter()
                .filter(|d| d["kind"] == "AWSMachineTemplate")
                .count(),
            1
        );
    }
}

#[test]
fn demo_in_memory_set_carries_counts_version_and_references_that_resolve() {
    let vars = [
        ("CONTROL_PLANE_MACHINE_COUNT", "3"),
        ("WORKER_MACHINE_COUNT", "2"),
        ("KUBERNETES_VERSION", "v1.31.0"),
    ];
    let mut req = request(infra("in-memory"), None, &vars);
    req.labels = vec![
        "environment=prod".into(),
        "topology.kubernetes.io/region=eu-west-1".into(),
    ];
    let docs = objects(&generate::generate(&req).unwrap()).unwrap();
    let by_kind_name: BTreeMap<(String, String), &Value> = docs
        .iter()
        .map(|d| {
            (
                (
                    d["kind"].as_str().unwrap().into(),
                    d["metadata"]["name"].as_str().unwrap().into(),
                ),
                d,
            )
        })
        .collect();
    let get = |kind: &str, name: &str| {
        by_kind_name
            .get(&(kind.into(), name.into()))
            .copied()
            .unwrap_or_else(|| panic!("{kind}/{name}"))
    };
    let cluster = get("Cluster", "demo");
    assert_eq!(cluster["metadata"]["labels"]["environment"], "prod");
    assert_eq!(
        cluster["metadata"]["labels"]["topology.kubernetes.io/region"],
        "eu-west-1"
    );
    let resolve = |r: &Value| get(r["kind"].as_str().unwrap(), r["name"].as_str().unwrap());
    let kcp = resolve(&cluster["spec"]["controlPlaneRef"]);
    resolve(&cluster["spec"]["infrastructureRef"]);
    assert_eq!(kcp["spec"]["replicas"], 3);
    assert_eq!(kcp["spec"]["version"], "v1.31.0");
    resolve(&kcp["spec"]["machineTemplate"]["spec"]["infrastructureRef"]);
    let md = get("MachineDeployment", "demo-md-0");
    assert_eq!(md["spec"]["replicas"], 2);
    resolve(&md["spec"]["template"]["spec"]["infrastructureRef"]);
    resolve(&md["spec"]["template"]["spec"]["bootstrap"]["configRef"]);
    for d in &docs {
        assert_eq!(d["metadata"]["namespace"], "default");
        assert_eq!(
            d["metadata"]["labels"]["cluster.x-k8s.io/cluster-name"],
            "demo"
        );
    }
}

#[test]
fn aws_without_region_and_key_lists_every_missing_variable_and_renders_nothing() {
    let err = generate::generate(&request(
        infra("aws"),
        None,
        &[("KUBERNETES_VERSION", "v1.31.0")],
    ))
    .unwrap_err();
    match &err {
        GenerateError::MissingVariables { names, .. } => {
            assert_eq!(names, &["AWS_REGION", "AWS_SSH_KEY_NAME"])
        }
        other => panic!("{other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("AWS_REGION") && msg.contains("/nonexistent/config.yaml"),
        "{msg}"
    );
    let err = generate::generate(&request(infra("aws"), None, &[])).unwrap_err();
    assert!(
        err.to_string()
            .contains("KUBERNETES_VERSION, AWS_REGION, AWS_SSH_KEY_NAME"),
        "{err}"
    );
}

#[test]
fn bad_names_counts_and_flavors_are_refused_with_the_variable_named() {
    let table: &[(&[(&str, &str)], &str)] = &[
        (
            &[("CLUSTER_NAME", "Demo_1")],
            "CLUSTER_NAME=\"Demo_1\": must be a DNS label",
        ),
        (
            &[("CLUSTER_NAME", "a.b")],
            "CLUSTER_NAME=\"a.b\": must be a DNS label",
        ),
        (
            &[("NAMESPACE", "kube system")],
            "NAMESPACE=\"kube system\": must be a DNS label",
        ),
        (
            &[("CONTROL_PLANE_MACHINE_COUNT", "2")],
            "CONTROL_PLANE_MACHINE_COUNT=\"2\": must be odd",
        ),
        (
            &[("WORKER_MACHINE_COUNT", "-1")],
            "WORKER_MACHINE_COUNT=\"-1\"",
        ),
        (
            &[("KUBERNETES_VERSION", "1.31")],
            "KUBERNETES_VERSION=\"1.31\": must be a Kubernetes version",
        ),
        (
            &[("POD_CIDR", "10.0.0.0/99")],
            "POD_CIDR=\"10.0.0.0/99\": must be a CIDR block",
        ),
        (
            &[("IN_MEMORY_VM_STARTUP_SECONDS", "soon")],
            "IN_MEMORY_VM_STARTUP_SECONDS=\"soon\"",
        ),
    ];
    for (vars, want) in table {
        let err = generate::generate(&request(infra("in-memory"), None, vars))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{vars:?}: {err}");
    }
    let err = generate::generate(&request(
        infra("aws"),
        Some("nope"),
        &required_vars(&infra("aws")),
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "--flavor \"nope\": the aws provider has no such flavor; available: default, machinepool, topology"
    );
    let mut req = request(infra("in-memory"), None, &[]);
    req.labels = vec!["bad label=x".into()];
    assert!(
        generate::generate(&req)
            .unwrap_err()
            .to_string()
            .starts_with("--label \"bad label=x\"")
    );
}

#[test]
fn hostile_values_cannot_break_the_yaml() {
    let hostile = "x\"\n: {evil: [1, 2}\n---\nkind: Secret #";
    let mut vars = required_vars(&infra("aws"));
    vars.retain(|(k, _)| *k != "AWS_SSH_KEY_NAME");
    vars.push(("AWS_SSH_KEY_NAME", hostile));
    vars.push(("AWS_NODE_MACHINE_TYPE", "{{ x }}"));
    vars.push(("WORKER_MACHINE_COUNT", "1"));
    let out = generate::generate(&request(infra("aws"), None, &vars)).unwrap();
    let docs = objects(&out).unwrap();
    let aws = docs.iter().find(|d| d["kind"] == "AWSCluster").unwrap();
    assert_eq!(
        aws["spec"]["sshKeyName"], hostile,
        "value survives verbatim"
    );
    assert!(
        docs.iter().all(|d| d["kind"] != "Secret"),
        "no document injected"
    );
    let md_tmpl = docs
        .iter()
        .find(|d| d["kind"] == "AWSMachineTemplate" && d["metadata"]["name"] == "demo-md-0")
        .unwrap();
    assert_eq!(
        md_tmpl["spec"]["template"]["spec"]["instanceType"],
        "{{ x }}"
    );
}

#[test]
fn eks_workers_are_a_managed_node_group() {
    let mut vars = required_vars(&infra("aws-eks"));
    vars.push(("WORKER_MACHINE_COUNT", "2"));
    let out = generate::generate(&request(infra("aws-eks"), None, &vars)).unwrap();
    let docs = objects(&out).unwrap();
    let pool = docs
        .iter()
        .find(|d| d["kind"] == "AWSManagedMachinePool")
        .expect("a node group");
    // CAPA's shape: a MachinePool carries the size and references the node group's pool.
    assert!(pool["spec"].get("replicas").is_none(), "{pool:#}");
    let mp = docs
        .iter()
        .find(|d| d["kind"] == "MachinePool")
        .expect("a MachinePool");
    assert_eq!(mp["spec"]["replicas"], 2);
    assert_eq!(
        mp["spec"]["template"]["spec"]["infrastructureRef"]["kind"],
        "AWSManagedMachinePool"
    );
    assert_eq!(
        mp["spec"]["template"]["spec"]["infrastructureRef"]["name"],
        pool["metadata"]["name"]
    );
    assert_eq!(
        mp["spec"]["template"]["spec"]["bootstrap"]["dataSecretName"],
        ""
    );
    assert_eq!(pool["spec"]["eksNodegroupName"], "default_demo-pool-0");
    assert_eq!(pool["spec"]["instanceType"], "t3.large");
    assert_eq!(
        pool["metadata"]["labels"]["cluster.x-k8s.io/cluster-name"],
        "demo"
    );
    assert!(!docs.iter().any(|d| d["kind"] == "MachineDeployment"));
    let out = generate::generate(&request(
        infra("aws-eks"),
        None,
        &required_vars(&infra("aws-eks")),
    ))
    .unwrap();
    let docs = objects(&out).unwrap();
    assert!(!docs.iter().any(|d| d["kind"] == "AWSManagedMachinePool"));
    let cp = docs
        .into_iter()
        .find(|d| d["kind"] == "AWSManagedControlPlane")
        .unwrap();
    assert_eq!(cp["spec"]["version"], "v1.31");
    assert_eq!(cp["spec"]["eksClusterName"], "default_demo");
}

#[test]
fn list_variables_separates_required_from_optional_with_defaults() {
    let out = generate::list_variables(&request(infra("aws"), None, &[])).unwrap();
    let (required, optional) = out.split_once("Optional Variables:").unwrap();
    for name in [
        "AWS_REGION",
        "AWS_SSH_KEY_NAME",
        "KUBERNETES_VERSION",
        "CLUSTER_NAME",
    ] {
        assert!(
            required.contains(&format!("- {name}\n")),
            "{name} required:\n{out}"
        );
    }
    assert!(
        optional.contains("AWS_NODE_MACHINE_TYPE")
            && optional.contains("(defaults to \"t3.large\")"),
        "{out}"
    );
    let faulty =
        generate::list_variables(&request(infra("in-memory"), Some("faulty"), &[])).unwrap();
    assert!(faulty.contains("IN_MEMORY_FAULT_MESSAGE"));
}

const FROM: &str = "apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata:
  name: ${CLUSTER_NAME}
  namespace: ${NAMESPACE:=default}
spec:
  clusterNetwork:
    pods:
      cidrBlocks: [\"${POD_CIDR:-192.168.0.0/16}\"]
---
apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1
kind: InMemoryCluster
metadata:
  name: ${CLUSTER_NAME}
  namespace: ${NAMESPACE:=default}
spec: {}
";

#[test]
fn from_template_substitutes_lists_and_reports_missing_variables() {
    let mut req = request(infra("in-memory"), None, &[]);
    req.from = Some(FROM.into());
    let out = generate::generate(&req).unwrap();
    assert_eq!(kinds_of(&out), vec!["Cluster", "InMemoryCluster"]);
    assert!(out.contains("name: demo\n") && out.contains("192.168.0.0/16"));

    let listed = generate::list_variables(&req).unwrap();
    assert!(
        listed.contains("Required Variables:\n  - CLUSTER_NAME\n"),
        "{listed}"
    );
    assert!(listed.contains("(defaults to \"default\")"), "{listed}");

    req.from = Some(format!(
        "{FROM}---\nkind: X\napiVersion: v1\nmetadata: {{name: ${{NEEDED}}-${{ALSO}}}}\n"
    ));
    let err = generate::generate(&req).unwrap_err().to_string();
    assert!(err.starts_with("missing variables: NEEDED, ALSO"), "{err}");
}

#[test]
fn from_template_gets_labels_on_the_cluster_and_refuses_broken_output() {
    let mut req = request(infra("in-memory"), None, &[]);
    req.from = Some(FROM.into());
    req.labels = vec!["environment=staging".into()];
    let docs = objects(&generate::generate(&req).unwrap()).unwrap();
    assert_eq!(docs[0]["metadata"]["labels"]["environment"], "staging");
    assert!(docs[1]["metadata"].get("labels").is_none());
    docs.iter().for_each(|d| {
        assert_valid(d);
    });

    req.labels.clear();
    req.sources
        .flags
        .insert("POD_CIDR".into(), "a\"]\n  broken: [".into());
    let err = generate::generate(&req).unwrap_err().to_string();
    assert!(err.starts_with("--from template: not valid YAML"), "{err}");
    req.sources
        .flags
        .insert("CLUSTER_NAME".into(), "UPPER".into());
    assert!(
        generate::generate(&req)
            .unwrap_err()
            .to_string()
            .starts_with("CLUSTER_NAME=\"UPPER\"")
    );
}

#[test]
fn objects_says_which_document_is_not_an_object() {
    assert!(matches!(objects(""), Err(ObjectsError::Empty)));
    assert!(matches!(objects("a: [\n"), Err(ObjectsError::Yaml(_))));
    let two = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: ConfigMap\n";
    let e = objects(two).unwrap_err();
    assert!(
        matches!(e, ObjectsError::NotAnObject { document: 2 }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "document 2 is not an object with apiVersion, kind and metadata.name"
    );
}

/// CAPA's `templates/cluster-template.yaml` shape: counts and namespace are left to clusterctl.
const CAPA_SHAPED: &str = "apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata:
  name: \"${CLUSTER_NAME}\"
  namespace: \"${NAMESPACE}\"
spec: {}
---
apiVersion: controlplane.cluster.x-k8s.io/v1beta1
kind: KubeadmControlPlane
metadata:
  name: \"${CLUSTER_NAME}-control-plane\"
spec:
  replicas: ${CONTROL_PLANE_MACHINE_COUNT}
  version: \"${KUBERNETES_VERSION}\"
---
apiVersion: cluster.x-k8s.io/v1beta1
kind: MachineDeployment
metadata:
  name: \"${CLUSTER_NAME}-md-0\"
spec:
  replicas: ${WORKER_MACHINE_COUNT}
";

#[test]
fn from_template_counts_and_namespace_default_as_clusterctl() {
    let mut req = request(
        infra("in-memory"),
        None,
        &[("KUBERNETES_VERSION", "v1.31.0")],
    );
    req.from = Some(CAPA_SHAPED.into());
    let dir = std::env::temp_dir().join(format!("slipway-gen-capa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: mgmt\ncontexts:\n- name: mgmt\n  context: {cluster: mgmt, namespace: capi-clusters}\n",
    )
    .unwrap();
    req.sources
        .env
        .insert("KUBECONFIG".into(), kubeconfig.display().to_string());
    let out = generate::generate(&req).unwrap();
    let docs = generate::objects(&out).unwrap();
    assert_eq!(docs[0]["metadata"]["namespace"], "capi-clusters");
    assert_eq!(docs[1]["spec"]["replicas"], 1);
    assert_eq!(docs[2]["spec"]["replicas"], 0);
    let listed = generate::list_variables(&req).unwrap();
    assert!(
        listed.contains("CONTROL_PLANE_MACHINE_COUNT (defaults to \"1\")"),
        "{listed}"
    );

    // A value given wins over clusterctl's default; without a kubeconfig NAMESPACE is default.
    req.sources.env.clear();
    req.sources
        .flags
        .insert("WORKER_MACHINE_COUNT".into(), "3".into());
    let docs = generate::objects(&generate::generate(&req).unwrap()).unwrap();
    assert_eq!(docs[0]["metadata"]["namespace"], "default");
    assert_eq!(docs[2]["spec"]["replicas"], 3);
    let _ = std::fs::remove_dir_all(dir);
}

/// The topology flavor's output, planned by the topology controller (pure, no I/O): every
/// class reference resolves to a generated template, the Cluster's values pass the class's
/// variable schemas, the patches land, and every object the controller would make passes its
/// CRD schema.
fn plan_topology(
    infra_name: &str,
    vars: &[(&str, &str)],
) -> slipway_controller::topology::desired::Desired {
    use slipway_controller::topology::{self, desired};
    let out = generate::generate(&request(infra(infra_name), Some("topology"), vars))
        .unwrap_or_else(|e| panic!("{infra_name} topology: {e}"));
    let docs = objects(&out).unwrap();
    let find = |kind: &str, name: &str| -> Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("the class names {kind} {name}, which is not generated"))
    };
    let by_ref = |r: &Value| find(r["kind"].as_str().unwrap(), r["name"].as_str().unwrap());
    let mut cluster: slipway_api::Cluster =
        serde_json::from_value(find("Cluster", "demo")).unwrap();
    cluster.metadata.uid = Some("0c5b0b3e-uid".into());
    let class_doc = find(
        "ClusterClass",
        cluster
            .spec
            .topology
            .as_ref()
            .unwrap()
            .class_ref
            .name
            .as_str(),
    );
    let class: slipway_api::ClusterClass = serde_json::from_value(class_doc.clone()).unwrap();
    let spec = &class_doc["spec"];
    let mut templates = desired::Templates {
        infrastructure_cluster: by_ref(&spec["infrastructure"]["templateRef"]),
        control_plane: by_ref(&spec["controlPlane"]["templateRef"]),
        control_plane_machine: Some(by_ref(
            &spec["controlPlane"]["machineInfrastructure"]["templateRef"],
        )),
        ..Default::default()
    };
    let md_class = &spec["workers"]["machineDeployments"][0];
    for md in cluster
        .spec
        .topology
        .iter()
        .flat_map(|t| t.workers.iter())
        .flat_map(|w| w.machine_deployments.iter().flatten())
    {
        assert_eq!(md.class, md_class["class"]);
        templates.machine_deployments.insert(
            md.name.clone(),
            (
                by_ref(&md_class["bootstrap"]["templateRef"]),
                by_ref(&md_class["infrastructure"]["templateRef"]),
            ),
        );
    }
    let ns = class.metadata.namespace.clone().unwrap();
    let d = topology::plan(&cluster, &class, &ns, templates, &Default::default())
        .unwrap_or_else(|e| panic!("{infra_name}: the topology controller refuses it: {e}"));
    let mut made = vec![&d.infrastructure_cluster, &d.control_plane];
    made.extend(d.control_plane_machine.iter());
    for md in &d.machine_deployments {
        made.extend([&md.object, &md.bootstrap, &md.infrastructure]);
    }
    made.extend(d.health_checks.iter());
    for o in made {
        assert_valid(o);
    }
    d
}

#[test]
fn topology_flavor_is_a_class_the_topology_controller_builds_clusters_from() {
    let d = plan_topology(
        "in-memory",
        &[
            ("WORKER_MACHINE_COUNT", "2"),
            ("CONTROL_PLANE_MACHINE_COUNT", "3"),
            ("IN_MEMORY_VM_STARTUP_SECONDS", "1.5"),
            ("IN_MEMORY_API_SERVER_STARTUP_SECONDS", "2"),
        ],
    );
    assert_eq!(d.infrastructure_cluster["kind"], "InMemoryCluster");
    assert_eq!(d.control_plane["spec"]["replicas"], 3);
    assert_eq!(d.control_plane["spec"]["version"], "v1.31.0");
    let cp_sim =
        &d.control_plane_machine.as_ref().unwrap()["spec"]["template"]["spec"]["simulation"];
    assert_eq!(cp_sim["vmStartupSeconds"], 1.5);
    assert_eq!(cp_sim["apiServerStartupSeconds"], 2.0);
    assert_eq!(d.machine_deployments.len(), 1);
    let md = &d.machine_deployments[0];
    assert_eq!(md.object["spec"]["replicas"], 2);
    let w_sim = &md.infrastructure["spec"]["template"]["spec"]["simulation"];
    assert_eq!(w_sim["vmStartupSeconds"], 1.5);
    assert!(w_sim.get("apiServerStartupSeconds").is_none(), "{w_sim}");
    assert_eq!(d.health_checks.len(), 2);

    let mut vars = required_vars(&infra("aws"));
    vars.extend([
        ("WORKER_MACHINE_COUNT", "1"),
        ("AWS_NODE_MACHINE_TYPE", "m5.xlarge"),
        ("AWS_VPC_CIDR", "10.9.0.0/16"),
    ]);
    let d = plan_topology("aws", &vars);
    let c = &d.infrastructure_cluster;
    assert_eq!(c["kind"], "AWSCluster");
    assert_eq!(c["spec"]["region"], "eu-west-1");
    assert_eq!(c["spec"]["sshKeyName"], "ops");
    assert_eq!(c["spec"]["network"]["vpc"]["cidrBlock"], "10.9.0.0/16");
    assert_eq!(
        c["spec"]["controlPlaneLoadBalancer"]["loadBalancerType"],
        "nlb"
    );
    let cp = &d.control_plane_machine.as_ref().unwrap()["spec"]["template"]["spec"];
    assert_eq!(cp["instanceType"], "t3.large");
    assert_eq!(
        cp["iamInstanceProfile"],
        "control-plane.cluster-api-provider-aws.sigs.k8s.io"
    );
    assert!(cp.get("ami").is_none(), "no AMI given: looked up by name");
    let w = &d.machine_deployments[0].infrastructure["spec"]["template"]["spec"];
    assert_eq!(w["instanceType"], "m5.xlarge");
    assert_eq!(w["sshKeyName"], "ops");

    vars.push(("AWS_AMI_ID", "ami-760aaa0f"));
    let d = plan_topology("aws", &vars);
    let w = &d.machine_deployments[0].infrastructure["spec"]["template"]["spec"];
    assert_eq!(w["ami"]["id"], "ami-760aaa0f");
}

#[test]
fn topology_classes_of_two_clusters_are_the_same_objects() {
    // Clusters generated with different values share one class: applying the second set
    // leaves the first cluster's class and templates as they were.
    let one = |name: &str, w: &str| {
        let mut req = request(
            infra("in-memory"),
            Some("topology"),
            &[
                ("WORKER_MACHINE_COUNT", w),
                ("IN_MEMORY_VM_STARTUP_SECONDS", w),
            ],
        );
        req.sources.flags.insert("CLUSTER_NAME".into(), name.into());
        objects(&generate::generate(&req).unwrap())
            .unwrap()
            .into_iter()
            .filter(|d| d["kind"] != "Cluster")
            .collect::<Vec<_>>()
    };
    assert_eq!(one("a", "1"), one("b", "3"));
}
