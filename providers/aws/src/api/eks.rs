//! EKS kinds: `controlplane.cluster.x-k8s.io/v1beta2` AWSManagedControlPlane and
//! `infrastructure.cluster.x-k8s.io/v1beta2` AWSManagedCluster and AWSManagedMachinePool
//! (CAPA's `controlplane/eks` and `exp` types).

use std::collections::BTreeMap;

use super::cluster::{AwsIdentityReference, NetworkSpec, NetworkStatus};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use slipway_api::common::{ApiEndpoint, Condition, FailureDomain, ProvisionedInitialization};

/// Desired state of an AWSManagedCluster: the infrastructure cluster of an EKS cluster. It owns
/// nothing in AWS; it mirrors the AWSManagedControlPlane's endpoint, as in CAPA.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "AWSManagedCluster",
    plural = "awsmanagedclusters",
    namespaced,
    status = "AwsManagedClusterStatus",
    shortname = "awsmc",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
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
pub struct AwsManagedClusterSpec {
    /// Endpoint of the EKS API server; copied from the AWSManagedControlPlane.
    pub control_plane_endpoint: Option<ApiEndpoint>,
}

/// Observed state of an AWSManagedCluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsManagedClusterStatus {
    /// Contract flag `provisioned`.
    pub initialization: Option<ProvisionedInitialization>,
    /// Failure domains of the EKS cluster.
    pub failure_domains: Option<Vec<FailureDomain>>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// Desired state of an AWSManagedMachinePool: one EKS managed node group of a Cluster.
///
/// slipway has no core MachinePool kind yet, so the pool stands on its own: it belongs to the
/// Cluster its `cluster.x-k8s.io/cluster-name` label names, and carries its size in
/// `spec.replicas` (CAPA reads that from the MachinePool).
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "AWSManagedMachinePool",
    plural = "awsmanagedmachinepools",
    namespaced,
    status = "AwsManagedMachinePoolStatus",
    shortname = "awsmmp",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AwsManagedMachinePoolSpec {
    /// Node group name (default `<namespace>_<pool>`).
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("eksNodegroupName is immutable"))]
    pub eks_nodegroup_name: Option<String>,
    /// Desired nodes.
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Scaling bounds (default: replicas for both).
    pub scaling: Option<ManagedMachinePoolScaling>,
    /// Instance type, e.g. t3.large.
    pub instance_type: Option<String>,
    /// AMI type, e.g. AL2023_x86_64_STANDARD.
    pub ami_type: Option<String>,
    /// Root disk size in GiB.
    #[schemars(range(min = 1))]
    pub disk_size: Option<i32>,
    /// IAM role of the nodes (default CAPA's `eks-nodegroup.cluster-api-provider-aws.sigs.k8s.io`).
    pub role_name: Option<String>,
    /// Subnets (default: the private subnets of the cluster's network).
    #[serde(rename = "subnetIDs")]
    pub subnet_ids: Option<Vec<String>>,
    /// Kubernetes labels of the nodes.
    pub labels: Option<BTreeMap<String, String>>,
    /// Tags added to the node group.
    pub additional_tags: Option<BTreeMap<String, String>>,
}

/// Scaling bounds of a node group.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedMachinePoolScaling {
    /// Fewest nodes.
    #[schemars(range(min = 0))]
    pub min_size: Option<i32>,
    /// Most nodes.
    #[schemars(range(min = 1))]
    pub max_size: Option<i32>,
}

/// Observed state of an AWSManagedMachinePool.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsManagedMachinePoolStatus {
    /// Contract flag `provisioned`.
    pub initialization: Option<ProvisionedInitialization>,
    /// Nodes the node group reports.
    pub replicas: Option<i32>,
    /// Nodes when the group is ACTIVE.
    pub ready_replicas: Option<i32>,
    /// ARN of the node group.
    pub nodegroup_arn: Option<String>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
    /// CreateNodegroup calls: attempt counter (the clientRequestToken derives from it) and
    /// in-flight marker, written before the call.
    pub creation: Option<super::cluster::Creation>,
}

/// Desired state of an EKS control plane (CAPA's AWSManagedControlPlane fields).
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "controlplane.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "AWSManagedControlPlane",
    plural = "awsmanagedcontrolplanes",
    namespaced,
    status = "AwsManagedControlPlaneStatus",
    shortname = "awsmcp",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
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
    ),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version")
)]
#[serde(rename_all = "camelCase")]
pub struct AwsManagedControlPlaneSpec {
    /// EKS cluster name (default: `<namespace>_<name>`, at most 100 characters).
    #[schemars(length(max = 100))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("eksClusterName is immutable"))]
    pub eks_cluster_name: Option<String>,
    /// Credentials to use.
    pub identity_ref: Option<AwsIdentityReference>,
    /// VPC and subnets.
    pub network: Option<NetworkSpec>,
    /// Secondary CIDR of the VPC (for pod networking).
    #[x_kube(validation = Rule::new("isCIDR(self)").message("secondaryCidrBlock must be a CIDR block"))]
    pub secondary_cidr_block: Option<String>,
    /// AWS region.
    #[x_kube(validation = Rule::new("self == oldSelf").message("region is immutable"))]
    pub region: Option<String>,
    /// SSH key for the bastion.
    pub ssh_key_name: Option<String>,
    /// Kubernetes version, e.g. `v1.31`.
    #[x_kube(validation = Rule::new("self.matches('^v?[0-9]+\\\\.[0-9]+(\\\\.[0-9]+)?$')").message("version must look like v1.31 or v1.31.0"))]
    pub version: Option<String>,
    /// IAM role of the EKS control plane.
    pub role_name: Option<String>,
    /// Extra IAM policies for that role.
    pub role_additional_policies: Option<Vec<String>>,
    /// Control-plane log types.
    pub logging: Option<ControlPlaneLoggingSpec>,
    /// Secrets encryption.
    pub encryption_config: Option<EncryptionConfig>,
    /// Tags added to every resource.
    pub additional_tags: Option<BTreeMap<String, String>>,
    /// API endpoint access.
    pub endpoint_access: Option<EndpointAccess>,
    /// Endpoint; filled from EKS.
    pub control_plane_endpoint: Option<ApiEndpoint>,
    /// `iam-authenticator` or `aws-cli`.
    #[schemars(regex(pattern = r"^(iam-authenticator|aws-cli)$"))]
    pub token_method: Option<String>,
    /// Associate an IAM OIDC provider.
    #[serde(rename = "associateOIDCProvider")]
    pub associate_oidc_provider: Option<bool>,
    /// EKS addons.
    pub addons: Option<Vec<EksAddon>>,
    /// Access configuration.
    pub access_config: Option<AccessConfig>,
    /// Install the VPC CNI (default true).
    pub vpc_cni: Option<EksComponentToggle>,
    /// Install kube-proxy (default true).
    pub kube_proxy: Option<EksComponentToggle>,
    /// Let EKS install its default addons.
    pub bootstrap_self_managed_addons: Option<bool>,
    /// Use only private subnets for the control plane.
    pub restrict_private_subnets: Option<bool>,
}

/// Control-plane logging.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneLoggingSpec {
    /// API server logs.
    pub api_server: Option<bool>,
    /// Audit logs.
    pub audit: Option<bool>,
    /// Authenticator logs.
    pub authenticator: Option<bool>,
    /// Controller manager logs.
    pub controller_manager: Option<bool>,
    /// Scheduler logs.
    pub scheduler: Option<bool>,
}

/// Secrets encryption.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct EncryptionConfig {
    /// KMS key ARN.
    pub provider: Option<String>,
    /// Resources to encrypt, e.g. `secrets`.
    pub resources: Option<Vec<String>>,
}

/// Endpoint access.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointAccess {
    /// Public endpoint (default true).
    pub public: Option<bool>,
    /// Private endpoint.
    pub private: Option<bool>,
    /// CIDRs allowed to reach the public endpoint.
    #[serde(rename = "publicCIDRs")]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("every entry of publicCIDRs must be a CIDR block"))]
    pub public_cidrs: Option<Vec<String>>,
}

/// An EKS addon.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EksAddon {
    /// Addon name, e.g. `coredns`.
    pub name: String,
    /// Addon version.
    pub version: String,
    /// JSON configuration.
    pub configuration: Option<String>,
    /// `overwrite`, `none` or `preserve`.
    pub conflict_resolution: Option<String>,
    /// Service-account role ARN.
    pub service_account_role_arn: Option<String>,
}

/// Access configuration.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessConfig {
    /// `CONFIG_MAP`, `API` or `API_AND_CONFIG_MAP`.
    #[schemars(regex(pattern = r"^(CONFIG_MAP|API|API_AND_CONFIG_MAP)$"))]
    pub authentication_mode: Option<String>,
    /// Give the creator admin access.
    pub bootstrap_cluster_creator_admin_permissions: Option<bool>,
}

/// A component that can be switched off.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct EksComponentToggle {
    /// Do not install it.
    pub disable: Option<bool>,
}

/// Observed state of an EKS control plane.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsManagedControlPlaneStatus {
    /// Contract flags, set once.
    pub initialization: Option<slipway_api::controlplane::ControlPlaneInitializationStatus>,
    /// Network status (security groups, NAT IPs).
    pub network_status: Option<NetworkStatus>,
    /// Failure domains of the cluster.
    pub failure_domains: Option<Vec<slipway_api::common::FailureDomain>>,
    /// Kubernetes version reported by EKS.
    pub version: Option<String>,
    /// OIDC provider ARN and trust policy.
    pub oidc_provider: Option<BTreeMap<String, String>>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
    /// Create calls by resource name (the network's, as an AWSCluster's, and the EKS
    /// cluster's): attempt counter and in-flight marker, written before the call.
    pub creations: Option<BTreeMap<String, super::cluster::Creation>>,
}
