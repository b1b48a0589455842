//! `infrastructure.cluster.x-k8s.io/v1beta2` AWSMachine and AWSMachineTemplate (CAPA's
//! `awsmachine_types.go`, `awsmachinetemplate_types.go`).

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use slipway_api::common::{
    Condition, MachineAddress, ObjectMeta, ProvisionedInitialization, TemplateStatus,
};

/// Desired state of an AWSMachine: one EC2 instance.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "AWSMachine",
    plural = "awsmachines",
    namespaced,
    status = "AwsMachineStatus",
    shortname = "awsm",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.instanceState"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "InstanceID", type_ = "string", json_path = ".spec.providerID"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AwsMachineSpec {
    /// `aws:///<az>/<instance-id>`; set by the provider.
    #[serde(rename = "providerID")]
    pub provider_id: Option<String>,
    /// Instance ID; set by the provider.
    #[serde(rename = "instanceID")]
    pub instance_id: Option<String>,
    /// AMI.
    pub ami: Option<AmiReference>,
    /// AMI lookup name format.
    pub image_lookup_format: Option<String>,
    /// AMI owner account.
    pub image_lookup_org: Option<String>,
    /// Base OS for AMI lookup.
    #[serde(rename = "imageLookupBaseOS")]
    pub image_lookup_base_os: Option<String>,
    /// EC2 instance type, e.g. `t3.large`.
    #[schemars(length(min = 2))]
    pub instance_type: String,
    /// Extra tags.
    pub additional_tags: Option<BTreeMap<String, String>>,
    /// IAM instance profile name.
    pub iam_instance_profile: Option<String>,
    /// Give the instance a public IP.
    #[serde(rename = "publicIP")]
    pub public_ip: Option<bool>,
    /// Extra security groups.
    pub additional_security_groups: Option<Vec<AwsResourceReference>>,
    /// Subnet.
    pub subnet: Option<AwsResourceReference>,
    /// SSH key (overrides the AWSCluster's).
    pub ssh_key_name: Option<String>,
    /// Root volume.
    pub root_volume: Option<Volume>,
    /// Extra volumes.
    pub non_root_volumes: Option<Vec<Volume>>,
    /// Do not gzip user data.
    pub uncompressed_user_data: Option<bool>,
    /// How bootstrap data reaches the instance.
    pub cloud_init: Option<CloudInit>,
    /// Spot instance options.
    pub spot_market_options: Option<SpotMarketOptions>,
    /// Placement group.
    pub placement_group_name: Option<String>,
    /// `default`, `dedicated` or `host`.
    #[schemars(regex(pattern = r"^(default|dedicated|host)$"))]
    pub tenancy: Option<String>,
    /// Instance metadata service options.
    pub instance_metadata_options: Option<InstanceMetadataOptions>,
}

/// An AMI.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmiReference {
    /// AMI ID.
    pub id: Option<String>,
    /// EKS-optimised AMI lookup: `AmazonLinux` or `AmazonLinuxGPU`.
    pub eks_lookup_type: Option<String>,
}

/// Reference to an AWS resource by ID or filters.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct AwsResourceReference {
    /// Resource ID.
    pub id: Option<String>,
    /// EC2 filters.
    pub filters: Option<Vec<AwsFilter>>,
}

/// An EC2 filter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct AwsFilter {
    /// Filter name.
    pub name: String,
    /// Values.
    pub values: Vec<String>,
}

/// A volume.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Device name (non-root volumes).
    pub device_name: Option<String>,
    /// Size in GiB (at least 8).
    #[schemars(range(min = 8))]
    pub size: i64,
    /// gp2, gp3, io1, io2, st1, sc1, standard.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// IOPS.
    pub iops: Option<i64>,
    /// Throughput (gp3).
    pub throughput: Option<i64>,
    /// Encrypt the volume.
    pub encrypted: Option<bool>,
    /// KMS key.
    pub encryption_key: Option<String>,
}

/// How bootstrap data reaches the instance.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudInit {
    /// Put bootstrap data straight into user data (not via a secret backend).
    pub insecure_skip_secrets_manager: Option<bool>,
    /// `secrets-manager` or `ssm-parameter-store`.
    #[schemars(regex(pattern = r"^(secrets-manager|ssm-parameter-store)$"))]
    pub secure_secrets_backend: Option<String>,
}

/// Spot options.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpotMarketOptions {
    /// Maximum price.
    pub max_price: Option<String>,
}

/// IMDS options.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceMetadataOptions {
    /// `enabled` or `disabled`.
    pub http_endpoint: Option<String>,
    /// Hop limit.
    pub http_put_response_hop_limit: Option<i64>,
    /// `optional` or `required`.
    pub http_tokens: Option<String>,
    /// `enabled` or `disabled`.
    pub instance_metadata_tags: Option<String>,
}

/// Observed state of an AWSMachine.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsMachineStatus {
    /// Contract flag `provisioned`.
    pub initialization: Option<ProvisionedInitialization>,
    /// Addresses of the instance.
    pub addresses: Option<Vec<MachineAddress>>,
    /// EC2 instance state.
    pub instance_state: Option<String>,
    /// Spot instance.
    pub interruptible: Option<bool>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
    /// RunInstances calls: attempt counter (the ClientToken derives from it) and in-flight
    /// marker, written before the call.
    pub creation: Option<super::cluster::Creation>,
}

/// Desired state of an AWSMachineTemplate.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "AWSMachineTemplate",
    plural = "awsmachinetemplates",
    namespaced,
    status = "TemplateStatus",
    shortname = "awsmt",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct AwsMachineTemplateSpec {
    /// The template; immutable, as in CAPA (create a new template to roll out).
    #[x_kube(validation = Rule::new("self == oldSelf").message("AWSMachineTemplate spec.template is immutable: create a new template and point the owner at it"))]
    pub template: AwsMachineTemplateResource,
}

/// The object an AWSMachineTemplate stamps out.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct AwsMachineTemplateResource {
    /// Labels and annotations.
    pub metadata: Option<ObjectMeta>,
    /// Spec of created AWSMachines.
    pub spec: AwsMachineSpec,
}
