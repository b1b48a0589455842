//! Upstream v1beta2 condition merges, pure and table-tested:
//!
//! - [`summary`]: several condition types of one object into one (Cluster `Available` from
//!   InfrastructureReady, ControlPlaneAvailable, WorkersAvailable, RemoteConnectionProbe,
//!   Deleting and the availability gates), each with its polarity;
//! - [`aggregate`]: one condition type across many objects (Cluster `MachinesReady` from every
//!   Machine's `Ready`, `WorkersAvailable` from every MachineDeployment's `Available`).
//!
//! Messages follow upstream's style: one `* ` bullet per input with an issue, names of objects
//! with the same message grouped (`* Machines a, b: ...`), nested messages indented.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::conditions::{Desired, Status, desired};

/// Whether a condition is good when True (`Positive`) or when False (`Negative`, e.g.
/// `Deleting`, `ScalingUp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// True is good.
    Positive,
    /// False is good.
    Negative,
}

/// The reasons of a merged condition when it is True, False and Unknown.
#[derive(Clone, Copy, Debug)]
pub struct Reasons {
    /// Reason when True.
    pub true_: &'static str,
    /// Reason when False.
    pub false_: &'static str,
    /// Reason when Unknown.
    pub unknown: &'static str,
}

/// The status of a condition on the wire.
pub fn status_of(c: &Condition) -> Status {
    match c.status.as_str() {
        "True" => Status::True,
        "False" => Status::False,
        _ => Status::Unknown,
    }
}

fn indent(message: &str) -> String {
    message.lines().collect::<Vec<_>>().join("\n  ")
}

fn line(name: &str, c: Option<&Condition>) -> String {
    match c {
        None => format!("* {name}: Condition not yet reported"),
        Some(c) if c.message.is_empty() => format!("* {name}: {}", c.reason),
        Some(c) if c.message.contains('\n') || c.message.starts_with("* ") => {
            format!("* {name}:\n  {}", indent(&c.message))
        }
        Some(c) => format!("* {name}: {}", c.message),
    }
}

/// Summarises conditions of one object (`(type, condition, polarity)`) into one of `type_`:
/// False when an input is bad (False for positive, True for negative polarity), else Unknown
/// when one is Unknown or missing, else True. The message lists every input with an issue.
pub fn summary(
    type_: &str,
    inputs: &[(&str, Option<&Condition>, Polarity)],
    reasons: Reasons,
) -> Desired {
    let mut bad = Vec::new();
    let mut unknown = Vec::new();
    for (name, c, polarity) in inputs {
        match (c.map(status_of), polarity) {
            (Some(Status::True), Polarity::Positive)
            | (Some(Status::False), Polarity::Negative) => {}
            (Some(Status::False), Polarity::Positive)
            | (Some(Status::True), Polarity::Negative) => bad.push(line(name, *c)),
            _ => unknown.push(line(name, *c)),
        }
    }
    if !bad.is_empty() {
        bad.extend(unknown);
        desired(type_, Status::False, reasons.false_, bad.join("\n"))
    } else if !unknown.is_empty() {
        desired(type_, Status::Unknown, reasons.unknown, unknown.join("\n"))
    } else {
        desired(type_, Status::True, reasons.true_, "")
    }
}

/// Names joined for a message: at most three, then how many more.
fn names(kind: &str, mut names: Vec<&str>) -> String {
    names.sort_unstable();
    let kind = if names.len() > 1 {
        format!("{kind}s")
    } else {
        kind.to_string()
    };
    let shown = names.iter().take(3).copied().collect::<Vec<_>>().join(", ");
    match names.len() {
        n if n > 3 => format!("{kind} {shown}, ... ({} more)", n - 3),
        _ => format!("{kind} {shown}"),
    }
}

/// Aggregates condition `source_type` of many objects of `kind` (`(name, condition)`) into
/// one condition of `type_`. Positive polarity: False when any is False, else Unknown when any
/// is Unknown or missing, else True. Negative polarity (activities such as `ScalingUp`): True
/// when any is True, else Unknown when any is Unknown, else False; objects not reporting it
/// are skipped. `empty` is the condition when there are no objects.
pub fn aggregate(
    type_: &str,
    kind: &str,
    objects: &[(&str, Option<&Condition>)],
    polarity: Polarity,
    reasons: Reasons,
    empty: Desired,
) -> Desired {
    if objects.is_empty() {
        return empty;
    }
    // Issues grouped by (status, message) in the order first seen.
    let mut groups: Vec<(Status, String, Vec<&str>)> = Vec::new();
    for (name, c) in objects {
        let status = c.map(status_of);
        let issue = match polarity {
            Polarity::Positive => status != Some(Status::True),
            Polarity::Negative => matches!(status, Some(Status::True | Status::Unknown)),
        };
        if !issue {
            continue;
        }
        let message = match c {
            None => "Condition not yet reported".to_string(),
            Some(c) if c.message.is_empty() => c.reason.clone(),
            Some(c) => c.message.clone(),
        };
        let status = status.unwrap_or(Status::Unknown);
        match groups
            .iter_mut()
            .find(|(s, m, _)| *s == status && *m == message)
        {
            Some(g) => g.2.push(name),
            None => groups.push((status, message, vec![name])),
        }
    }
    let decisive = match polarity {
        Polarity::Positive => Status::False,
        Polarity::Negative => Status::True,
    };
    let status = if groups.iter().any(|g| g.0 == decisive) {
        decisive
    } else if groups.iter().any(|g| g.0 == Status::Unknown) {
        Status::Unknown
    } else {
        match polarity {
            Polarity::Positive => Status::True,
            Polarity::Negative => Status::False,
        }
    };
    // The decisive issues first, the unknown ones after.
    groups.sort_by_key(|g| g.0 != decisive);
    let message = groups
        .into_iter()
        .map(|(_, m, n)| {
            let who = names(kind, n);
            if m.contains('\n') || m.starts_with("* ") {
                format!("* {who}:\n  {}", indent(&m))
            } else {
                format!("* {who}: {m}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let reason = match status {
        Status::True => reasons.true_,
        Status::False => reasons.false_,
        Status::Unknown => reasons.unknown,
    };
    desired(type_, status, reason, message)
}

/// An owner's `MachinesReady` / `MachinesUpToDate` (`type_`) from its Machines' `Ready` /
/// `UpToDate` (`source`): upstream's reasons, True with `NoReplicas` when there are none.
pub fn machines(type_: &str, source: &str, machines: &[&slipway_api::Machine]) -> Desired {
    use slipway_api::names::{conditions as ct, reasons};
    let r = if source == ct::UP_TO_DATE {
        Reasons {
            true_: reasons::UP_TO_DATE,
            false_: reasons::NOT_UP_TO_DATE,
            unknown: reasons::UP_TO_DATE_UNKNOWN,
        }
    } else {
        Reasons {
            true_: reasons::READY,
            false_: reasons::NOT_READY,
            unknown: reasons::READY_UNKNOWN,
        }
    };
    let names: Vec<String> = machines
        .iter()
        .map(|m| m.metadata.name.clone().unwrap_or_default())
        .collect();
    let objs: Vec<_> = machines
        .iter()
        .zip(&names)
        .map(|(m, n)| {
            let c = m
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_deref())
                .and_then(|c| crate::conditions::get(c, source));
            (n.as_str(), c)
        })
        .collect();
    aggregate(
        type_,
        "Machine",
        &objs,
        Polarity::Positive,
        r,
        desired(type_, Status::True, reasons::NO_REPLICAS, ""),
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    const R: Reasons = Reasons {
        true_: "Available",
        false_: "NotAvailable",
        unknown: "AvailableUnknown",
    };

    fn c(status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: "X".into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: None,
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn summary_reports_bad_before_unknown_and_honours_polarity() {
        let infra = c("True", "Ready", "");
        let workers = c(
            "False",
            "NotAvailable",
            "* MachineDeployment md-0: 0 of 2 available",
        );
        let deleting = c("False", "NotDeleting", "");
        let s = summary(
            "Available",
            &[
                ("InfrastructureReady", Some(&infra), Polarity::Positive),
                ("WorkersAvailable", Some(&workers), Polarity::Positive),
                ("RemoteConnectionProbe", None, Polarity::Positive),
                ("Deleting", Some(&deleting), Polarity::Negative),
            ],
            R,
        );
        assert_eq!(s.status, Status::False);
        assert_eq!(s.reason, "NotAvailable");
        assert_eq!(
            s.message,
            "* WorkersAvailable:\n  * MachineDeployment md-0: 0 of 2 available\n* RemoteConnectionProbe: Condition not yet reported"
        );
        let deleting = c("True", "WaitingForWorkersDeletion", "2 machines");
        let s = summary(
            "Available",
            &[
                ("InfrastructureReady", Some(&infra), Polarity::Positive),
                ("Deleting", Some(&deleting), Polarity::Negative),
            ],
            R,
        );
        assert_eq!(
            (s.status, s.message.as_str()),
            (Status::False, "* Deleting: 2 machines")
        );
        let s = summary(
            "Available",
            &[("InfrastructureReady", None, Polarity::Positive)],
            R,
        );
        assert_eq!(
            (s.status, s.reason.as_str()),
            (Status::Unknown, "AvailableUnknown")
        );
        let s = summary(
            "Available",
            &[("InfrastructureReady", Some(&infra), Polarity::Positive)],
            R,
        );
        assert_eq!(
            (s.status, s.reason.as_str(), s.message.as_str()),
            (Status::True, "Available", "")
        );
    }

    #[test]
    fn aggregate_groups_objects_by_message() {
        let ok = c("True", "Ready", "");
        let boot = c("False", "NotReady", "NodeReady: no node yet");
        let unknown = c("Unknown", "ReadyUnknown", "probing");
        let empty = desired("MachinesReady", Status::True, "NoReplicas", "");
        let objs = [
            ("m-b", Some(&boot)),
            ("m-a", Some(&boot)),
            ("m-c", Some(&ok)),
            ("m-d", Some(&unknown)),
            ("m-e", None),
        ];
        let r = Reasons {
            true_: "Ready",
            false_: "NotReady",
            unknown: "ReadyUnknown",
        };
        let a = aggregate(
            "MachinesReady",
            "Machine",
            &objs,
            Polarity::Positive,
            r,
            empty.clone(),
        );
        assert_eq!(a.status, Status::False);
        assert_eq!(a.reason, "NotReady");
        assert_eq!(
            a.message,
            "* Machines m-a, m-b: NodeReady: no node yet\n* Machine m-d: probing\n* Machine m-e: Condition not yet reported"
        );
        let a = aggregate(
            "MachinesReady",
            "Machine",
            &[],
            Polarity::Positive,
            r,
            empty.clone(),
        );
        assert_eq!(a, empty);
        let a = aggregate(
            "MachinesReady",
            "Machine",
            &[("m-c", Some(&ok))],
            Polarity::Positive,
            r,
            empty.clone(),
        );
        assert_eq!((a.status, a.reason.as_str()), (Status::True, "Ready"));
        let many: Vec<_> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|n| (*n, Some(&boot)))
            .collect();
        let a = aggregate(
            "MachinesReady",
            "Machine",
            &many,
            Polarity::Positive,
            r,
            empty,
        );
        assert_eq!(
            a.message,
            "* Machines a, b, c, ... (2 more): NodeReady: no node yet"
        );
    }

    #[test]
    fn negative_aggregates_are_true_while_any_object_is_active() {
        let up = c("True", "ScalingUp", "Scaling up from 1 to 3 replicas");
        let idle = c("False", "NotScalingUp", "");
        let r = Reasons {
            true_: "ScalingUp",
            false_: "NotScalingUp",
            unknown: "ScalingUpUnknown",
        };
        let empty = desired("ScalingUp", Status::False, "NotScalingUp", "");
        let a = aggregate(
            "ScalingUp",
            "MachineDeployment",
            &[("md-0", Some(&up)), ("md-1", Some(&idle)), ("md-2", None)],
            Polarity::Negative,
            r,
            empty.clone(),
        );
        assert_eq!(
            (a.status, a.reason.as_str(), a.message.as_str()),
            (
                Status::True,
                "ScalingUp",
                "* MachineDeployment md-0: Scaling up from 1 to 3 replicas"
            )
        );
        let a = aggregate(
            "ScalingUp",
            "MachineDeployment",
            &[("md-1", Some(&idle)), ("md-2", None)],
            Polarity::Negative,
            r,
            empty,
        );
        assert_eq!(
            (a.status, a.reason.as_str(), a.message.as_str()),
            (Status::False, "NotScalingUp", "")
        );
    }
}
