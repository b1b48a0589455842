//! MachineHealthCheck reconciler. Selects the Machines of its Cluster by `spec.selector`
//! (those being deleted, paused or annotated `cluster.x-k8s.io/skip-remediation` left out),
//! reads their Nodes in the workload cluster, judges each with the pure
//! [`crate::plan::health::evaluate`] and gates remediation with [`crate::plan::health::gate`].
//!
//! On each Machine it owns `HealthCheckSucceeded`; when remediation is allowed it sets
//! `OwnerRemediated=False` (WaitingForRemediation) on unhealthy ones, which their owner (a
//! MachineSet or the KubeadmControlPlane) acts on. External remediation (`templateRef`) is
//! not supported and says so in `RemediationAllowed`. Status: expectedMachines,
//! currentHealthy, remediationsAllowed, targets, conditions, written only on change.
//!
//! Nothing in the management cluster announces a Node turning NotReady, so the check polls
//! the workload cluster while it has targets ([`crate::plan::health::poll_period`]: once per
//! shortest Node condition timeout), sooner when a timeout is due.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;
use slipway_api::{
    Cluster, Machine, MachineHealthCheck,
    common::Condition,
    names::{annotations, conditions as ct, labels, reasons},
};
use slipway_runtime::{
    Context, Error,
    conditions::{self, Desired, Status, desired},
    reconcile::write_status,
};

use crate::plan::health::{
    Checks, ClusterState, Cond, DEFAULT_NODE_STARTUP_TIMEOUT, Health, NodeState, Target, evaluate,
    gate, selector_matches,
};

/// How long a poll trusts a workload client without re-reading its kubeconfig Secret.
const KUBECONFIG_MAX_AGE: Duration = Duration::from_secs(120);

fn since(conds: &[Condition], type_: &str) -> Option<Timestamp> {
    conditions::get(conds, type_)
        .filter(|c| c.status == "True")
        .map(|c| c.last_transition_time.0)
}

fn machine_conds(m: &Machine) -> Vec<Condition> {
    m.status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
}

/// The Machines a check selects (before the skip rules).
pub fn selected<'a>(mhc: &MachineHealthCheck, machines: &'a [Machine]) -> Vec<&'a Machine> {
    machines
        .iter()
        .filter(|m| {
            m.spec.cluster_name == mhc.spec.cluster_name
                && m.metadata.deletion_timestamp.is_none()
                && selector_matches(&mhc.spec.selector, m.labels())
        })
        .collect()
}

/// Sets conditions on a Machine's status, writing (with its resourceVersion, so a concurrent
/// writer is not overwritten) only when something changed.
pub async fn set_machine_conditions(
    api: &Api<Machine>,
    m: &Machine,
    want: Vec<Desired>,
    now: Timestamp,
) -> Result<bool, Error> {
    let mut conds = machine_conds(m);
    let mut changed = false;
    for d in want {
        let before = conditions::get(&conds, &d.type_).cloned();
        let type_ = d.type_.clone();
        if conditions::set(&mut conds, d, m.metadata.generation, now) {
            // A verdict on the Node does not depend on the Machine's spec: a new generation
            // alone (a providerID, a bootstrap Secret name) is no reason to rewrite it.
            let after = conditions::get(&conds, &type_).cloned();
            changed |= match (before, after) {
                (Some(b), Some(mut a)) => {
                    a.observed_generation = b.observed_generation;
                    a != b
                }
                _ => true,
            };
        }
    }
    if changed {
        let written = api
            .patch_status(
                &m.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({
                    "metadata": {"resourceVersion": m.resource_version()},
                    "status": {"conditions": conds},
                })),
            )
            .await?;
        slipway_runtime::stale::superseded(&m.metadata, &written.metadata);
    }
    Ok(changed)
}

/// Nodes of the workload cluster by name; `None` when it does not answer.
async fn nodes(ctx: &Context, ns: &str, cluster: &str) -> Option<BTreeMap<String, Node>> {
    // A poll need not re-read the kubeconfig Secret each time: a renewed kubeconfig leaves the
    // old one valid for a long while, and a failing client is rebuilt on the next read.
    let client = ctx
        .remote
        .recent(&ctx.client, ns, cluster, KUBECONFIG_MAX_AGE)
        .await
        .ok()??;
    match Api::<Node>::all(client).list(&ListParams::default()).await {
        Ok(l) => Some(l.items.into_iter().map(|n| (n.name_any(), n)).collect()),
        Err(e) => {
            tracing::debug!(%cluster, %e, "workload cluster did not answer the health check");
            None
        }
    }
}

fn node_state(m: &Machine, nodes: Option<&BTreeMap<String, Node>>) -> NodeState {
    let Some(name) = m
        .status
        .as_ref()
        .and_then(|s| s.node_ref.as_ref())
        .map(|n| n.name.clone())
    else {
        return NodeState::NotYet;
    };
    let Some(nodes) = nodes else {
        return NodeState::Unknown;
    };
    match nodes.get(&name) {
        None => NodeState::Gone(name),
        Some(n) => NodeState::Present(
            n.status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|c| Cond {
                    type_: c.type_,
                    status: c.status,
                    reason: c.reason.unwrap_or_default(),
                    since: c
                        .last_transition_time
                        .map(|t| t.0)
                        .unwrap_or(Timestamp::UNIX_EPOCH),
                })
                .collect(),
        ),
    }
}

/// Entry point (no finalizer: a MachineHealthCheck owns nothing outside itself).
pub async fn reconcile(mhc: Arc<MachineHealthCheck>, ctx: Arc<Context>) -> Result<Action, Error> {
    if mhc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = mhc.namespace().unwrap_or_default();
    let api: Api<MachineHealthCheck> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cluster) = Api::<Cluster>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&mhc.spec.cluster_name)
        .await?
    else {
        return Ok(Action::requeue(Duration::from_secs(10)));
    };
    if ensure_owner(&api, &mhc, &cluster).await? {
        // The owner patch's own watch event brings the next pass, which reads the new
        // version its status write is guarded by.
        return Ok(Action::await_change());
    }
    let now = (ctx.clock)();
    let g = mhc.metadata.generation;
    let old = mhc.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let mut conds = status.conditions.take().unwrap_or_default();
    if slipway_runtime::reconcile::paused_condition(&mut conds, &cluster, mhc.annotations(), g, now)
    {
        status.conditions = Some(conds);
        write_status(&api, &mhc.metadata, Some(&old), &status).await?;
        return Ok(Action::await_change());
    }
    let mapi: Api<Machine> = Api::namespaced(ctx.client.clone(), &ns);
    let all = mapi
        .list(&ListParams::default().labels(&format!(
            "{}={}",
            labels::CLUSTER_NAME,
            mhc.spec.cluster_name
        )))
        .await?
        .items;
    let targets: Vec<&Machine> = selected(&mhc, &all)
        .into_iter()
        .filter(|m| {
            !m.annotations().contains_key(annotations::PAUSED)
                && !m.annotations().contains_key(annotations::SKIP_REMEDIATION)
        })
        .collect();
    let cluster_conds = cluster
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let cstate = ClusterState {
        control_plane_initialized: since(&cluster_conds, ct::CONTROL_PLANE_INITIALIZED),
        infrastructure_ready: since(&cluster_conds, ct::INFRASTRUCTURE_READY),
    };
    let node_map = if cstate.control_plane_initialized.is_some() {
        nodes(&ctx, &ns, &mhc.spec.cluster_name).await
    } else {
        None
    };
    let spec_checks = mhc.spec.checks.clone().unwrap_or_default();
    let checks = Checks {
        node_startup_timeout: spec_checks
            .node_startup_timeout_seconds
            .map_or(DEFAULT_NODE_STARTUP_TIMEOUT, i64::from),
        node: spec_checks.unhealthy_node_conditions.unwrap_or_default(),
        machine: spec_checks.unhealthy_machine_conditions.unwrap_or_default(),
    };
    let verdicts: Vec<(&Machine, Health)> = targets
        .iter()
        .map(|m| {
            let mc = machine_conds(m);
            let t = Target {
                created: m.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0),
                remediate_annotation: m.annotations().contains_key(annotations::REMEDIATE_MACHINE),
                control_plane: m.labels().contains_key(labels::CONTROL_PLANE),
                infra_ready_since: since(&mc, ct::INFRASTRUCTURE_READY),
                node: node_state(m, node_map.as_ref()),
                conditions: mc
                    .iter()
                    .map(|c| Cond {
                        type_: c.type_.clone(),
                        status: c.status.clone(),
                        reason: c.reason.clone(),
                        since: c.last_transition_time.0,
                    })
                    .collect(),
            };
            (*m, evaluate(&t, &cstate, &checks, now))
        })
        .collect();
    let total = verdicts.len() as i32;
    let unhealthy = verdicts.iter().filter(|(_, h)| h.is_unhealthy()).count() as i32;
    let remediation = mhc.spec.remediation.clone().unwrap_or_default();
    let external = remediation.template_ref.as_ref();
    let trigger = remediation.trigger_if.as_ref();
    let g8 = gate(trigger, total, unhealthy).map_err(Error::Waiting)?;
    let allowed = g8.allowed && external.is_none();
    let allowed_cond = if let Some(r) = external {
        desired(
            ct::REMEDIATION_ALLOWED,
            Status::False,
            reasons::EXTERNAL_REMEDIATION_NOT_SUPPORTED,
            format!(
                "spec.remediation.templateRef ({} {}) asks for external remediation, which slipway does not support; unhealthy machines are reported but not remediated",
                r.kind, r.name
            ),
        )
    } else if g8.allowed {
        desired(
            ct::REMEDIATION_ALLOWED,
            Status::True,
            reasons::REMEDIATION_ALLOWED,
            "",
        )
    } else {
        desired(
            ct::REMEDIATION_ALLOWED,
            Status::False,
            reasons::TOO_MANY_UNHEALTHY,
            g8.message.clone(),
        )
    };
    let restricted_now = !g8.allowed
        && unhealthy > 0
        && conditions::get(&conds, ct::REMEDIATION_ALLOWED)
            .is_none_or(|c| c.reason != reasons::TOO_MANY_UNHEALTHY);
    conditions::set(&mut conds, allowed_cond, g, now);
    if restricted_now {
        ctx.events
            .warning(mhc.as_ref(), "RemediationRestricted", g8.message.clone())
            .await;
    }
    let cluster_paused = slipway_runtime::reconcile::is_paused(&cluster, &BTreeMap::new());
    let mut next: Option<Duration> = None;
    for (m, h) in &verdicts {
        let mut want = vec![];
        match h {
            Health::Healthy(n) => {
                if let Some(n) = n {
                    next = Some(next.map_or(*n, |x| x.min(*n)));
                }
                want.push(desired(
                    ct::HEALTH_CHECK_SUCCEEDED,
                    Status::True,
                    reasons::HEALTH_CHECK_SUCCEEDED,
                    "",
                ));
            }
            Health::Unhealthy { reason, message } => {
                want.push(desired(
                    ct::HEALTH_CHECK_SUCCEEDED,
                    Status::False,
                    reason,
                    message.clone(),
                ));
                // The owner takes over once asked: only a missing or finished (True)
                // OwnerRemediated is (re)set.
                let owner_cond = conditions::get(
                    m.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_deref())
                        .unwrap_or_default(),
                    ct::OWNER_REMEDIATED,
                );
                if allowed && !cluster_paused && owner_cond.is_none_or(|c| c.status == "True") {
                    want.push(desired(
                        ct::OWNER_REMEDIATED,
                        Status::False,
                        reasons::WAITING_FOR_REMEDIATION,
                        "Waiting for remediation",
                    ));
                    ctx.events
                        .normal(
                            *m,
                            "MachineMarkedUnhealthy",
                            format!(
                                "Machine {}/{} has been marked as unhealthy by {}/{}",
                                ns,
                                m.name_any(),
                                ns,
                                mhc.name_any()
                            ),
                        )
                        .await;
                    tracing::info!(machine = %m.name_any(), health_check = %mhc.name_any(), %reason, "machine marked for remediation");
                }
            }
        }
        set_machine_conditions(&mapi, m, want, now).await?;
    }
    let mut names: Vec<String> = verdicts.iter().map(|(m, _)| m.name_any()).collect();
    names.sort();
    status.expected_machines = Some(total);
    status.current_healthy = Some(total - unhealthy);
    status.remediations_allowed = Some(if allowed { g8.remaining } else { 0 });
    status.targets = Some(names);
    status.observed_generation = g;
    status.conditions = Some(conds);
    write_status(&api, &mhc.metadata, Some(&old), &status).await?;
    Ok(if verdicts.is_empty() {
        Action::requeue(Duration::from_secs(30))
    } else {
        let poll = crate::plan::health::poll_period(&checks);
        Action::requeue(next.map_or(poll, |n| n.min(poll)))
    })
}

/// The Cluster owns its health checks (as upstream sets it).
async fn ensure_owner(
    api: &Api<MachineHealthCheck>,
    mhc: &MachineHealthCheck,
    cluster: &Cluster,
) -> Result<bool, Error> {
    let uid = cluster.uid().unwrap_or_default();
    if mhc.owner_references().iter().any(|o| o.uid == uid) {
        return Ok(false);
    }
    let mut refs = mhc.owner_references().to_vec();
    let mut r = cluster
        .controller_owner_ref(&())
        .ok_or_else(|| Error::NoUid {
            kind: "Cluster".into(),
            name: cluster.name_any(),
        })?;
    r.controller = None;
    r.block_owner_deletion = None;
    refs.push(r);
    let written = api
        .patch(
            &mhc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {
                "ownerReferences": refs,
                "resourceVersion": mhc.resource_version(),
            }})),
        )
        .await?;
    slipway_runtime::stale::superseded(&mhc.metadata, &written.metadata);
    Ok(true)
}
