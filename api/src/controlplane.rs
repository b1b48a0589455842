//! `controlplane.cluster.x-k8s.io/v1beta2` KubeadmControlPlane.
//!
//! Control-plane contract fields core reads: `spec.controlPlaneEndpoint` (EKS), `spec.replicas`,
//! `spec.version`, `status.initialization.controlPlaneInitialized`, replica counters, conditions.

use k8s_openapi::apimachinery::pkg::{apis::meta::v1::Time, util::intstr::IntOrString};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::{
    bootstrap::KubeadmConfigSpec,
    common::{
        Condition, ContractVersionedObjectReference, MachineDeletionSpec, ObjectMeta,
        ReadinessGate, Taint,
    },
    machine::MachineNaming,
};

/// Desired state of a KubeadmControlPlane.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "controlplane.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "KubeadmControlPlane",
    plural = "kubeadmcontrolplanes",
    namespaced,
    status = "KubeadmControlPlaneStatus",
    shortname = "kcp",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    scale = r#"{"specReplicasPath":".spec.replicas","statusReplicasPath":".status.replicas","labelSelectorPath":".status.selector"}"#,
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
    ),
    printcolumn(
        name = "Initialized",
        type_ = "boolean",
        json_path = ".status.initialization.controlPlaneInitialized"
    ),
    printcolumn(
        name = "Available",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Available\")].status"
    ),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Current", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(
        name = "Up-to-date",
        type_ = "integer",
        json_path = ".status.upToDateReplicas"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version")
)]
#[x_kube(validation = Rule::new("!has(self.replicas) || self.replicas % 2 == 1 || (has(self.kubeadmConfigSpec.clusterConfiguration) && has(self.kubeadmConfigSpec.clusterConfiguration.etcd) && has(self.kubeadmConfigSpec.clusterConfiguration.etcd.external))").message("replicas must be odd when etcd is stacked (local)"))]
#[serde(rename_all = "camelCase")]
pub struct KubeadmControlPlaneSpec {
    /// Number of control-plane machines (default 1).
    #[schemars(range(min = 1))]
    pub replicas: Option<i32>,
    /// Kubernetes version, e.g. `v1.31.0`.
    #[x_kube(validation = Rule::new("self.matches('^v?[0-9]+\\\\.[0-9]+\\\\.[0-9]+([-+].*)?$')").message("version must look like v1.31.0"))]
    pub version: String,
    /// Template of the control-plane machines.
    pub machine_template: KubeadmControlPlaneMachineTemplate,
    /// kubeadm settings of every control-plane machine.
    pub kubeadm_config_spec: KubeadmConfigSpec,
    /// Rollout settings.
    pub rollout: Option<KubeadmControlPlaneRollout>,
    /// Remediation settings.
    pub remediation: Option<KubeadmControlPlaneRemediation>,
    /// Naming of created machines.
    pub machine_naming: Option<MachineNaming>,
}

/// Template of control-plane machines.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct KubeadmControlPlaneMachineTemplate {
    /// Labels and annotations of created machines.
    pub metadata: Option<ObjectMeta>,
    /// Spec parts of created machines.
    pub spec: KubeadmControlPlaneMachineTemplateSpec,
}

/// Machine spec parts a KubeadmControlPlane controls.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeadmControlPlaneMachineTemplateSpec {
    /// Infrastructure machine template (e.g. AWSMachineTemplate).
    pub infrastructure_ref: ContractVersionedObjectReference,
    /// Extra readiness gates.
    pub readiness_gates: Option<Vec<ReadinessGate>>,
    /// Deletion timeouts.
    pub deletion: Option<MachineDeletionSpec>,
    /// Node taints.
    pub taints: Option<Vec<Taint>>,
}

/// Rollout settings of a KubeadmControlPlane.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct KubeadmControlPlaneRollout {
    /// Roll out machines whose certificates expire within N days.
    pub before: Option<RolloutBefore>,
    /// Roll out machines created before this time.
    pub after: Option<Time>,
    /// Strategy.
    pub strategy: Option<KubeadmControlPlaneRolloutStrategy>,
}

/// `rollout.before`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutBefore {
    /// Days before certificate expiry that trigger a rollout.
    #[schemars(range(min = 7))]
    pub certificates_expiry_days: Option<i32>,
}

/// Rollout strategy.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeadmControlPlaneRolloutStrategy {
    /// Only RollingUpdate.
    #[serde(rename = "type")]
    #[schemars(regex(pattern = r"^RollingUpdate$"))]
    pub type_: Option<String>,
    /// maxSurge: 1 (default) or 0 (delete first).
    pub rolling_update: Option<KubeadmControlPlaneRollingUpdate>,
}

/// maxSurge of a control-plane rollout.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeadmControlPlaneRollingUpdate {
    /// 0 or 1.
    #[x_kube(validation = Rule::new("string(self) in ['0', '1']").message("maxSurge must be 0 or 1"))]
    pub max_surge: Option<IntOrString>,
}

/// Remediation settings of a KubeadmControlPlane.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeadmControlPlaneRemediation {
    /// Retries per machine.
    #[schemars(range(min = 0))]
    pub max_retry: Option<i32>,
    /// Seconds between retries.
    #[schemars(range(min = 0))]
    pub retry_period_seconds: Option<i32>,
    /// A machine healthy this long resets the retry count (default 3600).
    #[schemars(range(min = 0))]
    pub min_healthy_period_seconds: Option<i32>,
}

/// Observed state of a KubeadmControlPlane.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeadmControlPlaneStatus {
    /// Contract flags, set once.
    pub initialization: Option<ControlPlaneInitializationStatus>,
    /// Label selector of control-plane machines (scale subresource).
    pub selector: Option<String>,
    /// Current machines.
    pub replicas: Option<i32>,
    /// Ready machines.
    pub ready_replicas: Option<i32>,
    /// Available machines.
    pub available_replicas: Option<i32>,
    /// Up-to-date machines.
    pub up_to_date_replicas: Option<i32>,
    /// Lowest version of all machines.
    pub version: Option<String>,
    /// The last remediation of a control-plane machine.
    pub last_remediation: Option<LastRemediationStatus>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// `status.lastRemediation` of a KubeadmControlPlane.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastRemediationStatus {
    /// The machine last remediated.
    pub machine: String,
    /// When.
    pub time: Option<Time>,
    /// Retries for that machine (a replacement that failed too counts one more).
    #[schemars(range(min = 0))]
    pub retry_count: Option<i32>,
}

/// `status.initialization` of a control plane.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneInitializationStatus {
    /// The control plane answers API requests; never flips back.
    pub control_plane_initialized: Option<bool>,
}
