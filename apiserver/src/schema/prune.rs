//! Pruning: fields a structural schema does not know are dropped (or, in strict field
//! validation, reported), except below `x-kubernetes-preserve-unknown-fields`.

use serde_json::Value;

use super::{child, flag};

/// Paths of fields the schema would prune, without changing the object.
pub fn unknown_fields(schema: &Value, obj: &Value) -> Vec<String> {
    let mut copy = obj.clone();
    prune(schema, &mut copy)
}

/// Removes fields the schema does not know (unless `x-kubernetes-preserve-unknown-fields`);
/// returns their paths.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    prune_node(schema, obj, "", true, &mut pruned);
    pruned
}

fn prune_node(schema: &Value, obj: &mut Value, path: &str, root: bool, pruned: &mut Vec<String>) {
    match obj {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields")
                || matches!(additional, Some(Value::Bool(true)));
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                // apiVersion, kind and metadata are the server's business, not the schema's.
                if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let sub = props
                    .and_then(|p| p.get(&key))
                    .or_else(|| additional.filter(|a| a.is_object()));
                match sub {
                    Some(sub) => {
                        let p = match props.and_then(|p| p.get(&key)) {
                            Some(_) => child(path, &key),
                            None => format!("{path}[{key}]"),
                        };
                        prune_node(
                            sub,
                            map.get_mut(&key).expect("key listed"),
                            &p,
                            false,
                            pruned,
                        );
                    }
                    None if preserve => {}
                    None => {
                        map.remove(&key);
                        pruned.push(child(path, &key));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_node(item_schema, item, &format!("{path}[{i}]"), false, pruned);
                }
            }
        }
        _ => {}
    }
}
