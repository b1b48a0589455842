//! Label selectors (equality and set-based) and the field selectors the server supports:
//! `metadata.name` and `metadata.namespace` on every resource, plus the fields kube-apiserver
//! makes selectable for some kinds ([`selectable_fields`]).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::ApiError;

/// Why a `labelSelector` or `fieldSelector` query parameter is refused; answered as 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label selector requirement has an empty key or one with whitespace.
    #[error("invalid label key {0:?}")]
    LabelKey(String),
    /// The value set of an `in`/`notin` requirement is not parenthesized.
    #[error("invalid set {0:?}: expected (a,b)")]
    Set(String),
    /// A field selector requirement has no `=`, `==` or `!=`.
    #[error("invalid field selector {0:?}")]
    FieldRequirement(String),
    /// A field selector on a field the resource does not make selectable.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
    /// A label selector value that is not a valid label value (`a===b`).
    #[error("unable to parse requirement: values[0][{key}]: Invalid value: {value:?}: {why}")]
    LabelValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Why it is invalid.
        why: String,
    },
}

impl From<SelectorError> for ApiError {
    fn from(e: SelectorError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Req>);

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h` (also `==`).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let p = part.trim();
            if p.is_empty() {
                continue;
            }
            let req = if let Some(k) = p.strip_prefix('!') {
                Req::NotExists(key(k)?)
            } else if let Some((k, v)) = p.split_once("!=") {
                Req::NotEq(key(k)?, value(k, v)?)
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                Req::Eq(key(k)?, value(k, v)?)
            } else if let Some((k, set)) = split_set(p, " notin ") {
                Req::NotIn(key(k)?, set?)
            } else if let Some((k, set)) = split_set(p, " in ") {
                Req::In(key(k)?, set?)
            } else {
                Req::Exists(key(p)?)
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Whether labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => labels.get(k) == Some(v),
            Req::NotEq(k, v) => labels.get(k) != Some(v),
            Req::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Req::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Req::Exists(k) => labels.contains_key(k),
            Req::NotExists(k) => !labels.contains_key(k),
        })
    }

    /// The one value `key` must have, when the selector requires one (`key=v`, `key in (v)`).
    pub fn required_value(&self, key: &str) -> Option<&str> {
        self.0.iter().find_map(|r| match r {
            Req::Eq(k, v) if k == key => Some(v.as_str()),
            Req::In(k, vs) if k == key && vs.len() == 1 => Some(vs[0].as_str()),
            _ => None,
        })
    }

    /// Whether the object's labels match.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.0.is_empty() || self.matches(&labels_of(obj))
    }

    /// Whether a stored object's labels match.
    pub fn matches_meta(&self, meta: &crate::store::Meta) -> bool {
        self.matches(&meta.labels)
    }
}

/// The labels of an object.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn key(k: &str) -> Result<String, SelectorError> {
    let k = k.trim();
    if k.is_empty() || k.contains(char::is_whitespace) {
        Err(SelectorError::LabelKey(k.to_string()))
    } else {
        Ok(k.to_string())
    }
}

fn value(k: &str, v: &str) -> Result<String, SelectorError> {
    let v = v.trim();
    match crate::meta::invalid_label_value(v) {
        None => Ok(v.to_string()),
        Some(why) => Err(SelectorError::LabelValue {
            key: k.trim().to_string(),
            value: v.to_string(),
            why,
        }),
    }
}

fn split_set<'a>(p: &'a str, op: &str) -> Option<(&'a str, Result<Vec<String>, SelectorError>)> {
    let (k, rest) = p.split_once(op)?;
    let rest = rest.trim();
    let set = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .map(|inner| {
            inner
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect()
        })
        .ok_or_else(|| SelectorError::Set(rest.to_string()));
    Some((k, set))
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// The fields besides `metadata.name` and `metadata.namespace` a field selector may name
/// on the resource `group/plural`, as kube-apiserver's field label conversions allow.
pub fn selectable_fields(group: &str, plural: &str) -> &'static [&'static str] {
    match (group, plural) {
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        // `kubectl describe node` lists a node's Pods by these.
        ("", "pods") => &["spec.nodeName", "status.phase"],
        _ => &[],
    }
}

/// Every field [`selectable_fields`] names for some resource: the store keeps their values in
/// each object's [`Meta`](crate::store::Meta) so that selecting by them parses nothing.
pub const INDEXED_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "status.phase",
    "spec.nodeName",
];

/// The values of the [`INDEXED_FIELDS`] an object has (`source` is `source.component`, as
/// upstream).
pub fn indexed_fields(obj: &Value) -> BTreeMap<&'static str, String> {
    INDEXED_FIELDS
        .iter()
        .filter_map(|f| {
            let path = match *f {
                "source" => "/source/component".to_string(),
                other => format!("/{}", other.replace('.', "/")),
            };
            obj.pointer(&path)
                .and_then(Value::as_str)
                .map(|v| (*f, v.to_string()))
        })
        .collect()
}

/// A parsed field selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `metadata.name=x,metadata.namespace!=y` (only those two fields).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        Self::parse_for(s, &[])
    }

    /// Parses a selector over `metadata.name`, `metadata.namespace` and the `extra` fields.
    pub fn parse_for(s: &str, extra: &[&str]) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = p.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                (f, true, v)
            } else {
                return Err(SelectorError::FieldRequirement(p.to_string()));
            };
            let field = field.trim();
            if !matches!(field, "metadata.name" | "metadata.namespace") && !extra.contains(&field) {
                return Err(SelectorError::UnsupportedField(field.to_string()));
            }
            reqs.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    /// Whether a stored entry matches (selectable fields are indexed in its meta, so its JSON
    /// is never parsed).
    pub fn matches_entry(&self, e: &crate::store::Entry) -> bool {
        self.matches_meta(&e.meta)
    }

    /// Whether a stored object's meta matches.
    pub fn matches_meta(&self, meta: &crate::store::Meta) -> bool {
        self.0.iter().all(|(field, eq, value)| {
            let actual = match field.as_str() {
                "metadata.name" => meta.name.as_str(),
                "metadata.namespace" => meta.namespace.as_str(),
                other => meta.fields.get(other).map_or("", String::as_str),
            };
            (actual == value) == *eq
        })
    }

    /// Whether the object matches.
    pub fn matches_object(&self, obj: &Value) -> bool {
        let fields = indexed_fields(obj);
        self.0.iter().all(|(field, eq, value)| {
            let actual = match field.as_str() {
                "metadata.name" => obj.pointer("/metadata/name").and_then(Value::as_str),
                "metadata.namespace" => obj.pointer("/metadata/namespace").and_then(Value::as_str),
                other => fields.get(other).map(String::as_str),
            }
            .unwrap_or("");
            (actual == value) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn label_selectors_equality_and_set_based() {
        let obj = json!({"metadata": {"labels": {"env": "prod", "tier": "web"}}});
        let table = [
            ("", true),
            ("env=prod", true),
            ("env==prod", true),
            ("env!=prod", false),
            ("env in (prod, dev)", true),
            ("env notin (prod)", false),
            ("tier,env=prod", true),
            ("!tier", false),
            ("!missing", true),
            ("missing notin (x)", true),
            ("missing in (x)", false),
            ("env=prod,tier in (web),!x", true),
        ];
        for (sel, want) in table {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches_object(&obj),
                want,
                "{sel}"
            );
        }
        assert_eq!(
            LabelSelector::parse("env in prod"),
            Err(SelectorError::Set("prod".into()))
        );
        assert_eq!(
            LabelSelector::parse("env=prod,a b"),
            Err(SelectorError::LabelKey("a b".into()))
        );
        let e = LabelSelector::parse("a===b").unwrap_err();
        assert!(matches!(e, SelectorError::LabelValue { .. }), "{e}");
        assert!(e.to_string().contains("\"=b\""), "{e}");
    }

    #[test]
    fn field_selectors_on_kind_specific_fields() {
        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Failed", "type": "Warning", "source": {"component": "kubelet"}});
        let extra = selectable_fields("", "events");
        let sel = |s: &str| {
            FieldSelector::parse_for(s, extra)
                .unwrap()
                .matches_object(&ev)
        };
        assert!(sel("involvedObject.kind=Pod,involvedObject.name=p"));
        assert!(sel("reason=Failed,type=Warning,source=kubelet"));
        assert!(!sel("involvedObject.name=q"));
        assert!(
            sel("involvedObject.uid="),
            "a missing field is the empty string"
        );
        let e = FieldSelector::parse_for("reason=x", selectable_fields("", "configmaps"));
        assert_eq!(e, Err(SelectorError::UnsupportedField("reason".into())));
        assert!(FieldSelector::parse_for("type=Opaque", selectable_fields("", "secrets")).is_ok());
        assert!(
            FieldSelector::parse_for("status.phase=Active", selectable_fields("", "namespaces"))
                .is_ok()
        );
    }

    #[test]
    fn field_selectors_on_name_and_namespace() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns1"}});
        assert!(
            FieldSelector::parse("metadata.name=a")
                .unwrap()
                .matches_object(&obj)
        );
        assert!(
            !FieldSelector::parse("metadata.name=b")
                .unwrap()
                .matches_object(&obj)
        );
        assert!(
            FieldSelector::parse("metadata.namespace!=ns2,metadata.name==a")
                .unwrap()
                .matches_object(&obj)
        );
        let e = FieldSelector::parse("spec.x=1").unwrap_err();
        assert_eq!(e, SelectorError::UnsupportedField("spec.x".into()));
        assert!(e.to_string().contains("not supported"), "{e}");
        let e = ApiError::from(FieldSelector::parse("metadata.name").unwrap_err());
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "invalid field selector \"metadata.name\"")
        );
    }
}
