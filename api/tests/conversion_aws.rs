//! CAPA's v1beta1 AWS kinds <-> slipway's v1beta2 ones: fixtures in the shape CAPA's v1beta1
//! templates and controllers write, and the errors for what v1beta2 cannot hold. The
//! round-trip property test over every table (these included) is in `conversion.rs`.

use serde_json::{Value, json};
use slipway_api::conversion::{self, ANNOTATION, Context};
use slipway_providers::Plugin as _;

fn hub_schema(kind: &str) -> Value {
    static SCHEMAS: std::sync::OnceLock<std::collections::BTreeMap<String, Value>> =
        std::sync::OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            slipway_aws::plugin()
                .crds()
                .into_iter()
                .filter_map(|crd| {
                    let s = slipway_apiserver::schema::version_schema(&crd, "v1beta2")?;
                    Some((crd.spec.names.kind.clone(), s))
                })
                .collect()
        })
        .get(kind)
        .cloned()
        .unwrap_or_else(|| panic!("{kind} is served"))
}

fn prune(version: &str, obj: &mut Value) {
    if version == "v1beta2" {
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        slipway_apiserver::schema::prune(&hub_schema(&kind), obj);
    }
}

fn ctx() -> Context<'static> {
    slipway_aws::conversion::register();
    Context {
        version_of: &|_, _| Some("v1beta2".into()),
        normalize: &prune,
    }
}

fn up(obj: &Value) -> Value {
    conversion::convert(obj, "v1beta2", &ctx()).expect("converts up")
}

fn down(obj: &Value) -> Value {
    conversion::convert(obj, "v1beta1", &ctx()).expect("converts down")
}

fn assert_valid_hub(obj: &Value) {
    let kind = obj["kind"].as_str().unwrap();
    let schema = slipway_apiserver::schema::Schema::new(hub_schema(kind));
    if let Err(errs) = schema.admit(obj, None) {
        panic!("{kind} v1beta2 invalid: {errs:?}\n{obj:#}");
    }
}

fn meta() -> Value {
    json!({"name": "demo", "namespace": "team-a"})
}

#[test]
fn every_aws_kind_capa_serves_at_v1beta1_is_served_and_converts() {
    ctx();
    let crds = slipway_aws::plugin().crds();
    for (group, kind) in [
        ("infrastructure.cluster.x-k8s.io", "AWSCluster"),
        ("infrastructure.cluster.x-k8s.io", "AWSMachine"),
        ("infrastructure.cluster.x-k8s.io", "AWSMachineTemplate"),
        ("infrastructure.cluster.x-k8s.io", "AWSClusterTemplate"),
        ("infrastructure.cluster.x-k8s.io", "AWSManagedMachinePool"),
        ("infrastructure.cluster.x-k8s.io", "AWSMachinePool"),
        ("controlplane.cluster.x-k8s.io", "AWSManagedControlPlane"),
    ] {
        assert!(conversion::handles(group, kind), "{kind}");
        let crd = crds
            .iter()
            .find(|c| c.spec.names.kind == kind)
            .unwrap_or_else(|| panic!("{kind} CRD"));
        let names: Vec<(&str, bool, bool)> = crd
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.served, v.storage))
            .collect();
        assert_eq!(
            names,
            [("v1beta2", true, true), ("v1beta1", true, false)],
            "{kind}"
        );
        let conv = crd.spec.conversion.as_ref().expect("conversion");
        assert_eq!(conv.strategy, "Webhook", "{kind}");
    }
    // CAPA serves AWSManagedCluster at v1beta2 only.
    let managed = crds
        .iter()
        .find(|c| c.spec.names.kind == "AWSManagedCluster")
        .unwrap();
    assert_eq!(managed.spec.versions.len(), 1);
    assert!(!conversion::handles(
        "infrastructure.cluster.x-k8s.io",
        "AWSManagedCluster"
    ));
}

#[test]
fn aws_cluster_in_capa_v1beta1_shape() {
    let v1 = json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AWSCluster", "metadata": meta(),
        "spec": {
            "region": "eu-west-1", "sshKeyName": "default",
            "network": {"vpc": {"cidrBlock": "10.0.0.0/16", "availabilityZoneUsageLimit": 3},
                        "subnets": [{"id": "subnet-1", "cidrBlock": "10.0.0.0/24", "availabilityZone": "eu-west-1a", "isPublic": true, "isIpv6": false}]},
            "controlPlaneLoadBalancer": {"scheme": "internet-facing", "crossZoneLoadBalancing": false},
            "controlPlaneEndpoint": {"host": "", "port": 0},
            "bastion": {"enabled": false},
            "s3Bucket": {"name": "b", "controlPlaneIAMInstanceProfile": "cp", "nodesIAMInstanceProfiles": ["n"]}
        },
        "status": {
            "ready": true,
            "failureDomains": {"eu-west-1a": {"controlPlane": true}, "eu-west-1b": {"controlPlane": true}},
            "networkStatus": {"securityGroups": {"node": {"id": "sg-1", "name": "demo-node",
                              "ingressRule": [{"description": "kubelet", "protocol": "tcp", "fromPort": 10250, "toPort": 10250, "sourceSecurityGroupIds": ["sg-2"]}]}},
                              "apiServerElb": {"name": "demo-apiserver", "dnsName": "lb.example", "scheme": "internet-facing",
                                               "attributes": {"idleTimeout": 600000000000_i64}}},
            "bastion": {"id": "i-1", "instanceState": "running"},
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                           {"type": "VpcReady", "status": "False", "severity": "Warning", "reason": "VpcReconciliationFailed", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        }
    });
    let v2 = up(&v1);
    assert_eq!(v2["apiVersion"], "infrastructure.cluster.x-k8s.io/v1beta2");
    assert_eq!(v2["spec"]["region"], "eu-west-1");
    assert_eq!(v2["spec"]["network"]["vpc"]["cidrBlock"], "10.0.0.0/16");
    assert_eq!(v2["status"]["initialization"], json!({"provisioned": true}));
    assert_eq!(
        v2["status"]["failureDomains"],
        json!([{"name": "eu-west-1a", "controlPlane": true}, {"name": "eu-west-1b", "controlPlane": true}])
    );
    // Conditions without reasons and with severities are no metav1 conditions: kept aside.
    assert!(v2["status"].get("conditions").is_none());
    assert!(v2["status"].get("bastion").is_none());
    assert!(v2["spec"].get("s3Bucket").is_none());
    assert_valid_hub(&v2);
    assert!(v2["metadata"]["annotations"][ANNOTATION].is_string());
    assert_eq!(down(&v2), v1);
}

#[test]
fn aws_cluster_written_at_v1beta2_reads_as_capa_v1beta1() {
    let v2 = json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSCluster", "metadata": meta(),
        "spec": {"region": "eu-west-1", "partition": "aws",
                 "network": {"additionalControlPlaneIngressRules": [{"description": "x", "protocol": "tcp", "fromPort": 1, "toPort": 2}]}},
        "status": {"initialization": {"provisioned": true},
                   "failureDomains": [{"name": "eu-west-1a", "controlPlane": true}],
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 2}],
                   "networkStatus": {"vpcId": "vpc-1"}, "observedGeneration": 2}
    });
    let v1 = down(&v2);
    assert_eq!(v1["apiVersion"], "infrastructure.cluster.x-k8s.io/v1beta1");
    assert_eq!(v1["status"]["ready"], true);
    assert_eq!(
        v1["status"]["failureDomains"],
        json!({"eu-west-1a": {"controlPlane": true}})
    );
    assert_eq!(v1["status"]["v1beta2"]["conditions"][0]["type"], "Ready");
    assert_eq!(up(&v1), v2);
}

#[test]
fn aws_machine_template_in_capa_v1beta1_shape() {
    let v1 = json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AWSMachineTemplate", "metadata": meta(),
        "spec": {"template": {"spec": {
            "instanceType": "t3.large",
            "iamInstanceProfile": "control-plane.cluster-api-provider-aws.sigs.k8s.io",
            "sshKeyName": "default",
            "ami": {"id": "ami-123"},
            "failureDomain": "eu-west-1a",
            "cloudInit": {"insecureSkipSecretsManager": true, "secretCount": 2},
            "ignition": {"version": "2.3"},
            "rootVolume": {"size": 20, "type": "gp3"},
            "additionalSecurityGroups": [{"arn": "arn:aws:ec2:sg"}, {"id": "sg-1"}]
        }}},
        "status": {"capacity": {"cpu": "2", "memory": "8Gi"}}
    });
    let v2 = up(&v1);
    let s = &v2["spec"]["template"]["spec"];
    assert_eq!(s["instanceType"], "t3.large");
    assert_eq!(
        s["iamInstanceProfile"],
        "control-plane.cluster-api-provider-aws.sigs.k8s.io"
    );
    assert_eq!(s["cloudInit"], json!({"insecureSkipSecretsManager": true}));
    assert!(s.get("failureDomain").is_none(), "no v1beta2 home here");
    assert_valid_hub(&v2);
    assert_eq!(down(&v2), v1);
}

#[test]
fn aws_cluster_template_in_capa_v1beta1_shape() {
    // As in CAPA's simple-clusterclass flavor.
    let v1 = json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AWSClusterTemplate", "metadata": meta(),
        "spec": {"template": {
            "metadata": {"labels": {"team": "a"}},
            "spec": {"region": "eu-west-1",
                "controlPlaneLoadBalancer": {"loadBalancerType": "nlb", "healthCheckProtocol": "HTTPS"}}
        }}
    });
    let v2 = up(&v1);
    assert_eq!(v2["apiVersion"], "infrastructure.cluster.x-k8s.io/v1beta2");
    assert_eq!(v2["spec"]["template"]["spec"]["region"], "eu-west-1");
    assert_eq!(
        v2["spec"]["template"]["spec"]["controlPlaneLoadBalancer"]["loadBalancerType"],
        "nlb"
    );
    assert_valid_hub(&v2);
    assert_eq!(down(&v2), v1);
}

#[test]
fn aws_machine_status_and_failures() {
    let v1 = json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AWSMachine", "metadata": meta(),
        "spec": {"instanceType": "t3.large", "providerID": "aws:///eu-west-1a/i-1", "instanceID": "i-1",
                 "subnet": {"filters": [{"name": "tag:Name", "values": ["demo-private"]}]}},
        "status": {"ready": true, "instanceState": "running", "interruptible": false,
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
                   "failureReason": "UpdateError", "failureMessage": "boom"}
    });
    let v2 = up(&v1);
    assert_eq!(v2["status"]["initialization"]["provisioned"], true);
    assert_eq!(v2["status"]["instanceState"], "running");
    assert_eq!(v2["status"]["addresses"][0]["address"], "10.0.0.5");
    assert_valid_hub(&v2);
    assert_eq!(down(&v2), v1);
}

#[test]
fn eks_kinds_in_capa_v1beta1_shape() {
    let cp = json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "AWSManagedControlPlane", "metadata": meta(),
        "spec": {"eksClusterName": "demo", "region": "eu-west-1", "version": "v1.30", "disableVPCCNI": true,
                 "vpcCni": {"env": [{"name": "ENABLE_PREFIX_DELEGATION", "value": "true"}]},
                 "endpointAccess": {"public": true}, "bastion": {"enabled": false}},
        "status": {"initialized": true, "ready": true, "failureDomains": {"eu-west-1a": {"controlPlane": false}},
                   "oidcProvider": {"arn": "arn:oidc"}}
    });
    let v2 = up(&cp);
    assert_eq!(v2["spec"]["vpcCni"], json!({"disable": true}));
    assert_eq!(
        v2["status"]["initialization"]["controlPlaneInitialized"],
        true
    );
    assert_eq!(v2["status"]["failureDomains"][0]["name"], "eu-west-1a");
    assert_valid_hub(&v2);
    assert_eq!(down(&v2), cp);

    let pool = json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AWSManagedMachinePool", "metadata": meta(),
        "spec": {"eksNodegroupName": "ng", "scaling": {"minSize": 1, "maxSize": 3}, "instanceType": "t3.medium",
                 "capacityType": "onDemand", "amiType": "AL2_x86_64"},
        "status": {"ready": true, "replicas": 2, "launchTemplateID": "lt-1"}
    });
    let v2 = up(&pool);
    assert_eq!(v2["status"]["initialization"]["provisioned"], true);
    assert_eq!(v2["status"]["replicas"], 2);
    assert_eq!(v2["spec"]["scaling"]["maxSize"], 3);
    assert_valid_hub(&v2);
    assert_eq!(down(&v2), pool);

    // CAPA's cluster-template-machinepool AWSMachinePool: `ready` is kept at v1beta2 too.
    let amp = json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AWSMachinePool", "metadata": meta(),
        "spec": {"minSize": 1, "maxSize": 10, "availabilityZones": ["eu-west-1a"],
                 "awsLaunchTemplate": {"instanceType": "t3.large", "sshKeyName": "ops",
                                       "iamInstanceProfile": "nodes.cluster-api-provider-aws.sigs.k8s.io"}},
        "status": {"ready": true, "replicas": 2, "launchTemplateID": "lt-1", "launchTemplateVersion": "3",
                   "instances": [{"instanceID": "i-1", "version": "3"}]}
    });
    let v2 = up(&amp);
    assert_eq!(v2["status"]["ready"], true);
    assert_eq!(v2["status"]["launchTemplateVersion"], "3");
    assert_eq!(v2["spec"]["awsLaunchTemplate"]["instanceType"], "t3.large");
    assert_valid_hub(&v2);
    assert_eq!(down(&v2), amp);
}

#[test]
fn a_malformed_failure_domain_map_is_an_error_naming_the_field() {
    let obj = json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AWSCluster", "metadata": meta(),
                     "spec": {"region": "eu-west-1"}, "status": {"failureDomains": ["eu-west-1a"]}});
    match conversion::convert(&obj, "v1beta2", &ctx()) {
        Err(conversion::ConversionError::Invalid { field, .. }) => {
            assert_eq!(field, "status.failureDomains")
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}
