//! Server-side printing: `Accept: application/json;as=Table;g=meta.k8s.io;v=v1` answers with a
//! `meta.k8s.io/v1` Table whose columns are the resource's printer columns, evaluated with the
//! JSONPath subset printer columns use.

use serde_json::{Value, json};

use crate::catalog::{Column, Resource};

/// What rows carry as `object` (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// `PartialObjectMetadata` (kubectl's default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// From the query parameter.
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// Column definitions: Name first, then the resource's columns.
pub fn column_definitions(r: &Resource) -> Vec<Value> {
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    defs.extend(r.columns.iter().map(|c| {
        json!({"name": c.name, "type": if c.type_ == "date" { "string" } else { c.type_.as_str() },
               "format": if c.type_ == "date" { "date" } else { "" }, "description": c.description, "priority": c.priority})
    }));
    defs
}

/// One row.
pub fn row(r: &Resource, obj: &Value, include: IncludeObject, now: jiff::Timestamp) -> Value {
    let mut cells = vec![
        obj.pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null),
    ];
    cells.extend(r.columns.iter().map(|c| cell(c, obj, now)));
    let mut row = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]});
        }
        IncludeObject::Object => row["object"] = obj.clone(),
    }
    row
}

/// A whole Table.
pub fn table(r: &Resource, objs: &[&Value], include: IncludeObject, metadata: Value) -> Value {
    let now = jiff::Timestamp::now();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
        "columnDefinitions": column_definitions(r),
        "rows": objs.iter().map(|o| row(r, o, include, now)).collect::<Vec<_>>(),
    })
}

/// Columns kube-apiserver computes rather than reads from one path (Node STATUS and ROLES, Pod
/// READY and RESTARTS, Service PORT(S)): named `@...` in the catalog.
fn computed(name: &str, obj: &Value) -> Value {
    let conds = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match name {
        "@node-status" => {
            let ready = conds("/status/conditions")
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let mut s = if ready { "Ready" } else { "NotReady" }.to_string();
            if obj.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
                s.push_str(",SchedulingDisabled");
            }
            Value::String(s)
        }
        "@node-roles" => {
            let roles: Vec<&str> = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect()
                })
                .unwrap_or_default();
            Value::String(if roles.is_empty() {
                "<none>".into()
            } else {
                roles.join(",")
            })
        }
        "@pod-ready" => {
            let statuses = conds("/status/containerStatuses");
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses.iter().filter(|s| s["ready"] == true).count();
            Value::String(format!("{ready}/{total}"))
        }
        "@pod-restarts" => json!(
            conds("/status/containerStatuses")
                .iter()
                .map(|s| s["restartCount"].as_i64().unwrap_or(0))
                .sum::<i64>()
        ),
        "@service-ports" => {
            let ports: Vec<String> = conds("/spec/ports")
                .iter()
                .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                .collect();
            Value::String(if ports.is_empty() {
                "<none>".into()
            } else {
                ports.join(",")
            })
        }
        // kubectl's PodDisruptionBudget columns print N/A for the bound that is not set.
        "@pdb-min-available" | "@pdb-max-unavailable" => {
            let field = if name == "@pdb-min-available" {
                "minAvailable"
            } else {
                "maxUnavailable"
            };
            match &obj["spec"][field] {
                Value::Null => json!("N/A"),
                Value::String(s) => json!(s),
                other => json!(other.to_string()),
            }
        }
        _ => Value::Null,
    }
}

fn cell(c: &Column, obj: &Value, now: jiff::Timestamp) -> Value {
    if c.json_path.starts_with('@') {
        return computed(&c.json_path, obj);
    }
    let found = eval(&c.json_path, obj);
    let Some(first) = found.first() else {
        return Value::Null;
    };
    match c.type_.as_str() {
        "date" => first
            .as_str()
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            .map(|t| Value::String(human_duration(now.as_second() - t.as_second())))
            .unwrap_or(Value::Null),
        // Printer columns of type integer over a map count its entries (Secret DATA, ConfigMap DATA).
        "integer" if first.is_object() => json!(first.as_object().map_or(0, |m| m.len())),
        "integer" | "number" | "boolean" => (*first).clone(),
        _ => {
            let parts: Vec<String> = found
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            Value::String(parts.join(","))
        }
    }
}

/// kube-apiserver's `duration.HumanDuration` of a number of seconds.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h) = (s / 60, s / 3600);
    let (d, y) = (h / 24, h / (24 * 365));
    let pair = |a: i64, ua: &str, b: i64, ub: &str| {
        if b == 0 {
            format!("{a}{ua}")
        } else {
            format!("{a}{ua}{b}{ub}")
        }
    };
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        pair(m, "m", s % 60, "s")
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        pair(h, "h", m % 60, "m")
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        pair(d, "d", h % 24, "h")
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        pair(y, "y", d % 365, "d")
    } else {
        format!("{y}y")
    }
}

/// Evaluates the printer-column JSONPath subset: `.a.b`, `.a[0]`, `.a[*].b`,
/// `.a[?(@.type=="X")].status` and `['dotted\.key']`.
pub fn eval<'a>(path: &str, obj: &'a Value) -> Vec<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut current = vec![obj];
    let mut rest = path.trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let field = &r[..end];
            current = current.into_iter().filter_map(|v| v.get(field)).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = find_close(r) else {
                return vec![];
            };
            let inner = &r[..end];
            rest = &r[end + 1..];
            current = current.into_iter().flat_map(|v| index(v, inner)).collect();
        } else {
            return vec![];
        }
    }
    current
}

fn find_close(s: &str) -> Option<usize> {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q && prev != '\\' => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, ']') => return Some(i),
            _ => {}
        }
        prev = c;
    }
    None
}

fn index<'a>(v: &'a Value, inner: &str) -> Vec<&'a Value> {
    let inner = inner.trim();
    if inner == "*" {
        return match v {
            Value::Array(a) => a.iter().collect(),
            Value::Object(m) => m.values().collect(),
            _ => vec![],
        };
    }
    if let Some(q) = inner
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
    {
        let key = q.replace("\\.", ".");
        return v.get(key.as_str()).into_iter().collect();
    }
    if let Some(filter) = inner.strip_prefix("?(").and_then(|s| s.strip_suffix(')')) {
        // @.field==value (value quoted or bare)
        let Some((lhs, rhs)) = filter.split_once("==") else {
            return vec![];
        };
        let field = lhs.trim().trim_start_matches("@.");
        let want = rhs.trim().trim_matches(|c| c == '"' || c == '\'');
        return v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|item| {
                        eval(&format!(".{field}"), item)
                            .first()
                            .is_some_and(|x| match x {
                                Value::String(s) => s == want,
                                other => {
                                    let rendered = other.to_string();
                                    rendered == want
                                }
                            })
                    })
                    .collect()
            })
            .unwrap_or_default();
    }
    match inner.parse::<i64>() {
        Ok(i) => v
            .as_array()
            .and_then(|a| {
                let idx = if i < 0 { a.len() as i64 + i } else { i };
                usize::try_from(idx).ok().and_then(|i| a.get(i))
            })
            .into_iter()
            .collect(),
        Err(_) => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset_of_printer_columns() {
        let obj = json!({
            "metadata": {"name": "n", "labels": {"cluster.x-k8s.io/cluster-name": "demo"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Available", "status": "False"}],
                       "controlPlane": {"versions": [{"version": "v1.31.0"}]}, "phase": "Provisioned"},
            "spec": {"items": [{"a": 1}, {"a": 2}]}
        });
        let one = |p: &str| eval(p, &obj).first().map(|v| (*v).clone());
        assert_eq!(one(".status.phase"), Some(json!("Provisioned")));
        assert_eq!(
            one(".status.conditions[?(@.type==\"Available\")].status"),
            Some(json!("False"))
        );
        assert_eq!(
            one(".status.controlPlane.versions[0].version"),
            Some(json!("v1.31.0"))
        );
        assert_eq!(
            one(".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"),
            Some(json!("demo"))
        );
        assert_eq!(eval(".spec.items[*].a", &obj).len(), 2);
        assert_eq!(one(".spec.items[-1].a"), Some(json!(2)));
        assert!(eval(".status.missing", &obj).is_empty());
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        let table = [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
            (-5, "<invalid>"),
        ];
        for (secs, want) in table {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }
}
