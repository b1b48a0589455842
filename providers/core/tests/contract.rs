//! The trait is implementable and usable generically: a stateful fake provider driven through
//! a generic function, as the generic reconcilers will drive real ones.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::json;
use slipway_api::{
    cluster::{Cluster, ClusterSpec},
    common::ApiEndpoint,
    machine::{Machine, MachineSpec},
};
use slipway_inmemory::api::{
    InMemoryCluster, InMemoryClusterSpec, InMemoryMachine, InMemoryMachineSpec,
};
use slipway_providers::*;

/// Creates a "load balancer" on the second call, as a cloud with a pending state would.
#[derive(Default)]
struct Fake {
    calls: Mutex<BTreeMap<String, u32>>,
    machines: Mutex<BTreeMap<String, String>>,
}

impl InfrastructureProvider for Fake {
    type Cluster = InMemoryCluster;
    type Machine = InMemoryMachine;
    const CLUSTER_FINALIZER: &'static str = "fake.slipway.dev/cluster";
    const MACHINE_FINALIZER: &'static str = "fake.slipway.dev/machine";

    fn name(&self) -> &'static str {
        "fake"
    }

    async fn reconcile_cluster(
        &self,
        scope: &ClusterScope<InMemoryCluster>,
    ) -> Result<ClusterOutcome, ProviderError> {
        let name = scope.infra.metadata.name.clone().unwrap_or_default();
        let mut calls = self.calls.lock().unwrap();
        let n = calls.entry(name).or_default();
        *n += 1;
        if *n == 1 {
            return Ok(ClusterOutcome::Provisioning(Progress {
                reason: "WaitingForLoadBalancer".into(),
                message: "load balancer is provisioning".into(),
                requeue_after: Duration::from_secs(5),
                status: json!({"loadBalancer": "lb-1"}),
            }));
        }
        Ok(ClusterOutcome::Ready(ClusterReady {
            control_plane_endpoint: Some(ApiEndpoint {
                host: "127.0.0.1".into(),
                port: 6443,
            }),
            failure_domains: vec![],
            status: json!({"loadBalancer": "lb-1"}),
            message: String::new(),
            kubeconfig: None,
        }))
    }

    async fn delete_cluster(
        &self,
        _: &ClusterScope<InMemoryCluster>,
    ) -> Result<Deletion, ProviderError> {
        Ok(Deletion::Gone)
    }

    async fn reconcile_machine(
        &self,
        scope: &MachineScope<InMemoryCluster, InMemoryMachine>,
        bootstrap: &BootstrapData,
    ) -> Result<MachineOutcome, ProviderError> {
        if bootstrap.value.is_empty() {
            return Err(ProviderError::terminal("empty bootstrap data"));
        }
        let name = scope.infra.metadata.name.clone().unwrap_or_default();
        // Idempotent: a second call finds the machine it made.
        let id = self
            .machines
            .lock()
            .unwrap()
            .entry(name.clone())
            .or_insert_with(|| format!("fake://{name}"))
            .clone();
        Ok(MachineOutcome::Ready(MachineReady {
            provider_id: id,
            addresses: vec![],
            failure_domain: None,
            status: json!({}),
            message: String::new(),
        }))
    }

    async fn delete_machine(
        &self,
        scope: &MachineScope<InMemoryCluster, InMemoryMachine>,
    ) -> Result<Deletion, ProviderError> {
        let name = scope.infra.metadata.name.clone().unwrap_or_default();
        self.machines.lock().unwrap().remove(&name);
        Ok(Deletion::Gone)
    }
}

/// Generic driver, as a reconciler would be: call until ready, count the rounds.
async fn until_ready<P: InfrastructureProvider>(
    p: &P,
    scope: &ClusterScope<P::Cluster>,
) -> (u32, ClusterReady) {
    let mut rounds = 0;
    loop {
        rounds += 1;
        match p.reconcile_cluster(scope).await.unwrap() {
            ClusterOutcome::Ready(r) => return (rounds, r),
            ClusterOutcome::Provisioning(p) => assert_eq!(p.status["loadBalancer"], "lb-1"),
        }
    }
}

#[tokio::test]
async fn a_provider_is_driven_generically_to_ready_and_stays_idempotent() {
    let fake = Fake::default();
    let cluster = Arc::new(Cluster::new("c", ClusterSpec::default()));
    let infra = Arc::new(InMemoryCluster::new("c", InMemoryClusterSpec::default()));
    let scope = ClusterScope {
        cluster: cluster.clone(),
        infra: infra.clone(),
        topology: None,
        now: jiff::Timestamp::now(),
    };
    let (rounds, ready) = until_ready(&fake, &scope).await;
    assert_eq!(rounds, 2);
    assert_eq!(ready.control_plane_endpoint.unwrap().port, 6443);

    let mut machine = Machine::new(
        "m",
        MachineSpec {
            cluster_name: "c".into(),
            ..Default::default()
        },
    );
    machine.metadata.labels =
        Some([("cluster.x-k8s.io/control-plane".to_string(), String::new())].into());
    let mscope = MachineScope {
        cluster,
        infra_cluster: infra,
        machine: Arc::new(machine),
        infra: Arc::new(InMemoryMachine::new("m", InMemoryMachineSpec::default())),
        now: jiff::Timestamp::now(),
    };
    assert!(mscope.is_control_plane());
    let data = BootstrapData {
        value: b"#cloud-config\n".to_vec(),
        format: BootstrapFormat::CloudConfig,
    };
    let first = fake.reconcile_machine(&mscope, &data).await.unwrap();
    let second = fake.reconcile_machine(&mscope, &data).await.unwrap();
    assert_eq!(first, second, "a re-run adopts, never duplicates");
    assert_eq!(fake.machines.lock().unwrap().len(), 1);
    let empty = BootstrapData {
        value: vec![],
        format: BootstrapFormat::CloudConfig,
    };
    assert!(
        fake.reconcile_machine(&mscope, &empty)
            .await
            .unwrap_err()
            .is_terminal()
    );
    assert_eq!(fake.delete_machine(&mscope).await.unwrap(), Deletion::Gone);
    assert!(fake.machines.lock().unwrap().is_empty());
}
