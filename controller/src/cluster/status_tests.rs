use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use slipway_api::cluster::ClusterInitializationStatus;

use super::*;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn cond(s: &ClusterStatus, type_: &str) -> (String, String, String) {
    let c = s
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_}"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn c(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: None,
        last_transition_time: Time(t(0)),
    }
}

fn machine(name: &str, cp: bool, ready: bool) -> MachineView {
    let s = if ready { "True" } else { "False" };
    MachineView {
        name: name.into(),
        control_plane: cp,
        standalone: false,
        version: Some("v1.31.0".into()),
        conditions: vec![
            c(
                "Ready",
                s,
                if ready { "Ready" } else { "NotReady" },
                if ready {
                    ""
                } else {
                    "* InfrastructureReady: no disk"
                },
            ),
            c("Available", s, "x", ""),
            c("UpToDate", "True", "UpToDate", ""),
        ],
    }
}

fn provisioned() -> Observed {
    let ep = ApiEndpoint {
        host: "127.0.0.1".into(),
        port: 6443,
    };
    Observed {
        generation: Some(1),
        endpoint: Some(ep.clone()),
        infra: Some(InfraView {
            provisioned: true,
            endpoint: Some(ep),
            ready: None,
        }),
        control_plane: Some(ControlPlaneView {
            kind: "KubeadmControlPlane".into(),
            name: "c-cp".into(),
            initialized: true,
            available: Some(c("Available", "True", "Available", "")),
            counters: Counters {
                desired: Some(1),
                replicas: Some(1),
                ready: Some(1),
                available: Some(1),
                up_to_date: Some(1),
            },
            version: Some("v1.31.0".into()),
            ..Default::default()
        }),
        workers: vec![WorkerSetView {
            name: "c-md-0".into(),
            desired: 2,
            conditions: vec![
                c(
                    "Available",
                    "False",
                    "NotAvailable",
                    "0 available replicas, at least 2 required",
                ),
                c(
                    "ScalingUp",
                    "True",
                    "ScalingUp",
                    "Scaling up from 0 to 2 replicas",
                ),
            ],
        }],
        machines: vec![
            machine("c-cp-1", true, true),
            machine("c-md-0-a", false, false),
            machine("c-md-0-b", false, false),
        ],
        probe: Probe::Succeeded,
        ..Default::default()
    }
}

#[test]
fn available_needs_the_workers_and_says_why_not() {
    let s = desired_status(&provisioned(), &ClusterStatus::default(), t(1));
    let (status, reason, message) = cond(&s, "Available");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NotAvailable")
    );
    assert_eq!(
        message,
        "* WorkersAvailable:\n  * MachineDeployment c-md-0: 0 available replicas, at least 2 required"
    );
    assert_eq!(cond(&s, "WorkersAvailable").1, "NotAvailable");
    assert_eq!(cond(&s, "RemoteConnectionProbe").1, "ProbeSucceeded");
    assert_eq!(
        cond(&s, "WorkerMachinesReady"),
        (
            "False".into(),
            "NotReady".into(),
            "* Machines c-md-0-a, c-md-0-b:\n  * InfrastructureReady: no disk".into()
        )
    );
    assert_eq!(cond(&s, "ControlPlaneMachinesReady").0, "True");
    assert_eq!(cond(&s, "MachinesReady").0, "False");
    assert_eq!(cond(&s, "MachinesUpToDate").0, "True");
    assert_eq!(
        cond(&s, "ScalingUp"),
        (
            "True".into(),
            "ScalingUp".into(),
            "* MachineDeployment c-md-0: Scaling up from 0 to 2 replicas".into()
        )
    );
    assert_eq!(cond(&s, "ScalingDown").1, "NotScalingDown");
    assert_eq!(cond(&s, "Remediating").1, "NotRemediating");
    assert_eq!(cond(&s, "Deleting").1, "NotDeleting");
    let w = s.workers.as_ref().unwrap();
    assert_eq!(
        (
            w.desired_replicas,
            w.replicas,
            w.ready_replicas,
            w.available_replicas,
            w.up_to_date_replicas
        ),
        (Some(2), Some(2), Some(0), Some(0), Some(2))
    );
    let cp = s.control_plane.as_ref().unwrap();
    assert_eq!(
        (cp.desired_replicas, cp.available_replicas),
        (Some(1), Some(1))
    );
    assert_eq!(cp.versions.as_ref().unwrap()[0].version, "v1.31.0");
    assert_eq!(
        desired_status(&provisioned(), &s, t(2)),
        s,
        "a second pass changes nothing: no write, no hot loop"
    );

    // Workers available: the cluster is.
    let mut o = provisioned();
    o.workers[0].conditions = vec![c("Available", "True", "Available", "")];
    o.machines = vec![
        machine("c-cp-1", true, true),
        machine("c-md-0-a", false, true),
    ];
    let s2 = desired_status(&o, &s, t(3));
    assert_eq!(cond(&s2, "Available").0, "True");
    assert_eq!(cond(&s2, "ScalingUp").1, "NotScalingUp");
}

#[test]
fn no_workers_probe_and_gates() {
    let mut o = provisioned();
    o.workers.clear();
    o.machines.truncate(1);
    o.probe = Probe::Failed("connection refused".into());
    let s = desired_status(&o, &ClusterStatus::default(), t(1));
    assert_eq!(cond(&s, "WorkersAvailable").1, "NoWorkers");
    assert_eq!(
        cond(&s, "Available").2,
        "* RemoteConnectionProbe: Remote connection probe failed: connection refused"
    );
    assert_eq!(s.workers.as_ref().unwrap().desired_replicas, Some(0));

    o.probe = Probe::Succeeded;
    o.gates = vec![ReadinessGate {
        condition_type: "NetworkReady".into(),
        polarity: None,
    }];
    let s = desired_status(&o, &s, t(2));
    assert_eq!(
        cond(&s, "Available"),
        (
            "Unknown".into(),
            "AvailableUnknown".into(),
            "* NetworkReady: Condition not yet reported".into()
        )
    );
    let mut with_gate = s.clone();
    with_gate
        .conditions
        .as_mut()
        .unwrap()
        .push(c("NetworkReady", "True", "Ready", ""));
    let s = desired_status(&o, &with_gate, t(3));
    assert_eq!(cond(&s, "Available").0, "True");
}

#[test]
fn an_unserved_infrastructure_kind_is_named() {
    let o = Observed {
        generation: Some(1),
        infra_unreadable: Some("spec.infrastructureRef names kind NopeCluster".into()),
        ..Default::default()
    };
    let s = desired_status(&o, &ClusterStatus::default(), t(1));
    let (status, reason, message) = cond(&s, "InfrastructureReady");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "KindNotServed")
    );
    assert!(message.contains("NopeCluster"));
    assert!(cond(&s, "Available").2.contains("NopeCluster"));
    assert_eq!(s.phase.as_deref(), Some("Pending"));
}

#[test]
fn phases_flags_and_pause() {
    let pending = desired_status(
        &Observed {
            generation: Some(1),
            ..Default::default()
        },
        &ClusterStatus::default(),
        t(1),
    );
    assert_eq!(pending.phase.as_deref(), Some("Pending"));
    assert_eq!(cond(&pending, "InfrastructureReady").1, "RefNotFound");
    let s1 = desired_status(
        &Observed {
            generation: Some(1),
            infra: Some(InfraView::default()),
            ..Default::default()
        },
        &pending,
        t(2),
    );
    assert_eq!(s1.phase.as_deref(), Some("Provisioning"));
    assert_eq!(
        cond(&s1, "InfrastructureReady").1,
        "WaitingForInfrastructure"
    );
    let s2 = desired_status(&provisioned(), &s1, t(3));
    assert_eq!(s2.phase.as_deref(), Some("Provisioned"));
    assert_eq!(
        s2.initialization,
        Some(ClusterInitializationStatus {
            infrastructure_provisioned: Some(true),
            control_plane_initialized: Some(true)
        })
    );
    // Flags never flip back, even if the provider object forgets them.
    let forgetful = Observed {
        infra: Some(InfraView::default()),
        control_plane: Some(ControlPlaneView::default()),
        ..provisioned()
    };
    let s3 = desired_status(&forgetful, &s2, t(5));
    assert_eq!(s3.initialization, s2.initialization);
    let paused = desired_status(
        &Observed {
            paused: true,
            ..provisioned()
        },
        &s2,
        t(6),
    );
    assert_eq!(cond(&paused, "Paused").1, "Paused");
    assert_eq!(
        paused.phase, s2.phase,
        "a paused cluster is otherwise left alone"
    );
}
