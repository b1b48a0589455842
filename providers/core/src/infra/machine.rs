//! Infrastructure machine reconciler, generic over [`InfrastructureProvider`]: finalizer, owner
//! Machine lookup, pause, bootstrap data read from the Machine's data Secret, one provider
//! call, and the contract fields written back (`spec.providerID`, `status.addresses`,
//! `status.initialization.provisioned` (never flipped back), the `Ready` condition), once per
//! reconcile and only when they changed.

use std::{sync::Arc, time::Duration};

use crate::{
    BootstrapData, BootstrapFormat, Deletion, InfrastructureProvider, MachineOutcome, MachineScope,
};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::{Map, Value, json};
use slipway_api::{
    Cluster, Machine,
    common::Condition,
    names::{conditions as ct, reasons, secrets},
};

use slipway_runtime::{
    Error,
    conditions::{self, Status, desired},
    objects::owner_machine_name,
    reconcile::{dispatch, paused_condition, write_status},
    runner::Watched,
};

use super::InfraContext;

/// Entry point: finalizer dispatch.
pub async fn reconcile<P>(obj: Arc<P::Machine>, ctx: Arc<InfraContext<P>>) -> Result<Action, Error>
where
    P: InfrastructureProvider,
    P::Cluster: Watched,
    P::Machine: Watched,
{
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<P::Machine> = Api::namespaced(ctx.base.client.clone(), &ns);
    let (ctx, api) = (&ctx, &api);
    dispatch(
        api,
        P::MACHINE_FINALIZER,
        obj,
        |o| async move { apply(o.as_ref(), ctx, api).await },
        |o| async move { cleanup(o.as_ref(), ctx).await },
    )
    .await
}

/// Machine, Cluster and infrastructure cluster of an infrastructure machine; `None` until all
/// exist.
async fn scope<P>(
    obj: &P::Machine,
    ctx: &InfraContext<P>,
) -> Result<Option<MachineScope<P::Cluster, P::Machine>>, Error>
where
    P: InfrastructureProvider,
    P::Cluster: Watched,
    P::Machine: Watched,
{
    let ns = obj.namespace().unwrap_or_default();
    let client = ctx.base.client.clone();
    let Some(name) = owner_machine_name(obj) else {
        return Ok(None);
    };
    let Some(machine) = Api::<Machine>::namespaced(client.clone(), &ns)
        .get_opt(&name)
        .await?
    else {
        return Ok(None);
    };
    let Some(cluster) = Api::<Cluster>::namespaced(client.clone(), &ns)
        .get_opt(&machine.spec.cluster_name)
        .await?
    else {
        return Ok(None);
    };
    let Some(infra_ref) = cluster.spec.infrastructure_ref.clone() else {
        return Ok(None);
    };
    let Some(infra_cluster) = Api::<P::Cluster>::namespaced(client, &ns)
        .get_opt(&infra_ref.name)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(MachineScope {
        cluster: Arc::new(cluster),
        infra_cluster: Arc::new(infra_cluster),
        machine: Arc::new(machine),
        infra: Arc::new(obj.clone()),
        now: ctx.base.now(),
    }))
}

async fn bootstrap_data(
    ctx: &InfraContext<impl InfrastructureProvider>,
    ns: &str,
    name: &str,
) -> Result<Option<BootstrapData>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.base.client.clone(), ns);
    let Some(s) = api.get_opt(name).await? else {
        return Ok(None);
    };
    let data = s.data.unwrap_or_default();
    let Some(value) = data.get(secrets::VALUE_KEY) else {
        return Err(Error::invalid(
            format!("bootstrap Secret {ns}/{name}"),
            format!("no key {:?}", secrets::VALUE_KEY),
        ));
    };
    let format = match data.get(secrets::FORMAT_KEY).map(|b| b.0.as_slice()) {
        Some(b"ignition") => BootstrapFormat::Ignition,
        _ => BootstrapFormat::CloudConfig,
    };
    Ok(Some(BootstrapData {
        value: value.0.clone(),
        format,
    }))
}

async fn apply<P>(
    obj: &P::Machine,
    ctx: &InfraContext<P>,
    api: &Api<P::Machine>,
) -> Result<Action, Error>
where
    P: InfrastructureProvider,
    P::Cluster: Watched,
    P::Machine: Watched,
{
    let Some(scope) = scope(obj, ctx).await? else {
        // The contract: nothing happens until a Machine of an existing Cluster owns this.
        return Ok(Action::requeue(Duration::from_secs(10)));
    };
    let ns = obj.namespace().unwrap_or_default();
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
    let paused = paused_condition(
        &mut conds,
        &scope.cluster,
        obj.annotations(),
        generation,
        now,
    );
    let mut action = Action::await_change();
    let mut patched = None;
    let provisioned = value
        .pointer("/status/initialization/provisioned")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !paused {
        let infra_ready = scope
            .cluster
            .status
            .as_ref()
            .and_then(|s| s.initialization.as_ref())
            .and_then(|i| i.infrastructure_provisioned)
            .unwrap_or(false);
        let data_secret = scope.machine.spec.bootstrap.data_secret_name.clone();
        let ready = match (infra_ready, data_secret) {
            (false, _) => {
                action = Action::requeue(Duration::from_secs(5));
                desired(
                    ct::READY,
                    Status::False,
                    reasons::WAITING_FOR_CLUSTER_INFRASTRUCTURE,
                    "waiting for the cluster infrastructure to be provisioned",
                )
            }
            (true, None) => desired(
                ct::READY,
                Status::False,
                reasons::WAITING_FOR_BOOTSTRAP_DATA,
                "waiting for the Machine's bootstrap data",
            ),
            (true, Some(secret)) => match bootstrap_data(ctx, &ns, &secret).await? {
                None => {
                    action = Action::requeue(Duration::from_secs(5));
                    desired(
                        ct::READY,
                        Status::False,
                        reasons::WAITING_FOR_BOOTSTRAP_DATA,
                        format!("bootstrap Secret {secret} not found"),
                    )
                }
                Some(data) => match ctx.provider.reconcile_machine(&scope, &data).await {
                    Ok(MachineOutcome::Provisioning(p)) => {
                        if let Value::Object(m) = p.status {
                            status.extend(m);
                        }
                        action = Action::requeue(p.requeue_after);
                        desired(ct::READY, Status::False, &p.reason, p.message)
                    }
                    Ok(MachineOutcome::Ready(r)) => {
                        if value.pointer("/spec/providerID").and_then(Value::as_str)
                            != Some(r.provider_id.as_str())
                        {
                            patched = Some(
                                api.patch(
                                    &obj.name_any(),
                                    &PatchParams::default(),
                                    &Patch::Merge(&json!({"spec": {"providerID": r.provider_id}})),
                                )
                                .await?
                                .meta()
                                .clone(),
                            );
                        }
                        status.insert("addresses".into(), json!(r.addresses));
                        if let Some(fd) = r.failure_domain {
                            status.insert("failureDomain".into(), json!(fd));
                        }
                        if let Value::Object(m) = r.status {
                            status.extend(m);
                        }
                        status.insert("initialization".into(), json!({"provisioned": true}));
                        desired(ct::READY, Status::True, reasons::PROVISIONED, r.message)
                    }
                    Err(e) => {
                        if !e.is_terminal() {
                            action =
                                Action::requeue(e.fixed_retry().unwrap_or(Duration::from_secs(5)));
                        }
                        desired(ct::READY, Status::False, e.reason(), e.to_string())
                    }
                },
            },
        };
        // A provisioned machine stays provisioned: a later provider hiccup is reported in
        // Ready, never by flipping the contract flag back.
        if provisioned {
            status.insert("initialization".into(), json!({"provisioned": true}));
        }
        conditions::set(&mut conds, ready, generation, now);
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

async fn cleanup<P>(obj: &P::Machine, ctx: &InfraContext<P>) -> Result<Action, Error>
where
    P: InfrastructureProvider,
    P::Cluster: Watched,
    P::Machine: Watched,
{
    let Some(scope) = scope(obj, ctx).await? else {
        // Without its Machine or Cluster there is nothing the provider can be told; providers
        // whose resources outlive that tag them so the cluster's deletion sweeps them.
        return Ok(Action::await_change());
    };
    match ctx.provider.delete_machine(&scope).await {
        Ok(Deletion::Gone) => Ok(Action::await_change()),
        Ok(Deletion::InProgress(p)) => Err(Error::Waiting(p.message)),
        Err(e) => Err(Error::Waiting(format!("deleting the machine: {e}"))),
    }
}
