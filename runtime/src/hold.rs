//! Status writes that only reword conditions may wait a little: an aggregate condition
//! (a Cluster's `MachinesReady`, a MachineSet's `MachinesReady`, ...) quotes the messages of
//! its members, which change at every step a Machine takes, often a moment before a change
//! that matters (a status or reason, a counter, a phase). Such a wording-only change waits up
//! to [`HOLD`] for the next real change to carry it, and is written on its own only when none
//! comes. Statuses, reasons and every other field are written at once, as before; at rest the
//! status is the whole truth, so nothing is left behind when an object settles.

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::Error;

/// Longest a wording-only status change waits for company.
pub const HOLD: Duration = Duration::from_secs(5);

/// Since when each object (by uid) has held back a wording-only change.
static HELD: LazyLock<Mutex<HashMap<String, Instant>>> = LazyLock::new(Default::default);

/// Whether `new` differs from `old` only in the messages of conditions (same condition
/// types, statuses, reasons and transition times; every other field equal).
pub fn wording_only<S: Serialize>(old: &S, new: &S) -> bool {
    let (Ok(mut a), Ok(mut b)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
        return false;
    };
    if a == b {
        return false;
    }
    strip_messages(&mut a);
    strip_messages(&mut b);
    a == b
}

/// Removes `message` from every condition (an object with a `type` inside a `conditions`
/// list), at any depth.
fn strip_messages(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "conditions"
                    && let Value::Array(items) = x
                {
                    for c in items.iter_mut() {
                        if let Value::Object(c) = c
                            && c.contains_key("type")
                        {
                            c.remove("message");
                        }
                    }
                }
                strip_messages(x);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_messages),
        _ => {}
    }
}

/// Decides for the object `key` (its uid) whether the change from `old` to `new` may wait:
/// `Some(d)` holds it back (look again in `d`), `None` writes it now. A change is held at
/// most [`HOLD`] from the first pass that held it.
pub fn decide<S: Serialize>(key: &str, old: &S, new: &S, now: Instant) -> Option<Duration> {
    let mut held = HELD.lock().expect("held statuses");
    if !wording_only(old, new) {
        held.remove(key);
        return None;
    }
    let since = *held.entry(key.to_string()).or_insert(now);
    let waited = now.saturating_duration_since(since);
    if waited >= HOLD {
        held.remove(key);
        return None;
    }
    Some(HOLD - waited)
}

/// [`crate::reconcile::write_status`], unless the change only rewords conditions and may
/// wait ([`decide`]): then nothing is written and the time to look again is returned.
pub async fn write_status_or_hold<K, S>(
    api: &kube::Api<K>,
    meta: &ObjectMeta,
    old: &S,
    new: &S,
) -> Result<Option<Duration>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    let key = meta.uid.clone().unwrap_or_else(|| {
        format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        )
    });
    if let Some(wait) = decide(&key, old, new, Instant::now()) {
        return Ok(Some(wait));
    }
    crate::reconcile::write_status(api, meta, Some(old), new).await?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(ready: &str, reason: &str, message: &str, replicas: i32) -> Value {
        json!({"replicas": replicas, "conditions": [
            {"type": "MachinesReady", "status": ready, "reason": reason, "message": message,
             "lastTransitionTime": "2026-01-01T00:00:00Z"},
        ]})
    }

    #[test]
    fn only_a_message_change_is_wording() {
        let old = status("False", "NotReady", "* Machine m: waiting for bootstrap", 1);
        let reworded = status("False", "NotReady", "* Machine m: waiting for a Node", 1);
        assert!(wording_only(&old, &reworded));
        assert!(!wording_only(&old, &old), "no change at all");
        assert!(!wording_only(&old, &status("True", "Ready", "", 1)));
        assert!(!wording_only(
            &old,
            &status("False", "Other", "* Machine m: waiting for bootstrap", 1)
        ));
        assert!(!wording_only(
            &old,
            &status("False", "NotReady", "* Machine m: waiting for a Node", 2)
        ));
        let nested_old = json!({"deprecated": {"v1beta1": old.clone()}});
        let nested_new = json!({"deprecated": {"v1beta1": reworded.clone()}});
        assert!(wording_only(&nested_old, &nested_new));
    }

    #[test]
    fn a_wording_change_waits_at_most_the_hold_and_a_real_change_goes_at_once() {
        let key = "uid-hold-test";
        let t0 = Instant::now();
        let old = status("False", "NotReady", "a", 1);
        let reworded = status("False", "NotReady", "b", 1);
        assert_eq!(decide(key, &old, &reworded, t0), Some(HOLD));
        let later = t0 + Duration::from_secs(2);
        assert_eq!(
            decide(key, &old, &reworded, later),
            Some(HOLD - Duration::from_secs(2)),
            "measured from the first pass that held it"
        );
        assert_eq!(decide(key, &old, &reworded, t0 + HOLD), None, "due");
        assert_eq!(
            decide(key, &old, &reworded, t0 + HOLD),
            Some(HOLD),
            "a new hold starts after a write"
        );
        let real = status("True", "Ready", "", 1);
        assert_eq!(
            decide(key, &old, &real, t0),
            None,
            "a real change goes at once"
        );
        assert_eq!(
            decide(key, &old, &reworded, t0 + Duration::from_secs(1)),
            Some(HOLD),
            "and clears the hold"
        );
    }
}
