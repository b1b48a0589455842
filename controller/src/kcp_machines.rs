//! KubeadmControlPlane machines: observe the control-plane Machines, ask the pure planner
//! ([`crate::plan::controlplane`]) for one step (init, join, scale down, roll one machine),
//! execute it, and compute the replica counts, version and conditions.
//!
//! A machine is up to date when its version is the control plane's and its spec hash (infra
//! template reference + kubeadmConfigSpec) matches; anything else is rolled out one machine at
//! a time, surge first unless `maxSurge` is 0.

use std::collections::BTreeMap;

use jiff::Timestamp;
use kube::{
    Api, ResourceExt,
    api::{ListParams, ObjectMeta, PostParams},
};
use serde_json::json;
use slipway_api::{
    KubeadmConfig, KubeadmControlPlane, Machine,
    common::{Condition, ContractVersionedObjectReference},
    controlplane::{ControlPlaneInitializationStatus, KubeadmControlPlaneStatus},
    machine::{Bootstrap, MachineSpec},
    names::{conditions as ct, finalizers, labels, reasons},
};

use slipway_runtime::{
    Context, Error,
    conditions::{self, Status, desired},
    objects::{
        clone_template, controlled_by, controller_ref, create_once, delete_if_exists, hash,
        random_name, sweep_orphans,
    },
};

use crate::plan::controlplane::{CpAction, CpMachine, CpObserved, plan};

/// Annotation with the hash of the control-plane spec a Machine was created from.
pub const SPEC_HASH: &str = "controlplane.cluster.x-k8s.io/spec-hash";

/// The hash of what a control-plane machine is made from (besides its version).
pub fn spec_hash(kcp: &KubeadmControlPlane) -> String {
    hash(&json!({
        "infrastructureRef": kcp.spec.machine_template.spec.infrastructure_ref,
        "kubeadmConfigSpec": kcp.spec.kubeadm_config_spec,
    }))
}

/// Orders `v1.31.2`-style versions numerically.
pub fn version_key(v: &str) -> Vec<u64> {
    v.trim_start_matches('v')
        .split(['.', '-', '+'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

fn ready(m: &Machine) -> bool {
    conditions::machine_is(m, ct::READY)
}

fn up_to_date(m: &Machine, kcp: &KubeadmControlPlane, hash: &str) -> bool {
    not_up_to_date(m, kcp, hash).is_none()
}

/// Why a control-plane Machine is not up to date with its KubeadmControlPlane (upstream's
/// message style), or `None` when it is.
pub fn not_up_to_date(m: &Machine, kcp: &KubeadmControlPlane, hash: &str) -> Option<String> {
    let mut why = Vec::new();
    if m.spec.version.as_deref() != Some(kcp.spec.version.as_str()) {
        why.push(format!(
            "* Version {}, {} required",
            m.spec.version.as_deref().unwrap_or("unset"),
            kcp.spec.version
        ));
    }
    if m.annotations().get(SPEC_HASH).map(String::as_str) != Some(hash) {
        why.push(
            "* KubeadmControlPlane spec.machineTemplate or spec.kubeadmConfigSpec changed".into(),
        );
    }
    (!why.is_empty()).then(|| why.join("\n"))
}

/// The control plane's machines (controlled by it).
pub async fn list(
    ctx: &Context,
    kcp: &KubeadmControlPlane,
    cluster: &str,
) -> Result<Vec<Machine>, Error> {
    let api: Api<Machine> =
        Api::namespaced(ctx.client.clone(), &kcp.namespace().unwrap_or_default());
    let selector = format!(
        "{}={cluster},{}={}",
        labels::CLUSTER_NAME,
        labels::CONTROL_PLANE_NAME,
        kcp.name_any()
    );
    let uid = kcp.uid().unwrap_or_default();
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|m| controlled_by(m, &uid))
        .collect())
}

/// One step of scaling or rollout; returns the planned action.
pub async fn step(
    ctx: &Context,
    kcp: &KubeadmControlPlane,
    cluster: &str,
    machines: &[Machine],
    initialized: bool,
) -> Result<CpAction, Error> {
    let hash = spec_hash(kcp);
    let max_surge = kcp
        .spec
        .rollout
        .as_ref()
        .and_then(|r| r.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_surge.as_ref())
        .map(|v| match v {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => *i,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => {
                crate::plan::resolve_limit(s, kcp.spec.replicas.unwrap_or(1), true).unwrap_or(1)
            }
        })
        .unwrap_or(1);
    let observed = CpObserved {
        desired: kcp.spec.replicas.unwrap_or(1),
        initialized,
        max_surge,
        machines: machines
            .iter()
            .map(|m| CpMachine {
                name: m.name_any(),
                created: m
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map_or(0, |t| t.0.as_second()),
                up_to_date: up_to_date(m, kcp, &hash),
                ready: ready(m),
                deleting: m.metadata.deletion_timestamp.is_some(),
            })
            .collect(),
    };
    let action = plan(&observed);
    match &action {
        CpAction::Initialize | CpAction::ScaleUp => {
            // Leftovers of a crashed creation are cleared before creating again (only then,
            // so a control plane at rest lists nothing extra).
            let ns = kcp.namespace().unwrap_or_default();
            let kubeadm_config = ContractVersionedObjectReference {
                api_group: "bootstrap.cluster.x-k8s.io".into(),
                kind: "KubeadmConfig".into(),
                name: String::new(),
            };
            sweep_orphans(
                ctx,
                &ns,
                &kcp.uid().unwrap_or_default(),
                &format!(
                    "{}={cluster},{}={}",
                    labels::CLUSTER_NAME,
                    labels::CONTROL_PLANE_NAME,
                    kcp.name_any()
                ),
                &[
                    &kcp.spec.machine_template.spec.infrastructure_ref,
                    &kubeadm_config,
                ],
                &machines.iter().map(|m| m.name_any()).collect(),
            )
            .await?;
            create_machine(ctx, kcp, cluster, &hash).await?
        }
        CpAction::ScaleDown(name) => {
            let api: Api<Machine> =
                Api::namespaced(ctx.client.clone(), &kcp.namespace().unwrap_or_default());
            // The etcd member goes first, as upstream removes it before the Machine.
            if let Some(node) = machines
                .iter()
                .find(|m| &m.name_any() == name)
                .and_then(|m| m.status.as_ref())
                .and_then(|s| s.node_ref.as_ref())
            {
                let ns = kcp.namespace().unwrap_or_default();
                crate::kcp_health::remove_member(ctx, &ns, cluster, &node.name).await?;
            }
            delete_if_exists(&api, name).await?;
            tracing::info!(control_plane = %kcp.name_any(), machine = %name, "deleted control-plane machine");
            ctx.events
                .normal(
                    kcp,
                    "SuccessfulScaleDown",
                    format!("Deleted machine {name:?}"),
                )
                .await;
        }
        CpAction::Wait(_) | CpAction::Idle => {}
    }
    Ok(action)
}

async fn create_machine(
    ctx: &Context,
    kcp: &KubeadmControlPlane,
    cluster: &str,
    hash: &str,
) -> Result<(), Error> {
    let ns = kcp.namespace().unwrap_or_default();
    let name = random_name(&kcp.name_any());
    let tpl = &kcp.spec.machine_template;
    let mut labels: BTreeMap<String, String> = tpl
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(labels::CLUSTER_NAME.into(), cluster.into());
    labels.insert(labels::CONTROL_PLANE.into(), String::new());
    labels.insert(labels::CONTROL_PLANE_NAME.into(), kcp.name_any());
    slipway_runtime::runner::inherit_watch_filter(kcp.labels(), &mut labels);
    let owner = controller_ref(kcp)?;
    // Infrastructure and bootstrap first, then the Machine that references them; the Machine
    // reconciler then takes their ownership over.
    let infra_ref = clone_template(
        ctx,
        &ns,
        &tpl.spec.infrastructure_ref,
        &name,
        &labels,
        owner.clone(),
        None,
    )
    .await?;
    let config = KubeadmConfig {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner.clone()]),
            finalizers: slipway_runtime::objects::own_finalizer(
                "bootstrap.cluster.x-k8s.io",
                "KubeadmConfig",
            )
            .map(|f| vec![f]),
            ..Default::default()
        },
        spec: kcp.spec.kubeadm_config_spec.clone(),
        status: None,
    };
    create_once(
        &Api::<KubeadmConfig>::namespaced(ctx.client.clone(), &ns),
        &config,
    )
    .await?;
    let mut annotations: BTreeMap<String, String> = tpl
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    annotations.insert(SPEC_HASH.into(), hash.into());
    let machine = Machine {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            // Created with the Machine controller's finalizer (as upstream's MachineSet
            // does), so that controller has no metadata write of its own to make.
            finalizers: Some(vec![finalizers::MACHINE.to_string()]),
            ..Default::default()
        },
        spec: MachineSpec {
            cluster_name: cluster.into(),
            bootstrap: Bootstrap {
                config_ref: Some(ContractVersionedObjectReference {
                    api_group: "bootstrap.cluster.x-k8s.io".into(),
                    kind: "KubeadmConfig".into(),
                    name: name.clone(),
                }),
                data_secret_name: None,
            },
            infrastructure_ref: infra_ref,
            version: Some(kcp.spec.version.clone()),
            readiness_gates: tpl.spec.readiness_gates.clone(),
            deletion: tpl.spec.deletion.clone(),
            taints: tpl.spec.taints.clone(),
            ..Default::default()
        },
        status: None,
    };
    Api::<Machine>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &machine)
        .await?;
    tracing::info!(control_plane = %kcp.name_any(), machine = %name, "created control-plane machine");
    ctx.events
        .normal(kcp, "SuccessfulCreate", format!("Created machine {name:?}"))
        .await;
    Ok(())
}

/// Replica counts, version, initialization and machine conditions from the machines and the
/// step taken. Pure.
pub fn status(
    kcp: &KubeadmControlPlane,
    machines: &[Machine],
    action: &CpAction,
    old: &KubeadmControlPlaneStatus,
    conds: &mut Vec<Condition>,
    now: Timestamp,
) -> KubeadmControlPlaneStatus {
    let g = kcp.metadata.generation;
    let hash = spec_hash(kcp);
    let mut s = old.clone();
    let count = |f: &dyn Fn(&Machine) -> bool| machines.iter().filter(|m| f(m)).count() as i32;
    let total = machines.len() as i32;
    let ready_n = count(&ready);
    let joined = count(&|m| m.status.as_ref().is_some_and(|s| s.node_ref.is_some()));
    s.replicas = Some(total);
    s.ready_replicas = Some(ready_n);
    s.available_replicas = Some(ready_n);
    s.up_to_date_replicas = Some(count(&|m| up_to_date(m, kcp, &hash)));
    s.version = machines
        .iter()
        .filter_map(|m| m.spec.version.clone())
        .min_by_key(|v| version_key(v));
    let initialized = old
        .initialization
        .as_ref()
        .and_then(|i| i.control_plane_initialized)
        .unwrap_or(false)
        || joined > 0;
    s.initialization = Some(ControlPlaneInitializationStatus {
        control_plane_initialized: Some(initialized),
    });
    let desired_n = kcp.spec.replicas.unwrap_or(1);
    conditions::set(
        conds,
        if initialized {
            desired(ct::INITIALIZED, Status::True, reasons::READY, "")
        } else {
            desired(
                ct::INITIALIZED,
                Status::False,
                reasons::WAITING_FOR_CONTROL_PLANE,
                "waiting for the first control-plane machine's Node",
            )
        },
        g,
        now,
    );
    // Stacked etcd keeps quorum while a majority of the members is ready.
    let quorum = ready_n * 2 > total.max(1);
    conditions::set(
        conds,
        if initialized && quorum {
            desired(ct::AVAILABLE, Status::True, reasons::AVAILABLE, "")
        } else {
            desired(
                ct::AVAILABLE,
                Status::False,
                reasons::NOT_AVAILABLE,
                format!("{ready_n} of {total} control-plane machines are ready"),
            )
        },
        g,
        now,
    );
    conditions::set(
        conds,
        machines_condition(machines, ct::MACHINES_READY, |m| {
            conditions::get(m.status.as_ref()?.conditions.as_deref()?, ct::READY).cloned()
        }),
        g,
        now,
    );
    // Named ControlPlaneMachinesReady before; upstream's KubeadmControlPlane calls it
    // MachinesReady.
    conds.retain(|c| c.type_ != ct::CONTROL_PLANE_MACHINES_READY);
    conditions::set(
        conds,
        machines_condition(machines, ct::MACHINES_UP_TO_DATE, |m| {
            let (status, reason, message) = match not_up_to_date(m, kcp, &hash) {
                None => ("True", reasons::UP_TO_DATE, String::new()),
                Some(why) => ("False", reasons::NOT_UP_TO_DATE, why),
            };
            Some(Condition {
                type_: ct::UP_TO_DATE.into(),
                status: status.into(),
                reason: reason.into(),
                message,
                observed_generation: None,
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
            })
        }),
        g,
        now,
    );
    let outdated = total - s.up_to_date_replicas.unwrap_or(0);
    conditions::set(
        conds,
        if outdated > 0 {
            desired(
                ct::ROLLING_OUT,
                Status::True,
                reasons::ROLLING_OUT,
                format!(
                    "Rolling out {outdated} not up-to-date replicas (version {})",
                    kcp.spec.version
                ),
            )
        } else {
            desired(ct::ROLLING_OUT, Status::False, reasons::NOT_ROLLING_OUT, "")
        },
        g,
        now,
    );
    for (t, active, verb, idle) in [
        (
            ct::SCALING_UP,
            total < desired_n,
            "up",
            reasons::NOT_SCALING_UP,
        ),
        (
            ct::SCALING_DOWN,
            total > desired_n && outdated == 0,
            "down",
            reasons::NOT_SCALING_DOWN,
        ),
    ] {
        let message = match action {
            CpAction::Wait(why) if active => {
                format!(
                    "Scaling {verb} from {total} to {desired_n} replicas is blocked because:\n* {why}"
                )
            }
            _ if active => format!("Scaling {verb} from {total} to {desired_n} replicas"),
            _ => String::new(),
        };
        conditions::set(
            conds,
            desired(
                t,
                Status::from_bool(active),
                if active { t } else { idle },
                message,
            ),
            g,
            now,
        );
    }
    s
}

/// One aggregate over the machines (`MachinesReady`, `MachinesUpToDate`) from a condition
/// each machine has (or is computed for it).
fn machines_condition(
    machines: &[Machine],
    type_: &str,
    of: impl Fn(&Machine) -> Option<Condition>,
) -> conditions::Desired {
    use slipway_runtime::merge::{self, Polarity, Reasons};
    let (r, empty) = if type_ == ct::MACHINES_READY {
        (
            Reasons {
                true_: reasons::READY,
                false_: reasons::NOT_READY,
                unknown: reasons::READY_UNKNOWN,
            },
            reasons::NO_REPLICAS,
        )
    } else {
        (
            Reasons {
                true_: reasons::UP_TO_DATE,
                false_: reasons::NOT_UP_TO_DATE,
                unknown: reasons::UP_TO_DATE_UNKNOWN,
            },
            reasons::NO_REPLICAS,
        )
    };
    let names: Vec<String> = machines.iter().map(|m| m.name_any()).collect();
    let conds: Vec<Option<Condition>> = machines.iter().map(of).collect();
    let objs: Vec<_> = names
        .iter()
        .zip(&conds)
        .map(|(n, c)| (n.as_str(), c.as_ref()))
        .collect();
    merge::aggregate(
        type_,
        "Machine",
        &objs,
        Polarity::Positive,
        r,
        desired(type_, Status::True, empty, ""),
    )
}
