//! Pure planning of a cluster's network: from what exists ([`Observed`]) and what is wanted
//! ([`Desired`]), the next steps to create it ([`plan_create`]) or to take it down
//! ([`plan_delete`]), in CAPA's dependency order. Table-tested; no I/O.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{Desired, DesiredSubnet, Observed, Rule, SG_ROLES, desired_rules};

/// One step of creating or deleting a cluster's network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// CreateVpc.
    CreateVpc { cidr: String },
    /// ModifyVpcAttribute enableDnsHostnames.
    EnableDnsHostnames { vpc: String },
    /// CreateSubnet.
    CreateSubnet(DesiredSubnet),
    /// ModifySubnetAttribute MapPublicIpOnLaunch.
    MapPublicIp { subnet: String },
    /// CreateInternetGateway.
    CreateIgw,
    /// AttachInternetGateway.
    AttachIgw { igw: String, vpc: String },
    /// AllocateAddress for a zone's NAT gateway.
    AllocateEip { name: String },
    /// DisassociateAddress of an association whose NAT gateway is gone.
    DisassociateEip { association: String },
    /// CreateNatGateway.
    CreateNat {
        name: String,
        subnet: String,
        allocation: String,
    },
    /// CreateRouteTable.
    CreateRouteTable { name: String, public: bool },
    /// CreateRoute 0.0.0.0/0 (ReplaceRoute when one exists with another target, e.g. a NAT
    /// gateway deleted outside slipway).
    CreateDefaultRoute {
        table: String,
        /// An internet gateway (`igw-`) or NAT gateway (`nat-`) id.
        target: String,
        /// Whether a 0.0.0.0/0 route exists already (to be replaced).
        replace: bool,
    },
    /// AssociateRouteTable.
    Associate { table: String, subnet: String },
    /// CreateSecurityGroup.
    CreateSecurityGroup { role: String, name: String },
    /// AuthorizeSecurityGroupIngress.
    Authorize { group: String, rules: Vec<Rule> },
    /// elbv2 CreateLoadBalancer (network).
    CreateLoadBalancer {
        subnets: Vec<String>,
        security_groups: Vec<String>,
    },
    /// elbv2 CreateTargetGroup (TCP 6443).
    CreateTargetGroup { vpc: String },
    /// elbv2 CreateListener (TCP 6443 -> target group).
    CreateListener { lb: String, tg: String },
    /// elbv2 RegisterTargets: running control-plane instances missing from the target group.
    RegisterTargets { tg: String, ids: Vec<String> },
    /// Nothing can be done until AWS finishes something.
    Wait { reason: String, message: String },

    /// TerminateInstances.
    TerminateInstances { ids: Vec<String> },
    /// elbv2 DeleteListener.
    DeleteListener { arn: String },
    /// elbv2 DeleteTargetGroup.
    DeleteTargetGroup { arn: String },
    /// elbv2 DeleteLoadBalancer.
    DeleteLoadBalancer { arn: String },
    /// RevokeSecurityGroupIngress of every rule.
    RevokeAll { group: String, rules: Vec<Rule> },
    /// DeleteSecurityGroup.
    DeleteSecurityGroup { group: String },
    /// DeleteNatGateway.
    DeleteNat { id: String },
    /// DisassociateAddress + ReleaseAddress.
    ReleaseEip {
        allocation: String,
        association: Option<String>,
    },
    /// DetachInternetGateway (when attached) + DeleteInternetGateway.
    DeleteIgw { id: String, vpcs: Vec<String> },
    /// DisassociateRouteTable for each association + DeleteRouteTable.
    DeleteRouteTable {
        id: String,
        associations: Vec<String>,
    },
    /// DeleteSubnet.
    DeleteSubnet { id: String },
    /// DeleteVpc.
    DeleteVpc { id: String },
}

impl Action {
    /// Whether the step changes AWS (as opposed to waiting).
    pub fn is_wait(&self) -> bool {
        matches!(self, Self::Wait { .. })
    }
}

fn wait(reason: &str, message: String) -> Vec<Action> {
    vec![Action::Wait {
        reason: reason.into(),
        message,
    }]
}

/// The remaining steps to create the network, in order; empty when all exists. Later steps
/// that depend on a resource not made yet are left to a later plan.
pub fn plan_create(d: &Desired, o: &Observed) -> Vec<Action> {
    let mut out = Vec::new();
    let Some(vpc) = &o.vpc else {
        return match &d.byo_vpc {
            Some(id) => wait(
                "VpcNotFound",
                format!("spec.network.vpc.id {id} does not exist in this region"),
            ),
            None => vec![Action::CreateVpc {
                cidr: d.vpc_cidr.clone(),
            }],
        };
    };
    let managed = d.byo_vpc.is_none();
    if managed {
        if !vpc.dns_hostnames {
            out.push(Action::EnableDnsHostnames {
                vpc: vpc.id.clone(),
            });
        }
        if !plan_managed_network(d, o, &mut out) {
            return out;
        }
    }
    let groups: BTreeMap<String, String> = super::model::groups_by_role(&d.cluster, o)
        .into_iter()
        .map(|(role, g)| (role, g.id.clone()))
        .collect();
    for role in SG_ROLES {
        if !groups.contains_key(role) {
            out.push(Action::CreateSecurityGroup {
                role: role.into(),
                name: format!("{}-{role}", d.cluster),
            });
        }
    }
    if groups.len() < SG_ROLES.len() {
        // Rules reference the groups by id: authorize once all exist.
        return out;
    }
    let rules = desired_rules(&groups, &vpc.cidr, &d.api_cidrs);
    for (role, want) in &rules {
        let g = o
            .security_groups
            .iter()
            .find(|g| Some(&g.id) == groups.get(role))
            .expect("grouped above");
        let missing: Vec<Rule> = want
            .iter()
            .filter(|r| !g.ingress.contains(r))
            .cloned()
            .collect();
        if !missing.is_empty() {
            out.push(Action::Authorize {
                group: g.id.clone(),
                rules: missing,
            });
        }
    }
    if !d.with_lb {
        return out;
    }
    let Some(lb) = &o.lb else {
        let public = d.lb_scheme == "internet-facing";
        let subnets = lb_subnets(o, public);
        if subnets.is_empty() {
            out.extend(wait(
                "WaitingForSubnets",
                format!(
                    "no {} subnet for the API server load balancer",
                    if public { "public" } else { "private" }
                ),
            ));
            return out;
        }
        out.push(Action::CreateLoadBalancer {
            subnets,
            security_groups: vec![groups["apiserver-lb"].clone()],
        });
        return out;
    };
    let Some(tg) = &o.tg else {
        out.push(Action::CreateTargetGroup {
            vpc: vpc.id.clone(),
        });
        return out;
    };
    if o.listener.is_none() {
        out.push(Action::CreateListener {
            lb: lb.arn.clone(),
            tg: tg.arn.clone(),
        });
    }
    let unregistered: Vec<String> = o
        .instances
        .iter()
        .filter(|i| i.control_plane && i.state == "running" && !o.targets.contains(&i.id))
        .map(|i| i.id.clone())
        .collect();
    if !unregistered.is_empty() {
        out.push(Action::RegisterTargets {
            tg: tg.arn.clone(),
            ids: unregistered,
        });
    }
    if lb.state != "active" {
        out.extend(wait(
            "WaitingForLoadBalancer",
            format!("load balancer {} is {}", d.lb_name, lb.state),
        ));
    }
    out
}

/// One subnet per zone for the load balancer.
fn lb_subnets(o: &Observed, public: bool) -> Vec<String> {
    let mut by_zone: BTreeMap<&str, &str> = BTreeMap::new();
    for s in o.subnets.iter().filter(|s| s.public == public) {
        by_zone.entry(&s.az).or_insert(&s.id);
    }
    by_zone.values().map(|s| s.to_string()).collect()
}

/// Subnets, gateways and routes of a managed VPC; `false` when later steps must wait for
/// what this adds.
fn plan_managed_network(d: &Desired, o: &Observed, out: &mut Vec<Action>) -> bool {
    let vpc = o.vpc.as_ref().expect("a VPC");
    let mut complete = true;
    let subnet = |want: &DesiredSubnet| {
        o.subnets
            .iter()
            .find(|s| s.name == want.name || s.cidr == want.cidr)
    };
    for want in &d.subnets {
        match subnet(want) {
            None => {
                out.push(Action::CreateSubnet(want.clone()));
                complete = false;
            }
            Some(s) if want.public && !s.map_public_ip => out.push(Action::MapPublicIp {
                subnet: s.id.clone(),
            }),
            Some(_) => {}
        }
    }
    let igw = o
        .igws
        .iter()
        .find(|g| g.attached_to.contains(&vpc.id))
        .or(o.igws.first());
    match igw {
        None => {
            out.push(Action::CreateIgw);
            complete = false;
        }
        Some(g) if !g.attached_to.contains(&vpc.id) => out.push(Action::AttachIgw {
            igw: g.id.clone(),
            vpc: vpc.id.clone(),
        }),
        Some(_) => {}
    }
    if !complete {
        return false;
    }
    // One NAT gateway per zone with a public and a private subnet, in the public one.
    let mut nat_of_zone: BTreeMap<String, String> = BTreeMap::new();
    let mut pending = Vec::new();
    for want in d.subnets.iter().filter(|s| s.public) {
        let Some(public) = subnet(want) else { continue };
        let name = format!("{}-nat-{}", d.cluster, want.az);
        if let Some(n) = o.nats.iter().find(|n| n.name == name) {
            match n.state.as_str() {
                "available" => {
                    nat_of_zone.insert(want.az.clone(), n.id.clone());
                }
                "failed" => {}
                other => pending.push(format!("{} is {other}", n.id)),
            }
            if n.state != "failed" {
                continue;
            }
        }
        let eip_name = format!("{}-eip-{}", d.cluster, want.az);
        match o.eips.iter().find(|e| e.name == eip_name) {
            None => out.push(Action::AllocateEip { name: eip_name }),
            Some(e) => {
                // An association left by a NAT gateway that is gone (moto keeps it; AWS drops
                // it) would fail the create.
                if let Some(assoc) = &e.association_id
                    && !o
                        .nats
                        .iter()
                        .any(|n| n.allocation_id.as_deref() == Some(e.allocation_id.as_str()))
                {
                    out.push(Action::DisassociateEip {
                        association: assoc.clone(),
                    });
                }
                out.push(Action::CreateNat {
                    name,
                    subnet: public.id.clone(),
                    allocation: e.allocation_id.clone(),
                })
            }
        }
        complete = false;
    }
    if !pending.is_empty() {
        out.extend(wait(
            "WaitingForNatGateways",
            format!("NAT gateways {}", pending.join(", ")),
        ));
        return false;
    }
    if !complete {
        return false;
    }
    // One route table per subnet: public -> internet gateway, private -> the zone's NAT.
    let igw = igw.expect("checked above");
    for want in &d.subnets {
        let s = subnet(want).expect("checked above");
        let kind = if want.public { "public" } else { "private" };
        let name = format!("{}-rt-{kind}-{}", d.cluster, want.az);
        let Some(rt) = o.route_tables.iter().find(|r| r.name == name) else {
            out.push(Action::CreateRouteTable {
                name,
                public: want.public,
            });
            continue;
        };
        let target = if want.public {
            Some(igw.id.clone())
        } else {
            nat_of_zone.get(&want.az).cloned()
        };
        if let Some(target) = target
            && !rt
                .routes
                .iter()
                .any(|(dest, t)| dest == "0.0.0.0/0" && *t == target)
        {
            out.push(Action::CreateDefaultRoute {
                table: rt.id.clone(),
                target,
                replace: rt.routes.iter().any(|(dest, _)| dest == "0.0.0.0/0"),
            });
        }
        if !rt.associations.iter().any(|(_, sid)| *sid == s.id) {
            out.push(Action::Associate {
                table: rt.id.clone(),
                subnet: s.id.clone(),
            });
        }
    }
    true
}

/// Deletes of duplicates: resources AWS made twice under one name (a create whose answer was
/// lost, sent again after the consistency window). Of each name the one in use is kept (an
/// attached internet gateway, an associated Elastic IP or route table, a NAT gateway a route
/// points at, the VPC holding subnets), else the first by id; an extra that is in use is never
/// planned for deletion.
pub fn plan_dedupe(d: &Desired, o: &Observed) -> Vec<Action> {
    let mut out = Vec::new();
    if d.byo_vpc.is_some() {
        return out;
    }
    for (id, subnets) in &o.extra_vpcs {
        if *subnets == 0 {
            out.push(Action::DeleteVpc { id: id.clone() });
        }
    }
    let mut igws: Vec<_> = o.igws.iter().collect();
    igws.sort_by_key(|g| (g.attached_to.is_empty(), g.id.clone()));
    for g in igws.iter().skip(1).filter(|g| g.attached_to.is_empty()) {
        out.push(Action::DeleteIgw {
            id: g.id.clone(),
            vpcs: vec![],
        });
    }
    let names =
        |it: &mut dyn Iterator<Item = &String>| -> BTreeSet<String> { it.cloned().collect() };
    for name in names(&mut o.eips.iter().map(|e| &e.name)) {
        let mut same: Vec<_> = o.eips.iter().filter(|e| e.name == name).collect();
        same.sort_by_key(|e| (e.association_id.is_none(), e.allocation_id.clone()));
        for e in same.iter().skip(1).filter(|e| e.association_id.is_none()) {
            out.push(Action::ReleaseEip {
                allocation: e.allocation_id.clone(),
                association: None,
            });
        }
    }
    let routed = |id: &str| {
        o.route_tables
            .iter()
            .any(|r| r.routes.iter().any(|(_, t)| t == id))
    };
    for name in names(&mut o.nats.iter().map(|n| &n.name)) {
        let mut same: Vec<_> = o
            .nats
            .iter()
            .filter(|n| n.name == name && matches!(n.state.as_str(), "pending" | "available"))
            .collect();
        same.sort_by_key(|n| (!routed(&n.id), n.state != "available", n.id.clone()));
        for n in same.iter().skip(1).filter(|n| !routed(&n.id)) {
            out.push(Action::DeleteNat { id: n.id.clone() });
        }
    }
    for name in names(&mut o.route_tables.iter().map(|r| &r.name)) {
        let mut same: Vec<_> = o.route_tables.iter().filter(|r| r.name == name).collect();
        same.sort_by_key(|r| (r.associations.is_empty(), r.id.clone()));
        for r in same.iter().skip(1).filter(|r| r.associations.is_empty()) {
            out.push(Action::DeleteRouteTable {
                id: r.id.clone(),
                associations: vec![],
            });
        }
    }
    out
}

/// The remaining steps to delete everything tagged for the cluster, in dependency order;
/// empty when nothing is left. A step that must wait for AWS ends the list.
pub fn plan_delete(d: &Desired, o: &Observed) -> Vec<Action> {
    let mut out = Vec::new();
    let live: Vec<String> = o
        .instances
        .iter()
        .filter(|i| i.state != "shutting-down")
        .map(|i| i.id.clone())
        .collect();
    if !live.is_empty() {
        out.push(Action::TerminateInstances { ids: live });
    }
    if !o.instances.is_empty() {
        out.extend(wait(
            "WaitingForInstances",
            format!("{} instances are terminating", o.instances.len()),
        ));
        return out;
    }
    if let Some(l) = &o.listener {
        out.push(Action::DeleteListener { arn: l.arn.clone() });
    }
    if let Some(t) = &o.tg {
        out.push(Action::DeleteTargetGroup { arn: t.arn.clone() });
    }
    if let Some(lb) = &o.lb {
        out.push(Action::DeleteLoadBalancer {
            arn: lb.arn.clone(),
        });
    }
    // Rules reference other groups: revoke every rule first, then delete the groups.
    for g in &o.security_groups {
        if !g.ingress.is_empty() {
            out.push(Action::RevokeAll {
                group: g.id.clone(),
                rules: g.ingress.clone(),
            });
        }
    }
    for g in &o.security_groups {
        out.push(Action::DeleteSecurityGroup {
            group: g.id.clone(),
        });
    }
    let managed = d.byo_vpc.is_none();
    if !managed {
        return out;
    }
    for n in o.nats.iter().filter(|n| n.state != "deleting") {
        out.push(Action::DeleteNat { id: n.id.clone() });
    }
    if !o.nats.is_empty() {
        out.extend(wait(
            "WaitingForNatGateways",
            format!("{} NAT gateways are being deleted", o.nats.len()),
        ));
        return out;
    }
    for e in &o.eips {
        out.push(Action::ReleaseEip {
            allocation: e.allocation_id.clone(),
            association: e.association_id.clone(),
        });
    }
    for g in &o.igws {
        out.push(Action::DeleteIgw {
            id: g.id.clone(),
            vpcs: g.attached_to.clone(),
        });
    }
    for r in &o.route_tables {
        out.push(Action::DeleteRouteTable {
            id: r.id.clone(),
            associations: r.associations.iter().map(|(a, _)| a.clone()).collect(),
        });
    }
    for s in &o.subnets {
        out.push(Action::DeleteSubnet { id: s.id.clone() });
    }
    if let Some(v) = o.vpc.as_ref().filter(|v| v.owned) {
        out.push(Action::DeleteVpc { id: v.id.clone() });
    }
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
