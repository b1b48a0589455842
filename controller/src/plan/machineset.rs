//! MachineSet decisions: how many machines to create, or which to delete and in what order.

use slipway_api::machine::DeletionOrder;

/// One machine of a set as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetMachine {
    /// Name.
    pub name: String,
    /// Creation time (seconds).
    pub created: i64,
    /// Being deleted (does not count).
    pub deleting: bool,
    /// Annotated `cluster.x-k8s.io/delete-machine`: goes first.
    pub marked: bool,
    /// Ready.
    pub ready: bool,
}

/// The next step of a set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetAction {
    /// Create this many machines.
    Create(u32),
    /// Delete these machines.
    Delete(Vec<String>),
    /// At the desired count.
    Idle,
}

/// Diff between desired replicas and the machines that are not being deleted. Deletion order:
/// marked machines, then machines that are not ready, then by `order` (Random is deterministic
/// here: by name, so repeated reconciles pick the same machines).
pub fn plan(desired: i32, machines: &[SetMachine], order: DeletionOrder) -> SetAction {
    let live: Vec<&SetMachine> = machines.iter().filter(|m| !m.deleting).collect();
    let current = live.len() as i32;
    if current < desired {
        return SetAction::Create((desired - current) as u32);
    }
    if current == desired {
        return SetAction::Idle;
    }
    let mut ranked = live;
    ranked.sort_by(|a, b| {
        let class = |m: &SetMachine| (!m.marked, m.ready);
        class(a).cmp(&class(b)).then_with(|| match order {
            DeletionOrder::Newest => b.created.cmp(&a.created).then_with(|| a.name.cmp(&b.name)),
            DeletionOrder::Oldest => a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)),
            DeletionOrder::Random => a.name.cmp(&b.name),
        })
    });
    SetAction::Delete(
        ranked
            .into_iter()
            .take((current - desired) as usize)
            .map(|m| m.name.clone())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, created: i64, ready: bool, marked: bool) -> SetMachine {
        SetMachine {
            name: name.into(),
            created,
            deleting: false,
            marked,
            ready,
        }
    }

    #[test]
    fn diff_and_deletion_order() {
        let ms = vec![
            m("a", 1, true, false),
            m("b", 2, true, false),
            m("c", 3, false, false),
            m("d", 4, true, true),
            m("e", 5, true, false),
        ];
        let del = |n: i32, order| plan(n, &ms, order);
        assert_eq!(
            plan(3, &ms[..1], DeletionOrder::Random),
            SetAction::Create(2)
        );
        assert_eq!(del(5, DeletionOrder::Random), SetAction::Idle);
        assert_eq!(
            del(4, DeletionOrder::Oldest),
            SetAction::Delete(vec!["d".into()]),
            "marked first"
        );
        assert_eq!(
            del(3, DeletionOrder::Oldest),
            SetAction::Delete(vec!["d".into(), "c".into()]),
            "then not ready"
        );
        assert_eq!(
            del(1, DeletionOrder::Oldest),
            SetAction::Delete(vec!["d".into(), "c".into(), "a".into(), "b".into()])
        );
        assert_eq!(
            del(1, DeletionOrder::Newest),
            SetAction::Delete(vec!["d".into(), "c".into(), "e".into(), "b".into()])
        );
        let mut going = ms.clone();
        going[0].deleting = true;
        assert_eq!(
            plan(4, &going, DeletionOrder::Random),
            SetAction::Idle,
            "machines being deleted do not count"
        );
        assert_eq!(plan(5, &going, DeletionOrder::Random), SetAction::Create(1));
    }
}
