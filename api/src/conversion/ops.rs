//! The field mappings between v1beta1 and v1beta2, as data: each [`Op`] moves or reshapes one
//! field, [`apply`] runs a kind's table forwards (v1beta1 -> v1beta2) or backwards.
//!
//! Paths are dot-separated object keys (no key slipway converts contains a dot). A field
//! missing from the source is left missing; a present field that cannot be represented in the
//! target is an error naming it.

use serde_json::{Map, Value, json};

use super::{ConversionError, duration};

/// One field mapping. The first path is where the field sits in v1beta1, the second where it
/// sits in v1beta2.
#[derive(Clone, Debug)]
pub enum Op {
    /// The same value at another path.
    Move(String, String),
    /// `corev1.ObjectReference {apiVersion, kind, name}` <-> `{apiGroup, kind, name}`.
    Ref(String, String),
    /// `corev1.ObjectReference` of a Node <-> `{name}`.
    NodeRef(String),
    /// A Go duration string (`"10m"`) <-> whole seconds (`600`).
    Duration(String, String),
    /// A map keyed by name <-> a list of objects with a `name` (sorted by name). With a value
    /// field, each map value becomes that field (`extraArgs`: `{k: v}` <-> `[{name: k, value:
    /// v}]`); without, the map value's own fields are kept beside the name (failure domains).
    MapToList {
        /// v1beta1 map.
        from: String,
        /// v1beta2 list.
        to: String,
        /// Field holding the map value, if the map values are scalars.
        value: Option<&'static str>,
    },
    /// The ops applied to every element of the list at the path (the list's path must be the
    /// one it has at that point of the table).
    Each(String, Vec<Op>),
}

/// Builds an [`Op::Move`].
pub fn mv(a: impl Into<String>, b: impl Into<String>) -> Op {
    Op::Move(a.into(), b.into())
}

/// Direction of a conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// v1beta1 -> v1beta2.
    Up,
    /// v1beta2 -> v1beta1.
    Down,
}

/// Where conversion needs outside knowledge: the version a referenced kind is served at.
pub type VersionOf<'a> = &'a dyn Fn(&str, &str) -> Option<String>;

/// Runs a table: forwards for [`Dir::Up`], backwards (each op inverted) for [`Dir::Down`].
/// `prefix` is prepended to error field names (the path of the list element for [`Op::Each`]).
pub fn apply(
    obj: &mut Value,
    ops: &[Op],
    dir: Dir,
    prefix: &str,
    namespace: Option<&str>,
    version_of: VersionOf<'_>,
) -> Result<(), ConversionError> {
    let run = |obj: &mut Value, op: &Op| apply_one(obj, op, dir, prefix, namespace, version_of);
    match dir {
        Dir::Up => ops.iter().try_for_each(|op| run(obj, op)),
        Dir::Down => ops.iter().rev().try_for_each(|op| run(obj, op)),
    }
}

fn field(prefix: &str, path: &str) -> String {
    if prefix.is_empty() {
        path.to_string()
    } else {
        format!("{prefix}.{path}")
    }
}

fn apply_one(
    obj: &mut Value,
    op: &Op,
    dir: Dir,
    prefix: &str,
    namespace: Option<&str>,
    version_of: VersionOf<'_>,
) -> Result<(), ConversionError> {
    match op {
        Op::Move(a, b) => {
            let (from, to) = ends(dir, a, b);
            if let Some(v) = take(obj, from) {
                put(obj, to, v);
            }
        }
        Op::Ref(a, b) => match dir {
            Dir::Up => {
                if let Some(v) = take(obj, a) {
                    put(obj, b, ref_up(v, &field(prefix, a), namespace)?);
                }
            }
            Dir::Down => {
                if let Some(v) = take(obj, b) {
                    put(obj, a, ref_down(v, version_of));
                }
            }
        },
        Op::NodeRef(a) => {
            if let Some(v) = take(obj, a) {
                let out = match dir {
                    Dir::Up => json!({"name": v.get("name").cloned().unwrap_or(json!(""))}),
                    Dir::Down => json!({"apiVersion": "v1", "kind": "Node",
                                        "name": v.get("name").cloned().unwrap_or(json!(""))}),
                };
                put(obj, a, out);
            }
        }
        Op::Duration(a, b) => match dir {
            Dir::Up => {
                if let Some(v) = take(obj, a) {
                    let name = field(prefix, a);
                    let s = v.as_str().ok_or_else(|| {
                        ConversionError::invalid(&name, "must be a duration string such as 10m")
                    })?;
                    let secs = duration::parse_seconds(s)
                        .map_err(|e| ConversionError::invalid(&name, &e))?;
                    let secs = i32::try_from(secs).map_err(|_| {
                        ConversionError::invalid(&name, "is longer than v1beta2's int32 seconds")
                    })?;
                    put(obj, b, json!(secs));
                }
            }
            Dir::Down => {
                if let Some(v) = take(obj, b) {
                    let secs = v.as_i64().ok_or_else(|| {
                        ConversionError::failed(&format!("{} is not an integer", field(prefix, b)))
                    })?;
                    put(obj, a, json!(duration::format_seconds(secs)));
                }
            }
        },
        Op::MapToList { from, to, value } => match dir {
            Dir::Up => {
                if let Some(v) = take(obj, from) {
                    let Value::Object(m) = v else {
                        return Err(ConversionError::invalid(
                            &field(prefix, from),
                            "must be a map",
                        ));
                    };
                    let list: Vec<Value> = m
                        .into_iter()
                        .map(|(k, v)| match (value, v) {
                            (Some(f), v) => json!({"name": k, *f: v}),
                            (None, Value::Object(mut fields)) => {
                                fields.insert("name".into(), json!(k));
                                Value::Object(fields)
                            }
                            (None, other) => json!({"name": k, "value": other}),
                        })
                        .collect();
                    put(obj, to, Value::Array(list));
                }
            }
            Dir::Down => {
                if let Some(v) = take(obj, to) {
                    let items = v.as_array().cloned().unwrap_or_default();
                    let mut m = Map::new();
                    for item in items {
                        let Value::Object(mut fields) = item else {
                            continue;
                        };
                        let Some(Value::String(name)) = fields.remove("name") else {
                            continue;
                        };
                        let v = match value {
                            Some(f) => fields.remove(*f).unwrap_or(json!("")),
                            None => Value::Object(fields),
                        };
                        m.insert(name, v);
                    }
                    put(obj, from, Value::Object(m));
                }
            }
        },
        Op::Each(path, ops) => {
            if let Some(Value::Array(items)) = get_mut(obj, path) {
                for (i, item) in items.iter_mut().enumerate() {
                    let p = format!("{}[{i}]", field(prefix, path));
                    apply(item, ops, dir, &p, namespace, version_of)?;
                }
            }
        }
    }
    Ok(())
}

fn ends<'a>(dir: Dir, a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    match dir {
        Dir::Up => (a, b),
        Dir::Down => (b, a),
    }
}

fn ref_up(v: Value, name: &str, namespace: Option<&str>) -> Result<Value, ConversionError> {
    let Value::Object(m) = v else {
        return Err(ConversionError::invalid(
            name,
            "must be an object reference",
        ));
    };
    let api_version = m
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ConversionError::invalid(
                &format!("{name}.apiVersion"),
                "Required value: v1beta2 references need the API group",
            )
        })?;
    if let (Some(theirs), Some(ours)) = (m.get("namespace").and_then(Value::as_str), namespace)
        && !theirs.is_empty()
        && theirs != ours
    {
        return Err(ConversionError::invalid(
            &format!("{name}.namespace"),
            &format!(
                "{theirs:?} differs from the object's namespace {ours:?}: v1beta2 references name objects in the same namespace only"
            ),
        ));
    }
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let mut out = Map::new();
    out.insert("apiGroup".into(), json!(group));
    for k in ["kind", "name"] {
        if let Some(x) = m.get(k) {
            out.insert(k.into(), x.clone());
        }
    }
    Ok(Value::Object(out))
}

fn ref_down(v: Value, version_of: VersionOf<'_>) -> Value {
    let group = v.get("apiGroup").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    // A kind whose CRD is unknown is shown at the contract version.
    let version = version_of(group, kind).unwrap_or_else(|| "v1beta2".into());
    let api_version = if group.is_empty() {
        version
    } else {
        format!("{group}/{version}")
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(api_version));
    for k in ["kind", "name"] {
        if let Some(x) = v.get(k) {
            out.insert(k.into(), x.clone());
        }
    }
    Value::Object(out)
}

/// The value at a dotted path.
pub fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn get_mut<'a>(v: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.').try_fold(v, |v, k| v.get_mut(k))
}

/// Removes and returns the value at a dotted path; parents left empty by the removal go too.
pub fn take(v: &mut Value, path: &str) -> Option<Value> {
    let keys: Vec<&str> = path.split('.').collect();
    take_keys(v, &keys)
}

fn take_keys(v: &mut Value, keys: &[&str]) -> Option<Value> {
    let m = v.as_object_mut()?;
    match keys {
        [] => None,
        [last] => m.remove(*last),
        [first, rest @ ..] => {
            let child = m.get_mut(*first)?;
            let out = take_keys(child, rest)?;
            if child.as_object().is_some_and(Map::is_empty) {
                m.remove(*first);
            }
            Some(out)
        }
    }
}

/// Sets the value at a dotted path, creating missing parent objects. A parent that exists
/// but is not an object is left alone (the value is dropped; the residual keeps it).
pub fn put(v: &mut Value, path: &str, value: Value) {
    let keys: Vec<&str> = path.split('.').collect();
    put_keys(v, &keys, value);
}

fn put_keys(v: &mut Value, keys: &[&str], value: Value) {
    let Some(m) = v.as_object_mut() else { return };
    match keys {
        [] => {}
        [last] => {
            m.insert((*last).to_string(), value);
        }
        [first, rest @ ..] => {
            let child = m
                .entry((*first).to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            put_keys(child, rest, value);
        }
    }
}
