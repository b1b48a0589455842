//! `infrastructure.cluster.x-k8s.io/v1alpha1` InMemoryCluster, InMemoryMachine and template.
//!
//! Simulated infrastructure for tests, demos and scale runs: an InMemoryCluster gets an endpoint
//! on 127.0.0.1, an InMemoryMachine "boots" after its configured delay by executing its bootstrap
//! data the way cloud-init would. Faults set in the spec exercise the failure paths.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use slipway_api::common::{
    ApiEndpoint, Condition, MachineAddress, ObjectMeta, ProvisionedInitialization, TemplateStatus,
};

/// Desired state of an InMemoryCluster.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1alpha1",
    kind = "InMemoryCluster",
    plural = "inmemoryclusters",
    namespaced,
    status = "InMemoryClusterStatus",
    shortname = "imc",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1alpha1"),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".spec.controlPlaneEndpoint.port"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct InMemoryClusterSpec {
    /// Endpoint of the simulated workload API server; 127.0.0.1 and a free port when empty.
    pub control_plane_endpoint: Option<ApiEndpoint>,
    /// Simulated delays.
    pub simulation: Option<ClusterSimulation>,
}

/// Simulated delays of cluster infrastructure.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSimulation {
    /// Seconds before the cluster infrastructure reports provisioned (default 0).
    #[schemars(range(min = 0, max = 3600))]
    pub provisioning_delay_seconds: Option<f64>,
    /// Simulates an outage: the workload API server is stopped while true (its data is kept)
    /// and started again when false.
    pub api_server_stopped: Option<bool>,
}

/// Observed state of an InMemoryCluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct InMemoryClusterStatus {
    /// Contract flag `provisioned`.
    pub initialization: Option<ProvisionedInitialization>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// Desired state of an InMemoryMachine.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1alpha1",
    kind = "InMemoryMachine",
    plural = "inmemorymachines",
    namespaced,
    status = "InMemoryMachineStatus",
    shortname = "imm",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1alpha1"),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Provider ID", type_ = "string", json_path = ".spec.providerID"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct InMemoryMachineSpec {
    /// `in-memory://<namespace>/<cluster>/<machine>`; set by the provider.
    #[serde(rename = "providerID")]
    pub provider_id: Option<String>,
    /// Simulated delays.
    pub simulation: Option<MachineSimulation>,
    /// Injected faults.
    pub faults: Option<MachineFaults>,
}

/// Simulated delays of one machine.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineSimulation {
    /// Seconds from create to the VM running (default 0).
    #[schemars(range(min = 0, max = 3600))]
    pub vm_startup_seconds: Option<f64>,
    /// Seconds from VM running to the Node registering (default 0).
    #[schemars(range(min = 0, max = 3600))]
    pub node_startup_seconds: Option<f64>,
    /// Seconds for the simulated API server to start on the init machine (default 0).
    #[schemars(range(min = 0, max = 3600))]
    pub api_server_startup_seconds: Option<f64>,
    /// Random extra delay, as a percentage of each delay (default 0).
    #[schemars(range(min = 0, max = 100))]
    pub jitter_percent: Option<i32>,
}

/// Faults injected into one machine.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineFaults {
    /// `Succeed` (default), `Fail` (boot fails with `message`) or `Hang` (never boots).
    #[schemars(regex(pattern = r"^(Succeed|Fail|Hang)$"))]
    pub boot: Option<String>,
    /// Message of a failed boot.
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
}

/// Observed state of an InMemoryMachine.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct InMemoryMachineStatus {
    /// Contract flag `provisioned`.
    pub initialization: Option<ProvisionedInitialization>,
    /// Simulated addresses.
    pub addresses: Option<Vec<MachineAddress>>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// Desired state of an InMemoryMachineTemplate.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1alpha1",
    kind = "InMemoryMachineTemplate",
    plural = "inmemorymachinetemplates",
    namespaced,
    status = "TemplateStatus",
    shortname = "immt",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1alpha1"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct InMemoryMachineTemplateSpec {
    /// The template.
    pub template: InMemoryMachineTemplateResource,
}

/// The object an InMemoryMachineTemplate stamps out.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct InMemoryMachineTemplateResource {
    /// Labels and annotations.
    pub metadata: Option<ObjectMeta>,
    /// Spec of created InMemoryMachines.
    pub spec: InMemoryMachineSpec,
}

/// Desired state of an InMemoryClusterTemplate (the infrastructure cluster template of a
/// ClusterClass).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1alpha1",
    kind = "InMemoryClusterTemplate",
    plural = "inmemoryclustertemplates",
    namespaced,
    status = "TemplateStatus",
    shortname = "imct",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1alpha1"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct InMemoryClusterTemplateSpec {
    /// The template.
    pub template: InMemoryClusterTemplateResource,
}

/// The object an InMemoryClusterTemplate stamps out.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct InMemoryClusterTemplateResource {
    /// Labels and annotations.
    pub metadata: Option<ObjectMeta>,
    /// Spec of the created InMemoryCluster.
    pub spec: InMemoryClusterSpec,
}
