//! Patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and strategic merge patch
//! for the built-in kinds.
//!
//! Strategic merge here covers what kubectl sends for the built-in kinds slipway serves: maps
//! merge, `null` deletes, lists of objects merge by their merge key (`name`, `type` or `uid`,
//! as the Kubernetes types declare them), other lists are replaced, `$patch: delete|replace`
//! is honoured and the other `$`-directives (`$setElementOrder`, `$retainKeys`,
//! `$deleteFromPrimitiveList`) are applied or dropped.

use serde_json::Value;

/// Why a JSON patch (RFC 6902) could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch document is not an array.
    #[error("invalid JSON patch: expected an array of operations")]
    NotAnArray,
    /// An operation is malformed.
    #[error("invalid JSON patch: {0}")]
    InvalidOperation(#[source] serde_json::Error),
    /// A well-formed operation failed on the target (a missing path, a failed `test`, ...).
    #[error(transparent)]
    Failed(#[from] json_patch::PatchError),
}

/// RFC 7386.
pub fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902; the error's message is the failing operation's.
///
/// As in kube-apiserver (whose JSON patch library treats a missing path as null), a `test` for
/// `null` passes on a missing path; kube-rs's finalizer helper relies on it.
pub fn json(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let raw_ops = patch.as_array().ok_or(PatchError::NotAnArray)?;
    for raw in raw_ops {
        let missing = raw["path"]
            .as_str()
            .is_some_and(|p| target.pointer(p).is_none());
        if raw["op"] == "test" && raw["value"].is_null() && missing {
            continue;
        }
        let op: json_patch::PatchOperation =
            serde_json::from_value(raw.clone()).map_err(PatchError::InvalidOperation)?;
        json_patch::patch(target, &[op])?;
    }
    Ok(())
}

/// Merge keys of the list fields of built-in kinds.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "conditions" | "addresses" => Some("type"),
        "ownerReferences" => Some("uid"),
        "containers" | "initContainers" | "volumes" | "env" | "ports" | "secrets"
        | "imagePullSecrets" | "volumeMounts" => Some("name"),
        "taints" => Some("key"),
        _ => None,
    }
}

/// Strategic merge patch.
pub fn strategic(target: &mut Value, patch: &Value) {
    if let (Value::Object(t), Value::Object(p)) = (&mut *target, patch) {
        if p.get("$patch").and_then(Value::as_str) == Some("replace") {
            let mut replaced = p.clone();
            replaced.remove("$patch");
            *t = replaced;
            return;
        }
        for (k, v) in p {
            if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
                if let (Some(Value::Array(list)), Some(remove)) = (t.get_mut(field), v.as_array()) {
                    list.retain(|x| !remove.contains(x));
                }
                continue;
            }
            if k.starts_with('$') {
                continue;
            }
            if v.is_null() || v.get("$patch").and_then(Value::as_str) == Some("delete") {
                t.remove(k);
                continue;
            }
            match (t.get_mut(k), v) {
                (Some(existing @ Value::Object(_)), Value::Object(_)) => strategic(existing, v),
                (Some(Value::Array(existing)), Value::Array(items)) if merge_key(k).is_some() => {
                    merge_list(existing, items, merge_key(k).expect("checked"));
                }
                _ => {
                    let mut clean = v.clone();
                    strip_directives(&mut clean);
                    t.insert(k.clone(), clean);
                }
            }
        }
    } else {
        *target = patch.clone();
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let Some(id) = item.get(key) else {
            existing.push(item.clone());
            continue;
        };
        let pos = existing.iter().position(|e| e.get(key) == Some(id));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (Some(i), false) => strategic(&mut existing[i], item),
            (None, false) => {
                let mut clean = item.clone();
                strip_directives(&mut clean);
                existing.push(clean);
            }
            (None, true) => {}
        }
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_and_json_patches() {
        let mut v = json!({"spec": {"a": 1, "b": 2}, "metadata": {"labels": {"x": "1"}}});
        merge(
            &mut v,
            &json!({"spec": {"a": null, "c": 3}, "metadata": {"labels": {"y": "2"}}}),
        );
        assert_eq!(
            v,
            json!({"spec": {"b": 2, "c": 3}, "metadata": {"labels": {"x": "1", "y": "2"}}})
        );
        json(&mut v, &json!([{"op": "replace", "path": "/spec/b", "value": 5}, {"op": "add", "path": "/spec/l", "value": []}])).unwrap();
        assert_eq!(v["spec"], json!({"b": 5, "c": 3, "l": []}));
        let err = json(
            &mut v,
            &json!([{"op": "test", "path": "/spec/b", "value": 6}]),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::Failed(_)), "{err:?}");
        assert!(!err.to_string().is_empty());
        assert!(matches!(
            json(&mut v, &json!({"op": "add"})),
            Err(PatchError::NotAnArray)
        ));
        assert!(matches!(
            json(&mut v, &json!([{"op": "frobnicate", "path": "/x"}])),
            Err(PatchError::InvalidOperation(_))
        ));
        json(&mut v, &json!([{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}])).unwrap();
        assert_eq!(
            v["metadata"]["finalizers"],
            json!(["f"]),
            "a test for null passes on a missing path"
        );
        assert!(
            json(
                &mut v,
                &json!([{"op": "test", "path": "/metadata/finalizers", "value": null}])
            )
            .is_err(),
            "but not on a present one"
        );
    }

    #[test]
    fn strategic_merges_lists_by_key_and_honours_directives() {
        let mut node = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Disk", "status": "False"}]},
                              "metadata": {"finalizers": ["a", "b"], "labels": {"k": "v"}}});
        strategic(
            &mut node,
            &json!({
                "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Disk", "$patch": "delete"}, {"type": "New", "status": "True"}]},
                "$setElementOrder/metadata": [],
                "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "labels": {"k": null}}
            }),
        );
        assert_eq!(
            node["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "New", "status": "True"}])
        );
        assert_eq!(node["metadata"], json!({"finalizers": ["b"], "labels": {}}));
        let mut cm = json!({"data": {"a": "1"}});
        strategic(&mut cm, &json!({"data": {"$patch": "replace", "b": "2"}}));
        assert_eq!(cm, json!({"data": {"b": "2"}}));
    }
}
