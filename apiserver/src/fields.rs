//! Field ownership for server-side apply (`metadata.managedFields`, `FieldsV1`).
//!
//! Simplifications, stated so they are not mistaken for upstream behaviour: maps are owned per
//! key, recursively; lists are atomic (owned as a whole), so two managers cannot share one list
//! by key as `x-kubernetes-list-type: map` would allow. Everything else follows upstream:
//! applying a field another manager owns with a different value is a conflict unless forced
//! (then ownership moves); equal values are co-owned; fields a manager stops applying are
//! removed unless someone else owns them; an update takes the fields it changes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// A path of map keys from the object root.
pub type Path = Vec<String>;

/// Metadata fields that are the server's or the request's, never owned.
const SKIPPED_METADATA: [&str; 8] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
];

/// Leaf paths of an object: scalars, lists and empty maps, skipping apiVersion, kind and the
/// server's metadata.
pub fn leaf_paths(obj: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    if let Value::Object(m) = obj {
        for (k, v) in m {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            walk(v, vec![k.clone()], &mut out);
        }
    }
    out
}

fn walk(v: &Value, path: Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                if path.len() == 1
                    && path[0] == "metadata"
                    && SKIPPED_METADATA.contains(&k.as_str())
                {
                    continue;
                }
                let mut p = path.clone();
                p.push(k.clone());
                walk(child, p, out);
            }
        }
        // metadata itself, when empty or only server fields, owns nothing.
        Value::Object(_) if path.len() == 1 && path[0] == "metadata" => {}
        _ => {
            out.insert(path);
        }
    }
}

/// The value at a path.
pub fn get<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, k| v.get(k))
}

/// Removes the value at a path, and maps left empty above it (but never `metadata`).
pub fn remove(obj: &mut Value, path: &[String]) {
    if path.is_empty() {
        return;
    }
    let (last, parents) = path.split_last().expect("non-empty");
    if let Some(Value::Object(m)) = parents.iter().try_fold(&mut *obj, |v, k| v.get_mut(k)) {
        m.remove(last);
    }
    if parents.len() > 1 || (parents.len() == 1 && parents[0] != "metadata") {
        let empty = get(obj, parents).is_some_and(|v| v.as_object().is_some_and(Map::is_empty));
        if empty {
            remove(obj, parents);
        }
    }
}

/// Deep merge: maps merge key by key, everything else (lists, scalars) is replaced.
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// FieldsV1 form of a set of paths: `{"f:spec": {"f:replicas": {}}}`.
pub fn to_fields_v1(paths: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut node = &mut root;
        for k in p {
            node = node
                .entry(format!("f:{k}"))
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("only maps are inserted");
        }
    }
    Value::Object(root)
}

/// Paths of a FieldsV1 value (leaves are the empty maps).
pub fn from_fields_v1(v: &Value) -> BTreeSet<Path> {
    fn rec(v: &Value, path: Path, out: &mut BTreeSet<Path>) {
        let Some(m) = v.as_object() else { return };
        let children: Vec<_> = m
            .iter()
            .filter_map(|(k, c)| k.strip_prefix("f:").map(|k| (k, c)))
            .collect();
        if children.is_empty() {
            if !path.is_empty() {
                out.insert(path);
            }
            return;
        }
        for (k, c) in children {
            let mut p = path.clone();
            p.push(k.to_string());
            rec(c, p, out);
        }
    }
    let mut out = BTreeSet::new();
    rec(v, vec![], &mut out);
    out
}

/// One manager's entry of `metadata.managedFields`.
#[derive(Clone, Debug, PartialEq)]
pub struct Managed {
    /// Manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// apiVersion the fields were written at.
    pub api_version: String,
    /// Subresource ("" or "status").
    pub subresource: String,
    /// Owned paths.
    pub fields: BTreeSet<Path>,
}

/// Reads `metadata.managedFields`.
pub fn managed_of(obj: &Value) -> Vec<Managed> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| Managed {
                    manager: e["manager"].as_str().unwrap_or_default().into(),
                    operation: e["operation"].as_str().unwrap_or("Update").into(),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
                    subresource: e["subresource"].as_str().unwrap_or_default().into(),
                    fields: from_fields_v1(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `metadata.managedFields` (entries with no field are dropped, as upstream does).
pub fn set_managed(obj: &mut Value, managed: &[Managed], time: &str) {
    let entries: Vec<Value> = managed
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            let mut e = json!({"manager": m.manager, "operation": m.operation, "apiVersion": m.api_version,
                               "time": time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&m.fields)});
            if !m.subresource.is_empty() {
                e["subresource"] = json!(m.subresource);
            }
            e
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

/// One conflicting field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// Its apiVersion.
    pub api_version: String,
    /// The field, as `.spec.paused`.
    pub field: String,
}

/// The result of an apply: the new object (without managedFields) and the new ownership.
#[derive(Debug)]
pub struct Applied {
    /// Merged object.
    pub object: Value,
    /// New ownership.
    pub managed: Vec<Managed>,
}

/// Server-side apply of `config` by `manager` onto `current` (`None` when creating).
pub fn apply(
    current: Option<&Value>,
    config: &Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
    force: bool,
) -> Result<Applied, Vec<Conflict>> {
    let mut managed = current.map(managed_of).unwrap_or_default();
    let applied = leaf_paths(config);
    let empty = json!({});
    let cur = current.unwrap_or(&empty);

    let mut conflicts = Vec::new();
    for other in managed
        .iter()
        .filter(|m| !(m.manager == manager && m.operation == "Apply"))
    {
        for p in applied.intersection(&other.fields) {
            if get(cur, p) != get(config, p) {
                conflicts.push(Conflict {
                    manager: other.manager.clone(),
                    api_version: other.api_version.clone(),
                    field: dotted(p),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    // Forced (or no conflict): others lose the fields whose value changes.
    for other in managed
        .iter_mut()
        .filter(|m| !(m.manager == manager && m.operation == "Apply"))
    {
        other
            .fields
            .retain(|p| !applied.contains(p) || get(cur, p) == get(config, p));
    }
    let previous: BTreeSet<Path> = managed
        .iter()
        .find(|m| m.manager == manager && m.operation == "Apply" && m.subresource == subresource)
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    let mut object = cur.clone();
    // Fields this manager applied before and no longer does, and nobody else owns: removed.
    let still_owned: BTreeSet<&Path> = managed
        .iter()
        .filter(|m| !(m.manager == manager && m.operation == "Apply"))
        .flat_map(|m| &m.fields)
        .collect();
    for p in previous.difference(&applied) {
        if !still_owned.contains(p) {
            remove(&mut object, p);
        }
    }
    merge(&mut object, config);
    match managed
        .iter_mut()
        .find(|m| m.manager == manager && m.operation == "Apply" && m.subresource == subresource)
    {
        Some(m) => {
            m.fields = applied;
            m.api_version = api_version.into();
        }
        None => managed.push(Managed {
            manager: manager.into(),
            operation: "Apply".into(),
            api_version: api_version.into(),
            subresource: subresource.into(),
            fields: applied,
        }),
    }
    Ok(Applied { object, managed })
}

/// Ownership after a non-apply write by `manager`: it takes every field whose value changed
/// (or appeared); fields that vanished leave every owner.
pub fn update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
) -> Vec<Managed> {
    let mut managed = old.map(managed_of).unwrap_or_default();
    let empty = json!({});
    let old = old.unwrap_or(&empty);
    let new_paths = leaf_paths(new);
    let changed: BTreeSet<Path> = new_paths
        .iter()
        .filter(|p| get(old, p) != get(new, p))
        .cloned()
        .collect();
    for m in &mut managed {
        m.fields
            .retain(|p| new_paths.contains(p) && !changed.contains(p));
    }
    if !changed.is_empty() {
        match managed.iter_mut().find(|m| {
            m.manager == manager && m.operation == "Update" && m.subresource == subresource
        }) {
            Some(m) => {
                m.fields.extend(changed);
                m.api_version = api_version.into();
            }
            None => managed.push(Managed {
                manager: manager.into(),
                operation: "Update".into(),
                api_version: api_version.into(),
                subresource: subresource.into(),
                fields: changed,
            }),
        }
    }
    managed
}

/// `.spec.paused` form of a path.
pub fn dotted(p: &[String]) -> String {
    p.iter().map(|k| format!(".{k}")).collect()
}

/// kube-apiserver's wording of an apply conflict.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let mut by_manager: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for c in conflicts {
        by_manager
            .entry((&c.manager, &c.api_version))
            .or_default()
            .push(&c.field);
    }
    let n = conflicts.len();
    let mut msg = format!(
        "Apply failed with {n} conflict{}: ",
        if n == 1 { "" } else { "s" }
    );
    let parts: Vec<String> = by_manager
        .iter()
        .flat_map(|((m, v), fields)| {
            fields
                .iter()
                .map(move |f| format!("conflict with \"{m}\" using {v}: {f}"))
        })
        .collect();
    msg.push_str(&parts.join("\n"));
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn leaf_paths_skip_server_metadata_and_treat_lists_atomically() {
        let obj = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "uid": "u", "labels": {"l": "v"}},
                         "spec": {"list": [1, 2], "m": {"k": true}, "empty": {}}});
        let got: Vec<String> = leaf_paths(&obj).iter().map(|p| dotted(p)).collect();
        assert_eq!(
            got,
            vec![
                ".metadata.labels.l",
                ".spec.empty",
                ".spec.list",
                ".spec.m.k"
            ]
        );
        assert_eq!(
            from_fields_v1(&to_fields_v1(&leaf_paths(&obj))),
            leaf_paths(&obj)
        );
    }

    #[test]
    fn apply_creates_then_detects_conflicts_with_other_managers() {
        let cfg = json!({"metadata": {"name": "a"}, "spec": {"paused": false, "x": 1}});
        let created = apply(None, &cfg, "kubectl", "g/v1", "", false).unwrap();
        let mut obj = created.object.clone();
        set_managed(&mut obj, &created.managed, "t");
        // Another manager updates spec.paused.
        let mut edited = obj.clone();
        edited["spec"]["paused"] = json!(true);
        let managed = update(Some(&obj), &edited, "kubectl-patch", "g/v1", "");
        set_managed(&mut edited, &managed, "t");
        assert_eq!(
            managed_of(&edited)
                .iter()
                .find(|m| m.manager == "kubectl")
                .unwrap()
                .fields,
            [p("spec.x")].into()
        );
        // Re-applying the old value conflicts...
        let err = apply(Some(&edited), &cfg, "kubectl", "g/v1", "", false).unwrap_err();
        assert_eq!(
            err,
            vec![Conflict {
                manager: "kubectl-patch".into(),
                api_version: "g/v1".into(),
                field: ".spec.paused".into()
            }]
        );
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 1 conflict: conflict with \"kubectl-patch\" using g/v1: .spec.paused"
        );
        // ...the same value does not, and is co-owned...
        let same = json!({"metadata": {"name": "a"}, "spec": {"paused": true, "x": 1}});
        let ok = apply(Some(&edited), &same, "kubectl", "g/v1", "", false).unwrap();
        assert!(
            ok.managed
                .iter()
                .all(|m| m.fields.contains(&p("spec.paused")))
        );
        // ...and force takes it over.
        let forced = apply(Some(&edited), &cfg, "kubectl", "g/v1", "", true).unwrap();
        assert_eq!(forced.object["spec"]["paused"], false);
        assert!(
            !forced
                .managed
                .iter()
                .find(|m| m.manager == "kubectl-patch")
                .unwrap()
                .fields
                .contains(&p("spec.paused"))
        );
    }

    #[test]
    fn fields_a_manager_stops_applying_are_removed_unless_someone_else_owns_them() {
        let v1 = json!({"metadata": {"name": "a", "labels": {"keep": "1", "drop": "1"}}, "spec": {"a": 1, "b": 2}});
        let first = apply(None, &v1, "m", "g/v1", "", false).unwrap();
        let mut obj = first.object;
        set_managed(&mut obj, &first.managed, "t");
        let v2 = json!({"metadata": {"name": "a", "labels": {"keep": "1"}}, "spec": {"a": 1}});
        let second = apply(Some(&obj), &v2, "m", "g/v1", "", false).unwrap();
        assert_eq!(second.object["spec"], json!({"a": 1}));
        assert_eq!(second.object["metadata"]["labels"], json!({"keep": "1"}));

        // With spec.b also owned by another manager, it stays.
        let mut shared = obj.clone();
        let mut managed = managed_of(&shared);
        managed.push(Managed {
            manager: "other".into(),
            operation: "Update".into(),
            api_version: "g/v1".into(),
            subresource: String::new(),
            fields: [p("spec.b")].into(),
        });
        set_managed(&mut shared, &managed, "t");
        let third = apply(Some(&shared), &v2, "m", "g/v1", "", false).unwrap();
        assert_eq!(third.object["spec"]["b"], 2);
    }

    #[test]
    fn remove_prunes_maps_left_empty_but_keeps_metadata() {
        let mut obj = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": {"y": 1}}});
        remove(&mut obj, &p("spec.x.y"));
        remove(&mut obj, &p("metadata.labels.a"));
        assert_eq!(obj, json!({"metadata": {}}));
    }
}
