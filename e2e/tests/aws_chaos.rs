//! Chaos at the process level: a real `slipway controller` process, SIGKILLed at seeded random
//! moments and started again, provisions and deletes EC2 + kubeadm clusters and an EKS cluster
//! with a managed node group, against a real `moto_server` behind the fault-injecting proxy
//! (`slipway_testsupport::fault_proxy`) injecting every fault class into EC2, ELBv2, STS and
//! EKS requests. Asserted by owner tag in moto, counted client-side: exactly one of everything
//! per cluster at steady state, nothing left after delete; printed: the kills, the injected
//! faults and the requests per action, the creates bounded per resource (the SDK's retries and
//! slipway's do not compound).
//!
//! moto boots nothing: as in `aws.rs`, a `slipway up` plane per EC2 cluster stands in for its
//! API server and the test registers a Node for every instance, as its kubelet would. The EC2
//! clusters have a control-plane machine and no workers (the worker path is the same RunInstances
//! path; a worker stage would double the run). The seed
//! is printed; `SLIPWAY_CHAOS_SEED=<n>` replays a run (the kill moments; the faults drawn per
//! request also depend on timing).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use slipway_aws::network::model::owner_tag;
use slipway_testsupport::{
    Mgmt, condition, eventually,
    fault_proxy::{Draw, Fault, FaultProxy, Rule, chaos_seed},
    generate_for_moto, machines,
    moto::moto,
    register_node,
};

const EC2: [&str; 2] = ["k1", "k2"];
const EKS: &str = "e1";

fn network() -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("vpcs", 1),
        ("subnets", 6),
        ("internet_gateways", 1),
        ("nat_gateways", 3),
        ("elastic_ips", 3),
        ("route_tables", 6),
        ("security_groups", 4),
        ("instances", 0),
        ("load_balancers", 0),
        ("target_groups", 0),
    ])
}

fn ec2_cluster() -> BTreeMap<&'static str, usize> {
    let mut m = network();
    m.insert("instances", 1);
    m.insert("load_balancers", 1);
    m.insert("target_groups", 1);
    m
}

/// Every fault class, at rates a real process gets through in CI's few minutes (the
/// provider-level chaos test in `providers/aws/tests/faults.rs` runs denser ones).
fn rules() -> Vec<Rule> {
    let hide = Duration::from_millis(1000);
    vec![
        Rule::new("*", Fault::Throttle, 3),
        Rule::new("*", Fault::ServerError, 2),
        Rule::new("*", Fault::DropBefore, 2),
        Rule::new("Create*", Fault::DropAfter, 5),
        Rule::new("RunInstances", Fault::DropAfter, 10),
        Rule::new("AllocateAddress", Fault::DropAfter, 5),
        Rule::new("*", Fault::Latency(Duration::from_millis(100)), 5),
        Rule::new("Create*", Fault::Hide(hide), 10),
        Rule::new("AllocateAddress", Fault::Hide(hide), 20),
        Rule::new("RunInstances", Fault::Hide(hide), 20),
        // EKS sends few requests next to EC2: its polls get a rate of their own so every run
        // puts faults on EKS (a run with none would not test it).
        Rule::new("DescribeCluster", Fault::Throttle, 25),
        Rule::new("DescribeNodegroup", Fault::Throttle, 25),
    ]
}

/// Kills the controller and starts it again.
fn kill(m: &mut Mgmt, env: &[(&str, String)], kills: &mut usize) {
    m.kill_controller();
    m.start_controller_env(env);
    *kills += 1;
}

/// Why the clusters are not all provisioned yet (`None`: they are).
fn not_ready(m: &Mgmt) -> Option<String> {
    for c in EC2 {
        let ms = machines(m, c);
        let running = ms
            .iter()
            .filter(|x| x["status"]["phase"] == "Running")
            .count();
        if ms.len() != 1 || running != 1 {
            return Some(format!("{c}: {running}/{} machines running", ms.len()));
        }
    }
    let cp = m.json(&[
        "get",
        "awsmanagedcontrolplane",
        &format!("{EKS}-control-plane"),
    ]);
    if condition(&cp, "Ready").as_deref() != Some("True") {
        return Some(format!(
            "{EKS} control plane: {:#}",
            cp["status"]["conditions"]
        ));
    }
    let pool = m.json(&["get", "awsmanagedmachinepool", &format!("{EKS}-pool-0")]);
    if condition(&pool, "Ready").as_deref() != Some("True") {
        return Some(format!("{EKS} pool: {:#}", pool["status"]["conditions"]));
    }
    None
}

/// Registers a Ready Node for every AWSMachine with a providerID not registered yet.
fn register_nodes(m: &Mgmt, workloads: &[Mgmt], done: &mut BTreeSet<String>) {
    for am in m.items(&["get", "awsmachines"]) {
        let Some(pid) = am["spec"]["providerID"].as_str() else {
            continue;
        };
        let name = am["metadata"]["name"].as_str().unwrap().to_string();
        let cluster = am["metadata"]["labels"]["cluster.x-k8s.io/cluster-name"]
            .as_str()
            .unwrap_or_default();
        let Some(i) = EC2.iter().position(|c| *c == cluster) else {
            continue;
        };
        if done.insert(name.clone()) {
            register_node(&workloads[i], &name, pid, "v1.31.0");
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn chaos_a_sigkilled_controller_under_every_fault_leaves_no_duplicate_and_no_leak() {
    let Some(aws) = moto(&[]) else { return };
    let seed = chaos_seed();
    println!("chaos seed {seed} (replay with SLIPWAY_CHAOS_SEED={seed})");
    let proxy = FaultProxy::start(&aws.url, seed);
    let mut env: Vec<(&str, String)> = aws
        .env()
        .into_iter()
        .map(|(k, v)| {
            if k == "AWS_ENDPOINT_URL" {
                (k, proxy.url.clone())
            } else {
                (k, v)
            }
        })
        .collect();
    env.extend([
        ("SLIPWAY_AWS_CONSISTENCY_SECONDS", "2".to_string()),
        ("SLIPWAY_AWS_RESYNC_SECONDS", "5".to_string()),
        (
            "RUST_LOG",
            "warn,slipway_aws=info,slipway_providers=info".to_string(),
        ),
    ]);
    let workloads: Vec<Mgmt> = EC2
        .iter()
        .map(|c| Mgmt::start(&format!("chaos-{c}"), true))
        .collect();
    let mut m = Mgmt::start("aws-chaos", true);
    for (c, w) in EC2.iter().zip(&workloads) {
        m.stand_in_kubeconfig(c, w);
        m.ok(&["apply", "-f", "-"], Some(&generate_for_moto(c, "aws", 0)));
    }
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate_for_moto(EKS, "aws-eks", 2)),
    );
    proxy.set_rules(rules());
    m.start_controller_env(&env);
    let mut draw = Draw::new(seed);
    let mut kills = 0;
    let started = Instant::now();

    // Provision under faults, the controller SIGKILLed every 2.5-8 s (at most 6 times).
    let mut next_kill = kill_at(&mut draw);
    let mut registered = BTreeSet::new();
    loop {
        register_nodes(&m, &workloads, &mut registered);
        let Some(why) = not_ready(&m) else { break };
        assert!(
            started.elapsed() < Duration::from_secs(170),
            "not provisioned after 170 s (seed {seed}): {why}\ncontroller log:\n{}",
            log_tail(&m)
        );
        if Instant::now() >= next_kill && kills < 6 {
            kill(&mut m, &env, &mut kills);
            next_kill = kill_at(&mut draw);
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    let provisioned = started.elapsed();
    let provision_kills = kills;

    // Steady state: faults off, past the consistency window and the hiding; one more restart
    // makes every object be looked at again (duplicates that showed up late are adopted or
    // removed); then exactly one of everything per cluster.
    proxy.set_rules(vec![]);
    let steady_started = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    kill(&mut m, &env, &mut kills);
    let r = rt();
    for c in EC2 {
        eventually(40, &format!("{c}: one of everything"), || {
            let have = r.block_on(aws.inventory(&owner_tag(c)));
            (have == ec2_cluster())
                .then_some(())
                .ok_or_else(|| format!("{have:?} (seed {seed})"))
        });
    }
    eventually(40, &format!("{EKS}: one of everything"), || {
        let have = r.block_on(aws.inventory(&owner_tag(EKS)));
        (have == network())
            .then_some(())
            .ok_or_else(|| format!("{have:?} (seed {seed})"))
    });
    let eks = r.block_on(aws.eks_clusters());
    assert_eq!(
        eks.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["default_e1"],
        "{eks:?}"
    );
    assert_eq!(
        r.block_on(aws.eks_nodegroups("default_e1")),
        [(
            "default_e1-pool-0".to_string(),
            "ACTIVE".to_string(),
            Some(2)
        )]
    );

    let steady = steady_started.elapsed();

    // Delete under faults and kills; nothing tagged for any cluster is left.
    proxy.set_rules(rules());
    let mut all = vec!["delete", "cluster", "--wait=false"];
    all.extend(EC2);
    all.push(EKS);
    m.ok(&all, None);
    let del_started = Instant::now();
    let mut next_kill = kill_at(&mut draw);
    loop {
        let left = m.items(&["get", "clusters"]);
        if left.is_empty() {
            break;
        }
        assert!(
            del_started.elapsed() < Duration::from_secs(120),
            "not deleted after 120 s (seed {seed}): {:?}\ncontroller log:\n{}",
            left.iter()
                .map(|c| (
                    c["metadata"]["name"].clone(),
                    c["status"]["conditions"].clone()
                ))
                .collect::<Vec<_>>(),
            log_tail(&m)
        );
        if Instant::now() >= next_kill && kills < provision_kills + 1 + 4 {
            kill(&mut m, &env, &mut kills);
            next_kill = kill_at(&mut draw);
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    proxy.set_rules(vec![]);
    for c in EC2.iter().chain([&EKS]) {
        let left = r.block_on(aws.inventory(&owner_tag(c)));
        assert!(
            left.values().all(|v| *v == 0),
            "{c} leaked (seed {seed}): {left:?}"
        );
    }
    assert!(r.block_on(aws.eks_clusters()).is_empty());

    // The report.
    let counts = proxy.counts();
    let total: usize = counts.values().sum();
    let faults = proxy.faults();
    let eks_faults = proxy
        .records()
        .iter()
        .filter(|r| r.service == "eks" && r.fault.is_some())
        .count();
    println!(
        "chaos (process): {} EC2 + 1 EKS clusters, provisioned in {:.1}s, steady in {:.1}s, \
         deleted in {:.1}s, {kills} SIGKILLs, faults {faults:?} ({eks_faults} on EKS), {total} \
         requests",
        EC2.len(),
        provisioned.as_secs_f64(),
        steady.as_secs_f64(),
        del_started.elapsed().as_secs_f64(),
    );
    let ec2 = ec2_cluster();
    let net = network();
    let n = EC2.len();
    let per_resource: BTreeMap<&str, usize> = BTreeMap::from([
        ("CreateVpc", n * ec2["vpcs"] + net["vpcs"]),
        ("CreateSubnet", n * ec2["subnets"] + net["subnets"]),
        (
            "CreateInternetGateway",
            n * ec2["internet_gateways"] + net["internet_gateways"],
        ),
        (
            "CreateNatGateway",
            n * ec2["nat_gateways"] + net["nat_gateways"],
        ),
        (
            "AllocateAddress",
            n * ec2["elastic_ips"] + net["elastic_ips"],
        ),
        (
            "CreateRouteTable",
            n * ec2["route_tables"] + net["route_tables"],
        ),
        (
            "CreateSecurityGroup",
            n * ec2["security_groups"] + net["security_groups"],
        ),
        ("RunInstances", n * ec2["instances"]),
        ("CreateLoadBalancer", n * ec2["load_balancers"]),
        ("CreateTargetGroup", n * ec2["target_groups"]),
        ("CreateCluster", 1),
        ("CreateNodegroup", 1),
    ]);
    for (op, count) in &counts {
        match per_resource.get(op.as_str()) {
            Some(res) => {
                let per = *count as f64 / *res as f64;
                println!("  {op:<32} {count:>5}  ({per:.1} per resource)");
                assert!(
                    per <= 25.0,
                    "{op}: {per:.1} requests per resource (seed {seed})"
                );
            }
            None => println!("  {op:<32} {count:>5}"),
        }
    }
    assert!(
        kills >= 2,
        "the run killed the controller {kills} times (seed {seed})"
    );
    for kind in [
        "throttle",
        "5xx",
        "drop-before",
        "drop-after",
        "latency",
        "hide",
    ] {
        assert!(
            faults.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} fault injected (seed {seed})"
        );
    }
    assert!(
        eks_faults > 0,
        "no fault injected into EKS requests (seed {seed})"
    );
}

fn log_tail(m: &Mgmt) -> String {
    let log = std::fs::read_to_string(m.dir.join("controller.log")).unwrap_or_default();
    // moto ignores tag filters on NAT gateways: the skips of other clusters' are noise here.
    let tail: Vec<&str> = log
        .lines()
        .rev()
        .filter(|l| !l.contains("skipped: returned for the cluster"))
        .take(30)
        .collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// The next kill: 2.5 to 8 s from now.
fn kill_at(draw: &mut Draw) -> Instant {
    Instant::now() + Duration::from_millis(2500 + draw.next(5500))
}
