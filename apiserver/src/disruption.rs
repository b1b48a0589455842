//! The disruption controller's part of a cluster (kube-controller-manager's `disruption`
//! controller): every PodDisruptionBudget's `status` (expectedPods, currentHealthy,
//! desiredHealthy, disruptionsAllowed, the DisruptionAllowed condition, observedGeneration)
//! is kept current from the Pods it selects, so `kubectl get pdb` shows ALLOWED DISRUPTIONS
//! as a real cluster does. The arithmetic is [`crate::eviction::budget`], the one the
//! eviction subresource checks against; [`status`] is pure.
//!
//! A pass recomputes the budgets of every namespace in which a Pod or a budget changed (a
//! burst of changes is debounced into one pass), and writes a status only when it differs.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use serde_json::{Value, json};

use crate::{
    api::{Api, Call, Part},
    eviction::budget,
    request::{Query, Target},
    store::EventType,
};

const PODS: &str = "/pods";
const PDBS: &str = "policy/poddisruptionbudgets";

/// The status of `pdb` over `pods` (every Pod of its namespace), keeping the
/// DisruptionAllowed condition's lastTransitionTime while its status stays.
pub fn status(pdb: &Value, pods: &[Value], now: &str) -> Value {
    let b = budget(pdb, pods);
    let allowed = b.allowed();
    let (cond_status, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let old = pdb
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionAllowed"));
    let since = old
        .filter(|c| c["status"] == cond_status)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now);
    let generation = pdb
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    json!({
        "observedGeneration": generation,
        "disruptedPods": pdb.pointer("/status/disruptedPods").cloned().unwrap_or(json!({})),
        "disruptionsAllowed": allowed,
        "currentHealthy": b.healthy,
        "desiredHealthy": b.desired_healthy,
        "expectedPods": b.expected,
        "conditions": [{"type": "DisruptionAllowed", "status": cond_status, "reason": reason,
                        "message": "", "observedGeneration": generation,
                        "lastTransitionTime": since}],
    })
}

/// Recomputes the budgets of namespace `ns`, writing the statuses that changed.
pub fn sync_namespace(api: &Api, ns: &str) {
    let pdbs = api.store.list(PDBS, Some(ns)).1;
    if pdbs.is_empty() {
        return;
    }
    let pods: Vec<Value> = api
        .store
        .list(PODS, Some(ns))
        .1
        .into_iter()
        .map(|(_, e)| e.value())
        .collect();
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let Some(res) = api
        .catalog
        .all()
        .into_iter()
        .find(|r| r.group == "policy" && r.plural == "poddisruptionbudgets")
    else {
        return;
    };
    for (key, entry) in pdbs {
        let mut pdb = entry.value();
        if pdb.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let new = status(&pdb, &pods, &now);
        if pdb.get("status") == Some(&new) {
            continue;
        }
        pdb["status"] = new;
        let target = Target {
            group: "policy".into(),
            version: res.version.clone(),
            namespace: Some(ns.to_string()),
            plural: "poddisruptionbudgets".into(),
            name: Some(key.name.clone()),
            sub: Some("status".into()),
        };
        let query = Query::default();
        let call = Call {
            res: res.clone(),
            target: &target,
            query: &query,
            default_manager: "disruption-controller".into(),
        };
        // A concurrent write (409) changes the store, which triggers the next pass.
        if let Err(e) = api.update(&call, &key.name, pdb, Part::Status)
            && e.code != 404
            && e.code != 409
        {
            tracing::debug!(name = %key.name, error = %e.message, "disruption controller: status write failed");
        }
    }
}

/// Runs the controller until the task is aborted.
pub fn spawn(api: Arc<Api>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok((_, mut rx)) = api.store.watch_from(api.store.current_rv()) else {
            return;
        };
        let all = |api: &Api| -> BTreeSet<String> {
            api.store
                .list(PDBS, None)
                .1
                .into_iter()
                .map(|(k, _)| k.ns)
                .collect()
        };
        for ns in all(&api) {
            sync_namespace(&api, &ns);
        }
        loop {
            let mut dirty = BTreeSet::new();
            match rx.recv().await {
                Ok(e) => {
                    // Its own status writes are budget changes too; they converge, since an
                    // unchanged status is not written.
                    if e.key.gr == PODS || (e.key.gr == PDBS && e.kind != EventType::Deleted) {
                        dirty.insert(e.key.ns.clone());
                    } else {
                        continue;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => dirty = all(&api),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
            // Let a burst of changes (a drain, a rollout) settle into one pass.
            tokio::time::sleep(Duration::from_millis(20)).await;
            loop {
                match rx.try_recv() {
                    Ok(e) if e.key.gr == PODS || e.key.gr == PDBS => {
                        dirty.insert(e.key.ns.clone());
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                        dirty.extend(all(&api));
                    }
                    Err(_) => break,
                }
            }
            for ns in dirty {
                sync_namespace(&api, &ns);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
               "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    fn pdb(spec: Value) -> Value {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": "web"}});
        json!({"metadata": {"name": "web", "namespace": "default", "generation": 3}, "spec": spec})
    }

    #[test]
    fn status_counts_the_selected_pods() {
        let pods = [pod("a", true), pod("b", true), pod("c", false)];
        let s = status(&pdb(json!({"minAvailable": 1})), &pods, "T0");
        assert_eq!(
            (
                &s["expectedPods"],
                &s["currentHealthy"],
                &s["desiredHealthy"],
                &s["disruptionsAllowed"],
                &s["observedGeneration"]
            ),
            (&json!(3), &json!(2), &json!(1), &json!(1), &json!(3))
        );
        assert_eq!(s["conditions"][0]["reason"], "SufficientPods");
        let s = status(&pdb(json!({"maxUnavailable": 1})), &pods, "T0");
        assert_eq!(
            (&s["desiredHealthy"], &s["disruptionsAllowed"]),
            (&json!(2), &json!(0))
        );
        assert_eq!(
            (&s["conditions"][0]["status"], &s["conditions"][0]["reason"]),
            (&json!("False"), &json!("InsufficientPods"))
        );
    }

    #[test]
    fn the_condition_keeps_its_transition_time_while_its_status_stays() {
        let pods = [pod("a", true), pod("b", true)];
        let mut p = pdb(json!({"minAvailable": 1}));
        p["status"] = status(&p, &pods, "T0");
        assert_eq!(status(&p, &pods, "T1"), p["status"], "unchanged: no write");
        let s = status(&p, &pods[..1], "T2");
        assert_eq!(s["conditions"][0]["lastTransitionTime"], "T2");
        assert_eq!(s["disruptionsAllowed"], 0);
    }
}
