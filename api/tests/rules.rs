//! Good and bad objects against each kind's schema and CEL rules, checked the way the API
//! server admits them (prune, default, structural validation, CEL; transition rules on update).

use serde_json::{Value, json};
use slipway_api::crds;
use slipway_apiserver::schema::{self, FieldError};

/// Every CRD the binary serves: core kinds and each provider's (as `slipway crds` lists them).
fn all_crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use slipway_providers::Plugin;
    let mut all = crds::core();
    all.extend(slipway_aws::plugin().crds());
    all.extend(slipway_kind::plugin().crds());
    all.extend(slipway_inmemory::plugin().crds());
    all
}

fn schema_of(kind: &str) -> Value {
    let crd = all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .expect(kind);
    let version = crd.spec.versions[0].name.clone();
    schema::version_schema(&crd, &version).unwrap()
}

fn admit(kind: &str, obj: Value) -> Result<Value, Vec<String>> {
    schema::admit(&schema_of(kind), &obj, None).map_err(to_strings)
}

fn update(kind: &str, old: Value, new: Value) -> Result<Value, Vec<String>> {
    schema::admit(&schema_of(kind), &new, Some(&old)).map_err(to_strings)
}

fn to_strings(errors: Vec<FieldError>) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

fn rejected_with(result: Result<Value, Vec<String>>, needle: &str) {
    match result {
        Ok(v) => panic!("accepted, expected an error containing {needle:?}: {v}"),
        Err(errs) => assert!(
            errs.iter().any(|e| e.contains(needle)),
            "{needle:?} not in {errs:#?}"
        ),
    }
}

fn cluster(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
           "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

fn machine(cluster_name: &str) -> Value {
    json!({"metadata": {"name": "m"}, "spec": {
        "clusterName": cluster_name,
        "bootstrap": {"dataSecretName": "m-bootstrap"},
        "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "InMemoryMachine", "name": "m"},
        "version": "v1.31.0"}})
}

fn machine_deployment(replicas: i64, labels: Value, selector: Value) -> Value {
    json!({"metadata": {"name": "md"}, "spec": {
        "clusterName": "c", "replicas": replicas, "selector": {"matchLabels": selector},
        "template": {"metadata": {"labels": labels}, "spec": machine("c")["spec"].clone()}}})
}

fn kcp(replicas: i64, etcd: Value) -> Value {
    json!({"metadata": {"name": "c-cp"}, "spec": {
        "replicas": replicas, "version": "v1.31.0",
        "machineTemplate": {"spec": {"infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "InMemoryMachineTemplate", "name": "t"}}},
        "kubeadmConfigSpec": {"clusterConfiguration": {"etcd": etcd}}}})
}

#[test]
fn cluster_accepts_a_full_valid_spec() {
    let spec = json!({
        "clusterNetwork": {"pods": {"cidrBlocks": ["192.168.0.0/16"]}, "services": {"cidrBlocks": ["10.128.0.0/12", "fd00::/108"]},
                           "serviceDomain": "cluster.local", "apiServerPort": 6443},
        "controlPlaneRef": {"apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": "c"},
        "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "InMemoryCluster", "name": "c"}});
    let admitted = admit("Cluster", cluster("demo-1", spec.clone())).unwrap();
    assert_eq!(admitted["spec"], spec, "nothing pruned");
}

#[test]
fn cluster_rejects_malformed_cidr_blocks() {
    for bad in ["10.0.0.0/33", "10.0.0.0", "not-a-cidr", "300.1.1.1/8"] {
        let spec = json!({"clusterNetwork": {"pods": {"cidrBlocks": ["192.168.0.0/16", bad]}}});
        rejected_with(
            admit("Cluster", cluster("c", spec)),
            "cidrBlocks must be a CIDR block",
        );
    }
}

#[test]
fn cluster_rejects_names_that_are_not_dns_labels_and_bad_ports() {
    rejected_with(
        admit("Cluster", cluster("Bad_Name", json!({}))),
        "metadata.name must be a DNS label",
    );
    rejected_with(
        admit("Cluster", cluster(&"a".repeat(64), json!({}))),
        "metadata.name must be a DNS label",
    );
    rejected_with(
        admit(
            "Cluster",
            cluster("c", json!({"clusterNetwork": {"apiServerPort": 70000}})),
        ),
        "spec.clusterNetwork.apiServerPort in body should be less than or equal to 65535",
    );
    rejected_with(
        admit(
            "Cluster",
            cluster(
                "c",
                json!({"clusterNetwork": {"serviceDomain": "Not A Domain"}}),
            ),
        ),
        "serviceDomain must be a DNS subdomain",
    );
}

#[test]
fn cluster_refs_keep_their_group_and_kind() {
    let spec = |kind: &str| json!({"infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": kind, "name": "c"}});
    let old = cluster("c", spec("AWSCluster"));
    rejected_with(
        update("Cluster", old.clone(), cluster("c", spec("KindCluster"))),
        "infrastructureRef apiGroup and kind are immutable",
    );
    assert!(update("Cluster", old.clone(), old).is_ok());
}

#[test]
fn machine_cluster_name_is_required_and_immutable() {
    assert!(admit("Machine", machine("c")).is_ok());
    let mut no_cluster = machine("c");
    no_cluster["spec"]
        .as_object_mut()
        .unwrap()
        .remove("clusterName");
    rejected_with(
        admit("Machine", no_cluster),
        "spec.clusterName: Required value",
    );
    rejected_with(
        update("Machine", machine("c"), machine("d")),
        "clusterName is immutable",
    );
    assert!(update("Machine", machine("c"), machine("c")).is_ok());
    let mut bad_version = machine("c");
    bad_version["spec"]["version"] = json!("1.31");
    rejected_with(
        admit("Machine", bad_version),
        "version must look like v1.31.0",
    );
}

#[test]
fn machine_deployment_replicas_are_not_negative_and_selector_matches_template() {
    let labels = json!({"pool": "a"});
    assert!(
        admit(
            "MachineDeployment",
            machine_deployment(0, labels.clone(), labels.clone())
        )
        .is_ok()
    );
    rejected_with(
        admit(
            "MachineDeployment",
            machine_deployment(-1, labels.clone(), labels.clone()),
        ),
        "spec.replicas in body should be greater than or equal to 0",
    );
    rejected_with(
        admit(
            "MachineDeployment",
            machine_deployment(1, labels, json!({"pool": "b"})),
        ),
        "selector does not match template labels",
    );
}

#[test]
fn machine_deployment_surge_and_unavailable_cannot_both_be_zero() {
    let labels = json!({"pool": "a"});
    let with = |surge: Value, unavail: Value| {
        let mut md = machine_deployment(1, labels.clone(), labels.clone());
        md["spec"]["rollout"] = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavail}}});
        md
    };
    rejected_with(
        admit("MachineDeployment", with(json!(0), json!(0))),
        "maxSurge and maxUnavailable cannot both be zero",
    );
    rejected_with(
        admit("MachineDeployment", with(json!("0%"), json!(0))),
        "cannot both be zero",
    );
    assert!(admit("MachineDeployment", with(json!(1), json!(0))).is_ok());
    assert!(admit("MachineDeployment", with(json!("25%"), json!("0%"))).is_ok());
    rejected_with(
        admit("MachineDeployment", with(json!(true), json!(0))),
        "must be of type integer or string",
    );
}

#[test]
fn machine_set_replicas_are_not_negative() {
    let mut ms = machine_deployment(1, json!({"a": "b"}), json!({"a": "b"}));
    ms["spec"]["replicas"] = json!(-3);
    rejected_with(
        admit("MachineSet", ms),
        "should be greater than or equal to 0",
    );
}

#[test]
fn kubeadm_control_plane_replicas_are_odd_with_stacked_etcd() {
    assert!(admit("KubeadmControlPlane", kcp(3, json!({"local": {}}))).is_ok());
    assert!(admit("KubeadmControlPlane", kcp(1, json!({}))).is_ok());
    rejected_with(
        admit("KubeadmControlPlane", kcp(2, json!({"local": {}}))),
        "replicas must be odd",
    );
    rejected_with(
        admit("KubeadmControlPlane", kcp(0, json!({}))),
        "spec.replicas in body should be greater than or equal to 1",
    );
    let external = json!({"external": {"endpoints": ["https://e:2379"], "caFile": "a", "certFile": "b", "keyFile": "c"}});
    assert!(
        admit("KubeadmControlPlane", kcp(2, external)).is_ok(),
        "even replicas are fine with external etcd"
    );
    let both = json!({"local": {}, "external": {"endpoints": [], "caFile": "a", "certFile": "b", "keyFile": "c"}});
    rejected_with(
        admit("KubeadmControlPlane", kcp(3, both)),
        "only one of etcd.local and etcd.external",
    );
}

#[test]
fn kubeadm_control_plane_max_surge_is_zero_or_one() {
    let mut obj = kcp(3, json!({}));
    obj["spec"]["rollout"] = json!({"strategy": {"rollingUpdate": {"maxSurge": 2}}});
    rejected_with(
        admit("KubeadmControlPlane", obj.clone()),
        "maxSurge must be 0 or 1",
    );
    obj["spec"]["rollout"]["strategy"]["rollingUpdate"]["maxSurge"] = json!(0);
    assert!(admit("KubeadmControlPlane", obj).is_ok());
}

#[test]
fn kubeadm_config_files_take_content_or_content_from_and_tokens_are_well_formed() {
    let cfg = |files: Value| json!({"metadata": {"name": "k"}, "spec": {"files": files, "format": "cloud-config"}});
    assert!(
        admit(
            "KubeadmConfig",
            cfg(json!([{"path": "/etc/a", "content": "x"}]))
        )
        .is_ok()
    );
    rejected_with(
        admit(
            "KubeadmConfig",
            cfg(
                json!([{"path": "/etc/a", "content": "x", "contentFrom": {"secret": {"name": "s", "key": "k"}}}]),
            ),
        ),
        "only one of content and contentFrom",
    );
    let bad_format = json!({"metadata": {"name": "k"}, "spec": {"format": "yaml"}});
    rejected_with(
        admit("KubeadmConfig", bad_format),
        "spec.format in body should match",
    );
    let bad_token = json!({"metadata": {"name": "k"}, "spec": {"initConfiguration": {"bootstrapTokens": [{"token": "short"}]}}});
    rejected_with(
        admit("KubeadmConfig", bad_token),
        "spec.initConfiguration.bootstrapTokens[0].token in body should match",
    );
}

#[test]
fn aws_cluster_checks_cidrs_tags_and_keeps_its_region() {
    let aws = |region: &str, cidr: &str| json!({"metadata": {"name": "a"}, "spec": {"region": region, "network": {"vpc": {"cidrBlock": cidr}}}});
    assert!(admit("AWSCluster", aws("eu-west-1", "10.0.0.0/16")).is_ok());
    rejected_with(
        admit("AWSCluster", aws("eu-west-1", "10.0.0.0/99")),
        "cidrBlock must be a CIDR block",
    );
    rejected_with(
        update(
            "AWSCluster",
            aws("eu-west-1", "10.0.0.0/16"),
            aws("us-east-1", "10.0.0.0/16"),
        ),
        "region is immutable",
    );
    let tags =
        json!({"metadata": {"name": "a"}, "spec": {"additionalTags": {"aws:reserved": "x"}}});
    rejected_with(admit("AWSCluster", tags), "no key may start with aws:");
    let lb = json!({"metadata": {"name": "a"}, "spec": {"controlPlaneLoadBalancer": {"loadBalancerType": "gateway"}}});
    rejected_with(
        admit("AWSCluster", lb),
        "loadBalancerType in body should match",
    );
}

#[test]
fn aws_machine_needs_an_instance_type_and_templates_are_immutable() {
    rejected_with(
        admit("AWSMachine", json!({"metadata": {"name": "m"}, "spec": {}})),
        "spec.instanceType: Required value",
    );
    let tmpl = |t: &str| json!({"metadata": {"name": "t"}, "spec": {"template": {"spec": {"instanceType": t}}}});
    assert!(admit("AWSMachineTemplate", tmpl("t3.large")).is_ok());
    rejected_with(
        update("AWSMachineTemplate", tmpl("t3.large"), tmpl("t3.xlarge")),
        "spec.template is immutable",
    );
}

#[test]
fn in_memory_machine_faults_and_delays_are_bounded() {
    let m = |faults: Value, sim: Value| json!({"metadata": {"name": "m"}, "spec": {"faults": faults, "simulation": sim}});
    assert!(
        admit(
            "InMemoryMachine",
            m(
                json!({"boot": "Fail", "message": "disk on fire"}),
                json!({"vmStartupSeconds": 1.5})
            )
        )
        .is_ok()
    );
    rejected_with(
        admit("InMemoryMachine", m(json!({"boot": "Explode"}), json!({}))),
        "spec.faults.boot in body should match",
    );
    rejected_with(
        admit(
            "InMemoryMachine",
            m(json!({}), json!({"vmStartupSeconds": -1})),
        ),
        "should be greater than or equal to 0",
    );
}

#[test]
fn cluster_profile_manager_is_immutable() {
    let cp = |m: &str| json!({"metadata": {"name": "p"}, "spec": {"clusterManager": {"name": m}}});
    assert!(admit("ClusterProfile", cp("slipway")).is_ok());
    rejected_with(
        update("ClusterProfile", cp("slipway"), cp("ocm")),
        "clusterManager is immutable",
    );
}

#[test]
fn unknown_fields_are_pruned_like_the_api_server_does() {
    let obj = cluster(
        "c",
        json!({"paused": false, "typo": 1, "clusterNetwork": {"podz": {}}}),
    );
    let s = schema_of("Cluster");
    assert_eq!(
        schema::unknown_fields(&s, &obj),
        vec!["spec.clusterNetwork.podz", "spec.typo"]
    );
}
