//! The infrastructure provider contract: the [`InfrastructureProvider`] trait, its outcomes and
//! [`ProviderError`]; the generic reconcilers that drive any provider ([`infra`]); and the
//! [`Plugin`] through which a provider crate (`providers/<name>/`) registers its CRDs, kinds,
//! `generate cluster` flavors and controllers.
//!
//! A provider turns a provider object (e.g. an AWSCluster) into real infrastructure and reports
//! what it made. It never writes Kubernetes status: the generic reconcilers in `controller` do,
//! from the outcome the provider returns. Every call is idempotent: it first looks for what it
//! may already have made (deterministic names, ownership tags), so a crash at any point and a
//! re-run never duplicates or leaks a resource.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
pub mod flavor;
pub mod infra;
mod outcome;
mod plugin;

use std::{future::Future, sync::Arc};

pub use error::ProviderError;
pub use outcome::{
    BootstrapData, BootstrapFormat, ClusterOutcome, ClusterReady, Deletion, MachineOutcome,
    MachineReady, Progress, ProvidedKubeconfig,
};
pub use plugin::{Plugin, Plugins, ProvidedKind, Role, Settings};
use slipway_api::{cluster::Cluster, machine::Machine};

/// What a provider sees when reconciling its infrastructure cluster.
#[derive(Clone, Debug)]
pub struct ClusterScope<C> {
    /// The owning Cluster API Cluster.
    pub cluster: Arc<Cluster>,
    /// The provider's cluster object, e.g. an AWSCluster.
    pub infra: Arc<C>,
    /// The Cluster's machine shape, read through the contract fields; filled only for
    /// providers that ask for it ([`InfrastructureProvider::NEEDS_TOPOLOGY`]).
    pub topology: Option<Topology>,
    /// The time of this reconcile by the context's clock: providers measure delays and
    /// deadlines against it, never the wall clock, so tests can step time.
    pub now: jiff::Timestamp,
}

/// The machines a Cluster asks for, read from its control plane (`spec.replicas`,
/// `spec.version`) and its MachineDeployments. Providers that build a whole cluster in one
/// call (kind) size it from this.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Topology {
    /// The control-plane machines.
    pub control_plane: Pool,
    /// One pool per MachineDeployment, sorted by name.
    pub workers: Vec<Pool>,
}

/// A group of alike machines.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pool {
    /// Name of the control plane or MachineDeployment.
    pub name: String,
    /// Desired machines.
    pub replicas: u32,
    /// Kubernetes version of the machines (`v1.x.y`), if set.
    pub version: Option<String>,
    /// `spec.template.spec` of the pool's infrastructure machine template (`null` if absent).
    pub machine_template: serde_json::Value,
}

/// What a provider sees when reconciling one infrastructure machine.
#[derive(Clone, Debug)]
pub struct MachineScope<C, M> {
    /// The owning Cluster API Cluster.
    pub cluster: Arc<Cluster>,
    /// The provider's cluster object of that Cluster.
    pub infra_cluster: Arc<C>,
    /// The owning Machine.
    pub machine: Arc<Machine>,
    /// The provider's machine object, e.g. an AWSMachine.
    pub infra: Arc<M>,
    /// The time of this reconcile by the context's clock (see [`ClusterScope::now`]).
    pub now: jiff::Timestamp,
}

impl<C, M> MachineScope<C, M> {
    /// Whether the Machine is a control-plane machine (label `cluster.x-k8s.io/control-plane`).
    pub fn is_control_plane(&self) -> bool {
        self.machine
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(slipway_api::names::labels::CONTROL_PLANE))
    }
}

/// An infrastructure provider. Associated types name its cluster and machine kinds; the generic
/// reconcilers read and write those through the contract fields.
pub trait InfrastructureProvider: Send + Sync + 'static {
    /// Infrastructure cluster kind, e.g. AWSCluster.
    type Cluster: Send + Sync + 'static;
    /// Infrastructure machine kind, e.g. AWSMachine.
    type Machine: Send + Sync + 'static;

    /// Finalizer the generic reconcilers put on the provider's cluster objects.
    const CLUSTER_FINALIZER: &'static str;
    /// Finalizer the generic reconcilers put on the provider's machine objects.
    const MACHINE_FINALIZER: &'static str;

    /// Whether [`ClusterScope::topology`] must be filled: costs reads of the control plane,
    /// the MachineDeployments and their templates on every cluster reconcile.
    const NEEDS_TOPOLOGY: bool = false;

    /// How often a Ready infrastructure cluster is looked at again (`None`: only on change).
    /// Providers whose infrastructure is sized from the topology recheck it, since a change of
    /// a MachineDeployment is no event of the infrastructure cluster.
    const READY_RECHECK: Option<std::time::Duration> = None;

    /// [`Self::READY_RECHECK`] of this provider value: a provider whose period is a setting
    /// (the AWS provider's drift resync) overrides it.
    fn ready_recheck(&self) -> Option<std::time::Duration> {
        Self::READY_RECHECK
    }

    /// Short provider name for conditions, metrics and logs (`aws`, `kind`, `in-memory`).
    fn name(&self) -> &'static str;

    /// Creates or adopts the cluster infrastructure; reports progress or readiness.
    fn reconcile_cluster(
        &self,
        scope: &ClusterScope<Self::Cluster>,
    ) -> impl Future<Output = Result<ClusterOutcome, ProviderError>> + Send;

    /// Tears the cluster infrastructure down; `Gone` only once nothing is left.
    fn delete_cluster(
        &self,
        scope: &ClusterScope<Self::Cluster>,
    ) -> impl Future<Output = Result<Deletion, ProviderError>> + Send;

    /// Creates or adopts one machine from its bootstrap data; reports progress or readiness.
    fn reconcile_machine(
        &self,
        scope: &MachineScope<Self::Cluster, Self::Machine>,
        bootstrap: &BootstrapData,
    ) -> impl Future<Output = Result<MachineOutcome, ProviderError>> + Send;

    /// Deletes one machine; `Gone` only once it is really gone.
    fn delete_machine(
        &self,
        scope: &MachineScope<Self::Cluster, Self::Machine>,
    ) -> impl Future<Output = Result<Deletion, ProviderError>> + Send;
}
