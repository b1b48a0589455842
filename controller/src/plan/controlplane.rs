//! KubeadmControlPlane decisions: initialise, scale up or down one machine at a time, roll out
//! outdated machines (maxSurge 1: create then delete; 0: delete then create), or wait.

/// One control-plane machine as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpMachine {
    /// Machine name.
    pub name: String,
    /// Creation time (seconds), for oldest-first choices.
    pub created: i64,
    /// Matches the current version and machine template.
    pub up_to_date: bool,
    /// Ready (node joined and healthy).
    pub ready: bool,
    /// Being deleted.
    pub deleting: bool,
}

/// What the control plane looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpObserved {
    /// spec.replicas.
    pub desired: i32,
    /// The control plane has been initialised (first machine's API server answered).
    pub initialized: bool,
    /// rollout.strategy.rollingUpdate.maxSurge: 0 or 1.
    pub max_surge: i32,
    /// Machines.
    pub machines: Vec<CpMachine>,
}

/// The next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpAction {
    /// Create the first machine with `kubeadm init`.
    Initialize,
    /// Create one more machine with `kubeadm join --control-plane`.
    ScaleUp,
    /// Delete this machine.
    ScaleDown(String),
    /// Nothing to do until something changes; the reason says what is awaited.
    Wait(String),
    /// Desired state reached.
    Idle,
}

fn oldest<'a>(ms: impl Iterator<Item = &'a CpMachine>) -> Option<&'a CpMachine> {
    ms.min_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)))
}

/// Decides the next step. One change at a time, and only while every machine is healthy, so
/// etcd never loses quorum to two concurrent changes.
pub fn plan(o: &CpObserved) -> CpAction {
    if let Some(m) = o.machines.iter().find(|m| m.deleting) {
        return CpAction::Wait(format!("waiting for machine {} to be deleted", m.name));
    }
    if o.machines.is_empty() {
        return if o.desired > 0 {
            CpAction::Initialize
        } else {
            CpAction::Idle
        };
    }
    if !o.initialized {
        return CpAction::Wait("waiting for the control plane to be initialized".into());
    }
    if let Some(m) = o.machines.iter().find(|m| !m.ready) {
        return CpAction::Wait(format!("waiting for machine {} to be ready", m.name));
    }
    let current = o.machines.len() as i32;
    let outdated = oldest(o.machines.iter().filter(|m| !m.up_to_date));
    match outdated {
        Some(old) if o.max_surge >= 1 => {
            if current < o.desired + 1 {
                CpAction::ScaleUp
            } else {
                CpAction::ScaleDown(old.name.clone())
            }
        }
        Some(old) => {
            // Delete first; never below one machine, which would lose the cluster.
            if current >= o.desired && current > 1 {
                CpAction::ScaleDown(old.name.clone())
            } else {
                CpAction::ScaleUp
            }
        }
        None if current < o.desired => CpAction::ScaleUp,
        None if current > o.desired => {
            CpAction::ScaleDown(oldest(o.machines.iter()).expect("non-empty").name.clone())
        }
        None => CpAction::Idle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, created: i64, up_to_date: bool, ready: bool) -> CpMachine {
        CpMachine {
            name: name.into(),
            created,
            up_to_date,
            ready,
            deleting: false,
        }
    }

    fn obs(desired: i32, max_surge: i32, machines: Vec<CpMachine>) -> CpObserved {
        CpObserved {
            desired,
            initialized: !machines.is_empty(),
            max_surge,
            machines,
        }
    }

    #[test]
    fn decisions() {
        use CpAction::*;
        let table: Vec<(&str, CpObserved, CpAction)> = vec![
            ("nothing yet", obs(3, 1, vec![]), Initialize),
            ("zero replicas", obs(0, 1, vec![]), Idle),
            (
                "not initialized",
                CpObserved {
                    initialized: false,
                    ..obs(3, 1, vec![m("a", 1, true, false)])
                },
                Wait("waiting for the control plane to be initialized".into()),
            ),
            (
                "second join waits for the first",
                obs(3, 1, vec![m("a", 1, true, true), m("b", 2, true, false)]),
                Wait("waiting for machine b to be ready".into()),
            ),
            ("scale up", obs(3, 1, vec![m("a", 1, true, true)]), ScaleUp),
            (
                "steady",
                obs(
                    3,
                    1,
                    vec![
                        m("a", 1, true, true),
                        m("b", 2, true, true),
                        m("c", 3, true, true),
                    ],
                ),
                Idle,
            ),
            (
                "scale down removes the oldest",
                obs(
                    1,
                    1,
                    vec![
                        m("b", 2, true, true),
                        m("a", 1, true, true),
                        m("c", 3, true, true),
                    ],
                ),
                ScaleDown("a".into()),
            ),
            (
                "rollout surge: create first",
                obs(
                    3,
                    1,
                    vec![
                        m("a", 1, false, true),
                        m("b", 2, false, true),
                        m("c", 3, false, true),
                    ],
                ),
                ScaleUp,
            ),
            (
                "rollout surge: then delete the oldest outdated",
                obs(
                    3,
                    1,
                    vec![
                        m("a", 1, false, true),
                        m("b", 2, false, true),
                        m("c", 3, false, true),
                        m("d", 4, true, true),
                    ],
                ),
                ScaleDown("a".into()),
            ),
            (
                "rollout no surge: delete first",
                obs(
                    3,
                    0,
                    vec![
                        m("a", 1, false, true),
                        m("b", 2, false, true),
                        m("c", 3, false, true),
                    ],
                ),
                ScaleDown("a".into()),
            ),
            (
                "rollout no surge: then create",
                obs(3, 0, vec![m("b", 2, false, true), m("c", 3, false, true)]),
                ScaleUp,
            ),
            (
                "rollout no surge, single machine: create first",
                obs(1, 0, vec![m("a", 1, false, true)]),
                ScaleUp,
            ),
            (
                "deletion in flight",
                obs(
                    3,
                    1,
                    vec![
                        CpMachine {
                            deleting: true,
                            ..m("a", 1, false, true)
                        },
                        m("b", 2, true, true),
                    ],
                ),
                Wait("waiting for machine a to be deleted".into()),
            ),
        ];
        for (name, o, want) in table {
            assert_eq!(plan(&o), want, "{name}");
        }
    }
}
