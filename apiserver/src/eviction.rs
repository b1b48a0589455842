//! The `pods/eviction` subresource (policy/v1 Eviction): a Pod is deleted unless a
//! PodDisruptionBudget selecting it would drop below its healthy minimum, which is answered
//! 429 TooManyRequests as kube-apiserver answers it. The budget is computed at the time of
//! the eviction from the Pods the budget selects ([`crate::disruption`] keeps the budgets'
//! status from the same arithmetic).
//!
//! An evicted Pod gets the `DisruptionTarget` condition (EvictionByEvictionAPI) as
//! kube-apiserver sets it. This plane has no kubelet and the Pod goes at once, so the
//! kubelet's Events for the stopped containers (Normal `Killing`, "Stopping container NAME",
//! from component kubelet on the Pod's node) are recorded here, where `kubectl get events`
//! finds them as on a real cluster.

use serde_json::{Value, json};

use crate::{
    api::{Api, Call, Part},
    error::ApiError,
    request::{Query, Target},
    selector::LabelSelector,
};

/// A budget's arithmetic: how many disruptions it allows now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Pods the budget selects (not being deleted).
    pub expected: i64,
    /// Of those, Running and Ready.
    pub healthy: i64,
    /// Healthy Pods the budget requires.
    pub desired_healthy: i64,
}

impl Budget {
    /// Disruptions allowed (never negative).
    pub fn allowed(&self) -> i64 {
        (self.healthy - self.desired_healthy).max(0)
    }
}

fn healthy(pod: &Value) -> bool {
    pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
        && pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
}

fn scaled(v: &Value, total: i64, round_up: bool) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => match s.strip_suffix('%') {
            Some(p) => {
                let pct: i64 = p.trim().parse().ok()?;
                let n = total * pct;
                Some(if round_up { (n + 99) / 100 } else { n / 100 })
            }
            None => s.trim().parse().ok(),
        },
        _ => None,
    }
}

/// The budget of `pdb` over the Pods it selects (`pods`: every Pod of its namespace).
/// `minAvailable` percentages round up; `maxUnavailable` percentages round up too, as the
/// disruption controller does. A budget with neither allows none.
pub fn budget(pdb: &Value, pods: &[Value]) -> Budget {
    let selected: Vec<&Value> = pods
        .iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|p| selects(pdb, p))
        .collect();
    let expected = selected.len() as i64;
    let healthy = selected.iter().filter(|p| healthy(p)).count() as i64;
    let spec = &pdb["spec"];
    let desired_healthy = if let Some(min) = spec.get("minAvailable") {
        scaled(min, expected, true).unwrap_or(expected)
    } else if let Some(max) = spec.get("maxUnavailable") {
        (expected - scaled(max, expected, true).unwrap_or(0)).max(0)
    } else {
        expected
    };
    Budget {
        expected,
        healthy,
        desired_healthy,
    }
}

/// Whether a budget selects a Pod (an empty selector selects every Pod of the namespace;
/// a missing one none, as policy/v1 says).
pub fn selects(pdb: &Value, pod: &Value) -> bool {
    let Some(sel) = pdb.pointer("/spec/selector") else {
        return false;
    };
    let labels: std::collections::BTreeMap<String, String> = pod
        .pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    let mut parts: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return false,
        });
    }
    LabelSelector::parse(&parts.join(",")).is_ok_and(|s| s.matches(&labels))
}

/// POST of `pods/<name>/eviction`.
pub fn evict(api: &Api, call: &Call<'_>, name: &str) -> Result<Value, ApiError> {
    let pod = api.get(call, name)?;
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let success =
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return Ok(success);
    }
    let terminal = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !terminal {
        let pdbs: Vec<Value> = api
            .store
            .list("policy/poddisruptionbudgets", Some(&ns))
            .1
            .into_iter()
            .map(|(_, e)| e.value())
            .filter(|pdb| selects(pdb, &pod))
            .collect();
        if pdbs.len() > 1 {
            return Err(ApiError {
                code: 500,
                reason: "InternalError",
                message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
                details: None,
            });
        }
        if let Some(pdb) = pdbs.first() {
            let pods: Vec<Value> = api
                .store
                .list("/pods", Some(&ns))
                .1
                .into_iter()
                .map(|(_, e)| e.value())
                .collect();
            let b = budget(pdb, &pods);
            // An unhealthy Pod does not lower the healthy count: it may go while the budget
            // holds (upstream's IfHealthyBudget).
            let ok = if healthy(&pod) {
                b.allowed() > 0
            } else {
                b.healthy >= b.desired_healthy
            };
            if !ok {
                let pdb_name = pdb["metadata"]["name"].as_str().unwrap_or_default();
                return Err(ApiError {
                    code: 429,
                    reason: "TooManyRequests",
                    message: "Cannot evict pod as it would violate the pod's disruption budget."
                        .into(),
                    details: Some(json!({"causes": [{"reason": "DisruptionBudget",
                        "message": format!("The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                                           b.desired_healthy, b.healthy)}]})),
                });
            }
        }
    }
    mark_disruption_target(api, call, &pod);
    api.delete(call, name, &json!({}))?;
    record_killing(api, &pod, jiff::Timestamp::now());
    Ok(success)
}

/// Adds the DisruptionTarget condition kube-apiserver sets before an eviction deletes a Pod
/// (best effort: the deletion follows either way).
fn mark_disruption_target(api: &Api, call: &Call<'_>, pod: &Value) {
    let mut p = pod.clone();
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let cond = json!({"type": "DisruptionTarget", "status": "True",
        "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting",
        "lastTransitionTime": now});
    match p
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        Some(cs) => {
            cs.retain(|c| c["type"] != "DisruptionTarget");
            cs.push(cond);
        }
        None => p["status"]["conditions"] = json!([cond]),
    }
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    if let Err(e) = api.update(call, name, p, Part::Status) {
        tracing::debug!(pod = %name, error = %e.message, "eviction: DisruptionTarget condition not set");
    }
}

/// The Events a kubelet records when it stops an evicted Pod's containers.
pub fn killing_events(pod: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let meta = &pod["metadata"];
    let pod_name = meta["name"].as_str().unwrap_or_default();
    let node = pod.pointer("/spec/nodeName").and_then(Value::as_str);
    let stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let container = c["name"].as_str().unwrap_or_default();
            let mut source = json!({"component": "kubelet"});
            if let Some(n) = node {
                source["host"] = json!(n);
            }
            json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": format!("{pod_name}.{:x}", now.as_nanosecond() + i as i128),
                             "namespace": meta["namespace"]},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod_name,
                    "namespace": meta["namespace"], "uid": meta["uid"],
                    "resourceVersion": meta["resourceVersion"],
                    "fieldPath": format!("spec.containers{{{container}}}")},
                "reason": "Killing", "message": format!("Stopping container {container}"),
                "type": "Normal", "source": source, "count": 1,
                "firstTimestamp": stamp, "lastTimestamp": stamp,
                "reportingComponent": "kubelet", "reportingInstance": node.unwrap_or_default()})
        })
        .collect()
}

fn record_killing(api: &Api, pod: &Value, now: jiff::Timestamp) {
    let Some(res) = api
        .catalog
        .all()
        .into_iter()
        .find(|r| r.group.is_empty() && r.plural == "events")
    else {
        return;
    };
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let target = Target {
        group: String::new(),
        version: res.version.clone(),
        namespace: Some(ns.to_string()),
        plural: "events".into(),
        name: None,
        sub: None,
    };
    let query = Query::default();
    let call = Call {
        res,
        target: &target,
        query: &query,
        default_manager: "kubelet".into(),
    };
    for ev in killing_events(pod, now) {
        if let Err(e) = api.create(&call, ev) {
            tracing::debug!(error = %e.message, "eviction: event not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, app: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
               "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    fn pdb(spec: Value) -> Value {
        let mut s = spec;
        s["selector"] = json!({"matchLabels": {"app": "web"}});
        json!({"metadata": {"name": "web"}, "spec": s})
    }

    #[test]
    fn an_eviction_records_the_kubelets_killing_event_per_container() {
        let p = json!({"metadata": {"name": "web-1", "namespace": "default", "uid": "u1"},
            "spec": {"nodeName": "n1", "containers": [{"name": "app"}, {"name": "sidecar"}]}});
        let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let evs = killing_events(&p, now);
        assert_eq!(evs.len(), 2);
        let e = &evs[1];
        assert_eq!(
            (&e["reason"], &e["message"], &e["type"]),
            (
                &json!("Killing"),
                &json!("Stopping container sidecar"),
                &json!("Normal")
            )
        );
        assert_eq!(e["involvedObject"]["name"], "web-1");
        assert_eq!(e["involvedObject"]["uid"], "u1");
        assert_eq!(e["involvedObject"]["fieldPath"], "spec.containers{sidecar}");
        assert_eq!(e["source"], json!({"component": "kubelet", "host": "n1"}));
        assert_eq!(e["lastTimestamp"], "2023-11-14T22:13:20Z");
        assert_ne!(evs[0]["metadata"]["name"], e["metadata"]["name"]);
    }

    #[test]
    fn budgets_count_healthy_selected_pods() {
        let pods = vec![
            pod("a", "web", true),
            pod("b", "web", true),
            pod("c", "web", false),
            pod("d", "db", true),
        ];
        let b = budget(&pdb(json!({"minAvailable": 2})), &pods);
        assert_eq!(
            b,
            Budget {
                expected: 3,
                healthy: 2,
                desired_healthy: 2
            }
        );
        assert_eq!(b.allowed(), 0);
        assert_eq!(budget(&pdb(json!({"minAvailable": 1})), &pods).allowed(), 1);
        assert_eq!(
            budget(&pdb(json!({"maxUnavailable": 0})), &pods).allowed(),
            0
        );
        assert_eq!(
            budget(&pdb(json!({"minAvailable": "50%"})), &pods).desired_healthy,
            2,
            "50% of 3 rounds up"
        );
        assert_eq!(
            budget(&pdb(json!({"maxUnavailable": "50%"})), &pods).desired_healthy,
            1
        );
    }

    #[test]
    fn selectors_follow_policy_v1() {
        let p = pod("a", "web", true);
        assert!(selects(&pdb(json!({})), &p));
        assert!(!selects(&pdb(json!({})), &pod("d", "db", true)));
        assert!(
            selects(&json!({"spec": {"selector": {}}}), &p),
            "empty selects all"
        );
        assert!(!selects(&json!({"spec": {}}), &p), "missing selects none");
        let expr = json!({"spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}}});
        assert!(selects(&expr, &p));
    }
}
