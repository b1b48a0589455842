//! `cluster.x-k8s.io/v1beta2` Cluster: the root object of a workload cluster.
//!
//! Contract fields core reads and writes: `spec.controlPlaneEndpoint` (copied from the
//! infrastructure cluster or control plane), `status.initialization.{infrastructureProvisioned,
//! controlPlaneInitialized}` (set once, never flipped back), `status.conditions`.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::common::{
    ApiEndpoint, Condition, ContractVersionedObjectReference, FailureDomain, ReplicaSummary,
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
    /// ClusterClass topology. Accepted for compatibility; slipway does not implement ClusterClass
    /// and reports a TopologyUnsupported condition when it is set.
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

/// ClusterClass topology (accepted, not acted on; see `ClusterSpec::topology`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Topology {
    /// The ClusterClass.
    pub class_ref: TopologyClassRef,
    /// Kubernetes version of the cluster.
    pub version: String,
}

/// Reference to a ClusterClass.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct TopologyClassRef {
    /// Name of the ClusterClass.
    pub name: String,
    /// Namespace of the ClusterClass (default: the Cluster's).
    pub namespace: Option<String>,
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
