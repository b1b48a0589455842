//! How a provider crate plugs into slipway: one value implementing [`Plugin`], handed to the
//! binary's provider list. Through it the core learns the provider's CRDs (served by
//! `slipway up`, printed by `slipway crds`), its kinds by role (watched by the core
//! reconcilers through the contract, named in the registry), its `generate cluster` flavors,
//! and the controllers it runs. The core names no provider.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Resource, api::ApiResource};
use slipway_runtime::runner::Runner;

use crate::flavor::Infrastructure;

/// What a provider's kind is to the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// An infrastructure cluster (`Cluster.spec.infrastructureRef`).
    InfrastructureCluster,
    /// An infrastructure machine (`Machine.spec.infrastructureRef`).
    InfrastructureMachine,
    /// A control plane (`Cluster.spec.controlPlaneRef`).
    ControlPlane,
    /// An infrastructure machine pool (`MachinePool.spec.template.spec.infrastructureRef`).
    InfrastructureMachinePool,
}

/// One kind a provider serves and the core watches.
#[derive(Clone, Debug)]
pub struct ProvidedKind {
    /// Its role.
    pub role: Role,
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// The provider name the registry reports for clusters whose infrastructure cluster is of
    /// this kind (e.g. `aws-eks`); `None` for other roles.
    pub registry_name: Option<&'static str>,
}

impl ProvidedKind {
    /// The kind of the statically typed resource `K` in `role`.
    pub fn of<K: Resource<DynamicType = ()>>(
        role: Role,
        registry_name: Option<&'static str>,
    ) -> Self {
        Self {
            role,
            resource: ApiResource::erase::<K>(&()),
            registry_name,
        }
    }
}

/// Settings every provider receives from the process.
#[derive(Clone, Debug)]
pub struct Settings {
    /// A directory the provider may keep its state in (`<data dir>/<provider name>`).
    pub data_dir: std::path::PathBuf,
}

/// A provider crate's entry point.
pub trait Plugin: Send + Sync + 'static {
    /// Short name (`aws`, `kind`, `in-memory`), also the name of its data directory.
    fn name(&self) -> &'static str;

    /// The CRDs of its kinds.
    fn crds(&self) -> Vec<CustomResourceDefinition>;

    /// Its kinds the core watches, by role.
    fn kinds(&self) -> Vec<ProvidedKind>;

    /// Its `slipway generate cluster --infrastructure NAME` entries.
    fn infrastructures(&self) -> Vec<Infrastructure> {
        Vec::new()
    }

    /// The future of its controllers (usually [`crate::infra::run`] of its provider), run
    /// until dropped.
    fn run(&self, runner: Runner, settings: Settings) -> BoxFuture<'static, ()>;
}

/// The providers of a process, in the order the binary lists them.
#[derive(Clone, Default)]
pub struct Plugins(Vec<Arc<dyn Plugin>>);

impl Plugins {
    /// Adds a provider.
    pub fn with(mut self, plugin: impl Plugin) -> Self {
        self.0.push(Arc::new(plugin));
        self
    }

    /// Every provider.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Plugin>> {
        self.0.iter()
    }

    /// Every provider kind in `role`.
    pub fn kinds(&self, role: Role) -> Vec<ProvidedKind> {
        self.0
            .iter()
            .flat_map(|p| p.kinds())
            .filter(|k| k.role == role)
            .collect()
    }

    /// The provider name the registry reports, by infrastructure cluster kind.
    pub fn registry_names(&self) -> std::collections::BTreeMap<String, &'static str> {
        self.kinds(Role::InfrastructureCluster)
            .into_iter()
            .filter_map(|k| Some((k.resource.kind, k.registry_name?)))
            .collect()
    }

    /// Every provider's CRDs.
    pub fn crds(&self) -> Vec<CustomResourceDefinition> {
        self.0.iter().flat_map(|p| p.crds()).collect()
    }

    /// Every `generate cluster` infrastructure, in provider order.
    pub fn infrastructures(&self) -> Vec<Infrastructure> {
        self.0.iter().flat_map(|p| p.infrastructures()).collect()
    }
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|p| p.name()))
            .finish()
    }
}
