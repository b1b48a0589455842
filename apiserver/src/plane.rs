//! A complete management plane: store, PKI, token, server, kubeconfig, bootstrap namespaces and
//! CRDs. `slipway up` runs one on a data dir; tests run one in memory on port 0.
//!
//! Data dir layout: `state.db` (SQLite), `ca.crt`/`ca.key` (signs the serving certificate and
//! client certificates), `serving.crt`/`serving.key`, `token` (bearer token of the admin user,
//! `slipway-admin` in `system:masters`), `sa-signing.key` (signs service-account tokens) and
//! `kubeconfig`. The dir is 0700; the database (with its `-wal` and `-shm` files, or its
//! `-journal` with [`crate::store::Journal::OneFile`]), keys,
//! token and kubeconfig are 0600, and are made so at every start (a dir made by an older
//! slipway was world-readable). With an encryption key file, Secrets are encrypted at rest
//! (see [`crate::encryption`]).

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
};

use base64::Engine;
use rand::Rng;
use serde_json::{Value, json};

use crate::{
    api::{Api, Call, Part},
    request::{Query, Target},
    server::{self, Server},
    store::Store,
    tls::{self, CertKey},
};

/// Plane failures.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    /// Files in the data dir.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Storage.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// PKI.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The encryption key file is unusable.
    #[error(transparent)]
    Encryption(#[from] crate::encryption::EncryptionError),
    /// Authentication settings (token file, signing key).
    #[error(transparent)]
    Auth(#[from] crate::authz::AuthError),
    /// A bootstrap object was refused.
    #[error("bootstrapping {what}: {message}")]
    Bootstrap {
        /// Which object.
        what: String,
        /// The API error.
        message: String,
    },
}

impl PlaneError {
    /// Whether retrying may help (a port or file briefly busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Io { .. })
    }
}

/// What to start.
#[derive(Clone, Debug)]
pub struct Options {
    /// Data dir; `None` keeps everything in memory (certificates in a temp dir).
    pub data_dir: Option<PathBuf>,
    /// Address to listen on.
    pub address: IpAddr,
    /// Port; 0 picks a free one.
    pub port: u16,
    /// CRDs to install (created, or updated when they differ).
    pub crds: Vec<Value>,
    /// Simulated workload clusters: `/version` reports the lowest kubelet version of the
    /// control-plane Nodes (what their API servers would run) instead of slipway's own.
    pub version_from_nodes: bool,
    /// Key file for encrypting Secrets at rest (`--encryption-key-file`); only with a data dir.
    pub encryption_key_file: Option<PathBuf>,
    /// Authorization mode and static token file.
    pub auth: crate::authz::Options,
}

impl Default for Options {
    /// In memory, on 127.0.0.1, a free port, no CRDs, no encryption.
    fn default() -> Self {
        Self {
            data_dir: None,
            address: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            crds: Vec::new(),
            version_from_nodes: false,
            encryption_key_file: None,
            auth: Default::default(),
        }
    }
}

/// How a plane embedded by thousands in one process (a simulated workload cluster) saves
/// descriptors; the default is what `slipway up` runs.
#[derive(Clone, Default)]
pub struct Embedding {
    /// Serve through this shared listener (at [`Options::address`], on its port) instead of a
    /// listener of its own.
    pub listener: Option<Arc<crate::listener::Loopback>>,
    /// How SQLite journals commits (with a data dir).
    pub journal: crate::store::Journal,
}

/// Files of the data dir only their owner may read.
const PRIVATE_FILES: &[&str] = &[
    "state.db",
    "state.db-wal",
    "state.db-shm",
    "state.db-journal",
    "ca.key",
    "serving.key",
    "sa-signing.key",
    "token",
    "kubeconfig",
];

/// Makes `dir` 0700 and its private files that exist 0600.
fn restrict(dir: &Path) -> Result<(), PlaneError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    for f in PRIVATE_FILES {
        let p = dir.join(f);
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).map_err(io(&p))?;
        }
    }
    Ok(())
}

/// A running plane.
pub struct Plane {
    /// The server.
    pub server: Server,
    /// Path of the admin kubeconfig.
    pub kubeconfig_path: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: String,
    /// The CA (also trusted for client certificates).
    pub ca: CertKey,
    gc: tokio::task::JoinHandle<()>,
    disruption: tokio::task::JoinHandle<()>,
    aggregation: tokio::task::JoinHandle<()>,
    _temp: Option<TempDir>,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> PlaneError + '_ {
    move |source| PlaneError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Plane {
    /// Starts a plane.
    pub async fn start(opts: Options) -> Result<Self, PlaneError> {
        Self::start_with(opts, Embedding::default()).await
    }

    /// Starts a plane embedded as `embedding` says.
    pub async fn start_with(opts: Options, embedding: Embedding) -> Result<Self, PlaneError> {
        let (dir, temp) = match &opts.data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let d = std::env::temp_dir().join(format!(
                    "slipway-plane-{}-{}",
                    std::process::id(),
                    rand::rng().random::<u64>()
                ));
                (d.clone(), Some(TempDir(d)))
            }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let keys = match &opts.encryption_key_file {
            Some(path) => Some(Arc::new(crate::encryption::Keys::load(path)?)),
            None => None,
        };
        let store = match &opts.data_dir {
            Some(_) => {
                restrict(&dir)?;
                let db = dir.join("state.db");
                // Created 0600 here, so SQLite (which gives its -wal and -shm files the
                // database's mode) never makes a readable one.
                if !db.exists() {
                    tls::write_private(&db, b"").map_err(io(&db))?;
                }
                let store = Store::open_with(&db, keys, embedding.journal)?;
                restrict(&dir)?;
                store
            }
            None if keys.is_some() => {
                return Err(PlaneError::Encryption(
                    crate::encryption::EncryptionError::KeyFile {
                        path: opts
                            .encryption_key_file
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default(),
                        why: "encryption at rest needs a data dir (nothing is stored in memory)"
                            .into(),
                    },
                ));
            }
            None => Store::in_memory(),
        };
        let ca = tls::load_or_create(&dir, "ca", || tls::new_ca("slipway-ca"))?;
        let hosts = vec![
            opts.address.to_string(),
            "127.0.0.1".into(),
            "localhost".into(),
            "::1".into(),
        ];
        let serving = tls::load_or_create(&dir, "serving", || tls::serving_cert(&ca, &hosts))?;
        let token_path = dir.join("token");
        let token = match std::fs::read_to_string(&token_path) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let t: String = (0..32)
                    .map(|_| format!("{:02x}", rand::rng().random::<u8>()))
                    .collect();
                tls::write_private(&token_path, t.as_bytes()).map_err(io(&token_path))?;
                t
            }
        };
        let auth = crate::authz::Auth::new(
            opts.auth.mode,
            &token,
            opts.auth.token_file.as_deref(),
            &dir,
        )?;
        let api = Arc::new(Api::new(Arc::new(store)));
        bootstrap(&api, &opts.crds)?;
        crate::authz::defaults::ensure(&api).map_err(|e| PlaneError::Bootstrap {
            what: "default RBAC roles".into(),
            message: e.message,
        })?;
        let aggregation = crate::authz::aggregate::spawn(api.clone());
        let config = server::Config {
            listen: SocketAddr::new(opts.address, opts.port),
            serving,
            client_ca_pem: ca.cert_pem.clone(),
            auth: Arc::new(auth),
            version_from_nodes: opts.version_from_nodes,
        };
        let gc = crate::gc::spawn(api.clone());
        let disruption = crate::disruption::spawn(api.clone());
        let server = server::serve_on(api, config, embedding.listener.as_ref())
            .await
            .map_err(io(&dir))?;
        let kubeconfig = kubeconfig(&server.addr, &ca.cert_pem, &token);
        let kubeconfig_path = dir.join("kubeconfig");
        tls::write_private(&kubeconfig_path, kubeconfig.as_bytes())
            .map_err(io(&kubeconfig_path))?;
        Ok(Self {
            server,
            kubeconfig_path,
            kubeconfig,
            ca,
            gc,
            disruption,
            aggregation,
            _temp: temp,
        })
    }

    /// `https://host:port`.
    pub fn url(&self) -> String {
        format!("https://{}", self.server.addr)
    }

    /// Stops the server.
    pub async fn shutdown(self) {
        self.gc.abort();
        self.disruption.abort();
        self.aggregation.abort();
        self.server.shutdown().await;
    }
}

/// An admin kubeconfig for `addr` with a bearer token.
pub fn kubeconfig(addr: &SocketAddr, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: slipway\n  cluster:\n    server: https://{addr}\n    certificate-authority-data: {ca}\nusers:\n- name: slipway-admin\n  user:\n    token: {token}\ncontexts:\n- name: slipway\n  context:\n    cluster: slipway\n    user: slipway-admin\ncurrent-context: slipway\n"
    )
}

fn internal_call<'a>(
    api: &Api,
    group: &str,
    version: &str,
    plural: &str,
    target: &'a Target,
    query: &'a Query,
) -> Call<'a> {
    let res = api
        .catalog
        .find(group, version, plural)
        .expect("built-in resource");
    Call {
        res,
        target,
        query,
        default_manager: "slipway".into(),
    }
}

/// Creates the standard namespaces and installs (or updates) the CRDs.
fn bootstrap(api: &Api, crds: &[Value]) -> Result<(), PlaneError> {
    let query = Query::default();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let target = Target {
            group: String::new(),
            version: "v1".into(),
            namespace: None,
            plural: "namespaces".into(),
            name: None,
            sub: None,
        };
        let call = internal_call(api, "", "v1", "namespaces", &target, &query);
        match api.create(&call, json!({"metadata": {"name": ns}})) {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => {
                return Err(PlaneError::Bootstrap {
                    what: format!("namespace {ns}"),
                    message: e.message,
                });
            }
        }
    }
    for crd in crds {
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let target = Target {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            namespace: None,
            plural: "customresourcedefinitions".into(),
            name: None,
            sub: None,
        };
        let call = internal_call(
            api,
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            &target,
            &query,
        );
        let err = |e: crate::error::ApiError| PlaneError::Bootstrap {
            what: format!("CRD {name}"),
            message: e.message,
        };
        match api.get(&call, &name) {
            Err(_) => {
                api.create(&call, crd.clone()).map_err(err)?;
            }
            Ok(existing)
                if existing["spec"] != crd["spec"]
                    || existing["metadata"]["labels"] != crd["metadata"]["labels"] =>
            {
                let mut updated = crd.clone();
                updated["metadata"]["resourceVersion"] =
                    existing["metadata"]["resourceVersion"].clone();
                api.update(&call, &name, updated, Part::Main).map_err(err)?;
            }
            Ok(_) => {}
        }
    }
    Ok(())
}
