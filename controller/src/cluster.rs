//! Cluster reconciler. Thin entry: finalizer dispatch to [`apply`] / [`cleanup`].
//!
//! apply: owner references on the infrastructure cluster and control plane, the endpoint copied
//! from them, contract flags read through the contract fields, status computed by the pure
//! [`desired_status`] and written once, only when it changed. Paused clusters only get their
//! Paused condition. cleanup: workers, then the control plane, then the infrastructure cluster;
//! the finalizer goes when all are gone.

use std::sync::Arc;

use jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::{Value, json};
use slipway_api::{
    cluster::{Cluster, ClusterInitializationStatus, ClusterStatus, phase},
    common::{ApiEndpoint, Condition, ContractVersionedObjectReference},
    machine::{Machine, MachineDeployment, MachineSet},
    names::{conditions as ct, finalizers, labels, reasons},
};

use slipway_runtime::reconcile::{dispatch, write_status};

use slipway_runtime::{
    Context, Error,
    conditions::{self, Status, desired},
};

/// What the infrastructure cluster reports through the contract.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InfraView {
    /// `status.initialization.provisioned`.
    pub provisioned: bool,
    /// `spec.controlPlaneEndpoint`.
    pub endpoint: Option<ApiEndpoint>,
    /// The `Ready` condition.
    pub ready: Option<Condition>,
}

/// What the control plane reports through the contract.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ControlPlaneView {
    /// `status.initialization.controlPlaneInitialized`.
    pub initialized: bool,
    /// The `Available` condition.
    pub available: Option<Condition>,
    /// `spec.controlPlaneEndpoint` (managed control planes such as EKS).
    pub endpoint: Option<ApiEndpoint>,
}

/// Everything the status is computed from.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// metadata.generation.
    pub generation: Option<i64>,
    /// spec.paused or the paused annotation.
    pub paused: bool,
    /// Being deleted.
    pub deleting: bool,
    /// spec.topology is set (not supported).
    pub topology: bool,
    /// The infrastructure cluster (`None`: not referenced or not found).
    pub infra: Option<InfraView>,
    /// The control plane.
    pub control_plane: Option<ControlPlaneView>,
    /// The endpoint in the Cluster's spec.
    pub endpoint: Option<ApiEndpoint>,
}

fn mirror(
    type_: &str,
    source: Option<&Condition>,
    fallback: conditions::Desired,
) -> conditions::Desired {
    match source {
        Some(c) => conditions::Desired {
            type_: type_.into(),
            status: match c.status.as_str() {
                "True" => Status::True,
                "False" => Status::False,
                _ => Status::Unknown,
            },
            reason: c.reason.clone(),
            message: c.message.clone(),
        },
        None => fallback,
    }
}

/// The status a Cluster should have; `old` keeps transition times and the never-flip-back flags.
pub fn desired_status(o: &Observed, old: &ClusterStatus, now: Timestamp) -> ClusterStatus {
    let mut status = old.clone();
    let mut conds = old.conditions.clone().unwrap_or_default();
    let g = o.generation;
    conditions::set(&mut conds, conditions::paused(o.paused), g, now);
    if o.paused {
        status.conditions = Some(conds);
        return status;
    }
    let init = old.initialization.clone().unwrap_or_default();
    let infra_provisioned = init.infrastructure_provisioned.unwrap_or(false)
        || o.infra.as_ref().is_some_and(|i| i.provisioned);
    let cp_initialized = init.control_plane_initialized.unwrap_or(false)
        || o.control_plane.as_ref().is_some_and(|c| c.initialized);
    status.initialization = Some(ClusterInitializationStatus {
        infrastructure_provisioned: Some(infra_provisioned),
        control_plane_initialized: Some(cp_initialized),
    });

    let infra_ready = match &o.infra {
        None => desired(
            ct::INFRASTRUCTURE_READY,
            Status::False,
            reasons::REFERENCE_NOT_FOUND,
            "the infrastructure cluster does not exist yet",
        ),
        Some(i) => {
            let fallback = if i.provisioned {
                desired(
                    ct::INFRASTRUCTURE_READY,
                    Status::True,
                    reasons::PROVISIONED,
                    "",
                )
            } else {
                desired(
                    ct::INFRASTRUCTURE_READY,
                    Status::False,
                    reasons::WAITING_FOR_INFRASTRUCTURE,
                    "waiting for the infrastructure cluster to be provisioned",
                )
            };
            mirror(ct::INFRASTRUCTURE_READY, i.ready.as_ref(), fallback)
        }
    };
    conditions::set(&mut conds, infra_ready, g, now);
    let cp_init = if cp_initialized {
        desired(
            ct::CONTROL_PLANE_INITIALIZED,
            Status::True,
            reasons::READY,
            "",
        )
    } else {
        desired(
            ct::CONTROL_PLANE_INITIALIZED,
            Status::False,
            reasons::WAITING_FOR_CONTROL_PLANE,
            "waiting for the control plane to be initialized",
        )
    };
    conditions::set(&mut conds, cp_init, g, now);
    let cp_available = mirror(
        ct::CONTROL_PLANE_AVAILABLE,
        o.control_plane.as_ref().and_then(|c| c.available.as_ref()),
        desired(
            ct::CONTROL_PLANE_AVAILABLE,
            Status::Unknown,
            "Unknown",
            "the control plane has not reported Available yet",
        ),
    );
    conditions::set(&mut conds, cp_available, g, now);
    if o.topology {
        conditions::set(
            &mut conds,
            desired(
                "TopologyReconciled",
                Status::False,
                reasons::TOPOLOGY_UNSUPPORTED,
                "spec.topology (ClusterClass) is not supported by slipway; define the control plane and workers explicitly",
            ),
            g,
            now,
        );
    }
    let summary = conditions::summary(
        ct::AVAILABLE,
        &[
            (
                ct::INFRASTRUCTURE_READY,
                conditions::get(&conds, ct::INFRASTRUCTURE_READY),
            ),
            (
                ct::CONTROL_PLANE_AVAILABLE,
                conditions::get(&conds, ct::CONTROL_PLANE_AVAILABLE),
            ),
        ],
        reasons::AVAILABLE,
    );
    conditions::set(&mut conds, summary, g, now);
    status.phase = Some(
        if o.deleting {
            phase::DELETING
        } else if infra_provisioned && o.endpoint.as_ref().is_some_and(ApiEndpoint::is_valid) {
            phase::PROVISIONED
        } else if o.infra.is_some() {
            phase::PROVISIONING
        } else {
            phase::PENDING
        }
        .to_string(),
    );
    status.conditions = Some(conds);
    status.observed_generation = g;
    status
}

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

async fn apply(cluster: &Cluster, ctx: &Context) -> Result<Action, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let mut observed = Observed {
        generation: cluster.metadata.generation,
        paused: slipway_runtime::reconcile::is_paused(cluster, cluster.annotations()),
        topology: cluster.spec.topology.is_some(),
        endpoint: cluster.spec.control_plane_endpoint.clone(),
        ..Default::default()
    };
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    if !observed.paused {
        if let Some(r) = &cluster.spec.infrastructure_ref
            && let Some(obj) = ctx.resolver.get(&ns, r).await?
        {
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
        if let Some(r) = &cluster.spec.control_plane_ref
            && let Some(obj) = ctx.resolver.get(&ns, r).await?
        {
            ensure_owner(ctx, cluster, &ns, r, &obj).await?;
            observed.control_plane = Some(ControlPlaneView {
                initialized: obj
                    .data
                    .pointer("/status/initialization/controlPlaneInitialized")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                available: conditions::of_object(&obj, ct::AVAILABLE),
                endpoint: endpoint_of(&obj),
            });
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
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"controlPlaneEndpoint": ep}})),
            )
            .await?;
            observed.endpoint = Some(ep);
        }
    }
    let old = cluster.status.clone().unwrap_or_default();
    let new = desired_status(&observed, &old, ctx.now());
    write_status(&api, &cluster.name_any(), Some(&old), &new).await?;
    Ok(Action::await_change())
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
    if !md_list.is_empty() || !ms_list.is_empty() || !workers.is_empty() {
        for md in md_list
            .iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
        {
            mds.delete(&md.name_any(), &DeleteParams::default()).await?;
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
        let message = format!(
            "{} MachineDeployments, {} MachineSets and {} worker Machines still exist",
            md_list.len(),
            ms_list.len(),
            workers.len()
        );
        return Err(waiting(
            &api,
            cluster,
            reasons::WAITING_FOR_WORKERS_DELETION,
            message,
            ctx,
        )
        .await);
    }
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
        if let Some(obj) = ctx.resolver.get(&ns, r).await? {
            if obj.metadata.deletion_timestamp.is_none() {
                let (dapi, _) = ctx.resolver.api(&ns, r).await?;
                dapi.delete(&r.name, &DeleteParams::default()).await?;
            }
            let message = format!("waiting for the {what} {} {} to be deleted", r.kind, r.name);
            return Err(waiting(&api, cluster, reason, message, ctx).await);
        }
    }
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
    write_status(api, &cluster.name_any(), Some(&old), &new).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn cond(conds: &ClusterStatus, type_: &str) -> (String, String) {
        let c = conds
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap();
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn status_follows_the_contract_fields() {
        let ep = ApiEndpoint {
            host: "127.0.0.1".into(),
            port: 6443,
        };
        let pending = desired_status(
            &Observed {
                generation: Some(1),
                ..Default::default()
            },
            &ClusterStatus::default(),
            t(1),
        );
        assert_eq!(pending.phase.as_deref(), Some("Pending"));
        assert_eq!(
            cond(&pending, "InfrastructureReady"),
            ("False".into(), "RefNotFound".into())
        );

        let provisioning = Observed {
            generation: Some(1),
            infra: Some(InfraView::default()),
            ..Default::default()
        };
        let s1 = desired_status(&provisioning, &pending, t(2));
        assert_eq!(s1.phase.as_deref(), Some("Provisioning"));
        assert_eq!(
            cond(&s1, "InfrastructureReady"),
            ("False".into(), "WaitingForInfrastructure".into())
        );

        let provisioned = Observed {
            generation: Some(1),
            endpoint: Some(ep.clone()),
            infra: Some(InfraView {
                provisioned: true,
                endpoint: Some(ep.clone()),
                ready: None,
            }),
            control_plane: Some(ControlPlaneView {
                initialized: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let s2 = desired_status(&provisioned, &s1, t(3));
        assert_eq!(s2.phase.as_deref(), Some("Provisioned"));
        assert_eq!(
            s2.initialization,
            Some(ClusterInitializationStatus {
                infrastructure_provisioned: Some(true),
                control_plane_initialized: Some(true)
            })
        );
        assert_eq!(
            cond(&s2, "Available").0,
            "Unknown",
            "the control plane has not reported Available"
        );
        assert_eq!(
            desired_status(&provisioned, &s2, t(4)),
            s2,
            "a second pass changes nothing: no write, no hot loop"
        );

        // Flags never flip back, even if the provider object forgets them.
        let forgetful = Observed {
            infra: Some(InfraView::default()),
            control_plane: Some(ControlPlaneView::default()),
            ..provisioned.clone()
        };
        let s3 = desired_status(&forgetful, &s2, t(5));
        assert_eq!(s3.initialization, s2.initialization);

        let paused = desired_status(
            &Observed {
                paused: true,
                ..provisioned
            },
            &s2,
            t(6),
        );
        assert_eq!(cond(&paused, "Paused"), ("True".into(), "Paused".into()));
        assert_eq!(
            paused.phase, s2.phase,
            "a paused cluster is otherwise left alone"
        );
    }
}
