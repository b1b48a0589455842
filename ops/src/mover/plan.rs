//! What a move does, given the graph and what the target already holds, pure: which objects
//! to create and which a previous run created (recognised by the source UID it left on them),
//! which clash, whose status to restore, and the object as it is written to the target.

use std::collections::HashMap;

use serde_json::{Value, json};
use slipway_api::names::annotations;

use super::graph::{Graph, Key, Obj};

/// What the target holds under a moved object's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Its UID in the target.
    pub uid: String,
    /// The source UID a move left on it (`None`: not created by a move).
    pub moved_from: Option<String>,
    /// For a Cluster: whether it is paused in the target.
    pub paused: bool,
}

/// What to do with one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create it in the target.
    Create,
    /// A previous run created it; its target UID.
    Exists(String),
}

/// The plan of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// One step per graph node, in graph order.
    pub steps: Vec<Step>,
    /// Per node: whether to write its status to the target copy. Only while nothing reconciles
    /// it there: created by this run, or every Cluster it belongs to still paused in the target.
    pub restore_status: Vec<bool>,
}

/// Plans a run; the error lists every clashing object (one in the target that a move did not
/// make from this source object).
pub fn plan(graph: &Graph, target: &HashMap<Key, Observed>) -> Result<Plan, Vec<String>> {
    let mut clashes = Vec::new();
    let mut steps = Vec::with_capacity(graph.nodes.len());
    for n in &graph.nodes {
        steps.push(match target.get(&n.obj.key()) {
            None => Step::Create,
            Some(o) if o.moved_from.as_deref() == Some(n.obj.uid()) => Step::Exists(o.uid.clone()),
            // A shared object the target already has (an identity installed there, a class
            // moved with another namespace) is used as it is, as clusterctl does for global
            // objects.
            Some(o) if n.keep => Step::Exists(o.uid.clone()),
            Some(o) => {
                clashes.push(format!(
                    "{} already exists in the target{}",
                    n.obj.describe(),
                    match &o.moved_from {
                        Some(_) => " (moved there from another object of that name)",
                        None => " (not created by slipway move)",
                    }
                ));
                Step::Exists(o.uid.clone())
            }
        });
    }
    if !clashes.is_empty() {
        return Err(clashes);
    }
    let paused_in_target = |cluster: &str| {
        target
            .iter()
            .find(|(k, _)| {
                k.group == "cluster.x-k8s.io" && k.kind == "Cluster" && k.name == cluster
            })
            .is_some_and(|(_, o)| o.paused)
    };
    let restore_status = graph
        .nodes
        .iter()
        .zip(&steps)
        .map(|(n, s)| {
            let has_status = n.obj.kind.status
                && n.obj.value["status"]
                    .as_object()
                    .is_some_and(|s| !s.is_empty());
            has_status
                && (*s == Step::Create
                    || (!n.tenants.is_empty() && n.tenants.iter().all(|c| paused_in_target(c))))
        })
        .collect();
    Ok(Plan {
        steps,
        restore_status,
    })
}

/// The object as created in the target: server-set metadata dropped, owner references
/// re-pointed to the owners' target UIDs (references to owners that do not move are dropped,
/// else the target's garbage collector would delete the object), the source UID recorded,
/// status left for the status subresource.
pub fn for_target(obj: &Obj, target_uids: &HashMap<String, String>) -> Value {
    let mut v = obj.value.clone();
    v["apiVersion"] = json!(obj.kind.api_version());
    v["kind"] = json!(obj.kind.kind);
    if let Some(m) = v["metadata"].as_object_mut() {
        for f in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "generation",
            "selfLink",
        ] {
            m.remove(f);
        }
        if let Some(refs) = m.get_mut("ownerReferences").and_then(Value::as_array_mut) {
            refs.retain_mut(|r| {
                match r["uid"].as_str().and_then(|u| target_uids.get(u)).cloned() {
                    Some(new) => {
                        r["uid"] = json!(new);
                        true
                    }
                    None => false,
                }
            });
            if refs.is_empty() {
                m.remove("ownerReferences");
            }
        }
        let ann = m
            .entry("annotations")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(ann) = ann {
            ann.remove(annotations::DELETE_FOR_MOVE);
            ann.insert(annotations::MOVED_FROM_UID.into(), json!(obj.uid()));
        }
    }
    if obj.kind.status
        && let Some(o) = v.as_object_mut()
    {
        o.remove("status");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::super::graph::{build, tests::one_cluster};
    use super::*;

    fn observed(uid: &str, from: Option<&str>, paused: bool) -> Observed {
        Observed {
            uid: uid.into(),
            moved_from: from.map(Into::into),
            paused,
        }
    }

    fn key(g: &Graph, kind: &str) -> Key {
        g.nodes
            .iter()
            .find(|n| n.obj.kind.kind == kind)
            .unwrap()
            .obj
            .key()
    }

    #[test]
    fn an_empty_target_gets_everything_created_with_status() {
        let g = build(one_cluster(), "ns").unwrap();
        let p = plan(&g, &HashMap::new()).unwrap();
        assert!(p.steps.iter().all(|s| *s == Step::Create));
        for (n, r) in g.nodes.iter().zip(&p.restore_status) {
            assert_eq!(*r, n.obj.kind.status, "{}", n.obj.describe());
        }
    }

    #[test]
    fn a_rerun_reuses_what_it_created_and_creates_the_rest() {
        let g = build(one_cluster(), "ns").unwrap();
        let mut target = HashMap::new();
        target.insert(key(&g, "Cluster"), observed("t-c", Some("c"), true));
        target.insert(
            key(&g, "KubeadmControlPlane"),
            observed("t-kcp", Some("kcp"), true),
        );
        let p = plan(&g, &target).unwrap();
        let step = |k: &str| &p.steps[g.nodes.iter().position(|n| n.obj.kind.kind == k).unwrap()];
        assert_eq!(step("Cluster"), &Step::Exists("t-c".into()));
        assert_eq!(step("KubeadmControlPlane"), &Step::Exists("t-kcp".into()));
        assert_eq!(step("Machine"), &Step::Create);
        // The target Cluster is still paused: nothing reconciled there, status is rewritten.
        assert!(
            p.restore_status
                .iter()
                .zip(&g.nodes)
                .all(|(r, n)| *r == n.obj.kind.status)
        );
    }

    #[test]
    fn once_unpaused_in_the_target_existing_objects_keep_their_status() {
        let g = build(one_cluster(), "ns").unwrap();
        let mut target = HashMap::new();
        target.insert(key(&g, "Cluster"), observed("t-c", Some("c"), false));
        target.insert(key(&g, "Machine"), observed("t-m", Some("m1"), false));
        let p = plan(&g, &target).unwrap();
        let at = |k: &str| g.nodes.iter().position(|n| n.obj.kind.kind == k).unwrap();
        assert!(!p.restore_status[at("Cluster")]);
        assert!(!p.restore_status[at("Machine")]);
        assert!(
            p.restore_status[at("InMemoryMachine")],
            "created now: restored"
        );
    }

    #[test]
    fn a_shared_object_the_target_has_is_used_not_refused() {
        use super::super::graph::tests::obj;
        let mut objs = one_cluster();
        let mut id = obj(
            "infrastructure.cluster.x-k8s.io",
            "Identity",
            "default",
            "id",
            &[],
            None,
        );
        id.kind.namespaced = false;
        id.kind.force_move = true;
        id.value["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("namespace");
        objs.push(id);
        let g = build(objs, "ns").unwrap();
        let k = key(&g, "Identity");
        assert_eq!(k.namespace, "");
        let target = HashMap::from([(k, observed("t-id", None, false))]);
        let p = plan(&g, &target).unwrap();
        let at = g
            .nodes
            .iter()
            .position(|n| n.obj.kind.kind == "Identity")
            .unwrap();
        assert_eq!(p.steps[at], Step::Exists("t-id".into()));
    }

    #[test]
    fn a_clashing_object_is_refused_by_name() {
        let g = build(one_cluster(), "ns").unwrap();
        let mut target = HashMap::new();
        target.insert(key(&g, "Machine"), observed("t", None, false));
        target.insert(key(&g, "Cluster"), observed("t2", Some("other-uid"), false));
        let err = plan(&g, &target).unwrap_err();
        assert_eq!(
            err,
            [
                "Cluster ns/a already exists in the target (moved there from another object of that name)",
                "Machine ns/a-cp-x already exists in the target (not created by slipway move)",
            ]
        );
    }

    #[test]
    fn the_target_copy_points_at_new_owners_and_records_its_source() {
        let g = build(one_cluster(), "ns").unwrap();
        let m = &g
            .nodes
            .iter()
            .find(|n| n.obj.kind.kind == "Machine")
            .unwrap()
            .obj;
        let mut obj = m.clone();
        obj.value["metadata"]["resourceVersion"] = json!("7");
        obj.value["metadata"]["ownerReferences"]
            .as_array_mut()
            .unwrap()
            .push(json!({"apiVersion": "x/v1", "kind": "Gone", "name": "g", "uid": "not-moved"}));
        let uids = HashMap::from([("kcp".to_string(), "t-kcp".to_string())]);
        let v = for_target(&obj, &uids);
        assert_eq!(v["apiVersion"], "cluster.x-k8s.io/v1beta2");
        assert_eq!(v["kind"], "Machine");
        assert_eq!(
            v["metadata"]["ownerReferences"].as_array().unwrap().len(),
            1
        );
        assert_eq!(v["metadata"]["ownerReferences"][0]["uid"], "t-kcp");
        assert_eq!(
            v["metadata"]["annotations"][annotations::MOVED_FROM_UID],
            "m1"
        );
        assert!(v["metadata"].get("uid").is_none());
        assert!(v["metadata"].get("resourceVersion").is_none());
        assert!(
            v.get("status").is_none(),
            "restored through the subresource"
        );
        let s = &g
            .nodes
            .iter()
            .find(|n| n.obj.kind.kind == "Secret")
            .unwrap()
            .obj;
        assert!(
            for_target(s, &HashMap::new())["metadata"]
                .get("ownerReferences")
                .is_none()
        );
    }
}
