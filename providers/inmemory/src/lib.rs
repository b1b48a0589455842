//! The in-memory provider: simulated infrastructure for tests, demos and scale runs, with
//! nothing faked above the machine. This crate owns its kinds ([`api`]), its `generate
//! cluster` flavors and its [`Plugin`].
//!
//! - Clusters: an InMemoryCluster gets an endpoint of its own on the loopback device
//!   (`127.a.b.c` on the port the process's clusters share, see [`endpoint`]; or keeps the
//!   one in its spec) once its simulated provisioning delay has passed.
//! - Machines boot after their simulated delays by executing their bootstrap data ([`boot`]):
//!   files written under `<root>/<namespace>/<cluster>/machines/<machine>/rootfs`, the kubeadm
//!   configuration checked against the Cluster. The init machine starts the cluster's workload
//!   API server ([`workload`]) with the CA its bootstrap data carries; joins are refused unless
//!   their token is in that server and their pinned CA hash matches; every booted machine
//!   registers its Node with providerID `in-memory://<namespace>/<cluster>/<machine>`.
//! - Faults in the machine spec: `boot: Fail` (terminal error with the message) or `Hang`
//!   (never boots). Everything lives under the provider's root directory, so machines and their
//!   workload clusters survive a restart of the controller.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
// kube-derive takes one `printcolumn(...)` per column; clippy reads the repeats as duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod api;
pub mod boot;
pub mod dev;
pub mod endpoint;
mod plugin;
pub mod pods;
pub mod pool;
pub mod workload;

pub use api::{InMemoryCluster, InMemoryClusterTemplate, InMemoryMachine, InMemoryMachineTemplate};
pub use plugin::{Plugin, plugin};
pub use pool::InMemoryMachinePool;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use jiff::Timestamp;
use serde_json::json;
use slipway_api::{
    common::{ApiEndpoint, MachineAddress, MachineAddressType},
    names::finalizers,
};
use slipway_pki::CertKey;
use slipway_providers::{
    BootstrapData, ClusterOutcome, ClusterReady, ClusterScope, Deletion, InfrastructureProvider,
    MachineOutcome, MachineReady, MachineScope, Progress, ProviderError,
};

/// The in-memory provider. Clones share their workload API servers, so the machine and the
/// machine-pool controllers boot into the same simulated clusters.
#[derive(Clone)]
pub struct InMemory {
    root: PathBuf,
    workloads: std::sync::Arc<workload::Workloads>,
    endpoints: std::sync::Arc<endpoint::Endpoints>,
}

impl InMemory {
    /// A provider keeping its machines and workload clusters under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let endpoints = std::sync::Arc::new(endpoint::Endpoints::new(root.clone()));
        Self {
            root,
            workloads: std::sync::Arc::new(workload::Workloads::new(endpoints.clone())),
            endpoints,
        }
    }

    fn cluster_dir(&self, ns: &str, cluster: &str) -> PathBuf {
        self.root.join(ns).join(cluster)
    }

    /// Stops every workload API server this provider runs; their data stays on disk.
    pub async fn shutdown(&self) {
        self.workloads.stop_all().await;
    }

    /// The running workload API server of a cluster, if its init machine has booted.
    pub async fn workload(
        &self,
        ns: &str,
        cluster: &str,
    ) -> Result<Option<std::sync::Arc<workload::Workload>>, ProviderError> {
        self.workloads
            .get(&format!("{ns}/{cluster}"), &self.cluster_dir(ns, cluster))
            .await
    }
}

/// Seconds left of a simulated delay that started at `created`.
fn remaining(created: Option<Timestamp>, delay: f64, now: Timestamp) -> Option<Duration> {
    let created = created?;
    let elapsed = (now.as_millisecond() - created.as_millisecond()) as f64 / 1000.0;
    (elapsed < delay).then(|| Duration::from_secs_f64(delay - elapsed))
}

impl InfrastructureProvider for InMemory {
    type Cluster = InMemoryCluster;
    type Machine = InMemoryMachine;
    const CLUSTER_FINALIZER: &'static str = finalizers::IN_MEMORY_CLUSTER;
    const MACHINE_FINALIZER: &'static str = finalizers::IN_MEMORY_MACHINE;

    fn name(&self) -> &'static str {
        "in-memory"
    }

    async fn reconcile_cluster(
        &self,
        scope: &ClusterScope<InMemoryCluster>,
    ) -> Result<ClusterOutcome, ProviderError> {
        let delay = scope
            .infra
            .spec
            .simulation
            .as_ref()
            .and_then(|s| s.provisioning_delay_seconds)
            .unwrap_or(0.0);
        let created = scope
            .infra
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0);
        if let Some(left) = remaining(created, delay, scope.now) {
            return Ok(ClusterOutcome::Provisioning(Progress {
                reason: "SimulatedProvisioning".into(),
                message: format!(
                    "simulated provisioning delay: {:.1}s left",
                    left.as_secs_f64()
                ),
                requeue_after: left,
                status: json!({}),
            }));
        }
        let (ns, name) = cluster_key(scope.infra.as_ref());
        let endpoint = match scope
            .infra
            .spec
            .control_plane_endpoint
            .clone()
            .filter(ApiEndpoint::is_valid)
        {
            Some(ep) => ep,
            None => {
                let (host, port) = self.endpoints.allocate(&format!("{ns}/{name}"))?;
                ApiEndpoint {
                    host: host.to_string(),
                    port: i32::from(port),
                }
            }
        };
        // After a restart, a cluster whose init machine booted gets its API server back.
        let outage = scope
            .infra
            .spec
            .simulation
            .as_ref()
            .and_then(|s| s.api_server_stopped)
            .unwrap_or(false);
        self.workloads
            .set_outage(&format!("{ns}/{name}"), outage)
            .await;
        self.workload(&ns, &name).await?;
        Ok(ClusterOutcome::Ready(ClusterReady {
            control_plane_endpoint: Some(endpoint),
            failure_domains: vec![],
            status: json!({}),
            message: String::new(),
            kubeconfig: None,
        }))
    }

    async fn delete_cluster(
        &self,
        scope: &ClusterScope<InMemoryCluster>,
    ) -> Result<Deletion, ProviderError> {
        let (ns, name) = cluster_key(scope.infra.as_ref());
        self.workloads.stop(&format!("{ns}/{name}")).await;
        remove_dir(&self.cluster_dir(&ns, &name))?;
        if let Some(ep) = &scope.infra.spec.control_plane_endpoint {
            self.endpoints.release(&ep.host, ep.port);
        }
        Ok(Deletion::Gone)
    }

    async fn reconcile_machine(
        &self,
        scope: &MachineScope<InMemoryCluster, InMemoryMachine>,
        bootstrap: &BootstrapData,
    ) -> Result<MachineOutcome, ProviderError> {
        let ns = scope.machine.metadata.namespace.clone().unwrap_or_default();
        let cluster = scope.machine.spec.cluster_name.clone();
        let machine = scope.machine.metadata.name.clone().unwrap_or_default();
        let cluster_dir = self.cluster_dir(&ns, &cluster);
        let dir = cluster_dir.join("machines").join(&machine);
        let provider_id = format!("in-memory://{ns}/{cluster}/{machine}");
        let address = address_of(&provider_id);
        let ready = || {
            MachineOutcome::Ready(MachineReady {
                provider_id: provider_id.clone(),
                addresses: vec![
                    MachineAddress {
                        type_: MachineAddressType::InternalIP,
                        address: address.clone(),
                    },
                    MachineAddress {
                        type_: MachineAddressType::Hostname,
                        address: machine.clone(),
                    },
                ],
                failure_domain: scope.machine.spec.failure_domain.clone(),
                status: json!({}),
                message: String::new(),
            })
        };
        if dir
            .join("rootfs")
            .join(boot::SENTINEL.trim_start_matches('/'))
            .exists()
        {
            // Booted before (maybe before a restart): a running machine keeps running.
            self.workloads
                .get(&format!("{ns}/{cluster}"), &cluster_dir)
                .await?;
            return Ok(MachineOutcome::Ready(match ready() {
                MachineOutcome::Ready(r) => r,
                MachineOutcome::Provisioning(_) => unreachable!(),
            }));
        }
        let spec = &scope.infra.spec;
        let faults = spec.faults.clone().unwrap_or_default();
        match faults.boot.as_deref() {
            Some("Fail") => {
                return Err(ProviderError::terminal(format!(
                    "the machine failed to boot (simulated fault): {}",
                    faults.message.unwrap_or_else(|| "no message".into())
                )));
            }
            Some("Hang") => {
                return Ok(MachineOutcome::Provisioning(Progress {
                    reason: "SimulatedHang".into(),
                    message: "the machine never boots (simulated fault faults.boot=Hang)".into(),
                    requeue_after: Duration::from_secs(300),
                    status: json!({}),
                }));
            }
            _ => {}
        }
        let sim = spec.simulation.clone().unwrap_or_default();
        let delay = sim.vm_startup_seconds.unwrap_or(0.0)
            + sim.node_startup_seconds.unwrap_or(0.0)
            + sim.api_server_startup_seconds.unwrap_or(0.0);
        let created = scope
            .infra
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0);
        if let Some(left) = remaining(created, delay, scope.now) {
            return Ok(MachineOutcome::Provisioning(Progress {
                reason: "SimulatedBoot".into(),
                message: format!("simulated boot: {:.1}s left", left.as_secs_f64()),
                requeue_after: left,
                status: json!({}),
            }));
        }
        let endpoint = scope
            .cluster
            .spec
            .control_plane_endpoint
            .clone()
            .filter(ApiEndpoint::is_valid)
            .ok_or_else(|| {
                ProviderError::transient("the Cluster has no control-plane endpoint yet")
            })?;
        let network = scope
            .cluster
            .spec
            .cluster_network
            .clone()
            .unwrap_or_default();
        let expect = boot::Expect {
            endpoint: format!("{}:{}", endpoint.host, endpoint.port),
            version: scope.machine.spec.version.clone(),
            pod_cidrs: network.pods.map(|p| p.cidr_blocks).unwrap_or_default(),
            service_cidrs: network.services.map(|p| p.cidr_blocks).unwrap_or_default(),
        };
        // cloud-init's failures are the machine's: a terminal error carrying what went wrong.
        fn refuse(e: impl std::fmt::Display) -> ProviderError {
            ProviderError::terminal(format!("bootstrap failed: {e}"))
        }
        let cc = boot::parse(&bootstrap.value).map_err(refuse)?;
        let run = boot::kubeadm_run(&cc, &expect).map_err(refuse)?;
        let rootfs = dir.join("rootfs");
        remove_dir(&rootfs)?;
        boot::write_files(&rootfs, &cc.files).map_err(refuse)?;
        let key = format!("{ns}/{cluster}");
        let (workload, control_plane) = match &run {
            boot::KubeadmRun::Init {
                tokens,
                cluster_configuration,
            } => {
                let read = |p: &str| {
                    std::fs::read_to_string(rootfs.join(p))
                        .map_err(|e| refuse(format!("kubeadm init needs /{p}: {e}")))
                };
                let ca = CertKey {
                    cert_pem: read("etc/kubernetes/pki/ca.crt")?,
                    key_pem: read("etc/kubernetes/pki/ca.key")?,
                };
                let port = u16::try_from(endpoint.port).map_err(|_| {
                    refuse(format!("endpoint port {} is out of range", endpoint.port))
                })?;
                // A host name (not an address) is served on 127.0.0.1, as it always was.
                let ip = endpoint
                    .host
                    .parse()
                    .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
                let w = self
                    .workloads
                    .init(&key, &cluster_dir, &ca, (ip, port))
                    .await?;
                workload::seed_init(&w, tokens, cluster_configuration).await?;
                (w, true)
            }
            boot::KubeadmRun::Join {
                control_plane,
                token,
                ca_cert_hashes,
                ..
            } => {
                let Some(w) = self.workloads.get(&key, &cluster_dir).await? else {
                    return Ok(MachineOutcome::Provisioning(Progress {
                        reason: "WaitingForControlPlane".into(),
                        message: format!(
                            "kubeadm join: nothing answers at {} yet; retrying",
                            expect.endpoint
                        ),
                        requeue_after: Duration::from_secs(2),
                        status: json!({}),
                    }));
                };
                if let Err(why) = workload::check_join(&w, token, ca_cert_hashes).await? {
                    return Err(ProviderError::terminal(why.to_string()));
                }
                (w, *control_plane)
            }
        };
        let version = scope.machine.spec.version.clone().unwrap_or_default();
        workload::register_node(
            &workload,
            &machine,
            &provider_id,
            control_plane,
            &version,
            &address,
        )
        .await?;
        let sentinel = boot::under(&rootfs, boot::SENTINEL).map_err(refuse)?;
        if let Some(d) = sentinel.parent() {
            std::fs::create_dir_all(d).map_err(|e| ProviderError::transient(e.to_string()))?;
        }
        std::fs::write(&sentinel, "success\n")
            .map_err(|e| ProviderError::transient(e.to_string()))?;
        Ok(ready())
    }

    async fn delete_machine(
        &self,
        scope: &MachineScope<InMemoryCluster, InMemoryMachine>,
    ) -> Result<Deletion, ProviderError> {
        let ns = scope.machine.metadata.namespace.clone().unwrap_or_default();
        let machine = scope.machine.metadata.name.clone().unwrap_or_default();
        let dir = self
            .cluster_dir(&ns, &scope.machine.spec.cluster_name)
            .join("machines")
            .join(machine);
        remove_dir(&dir)?;
        Ok(Deletion::Gone)
    }
}

fn cluster_key(infra: &InMemoryCluster) -> (String, String) {
    let ns = infra.metadata.namespace.clone().unwrap_or_default();
    let name = infra
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(slipway_api::names::labels::CLUSTER_NAME).cloned())
        .or_else(|| {
            infra
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.kind == "Cluster")
                .map(|o| o.name.clone())
        })
        .unwrap_or_default();
    (ns, name)
}

fn remove_dir(dir: &Path) -> Result<(), ProviderError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ProviderError::transient(format!("{}: {e}", dir.display()))),
    }
}

/// A stable simulated address in 10.0.0.0/8 for a machine.
fn address_of(provider_id: &str) -> String {
    let h = provider_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!(
        "10.{}.{}.{}",
        (h >> 16) as u8,
        (h >> 8) as u8,
        (h as u8).max(1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_delays_count_from_creation() {
        let now = Timestamp::from_second(1000).unwrap();
        assert_eq!(
            remaining(Some(Timestamp::from_second(998).unwrap()), 5.0, now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            remaining(Some(Timestamp::from_second(990).unwrap()), 5.0, now),
            None
        );
        assert_eq!(
            remaining(None, 5.0, now),
            None,
            "no creation time: no delay to wait for"
        );
    }
}
