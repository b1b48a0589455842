//! The AWS provider behind a fault-injecting proxy in front of a real `moto_server`
//! (`slipway_testsupport::fault_proxy`): ClientTokens recorded on the wire, the same after a
//! crash and new for a deliberate re-create; and a chaos run of several clusters provisioned
//! and deleted under every fault class with the "controller" killed at random points, ending
//! with no duplicate and no leak, counted by owner tag client-side.
//!
//! A kill drops the provider's pass mid-flight (its status is never written, the request in
//! flight may or may not have reached moto) and replaces the provider with a fresh one (a new
//! process: nothing in memory survives), which is what a SIGKILL of the controller leaves.
//! The seed is printed; `SLIPWAY_CHAOS_SEED` replays a run.

mod common;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use common::*;
use slipway_aws::{creations::token, network::model::owner_tag};
use slipway_testsupport::{
    fault_proxy::{Draw, Fault, FaultProxy, Rule, chaos_seed},
    moto::moto,
};

const WINDOW: Duration = Duration::from_secs(3);

async fn ready(
    p: &slipway_aws::Aws,
    s: &mut slipway_providers::ClusterScope<slipway_aws::api::AWSCluster>,
) {
    for _ in 0..60 {
        match cluster_pass(p, s, None).await {
            Pass::Done => return,
            Pass::Again(d) => tokio::time::sleep(d.min(Duration::from_millis(500))).await,
            Pass::Failed(e) => panic!("{e}"),
            Pass::Killed => unreachable!(),
        }
    }
    panic!("not Ready");
}

#[tokio::test]
async fn client_tokens_are_derived_from_uid_and_attempt_and_survive_a_crash() {
    let Some(m) = moto(&[]) else { return };
    let proxy = FaultProxy::start(&m.url, 1);
    let mut s = cluster_scope("t1");
    let uid = s.infra.metadata.uid.clone().unwrap();

    // The first "process" gets every CreateNatGateway answer lost (moto made the gateway) and
    // dies; the second must send the same tokens, and end with one gateway per zone.
    proxy.set_rules(vec![Rule::new("CreateNatGateway", Fault::DropAfter, 100)]);
    let first = provider(&proxy.url, WINDOW);
    for _ in 0..40 {
        let _ = cluster_pass(&first, &mut s, None).await;
        if proxy.counts().get("CreateNatGateway").copied().unwrap_or(0) >= 3 {
            break;
        }
    }
    drop(first);
    proxy.set_rules(vec![]);
    let second = provider(&proxy.url, WINDOW);
    ready(&second, &mut s).await;
    let nat_tokens: BTreeMap<String, Vec<String>> = proxy
        .records()
        .into_iter()
        .filter(|r| r.action == "CreateNatGateway")
        .fold(BTreeMap::new(), |mut m, r| {
            let t = r.token.expect("CreateNatGateway carries a ClientToken");
            m.entry(t.clone()).or_insert_with(Vec::new).push(t);
            m
        });
    println!(
        "CreateNatGateway tokens and sends: {:?}",
        nat_tokens
            .iter()
            .map(|(t, v)| (t, v.len()))
            .collect::<Vec<_>>()
    );
    let want: std::collections::BTreeSet<String> = ["a", "b", "c"]
        .iter()
        .map(|z| token(&uid, &format!("t1-nat-us-east-1{z}"), 1))
        .collect();
    assert_eq!(
        nat_tokens
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        want,
        "one token per zone, attempt 1, in both processes"
    );
    assert!(
        nat_tokens.values().any(|v| v.len() >= 2),
        "the restarted process resent a create with the same token: {nat_tokens:?}"
    );
    assert_eq!(m.inventory(&owner_tag("t1")).await["nat_gateways"], 3);

    // RunInstances: attempt 1's token; the answer lost, sent again with it; one instance.
    proxy.set_rules(vec![Rule::new("RunInstances", Fault::DropAfter, 100)]);
    let mut ms = machine_scope(&s, "t1-cp-0");
    for _ in 0..4 {
        let _ = machine_pass(&second, &mut ms, None).await;
    }
    proxy.set_rules(vec![]);
    let third = provider(&proxy.url, WINDOW);
    for _ in 0..10 {
        if machine_pass(&third, &mut ms, None).await == Pass::Done {
            break;
        }
    }
    let runs: Vec<_> = proxy
        .records()
        .into_iter()
        .filter(|r| r.action == "RunInstances")
        .collect();
    assert!(runs.len() >= 2, "{runs:?}");
    let machine_uid = ms.infra.metadata.uid.clone().unwrap();
    assert!(
        runs.iter()
            .all(|r| r.token.as_deref() == Some(token(&machine_uid, "instance", 1).as_str())),
        "{runs:?}"
    );
    assert_eq!(m.inventory(&owner_tag("t1")).await["instances"], 1);

    // A deliberate re-create (the NAT gateway deleted outside slipway): attempt 2, a new token.
    let ec2 = m.ec2().await;
    let nat = m.owned_ids(&owner_tag("t1")).await["nat_gateways"]
        .iter()
        .next()
        .unwrap()
        .clone();
    let zone_name = ec2
        .describe_nat_gateways()
        .nat_gateway_ids(&nat)
        .send()
        .await
        .unwrap()
        .nat_gateways()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("Name"))
        .and_then(|t| t.value())
        .unwrap()
        .to_string();
    ec2.delete_nat_gateway()
        .nat_gateway_id(&nat)
        .send()
        .await
        .unwrap();
    let before = proxy.records().len();
    ready(&third, &mut s).await;
    let again: Vec<_> = proxy.records()[before..]
        .iter()
        .filter(|r| r.action == "CreateNatGateway")
        .cloned()
        .collect();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].token, Some(token(&uid, &zone_name, 2)));
    assert_eq!(m.inventory(&owner_tag("t1")).await["nat_gateways"], 3);
    assert_eq!(
        s.infra.status.as_ref().unwrap().creations.as_ref().unwrap()[&zone_name].attempt,
        2
    );
}

fn expected() -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("vpcs", 1),
        ("subnets", 6),
        ("internet_gateways", 1),
        ("nat_gateways", 3),
        ("elastic_ips", 3),
        ("route_tables", 6),
        ("security_groups", 4),
        ("instances", 1),
        ("load_balancers", 1),
        ("target_groups", 1),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_clusters_under_every_fault_and_random_kills_end_with_no_duplicate_and_no_leak() {
    let Some(m) = moto(&[]) else { return };
    let seed = chaos_seed();
    println!("chaos seed {seed} (replay with SLIPWAY_CHAOS_SEED={seed})");
    let proxy = FaultProxy::start(&m.url, seed);
    let hide = Duration::from_millis(1500);
    let rules = vec![
        Rule::new("*", Fault::Throttle, 4),
        Rule::new("*", Fault::ServerError, 3),
        Rule::new("*", Fault::DropBefore, 3),
        Rule::new("Create*", Fault::DropAfter, 8),
        Rule::new("RunInstances", Fault::DropAfter, 15),
        Rule::new("AllocateAddress", Fault::DropAfter, 8),
        Rule::new("*", Fault::Latency(Duration::from_millis(150)), 5),
        Rule::new("Create*", Fault::Hide(hide), 25),
        Rule::new("AllocateAddress", Fault::Hide(hide), 25),
        Rule::new("RunInstances", Fault::Hide(hide), 25),
    ];
    proxy.set_rules(rules.clone());
    let mut draw = Draw::new(seed);
    let names = ["x1", "x2", "x3"];
    let mut clusters: Vec<_> = names.iter().map(|n| cluster_scope(n)).collect();
    let mut machines: Vec<Option<_>> = names.iter().map(|_| None).collect();
    let mut p = provider(&proxy.url, WINDOW);
    let mut kills = 0;
    let started = Instant::now();

    // Provision: rounds in which every cluster not done yet runs one pass at once (its
    // control-plane machine once the cluster is Ready), as the controller's workers do; a
    // round is killed (1 in 6) after 0-500 ms: every pass in flight is dropped, nothing of it
    // written, and a fresh "process" goes on.
    let mut done = vec![false; names.len()];
    while done.iter().any(|d| !d) {
        assert!(
            started.elapsed() < Duration::from_secs(100),
            "provisioning took too long (seed {seed})"
        );
        // Every round is a candidate until two kills landed (a short run could else draw none).
        let kill = (kills < 2 || draw.next(6) == 0).then(|| Duration::from_millis(draw.next(500)));
        let round = futures::future::join_all(
            clusters
                .iter_mut()
                .zip(machines.iter_mut())
                .zip(done.iter_mut())
                .zip(names)
                .filter(|(((_, _), d), _)| !**d)
                .map(|(((s, ms), d), name)| {
                    let p = &p;
                    async move {
                        match ms {
                            None => {
                                if cluster_pass(p, s, None).await == Pass::Done {
                                    *ms = Some(machine_scope(s, &format!("{name}-cp-0")));
                                }
                            }
                            Some(ms) => {
                                ms.infra_cluster = s.infra.clone();
                                *d = machine_pass(p, ms, None).await == Pass::Done;
                            }
                        }
                    }
                }),
        );
        match kill {
            Some(k) => {
                if tokio::time::timeout(k, round).await.is_err() {
                    kills += 1;
                    p = provider(&proxy.url, WINDOW);
                }
            }
            None => {
                round.await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let provisioned = started.elapsed();

    // Steady state: faults off, past the window and the hiding, one pass each (duplicates that
    // showed up late are adopted or removed), then exactly one of everything per cluster.
    proxy.set_rules(vec![]);
    tokio::time::sleep(WINDOW.max(hide) + Duration::from_secs(1)).await;
    let p = provider(&proxy.url, WINDOW);
    for s in clusters.iter_mut() {
        for _ in 0..20 {
            if cluster_pass(&p, s, None).await == Pass::Done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    for n in names {
        assert_eq!(
            m.inventory(&owner_tag(n)).await,
            expected(),
            "{n}: duplicates or missing resources at steady state (seed {seed})"
        );
    }

    // Delete under faults and kills; nothing tagged for any cluster is left.
    proxy.set_rules(rules);
    let mut p = provider(&proxy.url, WINDOW);
    let mut gone = vec![false; names.len()];
    let mut machine_gone = vec![false; names.len()];
    let del_started = Instant::now();
    let del_kills_from = kills;
    while gone.iter().any(|g| !g) {
        assert!(
            del_started.elapsed() < Duration::from_secs(90),
            "delete took too long (seed {seed})"
        );
        let kill = (kills < del_kills_from + 2 || draw.next(6) == 0)
            .then(|| Duration::from_millis(draw.next(500)));
        let round = futures::future::join_all(
            clusters
                .iter_mut()
                .zip(machines.iter_mut())
                .zip(gone.iter_mut().zip(machine_gone.iter_mut()))
                .filter(|(_, (g, _))| !**g)
                .map(|((s, ms), (g, mg))| {
                    let p = &p;
                    async move {
                        if !*mg {
                            let ms = ms.as_mut().unwrap();
                            *mg = machine_delete_pass(p, ms, None).await == Pass::Done;
                        } else {
                            *g = cluster_delete_pass(p, s, None).await == Pass::Done;
                        }
                    }
                }),
        );
        match kill {
            Some(k) => {
                if tokio::time::timeout(k, round).await.is_err() {
                    kills += 1;
                    p = provider(&proxy.url, WINDOW);
                }
            }
            None => {
                round.await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.set_rules(vec![]);
    for n in names {
        let left = m.inventory(&owner_tag(n)).await;
        assert!(
            left.values().all(|v| *v == 0),
            "{n} leaked (seed {seed}): {left:?}"
        );
    }

    // The report: kills, faults, requests per action (bounded: SDK retries times slipway's do
    // not compound into storms).
    let counts = proxy.counts();
    let total: usize = counts.values().sum();
    println!(
        "chaos: {} clusters, provisioned in {:.1}s, deleted in {:.1}s, {kills} kills, faults {:?}, {total} requests",
        names.len(),
        provisioned.as_secs_f64(),
        del_started.elapsed().as_secs_f64(),
        proxy.faults()
    );
    let per_cluster = expected();
    let resources: BTreeMap<&str, usize> = BTreeMap::from([
        ("CreateVpc", per_cluster["vpcs"]),
        ("CreateSubnet", per_cluster["subnets"]),
        ("CreateInternetGateway", per_cluster["internet_gateways"]),
        ("CreateNatGateway", per_cluster["nat_gateways"]),
        ("AllocateAddress", per_cluster["elastic_ips"]),
        ("CreateRouteTable", per_cluster["route_tables"]),
        ("CreateSecurityGroup", per_cluster["security_groups"]),
        ("RunInstances", per_cluster["instances"]),
        ("CreateLoadBalancer", per_cluster["load_balancers"]),
        ("CreateTargetGroup", per_cluster["target_groups"]),
    ]);
    for (op, n) in &counts {
        let per = resources
            .get(op.as_str())
            .map(|r| *n as f64 / (r * names.len()) as f64);
        match per {
            Some(per) => println!("  {op:<32} {n:>5}  ({per:.1} per resource)"),
            None => println!("  {op:<32} {n:>5}"),
        }
        if let Some(per) = per {
            assert!(
                per <= 25.0,
                "{op}: {per:.1} requests per resource (seed {seed})"
            );
        }
    }
    assert!(kills > 0, "the run killed nothing (seed {seed})");
    for kind in [
        "throttle",
        "5xx",
        "drop-before",
        "drop-after",
        "latency",
        "hide",
    ] {
        assert!(
            proxy.faults().get(kind).copied().unwrap_or(0) > 0,
            "no {kind} fault injected (seed {seed})"
        );
    }
}

/// A second instance with the machine's tags (what an API ignoring ClientTokens, or an expired
/// token, leaves): terminated on the next pass, the recorded one kept; another cluster's
/// instance of the same name is untouched; a delete takes the machine's extras along.
#[tokio::test]
async fn a_duplicate_instance_of_a_machine_is_terminated_and_the_recorded_one_kept() {
    let Some(m) = moto(&[]) else { return };
    let p = provider(&m.url, WINDOW);
    let mut s = cluster_scope("d1");
    ready(&p, &mut s).await;
    let mut ms = machine_scope(&s, "d1-cp-0");
    for _ in 0..10 {
        if machine_pass(&p, &mut ms, None).await == Pass::Done {
            break;
        }
    }
    let first = m.instances(&owner_tag("d1")).await;
    assert_eq!(first.len(), 1, "{first:?}");
    let first = first[0].0.clone();
    // Core records the providerID.
    let mut am = (*ms.infra).clone();
    am.spec.provider_id = Some(format!("aws:///us-east-1a/{first}"));
    ms.infra = std::sync::Arc::new(am);

    let ec2 = m.ec2().await;
    let tags: Vec<aws_sdk_ec2::types::Tag> = ec2
        .describe_instances()
        .instance_ids(&first)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .tags()
        .to_vec();
    let launch = |tags: Vec<aws_sdk_ec2::types::Tag>| {
        let ec2 = ec2.clone();
        async move {
            ec2.run_instances()
                .image_id("ami-760aaa0f")
                .min_count(1)
                .max_count(1)
                .tag_specifications(
                    aws_sdk_ec2::types::TagSpecification::builder()
                        .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                        .set_tags(Some(tags))
                        .build(),
                )
                .send()
                .await
                .unwrap()
                .instances()[0]
                .instance_id()
                .unwrap()
                .to_string()
        }
    };
    let dup = launch(tags.clone()).await;
    // Same Name, another cluster's owner tag: not this machine's.
    let other_tags: Vec<_> = tags
        .iter()
        .filter(|t| t.key() == Some("Name"))
        .cloned()
        .chain([aws_sdk_ec2::types::Tag::builder()
            .key(owner_tag("other"))
            .value("owned")
            .build()])
        .collect();
    let other = launch(other_tags).await;
    assert_eq!(m.inventory(&owner_tag("d1")).await["instances"], 2);

    assert_eq!(machine_pass(&p, &mut ms, None).await, Pass::Done);
    let left: Vec<String> = m
        .instances(&owner_tag("d1"))
        .await
        .into_iter()
        .map(|i| i.0)
        .collect();
    assert_eq!(
        left,
        std::slice::from_ref(&first),
        "the duplicate {dup} is terminated"
    );
    assert_eq!(
        m.instances(&owner_tag("other")).await,
        [(other.clone(), "d1-cp-0".to_string())]
    );

    // A delete terminates the machine's instance and any extra made meanwhile.
    let dup2 = launch(tags).await;
    for _ in 0..20 {
        if machine_delete_pass(&p, &mut ms, None).await == Pass::Done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let left = m.instances(&owner_tag("d1")).await;
    assert!(left.is_empty(), "{dup2} or {first} left: {left:?}");
    assert_eq!(m.instances(&owner_tag("other")).await.len(), 1);
}
