//! `slipway move`, as `clusterctl move`: hands every object of a namespace's clusters over to
//! another management cluster (or to a directory, and back) without touching infrastructure.
//!
//! The run: discover (every kind the source's CRDs serve, plus Secrets and ConfigMaps; the
//! [`graph`] picks and orders), check the target before changing anything (it serves the kinds,
//! runs a slipway controller, holds no clashing object), pause the source Clusters, create in
//! the target in dependency order with owner references re-pointed and status restored, unpause
//! there, then release the finalizers in the source (marking each object
//! `clusterctl.cluster.x-k8s.io/delete-for-move`, which every reconciler honours by doing
//! nothing) and delete. Every object created in the target records its source UID, and each run
//! rebuilds the UID map from the target, so a run killed at any point and run again finishes
//! without duplicates ([`plan`] decides, pure).

pub mod graph;
pub mod plan;

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
};

use k8s_openapi::{
    api::{apps::v1::Deployment, coordination::v1::Lease, core::v1::Namespace},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use slipway_api::names::annotations;

use crate::OpsError;
use graph::{Graph, Key, Kind, Obj};
use plan::{Observed, Step};

/// Options of a move.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The namespace whose clusters move.
    pub namespace: String,
    /// List what would move; change nothing.
    pub dry_run: bool,
    /// Stop with an error after this many writes (a test's way to interrupt a move at a
    /// chosen point; `SLIPWAY_MOVE_STOP_AFTER`).
    pub stop_after: Option<usize>,
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Objects in the move (or listed by a dry run).
    pub objects: usize,
    /// Created in the target by this run.
    pub created: usize,
    /// Found in the target, made by an earlier run.
    pub reused: usize,
    /// Deleted from the source.
    pub deleted: usize,
}

/// Counts writes and stops the run after the configured number.
struct Writes {
    done: usize,
    limit: Option<usize>,
}

impl Writes {
    fn tick(&mut self) -> Result<(), OpsError> {
        if self.limit.is_some_and(|l| self.done >= l) {
            return Err(OpsError::invalid(
                "slipway move",
                format!(
                    "stopped after {} writes as SLIPWAY_MOVE_STOP_AFTER asks; run it again to finish",
                    self.done
                ),
            ));
        }
        self.done += 1;
        Ok(())
    }
}

fn refused(reason: impl std::fmt::Display) -> OpsError {
    OpsError::invalid("slipway move", format!("{reason}; nothing was changed"))
}

fn ar(kind: &Kind) -> ApiResource {
    ApiResource {
        group: kind.group.clone(),
        version: kind.version.clone(),
        api_version: kind.api_version(),
        kind: kind.kind.clone(),
        plural: kind.plural.clone(),
    }
}

fn api(client: &Client, kind: &Kind, ns: &str) -> Api<DynamicObject> {
    if kind.namespaced {
        Api::namespaced_with(client.clone(), ns, &ar(kind))
    } else {
        Api::all_with(client.clone(), &ar(kind))
    }
}

/// The kinds a cluster serves that a move may carry: every CRD (at its storage version, with
/// its status subresource, its scope and whether it carries a force-move label) plus Secrets
/// and ConfigMaps.
pub async fn kinds(client: &Client) -> Result<Vec<Kind>, OpsError> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let mut out = vec![
        core_kind("Secret", "secrets"),
        core_kind("ConfigMap", "configmaps"),
    ];
    for crd in crds {
        let Some(v) = crd.spec.versions.iter().find(|v| v.storage) else {
            continue;
        };
        let labels = crd.metadata.labels.clone().unwrap_or_default();
        out.push(Kind {
            group: crd.spec.group.clone(),
            version: v.name.clone(),
            kind: crd.spec.names.kind.clone(),
            plural: crd.spec.names.plural.clone(),
            status: v.subresources.as_ref().is_some_and(|s| s.status.is_some()),
            namespaced: crd.spec.scope == "Namespaced",
            force_move: graph::FORCE_MOVE_LABELS
                .iter()
                .any(|l| labels.contains_key(*l)),
        });
    }
    Ok(out)
}

fn core_kind(kind: &str, plural: &str) -> Kind {
    Kind {
        group: String::new(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        status: false,
        namespaced: true,
        force_move: false,
    }
}

/// Every object of the namespaced `kinds` in `ns`, or of the cluster-scoped ones.
async fn list_kinds(
    client: &Client,
    kinds: &[Kind],
    ns: Option<&str>,
) -> Result<Vec<Obj>, OpsError> {
    let mut out = Vec::new();
    for k in kinds.iter().filter(|k| k.namespaced == ns.is_some()) {
        let list = match api(client, k, ns.unwrap_or_default())
            .list(&ListParams::default())
            .await
        {
            Ok(l) => l,
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(e.into()),
        };
        for o in list {
            let mut value = serde_json::to_value(&o)?;
            value["apiVersion"] = json!(k.api_version());
            value["kind"] = json!(k.kind);
            out.push(Obj {
                kind: k.clone(),
                value,
            });
        }
    }
    Ok(out)
}

/// Every candidate of a move of `ns`: its objects, the cluster-scoped objects, the Secrets of
/// slipway's own namespace (what a cluster-scoped identity owns lives there), and the objects
/// of the namespaces whose ClusterClasses its Clusters name.
async fn list_all(client: &Client, kinds: &[Kind], ns: &str) -> Result<Vec<Obj>, OpsError> {
    let mut out = list_kinds(client, kinds, Some(ns)).await?;
    let mut others: BTreeSet<String> = out
        .iter()
        .filter(|o| o.is_cluster())
        .filter_map(|o| o.value["spec"]["topology"]["classRef"]["namespace"].as_str())
        .filter(|n| *n != ns)
        .map(String::from)
        .collect();
    out.extend(list_kinds(client, kinds, None).await?);
    if ns != crate::clusterctl::SYSTEM_NAMESPACE {
        let secrets: Vec<Kind> = kinds
            .iter()
            .filter(|k| k.group.is_empty() && k.kind == "Secret")
            .cloned()
            .collect();
        out.extend(list_kinds(client, &secrets, Some(crate::clusterctl::SYSTEM_NAMESPACE)).await?);
        others.remove(crate::clusterctl::SYSTEM_NAMESPACE);
    }
    // The Clusters of the other namespaces: a class of this one they use stays in the source.
    if let Some(k) = kinds
        .iter()
        .find(|k| k.group == "cluster.x-k8s.io" && k.kind == "Cluster")
    {
        for o in Api::<DynamicObject>::all_with(client.clone(), &ar(k))
            .list(&ListParams::default())
            .await?
        {
            if o.metadata.namespace.as_deref() != Some(ns)
                && !others.contains(o.metadata.namespace.as_deref().unwrap_or_default())
            {
                let mut value = serde_json::to_value(&o)?;
                value["apiVersion"] = json!(k.api_version());
                value["kind"] = json!(k.kind);
                out.push(Obj {
                    kind: k.clone(),
                    value,
                });
            }
        }
    }
    for other in others {
        let classes: Vec<Kind> = kinds
            .iter()
            .filter(|k| k.moves_whole() || (k.group.is_empty() && k.kind == "Secret"))
            .cloned()
            .collect();
        out.extend(list_kinds(client, &classes, Some(&other)).await?);
    }
    Ok(out)
}

/// The graph of `ns` in the source.
async fn discover(client: &Client, kinds: &[Kind], ns: &str) -> Result<Graph, OpsError> {
    graph::build(list_all(client, kinds, ns).await?, ns).map_err(refused)
}

/// Moves the clusters of `opts.namespace` from `source` to `target`.
pub async fn move_to_cluster(
    source: &Client,
    target: &Client,
    opts: &Options,
    out: &mut dyn FnMut(String),
) -> Result<Summary, OpsError> {
    let kinds = kinds(source).await?;
    let g = discover(source, &kinds, &opts.namespace).await?;
    if g.nodes.is_empty() {
        out(format!("nothing to move in namespace {}", opts.namespace));
        return Ok(Summary::default());
    }
    let target_kinds = check_target(target, &g).await?;
    let observed = observe(target, &target_kinds, &g).await?;
    plan::plan(&g, &observed).map_err(|c| refused(c.join("; ")))?;
    if opts.dry_run {
        list(&g, &opts.namespace, out);
        return Ok(Summary {
            objects: g.nodes.len(),
            ..Default::default()
        });
    }
    let mut writes = Writes {
        done: 0,
        limit: opts.stop_after,
    };
    if pause_source(source, &g, &mut writes, out).await? > 0 {
        // A reconcile that started before the pause may still be writing; let it land so the
        // objects read next are the last ones.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    // Read again: the Clusters now carry their pause, and nothing changes any more.
    let g = discover(source, &kinds, &opts.namespace).await?;
    let mut summary = create_in_target(target, &target_kinds, &g, &mut writes, out).await?;
    unpause_target(target, &g, &mut writes, out).await?;
    summary.deleted = delete_from_source(source, &g, &mut writes).await?;
    out(format!(
        "deleted {} objects from the source; the move of namespace {} is complete",
        summary.deleted, opts.namespace
    ));
    Ok(summary)
}

fn list(g: &Graph, ns: &str, out: &mut dyn FnMut(String)) {
    out(format!(
        "would move {} objects of namespace {ns}, in this order:",
        g.nodes.len()
    ));
    for n in &g.nodes {
        out(format!(
            "  {} {}",
            n.obj.kind.api_version(),
            n.obj.describe()
        ));
    }
}

/// The target must serve every moved kind and run a slipway controller; returns its kinds.
async fn check_target(target: &Client, g: &Graph) -> Result<Vec<Kind>, OpsError> {
    let served = kinds(target).await.map_err(|e| {
        refused(format!(
            "the target's CustomResourceDefinitions cannot be read ({e})"
        ))
    })?;
    let mut missing = BTreeSet::new();
    for n in &g.nodes {
        let k = &n.obj.kind;
        if !served
            .iter()
            .any(|s| s.group == k.group && s.kind == k.kind)
        {
            missing.insert(format!(
                "{}.{} (kind {}, needed by {})",
                k.plural,
                k.group,
                k.kind,
                n.obj.describe()
            ));
        }
    }
    if !missing.is_empty() {
        return Err(refused(format!(
            "the target does not serve {}: install slipway there first (`slipway init`)",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let deployment =
        Api::<Deployment>::namespaced(target.clone(), crate::clusterctl::SYSTEM_NAMESPACE)
            .get_opt("slipway-controller")
            .await
            .ok()
            .flatten()
            .is_some();
    let lease = match Api::<Lease>::all(target.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => l.items.iter().any(|l| {
            l.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("slipway-controller"))
        }),
        Err(_) => false,
    };
    if !deployment && !lease {
        return Err(refused(format!(
            "the target runs no slipway controller (no Deployment {}/slipway-controller, no \
             Lease slipway-controller*): run `slipway init` against it, or `slipway controller \
             --leader-elect` with its kubeconfig",
            crate::clusterctl::SYSTEM_NAMESPACE
        )));
    }
    Ok(served)
}

/// The target's objects under the moved names.
async fn observe(
    target: &Client,
    target_kinds: &[Kind],
    g: &Graph,
) -> Result<HashMap<Key, Observed>, OpsError> {
    let mut wanted: BTreeSet<(Kind, String)> = BTreeSet::new();
    for n in &g.nodes {
        let k = served_as(target_kinds, &n.obj.kind);
        wanted.insert((k, n.obj.namespace().to_string()));
    }
    let mut out = HashMap::new();
    for (k, ns) in wanted {
        let objs = match api(target, &k, &ns).list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(kube::Error::Api(s)) if s.code == 404 => vec![],
            Err(e) => return Err(e.into()),
        };
        for o in objs {
            let ann = o.metadata.annotations.clone().unwrap_or_default();
            out.insert(
                Key {
                    group: k.group.clone(),
                    kind: k.kind.clone(),
                    namespace: o.metadata.namespace.clone().unwrap_or_default(),
                    name: o.metadata.name.clone().unwrap_or_default(),
                },
                Observed {
                    uid: o.metadata.uid.clone().unwrap_or_default(),
                    moved_from: ann.get(annotations::MOVED_FROM_UID).cloned(),
                    paused: o.data["spec"]["paused"].as_bool().unwrap_or(false),
                },
            );
        }
    }
    Ok(out)
}

/// The target's version of a kind (its storage version may differ from the source's).
fn served_as(target_kinds: &[Kind], k: &Kind) -> Kind {
    target_kinds
        .iter()
        .find(|s| s.group == k.group && s.kind == k.kind)
        .cloned()
        .unwrap_or_else(|| k.clone())
}

/// Pauses every source Cluster that is not paused, marking it so the target unpauses it (a
/// Cluster the user paused stays paused). Returns how many it paused.
async fn pause_source(
    source: &Client,
    g: &Graph,
    writes: &mut Writes,
    out: &mut dyn FnMut(String),
) -> Result<usize, OpsError> {
    let mut n = 0;
    for node in g.nodes.iter().filter(|n| n.obj.is_cluster()) {
        if node.obj.value["spec"]["paused"].as_bool() == Some(true) {
            continue;
        }
        writes.tick()?;
        api(source, &node.obj.kind, node.obj.namespace())
            .patch(
                node.obj.name(),
                &PatchParams::default(),
                &Patch::Merge(json!({
                    "metadata": {"annotations": {annotations::PAUSED_BY_MOVE: "true"}},
                    "spec": {"paused": true},
                })),
            )
            .await?;
        n += 1;
    }
    if n > 0 {
        out(format!("paused {n} Clusters in the source"));
    }
    Ok(n)
}

/// Creates the graph in the target, in order, with status; reuses what an earlier run made.
async fn create_in_target(
    target: &Client,
    target_kinds: &[Kind],
    g: &Graph,
    writes: &mut Writes,
    out: &mut dyn FnMut(String),
) -> Result<Summary, OpsError> {
    let observed = observe(target, target_kinds, g).await?;
    let p = plan::plan(g, &observed).map_err(|c| refused(c.join("; ")))?;
    let mut namespaces: BTreeSet<&str> = BTreeSet::new();
    for n in &g.nodes {
        namespaces.insert(n.obj.namespace());
    }
    for ns in namespaces.into_iter().filter(|n| !n.is_empty()) {
        ensure_namespace(target, ns, writes).await?;
    }
    let mut uids: HashMap<String, String> = HashMap::new();
    let mut summary = Summary {
        objects: g.nodes.len(),
        ..Default::default()
    };
    for ((n, step), restore) in g.nodes.iter().zip(&p.steps).zip(&p.restore_status) {
        let kind = served_as(target_kinds, &n.obj.kind);
        let api = api(target, &kind, n.obj.namespace());
        let uid = match step {
            Step::Exists(uid) => {
                summary.reused += 1;
                uid.clone()
            }
            Step::Create => {
                let mut obj = n.obj.clone();
                obj.kind = kind.clone();
                let body: DynamicObject = serde_json::from_value(plan::for_target(&obj, &uids))?;
                writes.tick()?;
                let made = match api.create(&PostParams::default(), &body).await {
                    Ok(o) => o,
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        // Made since we looked (another run): ours only if it records our UID.
                        let o = api.get(n.obj.name()).await?;
                        let from = o
                            .metadata
                            .annotations
                            .as_ref()
                            .and_then(|a| a.get(annotations::MOVED_FROM_UID));
                        if from.map(String::as_str) != Some(n.obj.uid()) {
                            return Err(OpsError::invalid(
                                n.obj.describe(),
                                "appeared in the target during the move, not made by it",
                            ));
                        }
                        o
                    }
                    Err(e) => return Err(e.into()),
                };
                summary.created += 1;
                made.metadata.uid.unwrap_or_default()
            }
        };
        uids.insert(n.obj.uid().to_string(), uid);
        if *restore {
            writes.tick()?;
            api.patch_status(
                n.obj.name(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": n.obj.value["status"]})),
            )
            .await?;
        }
    }
    out(format!(
        "created {} objects in the target ({} were there from an earlier run)",
        summary.created, summary.reused
    ));
    Ok(summary)
}

async fn ensure_namespace(target: &Client, ns: &str, writes: &mut Writes) -> Result<(), OpsError> {
    let api = Api::<Namespace>::all(target.clone());
    if api.get_opt(ns).await?.is_some() {
        return Ok(());
    }
    writes.tick()?;
    let body: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    match api.create(&PostParams::default(), &body).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Unpauses in the target the Clusters the move paused.
async fn unpause_target(
    target: &Client,
    g: &Graph,
    writes: &mut Writes,
    out: &mut dyn FnMut(String),
) -> Result<(), OpsError> {
    let mut n = 0;
    for node in g.nodes.iter().filter(|n| n.obj.is_cluster()) {
        let api = api(target, &node.obj.kind, node.obj.namespace());
        let Some(c) = api.get_opt(node.obj.name()).await? else {
            continue;
        };
        let marked = c
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(annotations::PAUSED_BY_MOVE));
        if !marked {
            continue;
        }
        writes.tick()?;
        api.patch(
            node.obj.name(),
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {annotations::PAUSED_BY_MOVE: null}},
                "spec": {"paused": null},
            })),
        )
        .await?;
        n += 1;
    }
    if n > 0 {
        out(format!("unpaused {n} Clusters in the target"));
    }
    Ok(())
}

/// Deletes the moved objects from the source: first every object is marked delete-for-move
/// and loses its finalizers (no reconciler acts on it any more), then all are deleted, what
/// others own first.
async fn delete_from_source(
    source: &Client,
    g: &Graph,
    writes: &mut Writes,
) -> Result<usize, OpsError> {
    // Shared objects stay: what remains in the source still uses them.
    let release = g
        .nodes
        .iter()
        .rev()
        .filter(|n| !n.keep)
        .map(|n| &n.obj)
        .filter(|o| {
            o.annotation(annotations::DELETE_FOR_MOVE).is_none()
                || o.value["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty())
        });
    run_each(writes, release, |o| async move {
        let r = api(source, &o.kind, o.namespace())
            .patch(
                o.name(),
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {
                    "finalizers": null,
                    "annotations": {annotations::DELETE_FOR_MOVE: ""},
                }})),
            )
            .await;
        match r {
            Ok(_) => Ok(false),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    let all = g.nodes.iter().rev().filter(|n| !n.keep).map(|n| &n.obj);
    run_each(writes, all, |o| async move {
        match api(source, &o.kind, o.namespace())
            .delete(o.name(), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Runs one write per object, 16 at a time (independent writes: the finalizers are gone, so
/// order no longer matters), counting them against the stop limit; returns how many returned
/// `true`. At the limit, the writes already counted still run, then the run stops.
async fn run_each<'a, F, Fut>(
    writes: &mut Writes,
    objs: impl Iterator<Item = &'a Obj>,
    f: F,
) -> Result<usize, OpsError>
where
    F: Fn(&'a Obj) -> Fut,
    Fut: std::future::Future<Output = Result<bool, OpsError>>,
{
    use futures::StreamExt;
    let mut futs = Vec::new();
    let mut stop = None;
    for o in objs {
        if let Err(e) = writes.tick() {
            stop = Some(e);
            break;
        }
        futs.push(f(o));
    }
    let results: Vec<Result<bool, OpsError>> = futures::stream::iter(futs)
        .buffer_unordered(16)
        .collect()
        .await;
    let mut n = 0;
    for r in results {
        n += usize::from(r?);
    }
    match stop {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

/// `--to-directory`: a backup. Pauses the source Clusters, writes every moved object to one
/// YAML file each (`<Kind>_<namespace>_<name>.yaml`), then unpauses what it paused.
pub async fn move_to_directory(
    source: &Client,
    dir: &Path,
    opts: &Options,
    out: &mut dyn FnMut(String),
) -> Result<Summary, OpsError> {
    let kinds = kinds(source).await?;
    let g = discover(source, &kinds, &opts.namespace).await?;
    if opts.dry_run {
        list(&g, &opts.namespace, out);
        return Ok(Summary {
            objects: g.nodes.len(),
            ..Default::default()
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let mut writes = Writes {
        done: 0,
        limit: opts.stop_after,
    };
    pause_source(source, &g, &mut writes, out).await?;
    let g = discover(source, &kinds, &opts.namespace).await?;
    for n in &g.nodes {
        let path = dir.join(file_name(&n.obj));
        let yaml = serde_saphyr::to_string(&n.obj.value)
            .map_err(|e| OpsError::invalid(n.obj.describe(), e))?;
        slipway_pki::write_private(&path, yaml.as_bytes()).map_err(|e| io_error(&path, e))?;
    }
    out(format!(
        "wrote {} objects to {}",
        g.nodes.len(),
        dir.display()
    ));
    unpause_target(source, &g, &mut writes, out).await?;
    Ok(Summary {
        objects: g.nodes.len(),
        ..Default::default()
    })
}

fn file_name(o: &Obj) -> String {
    format!("{}_{}_{}.yaml", o.kind.kind, o.namespace(), o.name())
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> OpsError {
    OpsError::invalid(path.display().to_string(), e)
}

/// `--from-directory`: restores a backup into `target` (created in order, status restored,
/// the Clusters the backup paused unpaused), resumable as a move is.
pub async fn restore_from_directory(
    target: &Client,
    dir: &Path,
    opts: &Options,
    out: &mut dyn FnMut(String),
) -> Result<Summary, OpsError> {
    let target_kinds = kinds(target).await?;
    let mut objs = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
        let value: Value = serde_saphyr::from_str(&text).map_err(|e| io_error(&path, e))?;
        let (api_version, kind) = (
            value["apiVersion"].as_str().unwrap_or_default(),
            value["kind"].as_str().unwrap_or_default(),
        );
        let group = api_version.split_once('/').map_or("", |(g, _)| g);
        let k = target_kinds
            .iter()
            .find(|k| k.group == group && k.kind == kind)
            .cloned()
            .ok_or_else(|| {
                refused(format!(
                    "{}: the target does not serve {kind} of {api_version}: install slipway there first (`slipway init`)",
                    path.display()
                ))
            })?;
        objs.push(Obj { kind: k, value });
    }
    let g = graph::build(objs, &opts.namespace).map_err(refused)?;
    if g.nodes.is_empty() {
        out(format!("no objects in {}", dir.display()));
        return Ok(Summary::default());
    }
    let target_kinds = check_target(target, &g).await?;
    let observed = observe(target, &target_kinds, &g).await?;
    plan::plan(&g, &observed).map_err(|c| refused(c.join("; ")))?;
    if opts.dry_run {
        list(&g, &opts.namespace, out);
        return Ok(Summary {
            objects: g.nodes.len(),
            ..Default::default()
        });
    }
    let mut writes = Writes {
        done: 0,
        limit: opts.stop_after,
    };
    let summary = create_in_target(target, &target_kinds, &g, &mut writes, out).await?;
    unpause_target(target, &g, &mut writes, out).await?;
    Ok(summary)
}
