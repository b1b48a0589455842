//! Simulated workload API servers: one embedded API server per in-memory cluster, started when
//! its init machine boots, serving at the cluster endpoint with a certificate signed by the
//! cluster CA (written to the machine by its bootstrap data) and trusting that CA for client
//! certificates, so the kubeconfig slipway generates authenticates exactly as it would against
//! kubeadm's API server. Data lives under the cluster's directory and survives a restart: the
//! server is resumed the next time anything of the cluster is reconciled.
//!
//! Descriptors, since thousands of these share one process's open-file limit: servers listen
//! through the process's shared loopback listener at their own address ([`crate::endpoint`]),
//! and their SQLite file uses a rollback journal that is open only during a commit
//! ([`Journal::OneFile`]), so a server at rest holds one descriptor (its database).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
};

use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use slipway_apiserver::{
    plane::{Embedding, Options, Plane},
    store::Journal,
    tls::{self, CertKey},
};

use slipway_providers::ProviderError;

/// A running workload API server.
pub struct Workload {
    /// The embedded server (`None` once stopped).
    plane: tokio::sync::Mutex<Option<Plane>>,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The CA it serves with (PEM).
    pub ca_pem: String,
    /// Admin client (what kubeadm's admin.conf is to a real control plane).
    pub client: Client,
    /// `sha256:<hex>` of the CA the server presents.
    pub ca_hash: String,
}

/// The workload servers of this process, by `<namespace>/<cluster>`.
pub struct Workloads {
    endpoints: Arc<crate::endpoint::Endpoints>,
    running: Arc<tokio::sync::Mutex<HashMap<String, Arc<Workload>>>>,
    /// Clusters whose server another process serves, watched so this one takes over when
    /// that process stops.
    watched: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Clusters whose server is stopped on purpose (a simulated outage): never resumed.
    outages: std::sync::Mutex<std::collections::HashSet<String>>,
}

fn transient(what: &str) -> impl Fn(String) -> ProviderError + '_ {
    move |e| ProviderError::transient(format!("{what}: {e}"))
}

fn api_dir(cluster_dir: &Path) -> PathBuf {
    cluster_dir.join("apiserver")
}

async fn client_for(kubeconfig: &str) -> Result<Client, ProviderError> {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig)
        .map_err(|e| ProviderError::transient(format!("workload kubeconfig: {e}")))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| ProviderError::transient(format!("workload kubeconfig: {e}")))?;
    // Closes its connections when idle, so a server at rest has none open from this client.
    slipway_runtime::remote::idle_closing_client(config, slipway_runtime::remote::POOL_IDLE)
        .map_err(|e| ProviderError::transient(format!("workload client: {e}")))
}

impl Workloads {
    /// No servers yet; their listeners come from `endpoints`.
    pub fn new(endpoints: Arc<crate::endpoint::Endpoints>) -> Self {
        Self {
            endpoints,
            running: Default::default(),
            watched: Default::default(),
            outages: Default::default(),
        }
    }

    /// The running server of a cluster, resuming it from disk when its init machine booted
    /// before this process started. `None`: no init machine has booted.
    pub async fn get(
        &self,
        key: &str,
        cluster_dir: &Path,
    ) -> Result<Option<Arc<Workload>>, ProviderError> {
        let mut running = self.running.lock().await;
        if let Some(w) = running.get(key) {
            return Ok(Some(w.clone()));
        }
        if self.outages.lock().expect("outages").contains(key) {
            return Ok(None);
        }
        let dir = api_dir(cluster_dir);
        let Ok(port) = std::fs::read_to_string(dir.join("port")) else {
            return Ok(None);
        };
        let port: u16 = port
            .trim()
            .parse()
            .map_err(|_| ProviderError::terminal(format!("{}: not a port", dir.display())))?;
        // Written since servers share a port; before, every server was on 127.0.0.1.
        let ip = match std::fs::read_to_string(dir.join("address")) {
            Ok(a) => a.trim().parse().map_err(|_| {
                ProviderError::terminal(format!("{}/address: not an IP address", dir.display()))
            })?,
            Err(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let addr = SocketAddr::new(ip, port);
        // Another process may serve it already: the controller of the management cluster
        // this cluster was moved from (`slipway move`), until that one stops. Use its server
        // rather than fight over the port and the data; not kept, so the next call after it
        // stops starts the server here.
        let elsewhere = if self.endpoints.listens_on(port) {
            None
        } else {
            served_elsewhere(&dir, addr).await?
        };
        if let Some(w) = elsewhere {
            self.take_over_when_gone(key, dir, addr);
            return Ok(Some(Arc::new(w)));
        }
        let w = Arc::new(start(&dir, addr, &self.endpoints).await?);
        running.insert(key.to_string(), w.clone());
        Ok(Some(w))
    }

    /// Watches the port of a server another process serves; once nothing answers there, starts
    /// it here (nothing else would: a Ready cluster at rest is not reconciled for minutes).
    fn take_over_when_gone(&self, key: &str, dir: PathBuf, addr: SocketAddr) {
        if !self
            .watched
            .lock()
            .expect("watched")
            .insert(key.to_string())
        {
            return;
        }
        let (running, watched, key) = (self.running.clone(), self.watched.clone(), key.to_string());
        let endpoints = self.endpoints.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if !endpoints.listens_on(addr.port()) && accepting(addr).await {
                    continue;
                }
                let mut r = running.lock().await;
                if r.contains_key(&key) {
                    break;
                }
                match start(&dir, addr, &endpoints).await {
                    Ok(w) => {
                        tracing::info!(cluster = %key, %addr, "took over the simulated API server");
                        r.insert(key.clone(), Arc::new(w));
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(cluster = %key, error = %e, "taking over the simulated API server")
                    }
                }
            }
            watched.lock().expect("watched").remove(&key);
        });
    }

    /// Starts the server of a cluster for `kubeadm init` with the CA the machine was given.
    pub async fn init(
        &self,
        key: &str,
        cluster_dir: &Path,
        ca: &CertKey,
        (ip, port): (IpAddr, u16),
    ) -> Result<Arc<Workload>, ProviderError> {
        if let Some(w) = self.get(key, cluster_dir).await? {
            return Ok(w);
        }
        let dir = api_dir(cluster_dir);
        std::fs::create_dir_all(&dir).map_err(|e| transient("workload data dir")(e.to_string()))?;
        // The plane loads ca.crt/ca.key from its dir: the cluster CA signs its serving certificate.
        std::fs::write(dir.join("ca.crt"), &ca.cert_pem)
            .map_err(|e| transient("workload CA")(e.to_string()))?;
        tls::write_private(&dir.join("ca.key"), ca.key_pem.as_bytes())
            .map_err(|e| transient("workload CA")(e.to_string()))?;
        let w = Arc::new(start(&dir, SocketAddr::new(ip, port), &self.endpoints).await?);
        std::fs::write(dir.join("address"), ip.to_string())
            .map_err(|e| transient("workload address")(e.to_string()))?;
        // Written last: a crash before this point retries init instead of resuming half a server.
        std::fs::write(dir.join("port"), port.to_string())
            .map_err(|e| transient("workload port")(e.to_string()))?;
        self.running.lock().await.insert(key.to_string(), w.clone());
        Ok(w)
    }

    /// Starts or ends a simulated outage of a cluster's server.
    pub async fn set_outage(&self, key: &str, down: bool) {
        let changed = {
            let mut o = self.outages.lock().expect("outages");
            if down {
                o.insert(key.to_string())
            } else {
                o.remove(key)
            }
        };
        if down && changed {
            self.stop(key).await;
        }
    }

    /// Stops every server (their data stays), as a controller shutting down leaves its
    /// simulated machines to be resumed.
    pub async fn stop_all(&self) {
        let keys: Vec<String> = self.running.lock().await.keys().cloned().collect();
        for k in keys {
            self.stop(&k).await;
        }
    }

    /// Stops a cluster's server (its data stays until the cluster dir is removed).
    pub async fn stop(&self, key: &str) {
        let w = self.running.lock().await.remove(key);
        if let Some(w) = w
            && let Some(plane) = w.plane.lock().await.take()
        {
            plane.shutdown().await;
        }
    }
}

/// Whether something accepts connections on `addr`.
async fn accepting(addr: SocketAddr) -> bool {
    let probe = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        tokio::net::TcpStream::connect(addr),
    )
    .await;
    matches!(probe, Ok(Ok(_)))
}

/// A handle on the server of `dir` when something already accepts connections on its port
/// (`None`: nothing does). The handle's client is the server's own admin kubeconfig, so a
/// stranger on that port fails every request instead of being mistaken for the cluster.
async fn served_elsewhere(dir: &Path, addr: SocketAddr) -> Result<Option<Workload>, ProviderError> {
    if !accepting(addr).await {
        return Ok(None);
    }
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .map_err(|e| transient("workload served elsewhere")(format!("{f}: {e}")))
    };
    let ca_pem = read("ca.crt")?;
    let client = client_for(&read("kubeconfig")?).await?;
    let ca_hash = tls::spki_sha256(&ca_pem).map_err(|e| ProviderError::transient(e.to_string()))?;
    Ok(Some(Workload {
        plane: tokio::sync::Mutex::new(None),
        addr,
        ca_pem,
        client,
        ca_hash,
    }))
}

async fn start(
    dir: &Path,
    addr: SocketAddr,
    endpoints: &crate::endpoint::Endpoints,
) -> Result<Workload, ProviderError> {
    // When a machine of this process no longer serves on this port, an older server
    // elsewhere (a process still running) or another program does; both are transient.
    let listener = endpoints.listener(addr.ip(), addr.port()).map_err(|e| {
        ProviderError::transient(format!("the simulated API server at {addr}: {e}"))
    })?;
    let plane = Plane::start_with(
        Options {
            data_dir: Some(dir.to_path_buf()),
            address: addr.ip(),
            port: addr.port(),
            crds: vec![],
            version_from_nodes: true,
            encryption_key_file: None,
            auth: Default::default(),
        },
        Embedding {
            listener,
            journal: Journal::OneFile,
        },
    )
    .await
    .map_err(|e| {
        ProviderError::transient(format!("starting the simulated API server at {addr}: {e}"))
    })?;
    let ca_hash = tls::spki_sha256(&plane.ca.cert_pem)
        .map_err(|e| ProviderError::transient(e.to_string()))?;
    let client = client_for(&plane.kubeconfig).await?;
    Ok(Workload {
        addr: plane.server.addr,
        ca_pem: plane.ca.cert_pem.clone(),
        plane: tokio::sync::Mutex::new(Some(plane)),
        client,
        ca_hash,
    })
}

fn kube_err(what: &str) -> impl Fn(kube::Error) -> ProviderError + '_ {
    move |e| ProviderError::transient(format!("workload API, {what}: {e}"))
}

/// What `kubeadm init` leaves in the cluster that joins and slipway read: the bootstrap tokens
/// (`kube-system/bootstrap-token-<id>`, 24 h), `kube-system/kubeadm-config`,
/// `kube-public/cluster-info`, and the ClusterRoleBinding `kubeadm:cluster-admins` that makes
/// the admin kubeconfig's group (`kubeadm:cluster-admins`) cluster-admin under RBAC.
pub async fn seed_init(
    w: &Workload,
    tokens: &[String],
    cluster_configuration: &serde_json::Value,
) -> Result<(), ProviderError> {
    let admins: k8s_openapi::api::rbac::v1::ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "kubeadm:cluster-admins"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "kubeadm:cluster-admins"}]
    }))
    .expect("valid ClusterRoleBinding");
    create_once(&Api::all(w.client.clone()), &admins).await?;
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), "kube-system");
    for t in tokens {
        let Some((id, secret)) = t.split_once('.') else {
            return Err(ProviderError::terminal(format!(
                "InitConfiguration.bootstrapTokens: {t:?} is not <id>.<secret>"
            )));
        };
        let expiration =
            (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24)).to_string();
        let s: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("bootstrap-token-{id}")},
            "type": "bootstrap.kubernetes.io/token",
            "stringData": {"token-id": id, "token-secret": secret, "expiration": expiration,
                           "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
                           "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}
        }))
        .expect("valid Secret");
        create_once(&secrets, &s).await?;
    }
    let cms: Api<ConfigMap> = Api::namespaced(w.client.clone(), "kube-system");
    let cc = serde_saphyr::to_string(cluster_configuration).unwrap_or_default();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "kubeadm-config"}, "data": {"ClusterConfiguration": cc}
    }))
    .expect("valid ConfigMap");
    create_once(&cms, &cm).await?;
    let public: Api<ConfigMap> = Api::namespaced(w.client.clone(), "kube-public");
    let info = slipway_apiserver::plane::kubeconfig(&w.addr, &w.ca_pem, "")
        .lines()
        .filter(|l| !l.contains("token:"))
        .collect::<Vec<_>>()
        .join("\n");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "cluster-info"}, "data": {"kubeconfig": info}
    }))
    .expect("valid ConfigMap");
    create_once(&public, &cm).await?;
    crate::pods::kubernetes_service(w).await
}

async fn create_once<K>(api: &Api<K>, obj: &K) -> Result<(), ProviderError>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(kube_err("create")(e)),
    }
}

/// Why kubeadm refuses a join. Messages name the token by its public id, never its secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefused {
    /// The cluster CA's public-key hash is not pinned.
    #[error(
        "kubeadm join refused: the cluster CA's public key hash {ca_hash} matches none of the pinned caCertHashes"
    )]
    CaCertHash {
        /// The hash of the CA the workload cluster presents.
        ca_hash: String,
    },
    /// The token is not `<id>.<secret>`.
    #[error("kubeadm join refused: the token is not <id>.<secret>")]
    MalformedToken,
    /// No bootstrap token Secret with this id.
    #[error("kubeadm join refused: bootstrap token {id} is not in the workload cluster")]
    UnknownToken {
        /// The token id.
        id: String,
    },
    /// The token's secret part is not the stored one.
    #[error("kubeadm join refused: bootstrap token {id} does not match")]
    TokenMismatch {
        /// The token id.
        id: String,
    },
    /// The token expired.
    #[error("kubeadm join refused: bootstrap token {id} expired at {expiration}")]
    TokenExpired {
        /// The token id.
        id: String,
        /// Its `expiration`, as stored.
        expiration: String,
    },
}

/// Why a join is refused, as kubeadm would refuse it: the token must exist in the cluster,
/// match, and not be expired; the CA the server presents must match a pinned hash.
pub async fn check_join(
    w: &Workload,
    token: &str,
    ca_cert_hashes: &[String],
) -> Result<Result<(), JoinRefused>, ProviderError> {
    if !ca_cert_hashes.iter().any(|h| h == &w.ca_hash) {
        return Ok(Err(JoinRefused::CaCertHash {
            ca_hash: w.ca_hash.clone(),
        }));
    }
    let Some((id, secret)) = token.split_once('.') else {
        return Ok(Err(JoinRefused::MalformedToken));
    };
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), "kube-system");
    let Some(s) = secrets
        .get_opt(&format!("bootstrap-token-{id}"))
        .await
        .map_err(kube_err("reading the bootstrap token"))?
    else {
        return Ok(Err(JoinRefused::UnknownToken { id: id.into() }));
    };
    let data = s.data.unwrap_or_default();
    let get = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    };
    if get("token-secret").as_deref() != Some(secret) {
        return Ok(Err(JoinRefused::TokenMismatch { id: id.into() }));
    }
    if let Some(exp) = get("expiration")
        && exp
            .parse::<jiff::Timestamp>()
            .is_ok_and(|t| t <= jiff::Timestamp::now())
    {
        return Ok(Err(JoinRefused::TokenExpired {
            id: id.into(),
            expiration: exp,
        }));
    }
    Ok(Ok(()))
}

/// Registers (or refreshes) the Node a kubelet would: providerID, role label, addresses,
/// kubelet version and a Ready condition.
pub async fn register_node(
    w: &Workload,
    name: &str,
    provider_id: &str,
    control_plane: bool,
    version: &str,
    address: &str,
) -> Result<(), ProviderError> {
    let nodes: Api<Node> = Api::all(w.client.clone());
    let mut labels = json!({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"});
    if control_plane {
        labels["node-role.kubernetes.io/control-plane"] = json!("");
    }
    let taints = if control_plane {
        json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
    } else {
        json!([])
    };
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"providerID": provider_id, "taints": taints},
    }))
    .expect("valid Node");
    create_once(&nodes, &node).await?;
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
        "nodeInfo": {"kubeletVersion": version, "kubeProxyVersion": version, "containerRuntimeVersion": "in-memory://1.0",
                     "operatingSystem": "linux", "architecture": "amd64", "osImage": "slipway in-memory",
                     "kernelVersion": "0.0.0", "machineID": name, "systemUUID": name, "bootID": name},
        "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "20Gi"},
        "allocatable": {"cpu": "2", "memory": "3840Mi", "pods": "110", "ephemeral-storage": "18Gi"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kubelet is posting ready status (simulated)",
                        "lastHeartbeatTime": now, "lastTransitionTime": now}]
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(kube_err("node status"))?;
    if control_plane {
        crate::pods::control_plane(w, name, version, address).await?;
    }
    Ok(())
}
