//! The in-memory provider's simulated machines, driven with real rendered bootstrap data: the
//! init machine starts a workload API server that the generated admin kubeconfig reaches over
//! TLS; joins are refused without a valid token or with a wrong CA pin; a configuration that
//! disagrees with the Cluster is refused; machines and their workload cluster survive a
//! provider restart.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Secret};
use kube::{
    Api, Client,
    api::{ListParams, ObjectMeta},
};
use serde_json::json;
use slipway_api::{
    Cluster, Machine,
    bootstrap::KubeadmConfigSpec,
    common::{ApiEndpoint, ContractVersionedObjectReference},
    machine::MachineSpec,
};
use slipway_bootstrap::{
    cloudinit::{self, Role},
    kubeadm::{ClusterInfo, JoinDiscovery},
    pki::{ClusterPki, admin_kubeconfig},
};
use slipway_inmemory::{InMemory, InMemoryCluster, InMemoryMachine};
use slipway_providers::{
    BootstrapData, BootstrapFormat, InfrastructureProvider, MachineOutcome, MachineScope,
};
use slipway_testsupport::{free_port, temp_dir};

struct Fixture {
    cluster: Arc<Cluster>,
    info: ClusterInfo,
    pki: ClusterPki,
}

fn fixture(port: u16) -> Fixture {
    let cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": {"name": "sim", "namespace": "default"},
        "spec": {"controlPlaneEndpoint": {"host": "127.0.0.1", "port": port},
                 "clusterNetwork": {"pods": {"cidrBlocks": ["192.168.0.0/16"]},
                                    "services": {"cidrBlocks": ["10.128.0.0/12"]}}}
    }))
    .unwrap();
    Fixture {
        info: ClusterInfo {
            name: "sim".into(),
            endpoint: ApiEndpoint {
                host: "127.0.0.1".into(),
                port: i32::from(port),
            },
            version: "v1.31.0".into(),
            pod_cidrs: vec!["192.168.0.0/16".into()],
            service_cidrs: vec!["10.128.0.0/12".into()],
            dns_domain: None,
        },
        cluster: Arc::new(cluster),
        pki: ClusterPki::generate().unwrap(),
    }
}

fn scope(
    f: &Fixture,
    name: &str,
    control_plane: bool,
) -> MachineScope<InMemoryCluster, InMemoryMachine> {
    let mut labels = std::collections::BTreeMap::new();
    if control_plane {
        labels.insert("cluster.x-k8s.io/control-plane".to_string(), String::new());
    }
    let machine = Machine {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: MachineSpec {
            cluster_name: "sim".into(),
            infrastructure_ref: ContractVersionedObjectReference {
                api_group: "infrastructure.cluster.x-k8s.io".into(),
                kind: "InMemoryMachine".into(),
                name: name.into(),
            },
            version: Some("v1.31.0".into()),
            ..Default::default()
        },
        status: None,
    };
    MachineScope {
        cluster: f.cluster.clone(),
        infra_cluster: Arc::new(InMemoryCluster::new("sim", Default::default())),
        machine: Arc::new(machine),
        infra: Arc::new(InMemoryMachine::new(name, Default::default())),
        now: jiff::Timestamp::now(),
    }
}

fn data(f: &Fixture, role: &Role, info: &ClusterInfo) -> BootstrapData {
    BootstrapData {
        value: cloudinit::render(
            &KubeadmConfigSpec::default(),
            info,
            &f.pki,
            role,
            &|_, _| None,
        )
        .unwrap()
        .into_bytes(),
        format: BootstrapFormat::CloudConfig,
    }
}

async fn admin_client(f: &Fixture) -> Client {
    let kc = admin_kubeconfig(
        "sim",
        &format!("https://127.0.0.1:{}", f.info.endpoint.port),
        &f.pki.ca,
    )
    .unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&kc).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    Client::try_from(config).unwrap()
}

fn join(f: &Fixture, token: &str, hash: String) -> Role {
    Role::JoinWorker(JoinDiscovery {
        token: token.into(),
        api_server_endpoint: format!("127.0.0.1:{}", f.info.endpoint.port),
        ca_cert_hashes: vec![hash],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_boot_from_their_bootstrap_data_and_joins_are_checked() {
    let root = temp_dir("imm");
    let f = fixture(free_port());
    let provider = InMemory::new(&root);

    // A configuration that disagrees with the Cluster is refused, naming the field.
    let mut wrong = f.info.clone();
    wrong.endpoint.port += 1;
    let err = provider
        .reconcile_machine(
            &scope(&f, "cp-0", true),
            &data(
                &f,
                &Role::Init {
                    bootstrap_token: "abcdef.0123456789abcdef".into(),
                },
                &wrong,
            ),
        )
        .await
        .unwrap_err();
    assert!(err.is_terminal());
    assert!(err.to_string().contains("controlPlaneEndpoint"), "{err}");

    // kubeadm init: files written, the workload API server answers the generated kubeconfig
    // over TLS, and the Node is registered with its providerID.
    let init = Role::Init {
        bootstrap_token: "abcdef.0123456789abcdef".into(),
    };
    let out = provider
        .reconcile_machine(&scope(&f, "cp-0", true), &data(&f, &init, &f.info))
        .await
        .unwrap();
    let MachineOutcome::Ready(ready) = out else {
        panic!("not ready: {out:?}")
    };
    assert_eq!(ready.provider_id, "in-memory://default/sim/cp-0");
    let rootfs = root.join("default/sim/machines/cp-0/rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/kubernetes/pki/ca.crt")).unwrap(),
        f.pki.ca.cert_pem
    );
    assert!(
        rootfs
            .join("run/cluster-api/bootstrap-success.complete")
            .exists()
    );
    assert!(rootfs.join("run/kubeadm/kubeadm.yaml").exists());
    let admin = admin_client(&f).await;
    let nodes: Api<Node> = Api::all(admin.clone());
    let list = nodes.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0].spec.as_ref().unwrap().provider_id.as_deref(),
        Some("in-memory://default/sim/cp-0")
    );
    // init created its bootstrap token, as kubeadm does.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "kube-system");
    assert!(
        secrets
            .get_opt("bootstrap-token-abcdef")
            .await
            .unwrap()
            .is_some()
    );

    // A join whose token is not in the workload cluster is refused.
    let good_hash = f.pki.ca_cert_hash().unwrap();
    let err = provider
        .reconcile_machine(
            &scope(&f, "w-0", false),
            &data(
                &f,
                &join(&f, "zzzzzz.0123456789abcdef", good_hash.clone()),
                &f.info,
            ),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("zzzzzz is not in the workload cluster"),
        "{err}"
    );

    // A join pinning another CA is refused even with a valid token.
    let other = ClusterPki::generate().unwrap().ca_cert_hash().unwrap();
    let err = provider
        .reconcile_machine(
            &scope(&f, "w-0", false),
            &data(&f, &join(&f, "abcdef.0123456789abcdef", other), &f.info),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("caCertHashes"), "{err}");

    // A wrong secret for an existing token id is refused too.
    let err = provider
        .reconcile_machine(
            &scope(&f, "w-0", false),
            &data(
                &f,
                &join(&f, "abcdef.ffffffffffffffff", good_hash.clone()),
                &f.info,
            ),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");

    // The right token and pin join.
    let out = provider
        .reconcile_machine(
            &scope(&f, "w-0", false),
            &data(&f, &join(&f, "abcdef.0123456789abcdef", good_hash), &f.info),
        )
        .await
        .unwrap();
    assert!(matches!(out, MachineOutcome::Ready(_)), "{out:?}");
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    // Workers get only the CA certificate, never its key.
    let worker_fs = root.join("default/sim/machines/w-0/rootfs/etc/kubernetes/pki");
    assert!(worker_fs.join("ca.crt").exists() && !worker_fs.join("ca.key").exists());

    // A restart of the provider (the controller) leaves machines and cluster data in place.
    provider.shutdown().await;
    assert!(
        nodes.list(&ListParams::default()).await.is_err(),
        "the server stopped"
    );
    let again = InMemory::new(&root);
    assert!(again.workload("default", "sim").await.unwrap().is_some());
    let admin = admin_client(&f).await;
    let nodes: Api<Node> = Api::all(admin.clone());
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let out = again
        .reconcile_machine(
            &scope(&f, "w-0", false),
            &data(
                &f,
                &join(&f, "abcdef.0123456789abcdef", f.pki.ca_cert_hash().unwrap()),
                &f.info,
            ),
        )
        .await
        .unwrap();
    assert!(
        matches!(out, MachineOutcome::Ready(_)),
        "a booted machine stays booted"
    );
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2,
        "a resumed machine registers no second Node"
    );
    again.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}
