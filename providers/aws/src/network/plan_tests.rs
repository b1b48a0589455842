use std::collections::BTreeMap;

use super::*;
use crate::network::model::{
    Eip, Igw, Instance, Lb, Nat, RouteTable, SecurityGroup, Subnet, Vpc, default_subnets,
};

fn desired() -> Desired {
    let zones = vec!["us-east-1a".to_string(), "us-east-1b".to_string()];
    Desired {
        cluster: "c1".into(),
        byo_vpc: None,
        vpc_cidr: "10.0.0.0/16".into(),
        subnets: default_subnets("c1", "10.0.0.0/16", &zones).unwrap(),
        lb_name: "default-c1-apiserver".into(),
        tg_name: "default-c1-apiserver-tg".into(),
        lb_scheme: "internet-facing".into(),
        extra_tags: BTreeMap::new(),
        api_cidrs: vec!["0.0.0.0/0".into()],
        with_lb: true,
    }
}

/// What AWS holds once everything of `d` exists (NAT gateways and the LB in `state`).
fn complete(d: &Desired, nat_state: &str, lb_state: &str) -> Observed {
    let subnets: Vec<Subnet> = d
        .subnets
        .iter()
        .enumerate()
        .map(|(i, s)| Subnet {
            id: format!("subnet-{i}"),
            name: s.name.clone(),
            cidr: s.cidr.clone(),
            az: s.az.clone(),
            public: s.public,
            map_public_ip: s.public,
        })
        .collect();
    let mut nats = vec![];
    let mut eips = vec![];
    let mut rts = vec![];
    for s in &subnets {
        if s.public {
            nats.push(Nat {
                id: format!("nat-{}", s.az),
                name: format!("c1-nat-{}", s.az),
                subnet_id: s.id.clone(),
                state: nat_state.into(),
                created: None,
                allocation_id: Some(format!("eipalloc-{}", s.az)),
            });
            eips.push(Eip {
                allocation_id: format!("eipalloc-{}", s.az),
                name: format!("c1-eip-{}", s.az),
                association_id: Some("eipassoc-1".into()),
                public_ip: "127.0.0.1".into(),
            });
        }
        let kind = if s.public { "public" } else { "private" };
        let target = if s.public {
            "igw-1".to_string()
        } else {
            format!("nat-{}", s.az)
        };
        rts.push(RouteTable {
            id: format!("rtb-{}", s.id),
            name: format!("c1-rt-{kind}-{}", s.az),
            associations: vec![(format!("rtbassoc-{}", s.id), s.id.clone())],
            routes: vec![("0.0.0.0/0".into(), target)],
        });
    }
    let groups: BTreeMap<String, String> = SG_ROLES
        .iter()
        .map(|r| (r.to_string(), format!("sg-{r}")))
        .collect();
    let rules = desired_rules(&groups, "10.0.0.0/16", &d.api_cidrs);
    Observed {
        zones: vec!["us-east-1a".into(), "us-east-1b".into()],
        vpc: Some(Vpc {
            id: "vpc-1".into(),
            cidr: "10.0.0.0/16".into(),
            owned: true,
            dns_hostnames: true,
        }),
        subnets,
        igws: vec![Igw {
            id: "igw-1".into(),
            attached_to: vec!["vpc-1".into()],
        }],
        eips,
        nats,
        route_tables: rts,
        security_groups: SG_ROLES
            .iter()
            .map(|r| SecurityGroup {
                id: format!("sg-{r}"),
                name: format!("c1-{r}"),
                ingress: rules[*r].clone(),
            })
            .collect(),
        lb: Some(Lb {
            arn: "arn:lb".into(),
            dns_name: "lb.example".into(),
            state: lb_state.into(),
        }),
        tg: Some(Lb {
            arn: "arn:tg".into(),
            ..Default::default()
        }),
        listener: Some(Lb {
            arn: "arn:listener".into(),
            ..Default::default()
        }),
        instances: vec![],
        ..Default::default()
    }
}

fn kinds(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| {
            let s = format!("{a:?}");
            s.split([' ', '(', '{']).next().unwrap().to_string()
        })
        .collect()
}

#[test]
fn from_nothing_the_vpc_comes_first() {
    let d = desired();
    assert_eq!(
        plan_create(&d, &Observed::default()),
        [Action::CreateVpc {
            cidr: "10.0.0.0/16".into()
        }]
    );
}

#[test]
fn with_a_vpc_the_subnets_and_the_gateway_come_next_then_nats_wait_for_them() {
    let d = desired();
    let mut o = Observed {
        vpc: complete(&d, "available", "active").vpc,
        ..Default::default()
    };
    o.vpc.as_mut().unwrap().dns_hostnames = false;
    assert_eq!(
        kinds(&plan_create(&d, &o)),
        [
            "EnableDnsHostnames",
            "CreateSubnet",
            "CreateSubnet",
            "CreateSubnet",
            "CreateSubnet",
            "CreateIgw"
        ]
    );
    // Subnets and an attached gateway exist: EIPs, then NAT gateways.
    let full = complete(&d, "available", "active");
    o.vpc.as_mut().unwrap().dns_hostnames = true;
    o.subnets = full.subnets.clone();
    o.igws = full.igws.clone();
    assert_eq!(kinds(&plan_create(&d, &o)), ["AllocateEip", "AllocateEip"]);
    // Freshly allocated: not associated yet.
    o.eips = full
        .eips
        .iter()
        .cloned()
        .map(|mut e| {
            e.association_id = None;
            e
        })
        .collect();
    let p = plan_create(&d, &o);
    assert_eq!(kinds(&p), ["CreateNat", "CreateNat"]);
    assert_eq!(
        p[0],
        Action::CreateNat {
            name: "c1-nat-us-east-1a".into(),
            subnet: "subnet-0".into(),
            allocation: "eipalloc-us-east-1a".into()
        }
    );
}

#[test]
fn pending_nat_gateways_and_a_provisioning_load_balancer_are_waited_for() {
    let d = desired();
    let mut o = complete(&d, "pending", "provisioning");
    o.route_tables.clear();
    let p = plan_create(&d, &o);
    assert_eq!(kinds(&p), ["Wait"]);
    let Action::Wait { reason, message } = &p[0] else {
        unreachable!()
    };
    assert_eq!(reason, "WaitingForNatGateways");
    assert!(message.contains("nat-us-east-1a is pending"), "{message}");
    let o = complete(&d, "available", "provisioning");
    let p = plan_create(&d, &o);
    assert_eq!(
        p,
        [Action::Wait {
            reason: "WaitingForLoadBalancer".into(),
            message: "load balancer default-c1-apiserver is provisioning".into()
        }]
    );
    // All there and active: nothing to do.
    assert!(plan_create(&d, &complete(&d, "available", "active")).is_empty());
}

#[test]
fn routes_security_groups_and_the_load_balancer_in_order() {
    let d = desired();
    let full = complete(&d, "available", "active");
    let mut o = full.clone();
    o.route_tables.clear();
    o.security_groups.clear();
    o.lb = None;
    o.tg = None;
    o.listener = None;
    let p = plan_create(&d, &o);
    assert_eq!(
        kinds(&p),
        [
            "CreateRouteTable",
            "CreateRouteTable",
            "CreateRouteTable",
            "CreateRouteTable",
            "CreateSecurityGroup",
            "CreateSecurityGroup",
            "CreateSecurityGroup",
            "CreateSecurityGroup"
        ]
    );
    // Tables exist without routes or associations.
    o.route_tables = full
        .route_tables
        .iter()
        .map(|r| RouteTable {
            associations: vec![],
            routes: vec![],
            ..r.clone()
        })
        .collect();
    o.security_groups = full
        .security_groups
        .iter()
        .map(|g| SecurityGroup {
            ingress: vec![],
            ..g.clone()
        })
        .collect();
    let p = plan_create(&d, &o);
    let k = kinds(&p);
    assert_eq!(k.iter().filter(|k| *k == "CreateDefaultRoute").count(), 4);
    assert_eq!(k.iter().filter(|k| *k == "Associate").count(), 4);
    assert_eq!(k.iter().filter(|k| *k == "Authorize").count(), 4);
    assert_eq!(k.last().unwrap(), "CreateLoadBalancer");
    assert!(p.contains(&Action::CreateDefaultRoute {
        table: "rtb-subnet-1".into(),
        target: "nat-us-east-1a".into(),
        replace: false,
    }));
    let Some(Action::CreateLoadBalancer {
        subnets,
        security_groups,
    }) = p.last()
    else {
        unreachable!()
    };
    assert_eq!(subnets, &["subnet-0", "subnet-2"], "the public subnets");
    assert_eq!(security_groups, &["sg-apiserver-lb"]);
    // LB without target group, then without listener.
    o = full.clone();
    o.tg = None;
    o.listener = None;
    assert_eq!(kinds(&plan_create(&d, &o)), ["CreateTargetGroup"]);
    o.tg = full.tg.clone();
    assert_eq!(
        plan_create(&d, &o),
        [Action::CreateListener {
            lb: "arn:lb".into(),
            tg: "arn:tg".into()
        }]
    );
}

#[test]
fn a_brought_vpc_gets_only_security_groups_and_the_load_balancer() {
    let mut d = desired();
    d.byo_vpc = Some("vpc-mine".into());
    assert_eq!(kinds(&plan_create(&d, &Observed::default())), ["Wait"]);
    let full = complete(&d, "available", "active");
    let o = Observed {
        vpc: Some(Vpc {
            id: "vpc-mine".into(),
            owned: false,
            dns_hostnames: false,
            ..full.vpc.clone().unwrap()
        }),
        subnets: full.subnets.clone(),
        ..Default::default()
    };
    assert_eq!(kinds(&plan_create(&d, &o)), vec!["CreateSecurityGroup"; 4]);
    // Deleting it leaves the VPC and its subnets alone.
    let mut o = full;
    o.vpc.as_mut().unwrap().owned = false;
    let k = kinds(&plan_delete(&d, &o));
    assert!(
        !k.iter()
            .any(|k| k.contains("Vpc") || k.contains("Subnet") || k.contains("Nat"))
    );
    assert!(k.contains(&"DeleteSecurityGroup".to_string()));
}

#[test]
fn delete_goes_in_dependency_order_and_waits_where_aws_must_finish() {
    let d = desired();
    let mut o = complete(&d, "available", "active");
    o.instances = vec![
        Instance {
            id: "i-1".into(),
            state: "running".into(),
            control_plane: false,
        },
        Instance {
            id: "i-2".into(),
            state: "shutting-down".into(),
            control_plane: false,
        },
    ];
    assert_eq!(
        plan_delete(&d, &o),
        [
            Action::TerminateInstances {
                ids: vec!["i-1".into()]
            },
            Action::Wait {
                reason: "WaitingForInstances".into(),
                message: "2 instances are terminating".into()
            }
        ]
    );
    o.instances.clear();
    let k = kinds(&plan_delete(&d, &o));
    assert_eq!(
        k,
        [
            "DeleteListener",
            "DeleteTargetGroup",
            "DeleteLoadBalancer",
            "RevokeAll",
            "RevokeAll",
            "RevokeAll",
            "RevokeAll",
            "DeleteSecurityGroup",
            "DeleteSecurityGroup",
            "DeleteSecurityGroup",
            "DeleteSecurityGroup",
            "DeleteNat",
            "DeleteNat",
            "Wait"
        ]
    );
    // NAT gateways gone: EIPs, gateway, route tables, subnets, VPC.
    o.listener = None;
    o.tg = None;
    o.lb = None;
    o.security_groups.clear();
    o.nats.clear();
    let k = kinds(&plan_delete(&d, &o));
    assert_eq!(
        k,
        [
            "ReleaseEip",
            "ReleaseEip",
            "DeleteIgw",
            "DeleteRouteTable",
            "DeleteRouteTable",
            "DeleteRouteTable",
            "DeleteRouteTable",
            "DeleteSubnet",
            "DeleteSubnet",
            "DeleteSubnet",
            "DeleteSubnet",
            "DeleteVpc"
        ]
    );
    assert!(plan_delete(&d, &Observed::default()).is_empty());
}

#[test]
fn without_a_load_balancer_the_network_is_complete_after_the_security_groups() {
    let mut d = desired();
    d.with_lb = false;
    let mut o = complete(&d, "available", "active");
    o.lb = None;
    o.tg = None;
    o.listener = None;
    assert!(plan_create(&d, &o).is_empty());
}

#[test]
fn drift_of_a_ready_network_is_planned_back() {
    let d = desired();
    let mut o = complete(&d, "available", "active");
    assert!(plan_create(&d, &o).is_empty());
    // A NAT gateway deleted outside slipway: made again from the zone's Elastic IP, then the
    // private route (still pointing at the deleted one) replaced.
    o.nats.retain(|n| n.name != "c1-nat-us-east-1a");
    let p = plan_create(&d, &o);
    assert_eq!(
        p,
        [
            // moto keeps the gone NAT gateway's association on the address.
            Action::DisassociateEip {
                association: "eipassoc-1".into()
            },
            Action::CreateNat {
                name: "c1-nat-us-east-1a".into(),
                subnet: "subnet-0".into(),
                allocation: "eipalloc-us-east-1a".into(),
            }
        ]
    );
    o.nats.push(Nat {
        id: "nat-new".into(),
        name: "c1-nat-us-east-1a".into(),
        subnet_id: "subnet-0".into(),
        state: "available".into(),
        ..Default::default()
    });
    let p = plan_create(&d, &o);
    assert_eq!(
        p,
        [Action::CreateDefaultRoute {
            table: "rtb-subnet-1".into(),
            target: "nat-new".into(),
            replace: true,
        }]
    );
    // A route deleted: created (not replaced).
    let mut o = complete(&d, "available", "active");
    o.route_tables[1].routes.clear();
    assert_eq!(
        plan_create(&d, &o),
        [Action::CreateDefaultRoute {
            table: "rtb-subnet-1".into(),
            target: "nat-us-east-1a".into(),
            replace: false,
        }]
    );
    // A security-group rule revoked: authorized again.
    let mut o = complete(&d, "available", "active");
    let lost = o.security_groups[0].ingress.remove(0);
    assert_eq!(
        plan_create(&d, &o),
        [Action::Authorize {
            group: o.security_groups[0].id.clone(),
            rules: vec![lost],
        }]
    );
    // A running control-plane instance missing from the target group: registered; workers
    // and instances not running are not.
    let mut o = complete(&d, "available", "active");
    o.instances = vec![
        Instance {
            id: "i-cp".into(),
            state: "running".into(),
            control_plane: true,
        },
        Instance {
            id: "i-cp-pending".into(),
            state: "pending".into(),
            control_plane: true,
        },
        Instance {
            id: "i-worker".into(),
            state: "running".into(),
            control_plane: false,
        },
    ];
    assert_eq!(
        plan_create(&d, &o),
        [Action::RegisterTargets {
            tg: "arn:tg".into(),
            ids: vec!["i-cp".into()],
        }]
    );
    o.targets = vec!["i-cp".into()];
    assert!(plan_create(&d, &o).is_empty());
}
