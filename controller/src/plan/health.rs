//! MachineHealthCheck decisions: whether one Machine is healthy (and when to look again), and
//! whether remediation is allowed for the unhealthy count (`triggerIf`). Pure; the clock is a
//! parameter.

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use slipway_api::{
    machine::{RemediationTrigger, UnhealthyCondition},
    names::reasons,
};

/// Upstream's default `nodeStartupTimeoutSeconds`.
pub const DEFAULT_NODE_STARTUP_TIMEOUT: i64 = 600;

/// A condition as observed (on a Node or a Machine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// Type.
    pub type_: String,
    /// True / False / Unknown.
    pub status: String,
    /// Reason.
    pub reason: String,
    /// When the status last changed.
    pub since: Timestamp,
}

/// The Node side of a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// The Machine has no `status.nodeRef` yet.
    NotYet,
    /// The Machine names a Node the workload cluster no longer has.
    Gone(String),
    /// The Node and its conditions.
    Present(Vec<Cond>),
    /// The workload cluster did not answer: nothing is known about the Node.
    Unknown,
}

/// One Machine a MachineHealthCheck selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Created at.
    pub created: Timestamp,
    /// Has `cluster.x-k8s.io/remediate-machine`.
    pub remediate_annotation: bool,
    /// A control-plane Machine (checked before the control plane is initialized).
    pub control_plane: bool,
    /// Since when InfrastructureReady is True (`None`: not True).
    pub infra_ready_since: Option<Timestamp>,
    /// Its Node.
    pub node: NodeState,
    /// Its conditions.
    pub conditions: Vec<Cond>,
}

/// What the Cluster reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterState {
    /// Since when ControlPlaneInitialized is True (`None`: not True).
    pub control_plane_initialized: Option<Timestamp>,
    /// Since when InfrastructureReady is True (`None`: not True).
    pub infrastructure_ready: Option<Timestamp>,
}

/// The checks of a MachineHealthCheck, resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checks {
    /// Seconds a Machine may take to get a Node; 0 disables the check.
    pub node_startup_timeout: i64,
    /// Node conditions with their timeouts.
    pub node: Vec<UnhealthyCondition>,
    /// Machine conditions with their timeouts.
    pub machine: Vec<UnhealthyCondition>,
}

/// Shortest and longest wait between looks at a workload cluster's Nodes.
pub const POLL_BOUNDS: (u64, u64) = (5, 60);

/// How often a check looks at its workload cluster's Nodes while its targets are healthy:
/// the shortest Node condition timeout, within [`POLL_BOUNDS`]. Looking more often gains
/// nothing: a condition seen up to one timeout late is still judged from its
/// `lastTransitionTime`, and once it is seen the check requeues itself for the moment it
/// expires. So remediation is not delayed, while a fleet at rest costs a fraction of the
/// requests (the bench's checks time out after 5 minutes: one look a minute, not twelve).
pub fn poll_period(checks: &Checks) -> std::time::Duration {
    let shortest = checks
        .node
        .iter()
        .map(|c| u64::try_from(c.timeout_seconds).unwrap_or(0))
        .min()
        .unwrap_or(POLL_BOUNDS.1);
    std::time::Duration::from_secs(shortest.clamp(POLL_BOUNDS.0, POLL_BOUNDS.1))
}

/// A verdict on one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Healthy; when something may turn it unhealthy, look again after this long.
    Healthy(Option<Duration>),
    /// Unhealthy: the HealthCheckSucceeded reason and message.
    Unhealthy {
        /// Reason (upstream's).
        reason: &'static str,
        /// Message listing every failed check.
        message: String,
    },
}

impl Health {
    /// Whether the verdict is unhealthy.
    pub fn is_unhealthy(&self) -> bool {
        matches!(self, Self::Unhealthy { .. })
    }
}

fn secs(d: i64) -> Duration {
    Duration::from_secs(d.max(0) as u64)
}

fn go_duration(s: i64) -> String {
    slipway_api::conversion::duration::format_seconds(s)
}

/// Checks conditions against the unhealthy ones: messages of those held past their timeout,
/// or the time until the first one would be.
fn match_conditions(
    on: &str,
    checks: &[UnhealthyCondition],
    conds: &[Cond],
    now: Timestamp,
) -> (Vec<String>, Option<Duration>) {
    let mut failed = Vec::new();
    let mut next: Option<Duration> = None;
    for c in checks {
        let Some(have) = conds.iter().find(|h| h.type_ == c.type_) else {
            continue;
        };
        if have.status != c.status {
            continue;
        }
        let held = now.as_second() - have.since.as_second();
        let timeout = i64::from(c.timeout_seconds);
        if held > timeout {
            failed.push(format!(
                "Condition {} on {on} is reporting status {} with reason {} for more than {}",
                c.type_,
                c.status,
                have.reason,
                go_duration(timeout)
            ));
        } else {
            let left = secs(timeout - held + 1);
            next = Some(next.map_or(left, |n| n.min(left)));
        }
    }
    (failed, next)
}

/// Whether `t` is healthy under `checks`, as upstream decides: the remediate annotation first;
/// nothing is held against a Machine before the control plane is initialized (control-plane
/// Machines excepted) and the cluster infrastructure is ready; then Machine conditions, a
/// missing Node, the node startup timeout (counted from the latest of creation, control plane
/// initialized, cluster and machine infrastructure ready) and Node conditions.
pub fn evaluate(t: &Target, cluster: &ClusterState, checks: &Checks, now: Timestamp) -> Health {
    if t.remediate_annotation {
        return Health::Unhealthy {
            reason: reasons::HAS_REMEDIATE_ANNOTATION,
            message: "Health check failed: marked for remediation via cluster.x-k8s.io/remediate-machine annotation".into(),
        };
    }
    if (cluster.control_plane_initialized.is_none() && !t.control_plane)
        || cluster.infrastructure_ready.is_none()
    {
        return Health::Healthy(None);
    }
    let (machine_failed, machine_next) =
        match_conditions("Machine", &checks.machine, &t.conditions, now);
    let (node_reason, node_failed, node_next) = match &t.node {
        NodeState::Gone(name) => (
            reasons::NODE_DELETED,
            vec![format!("Node {name} has been deleted")],
            None,
        ),
        NodeState::Unknown => (reasons::UNHEALTHY_NODE, vec![], None),
        NodeState::NotYet if checks.node_startup_timeout == 0 => {
            (reasons::NODE_STARTUP_TIMEOUT, vec![], None)
        }
        NodeState::NotYet => {
            let start = [
                Some(t.created),
                cluster.control_plane_initialized,
                cluster.infrastructure_ready,
                t.infra_ready_since,
            ]
            .into_iter()
            .flatten()
            .max()
            .expect("creation time is always there");
            let waited = now.as_second() - start.as_second();
            if waited > checks.node_startup_timeout {
                (
                    reasons::NODE_STARTUP_TIMEOUT,
                    vec![format!(
                        "Node failed to report startup in {}",
                        go_duration(checks.node_startup_timeout)
                    )],
                    None,
                )
            } else {
                (
                    reasons::NODE_STARTUP_TIMEOUT,
                    vec![],
                    Some(secs(checks.node_startup_timeout - waited + 1)),
                )
            }
        }
        NodeState::Present(conds) => {
            let (f, n) = match_conditions("Node", &checks.node, conds, now);
            (reasons::UNHEALTHY_NODE, f, n)
        }
    };
    if machine_failed.is_empty() && node_failed.is_empty() {
        let next = [machine_next, node_next].into_iter().flatten().min();
        return Health::Healthy(next);
    }
    let reason = if machine_failed.is_empty() {
        node_reason
    } else {
        reasons::UNHEALTHY_MACHINE
    };
    let lines: Vec<String> = machine_failed
        .into_iter()
        .chain(node_failed)
        .map(|m| format!("  * {m}"))
        .collect();
    Health::Unhealthy {
        reason,
        message: format!("Health check failed:\n{}", lines.join("\n")),
    }
}

/// Whether remediation may proceed for `unhealthy` of `total` targets, and how many more
/// remediations are allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gate {
    /// Remediation may proceed.
    pub allowed: bool,
    /// status.remediationsAllowed.
    pub remaining: i32,
    /// Why not (the RemediationAllowed message), empty when allowed.
    pub message: String,
}

/// `[min-max]` of `unhealthyInRange`.
pub fn parse_range(s: &str) -> Result<(i32, i32), String> {
    let bad = || format!("spec.remediation.triggerIf.unhealthyInRange: {s:?} is not [min-max]");
    let inner = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(bad)?;
    let (a, b) = inner.split_once('-').ok_or_else(bad)?;
    let (min, max): (i32, i32) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if max < min {
        return Err(format!(
            "spec.remediation.triggerIf.unhealthyInRange: max value {max} cannot be less than min value {min}"
        ));
    }
    Ok((min, max))
}

/// Upstream's gating: with `unhealthyInRange` the unhealthy count must be inside the range;
/// otherwise it must be at most `unhealthyLessThanOrEqualTo` (default 100%, percentages of the
/// expected machines rounded down).
pub fn gate(
    trigger: Option<&RemediationTrigger>,
    total: i32,
    unhealthy: i32,
) -> Result<Gate, String> {
    if let Some(range) = trigger.and_then(|t| t.unhealthy_in_range.as_deref()) {
        let (min, max) = parse_range(range)?;
        let allowed = unhealthy >= min && unhealthy <= max;
        return Ok(Gate {
            allowed,
            remaining: if allowed { max - unhealthy } else { 0 },
            message: if allowed {
                String::new()
            } else {
                format!(
                    "Remediation is not allowed, the number of not started or unhealthy machines does not fall within the range (total: {total}, unhealthy: {unhealthy}, unhealthyRange: {range})"
                )
            },
        });
    }
    let limit = trigger
        .and_then(|t| t.unhealthy_less_than_or_equal_to.clone())
        .unwrap_or(IntOrString::String("100%".into()));
    let (max, shown) = match &limit {
        IntOrString::Int(i) => (*i, i.to_string()),
        IntOrString::String(s) => (
            super::resolve_limit(s, total, false).ok_or_else(|| {
                format!(
                    "spec.remediation.triggerIf.unhealthyLessThanOrEqualTo: {s:?} is neither a number nor a percentage"
                )
            })?,
            s.clone(),
        ),
    };
    let allowed = unhealthy <= max;
    Ok(Gate {
        allowed,
        remaining: if allowed { max - unhealthy } else { 0 },
        message: if allowed {
            String::new()
        } else {
            format!(
                "Remediation is not allowed, the number of not started or unhealthy machines exceeds maxUnhealthy (total: {total}, unhealthy: {unhealthy}, maxUnhealthy: {shown})"
            )
        },
    })
}

/// Whether `labels` satisfy a LabelSelector (matchLabels and matchExpressions: In, NotIn,
/// Exists, DoesNotExist). An unknown operator matches nothing.
pub fn selector_matches(
    sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let by_labels = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expr = sel.match_expressions.iter().flatten().all(|e| {
        let have = labels.get(&e.key);
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        }
    });
    by_labels && by_expr
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn cond(type_: &str, status: &str, since: i64) -> Cond {
        Cond {
            type_: type_.into(),
            status: status.into(),
            reason: "KubeletNotReady".into(),
            since: t(since),
        }
    }

    fn check(type_: &str, status: &str, timeout: i32) -> UnhealthyCondition {
        UnhealthyCondition {
            type_: type_.into(),
            status: status.into(),
            timeout_seconds: timeout,
        }
    }

    fn target(node: NodeState) -> Target {
        Target {
            created: t(100),
            remediate_annotation: false,
            control_plane: false,
            infra_ready_since: Some(t(110)),
            node,
            conditions: vec![],
        }
    }

    fn ready_cluster() -> ClusterState {
        ClusterState {
            control_plane_initialized: Some(t(50)),
            infrastructure_ready: Some(t(10)),
        }
    }

    fn checks() -> Checks {
        Checks {
            node_startup_timeout: 600,
            node: vec![check("Ready", "False", 300), check("Ready", "Unknown", 300)],
            machine: vec![],
        }
    }

    #[test]
    fn node_conditions_count_from_their_transition() {
        let tg = target(NodeState::Present(vec![cond("Ready", "False", 1000)]));
        let c = ready_cluster();
        assert_eq!(
            evaluate(&tg, &c, &checks(), t(1200)),
            Health::Healthy(Some(Duration::from_secs(101))),
            "within the timeout: look again just after it ends"
        );
        assert_eq!(
            evaluate(&tg, &c, &checks(), t(1300)),
            Health::Healthy(Some(Duration::from_secs(1))),
            "exactly at the timeout is not past it"
        );
        match evaluate(&tg, &c, &checks(), t(1301)) {
            Health::Unhealthy { reason, message } => {
                assert_eq!(reason, "UnhealthyNode");
                assert!(
                    message.contains(
                        "Condition Ready on Node is reporting status False with reason KubeletNotReady for more than 5m0s"
                    ),
                    "{message}"
                );
            }
            h => panic!("{h:?}"),
        }
        let ok = target(NodeState::Present(vec![cond("Ready", "True", 1000)]));
        assert_eq!(evaluate(&ok, &c, &checks(), t(9999)), Health::Healthy(None));
    }

    #[test]
    fn a_gone_node_and_the_annotation_are_unhealthy_at_once() {
        let c = ready_cluster();
        match evaluate(&target(NodeState::Gone("n1".into())), &c, &checks(), t(200)) {
            Health::Unhealthy { reason, message } => {
                assert_eq!(reason, "NodeDeleted");
                assert!(message.contains("Node n1 has been deleted"), "{message}");
            }
            h => panic!("{h:?}"),
        }
        let mut tg = target(NodeState::Present(vec![cond("Ready", "True", 0)]));
        tg.remediate_annotation = true;
        assert!(matches!(
            evaluate(&tg, &ClusterState::default(), &checks(), t(1)),
            Health::Unhealthy {
                reason: "HasRemediateAnnotation",
                ..
            }
        ));
    }

    #[test]
    fn node_startup_timeout_counts_from_the_latest_readiness() {
        let tg = target(NodeState::NotYet);
        let mut c = ready_cluster();
        c.control_plane_initialized = Some(t(400));
        // start = max(created 100, cp 400, infra 10, machine infra 110) = 400
        assert_eq!(
            evaluate(&tg, &c, &checks(), t(900)),
            Health::Healthy(Some(Duration::from_secs(101)))
        );
        assert!(matches!(
            evaluate(&tg, &c, &checks(), t(1001)),
            Health::Unhealthy {
                reason: "NodeStartupTimeout",
                ..
            }
        ));
        let mut off = checks();
        off.node_startup_timeout = 0;
        assert_eq!(evaluate(&tg, &c, &off, t(99_999)), Health::Healthy(None));
    }

    #[test]
    fn nothing_counts_before_the_control_plane_is_initialized() {
        let tg = target(NodeState::NotYet);
        let c = ClusterState {
            control_plane_initialized: None,
            infrastructure_ready: Some(t(0)),
        };
        assert_eq!(
            evaluate(&tg, &c, &checks(), t(99_999)),
            Health::Healthy(None)
        );
        let mut cp = tg.clone();
        cp.control_plane = true;
        assert!(
            evaluate(&cp, &c, &checks(), t(99_999)).is_unhealthy(),
            "the first control-plane machine is checked"
        );
        let no_infra = ClusterState {
            control_plane_initialized: Some(t(0)),
            infrastructure_ready: None,
        };
        assert_eq!(
            evaluate(&cp, &no_infra, &checks(), t(99_999)),
            Health::Healthy(None)
        );
    }

    #[test]
    fn machine_conditions_win_the_reason_and_messages_merge() {
        let mut tg = target(NodeState::Present(vec![cond("Ready", "Unknown", 0)]));
        tg.conditions = vec![cond("InfrastructureReady", "False", 0)];
        let mut ch = checks();
        ch.machine = vec![check("InfrastructureReady", "False", 60)];
        match evaluate(&tg, &ready_cluster(), &ch, t(1000)) {
            Health::Unhealthy { reason, message } => {
                assert_eq!(reason, "UnhealthyMachine");
                assert!(message.contains("on Machine"), "{message}");
                assert!(message.contains("on Node"), "{message}");
            }
            h => panic!("{h:?}"),
        }
    }

    #[test]
    fn gating_by_count_percentage_and_range() {
        let le = |v: IntOrString| RemediationTrigger {
            unhealthy_less_than_or_equal_to: Some(v),
            unhealthy_in_range: None,
        };
        let g = gate(None, 3, 3).unwrap();
        assert!(g.allowed, "default 100%");
        assert_eq!(g.remaining, 0);
        let g = gate(Some(&le(IntOrString::Int(1))), 3, 2).unwrap();
        assert!(!g.allowed);
        assert_eq!(g.remaining, 0);
        assert_eq!(
            g.message,
            "Remediation is not allowed, the number of not started or unhealthy machines exceeds maxUnhealthy (total: 3, unhealthy: 2, maxUnhealthy: 1)"
        );
        let g = gate(Some(&le(IntOrString::String("40%".into()))), 5, 2).unwrap();
        assert!(g.allowed, "40% of 5 is 2");
        let g = gate(Some(&le(IntOrString::String("40%".into()))), 4, 2).unwrap();
        assert!(!g.allowed, "40% of 4 rounds down to 1");
        let g = gate(Some(&le(IntOrString::Int(2))), 4, 1).unwrap();
        assert_eq!(g.remaining, 1);
        let range = RemediationTrigger {
            unhealthy_less_than_or_equal_to: None,
            unhealthy_in_range: Some("[1-2]".into()),
        };
        assert!(gate(Some(&range), 5, 1).unwrap().allowed);
        assert_eq!(gate(Some(&range), 5, 1).unwrap().remaining, 1);
        let g = gate(Some(&range), 5, 3).unwrap();
        assert!(!g.allowed);
        assert!(g.message.contains("unhealthyRange: [1-2]"), "{}", g.message);
        assert!(!gate(Some(&range), 5, 0).unwrap().allowed);
        assert!(
            gate(Some(&le(IntOrString::String("lots".into()))), 5, 0)
                .unwrap_err()
                .contains("unhealthyLessThanOrEqualTo")
        );
        assert!(parse_range("[3-1]").unwrap_err().contains("cannot be less"));
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
            LabelSelector, LabelSelectorRequirement,
        };
        let labels = BTreeMap::from([("app".to_string(), "db".to_string())]);
        let sel = |op: &str, vals: Option<Vec<&str>>| LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: op.into(),
                values: vals.map(|v| v.into_iter().map(String::from).collect()),
            }]),
        };
        assert!(selector_matches(&LabelSelector::default(), &labels));
        assert!(selector_matches(&sel("In", Some(vec!["db", "x"])), &labels));
        assert!(!selector_matches(&sel("NotIn", Some(vec!["db"])), &labels));
        assert!(selector_matches(&sel("Exists", None), &labels));
        assert!(!selector_matches(&sel("DoesNotExist", None), &labels));
        assert!(!selector_matches(&sel("Near", None), &labels));
    }

    #[test]
    fn healthy_targets_are_looked_at_once_per_shortest_node_timeout_within_bounds() {
        let checks = |timeouts: &[i32]| Checks {
            node_startup_timeout: 600,
            node: timeouts
                .iter()
                .map(|t| UnhealthyCondition {
                    type_: "Ready".into(),
                    status: "False".into(),
                    timeout_seconds: *t,
                })
                .collect(),
            machine: vec![],
        };
        let table: &[(&[i32], u64)] = &[
            (&[], 60),
            (&[300, 300], 60),
            (&[300, 30], 30),
            (&[3], 5),
            (&[0], 5),
        ];
        for (timeouts, secs) in table {
            assert_eq!(
                poll_period(&checks(timeouts)).as_secs(),
                *secs,
                "{timeouts:?}"
            );
        }
    }
}
