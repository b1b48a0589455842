//! slipway's controllers, and the pure pieces they stand on: the cluster generator
//! (`slipway generate cluster`), kubeadm bootstrap (PKI, kubeadm configuration, cloud-init),
//! conditions and planning.
//!
//! Reconcilers so far: Cluster ([`cluster`]). [`manager::run`] runs them against a client.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bench;
pub mod bootstrap;
pub mod cluster;
pub mod clusterctl;
pub mod conditions;
pub mod generate;
pub mod health;
pub mod infra_cluster;
pub mod infra_machine;
pub mod infra_topology;
pub mod kcp;
pub mod kcp_machines;
pub mod kubeadm_config;
pub mod kubefed;
pub mod leader;
pub mod machine;
pub mod machine_deployment;
pub mod machine_set;
pub mod manager;
pub mod metrics;
pub mod objects;
pub mod ops;
pub mod plan;
pub mod refs;
pub mod registry;
pub mod remote;

use jiff::Timestamp;
use kube::Client;

/// What every reconciler shares.
pub struct Context {
    /// Client of the management cluster.
    pub client: Client,
    /// Resolver of contract references.
    pub resolver: refs::Resolver,
    /// The clock (injected so tests compare exact times).
    pub clock: Box<dyn Fn() -> Timestamp + Send + Sync>,
    /// Clients of workload clusters.
    pub remote: remote::Remote,
}

impl Context {
    /// A context with the system clock.
    pub fn new(client: Client) -> Self {
        Self {
            resolver: refs::Resolver::new(client.clone()),
            client,
            clock: Box::new(Timestamp::now),
            remote: remote::Remote::default(),
        }
    }
}

/// Reconciler errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("kube: {0}")]
    Kube(#[from] kube::Error),
    /// Adding or removing a finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// A reference cannot be followed (its kind is not served, no contract label, ...).
    #[error("{0}")]
    Contract(String),
    /// Deletion is waiting for something to go (a cleanup that returned `Ok` would let the
    /// finalizer go, so waiting is an error that requeues soon).
    #[error("waiting: {0}")]
    Waiting(String),
}

impl Error {
    /// Whether a retry soon may succeed (API errors other than invalid requests).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Kube(kube::Error::Api(s)) => !matches!(s.code, 400 | 403 | 404 | 422),
            Self::Kube(_) => true,
            Self::Finalizer(_) => true,
            Self::Contract(_) => false,
            Self::Waiting(_) => true,
        }
    }
}
