//! Per kind: how its v1beta1 fields (upstream `api/**/v1beta1`) map to v1beta2. Fields not
//! named here keep their path; fields without a home in the other version are carried by the
//! residual annotation.

use serde_json::{Value, json};

use super::ops::{Op, mv};

const CORE: &str = "cluster.x-k8s.io";
const BOOTSTRAP: &str = "bootstrap.cluster.x-k8s.io";
const CONTROLPLANE: &str = "controlplane.cluster.x-k8s.io";
const ADDONS: &str = "addons.cluster.x-k8s.io";

/// Every `(group, kind)` served at v1beta1 beside v1beta2.
pub const KINDS: &[(&str, &str)] = &[
    (CORE, "Cluster"),
    (CORE, "Machine"),
    (CORE, "MachineSet"),
    (CORE, "MachineDeployment"),
    (CORE, "MachineHealthCheck"),
    (CORE, "MachinePool"),
    (CORE, "ClusterClass"),
    (BOOTSTRAP, "KubeadmConfig"),
    (BOOTSTRAP, "KubeadmConfigTemplate"),
    (CONTROLPLANE, "KubeadmControlPlane"),
    (CONTROLPLANE, "KubeadmControlPlaneTemplate"),
    (ADDONS, "ClusterResourceSet"),
    (ADDONS, "ClusterResourceSetBinding"),
];

/// The table of a kind, `None` when the kind has no v1beta1 form.
pub fn table(group: &str, kind: &str) -> Option<Vec<Op>> {
    Some(match (group, kind) {
        (CORE, "Cluster") => cluster(),
        (CORE, "Machine") => [machine_spec("spec"), machine_status()].concat(),
        (CORE, "MachineSet") => machine_set(),
        (CORE, "MachineDeployment") => machine_deployment(),
        (CORE, "MachineHealthCheck") => machine_health_check(),
        (CORE, "MachinePool") => machine_pool(),
        (CORE, "ClusterClass") => cluster_class(),
        (BOOTSTRAP, "KubeadmConfig") => [
            kubeadm_config_spec("spec"),
            vec![mv(
                "status.ready",
                "status.initialization.dataSecretCreated",
            )],
            deprecated_status(&[]),
        ]
        .concat(),
        (BOOTSTRAP, "KubeadmConfigTemplate") => kubeadm_config_spec("spec.template.spec"),
        (CONTROLPLANE, "KubeadmControlPlane") => kubeadm_control_plane(),
        (CONTROLPLANE, "KubeadmControlPlaneTemplate") => kcp_template(),
        // v1beta1 differs only in its status conditions; a binding not at all.
        (ADDONS, "ClusterResourceSet") => deprecated_status(&[]),
        (ADDONS, "ClusterResourceSetBinding") => vec![],
        _ => return None,
    })
}

/// Fields of upstream's v1beta1 form of a kind that v1beta2 dropped (kept by the residual
/// annotation), as `(v1beta1 path, schema)`.
pub fn spoke_only(group: &str, kind: &str) -> Vec<(String, Value)> {
    let at = |p: &str, fields: &[(&str, Value)]| -> Vec<(String, Value)> {
        fields
            .iter()
            .map(|(f, s)| (format!("{p}{f}"), s.clone()))
            .collect()
    };
    match (group, kind) {
        (CORE, "Cluster") => {
            let mut out = at("spec.topology.", &[("rolloutAfter", time())]);
            for p in [
                "spec.topology.controlPlane.",
                "spec.topology.workers.machineDeployments[].",
            ] {
                out.extend(at(
                    p,
                    &[
                        ("nodeDrainTimeout", string()),
                        ("nodeVolumeDetachTimeout", string()),
                        ("nodeDeletionTimeout", string()),
                    ],
                ));
            }
            out
        }
        (CORE, "Machine") => at(
            "",
            &[
                ("status.lastUpdated", time()),
                ("spec.taints[].propagation", string()),
            ],
        ),
        (CORE, "MachineSet" | "MachinePool") => {
            at("spec.template.spec.", &[("taints[].propagation", string())])
        }
        (CORE, "MachineDeployment") => at(
            "spec.",
            &[
                ("revisionHistoryLimit", int32()),
                ("progressDeadlineSeconds", int32()),
                ("template.spec.taints[].propagation", string()),
            ],
        ),
        (CORE, "MachineHealthCheck") => at(
            "spec.",
            &[("remediationTemplate", super::derive::object_reference())],
        ),
        (BOOTSTRAP, "KubeadmConfig") => kubeadm_config_spec_only("spec."),
        (BOOTSTRAP, "KubeadmConfigTemplate") => kubeadm_config_spec_only("spec.template.spec."),
        (CONTROLPLANE, "KubeadmControlPlane") => {
            let mut out = kubeadm_config_spec_only("spec.kubeadmConfigSpec.");
            out.extend(at("status.", &[("ready", json!({"type": "boolean"}))]));
            out
        }
        (CONTROLPLANE, "KubeadmControlPlaneTemplate") => {
            kubeadm_config_spec_only("spec.template.spec.kubeadmConfigSpec.")
        }
        _ => vec![],
    }
}

fn string() -> Value {
    json!({"type": "string"})
}

fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn int32() -> Value {
    json!({"type": "integer", "format": "int32"})
}

/// v1beta1 KubeadmConfigSpec fields v1beta2 dropped (the cluster-wide values now come from
/// the Cluster; the kubeadm type metadata is written by the bootstrap provider).
fn kubeadm_config_spec_only(p: &str) -> Vec<(String, Value)> {
    let mut out = vec![(
        format!("{p}useExperimentalRetryJoin"),
        json!({"type": "boolean"}),
    )];
    for f in [
        "apiVersion",
        "kind",
        "clusterName",
        "controlPlaneEndpoint",
        "kubernetesVersion",
    ] {
        out.push((format!("{p}clusterConfiguration.{f}"), string()));
    }
    out.push((
        format!("{p}clusterConfiguration.networking"),
        json!({"type": "object", "properties": {
            "dnsDomain": string(), "podSubnet": string(), "serviceSubnet": string()}}),
    ));
    for c in ["initConfiguration", "joinConfiguration"] {
        out.push((format!("{p}{c}.apiVersion"), string()));
        out.push((format!("{p}{c}.kind"), string()));
    }
    out.push((
        format!("{p}initConfiguration.bootstrapTokens[].expires"),
        time(),
    ));
    out.push((format!("{p}files[].contentFormat"), string()));
    for c in ["initConfiguration", "joinConfiguration"] {
        out.push((
            format!("{p}{c}.nodeRegistration.taints[].timeAdded"),
            time(),
        ));
    }
    out
}

/// v1beta1 `status.conditions` (with severity) and failure fields move under
/// `status.deprecated.v1beta1`; v1beta1's `status.v1beta2` block becomes the status itself.
/// `counters` are replica counters whose v1beta1 meaning moved to the deprecated block.
fn deprecated_status(counters: &[&str]) -> Vec<Op> {
    let mut ops = vec![
        mv("status.conditions", "status.deprecated.v1beta1.conditions"),
        mv(
            "status.failureReason",
            "status.deprecated.v1beta1.failureReason",
        ),
        mv(
            "status.failureMessage",
            "status.deprecated.v1beta1.failureMessage",
        ),
        mv("status.v1beta2.conditions", "status.conditions"),
    ];
    for c in counters {
        ops.push(mv(
            format!("status.{c}"),
            format!("status.deprecated.v1beta1.{c}"),
        ));
    }
    for c in ["readyReplicas", "availableReplicas", "upToDateReplicas"] {
        if counters.contains(&c) || c == "upToDateReplicas" {
            ops.push(mv(format!("status.v1beta2.{c}"), format!("status.{c}")));
        }
    }
    ops
}

fn cluster() -> Vec<Op> {
    let mut ops = vec![
        Op::Ref("spec.controlPlaneRef".into(), "spec.controlPlaneRef".into()),
        Op::Ref(
            "spec.infrastructureRef".into(),
            "spec.infrastructureRef".into(),
        ),
        mv("spec.topology.class", "spec.topology.classRef.name"),
        mv(
            "spec.topology.classNamespace",
            "spec.topology.classRef.namespace",
        ),
        mv(
            "status.infrastructureReady",
            "status.initialization.infrastructureProvisioned",
        ),
        mv(
            "status.controlPlaneReady",
            "status.initialization.controlPlaneInitialized",
        ),
        Op::MapToList {
            from: "status.failureDomains".into(),
            to: "status.failureDomains".into(),
            value: None,
        },
    ];
    // The topology's health checks, deletion timeouts and rollout strategy.
    let cp = "spec.topology.controlPlane";
    ops.push(mv(
        format!("{cp}.machineHealthCheck.enable"),
        format!("{cp}.healthCheck.enabled"),
    ));
    ops.extend(health_check(
        &format!("{cp}.machineHealthCheck"),
        &format!("{cp}.healthCheck"),
    ));
    ops.extend(deletion_timeouts(cp));
    let mut md = vec![
        mv("machineHealthCheck.enable", "healthCheck.enabled"),
        mv(
            "strategy.remediation.maxInFlight",
            "healthCheck.remediation.maxInFlight",
        ),
        mv("strategy.rollingUpdate.deletePolicy", "deletion.order"),
        mv("strategy", "rollout.strategy"),
    ];
    md.extend(health_check("machineHealthCheck", "healthCheck"));
    md.extend(deletion_timeouts(""));
    ops.push(Op::Each(
        "spec.topology.workers.machineDeployments".into(),
        md,
    ));
    ops.extend(deprecated_status(&[]));
    ops.push(mv("status.v1beta2.controlPlane", "status.controlPlane"));
    ops.push(mv("status.v1beta2.workers", "status.workers"));
    ops
}

/// A MachineSpec at `p` (`spec` of a Machine, `spec.template.spec` of a set).
fn machine_spec(p: &str) -> Vec<Op> {
    vec![
        Op::Ref(
            format!("{p}.bootstrap.configRef"),
            format!("{p}.bootstrap.configRef"),
        ),
        Op::Ref(
            format!("{p}.infrastructureRef"),
            format!("{p}.infrastructureRef"),
        ),
        Op::Duration(
            format!("{p}.nodeDrainTimeout"),
            format!("{p}.deletion.nodeDrainTimeoutSeconds"),
        ),
        Op::Duration(
            format!("{p}.nodeVolumeDetachTimeout"),
            format!("{p}.deletion.nodeVolumeDetachTimeoutSeconds"),
        ),
        Op::Duration(
            format!("{p}.nodeDeletionTimeout"),
            format!("{p}.deletion.nodeDeletionTimeoutSeconds"),
        ),
    ]
}

fn machine_status() -> Vec<Op> {
    let mut ops = vec![
        Op::NodeRef("status.nodeRef".into()),
        mv(
            "status.bootstrapReady",
            "status.initialization.bootstrapDataSecretCreated",
        ),
        mv(
            "status.infrastructureReady",
            "status.initialization.infrastructureProvisioned",
        ),
    ];
    ops.extend(deprecated_status(&[]));
    ops
}

fn machine_pool() -> Vec<Op> {
    let mut ops = machine_spec("spec.template.spec");
    ops.extend([
        mv("spec.minReadySeconds", "spec.template.spec.minReadySeconds"),
        mv(
            "status.bootstrapReady",
            "status.initialization.bootstrapDataSecretCreated",
        ),
        mv(
            "status.infrastructureReady",
            "status.initialization.infrastructureProvisioned",
        ),
    ]);
    ops.extend(deprecated_status(&[
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
    ]));
    ops
}

fn machine_set() -> Vec<Op> {
    let mut ops = machine_spec("spec.template.spec");
    ops.extend([
        mv("spec.minReadySeconds", "spec.template.spec.minReadySeconds"),
        mv("spec.deletePolicy", "spec.deletion.order"),
        mv("spec.machineNamingStrategy", "spec.machineNaming"),
    ]);
    ops.extend(deprecated_status(&[
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
    ]));
    ops
}

fn machine_deployment() -> Vec<Op> {
    let mut ops = machine_spec("spec.template.spec");
    ops.extend([
        mv("spec.minReadySeconds", "spec.template.spec.minReadySeconds"),
        mv("spec.rolloutAfter", "spec.rollout.after"),
        mv(
            "spec.strategy.rollingUpdate.deletePolicy",
            "spec.deletion.order",
        ),
        mv("spec.strategy.remediation", "spec.remediation"),
        mv("spec.strategy", "spec.rollout.strategy"),
        mv("spec.machineNamingStrategy", "spec.machineNaming"),
    ]);
    ops.extend(deprecated_status(&[
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
    ]));
    ops
}

/// MachineHealthCheck fields at `from` (v1beta1, flat) and `to` (v1beta2, `checks` and
/// `remediation`): a MachineHealthCheck's spec, or a class's / topology's health check.
fn health_check(from: &str, to: &str) -> Vec<Op> {
    vec![
        Op::Duration(
            format!("{from}.nodeStartupTimeout"),
            format!("{to}.checks.nodeStartupTimeoutSeconds"),
        ),
        // Each element converts at its v1beta1 path, so errors name the field as written.
        Op::Each(
            format!("{from}.unhealthyConditions"),
            vec![Op::Duration("timeout".into(), "timeoutSeconds".into())],
        ),
        mv(
            format!("{from}.unhealthyConditions"),
            format!("{to}.checks.unhealthyNodeConditions"),
        ),
        Op::Each(
            format!("{from}.unhealthyMachineConditions"),
            vec![Op::Duration("timeout".into(), "timeoutSeconds".into())],
        ),
        mv(
            format!("{from}.unhealthyMachineConditions"),
            format!("{to}.checks.unhealthyMachineConditions"),
        ),
        mv(
            format!("{from}.maxUnhealthy"),
            format!("{to}.remediation.triggerIf.unhealthyLessThanOrEqualTo"),
        ),
        mv(
            format!("{from}.unhealthyRange"),
            format!("{to}.remediation.triggerIf.unhealthyInRange"),
        ),
        mv(
            format!("{from}.remediationTemplate"),
            format!("{to}.remediation.templateRef"),
        ),
    ]
}

fn machine_health_check() -> Vec<Op> {
    let mut ops = health_check("spec", "spec");
    ops.extend(deprecated_status(&[]));
    ops
}

/// The node deletion timeouts of a class or topology at `p` (v1beta1 durations, v1beta2
/// `deletion.*Seconds`).
fn deletion_timeouts(p: &str) -> Vec<Op> {
    let at = |f: String| if p.is_empty() { f } else { format!("{p}.{f}") };
    [
        "nodeDrainTimeout",
        "nodeVolumeDetachTimeout",
        "nodeDeletionTimeout",
    ]
    .into_iter()
    .map(|f| Op::Duration(at(f.to_string()), at(format!("deletion.{f}Seconds"))))
    .collect()
}

/// ClusterClass: v1beta1's `ref`s become `templateRef`s, `namingStrategy` becomes `naming`,
/// `machineHealthCheck` becomes `healthCheck`, a MachineDeployment class's `template` is
/// flattened and its `strategy` becomes `rollout.strategy`.
fn cluster_class() -> Vec<Op> {
    let cp = "spec.controlPlane";
    let mut ops = vec![
        mv("spec.infrastructure.ref", "spec.infrastructure.templateRef"),
        mv(
            "spec.infrastructureNamingStrategy",
            "spec.infrastructure.naming",
        ),
        mv(format!("{cp}.ref"), format!("{cp}.templateRef")),
        mv(
            format!("{cp}.machineInfrastructure.ref"),
            format!("{cp}.machineInfrastructure.templateRef"),
        ),
        mv(format!("{cp}.namingStrategy"), format!("{cp}.naming")),
    ];
    ops.extend(health_check(
        &format!("{cp}.machineHealthCheck"),
        &format!("{cp}.healthCheck"),
    ));
    ops.extend(deletion_timeouts(cp));
    let mut md = vec![
        mv("template.metadata", "metadata"),
        mv("template.bootstrap.ref", "bootstrap.templateRef"),
        mv("template.infrastructure.ref", "infrastructure.templateRef"),
        mv("namingStrategy", "naming"),
        mv(
            "strategy.remediation.maxInFlight",
            "healthCheck.remediation.maxInFlight",
        ),
        mv("strategy.rollingUpdate.deletePolicy", "deletion.order"),
        mv("strategy", "rollout.strategy"),
    ];
    md.extend(health_check("machineHealthCheck", "healthCheck"));
    md.extend(deletion_timeouts(""));
    ops.push(Op::Each("spec.workers.machineDeployments".into(), md));
    ops.push(Op::Each(
        "spec.variables".into(),
        vec![mv("metadata", "deprecatedV1Beta1Metadata")],
    ));
    ops.push(Op::Each(
        "spec.patches".into(),
        vec![
            mv(
                "external.generateExtension",
                "external.generatePatchesExtension",
            ),
            mv(
                "external.validateExtension",
                "external.validateTopologyExtension",
            ),
        ],
    ));
    ops.push(Op::Each(
        "status.variables".into(),
        vec![Op::Each(
            "definitions".into(),
            vec![mv("metadata", "deprecatedV1Beta1Metadata")],
        )],
    ));
    ops.extend(deprecated_status(&[]));
    ops
}

/// A KubeadmConfigSpec at `p`.
fn kubeadm_config_spec(p: &str) -> Vec<Op> {
    let cc = format!("{p}.clusterConfiguration");
    let args = |path: String| Op::MapToList {
        from: path.clone(),
        to: path,
        value: Some("value"),
    };
    let mut ops = vec![
        args(format!("{cc}.apiServer.extraArgs")),
        args(format!("{cc}.controllerManager.extraArgs")),
        args(format!("{cc}.scheduler.extraArgs")),
        args(format!("{cc}.etcd.local.extraArgs")),
        Op::Duration(
            format!("{cc}.apiServer.timeoutForControlPlane"),
            format!("{p}.initConfiguration.timeouts.controlPlaneComponentHealthCheckSeconds"),
        ),
        Op::Each(
            format!("{p}.initConfiguration.bootstrapTokens"),
            vec![Op::Duration("ttl".into(), "ttlSeconds".into())],
        ),
        Op::Duration(
            format!("{p}.joinConfiguration.discovery.timeout"),
            format!("{p}.joinConfiguration.timeouts.tlsBootstrapSeconds"),
        ),
    ];
    for c in ["initConfiguration", "joinConfiguration"] {
        ops.push(args(format!("{p}.{c}.nodeRegistration.kubeletExtraArgs")));
    }
    ops
}

fn kcp_machine_template(p: &str) -> Vec<Op> {
    vec![
        Op::Ref(
            format!("{p}.machineTemplate.infrastructureRef"),
            format!("{p}.machineTemplate.spec.infrastructureRef"),
        ),
        Op::Duration(
            format!("{p}.machineTemplate.nodeDrainTimeout"),
            format!("{p}.machineTemplate.spec.deletion.nodeDrainTimeoutSeconds"),
        ),
        Op::Duration(
            format!("{p}.machineTemplate.nodeVolumeDetachTimeout"),
            format!("{p}.machineTemplate.spec.deletion.nodeVolumeDetachTimeoutSeconds"),
        ),
        Op::Duration(
            format!("{p}.machineTemplate.nodeDeletionTimeout"),
            format!("{p}.machineTemplate.spec.deletion.nodeDeletionTimeoutSeconds"),
        ),
        mv(
            format!("{p}.machineTemplate.readinessGates"),
            format!("{p}.machineTemplate.spec.readinessGates"),
        ),
    ]
}

fn kcp_rollout(p: &str) -> Vec<Op> {
    vec![
        mv(format!("{p}.rolloutBefore"), format!("{p}.rollout.before")),
        mv(format!("{p}.rolloutAfter"), format!("{p}.rollout.after")),
        mv(
            format!("{p}.rolloutStrategy"),
            format!("{p}.rollout.strategy"),
        ),
        mv(
            format!("{p}.remediationStrategy.maxRetry"),
            format!("{p}.remediation.maxRetry"),
        ),
        Op::Duration(
            format!("{p}.remediationStrategy.retryPeriod"),
            format!("{p}.remediation.retryPeriodSeconds"),
        ),
        Op::Duration(
            format!("{p}.remediationStrategy.minHealthyPeriod"),
            format!("{p}.remediation.minHealthyPeriodSeconds"),
        ),
        mv(
            format!("{p}.machineNamingStrategy"),
            format!("{p}.machineNaming"),
        ),
    ]
}

fn kubeadm_control_plane() -> Vec<Op> {
    let mut ops = kcp_machine_template("spec");
    ops.extend(kcp_rollout("spec"));
    ops.extend(kubeadm_config_spec("spec.kubeadmConfigSpec"));
    ops.push(mv(
        "status.initialized",
        "status.initialization.controlPlaneInitialized",
    ));
    ops.extend(deprecated_status(&[
        "updatedReplicas",
        "readyReplicas",
        "unavailableReplicas",
    ]));
    ops.push(mv(
        "status.v1beta2.availableReplicas",
        "status.availableReplicas",
    ));
    ops.push(mv(
        "status.lastRemediation.timestamp",
        "status.lastRemediation.time",
    ));
    ops
}

fn kcp_template() -> Vec<Op> {
    let p = "spec.template.spec";
    let mut ops = kcp_machine_template(p);
    ops.extend(kcp_rollout(p));
    ops.extend(kubeadm_config_spec(&format!("{p}.kubeadmConfigSpec")));
    ops
}
