//! `infrastructure.cluster.x-k8s.io/v1alpha1` KindCluster, KindClusterTemplate, KindMachine,
//! KindMachineTemplate.
//!
//! One Cluster maps to one kind cluster. kind runs kubeadm itself, so KindMachines are observed
//! (bound to node containers), not created, and slipway's bootstrap data is not executed on them.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use slipway_api::common::{
    ApiEndpoint, Condition, MachineAddress, ObjectMeta, ProvisionedInitialization, TemplateStatus,
};

/// Desired state of a KindCluster.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1alpha1",
    kind = "KindCluster",
    plural = "kindclusters",
    namespaced,
    status = "KindClusterStatus",
    shortname = "kindc",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1alpha1"),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
    ),
    printcolumn(
        name = "Kind cluster",
        type_ = "string",
        json_path = ".status.kindClusterName"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".spec.controlPlaneEndpoint.host",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KindClusterSpec {
    /// Endpoint of the kind API server; filled by the provider.
    pub control_plane_endpoint: Option<ApiEndpoint>,
    /// Name of the kind cluster (default: the Cluster's name).
    #[schemars(length(max = 50))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("kindClusterName is immutable"))]
    pub kind_cluster_name: Option<String>,
    /// Node image (default `kindest/node:<version>`).
    pub node_image: Option<String>,
    /// Which kubeconfig `<cluster>-kubeconfig` carries: `host` (127.0.0.1:port, default) or
    /// `internal` (the control-plane container's address on the Docker network).
    #[schemars(regex(pattern = r"^(host|internal)$"))]
    pub kubeconfig_access: Option<String>,
    /// `Never` (default): changes kind cannot apply in place are reported; `Recreate`: delete and
    /// recreate the kind cluster to apply them.
    #[schemars(regex(pattern = r"^(Never|Recreate)$"))]
    pub recreate_policy: Option<String>,
    /// API server address and port on the host.
    pub networking: Option<KindNetworking>,
}

/// kind networking options.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KindNetworking {
    /// Host address the API server listens on (default 127.0.0.1).
    pub api_server_address: Option<String>,
    /// Host port (default: random).
    #[schemars(range(min = 0, max = 65535))]
    pub api_server_port: Option<i32>,
    /// Do not install kindnet.
    #[serde(rename = "disableDefaultCNI")]
    pub disable_default_cni: Option<bool>,
    /// `iptables`, `ipvs`, `nftables` or `none`.
    pub kube_proxy_mode: Option<String>,
}

/// Observed state of a KindCluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KindClusterStatus {
    /// Contract flag `provisioned`.
    pub initialization: Option<ProvisionedInitialization>,
    /// Name of the kind cluster.
    pub kind_cluster_name: Option<String>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// Desired state of a KindMachine.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1alpha1",
    kind = "KindMachine",
    plural = "kindmachines",
    namespaced,
    status = "KindMachineStatus",
    shortname = "kindm",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1alpha1"),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
    ),
    printcolumn(name = "Node", type_ = "string", json_path = ".status.nodeName"),
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
pub struct KindMachineSpec {
    /// `kind://docker/<cluster>/<node>`; set by the provider.
    #[serde(rename = "providerID")]
    pub provider_id: Option<String>,
    /// Labels put on the node through the kind config.
    pub node_labels: Option<BTreeMap<String, String>>,
}

/// Observed state of a KindMachine.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KindMachineStatus {
    /// Contract flag `provisioned`.
    pub initialization: Option<ProvisionedInitialization>,
    /// Node container bound to this machine.
    pub node_name: Option<String>,
    /// Addresses from `docker inspect`.
    pub addresses: Option<Vec<MachineAddress>>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// Desired state of a KindMachineTemplate.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1alpha1",
    kind = "KindMachineTemplate",
    plural = "kindmachinetemplates",
    namespaced,
    status = "TemplateStatus",
    shortname = "kindmt",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1alpha1"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct KindMachineTemplateSpec {
    /// The template.
    pub template: KindMachineTemplateResource,
}

/// The object a KindMachineTemplate stamps out.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct KindMachineTemplateResource {
    /// Labels and annotations.
    pub metadata: Option<ObjectMeta>,
    /// Spec of created KindMachines.
    pub spec: KindMachineSpec,
}

/// Desired state of a KindClusterTemplate: the infrastructure cluster template of a
/// ClusterClass; the topology controller stamps a KindCluster out of `spec.template`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1alpha1",
    kind = "KindClusterTemplate",
    plural = "kindclustertemplates",
    namespaced,
    status = "TemplateStatus",
    shortname = "kindct",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1alpha1"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct KindClusterTemplateSpec {
    /// The template.
    pub template: KindClusterTemplateResource,
}

/// The object a KindClusterTemplate stamps out.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct KindClusterTemplateResource {
    /// Labels and annotations of the created KindCluster.
    pub metadata: Option<ObjectMeta>,
    /// Spec of the created KindCluster.
    pub spec: KindClusterSpec,
}
