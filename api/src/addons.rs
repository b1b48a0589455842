//! `addons.cluster.x-k8s.io/v1beta2` ClusterResourceSet and ClusterResourceSetBinding.
//!
//! A ClusterResourceSet selects Clusters by label and applies the objects held in ConfigMaps
//! and Secrets (type [`SECRET_TYPE`]) into each selected workload cluster once its control
//! plane is initialized. The ClusterResourceSetBinding named after a Cluster records, per
//! ClusterResourceSet, which resources were applied, when, and the hash of what was applied
//! (the `Reconcile` strategy re-applies when that hash changes).
//!
//! Field names, condition types and reasons are upstream's (`api/addons/v1beta2`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::common::Condition;

/// The API group.
pub const GROUP: &str = "addons.cluster.x-k8s.io";
/// The only Secret type a ClusterResourceSet applies.
pub const SECRET_TYPE: &str = "addons.cluster.x-k8s.io/resource-set";
/// Finalizer of ClusterResourceSets (upstream's).
pub const FINALIZER: &str = "addons.cluster.x-k8s.io";
/// Strategy: apply each resource once.
pub const APPLY_ONCE: &str = "ApplyOnce";
/// Strategy: re-apply a resource whenever its hash changes.
pub const RECONCILE: &str = "Reconcile";

/// Condition type: every resource is applied to every selected cluster.
pub const RESOURCES_APPLIED: &str = "ResourcesApplied";

/// Reasons of [`RESOURCES_APPLIED`].
pub mod reasons {
    /// Everything applied.
    pub const APPLIED: &str = "Applied";
    /// Some resource failed to apply to some cluster (the message names it).
    pub const NOT_APPLIED: &str = "NotApplied";
    /// A Secret in the resources is not of type `addons.cluster.x-k8s.io/resource-set`.
    pub const WRONG_SECRET_TYPE: &str = "WrongSecretType";
    /// An unexpected failure (listing clusters, writing bindings).
    pub const INTERNAL_ERROR: &str = "InternalError";
}

/// Desired state of a ClusterResourceSet.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "addons.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "ClusterResourceSet",
    plural = "clusterresourcesets",
    namespaced,
    status = "ClusterResourceSetStatus",
    category = "cluster-api",
    printcolumn(
        name = "Applied",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"ResourcesApplied\")].status"
    ),
    printcolumn(
        name = "Paused",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Paused\")].status",
        priority = 10
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterResourceSetSpec {
    /// Label selector over Clusters in the same namespace; must not be empty.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterSelector is immutable"))]
    #[x_kube(validation = Rule::new("(has(self.matchLabels) && self.matchLabels.size() > 0) || (has(self.matchExpressions) && self.matchExpressions.size() > 0)").message("clusterSelector must not be empty"))]
    pub cluster_selector: LabelSelector,
    /// ConfigMaps and Secrets (same namespace) whose data values are manifests to apply.
    #[schemars(length(min = 1, max = 100))]
    pub resources: Vec<ResourceRef>,
    /// `ApplyOnce` (default) or `Reconcile`; immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("strategy is immutable"))]
    #[schemars(regex(pattern = "^(ApplyOnce|Reconcile)$"))]
    pub strategy: Option<String>,
}

impl ClusterResourceSetSpec {
    /// The strategy, `ApplyOnce` when unset.
    pub fn strategy(&self) -> &str {
        self.strategy.as_deref().unwrap_or(APPLY_ONCE)
    }
}

/// A ConfigMap or Secret in the ClusterResourceSet's namespace.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, KubeSchema,
)]
pub struct ResourceRef {
    /// Name of the ConfigMap or Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `ConfigMap` or `Secret`.
    #[schemars(regex(pattern = "^(Secret|ConfigMap)$"))]
    pub kind: String,
}

impl std::fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// Observed state of a ClusterResourceSet.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterResourceSetStatus {
    /// v1beta2 conditions (`ResourcesApplied`, `Paused`).
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// Desired state of a ClusterResourceSetBinding (named after its Cluster).
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "addons.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "ClusterResourceSetBinding",
    plural = "clusterresourcesetbindings",
    namespaced,
    category = "cluster-api",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterName"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterResourceSetBindingSpec {
    /// One entry per ClusterResourceSet applied to the Cluster.
    #[schemars(length(max = 100))]
    pub bindings: Option<Vec<ResourceSetBinding>>,
    /// The Cluster this binding belongs to.
    #[schemars(length(min = 1, max = 63))]
    pub cluster_name: String,
}

/// What one ClusterResourceSet applied to the Cluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSetBinding {
    /// The ClusterResourceSet.
    #[schemars(length(min = 1, max = 253))]
    pub cluster_resource_set_name: String,
    /// Its resources.
    #[schemars(length(max = 100))]
    pub resources: Option<Vec<ResourceBinding>>,
}

/// One resource of a ClusterResourceSet as applied to one Cluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceBinding {
    /// Name of the ConfigMap or Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `ConfigMap` or `Secret`.
    #[schemars(regex(pattern = "^(Secret|ConfigMap)$"))]
    pub kind: String,
    /// Hash of the resource's data when last applied (`sha256:<hex>`).
    #[schemars(length(min = 1, max = 256))]
    pub hash: Option<String>,
    /// When it was last applied.
    pub last_applied_time: Option<Time>,
    /// Whether it is applied.
    pub applied: bool,
}

impl ResourceBinding {
    /// The resource this entry is about.
    pub fn resource(&self) -> ResourceRef {
        ResourceRef {
            name: self.name.clone(),
            kind: self.kind.clone(),
        }
    }
}
