//! `infrastructure.cluster.x-k8s.io/v1beta2` AWSCluster, AWSMachine, AWSMachineTemplate.
//!
//! Field names are CAPA's (`api/v1beta2/awscluster_types.go`, `network_types.go`,
//! `awsmachine_types.go`). slipway's status follows contract v1beta2:
//! `status.initialization.provisioned` rather than CAPA's `status.ready`.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use slipway_api::common::{
    ApiEndpoint, Condition, FailureDomain, MachineAddress, ObjectMeta, ProvisionedInitialization,
    TemplateStatus,
};

/// Desired state of an AWSCluster: the network and API load balancer of one cluster.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "AWSCluster",
    plural = "awsclusters",
    namespaced,
    status = "AwsClusterStatus",
    shortname = "awsc",
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
    printcolumn(name = "VPC", type_ = "string", json_path = ".spec.network.vpc.id"),
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
pub struct AwsClusterSpec {
    /// VPC, subnets, security groups.
    pub network: Option<NetworkSpec>,
    /// AWS region, e.g. `eu-west-1`.
    #[x_kube(validation = Rule::new("self == oldSelf").message("region is immutable"))]
    pub region: Option<String>,
    /// AWS partition (default `aws`).
    pub partition: Option<String>,
    /// SSH key for instances (unset: `default`; empty: no key).
    pub ssh_key_name: Option<String>,
    /// Endpoint of the API load balancer; filled by the provider.
    pub control_plane_endpoint: Option<ApiEndpoint>,
    /// Tags added to every resource (at most 50; keys may not start with `aws:`).
    #[x_kube(validation = Rule::new("self.size() <= 50 && self.all(k, !k.startsWith('aws:'))").message("at most 50 additionalTags, and no key may start with aws:"))]
    pub additional_tags: Option<BTreeMap<String, String>>,
    /// The API server load balancer.
    pub control_plane_load_balancer: Option<AwsLoadBalancerSpec>,
    /// AMI lookup name format.
    pub image_lookup_format: Option<String>,
    /// AMI owner account.
    pub image_lookup_org: Option<String>,
    /// Base OS for AMI lookup.
    #[serde(rename = "imageLookupBaseOS")]
    pub image_lookup_base_os: Option<String>,
    /// Bastion host.
    pub bastion: Option<Bastion>,
    /// Credentials to use.
    pub identity_ref: Option<AwsIdentityReference>,
}

/// CAPA identity reference.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct AwsIdentityReference {
    /// AWSClusterControllerIdentity, AWSClusterRoleIdentity or AWSClusterStaticIdentity.
    #[schemars(regex(
        pattern = r"^(AWSClusterControllerIdentity|AWSClusterRoleIdentity|AWSClusterStaticIdentity)$"
    ))]
    pub kind: String,
    /// Identity name.
    pub name: String,
}

/// Network of a cluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// The VPC.
    pub vpc: Option<VpcSpec>,
    /// Subnets; computed from the VPC CIDR when empty and the VPC is managed.
    pub subnets: Option<Vec<SubnetSpec>>,
    /// CNI ingress rules.
    pub cni: Option<CniSpec>,
    /// Use these security groups instead of creating them (unmanaged VPC only).
    pub security_group_overrides: Option<BTreeMap<String, String>>,
    /// Extra control-plane ingress rules.
    pub additional_control_plane_ingress_rules: Option<Vec<IngressRule>>,
    /// Extra node ingress rules.
    pub additional_node_ingress_rules: Option<Vec<IngressRule>>,
    /// CIDRs allowed to reach NodePorts (default 0.0.0.0/0).
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("every entry of nodePortIngressRuleCidrBlocks must be a CIDR block"))]
    pub node_port_ingress_rule_cidr_blocks: Option<Vec<String>>,
}

/// The VPC of a cluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpcSpec {
    /// VPC ID; set by the provider, or by the user to bring an existing VPC.
    pub id: Option<String>,
    /// CIDR of a managed VPC (default 10.0.0.0/16).
    #[x_kube(validation = Rule::new("isCIDR(self)").message("cidrBlock must be a CIDR block such as 10.0.0.0/16"))]
    pub cidr_block: Option<String>,
    /// Secondary CIDRs.
    pub secondary_cidr_blocks: Option<Vec<VpcCidrBlock>>,
    /// Internet gateway ID; set by the provider.
    pub internet_gateway_id: Option<String>,
    /// Extra VPC tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// Number of AZs to use (default 3).
    #[schemars(range(min = 1))]
    pub availability_zone_usage_limit: Option<i32>,
    /// `Ordered` (default) or `Random`.
    #[schemars(regex(pattern = r"^(Ordered|Random)$"))]
    pub availability_zone_selection: Option<String>,
    /// Remove the default security group's rules.
    #[serde(rename = "emptyRoutesDefaultVPCSecurityGroup")]
    pub empty_routes_default_vpc_security_group: Option<bool>,
    /// `ip-name` or `resource-name`.
    pub private_dns_hostname_type_on_launch: Option<String>,
}

/// A secondary VPC CIDR.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpcCidrBlock {
    /// The CIDR.
    #[x_kube(validation = Rule::new("isCIDR(self)").message("ipv4CidrBlock must be a CIDR block"))]
    pub ipv4_cidr_block: String,
}

/// A subnet.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubnetSpec {
    /// A real `subnet-…` ID or a placeholder name.
    pub id: String,
    /// The real AWS ID; written back by the provider.
    #[serde(rename = "resourceID")]
    pub resource_id: Option<String>,
    /// CIDR of the subnet.
    #[x_kube(validation = Rule::new("isCIDR(self)").message("cidrBlock must be a CIDR block"))]
    pub cidr_block: Option<String>,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Public subnet (routes to the internet gateway).
    pub is_public: Option<bool>,
    /// Route table; written back by the provider.
    pub route_table_id: Option<String>,
    /// NAT gateway; written back by the provider.
    pub nat_gateway_id: Option<String>,
    /// Extra tags.
    pub tags: Option<BTreeMap<String, String>>,
}

/// CNI ingress rules.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CniSpec {
    /// Rules added between control plane and nodes.
    pub cni_ingress_rules: Option<Vec<CniIngressRule>>,
}

/// A CNI ingress rule.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CniIngressRule {
    /// Description.
    pub description: String,
    /// `tcp`, `udp`, `icmp`, `4` (IP-in-IP), `50` (ESP) or `-1`.
    pub protocol: String,
    /// First port.
    pub from_port: i64,
    /// Last port.
    pub to_port: i64,
}

/// A security-group ingress rule.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// Description.
    pub description: String,
    /// Protocol.
    pub protocol: String,
    /// First port.
    pub from_port: i64,
    /// Last port.
    pub to_port: i64,
    /// Source CIDRs.
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("every entry of cidrBlocks must be a CIDR block"))]
    pub cidr_blocks: Option<Vec<String>>,
    /// Source security groups.
    #[serde(rename = "sourceSecurityGroupIDs")]
    pub source_security_group_ids: Option<Vec<String>>,
    /// Source security-group roles (bastion, node, controlplane, apiserver-lb, lb).
    pub source_security_group_roles: Option<Vec<String>>,
}

/// The API server load balancer.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsLoadBalancerSpec {
    /// Name (at most 32 characters).
    #[schemars(length(max = 32))]
    pub name: Option<String>,
    /// `internet-facing` (default) or `internal`.
    #[schemars(regex(pattern = r"^(internet-facing|internal)$"))]
    pub scheme: Option<String>,
    /// Cross-zone balancing.
    pub cross_zone_load_balancing: Option<bool>,
    /// Subnets to use.
    pub subnets: Option<Vec<String>>,
    /// Health check protocol.
    pub health_check_protocol: Option<String>,
    /// Extra security groups (IDs).
    pub additional_security_groups: Option<Vec<String>>,
    /// Extra listeners (NLB only).
    pub additional_listeners: Option<Vec<AdditionalListener>>,
    /// Ingress rules of the LB security group.
    pub ingress_rules: Option<Vec<IngressRule>>,
    /// `classic` (default), `elb`, `alb`, `nlb` or `disabled`.
    #[schemars(regex(pattern = r"^(classic|elb|alb|nlb|disabled)$"))]
    pub load_balancer_type: Option<String>,
    /// Do not rewrite /etc/hosts for a hairpin-less NLB.
    pub disable_hosts_rewrite: Option<bool>,
    /// Preserve client IPs (NLB).
    #[serde(rename = "preserveClientIP")]
    pub preserve_client_ip: Option<bool>,
}

/// An extra LB listener.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct AdditionalListener {
    /// Port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i64,
    /// Protocol (TCP).
    pub protocol: Option<String>,
}

/// Bastion host.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bastion {
    /// Create a bastion.
    pub enabled: Option<bool>,
    /// CIDRs allowed to SSH to it.
    #[serde(rename = "allowedCIDRBlocks")]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("every entry of allowedCIDRBlocks must be a CIDR block"))]
    pub allowed_cidr_blocks: Option<Vec<String>>,
    /// Instance type.
    pub instance_type: Option<String>,
    /// AMI.
    pub ami: Option<String>,
    /// Do not add SSH ingress rules.
    pub disable_ingress_rules: Option<bool>,
}

/// Observed state of an AWSCluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsClusterStatus {
    /// Contract flag `provisioned`.
    pub initialization: Option<ProvisionedInitialization>,
    /// Security groups, load balancer, NAT IPs.
    pub network_status: Option<NetworkStatus>,
    /// One per AZ of the private subnets.
    pub failure_domains: Option<Vec<FailureDomain>>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// Network status.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    /// Security groups by role.
    pub security_groups: Option<BTreeMap<String, SecurityGroup>>,
    /// The API server load balancer.
    pub api_server_elb: Option<LoadBalancerStatus>,
    /// Public IPs of the NAT gateways.
    #[serde(rename = "natGatewaysIPs")]
    pub nat_gateways_ips: Option<Vec<String>>,
    /// The VPC (slipway extension: every resource id is recorded as soon as it exists).
    pub vpc_id: Option<String>,
    /// Subnets of the VPC.
    pub subnets: Option<Vec<SubnetStatus>>,
    /// Internet gateway.
    pub internet_gateway_id: Option<String>,
    /// NAT gateway ids.
    pub nat_gateway_ids: Option<Vec<String>>,
    /// Elastic IP allocation ids.
    pub elastic_ip_allocation_ids: Option<Vec<String>>,
    /// Route table ids.
    pub route_table_ids: Option<Vec<String>>,
    /// Target group of the API server load balancer.
    pub api_server_target_group_arn: Option<String>,
    /// Its listener.
    pub api_server_listener_arn: Option<String>,
}

/// A subnet as it exists.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubnetStatus {
    /// Subnet id.
    pub id: String,
    /// CIDR block.
    pub cidr_block: String,
    /// Availability zone.
    pub availability_zone: String,
    /// Public subnet.
    pub is_public: bool,
}

/// A security group.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct SecurityGroup {
    /// ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Tags.
    pub tags: Option<BTreeMap<String, String>>,
}

/// A load balancer.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerStatus {
    /// Name.
    pub name: Option<String>,
    /// DNS name.
    pub dns_name: Option<String>,
    /// ARN (v2 load balancers).
    pub arn: Option<String>,
    /// Type.
    pub load_balancer_type: Option<String>,
}

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
}
