//! The object graph of a move, pure: which of a namespace's objects belong to the move, the
//! order to create them in (owners before what they own, Clusters first) and the Clusters each
//! object serves. Built from plain JSON objects, so it is table-tested without an API server.
//!
//! Beyond the namespace, as `clusterctl move` does: a ClusterClass in another namespace that a
//! moved Cluster names (`spec.topology.classRef.namespace`) moves with the templates it
//! references; cluster-scoped objects move when they or their CRD carry the force-move label
//! `clusterctl.cluster.x-k8s.io/move` or `clusterctl.cluster.x-k8s.io/move-hierarchy` (an
//! identity, say); and anything such an object owns moves with it. Those objects are shared with
//! what stays behind, so they are created in the target but left in the source ([`Node::keep`]).

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
    /// Namespaced (`false`: cluster-scoped).
    pub namespaced: bool,
    /// Its CRD carries a force-move label: every object of the kind moves.
    pub force_move: bool,
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

    /// Whether it moves regardless of ownership: a force-move label on it or on its CRD.
    pub fn force_move(&self) -> bool {
        self.kind.force_move
            || FORCE_MOVE_LABELS
                .iter()
                .any(|l| self.value["metadata"]["labels"].get(l).is_some())
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

    /// `Kind namespace/name` (`Kind name` when cluster-scoped), how every message names it.
    pub fn describe(&self) -> String {
        if self.kind.namespaced {
            format!("{} {}/{}", self.kind.kind, self.namespace(), self.name())
        } else {
            format!("{} {}", self.kind.kind, self.name())
        }
    }

    /// The identity shared by the source object and its copy in the target.
    pub fn key(&self) -> Key {
        Key {
            group: self.kind.group.clone(),
            kind: self.kind.kind.clone(),
            namespace: self.namespace().to_string(),
            name: self.name().to_string(),
        }
    }

    /// The ClusterClass a Cluster names, when in another namespace than its own.
    fn foreign_class(&self) -> Option<(&str, &str)> {
        let r = &self.value["spec"]["topology"]["classRef"];
        let ns = r["namespace"].as_str().filter(|n| *n != self.namespace())?;
        Some((ns, r["name"].as_str()?))
    }
}

/// The labels that make an object (or every object of a CRD) move regardless of ownership.
pub const FORCE_MOVE_LABELS: [&str; 2] = [
    "clusterctl.cluster.x-k8s.io/move",
    "clusterctl.cluster.x-k8s.io/move-hierarchy",
];

/// An object's identity, the same in source and target.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace (`""`: cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// `(group, kind, name)` of every `templateRef` under `v` (a ClusterClass's spec).
fn template_refs(v: &Value, out: &mut Vec<(String, String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "templateRef"
                    && let (Some(av), Some(kind), Some(name)) = (
                        x["apiVersion"].as_str(),
                        x["kind"].as_str(),
                        x["name"].as_str(),
                    )
                {
                    let group = av.rsplit_once('/').map_or("", |(g, _)| g);
                    out.push((group.into(), kind.into(), name.into()));
                } else {
                    template_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| template_refs(x, out)),
        _ => {}
    }
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
    /// Shared with what stays (a ClusterClass of another namespace, a cluster-scoped object,
    /// what those own): created in the target, never paused or deleted in the source.
    pub keep: bool,
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

/// Picks the moved objects of namespace `namespace` among `candidates` (every object of the
/// namespace the move read, plus cluster-scoped objects and objects of the namespaces its
/// Clusters' classes live in) and orders them.
pub fn build(candidates: Vec<Obj>, namespace: &str) -> Result<Graph, GraphError> {
    let by_uid: HashMap<String, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, o)| (o.uid().to_string(), i))
        .collect();
    let home = |o: &Obj| o.kind.namespaced && o.namespace() == namespace;
    // Selection: in the namespace, whole kinds, labelled and force-moved objects; beyond it,
    // force-moved cluster-scoped objects; then the classes the selected Clusters name and the
    // templates of selected classes, and whatever a selected object owns, until nothing
    // changes.
    let mut selected: Vec<bool> = candidates
        .iter()
        .map(|o| {
            if home(o) {
                o.kind.moves_whole() || o.label(labels::CLUSTER_NAME).is_some() || o.force_move()
            } else {
                !o.kind.namespaced && o.force_move()
            }
        })
        .collect();
    let find = |group: &str, kind: &str, ns: &str, name: &str| {
        candidates.iter().position(|o| {
            o.kind.group == group && o.kind.kind == kind && o.namespace() == ns && o.name() == name
        })
    };
    loop {
        let mut changed = false;
        let mut select = |j: Option<usize>, selected: &mut Vec<bool>| {
            if let Some(j) = j
                && !selected[j]
            {
                selected[j] = true;
                changed = true;
            }
        };
        for (i, o) in candidates.iter().enumerate() {
            if !selected[i] {
                if o.owner_uids()
                    .iter()
                    .any(|u| by_uid.get(*u).is_some_and(|&j| selected[j]))
                {
                    select(Some(i), &mut selected);
                }
                continue;
            }
            if o.is_cluster()
                && let Some((ns, name)) = o.foreign_class()
            {
                select(
                    find("cluster.x-k8s.io", "ClusterClass", ns, name),
                    &mut selected,
                );
            }
            if o.kind.group == "cluster.x-k8s.io" && o.kind.kind == "ClusterClass" {
                let mut refs = Vec::new();
                template_refs(&o.value["spec"], &mut refs);
                for (g, k, n) in refs {
                    select(find(&g, &k, o.namespace(), &n), &mut selected);
                }
            }
        }
        if !changed {
            break;
        }
    }
    // Classes of this namespace that Clusters staying elsewhere use stay too.
    let used_elsewhere: BTreeSet<(String, String)> = candidates
        .iter()
        .filter(|o| o.is_cluster() && !home(o))
        .filter_map(|o| {
            let r = &o.value["spec"]["topology"]["classRef"];
            Some((
                r["namespace"].as_str().unwrap_or(o.namespace()).to_string(),
                r["name"].as_str()?.to_string(),
            ))
        })
        .collect();
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
    let keep = shared(&objs, namespace, &used_elsewhere);
    let mut slots: Vec<Option<Obj>> = objs.into_iter().map(Some).collect();
    Ok(Graph {
        nodes: order
            .into_iter()
            .map(|i| Node {
                obj: slots[i].take().expect("each index once"),
                tenants: tenants[i].clone(),
                keep: keep[i],
            })
            .collect(),
    })
}

/// Which objects stay in the source too: those outside the namespace, the classes Clusters of
/// other namespaces use (`used_elsewhere`: namespace, name) with their templates, and what
/// any of those own.
fn shared(objs: &[Obj], namespace: &str, used_elsewhere: &BTreeSet<(String, String)>) -> Vec<bool> {
    let index: HashMap<&str, usize> = objs.iter().enumerate().map(|(i, o)| (o.uid(), i)).collect();
    let mut keep: Vec<bool> = objs
        .iter()
        .map(|o| !o.kind.namespaced || o.namespace() != namespace)
        .collect();
    for (i, o) in objs.iter().enumerate() {
        if o.kind.group == "cluster.x-k8s.io"
            && o.kind.kind == "ClusterClass"
            && used_elsewhere.contains(&(o.namespace().to_string(), o.name().to_string()))
        {
            keep[i] = true;
            let mut refs = Vec::new();
            template_refs(&o.value["spec"], &mut refs);
            for (j, t) in objs.iter().enumerate() {
                if t.namespace() == o.namespace()
                    && refs
                        .iter()
                        .any(|(g, k, n)| *g == t.kind.group && *k == t.kind.kind && n == t.name())
                {
                    keep[j] = true;
                }
            }
        }
    }
    loop {
        let mut changed = false;
        for (i, o) in objs.iter().enumerate() {
            if !keep[i]
                && o.owner_uids()
                    .iter()
                    .any(|u| index.get(u).is_some_and(|&j| keep[j]))
            {
                keep[i] = true;
                changed = true;
            }
        }
        if !changed {
            return keep;
        }
    }
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
            namespaced: true,
            force_move: false,
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
        let g = build(one_cluster(), "ns").unwrap();
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
        let g = build(one_cluster(), "ns").unwrap();
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
        assert_eq!(names(&build(rev, "ns").unwrap()), names(&g));
    }

    #[test]
    fn tenants_follow_labels_and_owners() {
        let g = build(one_cluster(), "ns").unwrap();
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
            build(objs.clone(), "ns"),
            Err(GraphError::Deleting(vec!["Cluster ns/a".into()]))
        );
        // Deleted by an interrupted move: not a refusal, the move finishes it.
        let c = objs.iter_mut().find(|o| o.is_cluster()).unwrap();
        c.value["metadata"]["annotations"] = json!({annotations::DELETE_FOR_MOVE: ""});
        assert!(build(objs, "ns").is_ok());
    }

    #[test]
    fn refuses_an_ownership_cycle() {
        let objs = vec![
            obj(CAPI, "Machine", "x", "1", &["2"], None),
            obj(CAPI, "Machine", "y", "2", &["1"], None),
            obj(CAPI, "Cluster", "c", "3", &[], None),
        ];
        assert_eq!(
            build(objs, "ns"),
            Err(GraphError::Cycle(vec![
                "Machine ns/x".into(),
                "Machine ns/y".into()
            ]))
        );
    }

    #[test]
    fn a_class_of_another_namespace_moves_with_its_templates_and_stays() {
        let mut c = obj(CAPI, "Cluster", "a", "c", &[], None);
        c.value["spec"] =
            json!({"topology": {"classRef": {"name": "quick", "namespace": "classes"}}});
        let in_classes = |mut o: Obj| {
            o.value["metadata"]["namespace"] = json!("classes");
            o
        };
        let mut cc = in_classes(obj(CAPI, "ClusterClass", "quick", "cc", &[], None));
        cc.value["spec"] = json!({
            "infrastructure": {"templateRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "InMemoryClusterTemplate", "name": "quick"}},
            "controlPlane": {"templateRef": {"apiVersion": "controlplane.cluster.x-k8s.io/v1beta2", "kind": "KubeadmControlPlaneTemplate", "name": "quick-cp"}},
            "workers": {"machineDeployments": [{"class": "md", "bootstrap": {"templateRef": {"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfigTemplate", "name": "quick-md"}}}]},
        });
        let objs = vec![
            c,
            cc,
            in_classes(obj(
                INFRA,
                "InMemoryClusterTemplate",
                "quick",
                "t1",
                &[],
                None,
            )),
            in_classes(obj(
                "controlplane.cluster.x-k8s.io",
                "KubeadmControlPlaneTemplate",
                "quick-cp",
                "t2",
                &[],
                None,
            )),
            in_classes(obj(
                "bootstrap.cluster.x-k8s.io",
                "KubeadmConfigTemplate",
                "quick-md",
                "t3",
                &[],
                None,
            )),
            in_classes(obj("", "Secret", "owned-by-class", "s", &["cc"], None)),
            // Not referenced: stays out.
            in_classes(obj(CAPI, "ClusterClass", "other", "cc2", &[], None)),
            in_classes(obj(
                INFRA,
                "InMemoryClusterTemplate",
                "other",
                "t4",
                &[],
                None,
            )),
        ];
        let g = build(objs, "ns").unwrap();
        let mut got: Vec<(String, bool)> =
            g.nodes.iter().map(|n| (n.obj.describe(), n.keep)).collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("Cluster ns/a".to_string(), false),
                ("ClusterClass classes/quick".to_string(), true),
                ("InMemoryClusterTemplate classes/quick".to_string(), true),
                ("KubeadmConfigTemplate classes/quick-md".to_string(), true),
                (
                    "KubeadmControlPlaneTemplate classes/quick-cp".to_string(),
                    true
                ),
                ("Secret classes/owned-by-class".to_string(), true),
            ]
        );
    }

    #[test]
    fn a_class_used_by_clusters_of_another_namespace_stays_in_the_source() {
        let mut cc = obj(CAPI, "ClusterClass", "quick", "cc", &[], None);
        cc.value["spec"] = json!({"infrastructure": {"templateRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "InMemoryClusterTemplate", "name": "quick"}}});
        let mut elsewhere = obj(CAPI, "Cluster", "b", "cb", &[], None);
        elsewhere.value["metadata"]["namespace"] = json!("team-b");
        elsewhere.value["spec"] =
            json!({"topology": {"classRef": {"name": "quick", "namespace": "ns"}}});
        let objs = vec![
            obj(CAPI, "Cluster", "a", "c", &[], None),
            cc,
            obj(INFRA, "InMemoryClusterTemplate", "quick", "t1", &[], None),
            obj(INFRA, "InMemoryClusterTemplate", "unused", "t2", &[], None),
            elsewhere,
        ];
        let g = build(objs, "ns").unwrap();
        let keep: Vec<(String, bool)> =
            g.nodes.iter().map(|n| (n.obj.describe(), n.keep)).collect();
        assert!(!keep.iter().any(|(d, _)| d.contains("team-b")), "{keep:?}");
        for (d, k) in keep {
            assert_eq!(k, d.contains("quick"), "{d}");
        }
    }

    #[test]
    fn force_move_labels_bring_cluster_scoped_objects_and_their_hierarchy() {
        let global = |o: Obj, force_kind: bool| {
            let mut o = o;
            o.kind.namespaced = false;
            o.kind.force_move = force_kind;
            o.value["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("namespace");
            o
        };
        let mut labelled = global(
            obj(
                INFRA,
                "AWSClusterStaticIdentity",
                "by-label",
                "i1",
                &[],
                None,
            ),
            false,
        );
        labelled.value["metadata"]["labels"] =
            json!({"clusterctl.cluster.x-k8s.io/move-hierarchy": ""});
        let mut cm = obj("", "ConfigMap", "settings", "cm", &[], None);
        cm.value["metadata"]["labels"] = json!({"clusterctl.cluster.x-k8s.io/move": ""});
        let mut secret = obj("", "Secret", "identity-creds", "s", &["i2"], None);
        secret.value["metadata"]["namespace"] = json!("slipway-system");
        let objs = vec![
            obj(CAPI, "Cluster", "a", "c", &[], None),
            labelled,
            global(
                obj(
                    INFRA,
                    "AWSClusterControllerIdentity",
                    "by-crd",
                    "i2",
                    &[],
                    None,
                ),
                true,
            ),
            global(
                obj(
                    INFRA,
                    "AWSClusterRoleIdentity",
                    "unlabelled",
                    "i3",
                    &[],
                    None,
                ),
                false,
            ),
            secret,
            cm,
            obj("", "ConfigMap", "not-forced", "cm2", &[], None),
        ];
        let g = build(objs, "ns").unwrap();
        let mut got: Vec<(String, bool)> =
            g.nodes.iter().map(|n| (n.obj.describe(), n.keep)).collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("AWSClusterControllerIdentity by-crd".to_string(), true),
                ("AWSClusterStaticIdentity by-label".to_string(), true),
                ("Cluster ns/a".to_string(), false),
                ("ConfigMap ns/settings".to_string(), false),
                ("Secret slipway-system/identity-creds".to_string(), true),
            ]
        );
        let pos = |d: &str| g.nodes.iter().position(|n| n.obj.describe() == d).unwrap();
        assert!(
            pos("AWSClusterControllerIdentity by-crd")
                < pos("Secret slipway-system/identity-creds")
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
        assert_eq!(build(objs, "ns").unwrap().nodes.len(), 5);
    }
}
