//! The ClusterRole aggregation controller, as kube-controller-manager's: a ClusterRole with an
//! `aggregationRule` gets as `rules` the union of the rules of every other ClusterRole its
//! `clusterRoleSelectors` select (in name order, each rule once). It runs at start and after
//! every ClusterRole change.

use std::{collections::BTreeMap, sync::Arc};

use serde_json::Value;

use super::defaults::with_call;
use crate::api::{Api, Part};

/// Whether a `metav1.LabelSelector` (matchLabels and matchExpressions) selects `labels`. An
/// empty selector selects nothing here: kube-apiserver refuses to aggregate everything.
pub fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let ml = selector["matchLabels"].as_object();
    let me = selector["matchExpressions"].as_array();
    if ml.is_none_or(|m| m.is_empty()) && me.is_none_or(|e| e.is_empty()) {
        return false;
    }
    let labels_ok = ml.into_iter().flatten().all(|(k, v)| {
        v.as_str()
            .is_some_and(|v| labels.get(k).map(String::as_str) == Some(v))
    });
    let exprs_ok = me.into_iter().flatten().all(|e| {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let got = labels.get(key).map(String::as_str);
        match e["operator"].as_str().unwrap_or_default() {
            "In" => got.is_some_and(|g| values.contains(&g)),
            "NotIn" => got.is_none_or(|g| !values.contains(&g)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// The rules an aggregated ClusterRole should have, given every ClusterRole (name, labels,
/// object), or `None` when it has no aggregation rule.
pub fn aggregated_rules(
    role: &Value,
    all: &[(String, BTreeMap<String, String>, Value)],
) -> Option<Vec<Value>> {
    let selectors = role
        .pointer("/aggregationRule/clusterRoleSelectors")?
        .as_array()?;
    let me = role["metadata"]["name"].as_str().unwrap_or_default();
    let mut rules: Vec<Value> = Vec::new();
    for (name, labels, other) in all {
        if name == me || !selectors.iter().any(|s| selects(s, labels)) {
            continue;
        }
        for r in other["rules"].as_array().into_iter().flatten() {
            if !rules.contains(r) {
                rules.push(r.clone());
            }
        }
    }
    Some(rules)
}

/// Writes the rules of every aggregated ClusterRole whose rules are out of date.
pub fn reconcile(api: &Api) {
    let (_, roles) = api
        .store
        .list(&format!("{}/clusterroles", super::rbac::GROUP), None);
    let all: Vec<(String, BTreeMap<String, String>, Value)> = roles
        .into_iter()
        .map(|(k, e)| (k.name, e.meta.labels.clone(), e.value()))
        .collect();
    for (name, _, role) in &all {
        let Some(rules) = aggregated_rules(role, &all) else {
            continue;
        };
        if role["rules"].as_array().cloned().unwrap_or_default() == rules {
            continue;
        }
        let mut updated = role.clone();
        updated["rules"] = Value::from(rules);
        let result = with_call(api, "clusterroles", None, |call| {
            api.update(call, name, updated, Part::Main)
        });
        // A conflict means another write came first; its event brings another pass.
        if let Err(e) = result
            && e.code != 409
        {
            tracing::warn!(role = %name, error = %e.message, "aggregating ClusterRole rules");
        }
    }
}

/// Runs [`reconcile`] now and after every ClusterRole change, until the task is aborted.
pub fn spawn(api: Arc<Api>) -> tokio::task::JoinHandle<()> {
    // Subscribed before the first pass, so no change between the two is missed.
    let rx = api.store.watch_from(api.store.current_rv()).ok();
    reconcile(&api);
    tokio::spawn(async move {
        let Some((_, mut rx)) = rx else {
            return;
        };
        let gr = format!("{}/clusterroles", super::rbac::GROUP);
        loop {
            match rx.recv().await {
                Ok(ev) if ev.key.gr == gr => {
                    while rx.try_recv().is_ok() {}
                    reconcile(&api);
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => reconcile(&api),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let l = labels(&[("a", "1"), ("b", "2")]);
        assert!(selects(&json!({"matchLabels": {"a": "1"}}), &l));
        assert!(!selects(&json!({"matchLabels": {"a": "2"}}), &l));
        assert!(selects(
            &json!({"matchExpressions": [{"key": "b", "operator": "In", "values": ["2", "3"]}]}),
            &l
        ));
        assert!(!selects(
            &json!({"matchExpressions": [{"key": "c", "operator": "Exists"}]}),
            &l
        ));
        assert!(selects(
            &json!({"matchExpressions": [{"key": "c", "operator": "DoesNotExist"}]}),
            &l
        ));
        assert!(
            !selects(&json!({}), &l),
            "an empty selector selects nothing"
        );
    }

    #[test]
    fn an_aggregated_role_gets_the_union_of_selected_rules_once() {
        let r1 = json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]});
        let r2 = json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]});
        let agg = json!({"metadata": {"name": "agg"},
                         "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "true"}}]}});
        let all = vec![
            (
                "a".to_string(),
                labels(&[("x", "true")]),
                json!({"rules": [r1]}),
            ),
            ("agg".to_string(), labels(&[("x", "true")]), agg.clone()),
            (
                "b".to_string(),
                labels(&[("x", "true")]),
                json!({"rules": [r1, r2]}),
            ),
            (
                "c".to_string(),
                labels(&[]),
                json!({"rules": [{"verbs": ["*"]}]}),
            ),
        ];
        assert_eq!(aggregated_rules(&agg, &all).unwrap(), vec![r1, r2]);
        assert_eq!(aggregated_rules(&json!({"rules": []}), &all), None);
    }
}
