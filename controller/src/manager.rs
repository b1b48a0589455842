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

use crate::{Context, Error, cluster};

/// The Cluster owning an object, by owner reference.
fn owner_cluster<K: Resource>(obj: &K) -> Option<ObjectRef<Cluster>> {
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "Cluster" && o.api_version.starts_with("cluster.x-k8s.io/"))
        .map(|o| ObjectRef::new(&o.name).within(&ns))
}

/// The Cluster named by the cluster-name label.
fn labelled_cluster<K: Resource>(obj: &K) -> Option<ObjectRef<Cluster>> {
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    obj.labels()
        .get(labels::CLUSTER_NAME)
        .map(|n| ObjectRef::new(n).within(&ns))
}

fn error_policy(cluster: Arc<Cluster>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(cluster = %cluster.name_any(), %error, "reconcile failed");
    Action::requeue(if error.is_transient() {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(30)
    })
}

/// Runs every controller until the future is dropped.
pub async fn run(client: Client) {
    let ctx = Arc::new(Context::new(client.clone()));
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
        .run(cluster::reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
