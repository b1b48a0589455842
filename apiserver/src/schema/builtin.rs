//! Schemas of the built-in kinds the server serves, from k8s-openapi's types (their
//! `schemars` schemas, which follow the Kubernetes OpenAPI documents), made structural: every
//! `$ref` inlined (a recursive reference becomes a subtree kept as sent), descriptions
//! dropped. `required` is dropped too: kube-apiserver decodes built-in kinds leniently and
//! checks required fields by hand, per kind, so an OpenAPI `required` list would refuse
//! objects a real cluster accepts.
//!
//! Built lazily, once per kind, and shared.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, RwLock},
};

use k8s_openapi::{
    api::{apps, coordination, core, events, rbac},
    schemars::{JsonSchema, SchemaGenerator},
};
use serde_json::{Map, Value, json};

type Cache = HashMap<(String, String), Option<Arc<Value>>>;

static CACHE: LazyLock<RwLock<Cache>> = LazyLock::new(Default::default);

/// The structural schema of the built-in `kind` of `group`, or `None` when the server does
/// not validate that kind (CustomResourceDefinitions have their own checks).
pub fn schema(group: &str, kind: &str) -> Option<Arc<Value>> {
    let key = (group.to_string(), kind.to_string());
    if let Some(s) = CACHE.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return s.clone();
    }
    let built = generate(group, kind).map(Arc::new);
    CACHE
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, built.clone());
    built
}

fn generate(group: &str, kind: &str) -> Option<Value> {
    Some(match (group, kind) {
        ("", "ConfigMap") => resolved::<core::v1::ConfigMap>(),
        ("", "Secret") => resolved::<core::v1::Secret>(),
        ("", "Namespace") => resolved::<core::v1::Namespace>(),
        ("", "ServiceAccount") => resolved::<core::v1::ServiceAccount>(),
        ("", "Event") => resolved::<core::v1::Event>(),
        ("", "Node") => resolved::<core::v1::Node>(),
        ("coordination.k8s.io", "Lease") => resolved::<coordination::v1::Lease>(),
        ("events.k8s.io", "Event") => resolved::<events::v1::Event>(),
        ("apps", "Deployment") => resolved::<apps::v1::Deployment>(),
        ("apps", "DaemonSet") => resolved::<apps::v1::DaemonSet>(),
        ("rbac.authorization.k8s.io", "Role") => resolved::<rbac::v1::Role>(),
        ("rbac.authorization.k8s.io", "ClusterRole") => resolved::<rbac::v1::ClusterRole>(),
        ("rbac.authorization.k8s.io", "RoleBinding") => resolved::<rbac::v1::RoleBinding>(),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            resolved::<rbac::v1::ClusterRoleBinding>()
        }
        _ => return None,
    })
}

fn resolved<T: JsonSchema>() -> Value {
    let root = SchemaGenerator::default().into_root_schema_for::<T>();
    let mut v = serde_json::to_value(root).expect("a schema is JSON");
    let defs = v
        .as_object_mut()
        .and_then(|m| m.remove("$defs"))
        .and_then(|d| d.as_object().cloned())
        .unwrap_or_default();
    inline(&v, &defs, &mut Vec::new())
}

fn inline(node: &Value, defs: &Map<String, Value>, stack: &mut Vec<String>) -> Value {
    let Some(obj) = node.as_object() else {
        return node.clone();
    };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r).to_string();
        let Some(def) = defs.get(&name).filter(|_| !stack.contains(&name)) else {
            return json!({"x-kubernetes-preserve-unknown-fields": true});
        };
        stack.push(name);
        let out = inline(def, defs, stack);
        stack.pop();
        return out;
    }
    let mut out = Map::new();
    for (k, v) in obj {
        let kept = match k.as_str() {
            "description" | "$schema" | "title" | "required" => continue,
            "properties" => Value::Object(
                v.as_object()
                    .into_iter()
                    .flatten()
                    .map(|(p, s)| (p.clone(), inline(s, defs, stack)))
                    .collect(),
            ),
            "items" | "additionalProperties" if v.is_object() => inline(v, defs, stack),
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| inline(s, defs, stack))
                    .collect(),
            ),
            _ => v.clone(),
        };
        out.insert(k.clone(), kept);
    }
    Value::Object(out)
}

/// Removes members whose value is `null`, at any depth: a built-in kind's typed decode reads
/// them as absent (kubectl's manifests carry `creationTimestamp: null`).
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{unknown_fields, validate};

    #[test]
    fn builtin_schemas_are_structural_and_catch_wrong_types() {
        let cm = schema("", "ConfigMap").unwrap();
        assert_eq!(
            cm["properties"]["data"]["additionalProperties"]["type"],
            "string"
        );
        assert!(cm.to_string().find("$ref").is_none());
        let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"port": 8080}});
        let errs = validate(&cm, &bad);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].field.contains("port"), "{errs:?}");
        let extra = json!({"metadata": {"name": "x"}, "data": {"a": "b"}, "spec": {"x": 1}});
        assert_eq!(unknown_fields(&cm, &extra), ["spec"]);
        // Every served built-in kind but CRDs has one, recursive ones included.
        for (g, k) in [
            ("", "Secret"),
            ("", "Node"),
            ("apps", "Deployment"),
            ("rbac.authorization.k8s.io", "ClusterRole"),
            ("events.k8s.io", "Event"),
        ] {
            assert!(schema(g, k).is_some(), "{g}/{k}");
        }
        assert!(schema("apiextensions.k8s.io", "CustomResourceDefinition").is_none());
        let dep = schema("apps", "Deployment").unwrap();
        let mut d = json!({"metadata": {"name": "d"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"creationTimestamp": null, "labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": 1}}}]}}}});
        strip_nulls(&mut d);
        assert!(validate(&dep, &d).is_empty(), "{:?}", validate(&dep, &d));
        assert!(unknown_fields(&dep, &d).is_empty());
    }
}
