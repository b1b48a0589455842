//! Runs the controllers: one kube-runtime Controller per reconciled kind, with watches that map
//! related objects (infrastructure clusters, control planes, machines) back to their Cluster.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};
use slipway_api::{
    AWSCluster, AWSManagedCluster, AWSManagedControlPlane, Cluster, InMemoryCluster, KindCluster,
    KubeadmControlPlane, Machine, MachineDeployment, MachineSet, names::labels,
};

use slipway_providers::{InfrastructureProvider, inmemory::InMemory};

use k8s_openapi::api::core::v1::Secret;

use crate::{
    Context, Error, cluster,
    infra_cluster::{self, InfraContext, InfraObject},
    kcp,
};

/// The Cluster owning an object, by owner reference.
fn owner_cluster<K: Resource>(obj: &K) -> Option<ObjectRef<Cluster>> {
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    infra_cluster::owner_cluster_name(obj).map(|name| ObjectRef::new(&name).within(&ns))
}

/// The Cluster named by the cluster-name label.
fn labelled_cluster<K: Resource>(obj: &K) -> Option<ObjectRef<Cluster>> {
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    obj.labels()
        .get(labels::CLUSTER_NAME)
        .map(|n| ObjectRef::new(n).within(&ns))
}

/// Runs every controller until the future is dropped.
pub async fn run(client: Client) {
    let ctx = Arc::new(Context::new(client.clone()));
    let in_memory = Arc::new(InfraContext {
        base: ctx.clone(),
        provider: InMemory,
    });
    futures::join!(
        clusters(client.clone(), ctx.clone()),
        infra_clusters::<InMemory>(client.clone(), in_memory),
        control_planes(client, ctx)
    );
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
    tracing::warn!(name = %obj.name_any(), %error, "reconcile failed");
    Action::requeue(if error.is_transient() {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(30)
    })
}

async fn infra_clusters<P>(client: Client, ctx: Arc<InfraContext<P>>)
where
    P: InfrastructureProvider,
    P::Cluster: InfraObject,
{
    let wc = watcher::Config::default();
    Controller::new(Api::<P::Cluster>::all(client.clone()), wc.clone())
        .watches(Api::<Cluster>::all(client), wc, move |c: Cluster| {
            // A Cluster's changes (pause, its infrastructureRef) reach its infrastructure cluster.
            let ns = c.namespace().unwrap_or_default();
            c.spec
                .infrastructure_ref
                .clone()
                .map(|r| ObjectRef::new(&r.name).within(&ns))
        })
        .run(
            infra_cluster::reconcile::<P>,
            |o, e, _| error_policy(o, e),
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn control_planes(client: Client, ctx: Arc<Context>) {
    let wc = watcher::Config::default();
    Controller::new(Api::<KubeadmControlPlane>::all(client.clone()), wc.clone())
        .owns(Api::<Secret>::all(client.clone()), wc.clone())
        .watches(Api::<Cluster>::all(client), wc, |c: Cluster| {
            // The endpoint and pause of a Cluster reach its control plane.
            let ns = c.namespace().unwrap_or_default();
            c.spec
                .control_plane_ref
                .clone()
                .map(|r| ObjectRef::new(&r.name).within(&ns))
        })
        .run(kcp::reconcile, |o, e, _| error_policy(o, e), ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn clusters(client: Client, ctx: Arc<Context>) {
    let wc = watcher::Config::default();
    Controller::new(Api::<Cluster>::all(client.clone()), wc.clone())
        .watches(
            Api::<InMemoryCluster>::all(client.clone()),
            wc.clone(),
            |o| owner_cluster(&o),
        )
        .watches(Api::<KindCluster>::all(client.clone()), wc.clone(), |o| {
            owner_cluster(&o)
        })
        .watches(Api::<AWSCluster>::all(client.clone()), wc.clone(), |o| {
            owner_cluster(&o)
        })
        .watches(
            Api::<AWSManagedCluster>::all(client.clone()),
            wc.clone(),
            |o| owner_cluster(&o),
        )
        .watches(
            Api::<KubeadmControlPlane>::all(client.clone()),
            wc.clone(),
            |o| owner_cluster(&o),
        )
        .watches(
            Api::<AWSManagedControlPlane>::all(client.clone()),
            wc.clone(),
            |o| owner_cluster(&o),
        )
        .watches(
            Api::<MachineDeployment>::all(client.clone()),
            wc.clone(),
            |o| labelled_cluster(&o),
        )
        .watches(Api::<MachineSet>::all(client.clone()), wc.clone(), |o| {
            labelled_cluster(&o)
        })
        .watches(Api::<Machine>::all(client.clone()), wc, |o| {
            labelled_cluster(&o)
        })
        .run(cluster::reconcile, |o, e, _| error_policy(o, e), ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
