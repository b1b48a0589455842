//! The kind provider: one Cluster is one kind cluster on the local Docker engine.
//!
//! - **Cluster.** The kind config is rendered from the Cluster's topology (control-plane and
//!   MachineDeployment replicas and versions, clusterNetwork, KindCluster networking) and piped
//!   to `kind create cluster --config -`, run in the background so a reconcile never blocks on
//!   it. `kind get clusters` is asked first, so an existing cluster is adopted, never created
//!   twice. kind makes its own PKI, so the provider hands core both of kind's kubeconfigs
//!   (host-facing and `--internal`); core writes them to `<cluster>-kubeconfig`.
//! - **Machines** are observed, not created: each binds to a node container of its role (see
//!   [`nodes`]); bindings live in `<root>/<ns>/<kindcluster>/bindings.json`.
//! - **Delete** runs `kind delete cluster` (fine when already gone); `Gone` only once
//!   `kind get clusters` no longer lists it. Deleting a worker Machine removes its node
//!   container; a control-plane Machine is only unbound (removing an etcd member's container
//!   would break the cluster's quorum).
//! - **Errors.** A missing `kind` or `docker`, or a Docker daemon that does not answer, is
//!   `Unavailable` naming it; every command's exit status is checked and its trimmed stderr
//!   carried into the message; kind's kubeconfigs never reach a message or a log.
//!
//! State on disk (`<root>/<ns>/<kindcluster>/`): `owned` (this provider created or adopted the
//! kind cluster, so deleting the KindCluster deletes it), `layout.json` (which pool each node was
//! made for) and `kubeconfig` (kind's `--kubeconfig` target, so ~/.kube/config is never touched).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
// kube-derive takes one `printcolumn(...)` per column; clippy reads the repeats as duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod api;
pub mod cli;
pub mod config;
pub mod nodes;
mod plugin;

pub use api::{KindCluster, KindClusterTemplate, KindMachine, KindMachineTemplate};
pub use plugin::{Plugin, plugin};

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use slipway_api::{
    common::ApiEndpoint,
    names::{labels, reasons},
};

use self::{
    cli::Tools,
    config::{NodeSlot, Role},
    nodes::{ObservedNode, Want},
};
use slipway_providers::{
    BootstrapData, ClusterOutcome, ClusterReady, ClusterScope, Deletion, InfrastructureProvider,
    MachineOutcome, MachineReady, MachineScope, Progress, ProvidedKubeconfig, ProviderError,
};

/// What the Ready conditions of kind objects say: the bootstrap path was not slipway's.
pub const BOOTSTRAP_NOTE: &str = "kind ran kubeadm on its nodes itself; slipway's bootstrap data \
     is not executed on kind nodes";

/// How long `kind create cluster` may wait for the control plane.
const CREATE_WAIT: &str = "5m";
/// How often a creation in progress is looked at.
const CREATING_POLL: Duration = Duration::from_secs(5);
/// How often a Machine that cannot be bound looks again.
const UNBOUND_POLL: Duration = Duration::from_secs(60);

/// A `kind create cluster` under way, or the failures so far.
#[derive(Debug, Default)]
struct Creation {
    running: bool,
    failures: u32,
    last_error: String,
    retry_at: Option<std::time::Instant>,
}

/// How long to wait before running `kind create cluster` again after `failures` failures:
/// 5 s, doubling, at most 5 minutes (a failed create can take minutes itself).
fn create_backoff(failures: u32) -> Duration {
    let secs = 5u64.saturating_mul(1 << failures.saturating_sub(1).min(16));
    Duration::from_secs(secs.min(300))
}

/// The kind provider.
pub struct Kind {
    root: PathBuf,
    tools: Tools,
    /// Creations under way or failed, by state directory.
    creating: Arc<Mutex<HashMap<PathBuf, Creation>>>,
    /// Serialises read-modify-write of the bindings files.
    bindings: Mutex<()>,
}

impl Kind {
    /// A provider keeping its state under `root`, running kind and docker from `tools`.
    pub fn new(root: impl Into<PathBuf>, tools: Tools) -> Self {
        Self {
            root: root.into(),
            tools,
            creating: Arc::default(),
            bindings: Mutex::new(()),
        }
    }

    fn dir(&self, infra: &KindCluster) -> PathBuf {
        self.root
            .join(infra.metadata.namespace.as_deref().unwrap_or_default())
            .join(infra.metadata.name.as_deref().unwrap_or_default())
    }

    async fn listed(&self, name: &str) -> Result<bool, ProviderError> {
        let out = self.tools.run("kind", &["get", "clusters"], None).await?;
        Ok(out.stdout.lines().any(|l| l.trim() == name))
    }

    /// The node containers of a kind cluster.
    async fn observe(&self, name: &str) -> Result<Vec<ObservedNode>, ProviderError> {
        let out = self
            .tools
            .run("kind", &["get", "nodes", "--name", name], None)
            .await?;
        let names: Vec<&str> = out
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("No kind nodes"))
            .collect();
        if names.is_empty() {
            return Ok(vec![]);
        }
        let mut args = vec!["inspect"];
        args.extend(&names);
        let out = self.tools.run("docker", &args, None).await?;
        nodes::parse_inspect(name, &out.stdout).map_err(|e| ProviderError::transient(e.to_string()))
    }

    /// Starts `kind create cluster` in the background.
    fn start_create(&self, dir: &Path, name: &str, config: String) {
        self.creating
            .lock()
            .expect("creating lock")
            .entry(dir.to_path_buf())
            .or_default()
            .running = true;
        let tools = self.tools.clone();
        let creating = self.creating.clone();
        let dir = dir.to_path_buf();
        let name = name.to_string();
        tokio::spawn(async move {
            let kubeconfig = dir.join("kubeconfig").to_string_lossy().into_owned();
            let args = [
                "create",
                "cluster",
                "--name",
                &name,
                "--config",
                "-",
                "--kubeconfig",
                &kubeconfig,
                "--wait",
                CREATE_WAIT,
            ];
            let result = tools.run("kind", &args, Some(config.as_bytes())).await;
            let mut map = creating.lock().expect("creating lock");
            match result {
                Ok(_) => {
                    tracing::info!(kind_cluster = %name, "kind created the cluster");
                    map.remove(&dir);
                }
                Err(e) => {
                    tracing::warn!(kind_cluster = %name, error = %e, "kind create cluster failed");
                    let c = map.entry(dir).or_default();
                    c.running = false;
                    c.failures += 1;
                    c.last_error = e.to_string();
                    c.retry_at = Some(std::time::Instant::now() + create_backoff(c.failures));
                }
            }
        });
    }

    /// `Some(progress)` while a creation runs; the last failure until its backoff has passed;
    /// `None` when a creation may start.
    fn creation(&self, dir: &Path) -> Result<Option<Progress>, ProviderError> {
        let map = self.creating.lock().expect("creating lock");
        match map.get(dir) {
            None => Ok(None),
            Some(c) if c.running => Ok(Some(Progress {
                reason: reasons::CREATING_KIND_CLUSTER.into(),
                message: "`kind create cluster` is running".into(),
                requeue_after: CREATING_POLL,
                status: Value::Null,
            })),
            Some(c) => match c.retry_at {
                Some(at) if at > std::time::Instant::now() => {
                    Err(ProviderError::transient(format!(
                        "{} (failure {}; retrying in {}s)",
                        c.last_error,
                        c.failures,
                        (at - std::time::Instant::now()).as_secs() + 1
                    )))
                }
                _ => Ok(None),
            },
        }
    }

    fn running(&self, dir: &Path) -> bool {
        self.creating
            .lock()
            .expect("creating lock")
            .get(dir)
            .is_some_and(|c| c.running)
    }

    async fn kubeconfigs(
        &self,
        name: &str,
        access: &str,
    ) -> Result<(ApiEndpoint, ProvidedKubeconfig), ProviderError> {
        let host = self
            .tools
            .run("kind", &["get", "kubeconfig", "--name", name], None)
            .await?
            .stdout;
        let internal = self
            .tools
            .run(
                "kind",
                &["get", "kubeconfig", "--name", name, "--internal"],
                None,
            )
            .await?
            .stdout;
        let value = if access == "internal" {
            internal.clone()
        } else {
            host.clone()
        };
        let endpoint = config::endpoint_of(&value).ok_or_else(|| {
            ProviderError::transient(format!(
                "`kind get kubeconfig --name {name}` printed no https server address"
            ))
        })?;
        Ok((
            endpoint,
            ProvidedKubeconfig {
                value,
                extra: BTreeMap::from([("host".into(), host), ("internal".into(), internal)]),
            },
        ))
    }

    /// `kind delete cluster` (succeeds when already gone), with the private kubeconfig path so
    /// no other kubeconfig is edited.
    async fn delete_kind_cluster(&self, dir: &Path, name: &str) -> Result<(), ProviderError> {
        let kubeconfig = dir.join("kubeconfig").to_string_lossy().into_owned();
        self.tools
            .run(
                "kind",
                &[
                    "delete",
                    "cluster",
                    "--name",
                    name,
                    "--kubeconfig",
                    &kubeconfig,
                ],
                None,
            )
            .await
            .map(drop)
    }

    fn load_bindings(dir: &Path) -> Result<BTreeMap<String, String>, ProviderError> {
        match std::fs::read(dir.join("bindings.json")) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| ProviderError::transient(format!("{}: {e}", dir.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io_error(dir, e)),
        }
    }

    fn update_bindings<T>(
        &self,
        dir: &Path,
        f: impl FnOnce(&mut BTreeMap<String, String>) -> T,
    ) -> Result<T, ProviderError> {
        let _guard = self.bindings.lock().expect("bindings lock");
        let mut b = Self::load_bindings(dir)?;
        let before = b.clone();
        let out = f(&mut b);
        if b != before {
            write_file(
                &dir.join("bindings.json"),
                &serde_json::to_vec_pretty(&b).unwrap_or_default(),
            )?;
        }
        Ok(out)
    }
}

impl InfrastructureProvider for Kind {
    type Cluster = KindCluster;
    type Machine = KindMachine;
    const CLUSTER_FINALIZER: &'static str = "kindcluster.infrastructure.cluster.x-k8s.io";
    const MACHINE_FINALIZER: &'static str = "kindmachine.infrastructure.cluster.x-k8s.io";
    const NEEDS_TOPOLOGY: bool = true;
    const READY_RECHECK: Option<Duration> = Some(Duration::from_secs(60));

    fn name(&self) -> &'static str {
        "kind"
    }

    async fn reconcile_cluster(
        &self,
        scope: &ClusterScope<KindCluster>,
    ) -> Result<ClusterOutcome, ProviderError> {
        let infra = scope.infra.as_ref();
        let dir = self.dir(infra);
        let name = kind_name(infra);
        if let Some(p) = self.creation(&dir)? {
            return Ok(ClusterOutcome::Provisioning(p));
        }
        self.tools.check().await?;
        let Some(topology) = scope.topology.as_ref() else {
            return Ok(ClusterOutcome::Provisioning(Progress {
                reason: reasons::WAITING_FOR_TOPOLOGY.into(),
                message: "waiting for the Cluster's control plane, which sizes the kind cluster"
                    .into(),
                requeue_after: CREATING_POLL,
                status: Value::Null,
            }));
        };
        let (kind_config, layout) = config::render(&name, &infra.spec, &scope.cluster, topology)?;
        let status = json!({"kindClusterName": name});
        if !self.listed(&name).await? {
            create_dir(&dir)?;
            write_file(&dir.join("owned"), name.as_bytes())?;
            write_file(
                &dir.join("layout.json"),
                &serde_json::to_vec_pretty(&layout).unwrap_or_default(),
            )?;
            self.start_create(&dir, &name, kind_config);
            return Ok(ClusterOutcome::Provisioning(Progress {
                reason: reasons::CREATING_KIND_CLUSTER.into(),
                message: format!("`kind create cluster --name {name}` started"),
                requeue_after: CREATING_POLL,
                status,
            }));
        }
        // Listed: ours or adopted; either way deleting the KindCluster deletes it.
        create_dir(&dir)?;
        if !dir.join("owned").exists() {
            write_file(&dir.join("owned"), name.as_bytes())?;
            tracing::info!(kind_cluster = %name, "adopted an existing kind cluster");
        }
        let observed = self.observe(&name).await?;
        let drift = nodes::drift(&layout, &observed);
        let mut message = BOOTSTRAP_NOTE.to_string();
        if let Some(d) = &drift {
            if infra.spec.recreate_policy.as_deref() == Some("Recreate") {
                self.delete_kind_cluster(&dir, &name).await?;
                let _ = std::fs::remove_file(dir.join("layout.json"));
                return Ok(ClusterOutcome::Provisioning(Progress {
                    reason: reasons::RECREATING_KIND_CLUSTER.into(),
                    message: format!("recreating kind cluster {name}: {d}"),
                    requeue_after: CREATING_POLL,
                    status,
                }));
            }
            message = format!(
                "{message}. The spec no longer matches kind cluster {name} ({d}); kind cannot \
                 change it in place: set spec.recreatePolicy: Recreate to rebuild it"
            );
        } else if !dir.join("layout.json").exists() {
            write_file(
                &dir.join("layout.json"),
                &serde_json::to_vec_pretty(&layout).unwrap_or_default(),
            )?;
        }
        let access = infra.spec.kubeconfig_access.as_deref().unwrap_or("host");
        let (endpoint, kubeconfig) = self.kubeconfigs(&name, access).await?;
        Ok(ClusterOutcome::Ready(ClusterReady {
            control_plane_endpoint: Some(endpoint),
            failure_domains: vec![],
            status,
            message,
            kubeconfig: Some(kubeconfig),
        }))
    }

    async fn delete_cluster(
        &self,
        scope: &ClusterScope<KindCluster>,
    ) -> Result<Deletion, ProviderError> {
        let infra = scope.infra.as_ref();
        let dir = self.dir(infra);
        let name = kind_name(infra);
        if self.running(&dir) {
            // A creation still running would bring the cluster back after a delete.
            return Ok(Deletion::InProgress(Progress {
                reason: reasons::DELETING.into(),
                message: format!(
                    "waiting for `kind create cluster --name {name}` to finish before deleting it"
                ),
                requeue_after: CREATING_POLL,
                status: Value::Null,
            }));
        }
        if !dir.join("owned").exists() {
            // Never created nor adopted here: nothing of ours to delete.
            remove_dir(&dir)?;
            return Ok(Deletion::Gone);
        }
        self.delete_kind_cluster(&dir, &name).await?;
        if self.listed(&name).await? {
            return Ok(Deletion::InProgress(Progress {
                reason: reasons::DELETING.into(),
                message: format!("`kind get clusters` still lists {name}"),
                requeue_after: CREATING_POLL,
                status: Value::Null,
            }));
        }
        remove_dir(&dir)?;
        self.creating.lock().expect("creating lock").remove(&dir);
        Ok(Deletion::Gone)
    }

    async fn reconcile_machine(
        &self,
        scope: &MachineScope<KindCluster, KindMachine>,
        _bootstrap: &BootstrapData,
    ) -> Result<MachineOutcome, ProviderError> {
        let infra_cluster = scope.infra_cluster.as_ref();
        let dir = self.dir(infra_cluster);
        let name = kind_name(infra_cluster);
        self.tools.check().await?;
        let observed = self.observe(&name).await?;
        if observed.is_empty() {
            return Ok(MachineOutcome::Provisioning(Progress {
                reason: reasons::WAITING_FOR_CLUSTER_INFRASTRUCTURE.into(),
                message: format!("kind cluster {name} has no nodes yet"),
                requeue_after: CREATING_POLL,
                status: Value::Null,
            }));
        }
        let layout: Vec<NodeSlot> = std::fs::read(dir.join("layout.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let machine_labels = scope.machine.metadata.labels.clone().unwrap_or_default();
        let key = machine_key(scope);
        let want = Want {
            machine: &key,
            role: if scope.is_control_plane() {
                Role::ControlPlane
            } else {
                Role::Worker
            },
            pool: machine_labels
                .get(labels::MACHINE_DEPLOYMENT_NAME)
                .or_else(|| machine_labels.get(labels::CONTROL_PLANE_NAME))
                .map(String::as_str),
            version: scope.machine.spec.version.as_deref(),
        };
        create_dir(&dir)?;
        let bound = self.update_bindings(&dir, |b| {
            let node = nodes::bind(&want, &name, &observed, &layout, b)?;
            b.insert(node.name.clone(), key.clone());
            Ok::<_, nodes::Unbound>(node.clone())
        })?;
        let node = match bound {
            Ok(n) => n,
            Err(u) => {
                return Ok(MachineOutcome::Provisioning(Progress {
                    reason: u.reason.into(),
                    message: u.message,
                    requeue_after: UNBOUND_POLL,
                    status: Value::Null,
                }));
            }
        };
        if !node.running {
            return Ok(MachineOutcome::Provisioning(Progress {
                reason: reasons::NODE_NOT_RUNNING.into(),
                message: format!("node container {} is not running", node.name),
                requeue_after: CREATING_POLL,
                status: json!({"nodeName": node.name}),
            }));
        }
        Ok(MachineOutcome::Ready(MachineReady {
            provider_id: format!("kind://docker/{name}/{}", node.name),
            addresses: node.addresses.clone(),
            failure_domain: None,
            status: json!({"nodeName": node.name}),
            message: BOOTSTRAP_NOTE.into(),
        }))
    }

    async fn delete_machine(
        &self,
        scope: &MachineScope<KindCluster, KindMachine>,
    ) -> Result<Deletion, ProviderError> {
        let dir = self.dir(scope.infra_cluster.as_ref());
        let key = machine_key(scope);
        let bound = self.update_bindings(&dir, |b| {
            b.iter().find(|(_, m)| **m == key).map(|(n, _)| n.clone())
        })?;
        let Some(node) = bound else {
            return Ok(Deletion::Gone);
        };
        if !scope.is_control_plane() {
            self.tools.remove_container(&node).await?;
        }
        self.update_bindings(&dir, |b| {
            b.remove(&node);
        })?;
        Ok(Deletion::Gone)
    }
}

/// `namespace/name` of a scope's Machine: what the bindings file records.
fn machine_key(scope: &MachineScope<KindCluster, KindMachine>) -> String {
    let m = &scope.machine.metadata;
    format!(
        "{}/{}",
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default()
    )
}

/// The kind cluster of a KindCluster.
fn kind_name(infra: &KindCluster) -> String {
    config::cluster_name(
        &infra.spec,
        infra.metadata.name.as_deref().unwrap_or_default(),
    )
}

fn io_error(p: &Path, e: std::io::Error) -> ProviderError {
    ProviderError::Transient {
        message: format!("{}", p.display()),
        source: Some(Box::new(e)),
    }
}

fn create_dir(dir: &Path) -> Result<(), ProviderError> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))
}

fn write_file(p: &Path, data: &[u8]) -> Result<(), ProviderError> {
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(|e| io_error(&tmp, e))?;
    std::fs::rename(&tmp, p).map_err(|e| io_error(p, e))
}

fn remove_dir(dir: &Path) -> Result<(), ProviderError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_creates_back_off_up_to_five_minutes() {
        let secs: Vec<u64> = [1, 2, 3, 4, 7, 30]
            .map(|n| create_backoff(n).as_secs())
            .to_vec();
        assert_eq!(secs, [5, 10, 20, 40, 300, 300]);
    }
}
