//! The object graph of a move, pure: which of a namespace's objects belong to the move, the
//! order to create them in (owners before what they own, Clusters first) and the Clusters each
//! object serves. Built from plain JSON objects, so it is table-tested without an API server.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use slipway_api::names::{annotations, labels};

/// A kind as the move reads and writes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind {
    /// API group (`""` for core).
    pub group: String,
    /// Version read and written (a CRD's storage version).
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Resource (plural).
    pub plural: String,
    /// Whether it has a status subresource (status is restored through it).
    pub status: bool,
}

impl Kind {
    /// `group/version` or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Objects of slipway's API groups move whole: every one in the namespace. Other kinds
    /// (Secrets, ConfigMaps, foreign custom resources) move only when linked to a moved
    /// object (the cluster-name label or an owner reference).
    pub fn moves_whole(&self) -> bool {
        let g = self.group.as_str();
        g == "cluster.x-k8s.io"
            || g.ends_with(".cluster.x-k8s.io")
            || g == "multicluster.x-k8s.io"
            || g == "core.kubefed.io"
    }
}

/// One object of the source.
#[derive(Clone, Debug, PartialEq)]
pub struct Obj {
    /// Its kind.
    pub kind: Kind,
    /// The whole object as read.
    pub value: Value,
}

impl Obj {
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// `metadata.namespace`.
    pub fn namespace(&self) -> &str {
        self.value["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
    }

    /// `metadata.uid`.
    pub fn uid(&self) -> &str {
        self.value["metadata"]["uid"].as_str().unwrap_or_default()
    }

    /// A label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.value["metadata"]["labels"][key].as_str()
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.value["metadata"]["annotations"][key].as_str()
    }

    /// UIDs of its owners.
    pub fn owner_uids(&self) -> Vec<&str> {
        self.value["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["uid"].as_str())
            .collect()
    }

    /// Whether it is a Cluster API Cluster.
    pub fn is_cluster(&self) -> bool {
        self.kind.group == "cluster.x-k8s.io" && self.kind.kind == "Cluster"
    }

    /// Whether it is being deleted by someone other than a move.
    pub fn deleting(&self) -> bool {
        self.value["metadata"]["deletionTimestamp"].is_string()
            && self.annotation(annotations::DELETE_FOR_MOVE).is_none()
    }

    /// `Kind namespace/name`, how every message names it.
    pub fn describe(&self) -> String {
        format!("{} {}/{}", self.kind.kind, self.namespace(), self.name())
    }

    /// The identity shared by the source object and its copy in the target.
    pub fn key(&self) -> Key {
        Key {
            group: self.kind.group.clone(),
            kind: self.kind.kind.clone(),
            name: self.name().to_string(),
        }
    }
}

/// An object's identity within the moved namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
}

/// The moved objects in creation order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// Owners before what they own; Clusters first.
    pub nodes: Vec<Node>,
}

/// A moved object.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The object.
    pub obj: Obj,
    /// Names of the Clusters it belongs to (by label or through its owners).
    pub tenants: BTreeSet<String>,
}

/// Why a graph cannot be moved.
#[derive(Debug, PartialEq, Eq)]
pub enum GraphError {
    /// Objects being deleted (a Cluster mid-deletion among them): moving them would bring them
    /// back to life in the target.
    Deleting(Vec<String>),
    /// Owner references that go round in a circle.
    Cycle(Vec<String>),
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Deleting(objs) => write!(
                f,
                "{} being deleted; wait until the deletion has finished, then move",
                objs.join(", ")
            ),
            Self::Cycle(objs) => write!(f, "owner references form a cycle: {}", objs.join(", ")),
        }
    }
}

/// Picks the moved objects among `candidates` (every object of the namespace the move read)
/// and orders them.
pub fn build(candidates: Vec<Obj>) -> Result<Graph, GraphError> {
    let by_uid: HashMap<String, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, o)| (o.uid().to_string(), i))
        .collect();
    // Selection: whole kinds and labelled objects, then whatever is owned by a selected one,
    // until nothing changes.
    let mut selected: Vec<bool> = candidates
        .iter()
        .map(|o| o.kind.moves_whole() || o.label(labels::CLUSTER_NAME).is_some())
        .collect();
    loop {
        let mut changed = false;
        for (i, o) in candidates.iter().enumerate() {
            if !selected[i]
                && o.owner_uids()
                    .iter()
                    .any(|u| by_uid.get(*u).is_some_and(|&j| selected[j]))
            {
                selected[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let objs: Vec<Obj> = candidates
        .into_iter()
        .zip(selected)
        .filter_map(|(o, s)| s.then_some(o))
        .collect();

    let deleting: Vec<String> = objs
        .iter()
        .filter(|o| o.deleting())
        .map(Obj::describe)
        .collect();
    if !deleting.is_empty() {
        return Err(GraphError::Deleting(deleting));
    }

    let order = order(&objs)?;
    let tenants = tenants(&objs);
    let mut slots: Vec<Option<Obj>> = objs.into_iter().map(Some).collect();
    Ok(Graph {
        nodes: order
            .into_iter()
            .map(|i| Node {
                obj: slots[i].take().expect("each index once"),
                tenants: tenants[i].clone(),
            })
            .collect(),
    })
}

/// Creation order: an object after its owners and after the Cluster its label names;
/// among the ready ones, Clusters first, then by kind and name (stable output).
fn order(objs: &[Obj]) -> Result<Vec<usize>, GraphError> {
    let index: HashMap<&str, usize> = objs.iter().enumerate().map(|(i, o)| (o.uid(), i)).collect();
    let clusters: HashMap<&str, usize> = objs
        .iter()
        .enumerate()
        .filter(|(_, o)| o.is_cluster())
        .map(|(i, o)| (o.name(), i))
        .collect();
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); objs.len()];
    for (i, o) in objs.iter().enumerate() {
        for u in o.owner_uids() {
            if let Some(&j) = index.get(u)
                && j != i
            {
                deps[i].insert(j);
            }
        }
        if let Some(c) = o.label(labels::CLUSTER_NAME)
            && let Some(&j) = clusters.get(c)
            && j != i
        {
            deps[i].insert(j);
        }
    }
    let rank = |i: usize| {
        let o = &objs[i];
        (
            !o.is_cluster(),
            o.kind.group.clone(),
            o.kind.kind.clone(),
            o.name().to_string(),
        )
    };
    let mut done = vec![false; objs.len()];
    let mut out = Vec::with_capacity(objs.len());
    let mut ready: BTreeMap<_, usize> = BTreeMap::new();
    let mut waiting: Vec<usize> = Vec::new();
    for (i, d) in deps.iter().enumerate() {
        if d.is_empty() {
            ready.insert(rank(i), i);
        } else {
            waiting.push(i);
        }
    }
    while let Some((_, i)) = ready.pop_first() {
        done[i] = true;
        out.push(i);
        waiting.retain(|&w| {
            if deps[w].iter().all(|&d| done[d]) {
                ready.insert(rank(w), w);
                false
            } else {
                true
            }
        });
    }
    if !waiting.is_empty() {
        let mut names: Vec<String> = waiting.iter().map(|&i| objs[i].describe()).collect();
        names.sort();
        return Err(GraphError::Cycle(names));
    }
    Ok(out)
}

/// The Clusters each object belongs to: the one its label names, or its own name for a
/// Cluster, plus its owners' (transitively).
fn tenants(objs: &[Obj]) -> Vec<BTreeSet<String>> {
    let index: HashMap<&str, usize> = objs.iter().enumerate().map(|(i, o)| (o.uid(), i)).collect();
    let mut t: Vec<BTreeSet<String>> = objs
        .iter()
        .map(|o| {
            let mut s = BTreeSet::new();
            if o.is_cluster() {
                s.insert(o.name().to_string());
            }
            if let Some(c) = o.label(labels::CLUSTER_NAME) {
                s.insert(c.to_string());
            }
            s
        })
        .collect();
    loop {
        let mut changed = false;
        for (i, o) in objs.iter().enumerate() {
            for u in o.owner_uids() {
                if let Some(&j) = index.get(u)
                    && j != i
                {
                    let add: Vec<String> = t[j].difference(&t[i]).cloned().collect();
                    if !add.is_empty() {
                        t[i].extend(add);
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            return t;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    pub(crate) fn kind(group: &str, kind: &str) -> Kind {
        Kind {
            group: group.into(),
            version: if group.is_empty() { "v1" } else { "v1beta2" }.into(),
            kind: kind.into(),
            plural: format!("{}s", kind.to_lowercase()),
            status: !group.is_empty(),
        }
    }

    /// An object `uid` named `name`, with its owners' uids and the cluster-name label.
    pub(crate) fn obj(
        group: &str,
        k: &str,
        name: &str,
        uid: &str,
        owners: &[&str],
        cluster: Option<&str>,
    ) -> Obj {
        let mut meta = json!({"name": name, "namespace": "ns", "uid": uid});
        if !owners.is_empty() {
            meta["ownerReferences"] = owners
                .iter()
                .map(|u| json!({"apiVersion": "x/v1", "kind": "K", "name": format!("owner-{u}"), "uid": u}))
                .collect();
        }
        if let Some(c) = cluster {
            meta["labels"] = json!({labels::CLUSTER_NAME: c});
        }
        Obj {
            kind: kind(group, k),
            value: json!({"metadata": meta, "spec": {}, "status": {"ready": true}}),
        }
    }

    const CAPI: &str = "cluster.x-k8s.io";
    const INFRA: &str = "infrastructure.cluster.x-k8s.io";

    /// One cluster as slipway leaves it, plus objects that must not move.
    pub(crate) fn one_cluster() -> Vec<Obj> {
        vec![
            obj(
                INFRA,
                "InMemoryMachine",
                "a-cp-x",
                "im1",
                &["m1"],
                Some("a"),
            ),
            obj(CAPI, "Machine", "a-cp-x", "m1", &["kcp"], Some("a")),
            obj(
                "controlplane.cluster.x-k8s.io",
                "KubeadmControlPlane",
                "a-cp",
                "kcp",
                &["c"],
                Some("a"),
            ),
            obj("", "Secret", "a-kubeconfig", "s1", &["kcp"], Some("a")),
            obj("", "Secret", "a-cp-x", "s2", &["kc1"], None),
            obj(
                "bootstrap.cluster.x-k8s.io",
                "KubeadmConfig",
                "a-cp-x",
                "kc1",
                &["m1"],
                Some("a"),
            ),
            obj(INFRA, "InMemoryCluster", "a", "ic", &["c"], None),
            obj(CAPI, "Cluster", "a", "c", &[], None),
            obj(
                "multicluster.x-k8s.io",
                "ClusterProfile",
                "a",
                "cp",
                &["c"],
                None,
            ),
            obj("", "Secret", "unrelated", "s3", &[], None),
            obj("", "ConfigMap", "kube-root-ca.crt", "cm", &[], None),
            obj("example.com", "Widget", "w", "w1", &[], None),
            obj("example.com", "Widget", "owned", "w2", &["ic"], None),
        ]
    }

    fn names(g: &Graph) -> Vec<String> {
        g.nodes
            .iter()
            .map(|n| format!("{}/{}", n.obj.kind.kind, n.obj.name()))
            .collect()
    }

    #[test]
    fn selects_slipway_kinds_labelled_and_owned_objects_only() {
        let g = build(one_cluster()).unwrap();
        let mut got = names(&g);
        got.sort();
        assert_eq!(
            got,
            [
                "Cluster/a",
                "ClusterProfile/a",
                "InMemoryCluster/a",
                "InMemoryMachine/a-cp-x",
                "KubeadmConfig/a-cp-x",
                "KubeadmControlPlane/a-cp",
                "Machine/a-cp-x",
                "Secret/a-cp-x",
                "Secret/a-kubeconfig",
                "Widget/owned",
            ]
        );
    }

    #[test]
    fn orders_owners_before_what_they_own_and_clusters_first() {
        let g = build(one_cluster()).unwrap();
        let pos = |n: &str| names(&g).iter().position(|x| x == n).unwrap();
        assert_eq!(pos("Cluster/a"), 0);
        for (owner, owned) in [
            ("KubeadmControlPlane/a-cp", "Machine/a-cp-x"),
            ("Machine/a-cp-x", "InMemoryMachine/a-cp-x"),
            ("Machine/a-cp-x", "KubeadmConfig/a-cp-x"),
            ("KubeadmConfig/a-cp-x", "Secret/a-cp-x"),
            ("KubeadmControlPlane/a-cp", "Secret/a-kubeconfig"),
            ("InMemoryCluster/a", "Widget/owned"),
        ] {
            assert!(
                pos(owner) < pos(owned),
                "{owner} before {owned}: {:?}",
                names(&g)
            );
        }
        // Deterministic: the same input in another order gives the same plan.
        let mut rev = one_cluster();
        rev.reverse();
        assert_eq!(names(&build(rev).unwrap()), names(&g));
    }

    #[test]
    fn tenants_follow_labels_and_owners() {
        let g = build(one_cluster()).unwrap();
        for n in &g.nodes {
            assert_eq!(
                n.tenants.iter().collect::<Vec<_>>(),
                ["a"],
                "{} belongs to cluster a",
                n.obj.describe()
            );
        }
    }

    #[test]
    fn refuses_a_cluster_mid_deletion_naming_it() {
        let mut objs = one_cluster();
        let c = objs.iter_mut().find(|o| o.is_cluster()).unwrap();
        c.value["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(
            build(objs.clone()),
            Err(GraphError::Deleting(vec!["Cluster ns/a".into()]))
        );
        // Deleted by an interrupted move: not a refusal, the move finishes it.
        let c = objs.iter_mut().find(|o| o.is_cluster()).unwrap();
        c.value["metadata"]["annotations"] = json!({annotations::DELETE_FOR_MOVE: ""});
        assert!(build(objs).is_ok());
    }

    #[test]
    fn refuses_an_ownership_cycle() {
        let objs = vec![
            obj(CAPI, "Machine", "x", "1", &["2"], None),
            obj(CAPI, "Machine", "y", "2", &["1"], None),
            obj(CAPI, "Cluster", "c", "3", &[], None),
        ];
        assert_eq!(
            build(objs),
            Err(GraphError::Cycle(vec![
                "Machine ns/x".into(),
                "Machine ns/y".into()
            ]))
        );
    }

    #[test]
    fn new_kinds_of_the_api_groups_move_without_code_changes() {
        let objs = vec![
            obj(CAPI, "Cluster", "a", "c", &[], None),
            obj(CAPI, "ClusterClass", "quick", "cc", &[], None),
            obj(
                "addons.cluster.x-k8s.io",
                "ClusterResourceSet",
                "crs",
                "crs",
                &[],
                None,
            ),
            obj(CAPI, "MachinePool", "a-mp", "mp", &["c"], Some("a")),
            obj("", "ConfigMap", "crs-data", "cm", &["crs"], None),
        ];
        assert_eq!(build(objs).unwrap().nodes.len(), 5);
    }
}
