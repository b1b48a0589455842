//! `cluster.x-k8s.io/v1beta2` Machine, MachineSet, MachineDeployment and MachineHealthCheck.
//!
//! A Machine is one node's worth of infrastructure plus bootstrap data. Contract fields core
//! reads from providers land here: `spec.providerID`, `status.addresses`,
//! `status.initialization.{infrastructureProvisioned, bootstrapDataSecretCreated}`.

use k8s_openapi::{
    api::core::v1::NodeSystemInfo,
    apimachinery::pkg::{
        apis::meta::v1::LabelSelector, apis::meta::v1::Time, util::intstr::IntOrString,
    },
};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::common::{
    Condition, ContractVersionedObjectReference, MachineAddress, MachineDeletionSpec,
    NameReference, ObjectMeta, ReadinessGate, Taint,
};

/// Desired state of a Machine.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cluster.x-k8s.io",
    version = "v1beta2",
    kind = "Machine",
    plural = "machines",
    namespaced,
    status = "MachineStatus",
    shortname = "ma",
    category = "cluster-api",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterName"),
    printcolumn(
        name = "Node Name",
        type_ = "string",
        json_path = ".status.nodeRef.name"
    ),
    printcolumn(name = "Provider ID", type_ = "string", json_path = ".spec.providerID"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Available",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Available\")].status"
    ),
    printcolumn(
        name = "Up-to-date",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"UpToDate\")].status"
    ),
    printcolumn(
        name = "Internal-IP",
        type_ = "string",
        json_path = ".status.addresses[?(@.type==\"InternalIP\")].address",
        priority = 10
    ),
    printcolumn(
        name = "Paused",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Paused\")].status",
        priority = 10
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version")
)]
#[serde(rename_all = "camelCase")]
pub struct MachineSpec {
    /// Name of the Cluster this machine belongs to.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterName is immutable"))]
    pub cluster_name: String,
    /// Where the bootstrap data comes from.
    pub bootstrap: Bootstrap,
    /// The infrastructure machine (e.g. AWSMachine).
    pub infrastructure_ref: ContractVersionedObjectReference,
    /// Kubernetes version of the node, e.g. `v1.31.0`.
    #[x_kube(validation = Rule::new("self.matches('^v?[0-9]+\\\\.[0-9]+\\\\.[0-9]+([-+].*)?$')").message("version must look like v1.31.0"))]
    pub version: Option<String>,
    /// Provider ID; must equal the Node's `spec.providerID`.
    #[serde(rename = "providerID")]
    pub provider_id: Option<String>,
    /// Failure domain to place the machine in.
    pub failure_domain: Option<String>,
    /// Seconds a Ready machine waits before counting as Available.
    #[schemars(range(min = 0))]
    pub min_ready_seconds: Option<i32>,
    /// Extra conditions required for Ready.
    pub readiness_gates: Option<Vec<ReadinessGate>>,
    /// Deletion timeouts.
    pub deletion: Option<MachineDeletionSpec>,
    /// Taints to put on the Node.
    pub taints: Option<Vec<Taint>>,
}

/// Bootstrap source of a Machine: a config object, or a ready data Secret.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    /// Bootstrap config (e.g. KubeadmConfig).
    pub config_ref: Option<ContractVersionedObjectReference>,
    /// Secret holding bootstrap data; filled from the config's `status.dataSecretName`. May be
    /// empty, as upstream allows, where the infrastructure needs no bootstrap data (EKS node
    /// groups).
    #[schemars(length(max = 253))]
    pub data_secret_name: Option<String>,
}

/// Observed state of a Machine.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineStatus {
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Contract flags, set once.
    pub initialization: Option<MachineInitializationStatus>,
    /// The Node of this machine in the workload cluster.
    pub node_ref: Option<NameReference>,
    /// System information of that Node.
    pub node_info: Option<NodeSystemInfo>,
    /// Addresses copied from the infrastructure machine.
    pub addresses: Option<Vec<MachineAddress>>,
    /// Failure domain the machine landed in.
    pub failure_domain: Option<String>,
    /// Informational phase (see [`phase`]).
    pub phase: Option<String>,
    /// Expiry of the machine's certificates (control-plane machines).
    pub certificates_expiry_date: Option<Time>,
    /// Deletion progress.
    pub deletion: Option<MachineDeletionStatus>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// `status.initialization` of a Machine.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineInitializationStatus {
    /// The infrastructure machine reported provisioned.
    pub infrastructure_provisioned: Option<bool>,
    /// The bootstrap config reported its data Secret created.
    pub bootstrap_data_secret_created: Option<bool>,
}

/// Timestamps of deletion steps.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineDeletionStatus {
    /// When the drain started.
    pub node_drain_start_time: Option<Time>,
    /// When waiting for volume detach started.
    pub wait_for_node_volume_detach_start_time: Option<Time>,
    /// When waiting for pre-drain hooks started.
    pub wait_for_pre_drain_hook_start_time: Option<Time>,
    /// When waiting for pre-terminate hooks started.
    pub wait_for_pre_terminate_hook_start_time: Option<Time>,
}

/// Machine phases (informational only).
pub mod phase {
    /// Waiting for bootstrap data or infrastructure.
    pub const PENDING: &str = "Pending";
    /// Infrastructure being created.
    pub const PROVISIONING: &str = "Provisioning";
    /// Infrastructure exists, no Node yet.
    pub const PROVISIONED: &str = "Provisioned";
    /// The Node exists.
    pub const RUNNING: &str = "Running";
    /// Being updated in place.
    pub const UPDATING: &str = "Updating";
    /// Being deleted.
    pub const DELETING: &str = "Deleting";
    /// Failed.
    pub const FAILED: &str = "Failed";
}

/// Template for Machines created by a MachineSet or MachineDeployment.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct MachineTemplateSpec {
    /// Labels and annotations of created Machines.
    pub metadata: Option<ObjectMeta>,
    /// Spec of created Machines.
    pub spec: MachineSpec,
}

/// Naming of created Machines.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct MachineNaming {
    /// Go-template-like name pattern, e.g. `{{ .machineSet.name }}-{{ .random }}`.
    pub template: Option<String>,
}

/// Which machines go first when scaling down.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct MachineSetDeletionSpec {
    /// Random (default), Newest or Oldest; machines annotated for deletion always go first.
    pub order: Option<DeletionOrder>,
}

/// Scale-down order.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum DeletionOrder {
    /// Unhealthy first, then random.
    Random,
    /// Newest first.
    Newest,
    /// Oldest first.
    Oldest,
}

/// Desired state of a MachineSet.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cluster.x-k8s.io",
    version = "v1beta2",
    kind = "MachineSet",
    plural = "machinesets",
    namespaced,
    status = "MachineSetStatus",
    shortname = "ms",
    category = "cluster-api",
    scale = r#"{"specReplicasPath":".spec.replicas","statusReplicasPath":".status.replicas","labelSelectorPath":".status.selector"}"#,
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterName"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Current", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.availableReplicas"
    ),
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
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".spec.template.spec.version"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MachineSetSpec {
    /// Name of the Cluster.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterName is immutable"))]
    pub cluster_name: String,
    /// Desired number of machines.
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Selects the machines of this set; must match the template labels.
    pub selector: LabelSelector,
    /// Template of the machines.
    pub template: MachineTemplateSpec,
    /// Naming of created machines.
    pub machine_naming: Option<MachineNaming>,
    /// Scale-down order.
    pub deletion: Option<MachineSetDeletionSpec>,
}

/// Observed state of a MachineSet or MachineDeployment.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineSetStatus {
    /// Label selector in string form (for the scale subresource).
    pub selector: Option<String>,
    /// Current machines.
    pub replicas: Option<i32>,
    /// Ready machines.
    pub ready_replicas: Option<i32>,
    /// Available machines.
    pub available_replicas: Option<i32>,
    /// Up-to-date machines.
    pub up_to_date_replicas: Option<i32>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// Desired state of a MachineDeployment.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cluster.x-k8s.io",
    version = "v1beta2",
    kind = "MachineDeployment",
    plural = "machinedeployments",
    namespaced,
    status = "MachineDeploymentStatus",
    shortname = "md",
    category = "cluster-api",
    scale = r#"{"specReplicasPath":".spec.replicas","statusReplicasPath":".status.replicas","labelSelectorPath":".status.selector"}"#,
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterName"),
    printcolumn(
        name = "Available",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Available\")].status"
    ),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Current", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.availableReplicas"
    ),
    printcolumn(
        name = "Up-to-date",
        type_ = "integer",
        json_path = ".status.upToDateReplicas"
    ),
    printcolumn(
        name = "Paused",
        type_ = "boolean",
        json_path = ".spec.paused",
        priority = 10
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".spec.template.spec.version"
    )
)]
#[x_kube(validation = Rule::new("!has(self.selector.matchLabels) || self.selector.matchLabels.all(k, has(self.template.metadata) && has(self.template.metadata.labels) && k in self.template.metadata.labels && self.template.metadata.labels[k] == self.selector.matchLabels[k])").message("selector does not match template labels"))]
#[serde(rename_all = "camelCase")]
pub struct MachineDeploymentSpec {
    /// Name of the Cluster.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterName is immutable"))]
    pub cluster_name: String,
    /// Desired number of machines (default 1).
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// How to roll out template changes.
    pub rollout: Option<MachineDeploymentRollout>,
    /// Selects the machines of this deployment; must match the template labels.
    pub selector: LabelSelector,
    /// Template of the machines.
    pub template: MachineTemplateSpec,
    /// Naming of created machines.
    pub machine_naming: Option<MachineNaming>,
    /// Remediation limits.
    pub remediation: Option<MachineDeploymentRemediation>,
    /// Scale-down order.
    pub deletion: Option<MachineSetDeletionSpec>,
    /// Stops rollouts while true.
    pub paused: Option<bool>,
}

/// `spec.rollout` of a MachineDeployment.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct MachineDeploymentRollout {
    /// Roll out all machines created before this time.
    pub after: Option<Time>,
    /// Rollout strategy.
    pub strategy: Option<MachineDeploymentStrategy>,
}

/// Rollout strategy of a MachineDeployment.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineDeploymentStrategy {
    /// RollingUpdate (default) or OnDelete.
    #[serde(rename = "type")]
    #[schemars(regex(pattern = r"^(RollingUpdate|OnDelete)$"))]
    pub type_: Option<String>,
    /// Surge and unavailability limits.
    pub rolling_update: Option<RollingUpdate>,
}

/// maxSurge / maxUnavailable as integers or percentages.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.maxSurge) && has(self.maxUnavailable) && string(self.maxSurge) in ['0', '0%'] && string(self.maxUnavailable) in ['0', '0%'])").message("maxSurge and maxUnavailable cannot both be zero"))]
pub struct RollingUpdate {
    /// Machines that may be unavailable during a rollout (default 0).
    pub max_unavailable: Option<IntOrString>,
    /// Machines that may be created above the desired count (default 1).
    pub max_surge: Option<IntOrString>,
}

/// Remediation limits of a MachineDeployment.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineDeploymentRemediation {
    /// Machines remediated at once.
    pub max_in_flight: Option<IntOrString>,
}

/// Observed state of a MachineDeployment.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineDeploymentStatus {
    /// Label selector in string form (for the scale subresource).
    pub selector: Option<String>,
    /// Current machines.
    pub replicas: Option<i32>,
    /// Ready machines.
    pub ready_replicas: Option<i32>,
    /// Available machines.
    pub available_replicas: Option<i32>,
    /// Up-to-date machines.
    pub up_to_date_replicas: Option<i32>,
    /// ScalingUp, ScalingDown, Running, Failed or Unknown (informational).
    pub phase: Option<String>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// Desired state of a MachineHealthCheck.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cluster.x-k8s.io",
    version = "v1beta2",
    kind = "MachineHealthCheck",
    plural = "machinehealthchecks",
    namespaced,
    status = "MachineHealthCheckStatus",
    shortname = "mhc",
    category = "cluster-api",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterName"),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.expectedMachines"
    ),
    printcolumn(
        name = "Healthy",
        type_ = "integer",
        json_path = ".status.currentHealthy"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MachineHealthCheckSpec {
    /// Name of the Cluster.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterName is immutable"))]
    pub cluster_name: String,
    /// Machines this check watches.
    pub selector: LabelSelector,
    /// What counts as unhealthy.
    pub checks: Option<MachineHealthCheckChecks>,
    /// When and how to remediate.
    pub remediation: Option<MachineHealthCheckRemediation>,
}

/// Health checks.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineHealthCheckChecks {
    /// Time a machine may take to get a Node (default 600).
    #[schemars(range(min = 0))]
    pub node_startup_timeout_seconds: Option<i32>,
    /// Node conditions that make a machine unhealthy after a timeout.
    pub unhealthy_node_conditions: Option<Vec<UnhealthyCondition>>,
    /// Machine conditions that make a machine unhealthy after a timeout.
    pub unhealthy_machine_conditions: Option<Vec<UnhealthyCondition>>,
}

/// A condition and how long it may hold before the machine is unhealthy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnhealthyCondition {
    /// Condition type.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 316))]
    pub type_: String,
    /// True, False or Unknown.
    #[schemars(regex(pattern = r"^(True|False|Unknown)$"))]
    pub status: String,
    /// Seconds the condition may hold.
    #[schemars(range(min = 0))]
    pub timeout_seconds: i32,
}

/// Remediation settings.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineHealthCheckRemediation {
    /// Remediate only while the unhealthy count is within these limits.
    pub trigger_if: Option<RemediationTrigger>,
    /// External remediation template.
    pub template_ref: Option<MachineHealthCheckRemediationTemplateRef>,
}

/// Blast-radius limits of remediation.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemediationTrigger {
    /// Remediate only when at most this many (or percent) machines are unhealthy.
    pub unhealthy_less_than_or_equal_to: Option<IntOrString>,
    /// Remediate only when the unhealthy count is in this range, e.g. `[1-3]`.
    #[schemars(regex(pattern = r"^\[[0-9]+-[0-9]+\]$"))]
    pub unhealthy_in_range: Option<String>,
}

/// Reference to an external remediation template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineHealthCheckRemediationTemplateRef {
    /// apiVersion of the template.
    pub api_version: String,
    /// Kind of the template.
    pub kind: String,
    /// Name of the template.
    pub name: String,
}

/// Observed state of a MachineHealthCheck.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineHealthCheckStatus {
    /// Machines matched.
    pub expected_machines: Option<i32>,
    /// Machines healthy.
    pub current_healthy: Option<i32>,
    /// Remediations still allowed.
    pub remediations_allowed: Option<i32>,
    /// Names of matched machines.
    pub targets: Option<Vec<String>>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}
