//! v1beta1 <-> v1beta2 conversion: fixtures in upstream's v1beta1 shape per kind, the errors
//! for what v1beta2 cannot hold, and round trips over generated objects.

use serde_json::{Value, json};
use slipway_api::conversion::{self, ANNOTATION, Context, ConversionError, ops::Op};
use slipway_providers::Plugin as _;

/// The v1beta2 schema of each kind, for pruning (as the plane does) and validation.
fn hub_schema(kind: &str) -> Value {
    static SCHEMAS: std::sync::OnceLock<std::collections::BTreeMap<String, Value>> =
        std::sync::OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            slipway_api::crds::core()
                .into_iter()
                .chain(slipway_aws::plugin().crds())
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

fn versions(group: &str, kind: &str) -> Option<String> {
    match (group, kind) {
        ("infrastructure.cluster.x-k8s.io", "InMemoryCluster" | "InMemoryMachineTemplate") => {
            Some("v1alpha1".into())
        }
        (g, _) if g.ends_with("cluster.x-k8s.io") => Some("v1beta2".into()),
        _ => None,
    }
}

fn prune(version: &str, obj: &mut Value) {
    if version == "v1beta2" {
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        slipway_apiserver::schema::prune(&hub_schema(&kind), obj);
    }
}

fn ctx() -> Context<'static> {
    Context {
        version_of: &versions,
        normalize: &prune,
    }
}

fn up(obj: &Value) -> Value {
    conversion::convert(obj, "v1beta2", &ctx()).expect("converts up")
}

fn down(obj: &Value) -> Value {
    conversion::convert(obj, "v1beta1", &ctx()).expect("converts down")
}

fn without_annotation(mut v: Value) -> Value {
    if let Some(a) = v
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(ANNOTATION);
        if a.is_empty() {
            v["metadata"].as_object_mut().unwrap().remove("annotations");
        }
    }
    v
}

/// The v1beta2 form is valid against the served v1beta2 schema.
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
fn cluster_in_upstream_v1beta1_shape() {
    let v1 = json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster", "metadata": meta(),
        "spec": {
            "clusterNetwork": {"pods": {"cidrBlocks": ["192.168.0.0/16"]}},
            "controlPlaneRef": {"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "KubeadmControlPlane", "name": "demo-cp"},
            "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "InMemoryCluster", "name": "demo", "namespace": "team-a"}
        },
        "status": {
            "infrastructureReady": true, "controlPlaneReady": false, "phase": "Provisioned",
            "failureDomains": {"us-east-1a": {"controlPlane": true}, "us-east-1b": {"controlPlane": false, "attributes": {"t": "x"}}},
            "conditions": [{"type": "Ready", "status": "False", "severity": "Warning", "reason": "Waiting", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "v1beta2": {"conditions": [{"type": "Available", "status": "False", "reason": "NotAvailable", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }
    });
    let v2 = up(&v1);
    assert_eq!(v2["apiVersion"], "cluster.x-k8s.io/v1beta2");
    assert_eq!(
        v2["spec"]["controlPlaneRef"],
        json!({"apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": "demo-cp"})
    );
    assert_eq!(
        v2["spec"]["infrastructureRef"],
        json!({"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "InMemoryCluster", "name": "demo"})
    );
    assert_eq!(
        v2["status"]["initialization"],
        json!({"infrastructureProvisioned": true, "controlPlaneInitialized": false})
    );
    assert_eq!(
        v2["status"]["failureDomains"],
        json!([{"name": "us-east-1a", "controlPlane": true},
               {"name": "us-east-1b", "controlPlane": false, "attributes": {"t": "x"}}])
    );
    assert_eq!(v2["status"]["conditions"][0]["type"], "Available");
    assert!(v2["status"].get("v1beta2").is_none());
    assert_valid_hub(&v2);
    // The old conditions, the ref's namespace and ref versions have no v1beta2 home: kept.
    assert!(v2["metadata"]["annotations"][ANNOTATION].is_string());
    assert_eq!(down(&v2), v1);
}

#[test]
fn cluster_class_in_upstream_v1beta1_shape() {
    // After CAPA's simple-clusterclass flavor, with the v1beta1 fields that moved.
    let r = |kind: &str, name: &str| json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": kind, "name": name});
    let v1 = json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "ClusterClass", "metadata": meta(),
        "spec": {
            "infrastructure": {"ref": r("AWSClusterTemplate", "quick-start")},
            "infrastructureNamingStrategy": {"template": "{{ .cluster.name }}-{{ .random }}"},
            "controlPlane": {
                "ref": {"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "KubeadmControlPlaneTemplate", "name": "quick-start-control-plane"},
                "machineInfrastructure": {"ref": r("AWSMachineTemplate", "quick-start-control-plane")},
                "machineHealthCheck": {"maxUnhealthy": "33%", "nodeStartupTimeout": "10m",
                    "unhealthyConditions": [{"type": "Ready", "status": "Unknown", "timeout": "5m"}]},
                "nodeDrainTimeout": "1m"
            },
            "workers": {"machineDeployments": [{
                "class": "default-worker",
                "template": {
                    "metadata": {"labels": {"pool": "a"}},
                    "bootstrap": {"ref": {"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta1", "kind": "KubeadmConfigTemplate", "name": "quick-start-worker-bootstraptemplate"}},
                    "infrastructure": {"ref": r("AWSMachineTemplate", "quick-start-worker-machinetemplate")}
                },
                "namingStrategy": {"template": "{{ .cluster.name }}-md-{{ .random }}"},
                "machineHealthCheck": {"unhealthyConditions": [{"type": "Ready", "status": "False", "timeout": "300s"}]},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "deletePolicy": "Oldest"},
                             "remediation": {"maxInFlight": 2}}
            }]},
            "variables": [{"name": "region", "required": true, "metadata": {"labels": {"x": "y"}},
                           "schema": {"openAPIV3Schema": {"type": "string", "default": "us-east-1"}}}],
            "patches": [{"name": "region", "definitions": [{
                "selector": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSClusterTemplate",
                             "matchResources": {"infrastructureCluster": true}},
                "jsonPatches": [{"op": "add", "path": "/spec/template/spec/region", "valueFrom": {"variable": "region"}}]
            }]}, {"name": "ext", "external": {"generateExtension": "gen.ext", "validateExtension": "val.ext"}}]
        }
    });
    let v2 = up(&v1);
    let s = &v2["spec"];
    assert_eq!(
        s["infrastructure"]["templateRef"],
        r("AWSClusterTemplate", "quick-start")
    );
    assert_eq!(
        s["infrastructure"]["naming"]["template"],
        "{{ .cluster.name }}-{{ .random }}"
    );
    let cp = &s["controlPlane"];
    assert_eq!(cp["templateRef"]["kind"], "KubeadmControlPlaneTemplate");
    assert_eq!(
        cp["machineInfrastructure"]["templateRef"]["name"],
        "quick-start-control-plane"
    );
    assert_eq!(
        cp["healthCheck"],
        json!({"checks": {"nodeStartupTimeoutSeconds": 600,
                          "unhealthyNodeConditions": [{"type": "Ready", "status": "Unknown", "timeoutSeconds": 300}]},
               "remediation": {"triggerIf": {"unhealthyLessThanOrEqualTo": "33%"}}})
    );
    assert_eq!(cp["deletion"]["nodeDrainTimeoutSeconds"], 60);
    let md = &s["workers"]["machineDeployments"][0];
    assert_eq!(md["metadata"]["labels"]["pool"], "a");
    assert_eq!(
        md["bootstrap"]["templateRef"]["kind"],
        "KubeadmConfigTemplate"
    );
    assert_eq!(
        md["infrastructure"]["templateRef"]["name"],
        "quick-start-worker-machinetemplate"
    );
    assert!(md.get("template").is_none(), "{md:#}");
    assert_eq!(
        md["naming"]["template"],
        "{{ .cluster.name }}-md-{{ .random }}"
    );
    assert_eq!(
        md["healthCheck"]["checks"]["unhealthyNodeConditions"][0]["timeoutSeconds"],
        300
    );
    assert_eq!(md["healthCheck"]["remediation"]["maxInFlight"], 2);
    assert_eq!(md["rollout"]["strategy"]["rollingUpdate"]["maxSurge"], 1);
    assert_eq!(md["deletion"]["order"], "Oldest");
    assert_eq!(
        s["variables"][0]["deprecatedV1Beta1Metadata"]["labels"]["x"],
        "y"
    );
    assert_eq!(
        s["patches"][1]["external"]["generatePatchesExtension"],
        "gen.ext"
    );
    assert_eq!(
        s["patches"][1]["external"]["validateTopologyExtension"],
        "val.ext"
    );
    assert_valid_hub(&v2);
    // The class parses as slipway's ClusterClass (what the topology controller reads).
    let typed: slipway_api::ClusterClass = serde_json::from_value(v2.clone()).unwrap();
    assert_eq!(
        typed
            .spec
            .workers
            .unwrap()
            .machine_deployments
            .unwrap()
            .len(),
        1
    );
    assert_eq!(without_annotation(down(&v2)), v1);
}

#[test]
fn topology_cluster_in_upstream_v1beta1_shape() {
    let v1 = json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster", "metadata": meta(),
        "spec": {"topology": {
            "class": "quick-start", "classNamespace": "classes", "version": "v1.31.0",
            "controlPlane": {"replicas": 3, "machineHealthCheck": {"enable": true, "nodeStartupTimeout": "20m"},
                             "nodeDeletionTimeout": "30s"},
            "workers": {"machineDeployments": [{"class": "default-worker", "name": "md-0", "replicas": 2,
                "machineHealthCheck": {"enable": false},
                "strategy": {"type": "OnDelete"}, "nodeVolumeDetachTimeout": "2m"}]},
            "variables": [{"name": "region", "value": "us-east-1"}]
        }}
    });
    let v2 = up(&v1);
    let t = &v2["spec"]["topology"];
    assert_eq!(
        t["classRef"],
        json!({"name": "quick-start", "namespace": "classes"})
    );
    assert_eq!(
        t["controlPlane"]["healthCheck"],
        json!({"enabled": true, "checks": {"nodeStartupTimeoutSeconds": 1200}})
    );
    assert_eq!(
        t["controlPlane"]["deletion"]["nodeDeletionTimeoutSeconds"],
        30
    );
    let md = &t["workers"]["machineDeployments"][0];
    assert_eq!(md["healthCheck"], json!({"enabled": false}));
    assert_eq!(md["rollout"]["strategy"]["type"], "OnDelete");
    assert_eq!(md["deletion"]["nodeVolumeDetachTimeoutSeconds"], 120);
    assert_valid_hub(&v2);
    assert_eq!(without_annotation(down(&v2)), v1);
}

#[test]
fn kubeadm_control_plane_args_durations_and_refs() {
    let v1 = json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "KubeadmControlPlane", "metadata": meta(),
        "spec": {
            "replicas": 3, "version": "v1.31.0",
            "machineTemplate": {
                "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "InMemoryMachineTemplate", "name": "cp"},
                "nodeDrainTimeout": "10m", "nodeDeletionTimeout": "30s"
            },
            "kubeadmConfigSpec": {
                "clusterConfiguration": {
                    "apiServer": {"extraArgs": {"enable-admission-plugins": "NodeRestriction", "audit-log-maxage": "30"}, "timeoutForControlPlane": "20m"},
                    "controllerManager": {"extraArgs": {"bind-address": "0.0.0.0"}}
                },
                "initConfiguration": {
                    "nodeRegistration": {"kubeletExtraArgs": {"eviction-hard": "nodefs.available<0%"}},
                    "bootstrapTokens": [{"token": "abcdef.0123456789abcdef", "ttl": "24h"}]
                },
                "joinConfiguration": {"discovery": {"timeout": "5m"}, "nodeRegistration": {"kubeletExtraArgs": {"cloud-provider": "external"}}}
            },
            "rolloutStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "remediationStrategy": {"maxRetry": 5, "retryPeriod": "2m", "minHealthyPeriod": "1h"}
        },
        "status": {"initialized": true, "ready": true, "replicas": 3, "readyReplicas": 2, "updatedReplicas": 3,
                   "v1beta2": {"readyReplicas": 3, "availableReplicas": 3, "upToDateReplicas": 3}}
    });
    let v2 = up(&v1);
    let s = &v2["spec"];
    assert_eq!(
        s["machineTemplate"]["spec"]["infrastructureRef"],
        json!({"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "InMemoryMachineTemplate", "name": "cp"})
    );
    assert_eq!(
        s["machineTemplate"]["spec"]["deletion"],
        json!({"nodeDrainTimeoutSeconds": 600, "nodeDeletionTimeoutSeconds": 30})
    );
    let cc = &s["kubeadmConfigSpec"]["clusterConfiguration"];
    assert_eq!(
        cc["apiServer"]["extraArgs"],
        json!([{"name": "audit-log-maxage", "value": "30"}, {"name": "enable-admission-plugins", "value": "NodeRestriction"}])
    );
    assert_eq!(
        s["kubeadmConfigSpec"]["initConfiguration"]["timeouts"]["controlPlaneComponentHealthCheckSeconds"],
        1200
    );
    assert_eq!(
        s["kubeadmConfigSpec"]["initConfiguration"]["bootstrapTokens"][0]["ttlSeconds"],
        86400
    );
    assert_eq!(
        s["kubeadmConfigSpec"]["joinConfiguration"]["timeouts"]["tlsBootstrapSeconds"],
        300
    );
    assert_eq!(
        s["kubeadmConfigSpec"]["joinConfiguration"]["nodeRegistration"]["kubeletExtraArgs"],
        json!([{"name": "cloud-provider", "value": "external"}])
    );
    assert_eq!(
        s["rollout"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}})
    );
    assert_eq!(
        s["remediation"],
        json!({"maxRetry": 5, "retryPeriodSeconds": 120, "minHealthyPeriodSeconds": 3600})
    );
    assert_eq!(
        v2["status"]["initialization"]["controlPlaneInitialized"],
        true
    );
    assert_eq!(v2["status"]["readyReplicas"], 3);
    assert_eq!(v2["status"]["availableReplicas"], 3);
    assert_valid_hub(&v2);
    assert_eq!(down(&v2), v1, "lossless: 10m comes back as 10m, not 10m0s");
}

#[test]
fn machine_deployment_strategy_and_template() {
    let v1 = json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "MachineDeployment", "metadata": meta(),
        "spec": {
            "clusterName": "demo", "replicas": 2, "minReadySeconds": 10, "revisionHistoryLimit": 3,
            "selector": {"matchLabels": {"pool": "md-0"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0, "deletePolicy": "Oldest"}},
            "template": {
                "metadata": {"labels": {"pool": "md-0"}},
                "spec": {
                    "clusterName": "demo", "version": "v1.31.0",
                    "bootstrap": {"configRef": {"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta1", "kind": "KubeadmConfigTemplate", "name": "md-0"}},
                    "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "InMemoryMachineTemplate", "name": "md-0"},
                    "nodeDrainTimeout": "90s"
                }
            }
        }
    });
    let v2 = up(&v1);
    let s = &v2["spec"];
    assert_eq!(
        s["rollout"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    );
    assert_eq!(s["deletion"]["order"], "Oldest");
    assert_eq!(s["template"]["spec"]["minReadySeconds"], 10);
    assert_eq!(
        s["template"]["spec"]["deletion"]["nodeDrainTimeoutSeconds"],
        90
    );
    assert_eq!(
        s["template"]["spec"]["bootstrap"]["configRef"]["apiGroup"],
        "bootstrap.cluster.x-k8s.io"
    );
    assert!(s.get("revisionHistoryLimit").is_none(), "no v1beta2 home");
    assert_valid_hub(&v2);
    assert_eq!(down(&v2), v1);
}

#[test]
fn machine_status_and_node_ref() {
    let v1 = json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine", "metadata": meta(),
        "spec": {"clusterName": "demo", "bootstrap": {"dataSecretName": "s"},
                 "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "InMemoryMachine", "name": "m"}},
        "status": {"nodeRef": {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "1234"},
                   "bootstrapReady": true, "infrastructureReady": true, "phase": "Running",
                   "failureReason": "UpdateError", "failureMessage": "boom"}
    });
    let v2 = up(&v1);
    assert_eq!(v2["status"]["nodeRef"], json!({"name": "n1"}));
    assert_eq!(
        v2["status"]["initialization"],
        json!({"bootstrapDataSecretCreated": true, "infrastructureProvisioned": true})
    );
    assert_valid_hub(&v2);
    assert_eq!(down(&v2), v1);
}

#[test]
fn machine_health_check_checks_and_remediation() {
    let v1 = json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "MachineHealthCheck", "metadata": meta(),
        "spec": {"clusterName": "demo", "selector": {"matchLabels": {"a": "b"}},
                 "nodeStartupTimeout": "10m", "maxUnhealthy": "40%",
                 "unhealthyConditions": [{"type": "Ready", "status": "Unknown", "timeout": "300s"}]}
    });
    let v2 = up(&v1);
    assert_eq!(
        v2["spec"]["checks"],
        json!({"nodeStartupTimeoutSeconds": 600,
               "unhealthyNodeConditions": [{"type": "Ready", "status": "Unknown", "timeoutSeconds": 300}]})
    );
    assert_eq!(
        v2["spec"]["remediation"]["triggerIf"]["unhealthyLessThanOrEqualTo"],
        "40%"
    );
    assert_valid_hub(&v2);
    assert_eq!(down(&v2), v1);
}

#[test]
fn kubeadm_config_template_and_status() {
    let v1 = json!({
        "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta1", "kind": "KubeadmConfigTemplate", "metadata": meta(),
        "spec": {"template": {"spec": {"joinConfiguration": {"nodeRegistration": {"kubeletExtraArgs": {"cloud-provider": "external"}}},
                                       "useExperimentalRetryJoin": true}}}
    });
    let v2 = up(&v1);
    assert_eq!(
        v2["spec"]["template"]["spec"]["joinConfiguration"]["nodeRegistration"]["kubeletExtraArgs"],
        json!([{"name": "cloud-provider", "value": "external"}])
    );
    assert_valid_hub(&v2);
    assert_eq!(down(&v2), v1);

    let cfg = json!({"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfig", "metadata": meta(),
                     "spec": {}, "status": {"initialization": {"dataSecretCreated": true}, "dataSecretName": "demo"}});
    let old = down(&cfg);
    assert_eq!(old["status"]["ready"], true);
    assert_eq!(old["status"]["dataSecretName"], "demo");
    assert_eq!(up(&old), cfg);
}

#[test]
fn v1beta2_objects_read_at_v1beta1_name_versions_of_referenced_kinds() {
    let v2 = json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster", "metadata": meta(),
        "spec": {"infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "InMemoryCluster", "name": "demo"},
                 "controlPlaneRef": {"apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": "demo"}},
        "status": {"initialization": {"infrastructureProvisioned": true},
                   "failureDomains": [{"name": "a", "controlPlane": true}],
                   "conditions": [{"type": "Available", "status": "True", "reason": "Available", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    });
    let v1 = down(&v2);
    assert_eq!(
        v1["spec"]["infrastructureRef"]["apiVersion"],
        "infrastructure.cluster.x-k8s.io/v1alpha1"
    );
    assert_eq!(
        v1["spec"]["controlPlaneRef"]["apiVersion"],
        "controlplane.cluster.x-k8s.io/v1beta2"
    );
    assert_eq!(v1["status"]["infrastructureReady"], true);
    assert_eq!(
        v1["status"]["failureDomains"],
        json!({"a": {"controlPlane": true}})
    );
    assert_eq!(
        v1["status"]["v1beta2"]["conditions"][0]["type"],
        "Available"
    );
    assert_eq!(up(&v1), v2);
}

#[test]
fn a_field_changed_at_v1beta2_wins_over_the_kept_record() {
    let v1 = json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine", "metadata": meta(),
        "spec": {"clusterName": "demo", "bootstrap": {"dataSecretName": "s"}, "nodeDrainTimeout": "10m",
                 "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "InMemoryMachine", "name": "m", "uid": "u1"}}
    });
    let mut v2 = up(&v1);
    v2["spec"]["deletion"]["nodeDrainTimeoutSeconds"] = json!(1200);
    v2["spec"]["infrastructureRef"]["name"] = json!("other");
    let back = down(&v2);
    assert_eq!(back["spec"]["nodeDrainTimeout"], "20m0s");
    assert_eq!(back["spec"]["infrastructureRef"]["name"], "other");
    assert!(
        back["spec"]["infrastructureRef"].get("uid").is_none(),
        "the old ref's uid does not follow a renamed ref: {back:#}"
    );
    // Unchanged, the ref gets its uid back.
    let mut same = up(&v1);
    same["spec"]["deletion"]["nodeDrainTimeoutSeconds"] = json!(1200);
    assert_eq!(down(&same)["spec"]["infrastructureRef"]["uid"], "u1");
}

#[test]
fn what_v1beta2_cannot_hold_is_an_error_naming_the_field() {
    let cases = [
        (
            json!({"spec": {"clusterName": "d", "nodeDrainTimeout": "10 minutes"}}),
            "spec.nodeDrainTimeout",
        ),
        (
            json!({"spec": {"clusterName": "d", "infrastructureRef": {"kind": "X", "name": "x"}}}),
            "spec.infrastructureRef.apiVersion",
        ),
        (
            json!({"spec": {"clusterName": "d", "infrastructureRef": {"apiVersion": "g/v1", "kind": "X", "name": "x", "namespace": "elsewhere"}}}),
            "spec.infrastructureRef.namespace",
        ),
    ];
    for (body, field) in cases {
        let mut obj = body.clone();
        obj["apiVersion"] = json!("cluster.x-k8s.io/v1beta1");
        obj["kind"] = json!("Machine");
        obj["metadata"] = meta();
        match conversion::convert(&obj, "v1beta2", &ctx()) {
            Err(ConversionError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected Invalid, got {other:?}"),
        }
    }
    let each = json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "MachineHealthCheck", "metadata": meta(),
                      "spec": {"unhealthyConditions": [{"type": "Ready", "status": "False", "timeout": "1d"}]}});
    match conversion::convert(&each, "v1beta2", &ctx()) {
        Err(ConversionError::Invalid { field, .. }) => {
            assert_eq!(field, "spec.unhealthyConditions[0].timeout")
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn unknown_kinds_and_versions_fail_clearly() {
    let obj =
        json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Gadget", "metadata": meta()});
    let e = conversion::convert(&obj, "v1beta2", &ctx()).unwrap_err();
    assert!(e.to_string().contains("Gadget.cluster.x-k8s.io"), "{e}");
    let obj =
        json!({"apiVersion": "cluster.x-k8s.io/v1alpha4", "kind": "Cluster", "metadata": meta()});
    let e = conversion::convert(&obj, "v1beta2", &ctx()).unwrap_err();
    assert!(e.to_string().contains("v1alpha4"), "{e}");
}

// ---- generated round trips -------------------------------------------------------------

/// A small seeded generator (xorshift), so failures reproduce from the printed seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn coin(&mut self) -> bool {
        self.below(2) == 0
    }
    fn word(&mut self) -> String {
        const WORDS: &[&str] = &["alpha", "beta", "gamma", "delta", "x", "node-1", "10.0.0.1"];
        WORDS[self.below(WORDS.len() as u64) as usize].to_string()
    }
    fn scalar(&mut self) -> Value {
        match self.below(4) {
            0 => json!(self.word()),
            1 => json!(self.below(100)),
            2 => json!(self.coin()),
            _ => json!({"k": self.word()}),
        }
    }
    fn duration(&mut self) -> String {
        const D: &[&str] = &[
            "10m", "90s", "1h30m", "1.5h", "0s", "2h0m0s", "1500ms", "45s",
        ];
        D[self.below(D.len() as u64) as usize].to_string()
    }
}

fn parent_is_free(obj: &Value, path: &str) -> bool {
    let mut cur = obj;
    for k in path.split('.') {
        match cur.get(k) {
            None => return true,
            Some(v) if v.is_object() => cur = v,
            Some(_) => return false,
        }
    }
    false
}

/// Fills the v1beta1 side of a table with well-formed random values.
fn fill(g: &mut Gen, obj: &mut Value, ops: &[Op]) {
    use slipway_api::conversion::ops::put;
    for op in ops {
        if !g.coin() {
            continue;
        }
        let (path, value) = match op {
            Op::Move(a, _) => (a, g.scalar()),
            Op::Ref(a, _) => {
                let mut r = json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "Thing", "name": g.word()});
                if g.coin() {
                    r["uid"] = json!(g.word());
                }
                (a, r)
            }
            Op::NodeRef(a) => (
                a,
                json!({"apiVersion": "v1", "kind": "Node", "name": g.word()}),
            ),
            Op::Duration(a, _) => (a, json!(g.duration())),
            Op::MapToList { from, value, .. } => {
                let mut m = serde_json::Map::new();
                for _ in 0..g.below(3) + 1 {
                    let v = match value {
                        Some(_) => json!(g.word()),
                        None => json!({"controlPlane": g.coin()}),
                    };
                    m.insert(g.word(), v);
                }
                (from, Value::Object(m))
            }
            Op::Each(path, sub) => {
                let mut items = Vec::new();
                for _ in 0..g.below(3) {
                    let mut item = json!({"type": g.word()});
                    fill(g, &mut item, sub);
                    items.push(item);
                }
                (path, Value::Array(items))
            }
        };
        if parent_is_free(obj, path) {
            put(obj, path, value);
        }
    }
    // Fields no table names: kept where v1beta2 has them, by the record where it has not.
    if g.coin() {
        put(obj, "spec.someFieldOnlyV1beta1Has", json!(g.word()));
    }
}

#[test]
fn generated_objects_round_trip_both_ways() {
    let seed = 0x5eed_0017_u64;
    let mut g = Gen(seed);
    slipway_aws::conversion::register();
    let provider_kinds = conversion::registered();
    assert!(
        provider_kinds.iter().any(|r| r.kind == "AWSCluster"),
        "the AWS kinds take part"
    );
    let kinds = conversion::KINDS
        .iter()
        .copied()
        .chain(provider_kinds.iter().map(|r| (r.group, r.kind)));
    for (group, kind) in kinds {
        let Some(ops) = conversion::table_of(group, kind) else {
            panic!("{kind} has a table")
        };
        for i in 0..100 {
            let mut v1 =
                json!({"apiVersion": format!("{group}/v1beta1"), "kind": kind, "metadata": meta()});
            fill(&mut g, &mut v1, &ops);
            let c = ctx();
            let v2 = conversion::convert(&v1, "v1beta2", &c)
                .unwrap_or_else(|e| panic!("seed {seed:#x} {kind} #{i}: {e}\n{v1:#}"));
            let back = conversion::convert(&v2, "v1beta1", &c).unwrap();
            assert_eq!(
                back, v1,
                "seed {seed:#x} {kind} #{i} v1beta1 -> v1beta2 -> v1beta1\nvia {v2:#}"
            );

            // And from the hub: a v1beta2 object without any record survives v1beta1.
            let hub = without_annotation(v2);
            let low = conversion::convert(&hub, "v1beta1", &c).unwrap();
            let again = conversion::convert(&low, "v1beta2", &c).unwrap();
            assert_eq!(
                again, hub,
                "seed {seed:#x} {kind} #{i} v1beta2 -> v1beta1 -> v1beta2\nvia {low:#}"
            );
        }
    }
}
