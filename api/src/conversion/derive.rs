//! The closed v1beta1 schema of a kind, derived from its v1beta2 schema by running the kind's
//! conversion table over the schema instead of over an object.
//!
//! Each [`Op`] run backwards (as a v1beta2 object is converted down) moves or reshapes the
//! subschema of its field: a moved field keeps its schema at its v1beta1 path, a reference
//! becomes a `corev1.ObjectReference`, whole seconds become a duration string, a list of
//! `{name, value}` becomes a map. What only v1beta1 has (the v1beta1 status block: conditions
//! with severity, failure fields, the old replica counters, and the few fields upstream
//! dropped in v1beta2) is added from [`spoke_only`]. The result types every field, so the
//! plane prunes, warns about or (under `fieldValidation=Strict`) refuses unknown v1beta1
//! fields as kube-apiserver does.
//!
//! Transition and CEL rules (`x-kubernetes-validations`) are left out: they name v1beta2
//! paths, and the converted object is admitted against the v1beta2 schema anyway.

use serde_json::{Map, Value, json};

use super::ops::Op;

/// The v1beta1 `openAPIV3Schema` of a kind with table `table`, from its v1beta2 one.
/// `extra` adds fields only v1beta1 has, as `(v1beta1 path, schema)`.
pub fn spoke_schema(hub: &Value, table: &[Op], extra: &[(String, Value)]) -> Value {
    let mut s = hub.clone();
    strip_rules(&mut s);
    run(&mut s, table);
    for (path, schema) in extra {
        put(&mut s, path, schema.clone());
    }
    if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
        for (k, t) in [
            ("apiVersion", "string"),
            ("kind", "string"),
            ("metadata", "object"),
        ] {
            props.entry(k).or_insert_with(|| json!({ "type": t }));
        }
    }
    s
}

fn run(s: &mut Value, table: &[Op]) {
    for op in table.iter().rev() {
        run_one(s, op);
    }
}

fn run_one(s: &mut Value, op: &Op) {
    match op {
        Op::Move(a, b) => match take(s, b) {
            Some(v) => put(s, a, v),
            None => {
                if let Some(v) = deprecated_field(b) {
                    put(s, a, v);
                }
            }
        },
        Op::Ref(a, b) => {
            take(s, b);
            put(s, a, object_reference());
        }
        Op::NodeRef(a) => {
            take(s, a);
            put(s, a, object_reference());
        }
        Op::Duration(a, b) => {
            let description = take(s, b).and_then(|v| v.get("description").cloned());
            let mut d = json!({"type": "string"});
            if let Some(text) = description {
                d["description"] = text;
            }
            put(s, a, d);
        }
        Op::MapToList { from, to, value } => {
            let Some(list) = take(s, to) else {
                return;
            };
            let mut item = list.get("items").cloned().unwrap_or_else(|| json!({}));
            let values = match value {
                Some(field) => item
                    .pointer(&format!("/properties/{field}"))
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "string"})),
                None => {
                    if let Some(props) = item.get_mut("properties").and_then(Value::as_object_mut) {
                        props.remove("name");
                    }
                    if let Some(req) = item.get_mut("required").and_then(Value::as_array_mut) {
                        req.retain(|r| r != "name");
                        if req.is_empty() {
                            item.as_object_mut().map(|m| m.remove("required"));
                        }
                    }
                    item
                }
            };
            put(
                s,
                from,
                json!({"type": "object", "additionalProperties": values}),
            );
        }
        Op::Each(path, ops) => {
            if let Some(items) = node_mut(s, path).and_then(|l| l.get_mut("items")) {
                run(items, ops);
            }
        }
    }
}

/// The schema of a v1beta1 field kept under `status.deprecated.v1beta1` at v1beta2 (which
/// slipway's v1beta2 types leave out of their schemas).
fn deprecated_field(hub_path: &str) -> Option<Value> {
    let name = hub_path.strip_prefix("status.deprecated.v1beta1.")?;
    Some(match name {
        "conditions" => v1beta1_conditions(),
        "failureReason" | "failureMessage" => json!({"type": "string"}),
        _ => json!({"type": "integer", "format": "int32"}),
    })
}

/// `corev1.ObjectReference`, as v1beta1 references are typed.
pub fn object_reference() -> Value {
    let s = || json!({"type": "string"});
    json!({
        "type": "object",
        "x-kubernetes-map-type": "atomic",
        "properties": {
            "apiVersion": s(), "kind": s(), "name": s(), "namespace": s(),
            "uid": s(), "resourceVersion": s(), "fieldPath": s(),
        },
    })
}

/// Cluster API v1beta1 conditions (`clusterv1beta1.Conditions`, with `severity`).
pub fn v1beta1_conditions() -> Value {
    json!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["lastTransitionTime", "status", "type"],
            "properties": {
                "type": {"type": "string", "maxLength": 256, "minLength": 1},
                "status": {"type": "string"},
                "severity": {"type": "string", "maxLength": 32},
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "reason": {"type": "string", "maxLength": 256},
                "message": {"type": "string", "maxLength": 10240},
            },
        },
    })
}

fn strip_rules(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("x-kubernetes-validations");
            m.values_mut().for_each(strip_rules);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_rules),
        _ => {}
    }
}

/// The schema of the field at a dot path.
pub fn node<'a>(s: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(s, |v, k| v.get("properties")?.get(k))
}

fn node_mut<'a>(s: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.')
        .try_fold(s, |v, k| v.get_mut("properties")?.get_mut(k))
}

/// Removes the field at `path` (and from its parent's `required`); a parent object left with
/// no fields is removed too, so v1beta2-only wrappers (`deletion`, `initialization`) vanish.
fn take(s: &mut Value, path: &str) -> Option<Value> {
    let (parent, key) = match path.rsplit_once('.') {
        Some((p, k)) => (Some(p), k),
        None => (None, path),
    };
    let p = match parent {
        Some(pp) => node_mut(s, pp)?,
        None => &mut *s,
    };
    let props = p.get_mut("properties")?.as_object_mut()?;
    let v = props.remove(key)?;
    let empty = props.is_empty();
    if let Some(req) = p.get_mut("required").and_then(Value::as_array_mut) {
        req.retain(|r| r != key);
        if req.is_empty() {
            p.as_object_mut().map(|m| m.remove("required"));
        }
    }
    let open = p.get("additionalProperties").is_some()
        || p.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    if let Some(pp) = parent {
        if empty && !open {
            take(s, pp);
        } else {
            // What is left of a parent a field moved out of may well be absent at v1beta1
            // (KCP's `machineTemplate.spec` once its ref and timeouts moved up a level).
            unrequire(s, pp);
        }
    }
    Some(v)
}

/// Drops the field at `path` from its parent's `required`.
fn unrequire(s: &mut Value, path: &str) {
    let (parent, key) = match path.rsplit_once('.') {
        Some((p, k)) => (node_mut(s, p), k),
        None => (Some(s), path),
    };
    let Some(p) = parent else { return };
    if let Some(req) = p.get_mut("required").and_then(Value::as_array_mut) {
        req.retain(|r| r != key);
        if req.is_empty() {
            p.as_object_mut().map(|m| m.remove("required"));
        }
    }
}

/// Sets the schema of the field at `path`, creating parent objects as needed. A `name[]`
/// segment steps into the elements of an existing list (and nothing is set without one).
fn put(s: &mut Value, path: &str, v: Value) {
    let mut cur = s;
    let keys: Vec<&str> = path.split('.').collect();
    for (i, k) in keys.iter().enumerate() {
        if let Some(list) = k.strip_suffix("[]") {
            match cur
                .get_mut("properties")
                .and_then(|p| p.get_mut(list))
                .and_then(|l| l.get_mut("items"))
            {
                Some(items) => {
                    cur = items;
                    continue;
                }
                None => return,
            }
        }
        let obj = cur.as_object_mut().expect("schemas are objects");
        obj.entry("type").or_insert_with(|| json!("object"));
        let props = obj
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("properties is an object");
        if i + 1 == keys.len() {
            props.insert((*k).to_string(), v);
            return;
        }
        cur = props
            .entry((*k).to_string())
            .or_insert_with(|| json!({"type": "object"}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversion::ops::mv;

    fn hub() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["ref"], "properties": {
                "ref": {"type": "object", "required": ["apiGroup"], "properties": {
                    "apiGroup": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"}}},
                "deletion": {"type": "object", "properties": {
                    "drainSeconds": {"type": "integer", "description": "drain"}}},
                "template": {"type": "object", "required": ["spec"], "properties": {
                    "spec": {"type": "object", "properties": {
                        "ref": {"type": "string"}, "left": {"type": "string"}}}}},
                "args": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "value": {"type": "string"}}}},
                "kept": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]},
            }},
            "status": {"type": "object", "properties": {
                "initialization": {"type": "object", "properties": {"provisioned": {"type": "boolean"}}},
            }},
        }})
    }

    #[test]
    fn the_table_reshapes_the_schema_as_it_reshapes_objects() {
        let table = vec![
            Op::Ref("spec.ref".into(), "spec.ref".into()),
            Op::Duration(
                "spec.drainTimeout".into(),
                "spec.deletion.drainSeconds".into(),
            ),
            Op::MapToList {
                from: "spec.args".into(),
                to: "spec.args".into(),
                value: Some("value"),
            },
            mv("spec.template.ref", "spec.template.spec.ref"),
            mv("status.ready", "status.initialization.provisioned"),
            mv("status.conditions", "status.deprecated.v1beta1.conditions"),
            mv(
                "status.failureReason",
                "status.deprecated.v1beta1.failureReason",
            ),
        ];
        let extra = vec![
            ("spec.old".to_string(), json!({"type": "boolean"})),
            ("spec.args[].x".to_string(), json!({"type": "boolean"})),
            ("spec.none[].x".to_string(), json!({"type": "boolean"})),
        ];
        let s = spoke_schema(&hub(), &table, &extra);
        assert_eq!(node(&s, "spec.ref").unwrap(), &object_reference());
        assert_eq!(s["properties"]["spec"].get("required"), None);
        assert_eq!(
            node(&s, "spec.drainTimeout").unwrap(),
            &json!({"type": "string", "description": "drain"})
        );
        assert!(node(&s, "spec.deletion").is_none(), "emptied wrappers go");
        assert_eq!(
            node(&s, "spec.template.ref").unwrap(),
            &json!({"type": "string"})
        );
        assert_eq!(
            node(&s, "spec.template").unwrap().get("required"),
            None,
            "what is left of a wrapper may be absent"
        );
        assert_eq!(
            node(&s, "spec.args").unwrap(),
            &json!({"type": "object", "additionalProperties": {"type": "string"}})
        );
        assert_eq!(node(&s, "spec.kept").unwrap(), &json!({"type": "string"}));
        assert_eq!(
            node(&s, "status.ready").unwrap(),
            &json!({"type": "boolean"})
        );
        assert!(node(&s, "status.initialization").is_none());
        assert_eq!(
            node(&s, "status.conditions").unwrap(),
            &v1beta1_conditions()
        );
        assert_eq!(
            node(&s, "status.failureReason").unwrap(),
            &json!({"type": "string"})
        );
        assert_eq!(node(&s, "spec.old").unwrap(), &json!({"type": "boolean"}));
        assert!(node(&s, "spec.none").is_none(), "no list, no element field");
        assert_eq!(node(&s, "kind").unwrap(), &json!({"type": "string"}));
    }

    #[test]
    fn a_map_of_objects_keeps_the_element_schema_without_its_name() {
        let hub = json!({"type": "object", "properties": {"status": {"type": "object", "properties": {
            "fd": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "controlPlane": {"type": "boolean"}}}}}}}});
        let table = vec![Op::MapToList {
            from: "status.fd".into(),
            to: "status.fd".into(),
            value: None,
        }];
        let s = spoke_schema(&hub, &table, &[]);
        assert_eq!(
            node(&s, "status.fd").unwrap(),
            &json!({"type": "object", "additionalProperties": {"type": "object",
                "properties": {"controlPlane": {"type": "boolean"}}}})
        );
    }
}
