//! The AWS provider against a real `moto_server` on 127.0.0.1 (PyPI `moto[server]`; `.ci/run`
//! installs it): network create, idempotency across provider restarts, instances with their
//! user data, target registration, delete leaving nothing tagged, and error mapping.
//! Without `moto_server` on PATH the tests say so and pass only outside CI.

use slipway_api::{Cluster, Machine, cluster::ClusterSpec, machine::MachineSpec, names::labels};
use slipway_aws::{
    Aws,
    api::{AWSCluster, AWSMachine, AmiReference, AwsClusterSpec, AwsMachineSpec},
    clients::Settings,
    network::model::owner_tag,
};
use slipway_providers::{
    BootstrapData, BootstrapFormat, ClusterOutcome, ClusterReady, ClusterScope, Deletion,
    InfrastructureProvider, MachineOutcome, MachineReady, MachineScope,
};
use slipway_testsupport::moto::{CREDENTIALS, Moto, REGION, moto};
use std::{collections::BTreeMap, sync::Arc};

/// Settings of a provider talking to `m`.
fn settings(m: &Moto) -> Settings {
    Settings {
        endpoint_url: Some(m.url.clone()),
        region: Some(REGION.into()),
        credentials: Some((CREDENTIALS.0.into(), CREDENTIALS.1.into())),
    }
}

fn scope() -> ClusterScope<AWSCluster> {
    scope_named("c1")
}

fn scope_named(name: &str) -> ClusterScope<AWSCluster> {
    let mut cluster = Cluster::new(name, ClusterSpec::default());
    cluster.metadata.namespace = Some("default".into());
    let mut infra = AWSCluster::new(name, AwsClusterSpec::default());
    infra.metadata.namespace = Some("default".into());
    infra.metadata.uid = Some(format!("uid-{name}"));
    infra.metadata.labels = Some(BTreeMap::from([(
        labels::CLUSTER_NAME.to_string(),
        name.to_string(),
    )]));
    ClusterScope {
        cluster: Arc::new(cluster),
        infra: Arc::new(infra),
        topology: None,
        now: jiff::Timestamp::now(),
    }
}

/// `obj` with `status`'s top-level fields merged into its status, as core does with a
/// provider's outcome.
fn merged<K: serde::Serialize + serde::de::DeserializeOwned>(
    obj: &K,
    status: &serde_json::Value,
) -> K {
    let mut v = serde_json::to_value(obj).unwrap();
    if let Some(m) = status.as_object() {
        let st = v
            .as_object_mut()
            .unwrap()
            .entry("status")
            .or_insert_with(|| serde_json::json!({}));
        if st.is_null() {
            *st = serde_json::json!({});
        }
        for (k, x) in m {
            st[k] = x.clone();
        }
    }
    serde_json::from_value(v).unwrap()
}

/// One pass as core runs it: the provider's status written back, the time moved on.
async fn pass(p: &Aws, s: &mut ClusterScope<AWSCluster>) -> ClusterOutcome {
    s.now = jiff::Timestamp::now();
    let out = p.reconcile_cluster(s).await.unwrap();
    let (status, after) = match &out {
        ClusterOutcome::Provisioning(pr) => (&pr.status, Some(pr.requeue_after)),
        ClusterOutcome::Ready(r) => (&r.status, None),
    };
    let mut infra = merged(s.infra.as_ref(), status);
    if matches!(out, ClusterOutcome::Ready(_)) {
        let st = infra.status.get_or_insert_with(Default::default);
        st.initialization = Some(slipway_api::common::ProvisionedInitialization {
            provisioned: Some(true),
        });
    }
    s.infra = Arc::new(infra);
    if let Some(d) = after.filter(|d| *d >= std::time::Duration::from_secs(1)) {
        tokio::time::sleep(d.min(std::time::Duration::from_secs(2))).await;
    }
    out
}

async fn until_ready(
    p: &Aws,
    s: &mut ClusterScope<AWSCluster>,
    max: usize,
) -> (usize, ClusterReady) {
    for n in 1..=max {
        match pass(p, s).await {
            ClusterOutcome::Ready(r) => return (n, r),
            ClusterOutcome::Provisioning(_) => {}
        }
    }
    panic!("not Ready after {max} passes");
}

fn with_status(s: &ClusterScope<AWSCluster>, ready: &ClusterReady) -> Arc<AWSCluster> {
    Arc::new(merged(s.infra.as_ref(), &ready.status))
}

/// A provider against `m` with a short consistency window, as tests use.
fn aws(m: &Moto) -> Aws {
    Aws::with_settings(settings(m)).with_consistency_window(std::time::Duration::from_secs(2))
}

fn machine(
    s: &ClusterScope<AWSCluster>,
    infra: Arc<AWSCluster>,
    name: &str,
    cp: bool,
) -> MachineScope<AWSCluster, AWSMachine> {
    let cluster = s.cluster.metadata.name.clone().unwrap();
    let mut m = Machine::new(
        name,
        MachineSpec {
            cluster_name: cluster,
            version: Some("v1.31.0".into()),
            ..Default::default()
        },
    );
    m.metadata.namespace = Some("default".into());
    if cp {
        m.metadata.labels = Some(BTreeMap::from([(
            labels::CONTROL_PLANE.to_string(),
            String::new(),
        )]));
    }
    let mut am = AWSMachine::new(
        name,
        AwsMachineSpec {
            instance_type: "t3.medium".into(),
            ami: Some(AmiReference {
                id: Some("ami-760aaa0f".into()),
                eks_lookup_type: None,
            }),
            ssh_key_name: Some(String::new()),
            ..Default::default()
        },
    );
    am.metadata.namespace = Some("default".into());
    am.metadata.uid = Some(format!("uid-{name}"));
    MachineScope {
        cluster: s.cluster.clone(),
        infra_cluster: infra,
        machine: Arc::new(m),
        infra: Arc::new(am),
        now: jiff::Timestamp::now(),
    }
}

async fn machine_ready(
    p: &Aws,
    ms: &mut MachineScope<AWSCluster, AWSMachine>,
    data: &BootstrapData,
) -> MachineReady {
    for _ in 0..10 {
        ms.now = jiff::Timestamp::now();
        match p.reconcile_machine(ms, data).await.unwrap() {
            MachineOutcome::Ready(r) => {
                ms.infra = Arc::new(merged(ms.infra.as_ref(), &r.status));
                return r;
            }
            MachineOutcome::Provisioning(pr) => {
                ms.infra = Arc::new(merged(ms.infra.as_ref(), &pr.status));
            }
        }
    }
    panic!("machine never Ready");
}

fn print_calls(what: &str, p: &Aws) {
    let calls = p.calls().snapshot();
    let total: u64 = calls.values().sum();
    println!("AWS API calls for {what}: {total}");
    for (op, n) in &calls {
        println!("  {op:<45} {n}");
    }
}

#[tokio::test]
async fn a_cluster_network_and_machines_on_moto_are_made_once_and_removed_completely() {
    let Some(m) = moto(&[]) else { return };
    let mut s = scope();

    // Interrupted creation: a provider that stops after three passes, then a new one (a
    // restarted controller) that finishes. Nothing is made twice.
    let first = aws(&m);
    for _ in 0..3 {
        let _ = pass(&first, &mut s).await;
    }
    let p = aws(&m);
    let (passes, ready) = until_ready(&p, &mut s, 30).await;
    println!("network Ready after 3 + {passes} passes");
    print_calls("the network (interrupted provider)", &first);
    print_calls("the network (restarted provider)", &p);
    p.calls().reset();
    let want = BTreeMap::from([
        ("vpcs", 1),
        ("subnets", 6),
        ("internet_gateways", 1),
        ("nat_gateways", 3),
        ("elastic_ips", 3),
        ("route_tables", 6),
        ("security_groups", 4),
        ("instances", 0),
        ("load_balancers", 1),
        ("target_groups", 1),
    ]);
    assert_eq!(m.inventory(&owner_tag("c1")).await, want);
    let ep = ready.control_plane_endpoint.clone().unwrap();
    assert!(ep.host.ends_with(".elb.amazonaws.com"), "{}", ep.host);
    assert_eq!(ep.port, 6443);
    let zones: Vec<&str> = ready
        .failure_domains
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(zones, ["us-east-1a", "us-east-1b", "us-east-1c"]);
    let ns = &ready.status["networkStatus"];
    assert!(ns["vpcId"].as_str().unwrap().starts_with("vpc-"));
    assert_eq!(ns["subnets"].as_array().unwrap().len(), 6);
    assert_eq!(ns["natGatewayIds"].as_array().unwrap().len(), 3);
    assert_eq!(ns["securityGroups"].as_object().unwrap().len(), 4);
    assert!(ns["apiServerTargetGroupArn"].as_str().is_some());
    assert!(ns["apiServerListenerArn"].as_str().is_some());
    // The VPC has DNS hostnames on, public subnets map public IPs.
    let vpc = ns["vpcId"].as_str().unwrap();
    let attr = m
        .ec2()
        .await
        .describe_vpc_attribute()
        .vpc_id(vpc)
        .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attr.enable_dns_hostnames().and_then(|a| a.value()),
        Some(true)
    );
    // Idempotent: another pass (and a restarted provider) creates nothing.
    let again = aws(&m);
    let (one, _) = until_ready(&again, &mut s, 1).await;
    assert_eq!(one, 1);
    assert!(
        !again
            .calls()
            .snapshot()
            .keys()
            .any(|k| k.contains(":Create") || k.contains(":Allocate")),
        "{:?}",
        again.calls().snapshot()
    );
    assert_eq!(m.inventory(&owner_tag("c1")).await, want);

    // Machines: one control plane and two workers.
    let infra = with_status(&s, &ready);
    let bootstrap = |n: &str| BootstrapData {
        value: format!("## template: jinja\n#cloud-config\nhostname: {n}\n").into_bytes(),
        format: BootstrapFormat::CloudConfig,
    };
    let mut ids = Vec::new();
    for (name, cp) in [("c1-cp-1", true), ("c1-md-1", false), ("c1-md-2", false)] {
        let mut ms = machine(&s, infra.clone(), name, cp);
        let r = machine_ready(&p, &mut ms, &bootstrap(name)).await;
        assert!(
            r.provider_id.starts_with("aws:///us-east-1"),
            "{}",
            r.provider_id
        );
        let id = r.provider_id.rsplit('/').next().unwrap().to_string();
        // Again: the same instance, found by its tags.
        let r2 = machine_ready(&aws(&m), &mut ms, &bootstrap(name)).await;
        assert_eq!(r2.provider_id, r.provider_id);
        assert_eq!(m.user_data(&id).await, bootstrap(name).value);
        assert!(r.addresses.iter().any(|a| a.address.starts_with("10.0.")));
        ids.push((name, cp, id));
    }
    assert_eq!(m.inventory(&owner_tag("c1")).await["instances"], 3);

    // An AMI looked up by name and owner (CAPA's format), not given by id: the newest match.
    let ec2 = m.ec2().await;
    let mut images = Vec::new();
    for suffix in ["00", "01"] {
        let out = ec2
            .create_image()
            .instance_id(&ids[0].2)
            .name(format!("capa-ami-ubuntu-24.04-v1.31.0-{suffix}"))
            .send()
            .await
            .unwrap();
        images.push(out.image_id().unwrap().to_string());
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let mut ms = machine(&s, infra.clone(), "c1-md-looked-up", false);
    let mut am = (*ms.infra).clone();
    am.spec.ami = None;
    am.spec.image_lookup_org = Some("123456789012".into());
    ms.infra = Arc::new(am);
    let r = machine_ready(&p, &mut ms, &bootstrap("c1-md-looked-up")).await;
    let id = r.provider_id.rsplit('/').next().unwrap();
    let got = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    let image = got.reservations()[0].instances()[0]
        .image_id()
        .unwrap()
        .to_string();
    assert_eq!(image, images[1], "the newest of {images:?}");
    ids.push(("c1-md-looked-up", false, id.to_string()));
    print_calls("3 machines (1 control plane, 2 workers)", &p);

    // Delete: machines, then the cluster; nothing tagged remains.
    let d = aws(&m);
    for (name, cp, _) in &ids {
        let ms = machine(&s, infra.clone(), name, *cp);
        let mut gone = false;
        for _ in 0..10 {
            if d.delete_machine(&ms).await.unwrap() == Deletion::Gone {
                gone = true;
                break;
            }
        }
        assert!(gone, "{name} not deleted");
    }
    let mut passes = 0;
    loop {
        passes += 1;
        assert!(passes < 20, "network not deleted");
        if d.delete_cluster(&s).await.unwrap() == Deletion::Gone {
            break;
        }
    }
    print_calls("cluster delete", &d);
    let left = m.inventory(&owner_tag("c1")).await;
    assert!(left.values().all(|n| *n == 0), "left behind: {left:?}");
}

#[tokio::test]
async fn unreachable_endpoints_are_unavailable_and_bad_instance_types_terminal() {
    let p = Aws::with_settings(Settings {
        endpoint_url: Some("http://127.0.0.1:9".into()),
        region: Some("us-east-1".into()),
        credentials: Some(("testing".into(), "testing".into())),
    });
    let e = p.reconcile_cluster(&scope()).await.unwrap_err();
    assert_eq!(e.reason(), "ProviderUnavailable", "{e}");
    assert!(
        e.to_string().contains("the AWS endpoint is unavailable"),
        "{e}"
    );

    let Some(m) = moto(&[("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")]) else {
        return;
    };
    let mut s = scope();
    let p = aws(&m);
    let (_, ready) = until_ready(&p, &mut s, 30).await;
    let infra = with_status(&s, &ready);
    let mut ms = machine(&s, infra, "c1-bad", false);
    let mut am = (*ms.infra).clone();
    am.spec.instance_type = "t9.bogus".into();
    ms.infra = Arc::new(am);
    let data = BootstrapData {
        value: b"#cloud-config\n".to_vec(),
        format: BootstrapFormat::CloudConfig,
    };
    // The first pass records the attempt; the second launches and fails.
    let MachineOutcome::Provisioning(first) = p.reconcile_machine(&ms, &data).await.unwrap() else {
        panic!("the attempt is recorded first")
    };
    assert_eq!(first.reason, "RecordingCreate");
    ms.infra = Arc::new(merged(ms.infra.as_ref(), &first.status));
    let e = p.reconcile_machine(&ms, &data).await.unwrap_err();
    assert!(e.is_terminal(), "{e}");
    assert!(e.to_string().contains("RunInstances"), "{e}");
    assert!(
        !e.to_string().contains("cloud-config"),
        "user data leaked: {e}"
    );
}

#[tokio::test]
async fn deleting_one_of_three_side_by_side_clusters_leaves_the_others_untouched() {
    let Some(m) = moto(&[]) else { return };
    let p = aws(&m);
    let names = ["k1", "k2", "k3"];
    let data = BootstrapData {
        value: b"#cloud-config\n".to_vec(),
        format: BootstrapFormat::CloudConfig,
    };
    let mut scopes = Vec::new();
    for n in names {
        let mut s = scope_named(n);
        let (_, ready) = until_ready(&p, &mut s, 40).await;
        let infra = with_status(&s, &ready);
        let mut ms = machine(&s, infra.clone(), &format!("{n}-cp-0"), true);
        machine_ready(&p, &mut ms, &data).await;
        scopes.push((s, infra));
    }
    let before: BTreeMap<&str, _> = {
        let mut b = BTreeMap::new();
        for n in names {
            let ids = m.owned_ids(&owner_tag(n)).await;
            assert_eq!(ids["nat_gateways"].len(), 3, "{n}: {ids:?}");
            assert_eq!(ids["instances"].len(), 1, "{n}: {ids:?}");
            assert_eq!(ids["load_balancers"].len(), 1, "{n}: {ids:?}");
            b.insert(n, ids);
        }
        b
    };
    // moto answers DescribeNatGateways with every NAT gateway whatever the tag filter: the
    // delete below sees all nine and must touch only k1's three.
    let all = m
        .ec2()
        .await
        .describe_nat_gateways()
        .filter(
            aws_sdk_ec2::types::Filter::builder()
                .name(format!("tag:{}", owner_tag("k1")))
                .values("owned")
                .build(),
        )
        .send()
        .await
        .unwrap();
    println!(
        "DescribeNatGateways filtered by k1's tag returns {} NAT gateways",
        all.nat_gateways().len()
    );

    let (s, infra) = &scopes[0];
    let ms = machine(s, infra.clone(), "k1-cp-0", true);
    let mut gone = false;
    for _ in 0..10 {
        if p.delete_machine(&ms).await.unwrap() == Deletion::Gone {
            gone = true;
            break;
        }
    }
    assert!(gone, "k1's machine not deleted");
    let mut passes = 0;
    while p.delete_cluster(s).await.unwrap() != Deletion::Gone {
        passes += 1;
        assert!(passes < 20, "k1's network not deleted");
    }
    let left = m.inventory(&owner_tag("k1")).await;
    assert!(left.values().all(|n| *n == 0), "k1 left behind: {left:?}");
    for n in &names[1..] {
        assert_eq!(
            m.owned_ids(&owner_tag(n)).await,
            before[n],
            "{n}'s inventory changed when k1 was deleted"
        );
    }
    // And the survivors stay Ready with nothing to redo.
    for (s, _) in &mut scopes[1..] {
        p.calls().reset();
        let (one, _) = until_ready(&p, s, 1).await;
        assert_eq!(one, 1);
        assert!(
            !p.calls()
                .snapshot()
                .keys()
                .any(|k| k.contains(":Create") || k.contains(":Delete")),
            "{:?}",
            p.calls().snapshot()
        );
    }
}

#[tokio::test]
async fn drift_of_a_ready_cluster_is_repaired_on_the_next_resync() {
    let Some(m) = moto(&[]) else { return };
    let p = aws(&m).with_resync(std::time::Duration::from_secs(3));
    assert_eq!(
        p.ready_recheck(),
        Some(std::time::Duration::from_secs(3)),
        "core requeues a Ready AWSCluster after the resync period"
    );
    let mut s = scope_named("d1");
    let (_, ready) = until_ready(&p, &mut s, 40).await;
    let infra = with_status(&s, &ready);
    let mut ms = machine(&s, infra.clone(), "d1-cp-0", true);
    let r = machine_ready(
        &p,
        &mut ms,
        &BootstrapData {
            value: b"#cloud-config\n".to_vec(),
            format: BootstrapFormat::CloudConfig,
        },
    )
    .await;
    let instance = r.provider_id.rsplit('/').next().unwrap().to_string();
    let before = m.owned_ids(&owner_tag("d1")).await;
    let ns = &ready.status["networkStatus"];
    let tg = ns["apiServerTargetGroupArn"].as_str().unwrap().to_string();
    let ec2 = m.ec2().await;
    let elb = m.elb().await;

    // Outside slipway: a NAT gateway deleted, a security-group rule revoked, the control
    // plane deregistered from the API server target group.
    let gone_nat = before["nat_gateways"].iter().next().unwrap().clone();
    ec2.delete_nat_gateway()
        .nat_gateway_id(&gone_nat)
        .send()
        .await
        .unwrap();
    let lb_sg = ns["securityGroups"]["lb"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ec2.revoke_security_group_ingress()
        .group_id(&lb_sg)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(6443)
                .to_port(6443)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("10.0.0.0/16")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    elb.deregister_targets()
        .target_group_arn(&tg)
        .targets(
            aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                .id(&instance)
                .port(6443)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(m.inventory(&owner_tag("d1")).await["nat_gateways"], 2);

    // The resync pass: drift reported, repaired.
    let ClusterOutcome::Provisioning(drift) = pass(&p, &mut s).await else {
        panic!("drift must not read as Ready")
    };
    println!("{}: {}", drift.reason, drift.message);
    assert_eq!(drift.reason, "DriftRepairing");
    assert!(
        drift.message.contains("repairing drift"),
        "{}",
        drift.message
    );
    assert!(drift.status["drift"]["lastRepairTime"].is_string());
    let (passes, ready) = until_ready(&p, &mut s, 20).await;
    println!("Ready again after {passes} more passes: {}", ready.message);
    assert!(
        ready.message.starts_with("drift repaired at"),
        "{}",
        ready.message
    );
    // Every pass of the repair is in the record, which is closed once Ready again.
    let d = s.infra.status.as_ref().unwrap().drift.clone().unwrap();
    assert_eq!(d.repairing, Some(false));
    let repaired = d.repaired.unwrap();
    for step in [
        "CreateNat",
        "CreateDefaultRoute",
        "Authorize",
        "RegisterTargets",
    ] {
        assert!(repaired.contains(step), "{step} not in {repaired}");
    }
    let after = m.owned_ids(&owner_tag("d1")).await;
    assert_eq!(after["nat_gateways"].len(), 3, "{after:?}");
    assert!(!after["nat_gateways"].contains(&gone_nat));
    // The private route of that zone points at the new NAT gateway.
    let rts = ec2.describe_route_tables().send().await.unwrap();
    let nat_targets: std::collections::BTreeSet<String> = rts
        .route_tables()
        .iter()
        .flat_map(|r| r.routes())
        .filter_map(|r| r.nat_gateway_id().map(String::from))
        .filter(|n| after["nat_gateways"].contains(n) || *n == gone_nat)
        .collect();
    assert_eq!(
        nat_targets, after["nat_gateways"],
        "routes to the NAT gateways"
    );
    let g = ec2
        .describe_security_groups()
        .group_ids(&lb_sg)
        .send()
        .await
        .unwrap();
    assert!(
        g.security_groups()[0]
            .ip_permissions()
            .iter()
            .any(|p| p.from_port() == Some(6443)
                && p.ip_ranges()
                    .iter()
                    .any(|r| r.cidr_ip() == Some("10.0.0.0/16"))),
        "the lb rule is back"
    );
    let health = elb
        .describe_target_health()
        .target_group_arn(&tg)
        .send()
        .await
        .unwrap();
    assert!(
        health
            .target_health_descriptions()
            .iter()
            .any(|h| h.target().and_then(|t| t.id()) == Some(instance.as_str())),
        "the control plane is registered again"
    );
    // Everything else untouched.
    for k in [
        "vpcs",
        "subnets",
        "route_tables",
        "security_groups",
        "instances",
        "load_balancers",
    ] {
        assert_eq!(after[k], before[k], "{k}");
    }
}
