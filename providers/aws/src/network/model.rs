//! What the network reconciler sees of AWS ([`Observed`]), what it wants ([`Desired`], from the
//! AWSCluster and the zones on offer, as CAPA's defaults), and the names and tags that make
//! every resource findable again: plain data, no I/O.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use crate::ProviderError;

/// Tag key marking what slipway made for a cluster (value `owned`), as CAPA does.
pub fn owner_tag(cluster: &str) -> String {
    format!("sigs.k8s.io/cluster-api-provider-aws/cluster/{cluster}")
}
/// Tag key the Kubernetes AWS cloud provider looks for (value `owned`).
pub fn k8s_tag(cluster: &str) -> String {
    format!("kubernetes.io/cluster/{cluster}")
}
/// Role tag key.
pub const ROLE_TAG: &str = "sigs.k8s.io/cluster-api-provider-aws/role";

/// The tags of a resource: Name, role, both ownership tags and the AWSCluster's
/// `additionalTags` (which never override the ones slipway relies on).
pub fn tags(
    cluster: &str,
    name: &str,
    role: &str,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut t = extra.clone();
    t.insert("Name".into(), name.into());
    t.insert(ROLE_TAG.into(), role.into());
    t.insert(owner_tag(cluster), "owned".into());
    t.insert(k8s_tag(cluster), "owned".into());
    t
}

/// Security-group roles, in creation order.
pub const SG_ROLES: [&str; 4] = ["apiserver-lb", "lb", "controlplane", "node"];

/// A subnet slipway wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredSubnet {
    /// `Name` tag: `<cluster>-subnet-<public|private>-<az>`.
    pub name: String,
    /// CIDR block.
    pub cidr: String,
    /// Availability zone.
    pub az: String,
    /// Public (internet gateway route, public IPs on launch) or private (NAT route).
    pub public: bool,
}

/// The network slipway wants for a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// The cluster name used in names and tags.
    pub cluster: String,
    /// `Some(id)`: a VPC the user brought; slipway makes no network resource in it and never
    /// deletes it.
    pub byo_vpc: Option<String>,
    /// CIDR of a managed VPC.
    pub vpc_cidr: String,
    /// Subnets of a managed VPC.
    pub subnets: Vec<DesiredSubnet>,
    /// Name of the API server load balancer (at most 32 characters).
    pub lb_name: String,
    /// Name of its target group (at most 32 characters).
    pub tg_name: String,
    /// `internet-facing` or `internal`.
    pub lb_scheme: String,
    /// Extra tags for every resource.
    pub extra_tags: BTreeMap<String, String>,
    /// CIDR blocks allowed to reach the API server load balancer.
    pub api_cidrs: Vec<String>,
    /// Whether the API server NLB is part of it (not for EKS).
    pub with_lb: bool,
}

/// CAPA's default subnets: the VPC CIDR split into a power-of-two count of blocks (one more
/// than the zones), the first split again into the public subnets, the others private.
pub fn default_subnets(
    cluster: &str,
    vpc_cidr: &str,
    zones: &[String],
) -> Result<Vec<DesiredSubnet>, ProviderError> {
    let net: Ipv4Net = vpc_cidr.parse().map_err(|e| {
        ProviderError::terminal(format!(
            "spec.network.vpc.cidrBlock {vpc_cidr:?} is not an IPv4 CIDR block: {e}"
        ))
    })?;
    if zones.is_empty() {
        return Err(ProviderError::transient(
            "DescribeAvailabilityZones returned no available zone",
        ));
    }
    let bits = |n: usize| n.next_power_of_two().trailing_zeros() as u8;
    let split = |n: Ipv4Net, count: usize| -> Result<Vec<Ipv4Net>, ProviderError> {
        let prefix = n.prefix_len() + bits(count);
        n.subnets(prefix).map(|s| s.collect()).map_err(|_| {
            ProviderError::terminal(format!(
                "spec.network.vpc.cidrBlock {vpc_cidr} is too small for {} zones",
                zones.len()
            ))
        })
    };
    let blocks = split(net, zones.len() + 1)?;
    let public = split(blocks[0], zones.len())?;
    let mut out = Vec::new();
    for (i, az) in zones.iter().enumerate() {
        out.push(DesiredSubnet {
            name: format!("{cluster}-subnet-public-{az}"),
            cidr: public[i].to_string(),
            az: az.clone(),
            public: true,
        });
        out.push(DesiredSubnet {
            name: format!("{cluster}-subnet-private-{az}"),
            cidr: blocks[i + 1].to_string(),
            az: az.clone(),
            public: false,
        });
    }
    Ok(out)
}

/// An AWS name of at most 32 characters (load balancers, target groups): `base` when it fits,
/// else a prefix of it and a hash, so distinct clusters never share one.
pub fn short_name(base: &str, suffix: &str) -> String {
    let full = format!("{base}{suffix}");
    if full.len() <= 32 {
        return full;
    }
    let h = full.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let hash = format!("{:08x}", h as u32);
    let keep = 32 - suffix.len() - hash.len() - 1;
    let prefix: String = base.chars().take(keep).collect();
    format!("{}-{hash}{suffix}", prefix.trim_end_matches('-'))
}

/// A security-group ingress rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    /// `tcp`, `udp`, `-1` (all) or an IP protocol number (`4`: IP-in-IP).
    pub protocol: String,
    /// First port (-1 for all).
    pub from: i32,
    /// Last port.
    pub to: i32,
    /// Where traffic may come from.
    pub source: Source,
}

/// The source of a rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// A CIDR block.
    Cidr(String),
    /// Another security group, by id.
    Group(String),
}

/// The ingress rules of each role (CAPA's defaults for an NLB with Calico), given the ids of
/// the groups by role and the VPC CIDR.
pub fn desired_rules(
    groups: &BTreeMap<String, String>,
    vpc_cidr: &str,
    api_cidrs: &[String],
) -> BTreeMap<String, Vec<Rule>> {
    let tcp = |from: i32, to: i32, source: Source| Rule {
        protocol: "tcp".into(),
        from,
        to,
        source,
    };
    let from_groups = |roles: &[&str], f: &dyn Fn(Source) -> Rule| -> Vec<Rule> {
        roles
            .iter()
            .filter_map(|r| groups.get(*r))
            .map(|id| f(Source::Group(id.clone())))
            .collect()
    };
    let cni = |s: Source| -> Vec<Rule> {
        vec![
            tcp(179, 179, s.clone()),
            Rule {
                protocol: "4".into(),
                from: -1,
                to: -1,
                source: s,
            },
        ]
    };
    let mut cp = from_groups(&["apiserver-lb", "controlplane", "node"], &|s| {
        tcp(6443, 6443, s)
    });
    cp.extend(from_groups(&["controlplane"], &|s| tcp(2379, 2380, s)));
    let mut node = vec![tcp(30000, 32767, Source::Cidr("0.0.0.0/0".into()))];
    node.extend(from_groups(&["controlplane", "node"], &|s| {
        tcp(10250, 10250, s)
    }));
    for id in ["controlplane", "node"]
        .iter()
        .filter_map(|r| groups.get(*r))
    {
        cp.extend(cni(Source::Group(id.clone())));
        node.extend(cni(Source::Group(id.clone())));
    }
    let api = api_cidrs
        .iter()
        .map(|c| tcp(6443, 6443, Source::Cidr(c.clone())))
        .collect();
    let mut out = BTreeMap::new();
    out.insert("apiserver-lb".to_string(), api);
    out.insert(
        "lb".to_string(),
        vec![tcp(6443, 6443, Source::Cidr(vpc_cidr.to_string()))],
    );
    out.insert("controlplane".to_string(), cp);
    out.insert("node".to_string(), node);
    for v in out.values_mut() {
        v.sort();
        v.dedup();
    }
    out
}

/// The cluster's security groups by role, found by their names `<cluster>-<role>`.
pub fn groups_by_role<'o>(cluster: &str, o: &'o Observed) -> BTreeMap<String, &'o SecurityGroup> {
    SG_ROLES
        .iter()
        .filter_map(|role| {
            let name = format!("{cluster}-{role}");
            o.security_groups
                .iter()
                .find(|g| g.name == name)
                .map(|g| (role.to_string(), g))
        })
        .collect()
}

/// A VPC as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vpc {
    /// Id.
    pub id: String,
    /// Primary CIDR.
    pub cidr: String,
    /// Whether it carries the owned tag.
    pub owned: bool,
    /// `enableDnsHostnames` (observed for managed VPCs only).
    pub dns_hostnames: bool,
}

/// A subnet as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subnet {
    /// Id.
    pub id: String,
    /// `Name` tag.
    pub name: String,
    /// CIDR.
    pub cidr: String,
    /// Zone.
    pub az: String,
    /// Public by role tag (or, for a brought VPC, by map-public-ip-on-launch).
    pub public: bool,
    /// `MapPublicIpOnLaunch`.
    pub map_public_ip: bool,
}

/// An internet gateway as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Igw {
    /// Id.
    pub id: String,
    /// VPCs it is attached to.
    pub attached_to: Vec<String>,
}

/// An Elastic IP as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Eip {
    /// Allocation id.
    pub allocation_id: String,
    /// `Name` tag.
    pub name: String,
    /// Association, if any.
    pub association_id: Option<String>,
    /// The address.
    pub public_ip: String,
}

/// A NAT gateway as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nat {
    /// Id.
    pub id: String,
    /// `Name` tag.
    pub name: String,
    /// Subnet it lives in.
    pub subnet_id: String,
    /// `pending`, `available`, `deleting`, `deleted`, `failed`.
    pub state: String,
    /// Create time, epoch seconds.
    pub created: Option<i64>,
    /// Allocation id of its Elastic IP.
    pub allocation_id: Option<String>,
}

/// A route table as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTable {
    /// Id.
    pub id: String,
    /// `Name` tag.
    pub name: String,
    /// Subnet associations: (association id, subnet id).
    pub associations: Vec<(String, String)>,
    /// Routes: (destination CIDR, target id: gateway or NAT gateway).
    pub routes: Vec<(String, String)>,
}

/// A security group as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityGroup {
    /// Id.
    pub id: String,
    /// Group name, `<cluster>-<role>`.
    pub name: String,
    /// Ingress rules.
    pub ingress: Vec<Rule>,
}

/// A load balancer, target group or listener as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lb {
    /// ARN.
    pub arn: String,
    /// DNS name (load balancers).
    pub dns_name: String,
    /// `provisioning`, `active`, `failed` (load balancers).
    pub state: String,
}

/// An instance as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instance {
    /// Id.
    pub id: String,
    /// State name.
    pub state: String,
    /// Whether its role tag says control plane (registered with the API server target group).
    pub control_plane: bool,
}

/// Everything of a cluster's network that exists in AWS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Zones on offer (sorted).
    pub zones: Vec<String>,
    /// The VPC (managed: by Name tag; brought: by id).
    pub vpc: Option<Vpc>,
    /// Subnets of the VPC.
    pub subnets: Vec<Subnet>,
    /// Internet gateways tagged for the cluster.
    pub igws: Vec<Igw>,
    /// Elastic IPs tagged for the cluster.
    pub eips: Vec<Eip>,
    /// NAT gateways tagged for the cluster (not deleted).
    pub nats: Vec<Nat>,
    /// Route tables tagged for the cluster.
    pub route_tables: Vec<RouteTable>,
    /// Security groups tagged for the cluster.
    pub security_groups: Vec<SecurityGroup>,
    /// The API server load balancer.
    pub lb: Option<Lb>,
    /// Its target group.
    pub tg: Option<Lb>,
    /// Its TCP 6443 listener.
    pub listener: Option<Lb>,
    /// Instances tagged for the cluster that are not terminated.
    pub instances: Vec<Instance>,
    /// Instance ids registered with the target group (sorted).
    pub targets: Vec<String>,
    /// Resources that carry a name of the cluster but not its owned tag: never adopted,
    /// changed or deleted.
    pub foreign: Vec<String>,
    /// Owned VPCs of the cluster's name besides the one kept: (id, subnets in it).
    pub extra_vpcs: Vec<(String, usize)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_subnets_split_as_capa_does() {
        let zones: Vec<String> = ["us-east-1a", "us-east-1b", "us-east-1c"]
            .map(String::from)
            .to_vec();
        let s = default_subnets("c1", "10.0.0.0/16", &zones).unwrap();
        let got: Vec<(&str, &str, bool)> = s
            .iter()
            .map(|s| (s.cidr.as_str(), s.az.as_str(), s.public))
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.0/20", "us-east-1a", true),
                ("10.0.64.0/18", "us-east-1a", false),
                ("10.0.16.0/20", "us-east-1b", true),
                ("10.0.128.0/18", "us-east-1b", false),
                ("10.0.32.0/20", "us-east-1c", true),
                ("10.0.192.0/18", "us-east-1c", false),
            ]
        );
        assert_eq!(s[0].name, "c1-subnet-public-us-east-1a");
        let two = default_subnets("c1", "10.0.0.0/16", &zones[..1]).unwrap();
        assert_eq!(two[0].cidr, "10.0.0.0/17");
        assert_eq!(two[1].cidr, "10.0.128.0/17");
        let e = default_subnets("c1", "10.0.0.0/31", &zones).unwrap_err();
        assert!(
            e.is_terminal() && e.to_string().contains("too small"),
            "{e}"
        );
        let e = default_subnets("c1", "banana", &zones).unwrap_err();
        assert!(e.to_string().contains("spec.network.vpc.cidrBlock"), "{e}");
    }

    #[test]
    fn names_fit_aws_limits_and_stay_distinct() {
        assert_eq!(
            short_name("default-c1-apiserver", ""),
            "default-c1-apiserver"
        );
        let a = short_name("a-very-long-namespace-name-and-cluster-one", "-apiserver");
        let b = short_name("a-very-long-namespace-name-and-cluster-two", "-apiserver");
        assert!(a.len() <= 32 && b.len() <= 32 && a != b, "{a} {b}");
        assert!(a.ends_with("-apiserver"));
    }

    #[test]
    fn tags_carry_ownership_name_and_role_and_extra_tags_cannot_override_them() {
        let extra = BTreeMap::from([
            ("team".to_string(), "infra".to_string()),
            ("Name".to_string(), "mine".to_string()),
        ]);
        let t = tags("c1", "c1-vpc", "common", &extra);
        assert_eq!(t["Name"], "c1-vpc");
        assert_eq!(t["team"], "infra");
        assert_eq!(
            t["sigs.k8s.io/cluster-api-provider-aws/cluster/c1"],
            "owned"
        );
        assert_eq!(t["kubernetes.io/cluster/c1"], "owned");
        assert_eq!(t[ROLE_TAG], "common");
    }

    #[test]
    fn default_rules_per_role() {
        let groups: BTreeMap<String, String> = SG_ROLES
            .iter()
            .map(|r| (r.to_string(), format!("sg-{r}")))
            .collect();
        let r = desired_rules(&groups, "10.0.0.0/16", &["0.0.0.0/0".into()]);
        let has = |role: &str, port: i32, src: &str| {
            r[role].iter().any(|x| {
                x.from == port
                    && match &x.source {
                        Source::Cidr(c) | Source::Group(c) => c == src,
                    }
            })
        };
        assert!(has("controlplane", 6443, "sg-apiserver-lb"));
        assert!(has("controlplane", 6443, "sg-node"));
        assert!(has("controlplane", 2379, "sg-controlplane"));
        assert!(!has("controlplane", 2379, "sg-node"));
        assert!(has("node", 10250, "sg-controlplane"));
        assert!(has("node", 30000, "0.0.0.0/0"));
        assert!(has("apiserver-lb", 6443, "0.0.0.0/0"));
        assert!(has("lb", 6443, "10.0.0.0/16"));
        assert!(r["node"].iter().any(|x| x.protocol == "4"));
    }
}
