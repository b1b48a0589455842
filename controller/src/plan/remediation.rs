//! KubeadmControlPlane remediation decisions, as upstream takes them: one machine at a time,
//! never the last one, never while another machine is provisioning or being deleted, never
//! when losing the machine would lose etcd quorum, and within `retryPeriodSeconds` /
//! `maxRetry` when a replacement of a remediated machine fails again. Pure; the clock is a
//! parameter.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};
use slipway_api::names::reasons;

/// What a remediation records (upstream's `RemediationData`, the JSON of the
/// remediation-in-progress and remediation-for annotations).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemediationData {
    /// The machine remediated.
    pub machine: String,
    /// When (RFC 3339).
    pub timestamp: Time,
    /// Retries so far for this machine.
    #[serde(rename = "retryCount")]
    pub retry_count: i32,
}

impl RemediationData {
    /// Parses an annotation value.
    pub fn parse(s: &str) -> Result<Self, String> {
        serde_json::from_str(s).map_err(|e| format!("remediation annotation {s:?}: {e}"))
    }

    /// The annotation value.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).expect("serializable")
    }
}

/// One control-plane machine as remediation sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpTarget {
    /// Name.
    pub name: String,
    /// Created (seconds).
    pub created: i64,
    /// Has a Node.
    pub has_node: bool,
    /// Being deleted.
    pub deleting: bool,
    /// HealthCheckSucceeded is False.
    pub unhealthy: bool,
    /// OwnerRemediated is False (remediation asked for).
    pub remediation_asked: bool,
    /// Has the remediate-machine annotation.
    pub remediate_annotation: bool,
    /// Its etcd member is healthy (listed, Node Ready).
    pub etcd_healthy: bool,
    /// Whether it has an etcd member at all (`false` until it joined).
    pub etcd_member: bool,
    /// The remediation this machine replaces (remediation-for annotation).
    pub remediation_for: Option<RemediationData>,
}

/// `spec.remediation` resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `maxRetry` (`None`: unlimited).
    pub max_retry: Option<i32>,
    /// `retryPeriodSeconds` (default 0).
    pub retry_period: i64,
    /// `minHealthyPeriodSeconds` (default 3600).
    pub min_healthy_period: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_retry: None,
            retry_period: 0,
            min_healthy_period: 3600,
        }
    }
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to remediate (or a remediation is under way).
    Nothing,
    /// Not now: the machine's OwnerRemediated reason and message say why.
    Hold {
        /// The machine chosen.
        machine: String,
        /// CannotBeRemediated or RemediationDeferred.
        reason: &'static str,
        /// Why.
        message: String,
    },
    /// Delete this machine and record `data`.
    Remediate {
        /// The machine.
        machine: String,
        /// What the remediation-in-progress annotation and status.lastRemediation record.
        data: RemediationData,
    },
}

/// Upstream's preference: the remediate annotation, then machines without a Node, then
/// unhealthy etcd members, then the oldest.
fn pick<'a>(candidates: &[&'a CpTarget]) -> Option<&'a CpTarget> {
    candidates.iter().copied().min_by(|a, b| {
        (
            !a.remediate_annotation,
            a.has_node,
            a.etcd_healthy,
            a.created,
            &a.name,
        )
            .cmp(&(
                !b.remediate_annotation,
                b.has_node,
                b.etcd_healthy,
                b.created,
                &b.name,
            ))
    })
}

/// Whether removing `target` keeps etcd quorum: the members left must count a healthy
/// majority of themselves; and at least one other machine must stay healthy to run the
/// control-plane components. `orphan_members` are members no machine accounts for: etcd
/// counts them, as unhealthy (upstream's `canSafelyRemoveEtcdMember`).
pub fn keeps_quorum(machines: &[CpTarget], orphan_members: usize, target: &str) -> bool {
    let others: Vec<&CpTarget> = machines.iter().filter(|m| m.name != target).collect();
    if !others
        .iter()
        .any(|m| m.has_node && !m.unhealthy && !m.deleting)
    {
        return false;
    }
    let target_is_member = machines.iter().any(|m| m.name == target && m.etcd_member);
    if !target_is_member {
        return true;
    }
    let members: Vec<&&CpTarget> = others.iter().filter(|m| m.etcd_member).collect();
    let healthy = members.iter().filter(|m| m.etcd_healthy).count();
    healthy > (members.len() + orphan_members) / 2
}

/// Decides the next remediation step of a control plane (`orphan_members`: see
/// [`keeps_quorum`]).
pub fn decide(
    machines: &[CpTarget],
    orphan_members: usize,
    initialized: bool,
    in_progress: bool,
    settings: Settings,
    now: Timestamp,
) -> Decision {
    let candidates: Vec<&CpTarget> = machines
        .iter()
        .filter(|m| m.unhealthy && m.remediation_asked)
        .collect();
    let Some(target) = pick(&candidates) else {
        return Decision::Nothing;
    };
    if target.deleting || (initialized && in_progress) {
        return Decision::Nothing;
    }
    let hold = |reason, message: String| Decision::Hold {
        machine: target.name.clone(),
        reason,
        message,
    };
    let mut data = RemediationData {
        machine: target.name.clone(),
        timestamp: Time(now),
        retry_count: 0,
    };
    if let Some(last) = &target.remediation_for {
        let age = now.as_second() - last.timestamp.0.as_second();
        // A replacement failing within minHealthyPeriod continues the retries of its
        // predecessor; a later failure starts a new sequence.
        if age < settings.min_healthy_period {
            data.retry_count = last.retry_count;
            if age < settings.retry_period {
                return hold(
                    reasons::REMEDIATION_DEFERRED,
                    format!(
                        "KubeadmControlPlane can't remediate this machine because the operation already failed in the latest {} (RetryPeriodSeconds)",
                        slipway_api::conversion::duration::format_seconds(settings.retry_period)
                    ),
                );
            }
            if let Some(max) = settings.max_retry
                && data.retry_count >= max
            {
                return hold(
                    reasons::CANNOT_BE_REMEDIATED,
                    format!(
                        "KubeadmControlPlane can't remediate this machine because the operation already failed {max} times (MaxRetry)"
                    ),
                );
            }
            data.retry_count += 1;
        }
    }
    if initialized {
        if machines.len() <= 1 {
            return hold(
                reasons::CANNOT_BE_REMEDIATED,
                "KubeadmControlPlane can't remediate if current replicas are less or equal to 1"
                    .into(),
            );
        }
        if machines.iter().any(|m| !m.has_node && !m.unhealthy) {
            return hold(
                reasons::REMEDIATION_DEFERRED,
                "KubeadmControlPlane waiting for control plane Machine provisioning to complete before triggering remediation".into(),
            );
        }
        if machines.iter().any(|m| m.deleting) {
            return hold(
                reasons::REMEDIATION_DEFERRED,
                "KubeadmControlPlane waiting for control plane Machine deletion to complete before triggering remediation".into(),
            );
        }
        if !keeps_quorum(machines, orphan_members, &target.name) {
            return hold(
                reasons::CANNOT_BE_REMEDIATED,
                "KubeadmControlPlane can't remediate this Machine because this could result in loosing Kubernetes control plane components or in etcd quorum loss".into(),
            );
        }
    }
    Decision::Remediate {
        machine: target.name.clone(),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn healthy(name: &str, created: i64) -> CpTarget {
        CpTarget {
            name: name.into(),
            created,
            has_node: true,
            etcd_healthy: true,
            etcd_member: true,
            ..Default::default()
        }
    }

    fn sick(name: &str, created: i64) -> CpTarget {
        CpTarget {
            unhealthy: true,
            remediation_asked: true,
            etcd_healthy: false,
            ..healthy(name, created)
        }
    }

    fn held(d: &Decision) -> (&str, &str) {
        match d {
            Decision::Hold {
                machine, reason, ..
            } => (machine, reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_unhealthy_of_three_is_remediated() {
        let ms = vec![healthy("a", 1), sick("b", 2), healthy("c", 3)];
        assert_eq!(
            decide(&ms, 0, true, false, Settings::default(), t(100)),
            Decision::Remediate {
                machine: "b".into(),
                data: RemediationData {
                    machine: "b".into(),
                    timestamp: Time(t(100)),
                    retry_count: 0
                }
            }
        );
        assert_eq!(
            decide(&ms, 0, true, true, Settings::default(), t(100)),
            Decision::Nothing,
            "one at a time: a remediation in progress holds the next"
        );
    }

    #[test]
    fn two_unhealthy_of_three_would_lose_quorum() {
        let ms = vec![healthy("a", 1), sick("b", 2), sick("c", 3)];
        let d = decide(&ms, 0, true, false, Settings::default(), t(100));
        assert_eq!(held(&d), ("b", "CannotBeRemediated"), "oldest first");
        assert!(!keeps_quorum(&ms, 0, "b"));
        let one_sick = [healthy("a", 1), sick("b", 2), healthy("c", 3)];
        assert!(keeps_quorum(&one_sick, 0, "b"));
        assert!(
            keeps_quorum(&one_sick, 1, "b"),
            "2 healthy of 3 members left"
        );
        let d = decide(&one_sick, 2, true, false, Settings::default(), t(100));
        assert_eq!(held(&d), ("b", "CannotBeRemediated"));
        assert!(
            !keeps_quorum(&one_sick, 2, "b"),
            "stale members of deleted machines count: 2 healthy of 4 members is no majority"
        );
    }

    #[test]
    fn never_the_last_machine_and_not_while_others_change() {
        let d = decide(&[sick("a", 1)], 0, true, false, Settings::default(), t(1));
        assert_eq!(held(&d), ("a", "CannotBeRemediated"));
        let mut provisioning = healthy("c", 3);
        provisioning.has_node = false;
        let d = decide(
            &[healthy("a", 1), sick("b", 2), provisioning],
            0,
            true,
            false,
            Settings::default(),
            t(1),
        );
        assert_eq!(held(&d), ("b", "RemediationDeferred"));
        let mut deleting = healthy("c", 3);
        deleting.deleting = true;
        let d = decide(
            &[healthy("a", 1), sick("b", 2), deleting],
            0,
            true,
            false,
            Settings::default(),
            t(1),
        );
        assert_eq!(held(&d), ("b", "RemediationDeferred"));
    }

    #[test]
    fn machines_without_a_node_and_annotated_ones_go_first() {
        let mut no_node = sick("z", 9);
        no_node.has_node = false;
        no_node.etcd_member = false;
        let ms = vec![
            healthy("a", 1),
            sick("b", 2),
            no_node.clone(),
            healthy("d", 4),
            healthy("e", 5),
        ];
        assert!(matches!(
            decide(&ms, 0, true, false, Settings::default(), t(1)),
            Decision::Remediate { machine, .. } if machine == "z"
        ));
        let mut marked = sick("y", 10);
        marked.remediate_annotation = true;
        let ms = vec![
            healthy("a", 1),
            no_node,
            marked,
            healthy("d", 4),
            healthy("e", 5),
        ];
        assert!(matches!(
            decide(&ms, 0, true, false, Settings::default(), t(1)),
            Decision::Remediate { machine, .. } if machine == "y"
        ));
    }

    #[test]
    fn retries_respect_the_period_and_the_maximum() {
        let settings = Settings {
            max_retry: Some(2),
            retry_period: 60,
            min_healthy_period: 600,
        };
        let mut replacement = sick("b2", 50);
        replacement.remediation_for = Some(RemediationData {
            machine: "b".into(),
            timestamp: Time(t(100)),
            retry_count: 1,
        });
        let ms = |r: &CpTarget| vec![healthy("a", 1), r.clone(), healthy("c", 3)];
        let d = decide(&ms(&replacement), 0, true, false, settings, t(130));
        assert_eq!(
            held(&d),
            ("b2", "RemediationDeferred"),
            "within retryPeriod"
        );
        match decide(&ms(&replacement), 0, true, false, settings, t(200)) {
            Decision::Remediate { data, .. } => assert_eq!(data.retry_count, 2),
            other => panic!("{other:?}"),
        }
        replacement.remediation_for.as_mut().unwrap().retry_count = 2;
        let d = decide(&ms(&replacement), 0, true, false, settings, t(200));
        assert_eq!(held(&d), ("b2", "CannotBeRemediated"), "maxRetry reached");
        match decide(&ms(&replacement), 0, true, false, settings, t(800)) {
            Decision::Remediate { data, .. } => {
                assert_eq!(
                    data.retry_count, 0,
                    "healthy past minHealthyPeriod: a new sequence"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nothing_without_a_remediation_request() {
        let mut b = sick("b", 2);
        b.remediation_asked = false;
        assert_eq!(
            decide(
                &[healthy("a", 1), b, healthy("c", 3)],
                0,
                true,
                false,
                Settings::default(),
                t(1)
            ),
            Decision::Nothing
        );
        let data = RemediationData {
            machine: "b".into(),
            timestamp: Time(t(5)),
            retry_count: 1,
        };
        assert_eq!(RemediationData::parse(&data.to_annotation()).unwrap(), data);
        assert!(
            RemediationData::parse("{")
                .unwrap_err()
                .contains("remediation annotation")
        );
    }
}
