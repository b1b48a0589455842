//! A cluster's network and API server load balancer: observed through describe calls
//! ([`observe`]), planned purely ([`plan`]), executed step by step ([`execute`]).
//!
//! Each pass observes, plans, runs every step the plan has now (a plan never holds a step
//! whose input does not exist yet) and reports progress; the next pass, at once, observes what
//! those steps made and records its ids in status. A pass with nothing left to do reports the
//! endpoint (the NLB's DNS name, port 6443) and one failure domain per zone.

pub mod execute;
pub mod model;
pub mod observe;
pub mod plan;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use slipway_api::common::{ApiEndpoint, FailureDomain};

use crate::api::{AWSCluster, AwsLoadBalancerSpec, NetworkSpec};

use self::{
    model::{Desired, DesiredSubnet, Observed, default_subnets, short_name},
    plan::Action,
};
use crate::{ProviderError, clients::Clients};

/// Where a network pass got to.
#[derive(Debug)]
pub enum NetworkOutcome {
    /// Steps ran or AWS is busy: look again after `wait` (none when steps ran).
    Progress {
        /// Condition reason.
        reason: String,
        /// What happened.
        message: String,
        /// Whether AWS must finish something first (a slower requeue).
        waiting: bool,
        /// Status with every id that exists.
        status: Value,
    },
    /// Everything exists.
    Ready {
        /// The API server endpoint (the NLB's; `None` for a network without one, as for EKS).
        endpoint: Option<ApiEndpoint>,
        /// One per zone.
        failure_domains: Vec<FailureDomain>,
        /// Status with every id.
        status: Value,
    },
}

/// What a network is made from: an AWSCluster's fields, or an AWSManagedControlPlane's (no
/// load balancer: EKS serves the API).
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// `spec.network`.
    pub network: Option<&'a NetworkSpec>,
    /// `spec.controlPlaneLoadBalancer`.
    pub load_balancer: Option<&'a AwsLoadBalancerSpec>,
    /// Whether to make the API server NLB.
    pub with_lb: bool,
    /// `spec.additionalTags`.
    pub additional_tags: Option<&'a BTreeMap<String, String>>,
    /// Namespace of the object.
    pub namespace: &'a str,
    /// Name of the Cluster (names and tags).
    pub cluster: &'a str,
}

impl<'a> Input<'a> {
    /// The input of an AWSCluster.
    pub fn of_aws_cluster(infra: &'a AWSCluster, namespace: &'a str, cluster: &'a str) -> Self {
        Self {
            network: infra.spec.network.as_ref(),
            load_balancer: infra.spec.control_plane_load_balancer.as_ref(),
            with_lb: true,
            additional_tags: infra.spec.additional_tags.as_ref(),
            namespace,
            cluster,
        }
    }
}

/// What slipway wants for a network, given the zones.
pub fn desired(input: &Input<'_>, zones: &[String]) -> Result<Desired, ProviderError> {
    let (namespace, cluster) = (input.namespace, input.cluster);
    let net = input.network.cloned().unwrap_or_default();
    let vpc = net.vpc.clone().unwrap_or_default();
    let byo_vpc = vpc.id.clone().filter(|id| !id.is_empty());
    let vpc_cidr = vpc
        .cidr_block
        .clone()
        .unwrap_or_else(|| "10.0.0.0/16".into());
    let limit = vpc.availability_zone_usage_limit.unwrap_or(3).max(1) as usize;
    let zones: Vec<String> = zones.iter().take(limit).cloned().collect();
    let subnets = match net.subnets.as_ref().filter(|s| !s.is_empty()) {
        Some(given) if byo_vpc.is_none() => given
            .iter()
            .map(|s| {
                Ok(DesiredSubnet {
                    name: s.id.clone(),
                    cidr: s.cidr_block.clone().ok_or_else(|| {
                        ProviderError::terminal(format!(
                            "spec.network.subnets[{}].cidrBlock is required in a managed VPC",
                            s.id
                        ))
                    })?,
                    az: s.availability_zone.clone().ok_or_else(|| {
                        ProviderError::terminal(format!(
                            "spec.network.subnets[{}].availabilityZone is required in a managed VPC",
                            s.id
                        ))
                    })?,
                    public: s.is_public.unwrap_or(false),
                })
            })
            .collect::<Result<Vec<_>, ProviderError>>()?,
        _ if byo_vpc.is_some() => vec![],
        _ if zones.is_empty() => vec![],
        _ => default_subnets(cluster, &vpc_cidr, &zones)?,
    };
    let lb = input.load_balancer.cloned().unwrap_or_default();
    let base = lb
        .name
        .clone()
        .unwrap_or_else(|| format!("{namespace}-{cluster}"));
    let api_cidrs: Vec<String> = lb
        .ingress_rules
        .iter()
        .flatten()
        .flat_map(|r| r.cidr_blocks.clone().unwrap_or_default())
        .collect();
    Ok(Desired {
        cluster: cluster.into(),
        byo_vpc,
        vpc_cidr,
        subnets,
        lb_name: short_name(&base, if lb.name.is_some() { "" } else { "-apiserver" }),
        tg_name: short_name(&base, "-apiserver-tg"),
        lb_scheme: lb.scheme.unwrap_or_else(|| "internet-facing".into()),
        extra_tags: input.additional_tags.cloned().unwrap_or_default(),
        with_lb: input.with_lb,
        api_cidrs: if api_cidrs.is_empty() {
            vec!["0.0.0.0/0".into()]
        } else {
            api_cidrs
        },
    })
}

/// The AWSCluster status fields for what exists.
pub fn status(d: &Desired, o: &Observed) -> Value {
    let groups: BTreeMap<String, Value> = model::groups_by_role(&d.cluster, o)
        .into_iter()
        .map(|(role, g)| (role, json!({"id": g.id, "name": g.name})))
        .collect();
    let mut ns = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        if !(v.is_null() || v.as_array().is_some_and(Vec::is_empty)) {
            ns.insert(k.into(), v);
        }
    };
    put("vpcId", json!(o.vpc.as_ref().map(|v| &v.id)));
    put(
        "subnets",
        json!(
            o.subnets
                .iter()
                .map(|s| json!({"id": s.id, "cidrBlock": s.cidr, "availabilityZone": s.az, "isPublic": s.public}))
                .collect::<Vec<_>>()
        ),
    );
    put("internetGatewayId", json!(o.igws.first().map(|g| &g.id)));
    put(
        "natGatewayIds",
        json!(o.nats.iter().map(|n| &n.id).collect::<Vec<_>>()),
    );
    put(
        "elasticIpAllocationIds",
        json!(o.eips.iter().map(|e| &e.allocation_id).collect::<Vec<_>>()),
    );
    put(
        "natGatewaysIPs",
        json!(o.eips.iter().map(|e| &e.public_ip).collect::<Vec<_>>()),
    );
    put(
        "routeTableIds",
        json!(o.route_tables.iter().map(|r| &r.id).collect::<Vec<_>>()),
    );
    if !groups.is_empty() {
        put("securityGroups", json!(groups));
    }
    if let Some(lb) = &o.lb {
        put(
            "apiServerElb",
            json!({"name": d.lb_name, "dnsName": lb.dns_name, "arn": lb.arn, "loadBalancerType": "nlb"}),
        );
    }
    put(
        "apiServerTargetGroupArn",
        json!(o.tg.as_ref().map(|t| &t.arn)),
    );
    put(
        "apiServerListenerArn",
        json!(o.listener.as_ref().map(|l| &l.arn)),
    );
    json!({ "networkStatus": ns })
}

fn failure_domains(d: &Desired, o: &Observed) -> Vec<FailureDomain> {
    let mut zones: Vec<&str> = o
        .subnets
        .iter()
        .filter(|s| d.byo_vpc.is_some() || !s.public)
        .map(|s| s.az.as_str())
        .collect();
    zones.sort();
    zones.dedup();
    zones
        .into_iter()
        .map(|z| FailureDomain {
            name: z.into(),
            control_plane: Some(true),
            attributes: None,
        })
        .collect()
}

/// One pass of creating the network.
pub async fn reconcile(c: &Clients, input: &Input<'_>) -> Result<NetworkOutcome, ProviderError> {
    // The zones come from the first observation; the desired subnets depend on them.
    let probe = desired(input, &[])?;
    let o = observe::observe(c, &probe).await?;
    let d = desired(input, &o.zones)?;
    if !o.foreign.is_empty() {
        return Err(ProviderError::terminal(format!(
            "{} named for this cluster but not tagged {}=owned; slipway neither adopts nor \
             changes it: remove it or rename the cluster",
            o.foreign.join(", "),
            model::owner_tag(&d.cluster)
        )));
    }
    let st = status(&d, &o);
    let steps = plan::plan_create(&d, &o);
    if steps.is_empty() {
        return Ok(NetworkOutcome::Ready {
            endpoint: o.lb.as_ref().map(|lb| ApiEndpoint {
                host: lb.dns_name.clone(),
                port: 6443,
            }),
            failure_domains: failure_domains(&d, &o),
            status: st,
        });
    }
    let vpc = o.vpc.as_ref().map(|v| v.id.as_str());
    let mut done = Vec::new();
    for step in &steps {
        if let Action::Wait { reason, message } = step {
            return Ok(NetworkOutcome::Progress {
                reason: reason.clone(),
                message: if done.is_empty() {
                    message.clone()
                } else {
                    format!("{}; {message}", done.join(", "))
                },
                waiting: true,
                status: st,
            });
        }
        execute::execute(c, &d, vpc, step).await?;
        done.push(step_name(step));
    }
    Ok(NetworkOutcome::Progress {
        reason: "Provisioning".into(),
        message: format!("ran {}", done.join(", ")),
        waiting: false,
        status: st,
    })
}

/// One pass of deleting the network: `Ok(None)` once nothing tagged for the cluster is left.
pub async fn delete(c: &Clients, input: &Input<'_>) -> Result<Option<String>, ProviderError> {
    let d = desired(input, &[])?;
    let o = observe::observe(c, &d).await?;
    let steps = plan::plan_delete(&d, &o);
    if steps.is_empty() {
        return Ok(None);
    }
    let mut done = Vec::new();
    for step in &steps {
        if let Action::Wait { message, .. } = step {
            done.push(message.clone());
            break;
        }
        execute::execute(c, &d, o.vpc.as_ref().map(|v| v.id.as_str()), step).await?;
        done.push(step_name(step));
    }
    Ok(Some(done.join(", ")))
}

fn step_name(a: &Action) -> String {
    let s = format!("{a:?}");
    s.split([' ', '(', '{'])
        .next()
        .unwrap_or_default()
        .to_string()
}
