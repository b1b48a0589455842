//! The kind provider's process handling against the fake `kind` and `docker` of
//! `e2e/tests/fixtures/fake-kind` (they keep state beside themselves and log every call): create,
//! adopt, bind, scale limits, recreate, idempotent delete, a missing binary, a daemon that is
//! down, and a failing `kind create cluster`.

use std::{path::PathBuf, sync::Arc, time::Duration};

use serde_json::{Value, json};
use slipway_api::{
    Cluster, Machine,
    cluster::{ClusterNetwork, ClusterSpec, NetworkRanges},
    machine::MachineSpec,
    names::labels,
};
use slipway_kind::{
    BOOTSTRAP_NOTE, Kind,
    api::{KindCluster, KindClusterSpec, KindMachine, KindMachineSpec},
    cli::Tools,
};
use slipway_providers::{
    BootstrapData, BootstrapFormat, ClusterOutcome, ClusterReady, ClusterScope, Deletion,
    InfrastructureProvider, MachineOutcome, MachineScope, Pool, Progress, Topology,
};
use slipway_testsupport::{fixture, temp_dir};

struct Fake {
    dir: PathBuf,
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Fake {
    /// A temp dir with `bin/` holding the fakes named in `tools`, and `root/` for the provider.
    fn new(tag: &str, tools: &[&str]) -> Self {
        let dir = temp_dir(&format!("kind-{tag}"));
        std::fs::create_dir_all(dir.join("bin/state")).unwrap();
        let src = fixture("fake-kind");
        for t in tools {
            std::fs::copy(src.join(t), dir.join("bin").join(t)).unwrap();
        }
        Self { dir }
    }

    fn provider(&self) -> Kind {
        Kind::new(
            self.dir.join("root"),
            Tools::with_path(self.dir.join("bin")),
        )
    }

    fn state(&self) -> PathBuf {
        self.dir.join("bin/state")
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.state().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn count(&self, prefix: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }

    fn nodes(&self, cluster: &str) -> Vec<String> {
        std::fs::read_to_string(self.state().join("clusters").join(cluster).join("nodes"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    }
}

fn pool(name: &str, replicas: u32) -> Pool {
    Pool {
        name: name.into(),
        replicas,
        version: Some("v1.31.0".into()),
        machine_template: Value::Null,
    }
}

fn scope(spec: KindClusterSpec, cp: u32, workers: u32) -> ClusterScope<KindCluster> {
    let cspec = ClusterSpec {
        cluster_network: Some(ClusterNetwork {
            pods: Some(NetworkRanges {
                cidr_blocks: vec!["192.168.0.0/16".into()],
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut cluster = Cluster::new("c1", cspec);
    cluster.metadata.namespace = Some("default".into());
    let mut infra = KindCluster::new("c1", spec);
    infra.metadata.namespace = Some("default".into());
    ClusterScope {
        cluster: Arc::new(cluster),
        infra: Arc::new(infra),
        topology: Some(Topology {
            control_plane: pool("c1-control-plane", cp),
            workers: if workers > 0 {
                vec![pool("c1-md-0", workers)]
            } else {
                vec![]
            },
        }),
        now: jiff::Timestamp::now(),
    }
}

async fn until_ready(p: &Kind, s: &ClusterScope<KindCluster>) -> ClusterReady {
    for _ in 0..100 {
        match p.reconcile_cluster(s).await.unwrap() {
            ClusterOutcome::Ready(r) => return r,
            ClusterOutcome::Provisioning(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("never Ready");
}

fn machine_scope(
    cluster: &ClusterScope<KindCluster>,
    name: &str,
    control_plane: bool,
    version: &str,
) -> MachineScope<KindCluster, KindMachine> {
    let mut m = Machine::new(
        name,
        MachineSpec {
            cluster_name: "c1".into(),
            version: Some(version.into()),
            ..Default::default()
        },
    );
    m.metadata.namespace = Some("default".into());
    let mut l = std::collections::BTreeMap::new();
    if control_plane {
        l.insert(labels::CONTROL_PLANE.to_string(), String::new());
        l.insert(
            labels::CONTROL_PLANE_NAME.to_string(),
            "c1-control-plane".into(),
        );
    } else {
        l.insert(
            labels::MACHINE_DEPLOYMENT_NAME.to_string(),
            "c1-md-0".into(),
        );
    }
    m.metadata.labels = Some(l);
    let mut infra = KindMachine::new(name, KindMachineSpec::default());
    infra.metadata.namespace = Some("default".into());
    MachineScope {
        cluster: cluster.cluster.clone(),
        infra_cluster: cluster.infra.clone(),
        machine: Arc::new(m),
        infra: Arc::new(infra),
        now: jiff::Timestamp::now(),
    }
}

fn data() -> BootstrapData {
    BootstrapData {
        value: b"#cloud-config\n".to_vec(),
        format: BootstrapFormat::CloudConfig,
    }
}

fn progress(o: MachineOutcome) -> Progress {
    match o {
        MachineOutcome::Provisioning(p) => p,
        MachineOutcome::Ready(r) => panic!("unexpectedly Ready: {}", r.provider_id),
    }
}

#[tokio::test]
async fn creates_once_from_the_topology_then_binds_machines_to_its_nodes() {
    let fake = Fake::new("create", &["kind", "docker"]);
    let p = fake.provider();
    let s = scope(KindClusterSpec::default(), 1, 2);
    // The first pass starts the creation and says so.
    match p.reconcile_cluster(&s).await.unwrap() {
        ClusterOutcome::Provisioning(pr) => assert_eq!(pr.reason, "CreatingKindCluster"),
        ClusterOutcome::Ready(_) => panic!("Ready before kind ran"),
    }
    let ready = until_ready(&p, &s).await;
    let kubeconfig = fake.dir.join("root/default/c1/kubeconfig");
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| c.starts_with("kind create"))
            .collect::<Vec<_>>(),
        [&format!(
            "kind create cluster --name c1 --config - --kubeconfig {} --wait 5m",
            kubeconfig.display()
        )]
    );
    // kind wrote only the private kubeconfig, never ~/.kube/config.
    assert!(kubeconfig.exists());
    let config = std::fs::read_to_string(fake.state().join("clusters/c1/config.yaml")).unwrap();
    let v: Value = serde_saphyr::from_str(&config).unwrap();
    assert_eq!(v["networking"], json!({"podSubnet": "192.168.0.0/16"}));
    assert_eq!(
        fake.nodes("c1"),
        ["c1-control-plane", "c1-worker", "c1-worker2"]
    );
    let ep = ready.control_plane_endpoint.unwrap();
    assert_eq!(ep.host, "127.0.0.1");
    assert!(ep.port >= 40000);
    let kc = ready.kubeconfig.unwrap();
    assert!(kc.value.contains(&format!("https://127.0.0.1:{}", ep.port)));
    assert_eq!(kc.extra["host"], kc.value);
    assert!(kc.extra["internal"].contains("https://c1-control-plane:6443"));
    assert!(ready.message.contains(BOOTSTRAP_NOTE));
    assert_eq!(ready.status, json!({"kindClusterName": "c1"}));
    // Again: adopted as it is, no second create.
    until_ready(&p, &s).await;
    assert_eq!(fake.count("kind create"), 1);

    let cp = machine_scope(&s, "c1-control-plane-abcde", true, "v1.31.0");
    let MachineOutcome::Ready(r) = p.reconcile_machine(&cp, &data()).await.unwrap() else {
        panic!("control plane not bound");
    };
    assert_eq!(r.provider_id, "kind://docker/c1/c1-control-plane");
    assert_eq!(r.addresses[0].address, "172.18.0.2");
    assert_eq!(r.status, json!({"nodeName": "c1-control-plane"}));
    assert!(r.message.contains("not executed"));
    let mut bound = vec![];
    for name in ["c1-md-0-aaaaa", "c1-md-0-bbbbb"] {
        let MachineOutcome::Ready(r) = p
            .reconcile_machine(&machine_scope(&s, name, false, "v1.31.0"), &data())
            .await
            .unwrap()
        else {
            panic!("{name} not bound");
        };
        bound.push(r.provider_id);
    }
    assert_eq!(
        bound,
        ["kind://docker/c1/c1-worker", "kind://docker/c1/c1-worker2"]
    );
    // Stable: the same machine keeps its node.
    let MachineOutcome::Ready(again) = p
        .reconcile_machine(
            &machine_scope(&s, "c1-md-0-bbbbb", false, "v1.31.0"),
            &data(),
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(again.provider_id, "kind://docker/c1/c1-worker2");
    // A third worker: kind cannot add a node.
    let third = progress(
        p.reconcile_machine(
            &machine_scope(&s, "c1-md-0-ccccc", false, "v1.31.0"),
            &data(),
        )
        .await
        .unwrap(),
    );
    assert_eq!(third.reason, "UnsupportedScaling");
    assert!(
        third.message.contains("kind cannot add nodes"),
        "{}",
        third.message
    );
    // A second control plane of another version: the node would need recreating.
    let cp2 = progress(
        p.reconcile_machine(
            &machine_scope(&s, "c1-control-plane-v2", true, "v1.32.0"),
            &data(),
        )
        .await
        .unwrap(),
    );
    assert_eq!(cp2.reason, "UnsupportedScaling");
    // Deleting a worker machine removes its container and frees nothing for reuse.
    let d = p
        .delete_machine(&machine_scope(&s, "c1-md-0-aaaaa", false, "v1.31.0"))
        .await
        .unwrap();
    assert_eq!(d, Deletion::Gone);
    assert_eq!(fake.count("docker rm --force c1-worker"), 1);
    assert_eq!(fake.nodes("c1"), ["c1-control-plane", "c1-worker2"]);
    // Deleting the control-plane machine only unbinds it.
    p.delete_machine(&cp).await.unwrap();
    assert_eq!(fake.nodes("c1"), ["c1-control-plane", "c1-worker2"]);

    // Delete: kind delete cluster, gone from `kind get clusters`, state removed; idempotent.
    assert_eq!(p.delete_cluster(&s).await.unwrap(), Deletion::Gone);
    assert_eq!(fake.count("kind delete cluster --name c1"), 1);
    assert!(fake.nodes("c1").is_empty());
    assert!(!fake.dir.join("root/default/c1").exists());
    assert_eq!(p.delete_cluster(&s).await.unwrap(), Deletion::Gone);
}

#[tokio::test]
async fn an_existing_kind_cluster_is_adopted_and_deleted_with_its_kindcluster() {
    let fake = Fake::new("adopt", &["kind", "docker"]);
    let out = std::process::Command::new(fake.dir.join("bin/kind"))
        .args(["create", "cluster", "--name", "c1", "--config", "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    // An empty config: kind's default of one control-plane node, written by hand here.
    std::fs::write(
        fake.state().join("clusters/c1/nodes"),
        "c1-control-plane kindest/node:v1.31.0\n",
    )
    .unwrap();
    let p = fake.provider();
    let s = scope(KindClusterSpec::default(), 1, 0);
    let ready = until_ready(&p, &s).await;
    assert_eq!(fake.count("kind create"), 1, "only the one made by hand");
    assert!(
        ready.message.starts_with(BOOTSTRAP_NOTE),
        "{}",
        ready.message
    );
    assert!(!ready.message.contains("no longer matches"));
    // The spec now wants a worker the adopted cluster lacks: reported, not faked.
    let s2 = scope(KindClusterSpec::default(), 1, 1);
    let r2 = until_ready(&p, &s2).await;
    assert!(
        r2.message.contains("1 worker nodes wanted, 0 exist") && r2.message.contains("Recreate"),
        "{}",
        r2.message
    );
    assert_eq!(p.delete_cluster(&s).await.unwrap(), Deletion::Gone);
    assert_eq!(fake.count("kind delete cluster --name c1"), 1);
}

#[tokio::test]
async fn the_recreate_policy_rebuilds_a_cluster_whose_shape_changed() {
    let fake = Fake::new("recreate", &["kind", "docker"]);
    let p = fake.provider();
    let spec = KindClusterSpec {
        recreate_policy: Some("Recreate".into()),
        ..Default::default()
    };
    until_ready(&p, &scope(spec.clone(), 1, 1)).await;
    assert_eq!(fake.nodes("c1").len(), 2);
    let bigger = scope(spec, 1, 3);
    match p.reconcile_cluster(&bigger).await.unwrap() {
        ClusterOutcome::Provisioning(pr) => {
            assert_eq!(pr.reason, "RecreatingKindCluster");
            assert!(
                pr.message.contains("3 worker nodes wanted, 1 exist"),
                "{}",
                pr.message
            );
        }
        ClusterOutcome::Ready(_) => panic!("a changed shape was not recreated"),
    }
    until_ready(&p, &bigger).await;
    assert_eq!(fake.count("kind create"), 2);
    assert_eq!(fake.nodes("c1").len(), 4);
}

#[tokio::test]
async fn missing_binaries_and_a_stopped_daemon_are_unavailable_and_name_what_is_missing() {
    let none = Fake::new("none", &[]);
    let e = none
        .provider()
        .reconcile_cluster(&scope(KindClusterSpec::default(), 1, 0))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "ProviderUnavailable");
    assert!(
        e.to_string().contains("the `kind` binary is unavailable"),
        "{e}"
    );

    let no_docker = Fake::new("nodocker", &["kind"]);
    let e = no_docker
        .provider()
        .reconcile_cluster(&scope(KindClusterSpec::default(), 1, 0))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "ProviderUnavailable");
    assert!(
        e.to_string().contains("the `docker` binary is unavailable"),
        "{e}"
    );
    assert!(no_docker.calls().is_empty(), "nothing ran");

    let down = Fake::new("down", &["kind", "docker"]);
    std::fs::write(down.state().join("docker-down"), "").unwrap();
    let e = down
        .provider()
        .reconcile_cluster(&scope(KindClusterSpec::default(), 1, 0))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "ProviderUnavailable");
    let msg = e.to_string();
    assert!(msg.starts_with("the Docker daemon is unavailable"), "{msg}");
    assert!(msg.contains("Cannot connect to the Docker daemon"), "{msg}");
    assert_eq!(down.count("kind create"), 0);
    // Deleting a KindCluster this provider never made needs no tools at all.
    assert_eq!(
        none.provider()
            .delete_cluster(&scope(KindClusterSpec::default(), 1, 0))
            .await
            .unwrap(),
        Deletion::Gone
    );
}

#[tokio::test]
async fn a_failed_create_reports_kinds_stderr_and_is_retried() {
    let fake = Fake::new("fail", &["kind", "docker"]);
    std::fs::write(
        fake.state().join("fail-create-cluster"),
        "ERROR: failed to create cluster: failed to pull image \"kindest/node:v1.31.0\"\n",
    )
    .unwrap();
    let p = fake.provider();
    let s = scope(KindClusterSpec::default(), 1, 0);
    let mut err = None;
    for _ in 0..100 {
        match p.reconcile_cluster(&s).await {
            Ok(ClusterOutcome::Provisioning(_)) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(ClusterOutcome::Ready(_)) => panic!("Ready although kind failed"),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let e = err.expect("the failure is reported");
    assert!(e.is_transient());
    let msg = e.to_string();
    assert!(msg.contains("`kind create cluster --name c1"), "{msg}");
    assert!(msg.contains("exit status 1"), "{msg}");
    assert!(msg.contains("failed to pull image"), "{msg}");
    // Within the backoff the failure stays reported and kind is not run again.
    let again = p.reconcile_cluster(&s).await.unwrap_err().to_string();
    assert!(
        again.contains("failed to pull image") && again.contains("retrying in"),
        "{again}"
    );
    assert_eq!(fake.count("kind create"), 1);
    // Fixed: once the backoff (5 s after one failure) has passed, a pass creates it.
    std::fs::remove_file(fake.state().join("fail-create-cluster")).unwrap();
    let started = std::time::Instant::now();
    loop {
        match p.reconcile_cluster(&s).await {
            Ok(ClusterOutcome::Ready(_)) => break,
            Ok(ClusterOutcome::Provisioning(_)) | Err(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "never recovered"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "retried before the backoff"
    );
    assert_eq!(fake.count("kind create"), 2);
}
