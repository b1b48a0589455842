//! Runs the controllers: one kube-runtime controller per core kind, with watches that map
//! related objects (infrastructure objects, control planes, machines) back to what owns them,
//! beside every provider's controllers ([`slipway_providers::Plugin::run`]) and the registry.
//! Provider kinds are watched by their [`ApiResource`] from the plugins, so this module names
//! no provider.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Client, ResourceExt,
    api::{ApiResource, DynamicObject},
    runtime::{Controller, reflector::ObjectRef, watcher},
};
use slipway_api::{
    Cluster, ClusterClass, ClusterResourceSet, KubeadmConfig, KubeadmControlPlane, Machine,
    MachineDeployment, MachineHealthCheck, MachineSet, names::labels,
};
use slipway_providers::{Plugins, Role, Settings};
use slipway_runtime::{
    Context,
    reconcile::is_paused,
    runner::{Runner, Watched, cluster_of, labelled_cluster, machine_of},
};

use crate::{
    addons, cluster, kcp, kubeadm_config, machine, machine_deployment, machine_pool, machine_set,
    mhc,
};

/// How the manager runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where providers keep their state (`<data_dir>/<provider name>`).
    pub data_dir: PathBuf,
    /// Only reconcile objects of this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
    /// Concurrent reconciles per kind.
    pub concurrency: u16,
    /// Registry sinks and health probes (its provider names are filled from the plugins).
    pub registry: slipway_registry::Options,
    /// Only reconcile objects labelled `cluster.x-k8s.io/watch-filter=<value>` (a shard).
    pub watch_filter: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            data_dir: std::env::temp_dir().join("slipway-in-memory"),
            namespace: None,
            concurrency: 8,
            registry: Default::default(),
            watch_filter: None,
        }
    }
}

/// Runs every controller, core and providers', until the future is dropped.
pub async fn run(client: Client, opts: Options, plugins: Plugins) {
    run_with(Arc::new(Context::new(client)), opts, plugins).await;
}

/// Like [`run`], with a given context (a test's clock).
pub async fn run_with(ctx: Arc<Context>, opts: Options, plugins: Plugins) {
    let runner = Runner::new(ctx, opts.namespace.clone(), opts.concurrency)
        .with_watch_filter(opts.watch_filter.clone());
    let providers = futures::future::join_all(plugins.iter().map(|p| {
        p.run(
            runner.clone(),
            Settings {
                data_dir: opts.data_dir.join(p.name()),
            },
        )
    }));
    let mut registry = opts.registry.clone();
    registry.provider_names = plugins.registry_names();
    futures::join!(
        providers,
        clusters(&runner, &plugins),
        cluster_classes(&runner),
        control_planes(&runner),
        kubeadm_configs(&runner),
        machines(&runner, &plugins),
        machine_sets(&runner),
        machine_deployments(&runner),
        health_checks(&runner),
        cluster_resource_sets(&runner),
        machine_pools(&runner, &plugins),
        slipway_registry::run(&runner, registry),
    );
}

/// Adds a trigger watch on each provider kind of `role`, mapping its objects with `map`.
fn watch_provider_kinds<K, T>(
    runner: &Runner,
    mut c: Controller<K>,
    plugins: &Plugins,
    role: Role,
    map: fn(&DynamicObject) -> Option<ObjectRef<T>>,
) -> Controller<K>
where
    K: Watched,
    T: kube::Resource<DynamicType = ()> + Clone + 'static,
    ObjectRef<T>: Into<ObjectRef<K>>,
{
    for kind in plugins.kinds(role) {
        let ar: ApiResource = kind.resource;
        c = c.watches_with(
            runner.dynamic_api(&ar),
            ar,
            runner.trigger_config(),
            move |o: DynamicObject| map(&o).map(Into::into),
        );
    }
    c
}

async fn clusters(runner: &Runner, plugins: &Plugins) {
    let wc = || runner.trigger_config();
    let c = runner
        .controller::<Cluster>()
        .watches(runner.api::<KubeadmControlPlane>(), wc(), |o| {
            cluster_of(&o)
        })
        .watches(runner.api::<MachineDeployment>(), wc(), |o| {
            labelled_cluster(&o)
        })
        .watches(runner.api::<MachineSet>(), wc(), |o| labelled_cluster(&o))
        .watches(runner.api::<Machine>(), wc(), |o| labelled_cluster(&o));
    let c = watch_provider_kinds(runner, c, plugins, Role::InfrastructureCluster, cluster_of);
    let c = watch_provider_kinds(runner, c, plugins, Role::ControlPlane, cluster_of);
    // A ClusterClass change reaches every Cluster built from it (templates rotate).
    let store = c.store();
    // Unfiltered: a ClusterClass may serve Clusters of every shard.
    let c = c.watches(
        runner.api::<ClusterClass>(),
        watcher::Config::default(),
        move |cc: ClusterClass| {
            let (ns, name) = (cc.namespace(), cc.name_any());
            store
                .state()
                .into_iter()
                .filter(move |cl| {
                    cl.spec.topology.as_ref().is_some_and(|t| {
                        t.class_ref.name == name
                            && t.class_ref.namespace.clone().or(cl.namespace()) == ns
                    })
                })
                .map(|cl| ObjectRef::from_obj(cl.as_ref()))
        },
    );
    runner
        .run(c, "Cluster", runner.context(), cluster::reconcile)
        .await;
}

async fn cluster_classes(runner: &Runner) {
    let c = runner.controller::<ClusterClass>();
    runner
        .run(
            c,
            "ClusterClass",
            runner.context(),
            crate::topology::reconcile_class,
        )
        .await;
}

async fn control_planes(runner: &Runner) {
    let wc = || runner.trigger_config();
    let c = runner
        .controller::<KubeadmControlPlane>()
        .owns(runner.api::<Secret>(), wc())
        .owns(runner.api::<Machine>(), wc())
        .watches(runner.api::<Cluster>(), wc(), |c: Cluster| {
            // The endpoint, initialization and pause of a Cluster reach its control plane.
            let ns = c.namespace().unwrap_or_default();
            c.spec
                .control_plane_ref
                .clone()
                .map(|r| ObjectRef::new(&r.name).within(&ns))
        });
    runner
        .run(c, "KubeadmControlPlane", runner.context(), kcp::reconcile)
        .await;
}

async fn kubeadm_configs(runner: &Runner) {
    slipway_runtime::objects::register_finalizer(
        "bootstrap.cluster.x-k8s.io",
        "KubeadmConfig",
        slipway_api::names::finalizers::KUBEADM_CONFIG,
    );
    let c = runner.controller::<KubeadmConfig>().watches(
        runner.api::<Machine>(),
        runner.trigger_config(),
        |m: Machine| {
            let ns = m.namespace().unwrap_or_default();
            m.spec
                .bootstrap
                .config_ref
                .filter(|r| r.kind == "KubeadmConfig")
                .map(|r| ObjectRef::new(&r.name).within(&ns))
        },
    );
    runner
        .run(
            c,
            "KubeadmConfig",
            runner.context(),
            kubeadm_config::reconcile,
        )
        .await;
}

async fn machines(runner: &Runner, plugins: &Plugins) {
    let c = runner.controller::<Machine>().watches(
        runner.api::<KubeadmConfig>(),
        runner.trigger_config(),
        |o| machine_of(&o),
    );
    let c = watch_provider_kinds(runner, c, plugins, Role::InfrastructureMachine, machine_of);
    let c = on_cluster_pause(runner, c);
    // A new version or template of the owner makes its Machines not up to date at once.
    let store = c.store();
    let seen = Changes::default();
    let c = c.watches(
        runner.api::<KubeadmControlPlane>(),
        runner.trigger_config(),
        move |k: KubeadmControlPlane| {
            let owned = seen.changed(&k, k.metadata.generation.unwrap_or(0).to_string());
            let ns = k.namespace();
            let name = k.name_any();
            store
                .state()
                .into_iter()
                .filter(move |m| {
                    owned
                        && m.namespace() == ns
                        && m.labels().get(labels::CONTROL_PLANE_NAME) == Some(&name)
                })
                .map(|m| ObjectRef::from_obj(m.as_ref()))
        },
    );
    let store = c.store();
    let seen = Changes::default();
    let c = c.watches(
        runner.api::<MachineDeployment>(),
        runner.trigger_config(),
        move |md: MachineDeployment| {
            let changed = seen.changed(&md, md.metadata.generation.unwrap_or(0).to_string());
            let ns = md.namespace();
            let name = md.name_any();
            store
                .state()
                .into_iter()
                .filter(move |m| {
                    changed
                        && m.namespace() == ns
                        && m.labels().get(labels::MACHINE_DEPLOYMENT_NAME) == Some(&name)
                })
                .map(|m| ObjectRef::from_obj(m.as_ref()))
        },
    );
    runner
        .run(c, "Machine", runner.context(), machine::reconcile)
        .await;
}

/// Remembers a value per object and says when it changed (not when first seen: the first
/// reconcile of every object happens anyway).
#[derive(Clone, Default)]
struct Changes(Arc<Mutex<HashMap<String, String>>>);

impl Changes {
    fn changed<K: ResourceExt>(&self, obj: &K, value: String) -> bool {
        let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
        let before = self.0.lock().expect("changes").insert(key, value.clone());
        before.is_some_and(|b| b != value)
    }
}

/// Wakes every object of a Cluster (Machines, MachineSets, MachineDeployments) when the
/// Cluster's pause changes, so all of them show and leave `Paused` at once.
fn on_cluster_pause<K>(runner: &Runner, c: Controller<K>) -> Controller<K>
where
    K: slipway_runtime::runner::Watched + kube::Resource<DynamicType = ()>,
    K: HasClusterName,
{
    let store = c.store();
    let seen = Changes::default();
    c.watches(
        runner.api::<Cluster>(),
        runner.trigger_config(),
        move |cl: Cluster| {
            let paused = is_paused(&cl, &Default::default());
            let changed = seen.changed(&cl, paused.to_string());
            let ns = cl.namespace();
            let name = cl.name_any();
            store
                .state()
                .into_iter()
                .filter(move |o| changed && o.namespace() == ns && o.cluster_name() == name)
                .map(|o| ObjectRef::from_obj(o.as_ref()))
        },
    )
}

/// Objects that name their Cluster in `spec.clusterName`.
trait HasClusterName {
    fn cluster_name(&self) -> &str;
}

impl HasClusterName for Machine {
    fn cluster_name(&self) -> &str {
        &self.spec.cluster_name
    }
}

impl HasClusterName for MachineSet {
    fn cluster_name(&self) -> &str {
        &self.spec.cluster_name
    }
}

impl HasClusterName for MachineDeployment {
    fn cluster_name(&self) -> &str {
        &self.spec.cluster_name
    }
}

async fn machine_sets(runner: &Runner) {
    let c = runner
        .controller::<MachineSet>()
        .owns(runner.api::<Machine>(), runner.trigger_config());
    let c = on_cluster_pause(runner, c);
    runner
        .run(c, "MachineSet", runner.context(), machine_set::reconcile)
        .await;
}

async fn machine_deployments(runner: &Runner) {
    let c = runner
        .controller::<MachineDeployment>()
        .owns(runner.api::<MachineSet>(), runner.trigger_config());
    let c = on_cluster_pause(runner, c);
    runner
        .run(
            c,
            "MachineDeployment",
            runner.context(),
            machine_deployment::reconcile,
        )
        .await;
}

/// Health checks: woken by their Machines and their Cluster; the workload cluster's Nodes are
/// polled by the reconciler itself.
async fn health_checks(runner: &Runner) {
    let c = runner.controller::<MachineHealthCheck>();
    let store = c.store();
    let c = c.watches(
        runner.api::<Machine>(),
        runner.trigger_config(),
        move |m: Machine| {
            let ns = m.namespace();
            store
                .state()
                .into_iter()
                .filter(move |h| h.namespace() == ns && h.spec.cluster_name == m.spec.cluster_name)
                .map(|h| ObjectRef::from_obj(h.as_ref()))
        },
    );
    let store = c.store();
    let c = c.watches(
        runner.api::<Cluster>(),
        runner.trigger_config(),
        move |cl: Cluster| {
            let ns = cl.namespace();
            let name = cl.name_any();
            store
                .state()
                .into_iter()
                .filter(move |h| h.namespace() == ns && h.spec.cluster_name == name)
                .map(|h| ObjectRef::from_obj(h.as_ref()))
        },
    );
    runner
        .run(c, "MachineHealthCheck", runner.context(), mhc::reconcile)
        .await;
}

/// ClusterResourceSets wake on their Clusters (selection, control-plane initialization) and
/// on the ConfigMaps and Secrets they apply (`Reconcile` re-applies a changed one).
async fn cluster_resource_sets(runner: &Runner) {
    let c = runner.controller::<ClusterResourceSet>();
    let store = c.store();
    let c = c.watches(
        runner.api::<Cluster>(),
        runner.trigger_config(),
        move |cl: Cluster| {
            let ns = cl.namespace();
            store
                .state()
                .into_iter()
                .filter(move |s| s.namespace() == ns)
                .map(|s| ObjectRef::from_obj(s.as_ref()))
        },
    );
    // Unfiltered: the ConfigMaps and Secrets a ClusterResourceSet applies are the user's and
    // need not carry the watch-filter label.
    let store = c.store();
    let c = c.watches(
        runner.api::<ConfigMap>(),
        watcher::Config::default(),
        move |cm: ConfigMap| {
            let (ns, name) = (cm.namespace(), cm.name_any());
            store
                .state()
                .into_iter()
                .filter(move |s| s.namespace() == ns && addons::uses(s, "ConfigMap", &name))
                .map(|s| ObjectRef::from_obj(s.as_ref()))
        },
    );
    let store = c.store();
    let c = c.watches(
        runner.api::<Secret>(),
        watcher::Config::default(),
        move |sec: Secret| {
            let (ns, name) = (sec.namespace(), sec.name_any());
            store
                .state()
                .into_iter()
                .filter(move |s| s.namespace() == ns && addons::uses(s, "Secret", &name))
                .map(|s| ObjectRef::from_obj(s.as_ref()))
        },
    );
    runner
        .run(c, "ClusterResourceSet", runner.context(), addons::reconcile)
        .await;
}

/// The MachinePool owning an object, by owner reference.
fn pool_of<K: kube::Resource>(obj: &K) -> Option<ObjectRef<slipway_api::MachinePool>> {
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    slipway_runtime::objects::core_owner_name(obj, "MachinePool")
        .map(|n| ObjectRef::new(&n).within(&ns))
}

/// MachinePools wake on their bootstrap config and infrastructure pool (by owner reference).
async fn machine_pools(runner: &Runner, plugins: &Plugins) {
    let c = runner.controller::<slipway_api::MachinePool>().watches(
        runner.api::<KubeadmConfig>(),
        runner.trigger_config(),
        |o| pool_of(&o),
    );
    let c = watch_provider_kinds(
        runner,
        c,
        plugins,
        Role::InfrastructureMachinePool,
        pool_of::<DynamicObject>,
    );
    runner
        .run(c, "MachinePool", runner.context(), machine_pool::reconcile)
        .await;
}
