//! The Cluster's status as a pure function of what was observed ([`desired_status`]):
//! upstream v1beta2 conditions (InfrastructureReady, ControlPlaneInitialized,
//! ControlPlaneAvailable, WorkersAvailable, RemoteConnectionProbe, the machine aggregates,
//! ScalingUp/Down, RollingOut, Remediating, Deleting and the `Available` summary with the
//! availability gates), the `controlPlane` / `workers` counters and the informational phase.

use jiff::Timestamp;
use slipway_api::{
    cluster::{ClusterInitializationStatus, ClusterStatus, phase},
    common::{
        ApiEndpoint, Condition, ConditionPolarity, ReadinessGate, ReplicaSummary, StatusVersion,
    },
    names::{conditions as ct, reasons},
};
use slipway_runtime::{
    conditions::{self, Desired, Status, desired},
    merge::{self, Polarity, Reasons},
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

/// Replica counters read from an object's status (any may be missing).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// `spec.replicas`.
    pub desired: Option<i32>,
    /// `status.replicas`.
    pub replicas: Option<i32>,
    /// `status.readyReplicas`.
    pub ready: Option<i32>,
    /// `status.availableReplicas`.
    pub available: Option<i32>,
    /// `status.upToDateReplicas`.
    pub up_to_date: Option<i32>,
}

/// What the control plane reports through the contract.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ControlPlaneView {
    /// Its kind (for messages).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// `status.initialization.controlPlaneInitialized`.
    pub initialized: bool,
    /// The `Available` condition.
    pub available: Option<Condition>,
    /// `spec.controlPlaneEndpoint` (managed control planes such as EKS).
    pub endpoint: Option<ApiEndpoint>,
    /// Its replica counters.
    pub counters: Counters,
    /// `status.version`.
    pub version: Option<String>,
    /// Its other conditions (ScalingUp, ScalingDown, RollingOut, Remediating).
    pub conditions: Vec<Condition>,
}

/// A MachineDeployment of the Cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerSetView {
    /// Its name.
    pub name: String,
    /// `spec.replicas`.
    pub desired: i32,
    /// Its conditions (Available, ScalingUp, ScalingDown, RollingOut, Remediating).
    pub conditions: Vec<Condition>,
}

/// A Machine of the Cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MachineView {
    /// Its name.
    pub name: String,
    /// A control-plane machine.
    pub control_plane: bool,
    /// A worker machine owned by no MachineDeployment.
    pub standalone: bool,
    /// `spec.version`.
    pub version: Option<String>,
    /// Its conditions (Ready, Available, UpToDate).
    pub conditions: Vec<Condition>,
}

/// The result of the last probe of the workload cluster's API server.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Probe {
    /// Not probed: no kubeconfig yet.
    #[default]
    NotYet,
    /// The API server answered.
    Succeeded,
    /// It did not; why.
    Failed(String),
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
    /// The TopologyReconciled condition from the topology pass (`None`: no spec.topology, or
    /// paused).
    pub topology: Option<slipway_runtime::conditions::Desired>,
    /// The infrastructure cluster (`None`: not referenced or not found).
    pub infra: Option<InfraView>,
    /// Why the infrastructure cluster cannot be read at all (its kind is served by no CRD).
    pub infra_unreadable: Option<String>,
    /// The control plane.
    pub control_plane: Option<ControlPlaneView>,
    /// Why the control plane cannot be read at all.
    pub control_plane_unreadable: Option<String>,
    /// The endpoint in the Cluster's spec.
    pub endpoint: Option<ApiEndpoint>,
    /// The MachineDeployments.
    pub workers: Vec<WorkerSetView>,
    /// The Machines.
    pub machines: Vec<MachineView>,
    /// The remote connection probe.
    pub probe: Probe,
    /// `spec.availabilityGates`.
    pub gates: Vec<ReadinessGate>,
}

fn mirror(type_: &str, source: Option<&Condition>, fallback: Desired) -> Desired {
    match source {
        Some(c) => Desired {
            type_: type_.into(),
            status: merge::status_of(c),
            reason: c.reason.clone(),
            message: c.message.clone(),
        },
        None => fallback,
    }
}

const AVAILABLE: Reasons = Reasons {
    true_: reasons::AVAILABLE,
    false_: reasons::NOT_AVAILABLE,
    unknown: reasons::AVAILABLE_UNKNOWN,
};
const READY: Reasons = Reasons {
    true_: reasons::READY,
    false_: reasons::NOT_READY,
    unknown: reasons::READY_UNKNOWN,
};
const UP_TO_DATE: Reasons = Reasons {
    true_: reasons::UP_TO_DATE,
    false_: reasons::NOT_UP_TO_DATE,
    unknown: reasons::UP_TO_DATE_UNKNOWN,
};

/// The activity conditions mirrored from the control plane and MachineDeployments, with their
/// reasons.
const ACTIVITIES: [(&str, Reasons); 4] = [
    (
        ct::SCALING_UP,
        Reasons {
            true_: reasons::SCALING_UP,
            false_: reasons::NOT_SCALING_UP,
            unknown: reasons::SCALING_UP_UNKNOWN,
        },
    ),
    (
        ct::SCALING_DOWN,
        Reasons {
            true_: reasons::SCALING_DOWN,
            false_: reasons::NOT_SCALING_DOWN,
            unknown: reasons::SCALING_DOWN_UNKNOWN,
        },
    ),
    (
        ct::ROLLING_OUT,
        Reasons {
            true_: reasons::ROLLING_OUT,
            false_: reasons::NOT_ROLLING_OUT,
            unknown: reasons::ROLLING_OUT_UNKNOWN,
        },
    ),
    (
        ct::REMEDIATING,
        Reasons {
            true_: reasons::REMEDIATING,
            false_: reasons::NOT_REMEDIATING,
            unknown: reasons::REMEDIATING_UNKNOWN,
        },
    ),
];

fn machine_aggregate(
    type_: &str,
    source: &str,
    machines: &[&MachineView],
    reasons: Reasons,
    empty_reason: &str,
) -> Desired {
    let objs: Vec<_> = machines
        .iter()
        .map(|m| (m.name.as_str(), conditions::get(&m.conditions, source)))
        .collect();
    merge::aggregate(
        type_,
        "Machine",
        &objs,
        Polarity::Positive,
        reasons,
        desired(type_, Status::True, empty_reason, ""),
    )
}

fn count(machines: &[&MachineView], type_: &str) -> i32 {
    machines
        .iter()
        .filter(|m| conditions::is_true(&m.conditions, type_))
        .count() as i32
}

/// Versions of machines, lowest first, with how many run each.
fn versions(machines: &[&MachineView]) -> Option<Vec<StatusVersion>> {
    let mut by: std::collections::BTreeMap<(u64, u64, u64, String), i32> = Default::default();
    for m in machines {
        if let Some(v) = &m.version {
            let key = crate::version::parse(v)
                .map(|p| (p.major, p.minor, p.patch, v.clone()))
                .unwrap_or((0, 0, 0, v.clone()));
            *by.entry(key).or_default() += 1;
        }
    }
    (!by.is_empty()).then(|| {
        by.into_iter()
            .map(|(k, n)| StatusVersion {
                version: k.3,
                replicas: Some(n),
            })
            .collect()
    })
}

/// `status.controlPlane`: the control plane's own counters where it reports them (a managed
/// control plane has no Machines), the control-plane Machines' otherwise.
fn control_plane_counters(o: &Observed, cp: &[&MachineView]) -> Option<ReplicaSummary> {
    let view = o.control_plane.as_ref()?;
    let c = &view.counters;
    let mut versions = versions(cp);
    if versions.is_none() {
        versions = view.version.clone().map(|v| {
            vec![StatusVersion {
                version: v,
                replicas: c.replicas,
            }]
        });
    }
    Some(ReplicaSummary {
        desired_replicas: c.desired,
        replicas: c.replicas.or(Some(cp.len() as i32)),
        ready_replicas: c.ready.or(Some(count(cp, ct::READY))),
        available_replicas: c.available.or(Some(count(cp, ct::AVAILABLE))),
        up_to_date_replicas: c.up_to_date.or(Some(count(cp, ct::UP_TO_DATE))),
        versions,
    })
}

/// `status.workers`: desired from the MachineDeployments (and one per standalone worker),
/// the rest counted on the worker Machines.
fn worker_counters(o: &Observed, workers: &[&MachineView]) -> ReplicaSummary {
    let desired: i32 = o.workers.iter().map(|w| w.desired).sum::<i32>()
        + workers.iter().filter(|m| m.standalone).count() as i32;
    ReplicaSummary {
        desired_replicas: Some(desired),
        replicas: Some(workers.len() as i32),
        ready_replicas: Some(count(workers, ct::READY)),
        available_replicas: Some(count(workers, ct::AVAILABLE)),
        up_to_date_replicas: Some(count(workers, ct::UP_TO_DATE)),
        versions: versions(workers),
    }
}

fn infrastructure_ready(o: &Observed) -> Desired {
    if let Some(why) = &o.infra_unreadable {
        return desired(
            ct::INFRASTRUCTURE_READY,
            Status::False,
            reasons::KIND_NOT_SERVED,
            why.clone(),
        );
    }
    match &o.infra {
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
    }
}

fn control_plane_available(o: &Observed) -> Desired {
    if let Some(why) = &o.control_plane_unreadable {
        return desired(
            ct::CONTROL_PLANE_AVAILABLE,
            Status::False,
            reasons::KIND_NOT_SERVED,
            why.clone(),
        );
    }
    mirror(
        ct::CONTROL_PLANE_AVAILABLE,
        o.control_plane.as_ref().and_then(|c| c.available.as_ref()),
        desired(
            ct::CONTROL_PLANE_AVAILABLE,
            Status::Unknown,
            reasons::AVAILABLE_UNKNOWN,
            "the control plane has not reported Available yet",
        ),
    )
}

fn remote_connection(probe: &Probe) -> Desired {
    let t = ct::REMOTE_CONNECTION_PROBE;
    match probe {
        Probe::NotYet => desired(
            t,
            Status::False,
            reasons::PROBE_FAILED,
            "Remote connection not established yet",
        ),
        Probe::Succeeded => desired(t, Status::True, reasons::PROBE_SUCCEEDED, ""),
        Probe::Failed(why) => desired(
            t,
            Status::False,
            reasons::PROBE_FAILED,
            format!("Remote connection probe failed: {why}"),
        ),
    }
}

fn workers_available(o: &Observed) -> Desired {
    let objs: Vec<_> = o
        .workers
        .iter()
        .map(|w| {
            (
                w.name.as_str(),
                conditions::get(&w.conditions, ct::AVAILABLE),
            )
        })
        .collect();
    merge::aggregate(
        ct::WORKERS_AVAILABLE,
        "MachineDeployment",
        &objs,
        Polarity::Positive,
        AVAILABLE,
        desired(ct::WORKERS_AVAILABLE, Status::True, reasons::NO_WORKERS, ""),
    )
}

/// ScalingUp / ScalingDown / RollingOut / Remediating across the control plane and the
/// MachineDeployments.
fn activities(o: &Observed) -> Vec<Desired> {
    ACTIVITIES
        .iter()
        .map(|(type_, r)| {
            let cp_kind = o.control_plane.as_ref().map_or("", |c| c.kind.as_str());
            let cp_objs: Vec<_> = o
                .control_plane
                .iter()
                .map(|c| (c.name.as_str(), conditions::get(&c.conditions, type_)))
                .collect();
            let md_objs: Vec<_> = o
                .workers
                .iter()
                .map(|w| (w.name.as_str(), conditions::get(&w.conditions, type_)))
                .collect();
            let idle = desired(type_, Status::False, r.false_, "");
            // The control plane first, then the workers.
            let cp = merge::aggregate(
                type_,
                cp_kind,
                &cp_objs,
                Polarity::Negative,
                *r,
                idle.clone(),
            );
            let md = merge::aggregate(
                type_,
                "MachineDeployment",
                &md_objs,
                Polarity::Negative,
                *r,
                idle.clone(),
            );
            let status = [cp.status, md.status]
                .into_iter()
                .find(|s| *s == Status::True)
                .or([cp.status, md.status]
                    .into_iter()
                    .find(|s| *s == Status::Unknown))
                .unwrap_or(Status::False);
            let message = [cp.message, md.message]
                .into_iter()
                .filter(|m| !m.is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            let reason = match status {
                Status::True => r.true_,
                Status::False => r.false_,
                Status::Unknown => r.unknown,
            };
            desired(type_, status, reason, message)
        })
        .collect()
}

/// The status a Cluster should have; `old` keeps transition times and the never-flip-back
/// flags.
pub fn desired_status(o: &Observed, old: &ClusterStatus, now: Timestamp) -> ClusterStatus {
    let mut status = old.clone();
    let mut conds = old.conditions.clone().unwrap_or_default();
    let g = o.generation;
    let set = |conds: &mut Vec<Condition>, d: Desired| {
        conditions::set(conds, d, g, now);
    };
    set(&mut conds, conditions::paused(o.paused));
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

    set(&mut conds, infrastructure_ready(o));
    set(
        &mut conds,
        if cp_initialized {
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
        },
    );
    set(&mut conds, control_plane_available(o));
    set(&mut conds, workers_available(o));
    set(&mut conds, remote_connection(&o.probe));

    let all: Vec<&MachineView> = o.machines.iter().collect();
    let cp: Vec<&MachineView> = all.iter().copied().filter(|m| m.control_plane).collect();
    let workers: Vec<&MachineView> = all.iter().copied().filter(|m| !m.control_plane).collect();
    for (type_, source, set_of, r, empty) in [
        (
            ct::MACHINES_READY,
            ct::READY,
            &all,
            READY,
            reasons::NO_REPLICAS,
        ),
        (
            ct::MACHINES_UP_TO_DATE,
            ct::UP_TO_DATE,
            &all,
            UP_TO_DATE,
            reasons::NO_REPLICAS,
        ),
        (
            ct::CONTROL_PLANE_MACHINES_READY,
            ct::READY,
            &cp,
            READY,
            reasons::NO_REPLICAS,
        ),
        (
            ct::CONTROL_PLANE_MACHINES_UP_TO_DATE,
            ct::UP_TO_DATE,
            &cp,
            UP_TO_DATE,
            reasons::NO_REPLICAS,
        ),
        (
            ct::WORKER_MACHINES_READY,
            ct::READY,
            &workers,
            READY,
            reasons::NO_REPLICAS,
        ),
        (
            ct::WORKER_MACHINES_UP_TO_DATE,
            ct::UP_TO_DATE,
            &workers,
            UP_TO_DATE,
            reasons::NO_REPLICAS,
        ),
    ] {
        set(
            &mut conds,
            machine_aggregate(type_, source, set_of, r, empty),
        );
    }
    for d in activities(o) {
        set(&mut conds, d);
    }
    if let Some(t) = &o.topology {
        set(&mut conds, t.clone());
    }
    if !o.deleting {
        set(
            &mut conds,
            desired(ct::DELETING, Status::False, reasons::NOT_DELETING, ""),
        );
    }

    let mut inputs: Vec<(&str, Option<&Condition>, Polarity)> = [
        ct::INFRASTRUCTURE_READY,
        ct::CONTROL_PLANE_AVAILABLE,
        ct::WORKERS_AVAILABLE,
        ct::REMOTE_CONNECTION_PROBE,
    ]
    .into_iter()
    .map(|t| (t, conditions::get(&conds, t), Polarity::Positive))
    .collect();
    // As upstream, only a failed topology makes the Cluster unavailable; waiting for an upgrade
    // step is informational.
    if o.topology.as_ref().is_some_and(|t| {
        t.status != Status::True
            && (t.reason == "ReconcileFailed" || t.reason == "ClusterClassNotReconciled")
    }) {
        inputs.push((
            ct::TOPOLOGY_RECONCILED,
            conditions::get(&conds, ct::TOPOLOGY_RECONCILED),
            Polarity::Positive,
        ));
    }
    inputs.push((
        ct::DELETING,
        conditions::get(&conds, ct::DELETING),
        Polarity::Negative,
    ));
    for gate in &o.gates {
        let polarity = match gate.polarity {
            Some(ConditionPolarity::Negative) => Polarity::Negative,
            _ => Polarity::Positive,
        };
        inputs.push((
            gate.condition_type.as_str(),
            conditions::get(&conds, &gate.condition_type),
            polarity,
        ));
    }
    let available = merge::summary(ct::AVAILABLE, &inputs, AVAILABLE);
    set(&mut conds, available);

    status.control_plane = control_plane_counters(o, &cp);
    status.workers = Some(worker_counters(o, &workers));
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

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
