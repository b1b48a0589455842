//! `infrastructure.cluster.x-k8s.io/v1beta2` AWSMachinePool (CAPA's
//! `exp/api/v1beta2/awsmachinepool_types.go`): the infrastructure of a MachinePool as one EC2
//! launch template and one Auto Scaling group. Field names are CAPA's; the status carries
//! CAPA's `ready`, `replicas`, `instances`, `launchTemplateID`/`launchTemplateVersion` and
//! `asgStatus`, plus contract v1beta2's `initialization.provisioned`.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use slipway_api::common::{Condition, ProvisionedInitialization};

use super::machine::{
    AmiReference, AwsResourceReference, InstanceMetadataOptions, SpotMarketOptions, Volume,
};

/// Condition types and reasons of AWSMachinePools (CAPA's names).
pub mod conditions {
    /// The Auto Scaling group exists and matches the spec.
    pub const ASG_READY: &str = "ASGReady";
    /// The launch template exists at the wanted version.
    pub const LAUNCH_TEMPLATE_READY: &str = "LaunchTemplateReady";
    /// A rolling replacement was started for the latest launch template version.
    pub const INSTANCE_REFRESH_STARTED: &str = "InstanceRefreshStarted";
    /// Reason: creating or updating the Auto Scaling group failed.
    pub const ASG_PROVISION_FAILED: &str = "ASGProvisionFailed";
    /// Reason: the Auto Scaling group is being deleted.
    pub const ASG_DELETION_IN_PROGRESS: &str = "ASGDeletionInProgress";
    /// Reason: creating or updating the launch template failed.
    pub const LAUNCH_TEMPLATE_RECONCILE_FAILED: &str = "LaunchTemplateReconcileFailed";
    /// Reason: an instance refresh could not be started.
    pub const INSTANCE_REFRESH_FAILED: &str = "InstanceRefreshFailed";
    /// Reason: another instance refresh is still running.
    pub const INSTANCE_REFRESH_NOT_READY: &str = "InstanceRefreshNotReady";
    /// Reason: no refresh is owed (none since the last template change, or refreshes are off).
    pub const NO_INSTANCE_REFRESH: &str = "NoInstanceRefreshNeeded";
    /// Reason: the cluster's network is not provisioned yet.
    pub const WAITING_FOR_CLUSTER_INFRASTRUCTURE: &str = "WaitingForClusterInfrastructure";
}

/// Desired state of an AWSMachinePool.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "AWSMachinePool",
    plural = "awsmachinepools",
    namespaced,
    status = "AwsMachinePoolStatus",
    shortname = "awsmp",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.ready"),
    printcolumn(name = "Replicas", type_ = "string", json_path = ".status.replicas"),
    printcolumn(name = "MinSize", type_ = "string", json_path = ".spec.minSize"),
    printcolumn(name = "MaxSize", type_ = "string", json_path = ".spec.maxSize"),
    printcolumn(
        name = "LaunchTemplate ID",
        type_ = "string",
        json_path = ".status.launchTemplateID"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minSize <= self.maxSize").message("minSize must not exceed maxSize"))]
pub struct AwsMachinePoolSpec {
    /// ARN of the Auto Scaling group; set by the provider.
    #[serde(rename = "providerID")]
    pub provider_id: Option<String>,
    /// Least instances (CAPA's default 1).
    #[schemars(range(min = 0))]
    #[serde(default = "one")]
    pub min_size: i32,
    /// Most instances.
    #[schemars(range(min = 0))]
    pub max_size: i32,
    /// Zones to place instances in (the cluster's subnets of those zones).
    pub availability_zones: Option<Vec<String>>,
    /// With `availabilityZones`: `public`, `private` (the default) or `all` subnets.
    #[schemars(regex(pattern = r"^(public|private|all)$"))]
    pub availability_zone_subnet_type: Option<String>,
    /// Subnets by id or EC2 filters (over the zones).
    pub subnets: Option<Vec<AwsResourceReference>>,
    /// Tags added to the group, its launch template and instances.
    pub additional_tags: Option<BTreeMap<String, String>>,
    /// What every instance is launched with.
    pub aws_launch_template: AwsLaunchTemplate,
    /// Several instance types and an on-demand/spot split.
    pub mixed_instances_policy: Option<MixedInstancesPolicy>,
    /// Provider IDs of the group's instances; set by the provider.
    #[serde(rename = "providerIDList")]
    pub provider_id_list: Option<Vec<String>>,
    /// Seconds between scaling activities, e.g. `300s`.
    pub default_cool_down: Option<String>,
    /// Seconds a new instance warms up, e.g. `300s`.
    pub default_instance_warmup: Option<String>,
    /// How an instance refresh replaces instances after a template change.
    pub refresh_preferences: Option<RefreshPreferences>,
    /// Capacity rebalancing for spot instances.
    pub capacity_rebalance: Option<bool>,
}

fn one() -> i32 {
    1
}

/// CAPA's AWSLaunchTemplate.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsLaunchTemplate {
    /// Name of the launch template (slipway names it after the pool).
    pub name: Option<String>,
    /// IAM instance profile name.
    pub iam_instance_profile: Option<String>,
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
    pub instance_type: Option<String>,
    /// Root volume.
    pub root_volume: Option<Volume>,
    /// Extra volumes.
    pub non_root_volumes: Option<Vec<Volume>>,
    /// SSH key (unset: the AWSCluster's, else `default`; empty: none).
    pub ssh_key_name: Option<String>,
    /// Version of the launch template applied; informational.
    pub version_number: Option<i64>,
    /// Extra security groups.
    pub additional_security_groups: Option<Vec<AwsResourceReference>>,
    /// Spot instance options.
    pub spot_market_options: Option<SpotMarketOptions>,
    /// Instance metadata service options.
    pub instance_metadata_options: Option<InstanceMetadataOptions>,
}

/// CAPA's MixedInstancesPolicy.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MixedInstancesPolicy {
    /// On-demand and spot split.
    pub instances_distribution: Option<InstancesDistribution>,
    /// Instance types to launch instead of the template's.
    pub overrides: Option<Vec<Overrides>>,
}

/// An instance type override.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Overrides {
    /// Instance type.
    pub instance_type: String,
}

/// On-demand and spot split.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstancesDistribution {
    /// `prioritized` or `lowest-price`.
    #[schemars(regex(pattern = r"^(prioritized|lowest-price)$"))]
    pub on_demand_allocation_strategy: Option<String>,
    /// `lowest-price`, `capacity-optimized`, `capacity-optimized-prioritized` or
    /// `price-capacity-optimized`.
    #[schemars(regex(
        pattern = r"^(lowest-price|capacity-optimized|capacity-optimized-prioritized|price-capacity-optimized)$"
    ))]
    pub spot_allocation_strategy: Option<String>,
    /// On-demand instances before any spot one.
    pub on_demand_base_capacity: Option<i64>,
    /// Percentage of on-demand instances above the base.
    pub on_demand_percentage_above_base_capacity: Option<i64>,
}

/// Instance refresh preferences.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshPreferences {
    /// Never start an instance refresh on a template change.
    pub disable: Option<bool>,
    /// `Rolling` (the default) or `ReplaceRootVolume`.
    pub strategy: Option<String>,
    /// Seconds until a new instance counts as in service.
    pub instance_warmup: Option<i64>,
    /// Least healthy percentage during the refresh (AWS's default 90).
    pub min_healthy_percentage: Option<i64>,
    /// Most healthy percentage during the refresh.
    pub max_healthy_percentage: Option<i64>,
}

/// One instance of the group.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsMachinePoolInstanceStatus {
    /// EC2 instance id.
    #[serde(rename = "instanceID")]
    pub instance_id: Option<String>,
    /// Launch template version it was launched from.
    pub version: Option<String>,
}

/// Observed state of an AWSMachinePool.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsMachinePoolStatus {
    /// The group exists (CAPA's contract v1beta1 flag).
    pub ready: Option<bool>,
    /// Contract flag `provisioned`.
    pub initialization: Option<ProvisionedInitialization>,
    /// Instances the group reports.
    pub replicas: Option<i32>,
    /// The group's instances.
    pub instances: Option<Vec<AwsMachinePoolInstanceStatus>>,
    /// Id of the launch template.
    #[serde(rename = "launchTemplateID")]
    pub launch_template_id: Option<String>,
    /// Latest version of the launch template.
    pub launch_template_version: Option<String>,
    /// The group's status as Auto Scaling reports it (`Delete in progress` while deleting).
    pub asg_status: Option<String>,
    /// The launch template version an instance refresh is owed for: set when a template change
    /// makes a new version, cleared once StartInstanceRefresh succeeds, so a refresh that fails
    /// is tried again on the next pass rather than forgotten.
    pub pending_instance_refresh: Option<String>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}
