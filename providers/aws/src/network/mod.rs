//! A cluster's network and API server load balancer: observed through describe calls
//! ([`observe`]), planned purely ([`plan`]), executed step by step ([`execute`]).
//!
//! Each pass observes, plans, runs every step the plan has now (a plan never holds a step
//! whose input does not exist yet) and reports progress; the next pass, at once, observes what
//! those steps made and records its ids in status. A pass with nothing left to do reports the
//! endpoint (the NLB's DNS name, port 6443) and one failure domain per zone.

pub mod execute;
pub mod guard;
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
    /// UID of the object (ClientTokens derive from it).
    pub uid: &'a str,
    /// The object's creation records (`status.creations`).
    pub creations: Option<&'a crate::creations::Records>,
    /// The VPC id recorded in status: the one kept if duplicates show up.
    pub known_vpc: Option<&'a str>,
}

/// What a create pass needs besides the input: this process's ledger, the time, and how long
/// a create AWS may have made stays invisible (AWS's eventual consistency).
#[derive(Clone, Copy, Debug)]
pub struct Pass<'a> {
    /// This process's sent creates.
    pub ledger: &'a crate::creations::Ledger,
    /// Now, by the reconciler's clock.
    pub now: jiff::Timestamp,
    /// The consistency window.
    pub window: std::time::Duration,
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
            uid: infra.metadata.uid.as_deref().unwrap_or_default(),
            creations: infra.status.as_ref().and_then(|s| s.creations.as_ref()),
            known_vpc: infra
                .status
                .as_ref()
                .and_then(|s| s.network_status.as_ref())
                .and_then(|n| n.vpc_id.as_deref()),
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
pub async fn reconcile(
    c: &Clients,
    input: &Input<'_>,
    pass: &Pass<'_>,
) -> Result<NetworkOutcome, ProviderError> {
    use crate::creations::{Go, decide, settled, token};
    // The zones come from the first observation; the desired subnets depend on them.
    let probe = desired(input, &[])?;
    let o = observe::observe(c, &probe, input.known_vpc).await?;
    let d = desired(input, &o.zones)?;
    if !o.foreign.is_empty() {
        return Err(ProviderError::terminal(format!(
            "{} named for this cluster but not tagged {}=owned; slipway neither adopts nor \
             changes it: remove it or rename the cluster",
            o.foreign.join(", "),
            model::owner_tag(&d.cluster)
        )));
    }
    // What AWS shows settles its record: the counter stays, the in-flight marker goes.
    let mut records = input.creations.cloned().unwrap_or_default();
    let seen = guard::seen(&d, &o);
    for (name, r) in records.iter_mut() {
        if seen.contains(name)
            && let Some(s) = settled(Some(r))
        {
            *r = s;
        }
    }
    let with_records = |mut st: Value, records: &crate::creations::Records| {
        if !records.is_empty() {
            st["creations"] = json!(records);
        }
        st
    };
    let st = status(&d, &o);
    // Duplicates (a create AWS made although its answer was lost) go first.
    let mut steps = plan::plan_dedupe(&d, &o);
    if steps.is_empty() {
        steps = plan::plan_create(&d, &o);
    } else {
        tracing::warn!(cluster = %d.cluster, removing = ?steps, "removing duplicates AWS made of one create");
    }
    if steps.is_empty() {
        return Ok(NetworkOutcome::Ready {
            endpoint: o.lb.as_ref().map(|lb| ApiEndpoint {
                host: lb.dns_name.clone(),
                port: 6443,
            }),
            failure_domains: failure_domains(&d, &o),
            status: with_records(st, &records),
        });
    }
    let vpc = o.vpc.as_ref().map(|v| v.id.as_str());
    let mut done = Vec::new();
    let mut recorded = Vec::new();
    let mut waiting: Option<std::time::Duration> = None;
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
                status: with_records(st, &records),
            });
        }
        let Some((name, tokened)) = guard::create_name(&d, step) else {
            execute::execute(c, &d, vpc, step, None).await?;
            done.push(step_name(step));
            continue;
        };
        let prev = records.get(&name);
        let failed = prev
            .and_then(|p| p.since.as_deref())
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            .is_some_and(|since| guard::nat_failed_since(&o, &name, since.as_second()));
        let sent = prev.is_some_and(|p| pass.ledger.was_sent(input.uid, &name, p.attempt));
        match decide(
            prev,
            pass.now,
            pass.ledger.me(),
            sent,
            tokened,
            failed,
            pass.window,
        ) {
            Go::Record(r) => {
                recorded.push(format!("{name} (attempt {})", r.attempt));
                records.insert(name, r);
            }
            Go::Create(attempt) => {
                pass.ledger.send(input.uid, &name, attempt);
                let t = tokened.then(|| token(input.uid, &name, attempt));
                execute::execute(c, &d, vpc, step, t.as_deref()).await?;
                done.push(step_name(step));
            }
            Go::Wait { left } => {
                tracing::info!(
                    cluster = %d.cluster,
                    resource = %name,
                    "a create may be in flight and not visible yet: describing again before \
                     creating"
                );
                waiting = Some(waiting.map_or(left, |w| w.min(left)));
            }
        }
    }
    if !recorded.is_empty() {
        done.push(format!("recorded creates of {}", recorded.join(", ")));
    }
    if let Some(left) = waiting
        && done.is_empty()
    {
        return Ok(NetworkOutcome::Progress {
            reason: "WaitingForConsistency".into(),
            message: format!(
                "a create may be in flight: describing again for up to {}s before creating",
                left.as_secs()
            ),
            waiting: true,
            status: with_records(st, &records),
        });
    }
    Ok(NetworkOutcome::Progress {
        reason: "Provisioning".into(),
        message: format!("ran {}", done.join(", ")),
        waiting: false,
        status: with_records(st, &records),
    })
}

/// One pass of deleting the network: `Ok(None)` once nothing tagged for the cluster is left,
/// and no create recorded in flight can still show up (its consistency window is over).
pub async fn delete(
    c: &Clients,
    input: &Input<'_>,
    pass: &Pass<'_>,
) -> Result<Option<String>, ProviderError> {
    let d = desired(input, &[])?;
    let o = observe::observe(c, &d, input.known_vpc).await?;
    let mut steps = plan::plan_dedupe(&d, &o);
    steps.extend(plan::plan_delete(&d, &o));
    if steps.is_empty() {
        let seen = guard::seen(&d, &o);
        let in_flight: Vec<&String> = input
            .creations
            .into_iter()
            .flatten()
            .filter(|(name, r)| {
                !seen.contains(*name)
                    && crate::creations::in_flight_for(r, pass.now)
                        .is_some_and(|age| age < pass.window)
            })
            .map(|(name, _)| name)
            .collect();
        if !in_flight.is_empty() {
            return Ok(Some(format!(
                "waiting for creates that may be in flight to show up before declaring the \
                 network gone: {in_flight:?}"
            )));
        }
        return Ok(None);
    }
    let mut done = Vec::new();
    for step in &steps {
        if let Action::Wait { message, .. } = step {
            done.push(message.clone());
            break;
        }
        execute::execute(c, &d, o.vpc.as_ref().map(|v| v.id.as_str()), step, None).await?;
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
