//! How CAPA's `v1beta1` AWS kinds (served beside v1beta2, as CAPA serves them) map to
//! slipway's v1beta2 ones, as tables for [`slipway_api::conversion`].
//!
//! CAPA's own v1beta1 -> v1beta2 conversion is field for field (v1beta2 only adds fields, which
//! the residual annotation keeps on the way down). What differs here is the contract: slipway's
//! v1beta2 status follows contract v1beta2 (`status.initialization.*`, failure domains as a
//! list), CAPA's v1beta1 status follows contract v1beta1 (`status.ready`, a failure-domain map,
//! `failureReason`/`failureMessage`, conditions with `severity`). As for the core kinds, the
//! v1beta1 conditions and failure fields move under `status.deprecated.v1beta1` (which
//! slipway's AWS kinds have no place for, so the residual keeps them) and the v1beta2
//! conditions are shown at v1beta1 as `status.v1beta2.conditions`.
//! `AWSManagedCluster` exists at v1beta2 only upstream, so it has no v1beta1 form here either.

use slipway_api::conversion::{
    Registered,
    ops::{Op, mv},
};

const INFRA: &str = "infrastructure.cluster.x-k8s.io";
const CONTROLPLANE: &str = "controlplane.cluster.x-k8s.io";

/// The AWS kinds served at v1beta1, with their tables.
pub fn kinds() -> Vec<Registered> {
    vec![
        Registered {
            group: INFRA,
            kind: "AWSCluster",
            table: aws_cluster,
            spoke_only,
        },
        Registered {
            group: INFRA,
            kind: "AWSMachine",
            table: aws_machine,
            spoke_only,
        },
        Registered {
            group: INFRA,
            kind: "AWSMachineTemplate",
            table: aws_machine_template,
            spoke_only,
        },
        Registered {
            group: INFRA,
            kind: "AWSClusterTemplate",
            table: aws_cluster_template,
            spoke_only,
        },
        Registered {
            group: CONTROLPLANE,
            kind: "AWSManagedControlPlane",
            table: aws_managed_control_plane,
            spoke_only: managed_control_plane_only,
        },
        Registered {
            group: INFRA,
            kind: "AWSManagedMachinePool",
            table: aws_managed_machine_pool,
            spoke_only,
        },
        Registered {
            group: INFRA,
            kind: "AWSMachinePool",
            table: aws_machine_pool,
            spoke_only,
        },
    ]
}

/// Registers [`kinds`] with the conversion code (idempotent).
pub fn register() {
    slipway_api::conversion::register(&kinds());
}

/// Fields of CAPA's v1beta1 kinds that slipway's v1beta2 kinds have no place for, beside what
/// the tables' moves bring (CAPA fields slipway does not implement at either version are not
/// served at either).
fn spoke_only() -> Vec<(String, serde_json::Value)> {
    vec![]
}

fn managed_control_plane_only() -> Vec<(String, serde_json::Value)> {
    vec![(
        "status.ready".into(),
        serde_json::json!({"type": "boolean"}),
    )]
}

fn failure_domains() -> Op {
    Op::MapToList {
        from: "status.failureDomains".into(),
        to: "status.failureDomains".into(),
        value: None,
    }
}

fn ready_provisioned() -> Op {
    mv("status.ready", "status.initialization.provisioned")
}

/// v1beta1 conditions (with severity, reasons optional) cannot be metav1 conditions.
fn conditions() -> Vec<Op> {
    vec![
        mv("status.conditions", "status.deprecated.v1beta1.conditions"),
        mv(
            "status.failureReason",
            "status.deprecated.v1beta1.failureReason",
        ),
        mv(
            "status.failureMessage",
            "status.deprecated.v1beta1.failureMessage",
        ),
        mv("status.v1beta2.conditions", "status.conditions"),
    ]
}

fn aws_cluster() -> Vec<Op> {
    [vec![ready_provisioned(), failure_domains()], conditions()].concat()
}

fn aws_machine() -> Vec<Op> {
    [vec![ready_provisioned()], conditions()].concat()
}

fn aws_machine_template() -> Vec<Op> {
    // v1beta1 template status has `capacity` only: v1beta2 conditions are shown as for the
    // other kinds, and each side keeps what the other has no place for through the residual.
    vec![mv("status.v1beta2.conditions", "status.conditions")]
}

fn aws_cluster_template() -> Vec<Op> {
    // An AWSClusterSpec under spec.template.spec at both versions, and no status.
    vec![]
}

fn aws_managed_control_plane() -> Vec<Op> {
    vec![
        mv("spec.disableVPCCNI", "spec.vpcCni.disable"),
        mv(
            "status.initialized",
            "status.initialization.controlPlaneInitialized",
        ),
        failure_domains(),
    ]
    .into_iter()
    .chain(conditions())
    .collect()
}

fn aws_managed_machine_pool() -> Vec<Op> {
    [vec![ready_provisioned()], conditions()].concat()
}

/// CAPA's AWSMachinePool keeps `status.ready` at v1beta2 too: only the conditions move.
fn aws_machine_pool() -> Vec<Op> {
    conditions()
}
