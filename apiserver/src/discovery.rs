//! Discovery and OpenAPI: `/version`, `/api`, `/apis`, the per-group-version resource lists,
//! and `/openapi/v3` with a schema per kind (tagged `x-kubernetes-group-version-kind`) and a
//! path per resource, which is what kubectl consults to choose server-side field validation
//! and the patch type of client-side apply.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::catalog::{Catalog, Resource};

/// The Kubernetes version the server reports (kubectl warns beyond one minor of skew).
pub const KUBERNETES_MINOR: &str = "33";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0-slipway.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "", "goVersion": "none",
        "compiler": "rustc", "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn group_entry(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// `/apis`.
pub fn api_groups(catalog: &Catalog) -> Value {
    let groups: Vec<Value> = catalog
        .groups()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
pub fn api_group(catalog: &Catalog, group: &str) -> Option<Value> {
    let groups = catalog.groups();
    let vs = groups.get(group)?;
    let mut g = group_entry(group, vs);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `/api/v1` and `/apis/{group}/{version}`.
pub fn resource_list(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = catalog
        .all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .flat_map(|r| r.discovery())
        .collect();
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v2`: a valid, minimal Swagger 2.0 document (no paths, no definitions), as
/// protobuf (`openapi_v2.Document`, what kubectl asks for) or JSON. kubectl falls back to it
/// when a kind is missing from `/openapi/v3`; a document it can read lets it report the real
/// error rather than "failed to download openapi". Returns the content type and the body.
pub fn openapi_v2(accept: &str) -> (&'static str, Vec<u8>) {
    let version = format!("v1.{KUBERNETES_MINOR}.0");
    if accept.contains("protobuf") {
        // Field numbers of gnostic's openapi_v2.Document: swagger = 1, info = 2 (Info: title
        // = 1, version = 2), paths = 8.
        fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
            out.push((number << 3) | 2);
            let mut len = bytes.len();
            while len >= 0x80 {
                out.push((len as u8) | 0x80);
                len >>= 7;
            }
            out.push(len as u8);
            out.extend_from_slice(bytes);
        }
        let mut info = Vec::new();
        field(&mut info, 1, b"Kubernetes");
        field(&mut info, 2, version.as_bytes());
        let mut doc = Vec::new();
        field(&mut doc, 1, b"2.0");
        field(&mut doc, 2, &info);
        field(&mut doc, 8, &[]);
        return (
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            doc,
        );
    }
    let doc = json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": version}, "paths": {}, "definitions": {}});
    ("application/json", serde_json::to_vec(&doc).expect("json"))
}

/// `/openapi/v3`: one entry per group-version.
pub fn openapi_root(catalog: &Catalog) -> Value {
    let mut paths = BTreeMap::new();
    for r in catalog.all() {
        let p = gv_path(&r.group, &r.version);
        let hash = format!("{:016X}", catalog_hash(catalog, &r.group, &r.version));
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

fn catalog_hash(catalog: &Catalog, group: &str, version: &str) -> u64 {
    let doc = openapi_gv(catalog, group, version)
        .map(|d| d.to_string())
        .unwrap_or_default();
    doc.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn schema_name(r: &Resource) -> String {
    let group = if r.group.is_empty() {
        "io.k8s.api.core".to_string()
    } else {
        r.group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{group}.{}.{}", r.version, r.kind)
}

/// `/openapi/v3/{api/v1 | apis/group/version}`.
pub fn openapi_gv(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<_> = catalog
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let mut schemas = serde_json::Map::new();
    let mut paths = serde_json::Map::new();
    for r in &resources {
        let gvk = json!([{"group": r.group, "version": r.version, "kind": r.kind}]);
        let mut s = r
            .schema
            .as_ref()
            .map_or_else(|| builtin_schema(&r.kind), |s| s.json.clone());
        s["x-kubernetes-group-version-kind"] = gvk.clone();
        let name = schema_name(r);
        schemas.insert(name.clone(), s);
        let mut content_types = vec![
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ];
        if !r.custom {
            content_types.push("application/strategic-merge-patch+json");
        }
        let body = |types: &[&str]| {
            let content: serde_json::Map<String, Value> = types
                .iter()
                .map(|t| {
                    (
                        t.to_string(),
                        json!({"schema": {"$ref": format!("#/components/schemas/{name}")}}),
                    )
                })
                .collect();
            json!({"content": content})
        };
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
        ]);
        let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}}});
        let op = |action: &str, req: Option<Value>| {
            let mut o = json!({"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk[0], "parameters": params, "responses": ok});
            if let Some(b) = req {
                o["requestBody"] = b;
            }
            o
        };
        let base = if r.namespaced {
            format!(
                "/{}/namespaces/{{namespace}}/{}",
                gv_path(&r.group, &r.version),
                r.plural
            )
        } else {
            format!("/{}/{}", gv_path(&r.group, &r.version), r.plural)
        };
        paths.insert(base.clone(), json!({"get": op("list", None), "post": op("post", Some(body(&["*/*"]))), "delete": op("deletecollection", None)}));
        paths.insert(format!("{base}/{{name}}"), json!({
            "get": op("get", None), "put": op("put", Some(body(&["*/*"]))), "patch": op("patch", Some(body(&content_types))), "delete": op("delete", None),
        }));
        if r.status {
            paths.insert(format!("{base}/{{name}}/status"), json!({"get": op("get", None), "put": op("put", Some(body(&["*/*"]))), "patch": op("patch", Some(body(&content_types)))}));
        }
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": format!("v1.{KUBERNETES_MINOR}.0")}, "paths": paths, "components": {"schemas": schemas}}),
    )
}

/// Published (not enforced) schemas of the built-in kinds: enough structure, with the patch
/// merge keys of the Kubernetes types, for kubectl to compute strategic merge patches.
fn builtin_schema(kind: &str) -> Value {
    let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let free = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let keyed = |key: &str| json!({"type": "array", "items": free, "x-kubernetes-patch-merge-key": key, "x-kubernetes-patch-strategy": "merge"});
    let meta = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "namespace": {"type": "string"}, "generateName": {"type": "string"},
        "uid": {"type": "string"}, "resourceVersion": {"type": "string"}, "generation": {"type": "integer"},
        "creationTimestamp": {"type": "string"}, "deletionTimestamp": {"type": "string"},
        "labels": string_map, "annotations": string_map,
        "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-patch-strategy": "merge"},
        "ownerReferences": keyed("uid"), "managedFields": {"type": "array", "items": free},
    }});
    let mut props =
        json!({"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": meta});
    let extra = match kind {
        "ConfigMap" => {
            json!({"data": string_map, "binaryData": string_map, "immutable": {"type": "boolean"}})
        }
        "Secret" => {
            json!({"data": string_map, "stringData": string_map, "type": {"type": "string"}, "immutable": {"type": "boolean"}})
        }
        "ServiceAccount" => {
            json!({"secrets": keyed("name"), "imagePullSecrets": keyed("name"), "automountServiceAccountToken": {"type": "boolean"}})
        }
        "Node" => {
            json!({"spec": {"type": "object", "properties": {"providerID": {"type": "string"}, "taints": keyed("key"), "unschedulable": {"type": "boolean"}}},
                         "status": {"type": "object", "properties": {"conditions": keyed("type"), "addresses": keyed("type"), "nodeInfo": free}}})
        }
        _ => json!({"spec": free, "status": free}),
    };
    if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    json!({"type": "object", "properties": props})
}
