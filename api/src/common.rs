//! Building blocks shared by every kind: v1beta2 contract references, endpoints, template
//! metadata, machine addresses, failure domains and replica summaries.
//!
//! Field names follow upstream Cluster API v1beta2 (`api/core/v1beta2/common_types.go`).

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// A v1beta2 reference to a provider object in the same namespace: `{apiGroup, kind, name}`.
///
/// The version is not part of the reference; core resolves it from the referenced CRD's contract
/// label `cluster.x-k8s.io/v1beta2: <versions>`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContractVersionedObjectReference {
    /// API group of the referenced object, e.g. `infrastructure.cluster.x-k8s.io`.
    #[schemars(length(min = 1, max = 253))]
    pub api_group: String,
    /// Kind of the referenced object, e.g. `AWSCluster`.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Name of the referenced object, in the referrer's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

impl ContractVersionedObjectReference {
    /// Builds a reference from its three parts.
    pub fn new(api_group: &str, kind: &str, name: &str) -> Self {
        Self {
            api_group: api_group.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }
}

/// A plain name reference to an object in the same namespace (`{name}`), e.g. `nodeRef`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct NameReference {
    /// Name of the referenced object.
    pub name: String,
}

/// The address of a control-plane endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct ApiEndpoint {
    /// Hostname or IP the API server is reachable at.
    #[schemars(length(max = 512))]
    pub host: String,
    /// Port of the API server.
    #[schemars(range(min = 0, max = 65535))]
    pub port: i32,
}

impl ApiEndpoint {
    /// An endpoint is valid once it has a host and a port (upstream `APIEndpoint.IsValid`).
    pub fn is_valid(&self) -> bool {
        !self.host.is_empty() && self.port != 0
    }
}

/// Labels and annotations carried by templates onto the objects they create.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct ObjectMeta {
    /// Labels copied onto created objects.
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations copied onto created objects.
    pub annotations: Option<BTreeMap<String, String>>,
}

/// One address of a machine, as reported by its infrastructure provider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct MachineAddress {
    /// Address type.
    #[serde(rename = "type")]
    pub type_: MachineAddressType,
    /// The address.
    #[schemars(length(min = 1, max = 256))]
    pub address: String,
}

/// Address types (upstream `MachineAddressType`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum MachineAddressType {
    /// Hostname.
    Hostname,
    /// Externally routable IP.
    ExternalIP,
    /// IP routable inside the cluster.
    InternalIP,
    /// Externally resolvable DNS name.
    ExternalDNS,
    /// DNS name resolvable inside the cluster.
    InternalDNS,
}

/// A failure domain an infrastructure provider offers (v1beta2: a list entry with a name).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureDomain {
    /// Name of the failure domain, e.g. an availability zone.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Whether control-plane machines may be placed here.
    pub control_plane: Option<bool>,
    /// Provider-specific attributes.
    pub attributes: Option<BTreeMap<String, String>>,
}

/// How many machines run one Kubernetes version (upstream `StatusVersion`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct StatusVersion {
    /// A Kubernetes version, e.g. `v1.31.0`.
    pub version: String,
    /// Number of machines at that version.
    pub replicas: Option<i32>,
}

/// Replica counters shared by Cluster (controlPlane / workers), MachineSet and MachineDeployment.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSummary {
    /// Desired number of machines.
    pub desired_replicas: Option<i32>,
    /// Current number of machines.
    pub replicas: Option<i32>,
    /// Machines with Ready true.
    pub ready_replicas: Option<i32>,
    /// Machines with Available true.
    pub available_replicas: Option<i32>,
    /// Machines with UpToDate true.
    pub up_to_date_replicas: Option<i32>,
    /// Versions the machines run, with counts.
    pub versions: Option<Vec<StatusVersion>>,
}

/// Kubernetes taint to put on a Node (v1beta2 `MachineTaint`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value.
    pub value: Option<String>,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    #[schemars(regex(pattern = r"^(NoSchedule|PreferNoSchedule|NoExecute)$"))]
    pub effect: String,
}

/// A readiness gate: an extra condition type that must be true for a machine to be Ready.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessGate {
    /// Condition type on the Machine.
    #[schemars(length(min = 1, max = 316))]
    pub condition_type: String,
    /// `Positive` (default) or `Negative`.
    pub polarity: Option<ConditionPolarity>,
}

/// Whether a condition is good when True (Positive) or when False (Negative).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ConditionPolarity {
    /// True is good.
    Positive,
    /// False is good.
    Negative,
}

/// Machine deletion timeouts (v1beta2 `MachineDeletionSpec`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineDeletionSpec {
    /// Maximum time to drain the node; 0 or unset waits forever.
    #[schemars(range(min = 0))]
    pub node_drain_timeout_seconds: Option<i32>,
    /// Maximum time to wait for volumes to detach.
    #[schemars(range(min = 0))]
    pub node_volume_detach_timeout_seconds: Option<i32>,
    /// Maximum time to retry deleting the Node (default 10).
    #[schemars(range(min = 0))]
    pub node_deletion_timeout_seconds: Option<i32>,
}

/// Generic provider status shared by provider kinds that only follow the contract.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct ProvisionedInitialization {
    /// True once the provider finished provisioning; never flips back.
    pub provisioned: Option<bool>,
}

/// Status of template kinds: conditions only (templates are stamped, never provisioned).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateStatus {
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}
