//! The controller runner: turns a reconcile function into a kube-runtime controller with the
//! process-wide settings (namespace, concurrency), one error policy, the resync period and the
//! reconcile metrics. Core reconcilers and provider crates run their controllers through it,
//! so every controller in the process behaves alike.

use std::{fmt::Debug, future::Future, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ApiResource, DynamicObject},
    runtime::{
        Controller,
        controller::{Action, Config},
        reflector::ObjectRef,
        watcher,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use slipway_api::{Cluster, Machine, names::labels};

use crate::{Context, Error, metrics, objects, stale};

/// Bounds a kind must meet to be run by the [`Runner`]: a namespaced custom resource with a
/// static type.
pub trait Watched:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
}
impl<
    T: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
        + Send
        + Sync
        + 'static,
> Watched for T
{
}

/// How often an object at rest is reconciled again anyway (upstream's sync period), so a
/// trigger lost under load delays an object by at most this much instead of forever.
/// Jittered so resyncs do not arrive together. A reconcile at rest writes nothing.
pub const SYNC_PERIOD: Duration = Duration::from_secs(600);

/// Where and how controllers run.
#[derive(Clone)]
pub struct Runner {
    ctx: Arc<Context>,
    namespace: Option<String>,
    config: Config,
    watch_filter: Option<String>,
}

impl Runner {
    /// A runner over the shared context, watching `namespace` (all when `None`) with
    /// `concurrency` reconciles per kind.
    pub fn new(ctx: Arc<Context>, namespace: Option<String>, concurrency: u16) -> Self {
        Self {
            ctx,
            namespace,
            config: Config::default().concurrency(concurrency),
            watch_filter: None,
        }
    }

    /// Shards the controllers as upstream's `--watch-filter`: only objects labelled
    /// `cluster.x-k8s.io/watch-filter=<value>` are reconciled (`None`: every object).
    pub fn with_watch_filter(mut self, value: Option<String>) -> Self {
        self.watch_filter = value.filter(|v| !v.is_empty());
        self
    }

    /// The watcher configuration of a reconciled kind: with a watch filter, a label selector
    /// on it, so an unlabelled object never enters the controller's store and is never
    /// reconciled (a trigger from a secondary watch naming it finds nothing and is dropped).
    pub fn watcher_config(&self) -> watcher::Config {
        watcher_config_for(self.watch_filter.as_deref())
    }

    /// The watcher configuration of a secondary (trigger) watch on a kind that carries the
    /// watch-filter label wherever a shard owns it: the kinds reconciled themselves (Cluster,
    /// control planes, MachineDeployments, infrastructure objects), and what slipway creates
    /// from them, which inherits the label ([`inherit_watch_filter`]: MachineSets, Machines,
    /// KubeadmConfigs, infrastructure clones, the control plane's Secrets). Filtered as the
    /// reconciled kinds are, so a shard lists and watches only its own objects of those kinds
    /// instead of whole kinds. Shared or user-made objects a trigger may come from (a
    /// ClusterClass, a ClusterResourceSet's ConfigMaps and Secrets) keep
    /// `watcher::Config::default()`.
    pub fn trigger_config(&self) -> watcher::Config {
        self.watcher_config()
    }

    /// The shared context (client, resolver, clock, workload clients).
    pub fn context(&self) -> Arc<Context> {
        self.ctx.clone()
    }

    /// The management cluster's client.
    pub fn client(&self) -> Client {
        self.ctx.client.clone()
    }

    /// The API of `K` in the watched namespace(s).
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + DeserializeOwned,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.client(), ns),
            None => Api::all(self.client()),
        }
    }

    /// The API of a kind known only at run time (a provider's kind) in the watched
    /// namespace(s).
    pub fn dynamic_api(&self, ar: &ApiResource) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(self.client(), ns, ar),
            None => Api::all_with(self.client(), ar),
        }
    }

    /// A controller of `K` with the process settings; add watches, then [`Runner::run`] it.
    pub fn controller<K: Watched>(&self) -> Controller<K> {
        Controller::new(self.api::<K>(), self.watcher_config()).with_config(self.config.clone())
    }

    /// Runs `controller` until the future is dropped: every reconcile timed under `metric`,
    /// objects at rest resynced after [`SYNC_PERIOD`], failures handled by [`error_policy`].
    pub async fn run<K, C, F, Fut>(
        &self,
        controller: Controller<K>,
        metric: &'static str,
        ctx: Arc<C>,
        mut reconcile: F,
    ) where
        K: Watched,
        C: Send + Sync + 'static,
        F: FnMut(Arc<K>, Arc<C>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Action, Error>> + Send + 'static,
    {
        let failures = Failures::default();
        let f2 = failures.clone();
        let events = self.ctx.clone();
        let s = controller.run(
            move |o, c| {
                let key = key_of(o.as_ref());
                let failures = failures.clone();
                // A copy this process already wrote over: the watch brings the written
                // version, which triggers the real pass (see `stale`).
                let fut = (!stale::is_superseded(o.meta()))
                    .then(|| metrics::timed(metric, key.clone(), reconcile(o, c)));
                async move {
                    let Some(fut) = fut else {
                        tracing::trace!(kind = metric, %key, "skipped a stale copy");
                        return Ok(Action::requeue(STALE_RETRY));
                    };
                    let out = resync(fut).await;
                    if let Ok((_, due)) = &out {
                        failures.reset(&key);
                        if let Some(d) = due {
                            metrics::requeued(metric, key, *d);
                        }
                    }
                    out.map(|(a, _)| a)
                }
            },
            move |o, e, _| {
                if e.is_gone() {
                    tracing::debug!(kind = metric, name = %o.name_any(), "gone before its finalizer was removed");
                    return Action::await_change();
                }
                if e.waiting().is_some() {
                    return error_policy(o.as_ref(), e);
                }
                if e.is_conflict() {
                    // Routine (a stale cache, two writers on one object): the watch brings
                    // the newer version and triggers the retry; the backoff only bounds how
                    // often an object whose trigger never comes is tried again.
                    let key = key_of(o.as_ref());
                    let delay = conflict_backoff(f2.record(&key));
                    tracing::debug!(kind = metric, name = %o.name_any(), error = %e, retry_in_seconds = delay.as_secs_f64(), "conflict; retrying");
                    return Action::requeue(delay);
                }
                let key = key_of(o.as_ref());
                let n = f2.record(&key);
                let delay = backoff(e.is_transient(), n);
                metrics::requeued(metric, key, delay);
                tracing::warn!(kind = metric, name = %o.name_any(), error = %e, failures = n, retry_in_seconds = delay.as_secs_f64(), "reconcile failed");
                // A Warning Event says why to `kubectl describe` / `get events` readers; the
                // recorder's spam filter keeps a hot failure to one aggregated Event.
                let (ctx, obj, message) = (events.clone(), o.clone(), e.to_string());
                tokio::spawn(async move {
                    ctx.events
                        .warning(obj.as_ref(), "ReconcileError", message)
                        .await;
                });
                Action::requeue(delay)
            },
            ctx,
        );
        Box::pin(s).for_each(|_| futures::future::ready(())).await;
    }

    /// A controller of a control-plane kind `K` (as EKS's), woken by changes of the Cluster
    /// whose `controlPlaneRef` names it.
    pub async fn run_control_plane<K, C, F, Fut>(&self, ctx: Arc<C>, reconcile: F)
    where
        K: Watched,
        C: Send + Sync + 'static,
        F: FnMut(Arc<K>, Arc<C>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Action, Error>> + Send + 'static,
    {
        let kind = K::kind(&()).to_string();
        let c = self.controller::<K>().watches(
            self.api::<Cluster>(),
            self.trigger_config(),
            move |c: Cluster| {
                let ns = c.namespace().unwrap_or_default();
                c.spec
                    .control_plane_ref
                    .clone()
                    .filter(|r| r.kind == kind)
                    .map(|r| ObjectRef::new(&r.name).within(&ns))
            },
        );
        self.run(c, "ControlPlane", ctx, reconcile).await;
    }
}

/// The watcher configuration for a watch filter value (`None`: every object).
pub fn watcher_config_for(watch_filter: Option<&str>) -> watcher::Config {
    let config = watcher::Config::default();
    match watch_filter.filter(|v| !v.is_empty()) {
        Some(v) => config.labels(&watch_filter_selector(v)),
        None => config,
    }
}

/// The label selector of a watch filter value.
pub fn watch_filter_selector(value: &str) -> String {
    format!("{}={value}", labels::WATCH_FILTER)
}

/// Gives an object slipway creates its creator's watch-filter label, so the shard that
/// reconciles the creator also reconciles what it made.
pub fn inherit_watch_filter(
    parent: &std::collections::BTreeMap<String, String>,
    child: &mut std::collections::BTreeMap<String, String>,
) {
    if let Some(v) = parent.get(labels::WATCH_FILTER) {
        child.insert(labels::WATCH_FILTER.into(), v.clone());
    }
}

/// Consecutive failures per object, so retries back off exponentially and a success resets.
#[derive(Clone, Default)]
struct Failures(Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>);

impl Failures {
    fn record(&self, key: &str) -> u32 {
        let mut m = self.0.lock().expect("failures");
        let n = m.entry(key.to_string()).or_default();
        *n = n.saturating_add(1);
        *n
    }

    fn reset(&self, key: &str) {
        self.0.lock().expect("failures").remove(key);
    }
}

fn key_of<K: ResourceExt>(o: &K) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

/// Longest wait between retries of a failing object.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The wait before retry `n` (1-based) of a failing object: from 2 s (transient) or 5 s
/// doubling each time, at most [`MAX_BACKOFF`].
pub fn backoff(transient: bool, n: u32) -> Duration {
    let base = if transient { 2 } else { 5 };
    let secs = base * 2u64.saturating_pow(n.saturating_sub(1).min(16));
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

/// Fallback requeue of a skipped stale copy, should the watch event of the written version
/// not trigger a pass first.
pub const STALE_RETRY: Duration = Duration::from_secs(5);

/// The wait before retry `n` (1-based) after consecutive write conflicts: from 250 ms doubling,
/// at most 8 s. A conflict means a newer version exists, whose watch event usually triggers
/// the retry long before this.
pub fn conflict_backoff(n: u32) -> Duration {
    let ms = 250 * 2u64.saturating_pow(n.saturating_sub(1).min(16));
    Duration::from_millis(ms).min(Duration::from_secs(8))
}

/// An object at rest is requeued after the jittered [`SYNC_PERIOD`]; returns the action and,
/// when this decided it, the delay.
async fn resync<E>(
    f: impl Future<Output = Result<Action, E>>,
) -> Result<(Action, Option<Duration>), E> {
    let a = f.await?;
    Ok(if a == Action::await_change() {
        let jitter = rand::random::<u64>() % (SYNC_PERIOD.as_secs() / 5);
        let d = SYNC_PERIOD + Duration::from_secs(jitter);
        (Action::requeue(d), Some(d))
    } else {
        (a, None)
    })
}

/// Requeue policy of a failure without history: a deletion that is waiting retries soon and
/// quietly; a lost write race retries soon; other failures are logged and retried soon when
/// transient, slowly otherwise. [`Runner::run`] uses it for the first two and backs other
/// failures off exponentially per object ([`backoff`]).
pub fn error_policy<K: ResourceExt>(obj: &K, error: &Error) -> Action {
    if let Some(why) = error.waiting() {
        tracing::debug!(name = %obj.name_any(), %why, "deletion waiting");
        return Action::requeue(Duration::from_secs(1));
    }
    if error.is_conflict() {
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

/// The Cluster owning an object, by owner reference.
pub fn owner_cluster<K: Resource>(obj: &K) -> Option<ObjectRef<Cluster>> {
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    objects::owner_cluster_name(obj).map(|name| ObjectRef::new(&name).within(&ns))
}

/// The Cluster owning an object, or (its owner reference removed) the one its label names.
pub fn cluster_of<K: Resource>(obj: &K) -> Option<ObjectRef<Cluster>> {
    owner_cluster(obj).or_else(|| labelled_cluster(obj))
}

/// The Machine owning an object, or (its owner reference removed) the Machine of the same
/// name, which is how slipway names the objects it creates for a Machine.
pub fn machine_of<K: Resource>(obj: &K) -> Option<ObjectRef<Machine>> {
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    let name = objects::owner_machine_name(obj).or_else(|| obj.meta().name.clone())?;
    Some(ObjectRef::new(&name).within(&ns))
}

/// The Cluster named by the cluster-name label.
pub fn labelled_cluster<K: Resource>(obj: &K) -> Option<ObjectRef<Cluster>> {
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    obj.labels()
        .get(labels::CLUSTER_NAME)
        .map(|n| ObjectRef::new(n).within(&ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_filter_selects_by_label_and_is_inherited() {
        assert_eq!(watcher_config_for(None).label_selector, None);
        assert_eq!(
            watcher_config_for(Some("shard-a"))
                .label_selector
                .as_deref(),
            Some("cluster.x-k8s.io/watch-filter=shard-a")
        );
        assert_eq!(
            watcher_config_for(Some("")).label_selector,
            None,
            "empty: no filter"
        );

        let parent = std::collections::BTreeMap::from([(
            labels::WATCH_FILTER.to_string(),
            "shard-a".to_string(),
        )]);
        let mut child = std::collections::BTreeMap::new();
        inherit_watch_filter(&std::collections::BTreeMap::new(), &mut child);
        assert!(child.is_empty());
        inherit_watch_filter(&parent, &mut child);
        assert_eq!(child, parent);
    }

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        let secs: Vec<u64> = (1..=10).map(|n| backoff(true, n).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(false, 1).as_secs(), 5);
        assert_eq!(backoff(false, 100), MAX_BACKOFF);
        let f = Failures::default();
        assert_eq!(
            (f.record("a/b"), f.record("a/b"), f.record("a/c")),
            (1, 2, 1)
        );
        f.reset("a/b");
        assert_eq!(f.record("a/b"), 1);
        let ms: Vec<u128> = (1..=7).map(|n| conflict_backoff(n).as_millis()).collect();
        assert_eq!(ms, [250, 500, 1000, 2000, 4000, 8000, 8000]);
    }
}
