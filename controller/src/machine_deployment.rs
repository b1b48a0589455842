//! MachineDeployment reconciler: one MachineSet per template revision (named
//! `<deployment>-<template hash>`, labelled `machine-template-hash`), scaled by the Deployment
//! algorithm ([`crate::plan::rollout`]) within maxSurge / maxUnavailable; old sets are deleted
//! once empty. Status sums the sets; conditions say whether a rollout or scaling is under way.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;
use slipway_api::{
    Cluster, Machine, MachineDeployment, MachineSet,
    machine::MachineSetSpec,
    names::{annotations, conditions as ct, finalizers, labels, reasons},
};

use slipway_runtime::{hold, reconcile::dispatch};

use slipway_runtime::{
    Context, Error,
    conditions::{self, Status, desired},
    objects::{controlled_by, controller_ref, create_once, ensure_template_owner, hash},
};

use crate::plan::{
    resolve_limit,
    rollout::{SetView, plan},
};

/// Entry point: finalizer dispatch.
pub async fn reconcile(md: Arc<MachineDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<MachineDeployment> =
        Api::namespaced(ctx.client.clone(), &md.namespace().unwrap_or_default());
    let (ctx, api) = (&ctx, &api);
    dispatch(
        api,
        finalizers::MACHINE_DEPLOYMENT,
        md,
        |d| async move { apply(&d, ctx, api).await },
        |d| async move { cleanup(&d, ctx).await },
    )
    .await
}

/// The template hash of a deployment: one MachineSet per distinct value.
pub fn template_hash(md: &MachineDeployment) -> String {
    hash(&json!(md.spec.template))
}

fn limit(v: Option<&IntOrString>, total: i32, round_up: bool, default: i32) -> i32 {
    match v {
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => resolve_limit(s, total, round_up).unwrap_or(default),
        None => default,
    }
}

async fn sets_of(ctx: &Context, md: &MachineDeployment) -> Result<Vec<MachineSet>, Error> {
    let api: Api<MachineSet> =
        Api::namespaced(ctx.client.clone(), &md.namespace().unwrap_or_default());
    let uid = md.uid().unwrap_or_default();
    Ok(api
        .list(&ListParams::default().labels(&format!(
            "{}={}",
            labels::MACHINE_DEPLOYMENT_NAME,
            md.name_any()
        )))
        .await?
        .items
        .into_iter()
        .filter(|s| controlled_by(s, &uid))
        .collect())
}

async fn apply(
    md: &MachineDeployment,
    ctx: &Context,
    api: &Api<MachineDeployment>,
) -> Result<Action, Error> {
    let ns = md.namespace().unwrap_or_default();
    let Some(cluster) = Api::<Cluster>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&md.spec.cluster_name)
        .await?
    else {
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    let old = md.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let mut conds = status.conditions.take().unwrap_or_default();
    let g = md.metadata.generation;
    let now = (ctx.clock)();
    let paused = slipway_runtime::reconcile::is_paused(&cluster, md.annotations())
        || md.spec.paused == Some(true);
    conditions::set(&mut conds, conditions::paused(paused), g, now);
    let mut action = Action::await_change();
    if !paused {
        let tpl = &md.spec.template.spec;
        for r in [
            Some(&tpl.infrastructure_ref),
            tpl.bootstrap.config_ref.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            ensure_template_owner(ctx, &ns, r, &cluster).await?;
        }
        let desired_n = md.spec.replicas.unwrap_or(1);
        let hash = template_hash(md);
        let sets = sets_of(ctx, md).await?;
        let ru = md
            .spec
            .rollout
            .as_ref()
            .and_then(|r| r.strategy.as_ref())
            .and_then(|s| s.rolling_update.clone())
            .unwrap_or_default();
        let max_surge = limit(ru.max_surge.as_ref(), desired_n, true, 1);
        let max_unavailable = limit(ru.max_unavailable.as_ref(), desired_n, false, 0);
        let views: Vec<SetView> = sets
            .iter()
            .filter(|s| s.metadata.deletion_timestamp.is_none())
            .map(|s| SetView {
                name: s.name_any(),
                current: s.labels().get(labels::MACHINE_TEMPLATE_HASH) == Some(&hash),
                replicas: s.spec.replicas.unwrap_or(0),
                available: s
                    .status
                    .as_ref()
                    .and_then(|st| st.available_replicas)
                    .unwrap_or(0),
                created: s
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map_or(0, |t| t.0.as_second()),
            })
            .collect();
        let step = plan(desired_n, max_surge, max_unavailable, &views);
        let sapi: Api<MachineSet> = Api::namespaced(ctx.client.clone(), &ns);
        if let Some(n) = step.create_current {
            create_set(ctx, md, &hash, n, desired_n + max_surge).await?;
        }
        for (name, replicas) in &step.scale {
            sapi.patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({
                    "metadata": {"annotations": {annotations::DESIRED_REPLICAS: desired_n.to_string()}},
                    "spec": {"replicas": replicas}
                })),
            )
            .await?;
        }
        // Old revisions that have drained go; their MachineSet deletion finishes the rollout.
        for s in sets.iter().filter(|s| {
            s.labels().get(labels::MACHINE_TEMPLATE_HASH) != Some(&hash)
                && s.spec.replicas == Some(0)
                && s.status.as_ref().and_then(|st| st.replicas).unwrap_or(0) == 0
                && s.metadata.deletion_timestamp.is_none()
        }) {
            sapi.delete(&s.name_any(), &DeleteParams::default()).await?;
            tracing::info!(deployment = %md.name_any(), set = %s.name_any(), "deleted machine set");
            ctx.events
                .normal(
                    md,
                    "SuccessfulDelete",
                    format!("Deleted MachineSet {:?}", s.name_any()),
                )
                .await;
        }
        let sum = |f: &dyn Fn(&MachineSet) -> Option<i32>| -> i32 {
            sets.iter().map(|s| f(s).unwrap_or(0)).sum()
        };
        let replicas = sum(&|s| s.status.as_ref().and_then(|st| st.replicas));
        let ready = sum(&|s| s.status.as_ref().and_then(|st| st.ready_replicas));
        let available = sum(&|s| s.status.as_ref().and_then(|st| st.available_replicas));
        let up_to_date = sets
            .iter()
            .filter(|s| s.labels().get(labels::MACHINE_TEMPLATE_HASH) == Some(&hash))
            .map(|s| s.status.as_ref().and_then(|st| st.replicas).unwrap_or(0))
            .sum::<i32>();
        status.replicas = Some(replicas);
        status.ready_replicas = Some(ready);
        status.available_replicas = Some(available);
        status.up_to_date_replicas = Some(up_to_date);
        status.selector = Some(crate::machine_set::selector_string(&md.spec.selector));
        let rolling = views.iter().any(|v| !v.current);
        let min_available = (desired_n - max_unavailable).max(0);
        conditions::set(
            &mut conds,
            if available >= min_available {
                desired(ct::AVAILABLE, Status::True, reasons::AVAILABLE, "")
            } else {
                desired(
                    ct::AVAILABLE,
                    Status::False,
                    reasons::NOT_AVAILABLE,
                    format!(
                        "{available} available replicas, at least {min_available} required (spec.rollout.strategy.rollingUpdate.maxUnavailable is {max_unavailable}, spec.replicas is {desired_n})"
                    ),
                )
            },
            g,
            now,
        );
        conditions::set(
            &mut conds,
            if rolling {
                desired(
                    ct::ROLLING_OUT,
                    Status::True,
                    reasons::ROLLING_OUT,
                    format!(
                        "Rolling out {} not up-to-date replicas",
                        (replicas - up_to_date).max(0)
                    ),
                )
            } else {
                desired(ct::ROLLING_OUT, Status::False, reasons::NOT_ROLLING_OUT, "")
            },
            g,
            now,
        );
        let machines: Api<Machine> = Api::namespaced(ctx.client.clone(), &ns);
        let mine = machines
            .list(&ListParams::default().labels(&format!(
                "{}={}",
                labels::MACHINE_DEPLOYMENT_NAME,
                md.name_any()
            )))
            .await?
            .items;
        let live: Vec<&Machine> = mine
            .iter()
            .filter(|m| m.metadata.deletion_timestamp.is_none())
            .collect();
        for (t, source) in [
            (ct::MACHINES_READY, ct::READY),
            (ct::MACHINES_UP_TO_DATE, ct::UP_TO_DATE),
        ] {
            conditions::set(
                &mut conds,
                slipway_runtime::merge::machines(t, source, &live),
                g,
                now,
            );
        }
        for (t, active, verb, idle) in [
            (
                ct::SCALING_UP,
                !rolling && replicas < desired_n,
                "up",
                reasons::NOT_SCALING_UP,
            ),
            (
                ct::SCALING_DOWN,
                !rolling && replicas > desired_n,
                "down",
                reasons::NOT_SCALING_DOWN,
            ),
        ] {
            conditions::set(
                &mut conds,
                desired(
                    t,
                    Status::from_bool(active),
                    if active { t } else { idle },
                    if active {
                        format!("Scaling {verb} from {replicas} to {desired_n} replicas")
                    } else {
                        String::new()
                    },
                ),
                g,
                now,
            );
        }
        status.phase = Some(
            if replicas < desired_n {
                "ScalingUp"
            } else if replicas > desired_n {
                "ScalingDown"
            } else if available >= desired_n {
                "Running"
            } else {
                "ScalingUp"
            }
            .into(),
        );
        status.observed_generation = g;
        if rolling || replicas != desired_n || available < desired_n {
            action = Action::requeue(Duration::from_secs(5));
        }
    }
    status.conditions = Some(conds);
    if let Some(wait) = hold::write_status_or_hold(api, &md.metadata, &old, &status).await? {
        // Only the wording of conditions changed: it waits for the next real change.
        return Ok(Action::requeue(wait));
    }
    Ok(action)
}

async fn create_set(
    ctx: &Context,
    md: &MachineDeployment,
    hash: &str,
    replicas: i32,
    max_replicas: i32,
) -> Result<(), Error> {
    let ns = md.namespace().unwrap_or_default();
    let name = format!("{}-{hash}", md.name_any());
    let mut set_labels: BTreeMap<String, String> = md
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    set_labels.insert(labels::CLUSTER_NAME.into(), md.spec.cluster_name.clone());
    set_labels.insert(labels::MACHINE_DEPLOYMENT_NAME.into(), md.name_any());
    set_labels.insert(labels::MACHINE_TEMPLATE_HASH.into(), hash.into());
    slipway_runtime::runner::inherit_watch_filter(md.labels(), &mut set_labels);
    let mut selector = md.spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(labels::MACHINE_TEMPLATE_HASH.into(), hash.into());
    let mut template = md.spec.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    let tl = meta.labels.get_or_insert_with(BTreeMap::new);
    tl.insert(labels::MACHINE_TEMPLATE_HASH.into(), hash.into());
    tl.insert(labels::MACHINE_DEPLOYMENT_NAME.into(), md.name_any());
    let revision = sets_of(ctx, md).await?.len() + 1;
    let set = MachineSet {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(set_labels),
            annotations: Some(BTreeMap::from([
                (annotations::REVISION.into(), revision.to_string()),
                (
                    annotations::DESIRED_REPLICAS.into(),
                    md.spec.replicas.unwrap_or(1).to_string(),
                ),
                (annotations::MAX_REPLICAS.into(), max_replicas.to_string()),
            ])),
            owner_references: Some(vec![controller_ref(md)?]),
            // As upstream's MachineDeployment: created with the MachineSet controller's
            // finalizer, so that controller has no metadata write of its own to make.
            finalizers: Some(vec![finalizers::MACHINE_SET.to_string()]),
            ..Default::default()
        },
        spec: MachineSetSpec {
            cluster_name: md.spec.cluster_name.clone(),
            replicas: Some(replicas),
            selector,
            template,
            machine_naming: md.spec.machine_naming.clone(),
            deletion: md.spec.deletion.clone(),
        },
        status: None,
    };
    if create_once(
        &Api::<MachineSet>::namespaced(ctx.client.clone(), &ns),
        &set,
    )
    .await?
    {
        tracing::info!(deployment = %md.name_any(), set = %name, "created machine set");
        ctx.events
            .normal(
                md,
                "SuccessfulCreate",
                format!("Created MachineSet {name:?}"),
            )
            .await;
    }
    Ok(())
}

async fn cleanup(md: &MachineDeployment, ctx: &Context) -> Result<Action, Error> {
    let sets = sets_of(ctx, md).await?;
    let api: Api<MachineSet> =
        Api::namespaced(ctx.client.clone(), &md.namespace().unwrap_or_default());
    slipway_runtime::objects::delete_children(&api, &sets, "machine sets").await
}
