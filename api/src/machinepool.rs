//! `cluster.x-k8s.io/v1beta2` MachinePool: a group of machines the infrastructure manages as
//! one (an AWS Auto Scaling group, an EKS managed node group, an in-memory pool).
//!
//! Core owns the bootstrap config of the pool (one for all its instances) and reads the
//! infrastructure pool through the MachinePool contract: `spec.providerIDList`,
//! `status.replicas`, `status.initialization.provisioned` (or v1beta1's `status.ready`). The
//! infrastructure reads the desired `spec.replicas` and bootstrap data from its owner pool.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::{
    common::{Condition, StatusVersion},
    machine::MachineTemplateSpec,
};

/// Finalizer of MachinePools (upstream's).
pub const FINALIZER: &str = "machinepool.cluster.x-k8s.io";

/// Desired state of a MachinePool.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cluster.x-k8s.io",
    version = "v1beta2",
    kind = "MachinePool",
    plural = "machinepools",
    namespaced,
    status = "MachinePoolStatus",
    shortname = "mp",
    category = "cluster-api",
    scale = r#"{"specReplicasPath":".spec.replicas","statusReplicasPath":".status.replicas"}"#,
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterName"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.availableReplicas"
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
#[serde(rename_all = "camelCase")]
pub struct MachinePoolSpec {
    /// Name of the Cluster.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterName is immutable"))]
    pub cluster_name: String,
    /// Desired number of instances (default 1).
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// The instances: bootstrap config, infrastructure pool reference, version.
    pub template: MachineTemplateSpec,
    /// Provider IDs of the instances, copied from the infrastructure pool.
    #[serde(rename = "providerIDList")]
    #[schemars(length(max = 10000))]
    pub provider_id_list: Option<Vec<String>>,
    /// Failure domains the pool spreads over.
    #[schemars(length(max = 100))]
    pub failure_domains: Option<Vec<String>>,
}

impl MachinePoolSpec {
    /// Desired replicas, 1 when unset (upstream's default).
    pub fn desired(&self) -> i32 {
        self.replicas.unwrap_or(1)
    }
}

/// Observed state of a MachinePool.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachinePoolStatus {
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Contract flags, set once.
    pub initialization: Option<MachinePoolInitializationStatus>,
    /// The Nodes of the instances.
    pub node_refs: Option<Vec<ObjectReference>>,
    /// Instances the infrastructure reports.
    pub replicas: Option<i32>,
    /// Instances whose Node is Ready.
    pub ready_replicas: Option<i32>,
    /// Instances available (Ready; the pool has no minReadySeconds of its own).
    pub available_replicas: Option<i32>,
    /// Instances at the pool's current template.
    pub up_to_date_replicas: Option<i32>,
    /// Kubernetes versions of the instances' Nodes.
    pub versions: Option<Vec<StatusVersion>>,
    /// Informational phase (see [`phase`]).
    pub phase: Option<String>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// `status.initialization` of a MachinePool.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachinePoolInitializationStatus {
    /// The infrastructure pool reported provisioned.
    pub infrastructure_provisioned: Option<bool>,
    /// The bootstrap config reported its data Secret created.
    pub bootstrap_data_secret_created: Option<bool>,
}

/// MachinePool phases (informational only).
pub mod phase {
    /// Waiting for bootstrap data or infrastructure.
    pub const PENDING: &str = "Pending";
    /// Infrastructure being created.
    pub const PROVISIONING: &str = "Provisioning";
    /// Infrastructure exists, not every Node is there.
    pub const PROVISIONED: &str = "Provisioned";
    /// Every desired instance has a Ready Node.
    pub const RUNNING: &str = "Running";
    /// Fewer instances than desired.
    pub const SCALING_UP: &str = "ScalingUp";
    /// More instances than desired.
    pub const SCALING_DOWN: &str = "ScalingDown";
    /// Being deleted.
    pub const DELETING: &str = "Deleting";
    /// Failed.
    pub const FAILED: &str = "Failed";
}
