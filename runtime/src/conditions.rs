//! v1beta2 conditions: set one (lastTransitionTime moves only when the status changes;
//! observedGeneration always follows the object), read one, and summarise several into one.
//! The clock is a parameter so tests compare exact values.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// `True`, `False` or `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// True.
    True,
    /// False.
    False,
    /// Unknown.
    Unknown,
}

impl Status {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }

    /// From a bool.
    pub fn from_bool(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

/// A condition as a reconciler wants it; [`set`] stamps the time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Type, e.g. `Ready`.
    pub type_: String,
    /// Status.
    pub status: Status,
    /// Reason (CamelCase).
    pub reason: String,
    /// Message.
    pub message: String,
}

/// Builds a desired condition.
pub fn desired(type_: &str, status: Status, reason: &str, message: impl Into<String>) -> Desired {
    Desired {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message: message.into(),
    }
}

/// The Paused condition every reconciler reports.
pub fn paused(paused: bool) -> Desired {
    use slipway_api::names::{conditions as ct, reasons};
    if paused {
        desired(
            ct::PAUSED,
            Status::True,
            reasons::PAUSED,
            "reconciliation is paused",
        )
    } else {
        desired(ct::PAUSED, Status::False, reasons::NOT_PAUSED, "")
    }
}

/// Sets a condition in `conds`; returns whether anything changed. `lastTransitionTime` becomes
/// `now` only when the status changes (or the condition is new).
pub fn set(
    conds: &mut Vec<Condition>,
    want: Desired,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let status = want.status.as_str().to_string();
    match conds.iter_mut().find(|c| c.type_ == want.type_) {
        Some(c) => {
            let before = c.clone();
            if c.status != status {
                c.last_transition_time = Time(now);
            }
            c.status = status;
            c.reason = want.reason;
            c.message = want.message;
            c.observed_generation = generation;
            *c != before
        }
        None => {
            conds.push(Condition {
                type_: want.type_,
                status,
                reason: want.reason,
                message: want.message,
                observed_generation: generation,
                last_transition_time: Time(now),
            });
            true
        }
    }
}

/// A condition by type.
pub fn get<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// A condition of an object read through the contract (`status.conditions`).
pub fn of_object(obj: &kube::api::DynamicObject, type_: &str) -> Option<Condition> {
    let conds: Vec<Condition> =
        serde_json::from_value(obj.data.pointer("/status/conditions")?.clone()).ok()?;
    conds.into_iter().find(|c| c.type_ == type_)
}

/// Whether a Machine's condition of `type_` is True.
pub fn machine_is(m: &slipway_api::Machine, type_: &str) -> bool {
    m.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .is_some_and(|c| is_true(c, type_))
}

/// Whether a condition is True.
pub fn is_true(conds: &[Condition], type_: &str) -> bool {
    get(conds, type_).is_some_and(|c| c.status == "True")
}

/// Summarises `inputs` (type, the condition if present) into one condition of `type_`: True
/// when all are True; otherwise False if any is False (reason of the first False, messages of
/// every non-True input), else Unknown (a missing input counts as Unknown).
pub fn summary(type_: &str, inputs: &[(&str, Option<&Condition>)], true_reason: &str) -> Desired {
    let mut problems = Vec::new();
    let mut first_false: Option<String> = None;
    let mut unknown = false;
    for (t, c) in inputs {
        match c {
            Some(c) if c.status == "True" => {}
            Some(c) if c.status == "False" => {
                first_false.get_or_insert_with(|| c.reason.clone());
                problems.push(if c.message.is_empty() {
                    format!("{t}: {}", c.reason)
                } else {
                    format!("{t}: {}", c.message)
                });
            }
            Some(c) => {
                unknown = true;
                problems.push(if c.message.is_empty() {
                    format!("{t}: unknown")
                } else {
                    format!("{t}: {}", c.message)
                });
            }
            None => {
                unknown = true;
                problems.push(format!("{t}: not reported yet"));
            }
        }
    }
    match (first_false, unknown) {
        (None, false) => desired(type_, Status::True, true_reason, ""),
        (Some(reason), _) => desired(type_, Status::False, &reason, problems.join("; ")),
        (None, true) => desired(type_, Status::Unknown, "Unknown", problems.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut conds = Vec::new();
        assert!(set(
            &mut conds,
            desired("Ready", Status::False, "Waiting", "booting"),
            Some(1),
            t(100)
        ));
        assert!(
            !set(
                &mut conds,
                desired("Ready", Status::False, "Waiting", "booting"),
                Some(1),
                t(200)
            ),
            "no change, no write"
        );
        assert!(set(
            &mut conds,
            desired("Ready", Status::False, "Waiting", "still booting"),
            Some(2),
            t(300)
        ));
        assert_eq!(
            conds[0].last_transition_time,
            Time(t(100)),
            "message and generation changes keep the time"
        );
        assert_eq!(conds[0].observed_generation, Some(2));
        assert!(set(
            &mut conds,
            desired("Ready", Status::True, "Ready", ""),
            Some(2),
            t(400)
        ));
        assert_eq!(conds[0].last_transition_time, Time(t(400)));
        assert!(is_true(&conds, "Ready") && !is_true(&conds, "Other"));
    }

    #[test]
    fn summaries_prefer_false_then_unknown() {
        let mut conds = Vec::new();
        set(&mut conds, desired("A", Status::True, "Ok", ""), None, t(1));
        set(
            &mut conds,
            desired("B", Status::False, "Broken", "disk full"),
            None,
            t(1),
        );
        set(
            &mut conds,
            desired("C", Status::Unknown, "Unknown", "probing"),
            None,
            t(1),
        );
        let s = summary(
            "Ready",
            &[
                ("A", get(&conds, "A")),
                ("B", get(&conds, "B")),
                ("C", get(&conds, "C")),
            ],
            "Ready",
        );
        assert_eq!(
            (s.status, s.reason.as_str(), s.message.as_str()),
            (Status::False, "Broken", "B: disk full; C: probing")
        );
        let s = summary("Ready", &[("A", get(&conds, "A")), ("D", None)], "Ready");
        assert_eq!(
            (s.status, s.message.as_str()),
            (Status::Unknown, "D: not reported yet")
        );
        let s = summary("Ready", &[("A", get(&conds, "A"))], "AllReady");
        assert_eq!((s.status, s.reason.as_str()), (Status::True, "AllReady"));
    }
}
