//! Registry objects slipway writes for fleet tools: SIG-Multicluster `ClusterProfile`
//! (`multicluster.x-k8s.io/v1alpha1`) and KubeFed `KubeFedCluster` (`core.kubefed.io/v1beta1`).
//!
//! Shapes follow kubernetes-sigs/cluster-inventory-api and kubefed so their consumers read
//! slipway's objects unchanged. No secret material is stored in either: ClusterProfile points at
//! the `<cluster>-kubeconfig` Secret through an access provider, KubeFedCluster at a token Secret.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::common::Condition;

/// Desired state of a ClusterProfile.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "multicluster.x-k8s.io",
    version = "v1alpha1",
    kind = "ClusterProfile",
    plural = "clusterprofiles",
    namespaced,
    status = "ClusterProfileStatus",
    shortname = "cprof",
    category = "cluster-api",
    printcolumn(
        name = "Manager",
        type_ = "string",
        json_path = ".spec.clusterManager.name"
    ),
    printcolumn(
        name = "Healthy",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"ControlPlaneHealthy\")].status"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.version.kubernetes"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterProfileSpec {
    /// Human-readable name.
    #[schemars(length(max = 253))]
    pub display_name: Option<String>,
    /// The manager of this cluster (`slipway`); must equal label `x-k8s.io/cluster-manager`.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterManager is immutable"))]
    pub cluster_manager: ClusterManager,
}

/// A cluster manager.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct ClusterManager {
    /// Manager name.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
}

/// Observed state of a ClusterProfile.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterProfileStatus {
    /// ControlPlaneHealthy and Joined.
    pub conditions: Option<Vec<Condition>>,
    /// Versions.
    pub version: Option<ClusterVersion>,
    /// Properties (cluster id, provider, region, ...).
    pub properties: Option<Vec<Property>>,
    /// How consumers reach the cluster.
    pub access_providers: Option<Vec<AccessProvider>>,
}

/// Versions of a registered cluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct ClusterVersion {
    /// Kubernetes version, e.g. `1.31.0`.
    pub kubernetes: Option<String>,
}

/// A property of a registered cluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    /// Name, e.g. `cluster.x-k8s.io/provider`.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Value.
    #[schemars(length(min = 1, max = 1024))]
    pub value: String,
    /// When it was last observed.
    pub last_observed_time: Option<Time>,
}

/// An access provider: the name a consumer's plugin matches, and the cluster it reaches.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct AccessProvider {
    /// Plugin name, e.g. `kubeconfig-secretreader`.
    pub name: String,
    /// Cluster connection data (clientcmd v1 `Cluster`).
    pub cluster: AccessCluster,
}

/// clientcmd v1 `Cluster` fields a ClusterProfile carries.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct AccessCluster {
    /// API server URL.
    pub server: String,
    /// PEM CA bundle, base64.
    #[serde(rename = "certificate-authority-data")]
    pub certificate_authority_data: Option<String>,
    /// TLS server name override.
    #[serde(rename = "tls-server-name")]
    pub tls_server_name: Option<String>,
    /// Extensions, e.g. `client.authentication.k8s.io/exec` pointing at the kubeconfig Secret.
    pub extensions: Option<Vec<NamedExtension>>,
}

/// A named extension holding an arbitrary object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct NamedExtension {
    /// Extension name.
    pub name: String,
    /// Extension content.
    #[schemars(schema_with = "preserve_unknown_object")]
    pub extension: serde_json::Value,
}

fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Desired state of a KubeFedCluster, as `kubefedctl join` leaves it.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "core.kubefed.io",
    version = "v1beta1",
    kind = "KubeFedCluster",
    plural = "kubefedclusters",
    namespaced,
    status = "KubeFedClusterStatus",
    shortname = "kfc",
    category = "cluster-api",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Kubernetes-Version",
        type_ = "string",
        json_path = ".status.kubernetesVersion"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KubeFedClusterSpec {
    /// API server URL.
    #[schemars(length(min = 1))]
    pub api_endpoint: String,
    /// PEM CA bundle, base64.
    pub ca_bundle: Option<String>,
    /// Secret in the same namespace with key `token`.
    pub secret_ref: LocalSecretReference,
    /// TLS checks to skip: `*`, `SubjectName`, `ValidityPeriod`.
    #[serde(rename = "disabledTLSValidations")]
    pub disabled_tls_validations: Option<Vec<String>>,
    /// Proxy URL.
    #[serde(rename = "proxyURL")]
    pub proxy_url: Option<String>,
}

/// Reference to a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct LocalSecretReference {
    /// Secret name.
    pub name: String,
}

/// Observed state of a KubeFedCluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeFedClusterStatus {
    /// Ready, Offline, ConfigMalformed (kubefed's condition shape, with `lastProbeTime`).
    pub conditions: Option<Vec<KubeFedClusterCondition>>,
    /// Kubernetes version of the member cluster.
    pub kubernetes_version: Option<String>,
    /// Zones of the member's nodes.
    pub zones: Option<Vec<String>>,
    /// Region of the member's nodes.
    pub region: Option<String>,
}

/// A kubefed cluster condition.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeFedClusterCondition {
    /// Ready, Offline or ConfigMalformed.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// Last probe.
    pub last_probe_time: Time,
    /// Last status change.
    pub last_transition_time: Option<Time>,
    /// Machine-readable reason.
    pub reason: Option<String>,
    /// Human-readable message.
    pub message: Option<String>,
}
