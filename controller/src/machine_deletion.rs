//! What holds a Machine's deletion before its infrastructure goes, in upstream's order:
//! pre-drain hook annotations, the Node drain (cordon, then evictions through the Eviction
//! API so PodDisruptionBudgets hold, DaemonSet and mirror Pods skipped, MachineDrainRules
//! applied, `nodeDrainTimeoutSeconds`), the wait for volumes to detach
//! (`nodeVolumeDetachTimeoutSeconds`), then pre-terminate hook annotations. Decisions are the
//! pure [`crate::plan::drain`]; this module does the I/O and records `status.deletion`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::{
    api::core::v1::{Namespace, Node, Pod},
    apimachinery::pkg::apis::meta::v1::Time,
};
use kube::{
    Api, Client, ResourceExt,
    api::{EvictParams, ListParams, Patch, PatchParams},
};
use serde_json::json;
use slipway_api::{
    Cluster, Machine, MachineDrainRule,
    machine::{MachineDeletionStatus, MachineStatus},
    names::{annotations, reasons},
};
use slipway_runtime::{Context, Error};

use crate::plan::{
    drain::{PodView, Rule, hooks, plan_round, timed_out},
    health::selector_matches,
};

/// Why deletion waits: the Deleting condition's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// Upstream's Deleting reason.
    pub reason: &'static str,
    /// What it waits for.
    pub message: String,
}

fn started(slot: &mut Option<Time>, now: Timestamp) -> Timestamp {
    slot.get_or_insert(Time(now)).0
}

/// Whole seconds, as the stored timestamps have them, so messages stay equal between rounds.
fn at(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Runs the steps before infrastructure deletion; `Some` while one of them holds.
pub async fn before_infrastructure(
    ctx: &Context,
    machine: &Machine,
    status: &mut MachineStatus,
) -> Result<Option<Hold>, Error> {
    let now = (ctx.clock)();
    let deletion = status
        .deletion
        .get_or_insert_with(MachineDeletionStatus::default);
    let pre_drain = hooks(machine.annotations(), annotations::PRE_DRAIN_HOOK_PREFIX);
    if !pre_drain.is_empty() {
        started(&mut deletion.wait_for_pre_drain_hook_start_time, now);
        return Ok(Some(Hold {
            reason: reasons::WAITING_FOR_PRE_DRAIN_HOOK,
            message: format!(
                "Waiting for pre-drain hooks to succeed (hooks: {})",
                pre_drain.join(", ")
            ),
        }));
    }
    if let Some(hold) = drain(ctx, machine, deletion, now).await? {
        return Ok(Some(hold));
    }
    let pre_terminate = hooks(
        machine.annotations(),
        annotations::PRE_TERMINATE_HOOK_PREFIX,
    );
    if !pre_terminate.is_empty() {
        started(&mut deletion.wait_for_pre_terminate_hook_start_time, now);
        return Ok(Some(Hold {
            reason: reasons::WAITING_FOR_PRE_TERMINATE_HOOK,
            message: format!(
                "Waiting for pre-terminate hooks to succeed (hooks: {})",
                pre_terminate.join(", ")
            ),
        }));
    }
    Ok(None)
}

/// The workload client and the Machine's Node, when both are there to drain.
async fn node_of(ctx: &Context, machine: &Machine) -> Result<Option<(Client, Node)>, Error> {
    let Some(name) = machine
        .status
        .as_ref()
        .and_then(|s| s.node_ref.as_ref())
        .map(|n| n.name.clone())
    else {
        return Ok(None);
    };
    let ns = machine.namespace().unwrap_or_default();
    let Ok(Some(client)) = ctx
        .remote
        .client(&ctx.client, &ns, &machine.spec.cluster_name)
        .await
    else {
        tracing::info!(machine = %machine.name_any(), "workload cluster has no kubeconfig: not draining");
        return Ok(None);
    };
    match Api::<Node>::all(client.clone()).get_opt(&name).await {
        Ok(Some(node)) => Ok(Some((client, node))),
        Ok(None) => Ok(None),
        Err(e) => {
            // An unreachable workload cluster (being deleted itself) has nothing to drain.
            tracing::info!(machine = %machine.name_any(), %e, "workload cluster did not answer: not draining");
            Ok(None)
        }
    }
}

async fn drain(
    ctx: &Context,
    machine: &Machine,
    deletion: &mut MachineDeletionStatus,
    now: Timestamp,
) -> Result<Option<Hold>, Error> {
    if machine
        .annotations()
        .contains_key(annotations::EXCLUDE_NODE_DRAINING)
    {
        return Ok(None);
    }
    let Some((client, node)) = node_of(ctx, machine).await? else {
        return Ok(None);
    };
    let timeouts = machine.spec.deletion.clone().unwrap_or_default();
    let start = started(&mut deletion.node_drain_start_time, now);
    let node_name = node.name_any();
    if !timed_out(Some(start), timeouts.node_drain_timeout_seconds, now) {
        if let Some(hold) = drain_round(ctx, machine, &client, &node, start).await? {
            return Ok(Some(hold));
        }
    } else {
        tracing::info!(machine = %machine.name_any(), node = %node_name, "node drain timed out: proceeding");
    }
    if machine
        .annotations()
        .contains_key(annotations::EXCLUDE_WAIT_FOR_NODE_VOLUME_DETACH)
    {
        return Ok(None);
    }
    let attached: Vec<String> = node
        .status
        .as_ref()
        .and_then(|s| s.volumes_attached.as_ref())
        .into_iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    if attached.is_empty() {
        return Ok(None);
    }
    let vstart = started(&mut deletion.wait_for_node_volume_detach_start_time, now);
    if timed_out(
        Some(vstart),
        timeouts.node_volume_detach_timeout_seconds,
        now,
    ) {
        return Ok(None);
    }
    Ok(Some(Hold {
        reason: reasons::WAITING_FOR_VOLUME_DETACH,
        message: format!(
            "Waiting for Node volumes to be detached (started at {}):\n* Volumes {}",
            at(vstart),
            attached.join(", ")
        ),
    }))
}

/// MachineDrainRules of the Machine's namespace that apply to it.
async fn rules_for(ctx: &Context, machine: &Machine) -> Result<Vec<Rule>, Error> {
    let ns = machine.namespace().unwrap_or_default();
    let rules = Api::<MachineDrainRule>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items;
    if rules.is_empty() {
        return Ok(vec![]);
    }
    let cluster_labels = Api::<Cluster>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&machine.spec.cluster_name)
        .await?
        .map(|c| c.labels().clone())
        .unwrap_or_default();
    Ok(rules
        .into_iter()
        .filter(|r| {
            let sels = r.spec.machines.clone().unwrap_or_default();
            sels.is_empty()
                || sels.iter().any(|s| {
                    s.selector
                        .as_ref()
                        .is_none_or(|sel| selector_matches(sel, machine.labels()))
                        && s.cluster_selector
                            .as_ref()
                            .is_none_or(|sel| selector_matches(sel, &cluster_labels))
                })
        })
        .map(|r| Rule {
            name: r.name_any(),
            behavior: r.spec.drain.behavior.clone(),
            order: r.spec.drain.order.unwrap_or(0),
            pods: r.spec.pods.clone().unwrap_or_default(),
        })
        .collect())
}

/// Cordons the Node and runs one round of evictions; `Some` while Pods remain.
async fn drain_round(
    ctx: &Context,
    machine: &Machine,
    client: &Client,
    node: &Node,
    start: Timestamp,
) -> Result<Option<Hold>, Error> {
    let node_name = node.name_any();
    let werr = |what: &str, e: kube::Error| Error::Workload(format!("{what}: {e}"));
    if !node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        Api::<Node>::all(client.clone())
            .patch(
                &node_name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"unschedulable": true}})),
            )
            .await
            .map_err(|e| werr("cordoning the Node", e))?;
        tracing::info!(machine = %machine.name_any(), node = %node_name, "cordoned");
    }
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().fields(&format!("spec.nodeName={node_name}")))
        .await
        .map_err(|e| werr("listing the Node's Pods", e))?
        .items;
    if pods.is_empty() {
        return Ok(None);
    }
    let rules = rules_for(ctx, machine).await?;
    let ns_labels: BTreeMap<String, BTreeMap<String, String>> = if rules
        .iter()
        .any(|r| r.pods.iter().any(|p| p.namespace_selector.is_some()))
    {
        Api::<Namespace>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| werr("listing namespaces", e))?
            .items
            .into_iter()
            .map(|n| (n.name_any(), n.labels().clone()))
            .collect()
    } else {
        BTreeMap::new()
    };
    let views: Vec<PodView> = pods
        .iter()
        .map(|p| {
            let ns = p.namespace().unwrap_or_default();
            PodView {
                namespace_labels: ns_labels.get(&ns).cloned().unwrap_or_default(),
                namespace: ns,
                name: p.name_any(),
                labels: p.labels().clone(),
                controller_kind: p
                    .owner_references()
                    .iter()
                    .find(|o| o.controller == Some(true))
                    .map(|o| o.kind.clone()),
                mirror: p.annotations().contains_key(annotations::MIRROR_POD),
                completed: matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                ),
                deleting: p.metadata.deletion_timestamp.is_some(),
            }
        })
        .collect();
    let round = plan_round(&views, &rules);
    if round.done() {
        return Ok(None);
    }
    let mut blocked = Vec::new();
    let mut evicted = Vec::new();
    for key in &round.evict {
        let (ns, name) = key.split_once('/').expect("namespace/name");
        match Api::<Pod>::namespaced(client.clone(), ns)
            .evict(name, &EvictParams::default())
            .await
        {
            Ok(_) => {
                tracing::info!(machine = %machine.name_any(), node = %node_name, pod = %key, "evicted");
                evicted.push(key.clone());
            }
            Err(kube::Error::Api(e)) if e.code == 404 => evicted.push(key.clone()),
            Err(kube::Error::Api(e)) => {
                blocked.push(format!("* Pod {key}: cannot evict pod: {}", e.message))
            }
            Err(e) => return Err(werr("evicting", e)),
        }
    }
    if blocked.is_empty()
        && round.terminating.is_empty()
        && round.waiting_completion.is_empty()
        && round.later.is_empty()
    {
        // Everything left was evicted now; the next round confirms the Pods are gone.
        return Ok(Some(Hold {
            reason: reasons::DRAINING_NODE,
            message: format!(
                "Drain not completed yet (started at {}):\n* Pods {}: evicted, waiting for them to be removed from the Node",
                at(start),
                evicted.join(", ")
            ),
        }));
    }
    let mut lines = Vec::new();
    let gone: Vec<String> = round.terminating.iter().chain(&evicted).cloned().collect();
    if !gone.is_empty() {
        lines.push(format!(
            "* Pods {}: deletionTimestamp set, but still not removed from the Node",
            gone.join(", ")
        ));
    }
    lines.extend(blocked);
    if !round.waiting_completion.is_empty() {
        lines.push(format!(
            "* Pods {}: waiting for completion",
            round.waiting_completion.join(", ")
        ));
    }
    if !round.later.is_empty() {
        lines.push(format!(
            "* Pods {}: waiting for Pods of a lower drain order to be removed",
            round.later.join(", ")
        ));
    }
    Ok(Some(Hold {
        reason: reasons::DRAINING_NODE,
        message: format!(
            "Drain not completed yet (started at {}):\n{}",
            at(start),
            lines.join("\n")
        ),
    }))
}
