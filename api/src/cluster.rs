//! `cluster.x-k8s.io/v1beta2` Cluster: the root object of a workload cluster.
//!
//! Contract fields core reads and writes: `spec.controlPlaneEndpoint` (copied from the
//! infrastructure cluster or control plane), `status.initialization.{infrastructureProvisioned,
//! controlPlaneInitialized}` (set once, never flipped back), `status.conditions`.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::common::{
    ApiEndpoint, Condition, ContractVersionedObjectReference, FailureDomain, MachineDeletionSpec,
    ObjectMeta, ReadinessGate, ReplicaSummary, Taint,
};

/// Desired state of a Cluster.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cluster.x-k8s.io",
    version = "v1beta2",
    kind = "Cluster",
    plural = "clusters",
    namespaced,
    status = "ClusterStatus",
    shortname = "cl",
    category = "cluster-api",
    printcolumn(name = "Paused", type_ = "string", json_path = ".status.conditions[?(@.type==\"Paused\")].status", priority = 10),
    printcolumn(name = "Available", type_ = "string", json_path = ".status.conditions[?(@.type==\"Available\")].status"),
    printcolumn(name = "CP Desired", type_ = "integer", json_path = ".status.controlPlane.desiredReplicas"),
    printcolumn(name = "CP Current", type_ = "integer", json_path = ".status.controlPlane.replicas", priority = 10),
    printcolumn(name = "CP Ready", type_ = "integer", json_path = ".status.controlPlane.readyReplicas", priority = 10),
    printcolumn(name = "CP Available", type_ = "integer", json_path = ".status.controlPlane.availableReplicas"),
    printcolumn(name = "CP Up-to-date", type_ = "integer", json_path = ".status.controlPlane.upToDateReplicas"),
    printcolumn(name = "W Desired", type_ = "integer", json_path = ".status.workers.desiredReplicas"),
    printcolumn(name = "W Current", type_ = "integer", json_path = ".status.workers.replicas", priority = 10),
    printcolumn(name = "W Ready", type_ = "integer", json_path = ".status.workers.readyReplicas", priority = 10),
    printcolumn(name = "W Available", type_ = "integer", json_path = ".status.workers.availableReplicas"),
    printcolumn(name = "W Up-to-date", type_ = "integer", json_path = ".status.workers.upToDateReplicas"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.controlPlane.versions[0].version"),
    validation = Rule::new("self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must be a DNS label: at most 63 lower-case alphanumerics or '-', starting and ending alphanumeric"),
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Pauses every controller acting on this cluster and its objects.
    pub paused: Option<bool>,
    /// Network settings of the workload cluster.
    pub cluster_network: Option<ClusterNetwork>,
    /// Endpoint of the workload API server; filled from the infrastructure cluster when empty.
    pub control_plane_endpoint: Option<ApiEndpoint>,
    /// The control plane provider object (e.g. KubeadmControlPlane).
    #[x_kube(validation = Rule::new("self.apiGroup == oldSelf.apiGroup && self.kind == oldSelf.kind").message("controlPlaneRef apiGroup and kind are immutable"))]
    pub control_plane_ref: Option<ContractVersionedObjectReference>,
    /// The infrastructure provider object (e.g. AWSCluster).
    #[x_kube(validation = Rule::new("self.apiGroup == oldSelf.apiGroup && self.kind == oldSelf.kind").message("infrastructureRef apiGroup and kind are immutable"))]
    pub infrastructure_ref: Option<ContractVersionedObjectReference>,
    /// ClusterClass topology: when set, the topology controller creates and keeps in sync the
    /// infrastructure cluster, control plane and workers from the class.
    pub topology: Option<Topology>,
    /// Extra conditions that must be true for the cluster to be Available.
    pub availability_gates: Option<Vec<crate::common::ReadinessGate>>,
}

/// Cluster network (upstream `ClusterNetwork`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetwork {
    /// Port the API server binds to (default 6443).
    #[schemars(range(min = 1, max = 65535))]
    pub api_server_port: Option<i32>,
    /// Service network.
    pub services: Option<NetworkRanges>,
    /// Pod network.
    pub pods: Option<NetworkRanges>,
    /// DNS domain of services, e.g. `cluster.local`.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("serviceDomain must be a DNS subdomain"))]
    pub service_domain: Option<String>,
}

/// A list of CIDR blocks.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRanges {
    /// CIDR blocks, e.g. `192.168.0.0/16`.
    #[schemars(length(max = 100))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("every entry of cidrBlocks must be a CIDR block such as 192.168.0.0/16"))]
    pub cidr_blocks: Vec<String>,
}

/// ClusterClass topology: the Cluster's shape, built from its class by the topology controller.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Topology {
    /// The ClusterClass.
    pub class_ref: TopologyClassRef,
    /// Kubernetes version of the cluster.
    #[x_kube(validation = Rule::new("self.matches('^v?[0-9]+\\\\.[0-9]+\\\\.[0-9]+([-+].*)?$')").message("topology.version must look like v1.31.0"))]
    pub version: String,
    /// The control plane.
    pub control_plane: Option<ControlPlaneTopology>,
    /// The workers.
    pub workers: Option<WorkersTopology>,
    /// Values of the class's variables.
    pub variables: Option<Vec<ClusterVariable>>,
}

/// Reference to a ClusterClass.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct TopologyClassRef {
    /// Name of the ClusterClass.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the ClusterClass (default: the Cluster's).
    pub namespace: Option<String>,
}

/// `topology.controlPlane`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneTopology {
    /// Labels and annotations of the control plane.
    pub metadata: Option<ObjectMeta>,
    /// Number of control-plane machines.
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Rollout (`after`).
    pub rollout: Option<TopologyRollout>,
    /// Health check override.
    pub health_check: Option<TopologyHealthCheck>,
    /// Deletion timeouts.
    pub deletion: Option<MachineDeletionSpec>,
    /// Node taints.
    pub taints: Option<Vec<Taint>>,
    /// Extra readiness gates.
    pub readiness_gates: Option<Vec<ReadinessGate>>,
    /// Variable overrides for the control plane.
    pub variables: Option<VariableOverrides>,
}

/// `rollout` of a topology part.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct TopologyRollout {
    /// Roll out machines created before this time.
    pub after: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Strategy (MachineDeployments).
    pub strategy: Option<crate::machine::MachineDeploymentStrategy>,
}

/// A topology health check: enable/disable and override the class's.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopologyHealthCheck {
    /// Whether a MachineHealthCheck is created (default: when the class or topology defines checks).
    pub enabled: Option<bool>,
    /// Checks overriding the class's.
    pub checks: Option<crate::machine::MachineHealthCheckChecks>,
    /// Remediation overriding the class's.
    pub remediation: Option<crate::clusterclass::HealthCheckRemediationClass>,
}

/// `topology.workers`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkersTopology {
    /// MachineDeployments.
    #[x_kube(validation = Rule::new("self.all(x, self.exists_one(y, x.name == y.name))").message("machineDeployments names must be unique"))]
    pub machine_deployments: Option<Vec<MachineDeploymentTopology>>,
    /// MachinePools (not supported by slipway's topology controller).
    #[serde(default)]
    #[schemars(schema_with = "crate::clusterclass::any_json")]
    pub machine_pools: Option<Vec<serde_json::Value>>,
}

/// One MachineDeployment of a topology.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineDeploymentTopology {
    /// Labels and annotations.
    pub metadata: Option<ObjectMeta>,
    /// The MachineDeployment class.
    #[schemars(length(min = 1, max = 256))]
    pub class: String,
    /// Name of this MachineDeployment within the topology.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Failure domain of its machines.
    pub failure_domain: Option<String>,
    /// Number of machines.
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Health check override.
    pub health_check: Option<TopologyHealthCheck>,
    /// Deletion order and timeouts.
    #[serde(default)]
    #[schemars(schema_with = "crate::clusterclass::any_json")]
    pub deletion: Option<serde_json::Value>,
    /// Node taints.
    pub taints: Option<Vec<Taint>>,
    /// Seconds a machine must be ready to count as available.
    pub min_ready_seconds: Option<i32>,
    /// Extra readiness gates.
    pub readiness_gates: Option<Vec<ReadinessGate>>,
    /// Rollout settings.
    pub rollout: Option<TopologyRollout>,
    /// Variable overrides for this MachineDeployment.
    pub variables: Option<VariableOverrides>,
}

/// `variables.overrides`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct VariableOverrides {
    /// Values overriding the Cluster's.
    pub overrides: Option<Vec<ClusterVariable>>,
}

/// A variable value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct ClusterVariable {
    /// Name of the variable.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Its value (any JSON).
    #[schemars(schema_with = "crate::clusterclass::any_json")]
    pub value: serde_json::Value,
}

/// Observed state of a Cluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Contract flags, set once.
    pub initialization: Option<ClusterInitializationStatus>,
    /// Control-plane replica counters.
    pub control_plane: Option<ReplicaSummary>,
    /// Worker replica counters.
    pub workers: Option<ReplicaSummary>,
    /// Failure domains offered by the infrastructure.
    pub failure_domains: Option<Vec<FailureDomain>>,
    /// Informational phase: Pending, Provisioning, Provisioned, Deleting, Failed, Unknown.
    pub phase: Option<String>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// `status.initialization` of a Cluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInitializationStatus {
    /// The infrastructure cluster reported provisioned.
    pub infrastructure_provisioned: Option<bool>,
    /// The control plane reported initialized.
    pub control_plane_initialized: Option<bool>,
}

/// Cluster phases (informational only).
pub mod phase {
    /// Created, nothing provisioned.
    pub const PENDING: &str = "Pending";
    /// Infrastructure being provisioned.
    pub const PROVISIONING: &str = "Provisioning";
    /// Infrastructure provisioned.
    pub const PROVISIONED: &str = "Provisioned";
    /// Being deleted.
    pub const DELETING: &str = "Deleting";
    /// Failed (deprecated upstream).
    pub const FAILED: &str = "Failed";
}
