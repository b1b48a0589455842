//! The network's side of [`crate::creations`]: which planned step creates which named
//! resource (and whether AWS takes a ClientToken for it), which named resources AWS shows,
//! and whether a NAT gateway of the current attempt failed. Pure.

use std::collections::BTreeSet;

use super::{
    model::{Desired, Observed},
    plan::Action,
};

/// The resource name a create step makes, and whether its call carries a ClientToken.
/// Load balancer, target group and listener are idempotent by name on AWS: `None`, as for
/// every step that creates nothing.
pub fn create_name(d: &Desired, a: &Action) -> Option<(String, bool)> {
    let cl = &d.cluster;
    Some(match a {
        Action::CreateVpc { .. } => (format!("{cl}-vpc"), false),
        Action::CreateSubnet(s) => (s.name.clone(), false),
        Action::CreateIgw => (format!("{cl}-igw"), false),
        Action::AllocateEip { name } => (name.clone(), false),
        Action::CreateNat { name, .. } => (name.clone(), true),
        Action::CreateRouteTable { name, .. } => (name.clone(), false),
        Action::CreateSecurityGroup { name, .. } => (name.clone(), false),
        _ => return None,
    })
}

/// Names of the resources AWS shows (a failed NAT gateway does not count).
pub fn seen(d: &Desired, o: &Observed) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if o.vpc.is_some() {
        out.insert(format!("{}-vpc", d.cluster));
    }
    if !o.igws.is_empty() {
        out.insert(format!("{}-igw", d.cluster));
    }
    out.extend(o.subnets.iter().map(|s| s.name.clone()));
    // A subnet is found by CIDR too (the planner's rule).
    out.extend(
        d.subnets
            .iter()
            .filter(|w| o.subnets.iter().any(|s| s.cidr == w.cidr))
            .map(|w| w.name.clone()),
    );
    out.extend(o.eips.iter().map(|e| e.name.clone()));
    out.extend(
        o.nats
            .iter()
            .filter(|n| n.state != "failed")
            .map(|n| n.name.clone()),
    );
    out.extend(o.route_tables.iter().map(|r| r.name.clone()));
    out.extend(o.security_groups.iter().map(|g| g.name.clone()));
    out
}

/// Whether a NAT gateway `name` created at or after `since` (epoch seconds) shows `failed`:
/// the current attempt failed, and a new one (a new token) is due. A failed one from before
/// is an earlier attempt's.
pub fn nat_failed_since(o: &Observed, name: &str, since: i64) -> bool {
    o.nats
        .iter()
        .any(|n| n.name == name && n.state == "failed" && n.created.unwrap_or(i64::MAX) >= since)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::model::{Nat, Subnet};

    #[test]
    fn steps_name_what_they_create_and_tokens_only_where_aws_takes_them() {
        let zones = vec!["us-east-1a".to_string()];
        let d = Desired {
            cluster: "c1".into(),
            byo_vpc: None,
            vpc_cidr: "10.0.0.0/16".into(),
            subnets: crate::network::model::default_subnets("c1", "10.0.0.0/16", &zones).unwrap(),
            lb_name: "lb".into(),
            tg_name: "tg".into(),
            lb_scheme: "internet-facing".into(),
            extra_tags: Default::default(),
            api_cidrs: vec![],
            with_lb: true,
        };
        assert_eq!(
            create_name(&d, &Action::CreateIgw),
            Some(("c1-igw".to_string(), false))
        );
        assert_eq!(
            create_name(
                &d,
                &Action::CreateNat {
                    name: "c1-nat-a".into(),
                    subnet: "s".into(),
                    allocation: "e".into()
                }
            ),
            Some(("c1-nat-a".to_string(), true))
        );
        assert_eq!(
            create_name(&d, &Action::CreateTargetGroup { vpc: "v".into() }),
            None
        );
        let mut o = Observed::default();
        o.subnets.push(Subnet {
            name: String::new(),
            cidr: d.subnets[0].cidr.clone(),
            ..Default::default()
        });
        o.nats.push(Nat {
            name: "c1-nat-a".into(),
            state: "failed".into(),
            created: Some(100),
            ..Default::default()
        });
        let s = seen(&d, &o);
        assert!(s.contains(&d.subnets[0].name), "{s:?}");
        assert!(!s.contains("c1-nat-a"));
        assert!(nat_failed_since(&o, "c1-nat-a", 100));
        assert!(!nat_failed_since(&o, "c1-nat-a", 101));
    }
}
