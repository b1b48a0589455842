//! KubeadmControlPlane remediation: control-plane Machines a MachineHealthCheck asked to
//! remediate (HealthCheckSucceeded and OwnerRemediated False) are deleted one at a time by
//! the pure [`crate::plan::remediation::decide`]; the scaling that follows creates the
//! replacement. The remediation in progress is recorded on the control plane
//! (`controlplane.cluster.x-k8s.io/remediation-in-progress`) until the replacement exists,
//! then moves to it (`remediation-for`) so a failing replacement counts as a retry;
//! `status.lastRemediation` keeps the last one. Why a machine is not remediated now is its
//! OwnerRemediated message.

use std::collections::BTreeSet;

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;
use slipway_api::{
    KubeadmControlPlane, Machine,
    controlplane::LastRemediationStatus,
    names::{annotations, conditions as ct, reasons},
};
use slipway_runtime::{
    Context, Error,
    conditions::{self, Desired, Status, desired},
    objects::delete_if_exists,
};

use crate::{
    kcp_health,
    mhc::set_machine_conditions,
    plan::remediation::{CpTarget, Decision, RemediationData, Settings, decide},
};

/// What a remediation pass did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// A machine was deleted now (the scaling step waits for the next pass).
    pub deleted: Option<String>,
    /// The new `status.lastRemediation`, when one happened.
    pub last: Option<LastRemediationStatus>,
    /// The control plane's Remediating condition.
    pub condition: Desired,
}

fn conds(m: &Machine) -> &[slipway_api::common::Condition] {
    m.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

fn is(m: &Machine, type_: &str, status: &str) -> bool {
    conditions::get(conds(m), type_).is_some_and(|c| c.status == status)
}

/// One remediation pass over the control plane's machines.
pub async fn reconcile(
    ctx: &Context,
    kcp: &KubeadmControlPlane,
    machines: &[Machine],
    health: &kcp_health::Observed,
    initialized: bool,
) -> Result<Outcome, Error> {
    let ns = kcp.namespace().unwrap_or_default();
    let mapi: Api<Machine> = Api::namespaced(ctx.client.clone(), &ns);
    let kapi: Api<KubeadmControlPlane> = Api::namespaced(ctx.client.clone(), &ns);
    let now = (ctx.clock)();
    let mut in_progress = kcp
        .annotations()
        .get(annotations::REMEDIATION_IN_PROGRESS)
        .map(|v| RemediationData::parse(v))
        .transpose()
        .map_err(Error::Waiting)?;
    if let Some(data) = &in_progress
        && let Some(replacement) = machines.iter().find(|m| {
            // Creation times have whole seconds: a replacement made within the second of
            // the remediation counts.
            m.name_any() != data.machine
                && m.metadata
                    .creation_timestamp
                    .as_ref()
                    .is_some_and(|t| t.0.as_second() >= data.timestamp.0.as_second())
        })
    {
        mapi.patch(
            &replacement.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {
                annotations::REMEDIATION_FOR: data.to_annotation()}}})),
        )
        .await?;
        kapi.patch(
            &kcp.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {
                annotations::REMEDIATION_IN_PROGRESS: null}}})),
        )
        .await?;
        in_progress = None;
    }
    let members: BTreeSet<&str> = health
        .members
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let targets: Vec<CpTarget> = machines
        .iter()
        .map(|m| {
            let node = m
                .status
                .as_ref()
                .and_then(|s| s.node_ref.as_ref())
                .map(|n| n.name.as_str());
            let unhealthy = is(m, ct::HEALTH_CHECK_SUCCEEDED, "False");
            let member = node.is_some_and(|n| members.contains(n));
            CpTarget {
                name: m.name_any(),
                created: m
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map_or(0, |t| t.0.as_second()),
                has_node: node.is_some(),
                deleting: m.metadata.deletion_timestamp.is_some(),
                unhealthy,
                remediation_asked: is(m, ct::OWNER_REMEDIATED, "False"),
                remediate_annotation: m.annotations().contains_key(annotations::REMEDIATE_MACHINE),
                etcd_member: member,
                etcd_healthy: member && !unhealthy && is(m, ct::NODE_READY, "True"),
                remediation_for: m
                    .annotations()
                    .get(annotations::REMEDIATION_FOR)
                    .and_then(|v| RemediationData::parse(v).ok()),
            }
        })
        .collect();
    let r = kcp.spec.remediation.clone().unwrap_or_default();
    let settings = Settings {
        max_retry: r.max_retry,
        retry_period: r.retry_period_seconds.map_or(0, i64::from),
        min_healthy_period: r.min_healthy_period_seconds.map_or(3600, i64::from),
    };
    let mut out = Outcome {
        deleted: None,
        last: None,
        condition: desired(ct::REMEDIATING, Status::False, reasons::NOT_REMEDIATING, ""),
    };
    let orphans = health.orphan_members().len();
    match decide(
        &targets,
        orphans,
        initialized,
        in_progress.is_some(),
        settings,
        now,
    ) {
        Decision::Nothing => {}
        Decision::Hold {
            machine,
            reason,
            message,
        } => {
            if let Some(m) = machines.iter().find(|m| m.name_any() == machine) {
                set_machine_conditions(
                    &mapi,
                    m,
                    vec![desired(
                        ct::OWNER_REMEDIATED,
                        Status::False,
                        reason,
                        message,
                    )],
                    now,
                )
                .await?;
            }
        }
        Decision::Remediate { machine, data } => {
            let m = machines
                .iter()
                .find(|m| m.name_any() == machine)
                .expect("decided among these machines");
            set_machine_conditions(
                &mapi,
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
            kapi.patch(
                &kcp.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"annotations": {
                    annotations::REMEDIATION_IN_PROGRESS: data.to_annotation()}}})),
            )
            .await?;
            // As upstream: the etcd member goes before the Machine, so quorum never counts a
            // member whose machine is gone.
            if let Some(node) = m.status.as_ref().and_then(|s| s.node_ref.as_ref()) {
                kcp_health::remove_member(ctx, &ns, &m.spec.cluster_name, &node.name).await?;
            }
            delete_if_exists(&mapi, &machine).await?;
            tracing::info!(control_plane = %kcp.name_any(), %machine, retry = data.retry_count, "remediating unhealthy control-plane machine: deleted");
            ctx.events
                .normal(
                    kcp,
                    "MachineRemediated",
                    format!("Deleted unhealthy control-plane machine {machine:?} (retry {}); a replacement follows", data.retry_count),
                )
                .await;
            out.last = Some(LastRemediationStatus {
                machine: machine.clone(),
                time: Some(data.timestamp.clone()),
                retry_count: Some(data.retry_count),
            });
            out.deleted = Some(machine);
        }
    }
    let lines: Vec<String> = machines
        .iter()
        .filter(|m| is(m, ct::OWNER_REMEDIATED, "False"))
        .map(|m| {
            let msg = conditions::get(conds(m), ct::OWNER_REMEDIATED)
                .map(|c| c.message.clone())
                .unwrap_or_default();
            let msg = if out.deleted.as_deref() == Some(&m.name_any()) {
                "Machine is deleting".to_string()
            } else {
                msg
            };
            format!("* Machine {}: {msg}", m.name_any())
        })
        .collect();
    if !lines.is_empty() || out.deleted.is_some() {
        out.condition = desired(
            ct::REMEDIATING,
            Status::True,
            reasons::REMEDIATING,
            lines.join("\n"),
        );
    }
    Ok(out)
}
