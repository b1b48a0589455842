//! MachineSet reconciler: keeps `replicas` Machines matching the selector, creating each from
//! the template (bootstrap and infrastructure templates cloned, the Machine controlled by the
//! set) and deleting surplus ones in the set's deletion order ([`crate::plan::machineset`]).
//! Status: replica counts, selector, MachinesReady and scaling conditions, written on change.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use kube::{
    Api, ResourceExt,
    api::{ListParams, ObjectMeta, PostParams},
    runtime::controller::Action,
};
use slipway_api::{
    Cluster, Machine, MachineSet,
    machine::DeletionOrder,
    names::{annotations, conditions as ct, finalizers, labels, reasons},
};

use slipway_runtime::{hold, reconcile::dispatch};

use slipway_runtime::{
    Context, Error,
    conditions::{self, Status, desired},
    objects::{
        clone_template, controlled_by, controller_ref, delete_children, delete_if_exists,
        ensure_template_owner, random_name, sweep_orphans,
    },
};

use crate::plan::machineset::{SetAction, SetMachine, plan};

/// Entry point: finalizer dispatch.
pub async fn reconcile(ms: Arc<MachineSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<MachineSet> =
        Api::namespaced(ctx.client.clone(), &ms.namespace().unwrap_or_default());
    let (ctx, api) = (&ctx, &api);
    dispatch(
        api,
        finalizers::MACHINE_SET,
        ms,
        |s| async move { apply(&s, ctx, api).await },
        |s| async move { cleanup(&s, ctx).await },
    )
    .await
}

/// `a=b,c=d` from matchLabels (matchExpressions are not used by slipway's sets).
pub fn selector_string(
    sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> String {
    sel.match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The machines a set controls.
pub async fn machines_of(ctx: &Context, ms: &MachineSet) -> Result<Vec<Machine>, Error> {
    let api: Api<Machine> =
        Api::namespaced(ctx.client.clone(), &ms.namespace().unwrap_or_default());
    let uid = ms.uid().unwrap_or_default();
    Ok(api
        .list(&ListParams::default().labels(&selector_string(&ms.spec.selector)))
        .await?
        .items
        .into_iter()
        .filter(|m| controlled_by(m, &uid))
        .collect())
}

async fn apply(ms: &MachineSet, ctx: &Context, api: &Api<MachineSet>) -> Result<Action, Error> {
    let ns = ms.namespace().unwrap_or_default();
    let Some(cluster) = Api::<Cluster>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&ms.spec.cluster_name)
        .await?
    else {
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    let old = ms.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let mut conds = status.conditions.take().unwrap_or_default();
    let g = ms.metadata.generation;
    let now = (ctx.clock)();
    let paused = slipway_runtime::reconcile::paused_condition(
        &mut conds,
        &cluster,
        ms.annotations(),
        g,
        now,
    );
    let mut action = Action::await_change();
    if !paused {
        let tpl = &ms.spec.template.spec;
        for r in [
            Some(&tpl.infrastructure_ref),
            tpl.bootstrap.config_ref.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            // Templates only: a set whose template names a concrete object owns nothing.
            if r.kind.ends_with("Template") {
                ensure_template_owner(ctx, &ns, r, &cluster).await?;
            }
        }
        let machines = machines_of(ctx, ms).await?;
        let desired_n = ms.spec.replicas.unwrap_or(1);
        let remediated = remediate(ctx, ms, &machines, desired_n).await?;
        conditions::set(&mut conds, remediating_condition(&machines), g, now);
        let view: Vec<SetMachine> = machines
            .iter()
            .map(|m| SetMachine {
                name: m.name_any(),
                created: m
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map_or(0, |t| t.0.as_second()),
                deleting: m.metadata.deletion_timestamp.is_some()
                    || remediated.contains(&m.name_any()),
                marked: m.annotations().contains_key(annotations::DELETE_MACHINE),
                ready: conditions::machine_is(m, ct::READY),
            })
            .collect();
        let order = ms
            .spec
            .deletion
            .as_ref()
            .and_then(|d| d.order)
            .unwrap_or(DeletionOrder::Random);
        let mut step = plan(desired_n, &view, order);
        // Preflight: new workers must respect the version skew against the control plane.
        let mut blocked = None;
        if let (SetAction::Create(_), Some(v)) = (&step, tpl.version.as_deref())
            && let Some(cp) = control_plane_version(ctx, &ns, &cluster).await?
            && let Err(why) = crate::version::worker_version(&cp, v)
        {
            ctx.events
                .warning(ms, reasons::VERSION_SKEW, why.clone())
                .await;
            blocked = Some(why);
            step = SetAction::Idle;
        }
        match &step {
            SetAction::Create(n) => {
                // Leftovers of a crashed creation are cleared before creating again.
                let templates: Vec<_> = [
                    Some(&tpl.infrastructure_ref),
                    tpl.bootstrap.config_ref.as_ref(),
                ]
                .into_iter()
                .flatten()
                .filter(|r| r.kind.ends_with("Template"))
                .collect();
                sweep_orphans(
                    ctx,
                    &ns,
                    &ms.uid().unwrap_or_default(),
                    &format!("{}={}", labels::MACHINE_SET_NAME, ms.name_any()),
                    &templates,
                    &machines.iter().map(|m| m.name_any()).collect(),
                )
                .await?;
                for _ in 0..*n {
                    create_machine(ctx, ms, &cluster.name_any()).await?;
                }
            }
            SetAction::Delete(names) => {
                let mapi: Api<Machine> = Api::namespaced(ctx.client.clone(), &ns);
                for n in names {
                    delete_if_exists(&mapi, n).await?;
                    tracing::info!(machine_set = %ms.name_any(), machine = %n, "deleted machine");
                    ctx.events
                        .normal(ms, "SuccessfulDelete", format!("Deleted machine {n:?}"))
                        .await;
                }
            }
            SetAction::Idle => {}
        }
        let live: Vec<&Machine> = machines
            .iter()
            .filter(|m| {
                m.metadata.deletion_timestamp.is_none() && !remediated.contains(&m.name_any())
            })
            .collect();
        let ready_n = live
            .iter()
            .filter(|m| conditions::machine_is(m, ct::READY))
            .count() as i32;
        let available_n = live
            .iter()
            .filter(|m| conditions::machine_is(m, ct::AVAILABLE))
            .count() as i32;
        status.replicas = Some(live.len() as i32);
        status.ready_replicas = Some(ready_n);
        status.available_replicas = Some(available_n);
        status.up_to_date_replicas = Some(live.len() as i32);
        status.selector = Some(selector_string(&ms.spec.selector));
        conditions::set(
            &mut conds,
            slipway_runtime::merge::machines(ct::MACHINES_READY, ct::READY, &live),
            g,
            now,
        );
        conditions::set(
            &mut conds,
            slipway_runtime::merge::machines(ct::MACHINES_UP_TO_DATE, ct::UP_TO_DATE, &live),
            g,
            now,
        );
        let current = live.len() as i32;
        let blocked_msg = |verb: &str| {
            blocked.as_ref().map(|why| {
                format!(
                    "Scaling {verb} from {current} to {desired_n} replicas is blocked because:\n* {why}"
                )
            })
        };
        for (t, active, verb, idle) in [
            (
                ct::SCALING_UP,
                current < desired_n,
                "up",
                reasons::NOT_SCALING_UP,
            ),
            (
                ct::SCALING_DOWN,
                current > desired_n,
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
                        blocked_msg(verb).unwrap_or_else(|| {
                            format!("Scaling {verb} from {current} to {desired_n} replicas")
                        })
                    } else {
                        String::new()
                    },
                ),
                g,
                now,
            );
        }
        status.observed_generation = g;
        if step != SetAction::Idle || ready_n < desired_n || !remediated.is_empty() {
            action = Action::requeue(Duration::from_secs(5));
        }
    }
    status.conditions = Some(conds);
    if let Some(wait) = hold::write_status_or_hold(api, &ms.metadata, &old, &status).await? {
        // Only the wording of conditions changed: it waits for the next real change.
        return Ok(Action::requeue(wait));
    }
    Ok(action)
}

/// The version the Cluster's control plane runs (`status.version` through the contract).
async fn control_plane_version(
    ctx: &Context,
    ns: &str,
    cluster: &Cluster,
) -> Result<Option<String>, Error> {
    let Some(r) = &cluster.spec.control_plane_ref else {
        return Ok(None);
    };
    Ok(ctx.resolver.get(ns, r).await?.and_then(|o| {
        o.data
            .pointer("/status/version")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    }))
}

async fn create_machine(ctx: &Context, ms: &MachineSet, cluster: &str) -> Result<(), Error> {
    let ns = ms.namespace().unwrap_or_default();
    let name = random_name(&ms.name_any());
    let tpl = &ms.spec.template;
    let mut labels: BTreeMap<String, String> = tpl
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.extend(ms.spec.selector.match_labels.clone().unwrap_or_default());
    labels.insert(labels::CLUSTER_NAME.into(), cluster.into());
    labels.insert(labels::MACHINE_SET_NAME.into(), ms.name_any());
    slipway_runtime::runner::inherit_watch_filter(ms.labels(), &mut labels);
    if let Some(md) = ms.labels().get(labels::MACHINE_DEPLOYMENT_NAME) {
        labels.insert(labels::MACHINE_DEPLOYMENT_NAME.into(), md.clone());
    }
    let owner = controller_ref(ms)?;
    let mut spec = tpl.spec.clone();
    spec.cluster_name = cluster.into();
    spec.infrastructure_ref = clone_template(
        ctx,
        &ns,
        &tpl.spec.infrastructure_ref,
        &name,
        &labels,
        owner.clone(),
        None,
    )
    .await?;
    if let Some(r) = &tpl.spec.bootstrap.config_ref {
        spec.bootstrap.config_ref =
            Some(clone_template(ctx, &ns, r, &name, &labels, owner.clone(), None).await?);
    }
    let machine = Machine {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            annotations: tpl.metadata.as_ref().and_then(|m| m.annotations.clone()),
            owner_references: Some(vec![owner]),
            // As upstream's MachineSet: created with the Machine controller's finalizer, so
            // that controller has no metadata write of its own to make.
            finalizers: Some(vec![finalizers::MACHINE.to_string()]),
            ..Default::default()
        },
        spec,
        status: None,
    };
    Api::<Machine>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &machine)
        .await?;
    tracing::info!(machine_set = %ms.name_any(), machine = %name, "created machine");
    ctx.events
        .normal(ms, "SuccessfulCreate", format!("Created machine {name:?}"))
        .await;
    Ok(())
}

async fn cleanup(ms: &MachineSet, ctx: &Context) -> Result<Action, Error> {
    let machines = machines_of(ctx, ms).await?;
    let api: Api<Machine> =
        Api::namespaced(ctx.client.clone(), &ms.namespace().unwrap_or_default());
    delete_children(&api, &machines, "machines").await
}

fn owner_remediated(m: &Machine) -> Option<&slipway_api::common::Condition> {
    conditions::get(
        m.status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default(),
        ct::OWNER_REMEDIATED,
    )
}

/// Whether a MachineHealthCheck asked the owner to remediate `m`: HealthCheckSucceeded and
/// OwnerRemediated both False.
pub fn remediation_asked(m: &Machine) -> bool {
    let conds = m
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    conditions::get(conds, ct::HEALTH_CHECK_SUCCEEDED).is_some_and(|c| c.status == "False")
        && conditions::get(conds, ct::OWNER_REMEDIATED).is_some_and(|c| c.status == "False")
}

/// Remediation by a MachineSet, as upstream: every Machine a health check asked to remediate is
/// deleted (OwnerRemediated becomes MachineDeleting) and the scaling below replaces it; the
/// owning MachineDeployment's `remediation.maxInFlight` caps how many are in flight. Returns
/// the names deleted now.
async fn remediate(
    ctx: &Context,
    ms: &MachineSet,
    machines: &[Machine],
    replicas: i32,
) -> Result<Vec<String>, Error> {
    let asked: Vec<&Machine> = machines
        .iter()
        .filter(|m| m.metadata.deletion_timestamp.is_none() && remediation_asked(m))
        .collect();
    if asked.is_empty() {
        return Ok(vec![]);
    }
    let ns = ms.namespace().unwrap_or_default();
    let mut budget = usize::MAX;
    if let Some(md) = ms.labels().get(labels::MACHINE_DEPLOYMENT_NAME)
        && let Some(md) = Api::<slipway_api::MachineDeployment>::namespaced(ctx.client.clone(), &ns)
            .get_opt(md)
            .await?
        && let Some(v) = md
            .spec
            .remediation
            .as_ref()
            .and_then(|r| r.max_in_flight.as_ref())
    {
        let max = match v {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => *i,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => {
                crate::plan::resolve_limit(s, replicas, true).unwrap_or(1)
            }
        };
        let in_flight = machines
            .iter()
            .filter(|m| {
                m.metadata.deletion_timestamp.is_some()
                    && owner_remediated(m).is_some_and(|c| c.reason == reasons::MACHINE_DELETING)
            })
            .count();
        budget = usize::try_from(max).unwrap_or(0).saturating_sub(in_flight);
    }
    let api: Api<Machine> = Api::namespaced(ctx.client.clone(), &ns);
    let now = (ctx.clock)();
    let mut done = vec![];
    for m in asked.into_iter().take(budget) {
        crate::mhc::set_machine_conditions(
            &api,
            m,
            vec![desired(
                ct::OWNER_REMEDIATED,
                Status::False,
                reasons::MACHINE_DELETING,
                "Machine is deleting",
            )],
            now,
        )
        .await?;
        delete_if_exists(&api, &m.name_any()).await?;
        tracing::info!(machine_set = %ms.name_any(), machine = %m.name_any(), "remediating unhealthy machine: deleted");
        ctx.events
            .normal(
                ms,
                "MachineRemediated",
                format!(
                    "Deleted unhealthy machine {:?} (a replacement follows)",
                    m.name_any()
                ),
            )
            .await;
        done.push(m.name_any());
    }
    Ok(done)
}

/// Remediating: which Machines are being remediated (upstream's message form).
fn remediating_condition(machines: &[Machine]) -> conditions::Desired {
    let lines: Vec<String> = machines
        .iter()
        .filter_map(|m| {
            owner_remediated(m)
                .filter(|c| c.status == "False")
                .map(|c| format!("* Machine {}: {}", m.name_any(), c.message))
        })
        .collect();
    if lines.is_empty() {
        desired(ct::REMEDIATING, Status::False, reasons::NOT_REMEDIATING, "")
    } else {
        desired(
            ct::REMEDIATING,
            Status::True,
            reasons::REMEDIATING,
            lines.join("\n"),
        )
    }
}
