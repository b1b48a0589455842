//! Reads what exists of a cluster's network: the VPC by its Name tag (or the brought id), and
//! everything else by the cluster's ownership tag, so a crash between a create call and a
//! status write loses nothing: the next pass finds the resource and goes on.

use aws_sdk_ec2::types::{Filter, Tag, VpcAttributeName};

use super::model::{
    Desired, Eip, Igw, Instance, Lb, Nat, Observed, RouteTable, Rule, SecurityGroup, Source,
    Subnet, Vpc, owner_tag,
};
use crate::{ProviderError, clients::Clients, error};

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| v.to_string()).collect()))
        .build()
}

/// The value of tag `key`.
pub fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// Whether `tags` carry `owner=owned`: checked on every object as AWS returned it, never left
/// to a server-side filter (moto ignores tag filters on DescribeNatGateways; any API that
/// drops one would otherwise turn a delete into deleting another cluster's resources).
pub fn is_owned(tags: &[Tag], owner: &str) -> bool {
    tag(tags, owner) == Some("owned")
}

/// Keeps an object only when it carries the owned tag; logs what is skipped.
fn owned_only(kind: &str, id: Option<&str>, tags: &[Tag], owner: &str) -> bool {
    let ok = is_owned(tags, owner);
    if !ok {
        tracing::warn!(
            kind,
            id = id.unwrap_or_default(),
            owner,
            "skipped: returned for the cluster but not tagged owned by it"
        );
    }
    ok
}

/// Everything of the cluster's network that exists (only what carries the cluster's owned tag,
/// checked client-side, besides a brought VPC and its subnets).
///
/// `known_vpc` is the VPC id recorded in status: when duplicates named `<cluster>-vpc` show up
/// (a CreateVpc AWS made although its answer was lost), it is the one kept; without one, the
/// one holding subnets, else the first by id. The others go to [`Observed::extra_vpcs`].
pub async fn observe(
    c: &Clients,
    d: &Desired,
    known_vpc: Option<&str>,
) -> Result<Observed, ProviderError> {
    let owner = owner_tag(&d.cluster);
    let owned = filter(&format!("tag:{owner}"), &["owned"]);
    let mut o = Observed::default();
    let zones = error::retrying("DescribeAvailabilityZones", || {
        c.ec2
            .describe_availability_zones()
            .filters(filter("state", &["available"]))
            .filters(filter("opt-in-status", &["opt-in-not-required"]))
            .send()
    })
    .await?;
    o.zones = zones
        .availability_zones()
        .iter()
        .filter_map(|z| z.zone_name().map(String::from))
        .collect();
    o.zones.sort();
    let vpcs = error::retrying_coded("DescribeVpcs", || {
        let req = c.ec2.describe_vpcs();
        match &d.byo_vpc {
            Some(id) => req.vpc_ids(id).send(),
            None => req
                .filters(filter("tag:Name", &[&format!("{}-vpc", d.cluster)]))
                .send(),
        }
    })
    .await;
    let vpcs = match vpcs {
        Ok(v) => v.vpcs().to_vec(),
        Err(e) if d.byo_vpc.is_some() && e.is_not_found() => vec![],
        Err(e) => return Err(e.into()),
    };
    let mut vpcs = vpcs;
    if d.byo_vpc.is_none() {
        if let Some(v) = vpcs.iter().find(|v| !is_owned(v.tags(), &owner)) {
            return Err(ProviderError::terminal(format!(
                "VPC {} is named {}-vpc but not tagged {owner}=owned; slipway does not adopt it",
                v.vpc_id().unwrap_or_default(),
                d.cluster
            )));
        }
        vpcs.sort_by(|a, b| a.vpc_id().cmp(&b.vpc_id()));
        if vpcs.len() > 1 {
            let mut with_subnets = Vec::new();
            for v in &vpcs {
                let id = v.vpc_id().unwrap_or_default().to_string();
                let n = error::retrying("DescribeSubnets", || {
                    c.ec2
                        .describe_subnets()
                        .filters(filter("vpc-id", &[&id]))
                        .send()
                })
                .await?
                .subnets()
                .len();
                with_subnets.push((id, n));
            }
            let keep = known_vpc
                .filter(|k| with_subnets.iter().any(|(id, _)| id == k))
                .map(String::from)
                .or_else(|| {
                    with_subnets
                        .iter()
                        .find(|(_, n)| *n > 0)
                        .map(|(id, _)| id.clone())
                })
                .unwrap_or_else(|| with_subnets[0].0.clone());
            o.extra_vpcs = with_subnets
                .into_iter()
                .filter(|(id, _)| *id != keep)
                .collect();
            vpcs.retain(|v| v.vpc_id() == Some(keep.as_str()));
        }
    }
    if let Some(v) = vpcs.first() {
        let id = v.vpc_id().unwrap_or_default().to_string();
        let is_owned = is_owned(v.tags(), &owner);
        let dns_hostnames = if d.byo_vpc.is_none() {
            error::retrying("DescribeVpcAttribute", || {
                c.ec2
                    .describe_vpc_attribute()
                    .vpc_id(&id)
                    .attribute(VpcAttributeName::EnableDnsHostnames)
                    .send()
            })
            .await?
            .enable_dns_hostnames()
            .and_then(|a| a.value())
            .unwrap_or(false)
        } else {
            true
        };
        o.vpc = Some(Vpc {
            id: id.clone(),
            cidr: v.cidr_block().unwrap_or_default().to_string(),
            owned: is_owned,
            dns_hostnames,
        });
        let subnets = error::retrying("DescribeSubnets", || {
            c.ec2
                .describe_subnets()
                .filters(filter("vpc-id", &[&id]))
                .send()
        })
        .await?;
        o.subnets = subnets
            .subnets()
            .iter()
            // A brought VPC's subnets are used, never changed; in a managed VPC only the
            // cluster's own count.
            .filter(|s| {
                d.byo_vpc.is_some() || owned_only("subnet", s.subnet_id(), s.tags(), &owner)
            })
            .map(|s| {
                let map_public_ip = s.map_public_ip_on_launch().unwrap_or(false);
                Subnet {
                    id: s.subnet_id().unwrap_or_default().into(),
                    name: tag(s.tags(), "Name").unwrap_or_default().into(),
                    cidr: s.cidr_block().unwrap_or_default().into(),
                    az: s.availability_zone().unwrap_or_default().into(),
                    public: match tag(s.tags(), super::model::ROLE_TAG) {
                        Some(role) => role == "public",
                        None => map_public_ip,
                    },
                    map_public_ip,
                }
            })
            .collect();
        o.subnets
            .sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    }
    let igws = error::retrying("DescribeInternetGateways", || {
        c.ec2
            .describe_internet_gateways()
            .filters(owned.clone())
            .send()
    })
    .await?;
    o.igws = igws
        .internet_gateways()
        .iter()
        .filter(|g| {
            owned_only(
                "internet-gateway",
                g.internet_gateway_id(),
                g.tags(),
                &owner,
            )
        })
        .map(|g| Igw {
            id: g.internet_gateway_id().unwrap_or_default().into(),
            attached_to: g
                .attachments()
                .iter()
                .filter_map(|a| a.vpc_id().map(String::from))
                .collect(),
        })
        .collect();
    let eips = error::retrying("DescribeAddresses", || {
        c.ec2.describe_addresses().filters(owned.clone()).send()
    })
    .await?;
    o.eips = eips
        .addresses()
        .iter()
        .filter(|a| owned_only("elastic-ip", a.allocation_id(), a.tags(), &owner))
        .map(|a| Eip {
            allocation_id: a.allocation_id().unwrap_or_default().into(),
            name: tag(a.tags(), "Name").unwrap_or_default().into(),
            association_id: a.association_id().map(String::from),
            public_ip: a.public_ip().unwrap_or_default().into(),
        })
        .collect();
    let nats = error::retrying("DescribeNatGateways", || {
        c.ec2
            .describe_nat_gateways()
            .filter(owned.clone())
            .filter(filter(
                "state",
                &["pending", "available", "deleting", "failed"],
            ))
            .send()
    })
    .await?;
    o.nats = nats
        .nat_gateways()
        .iter()
        .filter(|n| owned_only("nat-gateway", n.nat_gateway_id(), n.tags(), &owner))
        // The state filter is checked here too, for the same reason as the tag.
        .filter(|n| n.state().is_some_and(|s| s.as_str() != "deleted"))
        .map(|n| Nat {
            id: n.nat_gateway_id().unwrap_or_default().into(),
            name: tag(n.tags(), "Name").unwrap_or_default().into(),
            subnet_id: n.subnet_id().unwrap_or_default().into(),
            state: n
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            created: n.create_time().map(|t| t.secs()),
            allocation_id: n
                .nat_gateway_addresses()
                .iter()
                .find_map(|a| a.allocation_id().map(String::from)),
        })
        .collect();
    let rts = error::retrying("DescribeRouteTables", || {
        c.ec2.describe_route_tables().filters(owned.clone()).send()
    })
    .await?;
    o.route_tables = rts
        .route_tables()
        .iter()
        .filter(|r| owned_only("route-table", r.route_table_id(), r.tags(), &owner))
        .map(|r| RouteTable {
            id: r.route_table_id().unwrap_or_default().into(),
            name: tag(r.tags(), "Name").unwrap_or_default().into(),
            associations: r
                .associations()
                .iter()
                .filter(|a| !a.main().unwrap_or(false))
                .filter_map(|a| {
                    Some((
                        a.route_table_association_id()?.to_string(),
                        a.subnet_id()?.to_string(),
                    ))
                })
                .collect(),
            routes: r
                .routes()
                .iter()
                .filter_map(|rt| {
                    let target = rt.nat_gateway_id().or(rt.gateway_id())?;
                    Some((rt.destination_cidr_block()?.to_string(), target.to_string()))
                })
                .collect(),
        })
        .collect();
    let sgs = error::retrying("DescribeSecurityGroups", || {
        c.ec2
            .describe_security_groups()
            .filters(owned.clone())
            .send()
    })
    .await?;
    o.security_groups = sgs
        .security_groups()
        .iter()
        .filter(|g| owned_only("security-group", g.group_id(), g.tags(), &owner))
        .map(|g| SecurityGroup {
            id: g.group_id().unwrap_or_default().into(),
            name: g.group_name().unwrap_or_default().into(),
            ingress: rules_of(g.ip_permissions()),
        })
        .collect();
    let instances = error::retrying("DescribeInstances", || {
        c.ec2
            .describe_instances()
            .filters(owned.clone())
            .filters(filter(
                "instance-state-name",
                &["pending", "running", "stopping", "stopped", "shutting-down"],
            ))
            .send()
    })
    .await?;
    o.instances = instances
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| owned_only("instance", i.instance_id(), i.tags(), &owner))
        .map(|i| Instance {
            id: i.instance_id().unwrap_or_default().into(),
            state: i
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string())
                .unwrap_or_default(),
            control_plane: tag(i.tags(), super::model::ROLE_TAG) == Some("control-plane"),
        })
        .collect();
    observe_lb(c, d, &mut o).await?;
    Ok(o)
}

/// Rules of an EC2 permission list, one per source.
pub fn rules_of(perms: &[aws_sdk_ec2::types::IpPermission]) -> Vec<Rule> {
    let mut out = Vec::new();
    for p in perms {
        let base = |source| Rule {
            protocol: p.ip_protocol().unwrap_or("-1").to_string(),
            from: p.from_port().unwrap_or(-1),
            to: p.to_port().unwrap_or(-1),
            source,
        };
        for r in p.ip_ranges() {
            if let Some(c) = r.cidr_ip() {
                out.push(base(Source::Cidr(c.into())));
            }
        }
        for g in p.user_id_group_pairs() {
            if let Some(id) = g.group_id() {
                out.push(base(Source::Group(id.into())));
            }
        }
    }
    out.sort();
    out
}

async fn observe_lb(c: &Clients, d: &Desired, o: &mut Observed) -> Result<(), ProviderError> {
    // moto allows two load balancers of one name, so the name lookup is the only guard.
    let lbs = c
        .elb
        .describe_load_balancers()
        .names(&d.lb_name)
        .send()
        .await;
    let lb = match lbs {
        Ok(r) => r.load_balancers().first().cloned(),
        Err(e) if error::is_not_found(&e) => None,
        Err(e) => return Err(error::map("DescribeLoadBalancers", e)),
    };
    let tgs = c
        .elb
        .describe_target_groups()
        .names(&d.tg_name)
        .send()
        .await;
    let tg = match tgs {
        Ok(r) => r.target_groups().first().cloned(),
        Err(e) if error::is_not_found(&e) => None,
        Err(e) => return Err(error::map("DescribeTargetGroups", e)),
    };
    let arns: Vec<String> = lb
        .iter()
        .filter_map(|l| l.load_balancer_arn())
        .chain(tg.iter().filter_map(|t| t.target_group_arn()))
        .map(String::from)
        .collect();
    let owned = owned_arns(c, &arns, &owner_tag(&d.cluster)).await?;
    o.lb = lb
        .filter(|l| {
            let arn = l.load_balancer_arn().unwrap_or_default();
            let ok = owned.iter().any(|a| a == arn);
            if !ok {
                tracing::warn!(
                    arn,
                    "load balancer of the cluster's name is not tagged owned: skipped"
                );
                o.foreign.push(format!("load balancer {}", d.lb_name));
            }
            ok
        })
        .map(|l| Lb {
            arn: l.load_balancer_arn().unwrap_or_default().into(),
            dns_name: l.dns_name().unwrap_or_default().into(),
            state: l
                .state()
                .and_then(|s| s.code())
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
        });
    o.tg = tg
        .filter(|t| {
            let arn = t.target_group_arn().unwrap_or_default();
            let ok = owned.iter().any(|a| a == arn);
            if !ok {
                tracing::warn!(
                    arn,
                    "target group of the cluster's name is not tagged owned: skipped"
                );
                o.foreign.push(format!("target group {}", d.tg_name));
            }
            ok
        })
        .map(|t| Lb {
            arn: t.target_group_arn().unwrap_or_default().into(),
            ..Default::default()
        });
    if let Some(lb) = &o.lb {
        let ls = error::retrying("DescribeListeners", || {
            c.elb.describe_listeners().load_balancer_arn(&lb.arn).send()
        })
        .await?;
        o.listener = ls
            .listeners()
            .iter()
            .find(|l| l.port() == Some(6443))
            .map(|l| Lb {
                arn: l.listener_arn().unwrap_or_default().into(),
                ..Default::default()
            });
    }
    if let Some(tg) = &o.tg {
        let health = error::retrying("DescribeTargetHealth", || {
            c.elb
                .describe_target_health()
                .target_group_arn(&tg.arn)
                .send()
        })
        .await?;
        o.targets = health
            .target_health_descriptions()
            .iter()
            .filter_map(|h| h.target().and_then(|t| t.id()).map(String::from))
            .collect();
        o.targets.sort();
    }
    Ok(())
}

/// Those of `arns` (load balancers, target groups) tagged `owner=owned`, by elbv2 DescribeTags.
pub async fn owned_arns(
    c: &Clients,
    arns: &[String],
    owner: &str,
) -> Result<Vec<String>, ProviderError> {
    if arns.is_empty() {
        return Ok(vec![]);
    }
    let out = error::retrying("DescribeTags", || {
        c.elb
            .describe_tags()
            .set_resource_arns(Some(arns.to_vec()))
            .send()
    })
    .await?;
    Ok(out
        .tag_descriptions()
        .iter()
        .filter(|t| {
            t.tags()
                .iter()
                .any(|t| t.key() == Some(owner) && t.value() == Some("owned"))
        })
        .filter_map(|t| t.resource_arn().map(String::from))
        .collect())
}
