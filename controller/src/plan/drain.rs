//! Machine deletion decisions: the lifecycle hooks that hold it, what a Node drain does with
//! each Pod (DaemonSet and mirror Pods skipped, the `cluster.x-k8s.io/drain` label,
//! MachineDrainRules with their behaviors and order), and the drain / volume-detach timeouts.
//! Pure; the clock is a parameter.

use std::collections::BTreeMap;

use jiff::Timestamp;
use slipway_api::{drain::behavior, names::annotations};

use super::health::selector_matches;

/// The hook annotations of a Machine with `prefix` (sorted names).
pub fn hooks(annotations: &BTreeMap<String, String>, prefix: &str) -> Vec<String> {
    annotations
        .keys()
        .filter(|k| {
            k.split_once('/')
                .is_some_and(|(p, name)| p == prefix && !name.is_empty())
        })
        .cloned()
        .collect()
}

/// Whether `timeout_seconds` (unset or 0: never) has passed since `start`.
pub fn timed_out(start: Option<Timestamp>, timeout_seconds: Option<i32>, now: Timestamp) -> bool {
    match (start, timeout_seconds) {
        (Some(s), Some(t)) if t > 0 => now.as_second() - s.as_second() > i64::from(t),
        _ => false,
    }
}

/// A Pod on the Node being drained.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Labels of its namespace.
    pub namespace_labels: BTreeMap<String, String>,
    /// Kind of its controller owner, if any.
    pub controller_kind: Option<String>,
    /// Has the mirror-pod annotation.
    pub mirror: bool,
    /// Phase is Succeeded or Failed.
    pub completed: bool,
    /// Has a deletionTimestamp.
    pub deleting: bool,
}

/// A MachineDrainRule that applies to the Machine being drained (its machine selectors were
/// checked already).
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Name (rules apply in name order; the first match wins).
    pub name: String,
    /// Drain / Skip / WaitCompleted.
    pub behavior: String,
    /// Order of Drain (default 0).
    pub order: i32,
    /// Pod selectors (empty: every Pod).
    pub pods: Vec<slipway_api::drain::MachineDrainRulePodSelector>,
}

/// What the drain does with one Pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodAction {
    /// Left on the Node; the reason is for logs and tests.
    Skip(String),
    /// Not evicted; the drain waits until it completes.
    WaitCompleted,
    /// Evicted, in this order.
    Evict(i32),
}

fn rule_applies(rule: &Rule, pod: &PodView) -> bool {
    rule.pods.is_empty()
        || rule.pods.iter().any(|s| {
            s.selector
                .as_ref()
                .is_none_or(|sel| selector_matches(sel, &pod.labels))
                && s.namespace_selector
                    .as_ref()
                    .is_none_or(|sel| selector_matches(sel, &pod.namespace_labels))
        })
}

/// Upstream's filters in their order: DaemonSet Pods and mirror Pods are skipped, then the
/// Pod's `cluster.x-k8s.io/drain` label (`skip`, `wait-completed`), then the first matching
/// MachineDrainRule by name; everything else is evicted at order 0.
pub fn classify(pod: &PodView, rules: &[Rule]) -> PodAction {
    if pod.controller_kind.as_deref() == Some("DaemonSet") {
        return PodAction::Skip("DaemonSet-managed Pod".into());
    }
    if pod.mirror {
        return PodAction::Skip("mirror Pod".into());
    }
    if let Some(v) = pod.labels.get(annotations::POD_DRAIN) {
        if v.eq_ignore_ascii_case("skip") {
            return PodAction::Skip(format!("label {}={v}", annotations::POD_DRAIN));
        }
        if v.replacen('-', "", 1)
            .eq_ignore_ascii_case(behavior::WAIT_COMPLETED)
        {
            return PodAction::WaitCompleted;
        }
    }
    let mut sorted: Vec<&Rule> = rules.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(r) = sorted.into_iter().find(|r| rule_applies(r, pod)) {
        return match r.behavior.as_str() {
            behavior::SKIP => PodAction::Skip(format!("MachineDrainRule {}", r.name)),
            behavior::WAIT_COMPLETED => PodAction::WaitCompleted,
            _ => PodAction::Evict(r.order),
        };
    }
    PodAction::Evict(0)
}

/// One round of a drain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainRound {
    /// Pods to evict now (`namespace/name`): those of the lowest order still present.
    pub evict: Vec<String>,
    /// Pods being deleted that are still there.
    pub terminating: Vec<String>,
    /// Pods the drain waits to complete.
    pub waiting_completion: Vec<String>,
    /// Pods of a higher order, evicted once the lower ones are gone.
    pub later: Vec<String>,
}

impl DrainRound {
    /// The drain is over: nothing left to evict or wait for.
    pub fn done(&self) -> bool {
        self.evict.is_empty()
            && self.terminating.is_empty()
            && self.waiting_completion.is_empty()
            && self.later.is_empty()
    }
}

/// Plans one round: Pods of the lowest order are evicted first and Pods of a higher order
/// only once those are gone; Pods already being deleted are waited for; WaitCompleted Pods
/// are waited for until they complete.
pub fn plan_round(pods: &[PodView], rules: &[Rule]) -> DrainRound {
    let mut round = DrainRound::default();
    let mut evictable: Vec<(i32, String)> = Vec::new();
    for p in pods {
        let key = format!("{}/{}", p.namespace, p.name);
        match classify(p, rules) {
            PodAction::Skip(_) => {}
            PodAction::WaitCompleted => {
                if !p.completed {
                    round.waiting_completion.push(key);
                }
            }
            PodAction::Evict(order) => {
                if p.deleting {
                    // Its order still holds back higher orders until it is gone.
                    evictable.push((order, String::new()));
                    round.terminating.push(key);
                } else {
                    evictable.push((order, key));
                }
            }
        }
    }
    if let Some(lowest) = evictable.iter().map(|(o, _)| *o).min() {
        for (o, key) in evictable {
            if key.is_empty() {
                continue;
            }
            if o == lowest {
                round.evict.push(key);
            } else {
                round.later.push(key);
            }
        }
    }
    round.evict.sort();
    round.later.sort();
    round.terminating.sort();
    round.waiting_completion.sort();
    round
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use slipway_api::drain::MachineDrainRulePodSelector;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn pod(name: &str, labels: &[(&str, &str)]) -> PodView {
        PodView {
            namespace: "default".into(),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn rule(name: &str, behavior: &str, order: i32, app: Option<&str>) -> Rule {
        Rule {
            name: name.into(),
            behavior: behavior.into(),
            order,
            pods: app
                .map(|a| {
                    vec![MachineDrainRulePodSelector {
                        selector: Some(LabelSelector {
                            match_labels: Some(BTreeMap::from([("app".into(), a.into())])),
                            match_expressions: None,
                        }),
                        namespace_selector: None,
                    }]
                })
                .unwrap_or_default(),
        }
    }

    #[test]
    fn hooks_are_found_by_prefix() {
        let a = BTreeMap::from([
            (
                "pre-drain.delete.hook.machine.cluster.x-k8s.io/backup".to_string(),
                String::new(),
            ),
            (
                "pre-drain.delete.hook.machine.cluster.x-k8s.io".to_string(),
                String::new(),
            ),
            (
                "pre-terminate.delete.hook.machine.cluster.x-k8s.io/lb".to_string(),
                "owner".to_string(),
            ),
            ("other/x".to_string(), String::new()),
        ]);
        assert_eq!(
            hooks(&a, annotations::PRE_DRAIN_HOOK_PREFIX),
            vec!["pre-drain.delete.hook.machine.cluster.x-k8s.io/backup".to_string()]
        );
        assert_eq!(hooks(&a, annotations::PRE_TERMINATE_HOOK_PREFIX).len(), 1);
        assert!(hooks(&BTreeMap::new(), annotations::PRE_DRAIN_HOOK_PREFIX).is_empty());
    }

    #[test]
    fn timeouts_pass_only_when_set() {
        assert!(
            !timed_out(Some(t(0)), None, t(1_000_000)),
            "unset: wait forever"
        );
        assert!(
            !timed_out(Some(t(0)), Some(0), t(1_000_000)),
            "0: wait forever"
        );
        assert!(!timed_out(Some(t(0)), Some(30), t(30)));
        assert!(timed_out(Some(t(0)), Some(30), t(31)));
        assert!(!timed_out(None, Some(30), t(31)), "not started");
    }

    #[test]
    fn daemonset_mirror_and_labelled_pods_are_skipped() {
        let mut ds = pod("ds", &[]);
        ds.controller_kind = Some("DaemonSet".into());
        let mut mirror = pod("kube-apiserver-n1", &[]);
        mirror.mirror = true;
        let skip = pod("s", &[("cluster.x-k8s.io/drain", "skip")]);
        let wait = pod("w", &[("cluster.x-k8s.io/drain", "wait-completed")]);
        let plain = pod("p", &[]);
        assert!(matches!(classify(&ds, &[]), PodAction::Skip(_)));
        assert!(matches!(classify(&mirror, &[]), PodAction::Skip(_)));
        assert!(matches!(classify(&skip, &[]), PodAction::Skip(_)));
        assert_eq!(classify(&wait, &[]), PodAction::WaitCompleted);
        assert_eq!(classify(&plain, &[]), PodAction::Evict(0));
        let round = plan_round(&[ds, mirror, skip, wait, plain], &[]);
        assert_eq!(round.evict, vec!["default/p"]);
        assert_eq!(round.waiting_completion, vec!["default/w"]);
        assert!(!round.done());
    }

    #[test]
    fn rules_apply_first_by_name_and_order_the_evictions() {
        let rules = vec![
            rule("b-db-last", behavior::DRAIN, 10, Some("db")),
            rule("a-db-skip", behavior::SKIP, 0, Some("cache")),
            rule("c-all", behavior::DRAIN, 0, Some("db")),
            rule("d-batch", behavior::WAIT_COMPLETED, 0, Some("batch")),
        ];
        let db = pod("db", &[("app", "db")]);
        let cache = pod("cache", &[("app", "cache")]);
        let web = pod("web", &[("app", "web")]);
        let mut batch = pod("batch", &[("app", "batch")]);
        assert_eq!(classify(&db, &rules), PodAction::Evict(10), "b- before c-");
        assert!(matches!(classify(&cache, &rules), PodAction::Skip(r) if r.contains("a-db-skip")));
        let round = plan_round(
            &[db.clone(), cache.clone(), web.clone(), batch.clone()],
            &rules,
        );
        assert_eq!(round.evict, vec!["default/web"], "order 0 first");
        assert_eq!(round.later, vec!["default/db"]);
        assert_eq!(round.waiting_completion, vec!["default/batch"]);
        batch.completed = true;
        let round = plan_round(&[db.clone(), batch.clone()], &rules);
        assert_eq!(
            round.evict,
            vec!["default/db"],
            "lower orders gone: db's turn"
        );
        assert!(round.waiting_completion.is_empty());
        let mut going = web;
        going.deleting = true;
        let round = plan_round(&[db, going], &rules);
        assert!(
            round.evict.is_empty(),
            "a terminating order-0 Pod holds order 10"
        );
        assert_eq!(round.terminating, vec!["default/web"]);
        assert_eq!(round.later, vec!["default/db"]);
        assert!(plan_round(&[cache], &rules).done());
    }

    #[test]
    fn namespace_selectors_use_the_namespace_labels() {
        let mut r = rule("ns", behavior::SKIP, 0, None);
        r.pods = vec![MachineDrainRulePodSelector {
            selector: None,
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("team".into(), "infra".into())])),
                match_expressions: None,
            }),
        }];
        let mut p = pod("x", &[]);
        assert_eq!(classify(&p, std::slice::from_ref(&r)), PodAction::Evict(0));
        p.namespace_labels.insert("team".into(), "infra".into());
        assert!(matches!(classify(&p, &[r]), PodAction::Skip(_)));
    }
}
