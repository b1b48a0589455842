//! `infrastructure.cluster.x-k8s.io/v1beta2` AWSCluster and its network types (CAPA's
//! `awscluster_types.go`, `network_types.go`).

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use slipway_api::common::{ApiEndpoint, Condition, FailureDomain, ProvisionedInitialization};

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
    /// The last drift repair of a Ready cluster.
    pub drift: Option<DriftStatus>,
    /// Create calls by resource name (`<cluster>-vpc`, `<cluster>-nat-<zone>`, ...): the
    /// attempt counter and, while a create may be in flight, when it was recorded. Written
    /// before the call, so a restarted controller knows what may exist already.
    pub creations: Option<BTreeMap<String, Creation>>,
}

/// A drift repair.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftStatus {
    /// When it was started (RFC 3339).
    pub last_repair_time: Option<String>,
    /// What was made again.
    pub repaired: Option<String>,
    /// Whether the repair is still under way.
    pub repairing: Option<bool>,
}

/// One resource's create calls: the attempt counter (the ClientToken derives from it, where
/// AWS takes one) and the in-flight marker.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Creation {
    /// Attempts recorded so far (1 for the first create).
    pub attempt: u32,
    /// Set while the create may be in flight: when the attempt was recorded (RFC 3339).
    pub since: Option<String>,
    /// Which controller process recorded it (a random id per process).
    pub by: Option<String>,
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

/// Desired state of an AWSClusterTemplate: the infrastructure cluster template of a
/// ClusterClass (`spec.infrastructure.templateRef`); the topology controller stamps an
/// AWSCluster out of `spec.template`. As in CAPA, it has no status and its spec is immutable.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "AWSClusterTemplate",
    plural = "awsclustertemplates",
    namespaced,
    shortname = "awsct",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct AwsClusterTemplateSpec {
    /// The template.
    #[x_kube(validation = Rule::new("self == oldSelf").message("AWSClusterTemplate spec.template is immutable: create a new template and point the ClusterClass at it"))]
    pub template: AwsClusterTemplateResource,
}

/// The object an AWSClusterTemplate stamps out.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct AwsClusterTemplateResource {
    /// Labels and annotations of the created AWSCluster.
    pub metadata: Option<slipway_api::common::ObjectMeta>,
    /// Spec of the created AWSCluster.
    pub spec: AwsClusterSpec,
}
