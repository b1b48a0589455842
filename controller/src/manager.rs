//! Runs the controllers: one kube-runtime Controller per reconciled kind, with watches that map
//! related objects (infrastructure objects, control planes, machines) back to what owns them.

use std::{path::PathBuf, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{NamespaceResourceScope, api::core::v1::Secret};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        Controller,
        controller::{Action, Config},
        reflector::ObjectRef,
        watcher,
    },
};
use serde::de::DeserializeOwned;
use slipway_api::{
    AWSCluster, AWSMachine, AWSManagedCluster, AWSManagedControlPlane, Cluster, InMemoryCluster,
    InMemoryMachine, KindCluster, KindMachine, KubeadmConfig, KubeadmControlPlane, Machine,
    MachineDeployment, MachineSet, names::labels,
};
use slipway_providers::{
    InfrastructureProvider,
    inmemory::InMemory,
    kind::{Kind, cli::Tools},
};

use crate::{
    Context, Error, cluster,
    infra_cluster::{self, InfraContext, InfraObject},
    infra_machine, kcp, kubeadm_config, machine, machine_deployment, machine_set, metrics,
};

/// How the manager runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where the in-memory provider keeps its simulated machines and workload clusters.
    pub data_dir: PathBuf,
    /// Only reconcile objects of this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
    /// Concurrent reconciles per kind.
    pub concurrency: u16,
    /// Registry sinks.
    pub registry: crate::registry::Options,
    /// Period of the registry's health probes.
    pub probe_interval: Duration,
    /// Timeout of one health probe.
    pub probe_timeout: Duration,
    /// Where the kind provider finds `kind` and `docker`.
    pub kind_tools: Tools,
    /// Providers built outside this crate (AWS lives in its own crate, so that the SDK is
    /// compiled and linked only into the binary).
    pub extra_providers: Vec<ExtraProvider>,
}

/// A provider whose controllers run beside the built-in ones: given a [`ProviderRunner`], it
/// returns the future of its controllers (`runner.run(provider)`).
#[derive(Clone)]
pub struct ExtraProvider(
    pub Arc<dyn Fn(ProviderRunner) -> futures::future::BoxFuture<'static, ()> + Send + Sync>,
);

impl std::fmt::Debug for ExtraProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtraProvider")
    }
}

/// What an [`ExtraProvider`] runs its infrastructure controllers with.
#[derive(Clone)]
pub struct ProviderRunner {
    scope: Arc<Scope>,
    ctx: Arc<Context>,
}

impl ProviderRunner {
    /// The shared context (client, resolver, clock).
    pub fn context(&self) -> Arc<Context> {
        self.ctx.clone()
    }

    /// A controller of a control-plane kind `K` outside this crate (EKS): watched with the
    /// manager's settings, woken by changes of the Cluster that references it, with the
    /// manager's error policy, resync and metrics.
    pub async fn run_control_plane<K, C, F, Fut>(self, ctx: Arc<C>, reconcile: F)
    where
        K: InfraObject,
        C: Send + Sync + 'static,
        F: FnMut(Arc<K>, Arc<C>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
    {
        let mut reconcile = reconcile;
        let wc = watcher::Config::default();
        let kind = K::kind(&()).to_string();
        let s = Controller::new(self.scope.api::<K>(), wc.clone())
            .with_config(self.scope.config.clone())
            .watches(self.scope.api::<Cluster>(), wc, move |c: Cluster| {
                let ns = c.namespace().unwrap_or_default();
                c.spec
                    .control_plane_ref
                    .clone()
                    .filter(|r| r.kind == kind)
                    .map(|r| ObjectRef::new(&r.name).within(&ns))
            })
            .run(
                move |o, c| resync(metrics::timed("ControlPlane", reconcile(o, c))),
                |o, e, _| error_policy(o, e),
                ctx,
            );
        drain(Box::pin(s)).await;
    }

    /// A controller of kind `K` outside this crate that needs no watch but its own objects
    /// (it requeues while it waits on others), with the manager's settings, error policy,
    /// resync and metrics.
    pub async fn run_kind<K, C, F, Fut>(self, metric: &'static str, ctx: Arc<C>, reconcile: F)
    where
        K: InfraObject,
        C: Send + Sync + 'static,
        F: FnMut(Arc<K>, Arc<C>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
    {
        let mut reconcile = reconcile;
        let s = Controller::new(self.scope.api::<K>(), watcher::Config::default())
            .with_config(self.scope.config.clone())
            .run(
                move |o, c| resync(metrics::timed(metric, reconcile(o, c))),
                |o, e, _| error_policy(o, e),
                ctx,
            );
        drain(Box::pin(s)).await;
    }

    /// Only the infrastructure cluster controller of `provider` (a provider whose machines
    /// are not Machines, as EKS node groups).
    pub async fn run_clusters_only<P>(self, provider: P)
    where
        P: InfrastructureProvider,
        P::Cluster: InfraObject,
    {
        let ictx = Arc::new(InfraContext {
            base: self.ctx,
            provider,
        });
        infra_clusters::<P>(self.scope, ictx).await;
    }

    /// The infrastructure cluster and machine controllers of `provider`.
    pub async fn run<P>(self, provider: P)
    where
        P: InfrastructureProvider,
        P::Cluster: InfraObject,
        P::Machine: InfraObject,
    {
        let ictx = Arc::new(InfraContext {
            base: self.ctx,
            provider,
        });
        futures::join!(
            infra_clusters::<P>(self.scope.clone(), ictx.clone()),
            infra_machines::<P>(self.scope, ictx),
        );
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            data_dir: std::env::temp_dir().join("slipway-in-memory"),
            namespace: None,
            concurrency: 8,
            registry: Default::default(),
            probe_interval: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(3),
            kind_tools: Tools::default(),
            extra_providers: Vec::new(),
        }
    }
}

/// A client of the management cluster whose requests are rate-limited to `qps` on average,
/// with bursts of up to `burst` (`qps` 0 turns the limit off).
pub fn client(config: kube::Config, qps: f64, burst: u32) -> Result<Client, kube::Error> {
    let builder = kube::client::ClientBuilder::try_from(config)?;
    if qps <= 0.0 {
        return Ok(builder.build());
    }
    let burst = burst.max(1);
    let per = Duration::from_secs_f64(f64::from(burst) / qps);
    Ok(builder
        .with_layer(&tower::limit::RateLimitLayer::new(u64::from(burst), per))
        .build())
}

/// The Cluster owning an object, by owner reference.
fn owner_cluster<K: Resource>(obj: &K) -> Option<ObjectRef<Cluster>> {
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    infra_cluster::owner_cluster_name(obj).map(|name| ObjectRef::new(&name).within(&ns))
}

/// The Cluster owning an object, or (its owner reference removed) the one its label names.
fn cluster_of<K: Resource>(obj: &K) -> Option<ObjectRef<Cluster>> {
    owner_cluster(obj).or_else(|| labelled_cluster(obj))
}

/// The Machine owning an object, or (its owner reference removed) the Machine of the same
/// name, which is how slipway names the objects it creates for a Machine.
fn machine_of<K: Resource>(obj: &K) -> Option<ObjectRef<Machine>> {
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    let name = infra_machine::owner_machine_name(obj).or_else(|| obj.meta().name.clone())?;
    Some(ObjectRef::new(&name).within(&ns))
}

/// The Cluster named by the cluster-name label.
fn labelled_cluster<K: Resource>(obj: &K) -> Option<ObjectRef<Cluster>> {
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    obj.labels()
        .get(labels::CLUSTER_NAME)
        .map(|n| ObjectRef::new(n).within(&ns))
}

/// Where and how controllers run.
pub struct Scope {
    client: Client,
    namespace: Option<String>,
    config: Config,
}

impl Scope {
    fn api<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + DeserializeOwned,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }
}

/// Runs every controller until the future is dropped.
pub async fn run(client: Client, opts: Options) {
    let ctx = Arc::new(Context::new(client.clone()));
    let in_memory = Arc::new(InfraContext {
        base: ctx.clone(),
        provider: InMemory::new(opts.data_dir.join("in-memory")),
    });
    let kind = Arc::new(InfraContext {
        base: ctx.clone(),
        provider: Kind::new(opts.data_dir.join("kind"), opts.kind_tools.clone()),
    });
    let scope = Arc::new(Scope {
        client,
        namespace: opts.namespace.clone(),
        config: Config::default().concurrency(opts.concurrency),
    });
    let extra = futures::future::join_all(opts.extra_providers.iter().map(|p| {
        (p.0)(ProviderRunner {
            scope: scope.clone(),
            ctx: ctx.clone(),
        })
    }));
    futures::join!(
        extra,
        clusters(scope.clone(), ctx.clone()),
        infra_clusters::<InMemory>(scope.clone(), in_memory.clone()),
        infra_machines::<InMemory>(scope.clone(), in_memory),
        infra_clusters::<Kind>(scope.clone(), kind.clone()),
        infra_machines::<Kind>(scope.clone(), kind),
        control_planes(scope.clone(), ctx.clone()),
        kubeadm_configs(scope.clone(), ctx.clone()),
        machines(scope.clone(), ctx.clone()),
        machine_sets(scope.clone(), ctx.clone()),
        machine_deployments(scope.clone(), ctx.clone()),
        registry(scope, ctx, &opts),
    );
}

/// How the process around the manager behaves.
#[derive(Clone, Debug, Default)]
pub struct Process {
    /// Where to serve /metrics, /healthz and /readyz (`None`: not served).
    pub metrics_address: Option<std::net::SocketAddr>,
    /// Leader election (`None`: this process always reconciles).
    pub leader: Option<crate::leader::Config>,
}

/// Runs the manager inside the process concerns: the operations endpoint, leader election
/// (standing by until elected; an error when leadership is lost, so the process exits and
/// restarts clean) and graceful shutdown (`shutdown` resolving stops the controllers and
/// releases the Lease).
pub async fn run_process(
    client: Client,
    opts: Options,
    process: Process,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let ready = crate::ops::Readiness::default();
    let ops = match process.metrics_address {
        Some(addr) => Some(crate::ops::serve(addr, ready.clone()).await?),
        None => None,
    };
    ready.set();
    let result = {
        let work = async {
            if let Some(cfg) = &process.leader {
                crate::leader::acquire(&client, cfg).await;
                tokio::select! {
                    _ = run(client.clone(), opts) => Ok(()),
                    why = crate::leader::keep(&client, cfg) => Err(format!("lost leadership: {why}")),
                }
            } else {
                run(client.clone(), opts).await;
                Ok(())
            }
        };
        tokio::select! {
            r = work => r,
            _ = shutdown => Ok(()),
        }
    };
    if let Some(cfg) = &process.leader {
        crate::leader::release(&client, cfg).await;
    }
    if let Some(ops) = ops {
        ops.abort();
    }
    result
}

/// How often an object at rest is reconciled again anyway (upstream's sync period), so a
/// trigger lost under load delays an object by at most this much instead of forever.
/// Jittered so resyncs do not arrive together. A reconcile at rest writes nothing.
pub const SYNC_PERIOD: Duration = Duration::from_secs(600);

async fn resync<E>(f: impl std::future::Future<Output = Result<Action, E>>) -> Result<Action, E> {
    let a = f.await?;
    Ok(if a == Action::await_change() {
        let jitter = rand::random::<u64>() % (SYNC_PERIOD.as_secs() / 5);
        Action::requeue(SYNC_PERIOD + Duration::from_secs(jitter))
    } else {
        a
    })
}

/// Requeue policy of every controller: a deletion that is waiting retries soon and quietly;
/// other failures are logged and retried soon when transient, slowly otherwise.
fn error_policy<K: ResourceExt>(obj: Arc<K>, error: &Error) -> Action {
    if let Error::Finalizer(inner) = error
        && let kube::runtime::finalizer::Error::CleanupFailed(Error::Waiting(why)) = inner.as_ref()
    {
        tracing::debug!(name = %obj.name_any(), %why, "deletion waiting");
        return Action::requeue(Duration::from_secs(1));
    }
    if is_conflict(error) {
        // Another writer got there first (a stale cache, two controllers on one object): the
        // retry reads the new version. Routine, not worth a warning.
        tracing::debug!(name = %obj.name_any(), %error, "conflict; retrying");
        return Action::requeue(Duration::from_millis(500));
    }
    tracing::warn!(name = %obj.name_any(), %error, "reconcile failed");
    Action::requeue(if error.is_transient() {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(30)
    })
}

/// A write lost to a concurrent one: 409 Conflict, or the finalizer helper's JSON-patch
/// `test` failing because the finalizers changed underneath it.
fn is_conflict(error: &Error) -> bool {
    let api = |e: &kube::Error| match e {
        kube::Error::Api(s) => {
            s.code == 409 || (s.code == 422 && s.message.contains("did not match"))
        }
        _ => false,
    };
    match error {
        Error::Kube(e) => api(e),
        Error::Finalizer(inner) => match inner.as_ref() {
            kube::runtime::finalizer::Error::AddFinalizer(e)
            | kube::runtime::finalizer::Error::RemoveFinalizer(e) => api(e),
            kube::runtime::finalizer::Error::ApplyFailed(Error::Kube(e))
            | kube::runtime::finalizer::Error::CleanupFailed(Error::Kube(e)) => api(e),
            _ => false,
        },
        _ => false,
    }
}

async fn drain<S: futures::Stream + Unpin>(s: S) {
    s.for_each(|_| futures::future::ready(())).await;
}

async fn infra_clusters<P>(scope: Arc<Scope>, ctx: Arc<InfraContext<P>>)
where
    P: InfrastructureProvider,
    P::Cluster: InfraObject,
{
    let wc = watcher::Config::default();
    let kind = P::Cluster::kind(&()).to_string();
    let s = Controller::new(scope.api::<P::Cluster>(), wc.clone())
        .with_config(scope.config.clone())
        .watches(scope.api::<Cluster>(), wc, move |c: Cluster| {
            // A Cluster's changes (pause, its infrastructureRef) reach its infrastructure cluster.
            let ns = c.namespace().unwrap_or_default();
            c.spec
                .infrastructure_ref
                .clone()
                .filter(|r| r.kind == kind)
                .map(|r| ObjectRef::new(&r.name).within(&ns))
        })
        .run(
            |o, c| {
                resync(metrics::timed(
                    "InfrastructureCluster",
                    infra_cluster::reconcile::<P>(o, c),
                ))
            },
            |o, e, _| error_policy(o, e),
            ctx,
        );
    drain(Box::pin(s)).await;
}

async fn infra_machines<P>(scope: Arc<Scope>, ctx: Arc<InfraContext<P>>)
where
    P: InfrastructureProvider,
    P::Cluster: InfraObject,
    P::Machine: InfraObject,
{
    let wc = watcher::Config::default();
    let kind = P::Machine::kind(&()).to_string();
    let s = Controller::new(scope.api::<P::Machine>(), wc.clone())
        .with_config(scope.config.clone())
        .watches(scope.api::<Machine>(), wc, move |m: Machine| {
            // The Machine's bootstrap data and pause reach its infrastructure machine.
            let ns = m.namespace().unwrap_or_default();
            (m.spec.infrastructure_ref.kind == kind)
                .then(|| ObjectRef::new(&m.spec.infrastructure_ref.name).within(&ns))
        })
        .run(
            |o, c| {
                resync(metrics::timed(
                    "InfrastructureMachine",
                    infra_machine::reconcile::<P>(o, c),
                ))
            },
            |o, e, _| error_policy(o, e),
            ctx,
        );
    drain(Box::pin(s)).await;
}

async fn control_planes(scope: Arc<Scope>, ctx: Arc<Context>) {
    let wc = watcher::Config::default();
    let s = Controller::new(scope.api::<KubeadmControlPlane>(), wc.clone())
        .with_config(scope.config.clone())
        .owns(scope.api::<Secret>(), wc.clone())
        .owns(scope.api::<Machine>(), wc.clone())
        .watches(scope.api::<Cluster>(), wc, |c: Cluster| {
            // The endpoint, initialization and pause of a Cluster reach its control plane.
            let ns = c.namespace().unwrap_or_default();
            c.spec
                .control_plane_ref
                .clone()
                .map(|r| ObjectRef::new(&r.name).within(&ns))
        })
        .run(
            |o, c| resync(metrics::timed("KubeadmControlPlane", kcp::reconcile(o, c))),
            |o, e, _| error_policy(o, e),
            ctx,
        );
    drain(Box::pin(s)).await;
}

async fn kubeadm_configs(scope: Arc<Scope>, ctx: Arc<Context>) {
    let wc = watcher::Config::default();
    let s = Controller::new(scope.api::<KubeadmConfig>(), wc.clone())
        .with_config(scope.config.clone())
        .watches(scope.api::<Machine>(), wc, |m: Machine| {
            let ns = m.namespace().unwrap_or_default();
            m.spec
                .bootstrap
                .config_ref
                .filter(|r| r.kind == "KubeadmConfig")
                .map(|r| ObjectRef::new(&r.name).within(&ns))
        })
        .run(
            |o, c| {
                resync(metrics::timed(
                    "KubeadmConfig",
                    kubeadm_config::reconcile(o, c),
                ))
            },
            |o, e, _| error_policy(o, e),
            ctx,
        );
    drain(Box::pin(s)).await;
}

async fn machines(scope: Arc<Scope>, ctx: Arc<Context>) {
    let wc = watcher::Config::default();
    let s = Controller::new(scope.api::<Machine>(), wc.clone())
        .with_config(scope.config.clone())
        .watches(scope.api::<InMemoryMachine>(), wc.clone(), |o| {
            machine_of(&o)
        })
        .watches(scope.api::<KindMachine>(), wc.clone(), |o| machine_of(&o))
        .watches(scope.api::<AWSMachine>(), wc.clone(), |o| machine_of(&o))
        .watches(scope.api::<KubeadmConfig>(), wc, |o| machine_of(&o))
        .run(
            |o, c| resync(metrics::timed("Machine", machine::reconcile(o, c))),
            |o, e, _| error_policy(o, e),
            ctx,
        );
    drain(Box::pin(s)).await;
}

async fn machine_sets(scope: Arc<Scope>, ctx: Arc<Context>) {
    let wc = watcher::Config::default();
    let s = Controller::new(scope.api::<MachineSet>(), wc.clone())
        .with_config(scope.config.clone())
        .owns(scope.api::<Machine>(), wc)
        .run(
            |o, c| resync(metrics::timed("MachineSet", machine_set::reconcile(o, c))),
            |o, e, _| error_policy(o, e),
            ctx,
        );
    drain(Box::pin(s)).await;
}

async fn machine_deployments(scope: Arc<Scope>, ctx: Arc<Context>) {
    let wc = watcher::Config::default();
    let s = Controller::new(scope.api::<MachineDeployment>(), wc.clone())
        .with_config(scope.config.clone())
        .owns(scope.api::<MachineSet>(), wc)
        .run(
            |o, c| {
                resync(metrics::timed(
                    "MachineDeployment",
                    machine_deployment::reconcile(o, c),
                ))
            },
            |o, e, _| error_policy(o, e),
            ctx,
        );
    drain(Box::pin(s)).await;
}

async fn registry(scope: Arc<Scope>, ctx: Arc<Context>, opts: &Options) {
    let prober = Arc::new(crate::health::Prober::new(
        opts.probe_interval,
        opts.probe_timeout,
    ));
    let (wake, woken) = futures::channel::mpsc::channel(1024);
    let rctx = Arc::new(crate::registry::RegistryContext {
        base: ctx.clone(),
        options: opts.registry.clone(),
        prober: prober.clone(),
    });
    let s = Controller::new(scope.api::<Cluster>(), watcher::Config::default())
        .with_config(scope.config.clone())
        .reconcile_on(woken)
        .run(
            |c, ctx| {
                resync(metrics::timed(
                    "Registry",
                    crate::registry::reconcile(c, ctx),
                ))
            },
            |o, e, _| error_policy(o, e),
            rctx,
        );
    futures::join!(drain(Box::pin(s)), crate::health::run(prober, ctx, wake));
}

async fn clusters(scope: Arc<Scope>, ctx: Arc<Context>) {
    let wc = watcher::Config::default();
    let s = Controller::new(scope.api::<Cluster>(), wc.clone())
        .with_config(scope.config.clone())
        .watches(scope.api::<InMemoryCluster>(), wc.clone(), |o| {
            cluster_of(&o)
        })
        .watches(scope.api::<KindCluster>(), wc.clone(), |o| cluster_of(&o))
        .watches(scope.api::<AWSCluster>(), wc.clone(), |o| cluster_of(&o))
        .watches(scope.api::<AWSManagedCluster>(), wc.clone(), |o| {
            cluster_of(&o)
        })
        .watches(scope.api::<KubeadmControlPlane>(), wc.clone(), |o| {
            cluster_of(&o)
        })
        .watches(scope.api::<AWSManagedControlPlane>(), wc.clone(), |o| {
            cluster_of(&o)
        })
        .watches(scope.api::<MachineDeployment>(), wc.clone(), |o| {
            labelled_cluster(&o)
        })
        .watches(scope.api::<MachineSet>(), wc.clone(), |o| {
            labelled_cluster(&o)
        })
        .watches(scope.api::<Machine>(), wc, |o| labelled_cluster(&o))
        .run(
            |o, c| resync(metrics::timed("Cluster", cluster::reconcile(o, c))),
            |o, e, _| error_policy(o, e),
            ctx,
        );
    drain(Box::pin(s)).await;
}
