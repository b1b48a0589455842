//! Infrastructure cluster reconciler, generic over [`InfrastructureProvider`]: finalizer,
//! owner Cluster lookup, pause, one provider call, and the contract fields written back
//! (`spec.controlPlaneEndpoint`, `status.initialization.provisioned` (never flipped back),
//! `status.failureDomains`, the `Ready` condition). Providers never write status; this does, once
//! per reconcile and only when it changed.

use std::{sync::Arc, time::Duration};

use crate::{ClusterOutcome, ClusterScope, Deletion, InfrastructureProvider, ProviderError};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::{Map, Value, json};
use slipway_api::{
    Cluster,
    common::Condition,
    names::{conditions as ct, reasons},
};

use slipway_runtime::{
    Error,
    conditions::{self, Status, desired},
    objects::owner_cluster_name,
    reconcile::{dispatch, paused_condition, write_status},
    runner::Watched,
};

use super::{InfraContext, topology};

/// Entry point: finalizer dispatch.
pub async fn reconcile<P>(obj: Arc<P::Cluster>, ctx: Arc<InfraContext<P>>) -> Result<Action, Error>
where
    P: InfrastructureProvider,
    P::Cluster: Watched,
{
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<P::Cluster> = Api::namespaced(ctx.base.client.clone(), &ns);
    let (ctx, api) = (&ctx, &api);
    dispatch(
        api,
        P::CLUSTER_FINALIZER,
        obj,
        |o| async move { apply(o.as_ref(), ctx, api).await },
        |o| async move { cleanup(o.as_ref(), ctx).await },
    )
    .await
}

async fn owner<P: InfrastructureProvider>(
    obj: &P::Cluster,
    ctx: &InfraContext<P>,
) -> Result<Option<Cluster>, Error>
where
    P::Cluster: Watched,
{
    let Some(name) = owner_cluster_name(obj) else {
        return Ok(None);
    };
    let clusters: Api<Cluster> = Api::namespaced(
        ctx.base.client.clone(),
        &obj.namespace().unwrap_or_default(),
    );
    Ok(clusters.get_opt(&name).await?)
}

async fn apply<P>(
    obj: &P::Cluster,
    ctx: &InfraContext<P>,
    api: &Api<P::Cluster>,
) -> Result<Action, Error>
where
    P: InfrastructureProvider,
    P::Cluster: Watched,
{
    // The contract: nothing happens until a Cluster owns this object.
    let Some(cluster) = owner(obj, ctx).await? else {
        return Ok(Action::await_change());
    };
    let value = serde_json::to_value(obj)?;
    let mut status: Map<String, Value> = value
        .get("status")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut conds: Vec<Condition> = status
        .get("conditions")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let generation = obj.meta().generation;
    let now = (ctx.base.clock)();
    let paused = paused_condition(&mut conds, &cluster, obj.annotations(), generation, now);
    let mut action = Action::await_change();
    let mut patched = None;
    if !paused {
        let topology = if P::NEEDS_TOPOLOGY {
            topology::topology(&ctx.base, &cluster).await?
        } else {
            None
        };
        let scope = ClusterScope {
            cluster: Arc::new(cluster),
            infra: Arc::new(obj.clone()),
            topology,
            now,
        };
        let (ready, extra, after) = match ctx.provider.reconcile_cluster(&scope).await {
            Ok(ClusterOutcome::Provisioning(p)) => (
                desired(ct::READY, Status::False, &p.reason, p.message),
                p.status,
                Some(p.requeue_after),
            ),
            Ok(ClusterOutcome::Ready(r)) => {
                if let Some(ep) = &r.control_plane_endpoint
                    && value
                        .pointer("/spec/controlPlaneEndpoint")
                        .and_then(|v| {
                            serde_json::from_value::<slipway_api::common::ApiEndpoint>(v.clone())
                                .ok()
                        })
                        .as_ref()
                        != Some(ep)
                {
                    // Guarded by the resourceVersion: a pass that read a stale object (no
                    // endpoint yet) must not replace an endpoint another pass already set.
                    patched = Some(
                        api.patch(
                            &obj.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&json!({
                                "metadata": {"resourceVersion": obj.meta().resource_version},
                                "spec": {"controlPlaneEndpoint": ep},
                            })),
                        )
                        .await?
                        .meta()
                        .clone(),
                    );
                }
                if let Some(kc) = &r.kubeconfig {
                    topology::write_kubeconfig(&ctx.base, &scope.cluster, ctx.provider.name(), kc)
                        .await?;
                }
                status.insert("initialization".into(), json!({"provisioned": true}));
                if !r.failure_domains.is_empty() {
                    status.insert("failureDomains".into(), json!(r.failure_domains));
                }
                (
                    desired(ct::READY, Status::True, reasons::PROVISIONED, r.message),
                    r.status,
                    ctx.provider.ready_recheck(),
                )
            }
            Err(e) => {
                let after = retry_after(&e);
                (
                    desired(ct::READY, Status::False, e.reason(), e.to_string()),
                    Value::Null,
                    after,
                )
            }
        };
        conditions::set(&mut conds, ready, generation, now);
        if let Value::Object(m) = extra {
            status.extend(m);
        }
        if let Some(d) = after {
            action = Action::requeue(d);
        }
    }
    // This pass wrote the object's own spec: its status covers the new generation.
    let meta = match patched {
        Some(m) => {
            slipway_runtime::stale::superseded(obj.meta(), &m);
            slipway_runtime::reconcile::restamp_generation(&mut conds, m.generation);
            m
        }
        None => obj.meta().clone(),
    };
    let generation = meta.generation;
    status.insert("conditions".into(), json!(conds));
    status.insert("observedGeneration".into(), json!(generation));
    write_status(
        api,
        &meta,
        value.get("status").and_then(Value::as_object),
        &status,
    )
    .await?;
    Ok(action)
}

fn retry_after(e: &ProviderError) -> Option<Duration> {
    if e.is_terminal() {
        None
    } else {
        Some(e.fixed_retry().unwrap_or(Duration::from_secs(5)))
    }
}

async fn cleanup<P>(obj: &P::Cluster, ctx: &InfraContext<P>) -> Result<Action, Error>
where
    P: InfrastructureProvider,
    P::Cluster: Watched,
{
    let cluster = owner(obj, ctx)
        .await?
        .unwrap_or_else(|| Cluster::new("", Default::default()));
    let scope = ClusterScope {
        cluster: Arc::new(cluster),
        infra: Arc::new(obj.clone()),
        topology: None,
        now: ctx.base.now(),
    };
    match ctx.provider.delete_cluster(&scope).await {
        Ok(Deletion::Gone) => Ok(Action::await_change()),
        Ok(Deletion::InProgress(p)) => Err(Error::Waiting(p.message)),
        Err(e) => Err(Error::Waiting(format!("deleting the infrastructure: {e}"))),
    }
}
