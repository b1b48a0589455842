//! MachineDeployment rolling update: how far to scale the MachineSet of the current template
//! up and the older ones down, within maxSurge and maxUnavailable (the Deployment algorithm).

/// One MachineSet of a deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetView {
    /// Name.
    pub name: String,
    /// Whether its template hash is the deployment's current one.
    pub current: bool,
    /// spec.replicas.
    pub replicas: i32,
    /// Available machines.
    pub available: i32,
    /// Creation time (seconds): older sets scale down first.
    pub created: i64,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RolloutPlan {
    /// Create the current template's MachineSet (it does not exist yet) with this many replicas.
    pub create_current: Option<i32>,
    /// New replica counts, by set name.
    pub scale: Vec<(String, i32)>,
}

/// Plans one step, as the Deployment controller does: if the current set can grow within the
/// surge, grow it and stop; otherwise shrink old sets, first by their unavailable machines
/// (bounded by how far the total may drop), then by available ones down to the minimum
/// availability. `max_surge` and `max_unavailable` are resolved against `desired`; both zero
/// is treated as surge 1 (the CRD rejects it; this keeps a rollout moving).
pub fn plan(desired: i32, max_surge: i32, max_unavailable: i32, sets: &[SetView]) -> RolloutPlan {
    let max_surge = if max_surge == 0 && max_unavailable == 0 {
        1
    } else {
        max_surge
    };
    let mut out = RolloutPlan::default();
    let mut old: Vec<&SetView> = sets
        .iter()
        .filter(|s| !s.current && s.replicas > 0)
        .collect();
    old.sort_by_key(|s| (s.created, s.name.clone()));
    let current = sets.iter().find(|s| s.current);
    let total: i32 = sets.iter().map(|s| s.replicas).sum();
    let current_replicas = current.map_or(0, |c| c.replicas);

    let target = if old.is_empty() {
        desired
    } else {
        (current_replicas + (desired + max_surge - total).max(0)).min(desired)
    };
    match current {
        None => out.create_current = Some(target),
        Some(c) if target != c.replicas && (old.is_empty() || target > c.replicas) => {
            out.scale.push((c.name.clone(), target));
            return out;
        }
        Some(_) => {}
    }
    if old.is_empty() || target > current_replicas {
        return out;
    }

    let min_available = desired - max_unavailable;
    let current_unavailable = current.map_or(0, |c| (c.replicas - c.available).max(0));
    let mut budget = (total - min_available - current_unavailable).max(0);
    let mut new_replicas: Vec<(String, i32)> =
        old.iter().map(|s| (s.name.clone(), s.replicas)).collect();
    // Unavailable machines of old sets first: removing them costs no availability.
    for (s, (_, r)) in old.iter().zip(new_replicas.iter_mut()) {
        let cut = (s.replicas - s.available).max(0).min(budget);
        *r -= cut;
        budget -= cut;
    }
    let available: i32 = sets.iter().map(|s| s.available).sum();
    let mut can_remove = (available - min_available).max(0);
    for (s, (_, r)) in old.iter().zip(new_replicas.iter_mut()) {
        let cut = (*r).min(can_remove).min(s.available);
        *r -= cut;
        can_remove -= cut;
    }
    for (s, (name, r)) in old.iter().zip(new_replicas) {
        if r != s.replicas {
            out.scale.push((name, r));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, current: bool, replicas: i32, available: i32, created: i64) -> SetView {
        SetView {
            name: name.into(),
            current,
            replicas,
            available,
            created,
        }
    }

    #[test]
    fn steady_state_and_scaling_without_a_rollout() {
        assert_eq!(
            plan(3, 1, 0, &[]),
            RolloutPlan {
                create_current: Some(3),
                scale: vec![]
            }
        );
        assert_eq!(
            plan(3, 1, 0, &[s("new", true, 3, 3, 1)]),
            RolloutPlan::default()
        );
        assert_eq!(
            plan(5, 1, 0, &[s("new", true, 3, 3, 1)]).scale,
            vec![("new".into(), 5)]
        );
        assert_eq!(
            plan(
                1,
                1,
                0,
                &[s("new", true, 3, 3, 1), s("old", false, 0, 0, 0)]
            )
            .scale,
            vec![("new".into(), 1)]
        );
    }

    #[test]
    fn surge_one_unavailable_zero_replaces_one_at_a_time() {
        // Template changed: old has 3, current does not exist yet.
        let p = plan(3, 1, 0, &[s("old", false, 3, 3, 0)]);
        assert_eq!(p.create_current, Some(1));
        assert!(
            p.scale.is_empty(),
            "nothing can go before the surge machine is available: {p:?}"
        );
        // The surge machine is available: one old machine may go.
        let p = plan(
            3,
            1,
            0,
            &[s("old", false, 3, 3, 0), s("new", true, 1, 1, 1)],
        );
        assert_eq!(p.scale, vec![("old".into(), 2)]);
        // Next step: scale the new set up again.
        let p = plan(
            3,
            1,
            0,
            &[s("old", false, 2, 2, 0), s("new", true, 1, 1, 1)],
        );
        assert_eq!(p.scale, vec![("new".into(), 2)]);
    }

    #[test]
    fn surge_zero_unavailable_one_deletes_first() {
        let p = plan(3, 0, 1, &[s("old", false, 3, 3, 0)]);
        assert_eq!(p.create_current, Some(0));
        assert_eq!(p.scale, vec![("old".into(), 2)]);
        let p = plan(
            3,
            0,
            1,
            &[s("old", false, 2, 2, 0), s("new", true, 0, 0, 1)],
        );
        assert_eq!(p.scale, vec![("new".into(), 1)]);
    }

    #[test]
    fn unavailable_old_machines_go_without_costing_availability() {
        let p = plan(
            3,
            1,
            0,
            &[s("old", false, 3, 1, 0), s("new", true, 1, 1, 1)],
        );
        assert_eq!(
            p.scale,
            vec![("old".into(), 2)],
            "one unavailable machine goes; availability allows no more: {p:?}"
        );
    }

    #[test]
    fn simulated_rollouts_converge_within_their_bounds() {
        for (desired, surge, unavail) in [
            (3, 1, 0),
            (3, 0, 1),
            (5, 2, 1),
            (1, 1, 0),
            (4, 0, 2),
            (10, 3, 3),
        ] {
            let mut sets = vec![s("old", false, desired, desired, 0)];
            for step in 0..100 {
                let p = plan(desired, surge, unavail, &sets);
                if let Some(r) = p.create_current {
                    sets.push(s("new", true, r, 0, 1));
                }
                for (name, r) in p.scale {
                    let set = sets.iter_mut().find(|x| x.name == name).unwrap();
                    set.replicas = r;
                }
                let total: i32 = sets.iter().map(|x| x.replicas).sum();
                assert!(
                    total <= desired + surge.max(if surge == 0 && unavail == 0 { 1 } else { 0 }),
                    "({desired},{surge},{unavail}) step {step}: {total} machines"
                );
                // Machines become available once they exist.
                for x in &mut sets {
                    x.available = x.replicas;
                }
                let available: i32 = sets.iter().map(|x| x.available).sum();
                assert!(
                    available >= desired - unavail,
                    "({desired},{surge},{unavail}) step {step}: only {available} available"
                );
                let done = sets.iter().all(|x| {
                    if x.current {
                        x.replicas == desired
                    } else {
                        x.replicas == 0
                    }
                });
                if done {
                    break;
                }
                assert!(
                    step < 99,
                    "({desired},{surge},{unavail}) never converged: {sets:?}"
                );
            }
        }
    }
}
