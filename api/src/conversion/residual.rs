//! What keeps round trips lossless: the fields a conversion could not carry.
//!
//! After converting `x` to the other version, the result is mapped back and compared with `x`;
//! every leaf that came back different (or not at all) is recorded with the value `x` had and
//! the value the mapping produced. The record travels in the annotation
//! [`ANNOTATION`](super::ANNOTATION) of the converted object. When that object is converted back,
//! each recorded leaf is restored only if the mapping still produces what it produced then, so
//! a field changed in the other version meanwhile wins over the stale record.

use serde_json::{Map, Value, json};

/// One leaf that did not survive the mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Object keys from the root.
    pub path: Vec<String>,
    /// The value the source had (`None`: absent).
    pub value: Option<Value>,
    /// The value mapping back produced (`None`: absent).
    pub seen: Option<Value>,
    /// A value elsewhere that must still be what it was for the entry to apply: the object
    /// reference an entry belongs to (a ref's `uid` is restored only into the ref it was
    /// taken from, not into one renamed meanwhile).
    pub guard: Option<(Vec<String>, Value)>,
}

/// The leaves where `want` and `got` differ. `apiVersion`, `kind` and `metadata` are the
/// server's, never part of the difference. Lists are compared whole.
pub fn diff(want: &Value, got: &Value) -> Vec<Entry> {
    let mut out = Vec::new();
    let (Some(w), Some(g)) = (want.as_object(), got.as_object()) else {
        return out;
    };
    let keys = w.keys().chain(g.keys().filter(|k| !w.contains_key(*k)));
    for k in keys {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        walk(w.get(k), g.get(k), &mut vec![k.clone()], &mut out);
    }
    out
}

fn walk(want: Option<&Value>, got: Option<&Value>, path: &mut Vec<String>, out: &mut Vec<Entry>) {
    match (want, got) {
        (Some(Value::Object(w)), Some(Value::Object(g))) if !w.is_empty() && !g.is_empty() => {
            let keys = w.keys().chain(g.keys().filter(|k| !w.contains_key(*k)));
            for k in keys {
                path.push(k.clone());
                walk(w.get(k), g.get(k), path, out);
                path.pop();
            }
        }
        (w, g) if w != g => out.push(Entry {
            path: path.clone(),
            value: w.cloned(),
            seen: g.cloned(),
            guard: None,
        }),
        _ => {}
    }
}

/// The value at a path of object keys.
pub fn at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// Applies recorded entries whose `seen` value is still what `obj` holds.
pub fn restore(obj: &mut Value, entries: &[Entry]) {
    // Decided on the object as mapping produced it, before any entry changes it (an entry may
    // change the value another one's guard looks at).
    let apply: Vec<bool> = entries
        .iter()
        .map(|e| {
            at(obj, &e.path) == e.seen.as_ref()
                && e.guard
                    .as_ref()
                    .is_none_or(|(path, value)| at(obj, path) == Some(value))
        })
        .collect();
    for (e, ok) in entries.iter().zip(apply) {
        if !ok {
            continue;
        }
        match &e.value {
            Some(v) => set(obj, &e.path, v.clone()),
            None => remove(obj, &e.path),
        }
    }
}

fn set(obj: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for k in parents {
        let Some(m) = cur.as_object_mut() else { return };
        cur = m
            .entry(k.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(m) = cur.as_object_mut() {
        m.insert(last.clone(), value);
    }
}

fn remove(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for k in parents {
        match cur.get_mut(k) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// The annotation value: the version the entries restore and the entries.
pub fn encode(version: &str, entries: &[Entry]) -> String {
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("path".into(), json!(e.path));
            if let Some(v) = &e.value {
                m.insert("value".into(), v.clone());
            }
            if let Some(v) = &e.seen {
                m.insert("seen".into(), v.clone());
            }
            if let Some((path, value)) = &e.guard {
                m.insert("if".into(), json!({"path": path, "value": value}));
            }
            Value::Object(m)
        })
        .collect();
    json!({"version": version, "fields": list}).to_string()
}

/// Entries of an annotation value meant for `version`; anything else (another version's
/// record, a value edited by hand into something else) restores nothing.
pub fn decode(version: &str, s: &str) -> Vec<Entry> {
    let Ok(v) = serde_json::from_str::<Value>(s) else {
        return Vec::new();
    };
    if v["version"] != version {
        return Vec::new();
    }
    v["fields"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|e| {
                    let path = e["path"]
                        .as_array()?
                        .iter()
                        .map(|k| k.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()?;
                    let guard = e.get("if").and_then(|g| {
                        let path = g["path"]
                            .as_array()?
                            .iter()
                            .map(|k| k.as_str().map(str::to_string))
                            .collect::<Option<Vec<_>>>()?;
                        Some((path, g.get("value")?.clone()))
                    });
                    Some(Entry {
                        path,
                        value: e.get("value").cloned(),
                        seen: e.get("seen").cloned(),
                        guard,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_and_restore_round_trip() {
        let want = json!({"spec": {"a": 1, "b": {"c": "x"}, "l": [1, 2]}, "status": {"s": true}});
        let got = json!({"spec": {"a": 2, "l": [1], "extra": 5}, "metadata": {"name": "n"}});
        let entries = diff(&want, &got);
        assert_eq!(entries.len(), 5, "{entries:?}");
        let decoded = decode("v1beta1", &encode("v1beta1", &entries));
        assert_eq!(decoded, entries);
        let mut fixed = got.clone();
        restore(&mut fixed, &decoded);
        fixed.as_object_mut().unwrap().remove("metadata");
        assert_eq!(fixed, want);
        assert!(decode("v1beta2", &encode("v1beta1", &entries)).is_empty());
    }

    #[test]
    fn a_changed_field_wins_over_the_record() {
        let want = json!({"spec": {"a": "10m"}});
        let got = json!({"spec": {"a": "10m0s"}});
        let entries = diff(&want, &got);
        let mut changed = json!({"spec": {"a": "20m0s"}});
        restore(&mut changed, &entries);
        assert_eq!(changed, json!({"spec": {"a": "20m0s"}}));
        let mut same = got.clone();
        restore(&mut same, &entries);
        assert_eq!(same, want);
    }

    #[test]
    fn a_guarded_entry_applies_only_while_its_guard_holds() {
        let want = json!({"spec": {"ref": {"name": "a", "uid": "u1"}}});
        let got = json!({"spec": {"ref": {"name": "a"}}});
        let mut entries = diff(&want, &got);
        let ref_path = vec!["spec".to_string(), "ref".to_string()];
        entries[0].guard = Some((ref_path.clone(), got["spec"]["ref"].clone()));
        let entries = decode("v1beta1", &encode("v1beta1", &entries));
        assert_eq!(entries[0].guard.as_ref().map(|g| &g.0), Some(&ref_path));
        let mut renamed = json!({"spec": {"ref": {"name": "b"}}});
        restore(&mut renamed, &entries);
        assert_eq!(renamed, json!({"spec": {"ref": {"name": "b"}}}));
        let mut same = got.clone();
        restore(&mut same, &entries);
        assert_eq!(same, want);
    }
}
