//! Cluster reconciler. Thin entry: finalizer dispatch to [`apply`] / [`cleanup`].
//!
//! apply: owner references on the infrastructure cluster and control plane, the endpoint copied
//! from them, contract flags read through the contract fields, the Cluster's MachineDeployments
//! and Machines, a probe of the workload API server; status computed by the pure
//! [`status::desired_status`] and written once, only when it changed. Paused clusters only get
//! their Paused condition. A reference to a kind no CRD serves is reported in a condition and
//! retried with backoff. cleanup: workers, then the control plane, then the infrastructure
//! cluster; the finalizer goes when all are gone (a reference to an unserved kind has nothing
//! to tear down).

pub mod status;

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::ConfigMap;
use slipway_runtime::metrics::StateKind;

use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::{Value, json};
use slipway_api::{
    cluster::{Cluster, phase},
    common::{ApiEndpoint, Condition, ContractVersionedObjectReference},
    machine::{Machine, MachineDeployment, MachineSet},
    names::{conditions as ct, finalizers, labels, reasons},
};

use slipway_runtime::{
    hold,
    reconcile::{dispatch, write_status},
};
use status::{
    ControlPlaneView, Counters, InfraView, MachineView, Observed, Probe, WorkerSetView,
    desired_status,
};

use slipway_runtime::{
    Context, Error,
    conditions::{self, Status, desired},
};

fn endpoint_of(obj: &DynamicObject) -> Option<ApiEndpoint> {
    serde_json::from_value(obj.data.pointer("/spec/controlPlaneEndpoint")?.clone())
        .ok()
        .filter(ApiEndpoint::is_valid)
}

/// Entry point: finalizer dispatch.
pub async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let (ctx, api) = (&ctx, &api);
    dispatch(
        api,
        finalizers::CLUSTER,
        cluster,
        |c| async move { apply(&c, ctx).await },
        |c| async move { cleanup(&c, ctx).await },
    )
    .await
}

/// Adds an owner reference to `cluster` on a referenced object, when missing.
async fn ensure_owner(
    ctx: &Context,
    cluster: &Cluster,
    ns: &str,
    r: &ContractVersionedObjectReference,
    obj: &DynamicObject,
) -> Result<(), Error> {
    let uid = cluster.uid().unwrap_or_default();
    let mut refs = obj.metadata.owner_references.clone().unwrap_or_default();
    if refs.iter().any(|o| o.uid == uid) {
        return Ok(());
    }
    let mut owner = cluster
        .controller_owner_ref(&())
        .ok_or_else(|| Error::NoUid {
            kind: "Cluster".into(),
            name: cluster.name_any(),
        })?;
    owner.block_owner_deletion = Some(true);
    refs.push(owner);
    let (api, _) = ctx.resolver.api(ns, r).await?;
    let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": obj.metadata.resource_version}});
    api.patch(&r.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Reads a referenced object; a kind no CRD serves is `Err(message)` for a condition.
async fn read_ref(
    ctx: &Context,
    ns: &str,
    r: &ContractVersionedObjectReference,
    field: &str,
) -> Result<Result<Option<DynamicObject>, String>, Error> {
    match ctx.resolver.get(ns, r).await {
        Ok(o) => Ok(Ok(o)),
        Err(Error::UnservedKind { group, kind }) => Ok(Err(format!(
            "{field} names kind {kind} of apiGroup {group}, which no CustomResourceDefinition serves: install the provider that defines {kind}, or fix {field}"
        ))),
        Err(e) => Err(e),
    }
}

fn int(obj: &DynamicObject, path: &str) -> Option<i32> {
    obj.data
        .pointer(path)
        .and_then(Value::as_i64)
        .and_then(|v| i32::try_from(v).ok())
}

fn conditions_of(v: Option<&Value>) -> Vec<Condition> {
    v.and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Probes the workload cluster's API server (`/version`) through its kubeconfig Secret.
async fn probe(ctx: &Context, ns: &str, name: &str) -> Probe {
    let client = match ctx
        .remote
        .recent(&ctx.client, ns, name, Duration::from_secs(30))
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => return Probe::NotYet,
        Err(e) => return Probe::Failed(e.to_string()),
    };
    match tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) => Probe::Succeeded,
        Ok(Err(e)) => Probe::Failed(e.to_string()),
        Err(_) => Probe::Failed(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
    }
}

/// How long a probe of a workload API server may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How soon a failed probe is repeated.
const PROBE_RETRY: Duration = Duration::from_secs(10);

async fn apply(cluster: &Cluster, ctx: &Context) -> Result<Action, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let mut observed = Observed {
        generation: cluster.metadata.generation,
        paused: slipway_runtime::reconcile::is_paused(cluster, cluster.annotations()),
        topology: None,
        endpoint: cluster.spec.control_plane_endpoint.clone(),
        gates: cluster.spec.availability_gates.clone().unwrap_or_default(),
        ..Default::default()
    };
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let mut meta = cluster.metadata.clone();
    let mut unserved = None;
    let mut topology_requeue = false;
    if !observed.paused && cluster.spec.topology.is_some() {
        let outcome = crate::topology::reconcile(cluster, ctx).await?;
        topology_requeue = outcome.requeue;
        observed.topology = Some(outcome.condition);
    }
    if !observed.paused {
        if let Some(r) = &cluster.spec.infrastructure_ref {
            match read_ref(ctx, &ns, r, "spec.infrastructureRef").await? {
                Err(why) => {
                    observed.infra_unreadable = Some(why.clone());
                    unserved = Some(why);
                }
                Ok(None) => {}
                Ok(Some(obj)) => {
                    ensure_owner(ctx, cluster, &ns, r, &obj).await?;
                    observed.infra = Some(InfraView {
                        provisioned: obj
                            .data
                            .pointer("/status/initialization/provisioned")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                        endpoint: endpoint_of(&obj),
                        ready: conditions::of_object(&obj, ct::READY),
                    });
                }
            }
        }
        if let Some(r) = &cluster.spec.control_plane_ref {
            match read_ref(ctx, &ns, r, "spec.controlPlaneRef").await? {
                Err(why) => {
                    observed.control_plane_unreadable = Some(why.clone());
                    unserved.get_or_insert(why);
                }
                Ok(None) => {}
                Ok(Some(obj)) => {
                    ensure_owner(ctx, cluster, &ns, r, &obj).await?;
                    observed.control_plane = Some(ControlPlaneView {
                        kind: r.kind.clone(),
                        name: r.name.clone(),
                        initialized: obj
                            .data
                            .pointer("/status/initialization/controlPlaneInitialized")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                        available: conditions::of_object(&obj, ct::AVAILABLE),
                        endpoint: endpoint_of(&obj),
                        counters: Counters {
                            desired: int(&obj, "/spec/replicas"),
                            replicas: int(&obj, "/status/replicas"),
                            ready: int(&obj, "/status/readyReplicas"),
                            available: int(&obj, "/status/availableReplicas"),
                            up_to_date: int(&obj, "/status/upToDateReplicas"),
                        },
                        version: obj
                            .data
                            .pointer("/status/version")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        conditions: conditions_of(obj.data.pointer("/status/conditions")),
                    });
                }
            }
        }
        // The endpoint comes from the infrastructure cluster, or a managed control plane.
        let source = observed
            .infra
            .as_ref()
            .and_then(|i| i.endpoint.clone())
            .or_else(|| {
                observed
                    .control_plane
                    .as_ref()
                    .and_then(|c| c.endpoint.clone())
            });
        if !observed
            .endpoint
            .as_ref()
            .is_some_and(ApiEndpoint::is_valid)
            && let Some(ep) = source
        {
            let patched = api
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"controlPlaneEndpoint": ep}})),
                )
                .await?;
            slipway_runtime::stale::superseded(&meta, &patched.metadata);
            // The status below covers the endpoint just written: one write at the new
            // generation, not one more on the next pass.
            observed.generation = patched.metadata.generation;
            meta = patched.metadata;
            observed.endpoint = Some(ep);
        }
        let selector = ListParams::default().labels(&format!("{}={name}", labels::CLUSTER_NAME));
        let mds: Api<MachineDeployment> = Api::namespaced(ctx.client.clone(), &ns);
        observed.workers = mds
            .list(&selector)
            .await?
            .items
            .into_iter()
            .map(|md| WorkerSetView {
                name: md.name_any(),
                desired: md.spec.replicas.unwrap_or(1),
                conditions: md.status.and_then(|s| s.conditions).unwrap_or_default(),
            })
            .collect();
        let machines: Api<Machine> = Api::namespaced(ctx.client.clone(), &ns);
        observed.machines = machines
            .list(&selector)
            .await?
            .items
            .into_iter()
            .map(|m| {
                let control_plane = m.labels().contains_key(labels::CONTROL_PLANE);
                MachineView {
                    name: m.name_any(),
                    control_plane,
                    standalone: !control_plane
                        && !m.labels().contains_key(labels::MACHINE_DEPLOYMENT_NAME)
                        && !m.labels().contains_key(labels::MACHINE_SET_NAME),
                    version: m.spec.version.clone(),
                    conditions: m.status.and_then(|s| s.conditions).unwrap_or_default(),
                }
            })
            .collect();
        let initialized = cluster
            .status
            .as_ref()
            .and_then(|s| s.initialization.as_ref())
            .and_then(|i| i.control_plane_initialized)
            .unwrap_or(false)
            || observed
                .control_plane
                .as_ref()
                .is_some_and(|c| c.initialized);
        if initialized {
            observed.probe = probe(ctx, &ns, &name).await;
        }
    }
    let old = cluster.status.clone().unwrap_or_default();
    let new = desired_status(&observed, &old, ctx.now());
    // Only the wording of conditions changed (an aggregate quoting a Machine's step): it
    // waits for the next real change.
    let held = hold::write_status_or_hold(&api, &meta, &old, &new).await?;
    slipway_runtime::metrics::state(
        StateKind::Cluster,
        &ns,
        &name,
        Some((
            new.phase.as_deref(),
            new.conditions.as_deref().unwrap_or_default(),
        )),
    );
    let initialized = |s: &slipway_api::cluster::ClusterStatus| {
        s.initialization
            .as_ref()
            .and_then(|i| i.control_plane_initialized)
            .unwrap_or(false)
    };
    if initialized(&new) && !initialized(&old) {
        // The single-init lock has done its job once the control plane is initialized.
        let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
        slipway_runtime::objects::delete_if_exists(&cms, &format!("{name}-lock")).await?;
    }
    if let Some(why) = unserved {
        // Retried with the runner's backoff until a provider serving the kind is installed.
        return Err(Error::invalid(format!("Cluster {ns}/{name}"), why));
    }
    if let Some(wait) = held {
        return Ok(Action::requeue(wait.min(PROBE_RETRY)));
    }
    Ok(match observed.probe {
        Probe::Failed(_) => Action::requeue(PROBE_RETRY),
        // An upgrade step waits on objects the Cluster also watches; look again anyway.
        _ if topology_requeue => Action::requeue(PROBE_RETRY),
        _ => Action::await_change(),
    })
}

async fn cleanup(cluster: &Cluster, ctx: &Context) -> Result<Action, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = ListParams::default().labels(&format!("{}={name}", labels::CLUSTER_NAME));
    // Deregister first: fleet tools must stop targeting the cluster before it goes away.
    if cluster
        .finalizers()
        .iter()
        .any(|f| f == finalizers::REGISTRY)
    {
        return Err(waiting(
            &api,
            cluster,
            "WaitingForDeregistration",
            "waiting for the cluster to be removed from the registry".into(),
            ctx,
        )
        .await);
    }

    // Workers first.
    let mds: Api<MachineDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    let sets: Api<MachineSet> = Api::namespaced(ctx.client.clone(), &ns);
    let machines: Api<Machine> = Api::namespaced(ctx.client.clone(), &ns);
    let md_list = mds.list(&selector).await?.items;
    let ms_list = sets.list(&selector).await?.items;
    let workers: Vec<Machine> = machines
        .list(&selector)
        .await?
        .items
        .into_iter()
        .filter(|m| !m.labels().contains_key(labels::CONTROL_PLANE))
        .collect();
    let pools: Api<slipway_api::MachinePool> = Api::namespaced(ctx.client.clone(), &ns);
    let pool_list = pools.list(&selector).await?.items;
    if !md_list.is_empty() || !ms_list.is_empty() || !workers.is_empty() || !pool_list.is_empty() {
        for p in pool_list
            .iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
        {
            pools
                .delete(&p.name_any(), &DeleteParams::default())
                .await?;
            tracing::info!(cluster = %name, pool = %p.name_any(), "deleting MachinePool");
        }
        for md in md_list
            .iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
        {
            mds.delete(&md.name_any(), &DeleteParams::default()).await?;
            tracing::info!(cluster = %name, deployment = %md.name_any(), "deleting MachineDeployment");
        }
        for ms in ms_list
            .iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
        {
            sets.delete(&ms.name_any(), &DeleteParams::default())
                .await?;
        }
        for m in workers
            .iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
        {
            machines
                .delete(&m.name_any(), &DeleteParams::default())
                .await?;
        }
        let mut message = format!(
            "{} MachineDeployments, {} MachineSets and {} worker Machines still exist",
            md_list.len(),
            ms_list.len(),
            workers.len()
        );
        if !pool_list.is_empty() {
            message.push_str(&format!(", {} MachinePools", pool_list.len()));
        }
        return Err(waiting(
            &api,
            cluster,
            reasons::WAITING_FOR_WORKERS_DELETION,
            message,
            ctx,
        )
        .await);
    }
    slipway_runtime::metrics::state(StateKind::Cluster, &ns, &name, None);
    for (r, reason, what) in [
        (
            &cluster.spec.control_plane_ref,
            reasons::WAITING_FOR_CONTROL_PLANE_DELETION,
            "control plane",
        ),
        (
            &cluster.spec.infrastructure_ref,
            reasons::WAITING_FOR_INFRASTRUCTURE_DELETION,
            "infrastructure cluster",
        ),
    ] {
        let Some(r) = r else { continue };
        let found = match ctx.resolver.get(&ns, r).await {
            // No CRD serves the kind: nothing of it can exist to tear down.
            Err(Error::UnservedKind { .. }) => None,
            other => other?,
        };
        if let Some(obj) = found {
            if obj.metadata.deletion_timestamp.is_none() {
                let (dapi, _) = ctx.resolver.api(&ns, r).await?;
                dapi.delete(&r.name, &DeleteParams::default()).await?;
                tracing::info!(cluster = %name, kind = %r.kind, name = %r.name, "deleting the {what}");
            }
            let message = format!("waiting for the {what} {} {} to be deleted", r.kind, r.name);
            return Err(waiting(&api, cluster, reason, message, ctx).await);
        }
    }
    // Its cached workload client would keep its pooled connections (descriptors) for good.
    ctx.remote.forget(&ns, &name);
    tracing::info!(cluster = %name, namespace = %ns, "cluster deleted: its workers, control plane and infrastructure are gone");
    Ok(Action::await_change())
}

/// Reports what the deletion waits for (Deleting condition and phase, written only when they
/// change) and returns the error that keeps the finalizer and requeues.
async fn waiting(
    api: &Api<Cluster>,
    cluster: &Cluster,
    reason: &str,
    message: String,
    ctx: &Context,
) -> Error {
    let d = desired(ct::DELETING, Status::True, reason, message.clone());
    match write_deleting(api, cluster, d, ctx).await {
        Ok(()) => Error::Waiting(message),
        Err(e) => e,
    }
}

async fn write_deleting(
    api: &Api<Cluster>,
    cluster: &Cluster,
    d: conditions::Desired,
    ctx: &Context,
) -> Result<(), Error> {
    let old = cluster.status.clone().unwrap_or_default();
    let now = (ctx.clock)();
    let mut new = old.clone();
    let mut conds = new.conditions.take().unwrap_or_default();
    conditions::set(&mut conds, d, cluster.metadata.generation, now);
    new.conditions = Some(conds);
    new.phase = Some(phase::DELETING.into());
    write_status(api, &cluster.metadata, Some(&old), &new).await?;
    Ok(())
}
