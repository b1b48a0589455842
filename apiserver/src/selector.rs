//! Label selectors (equality and set-based) and the field selectors the server supports
//! (`metadata.name`, `metadata.namespace`).

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
    /// A field selector on a field other than `metadata.name` and `metadata.namespace`.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
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
                Req::NotEq(key(k)?, v.trim().into())
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                Req::Eq(key(k)?, v.trim().into())
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

/// Fields beyond name and namespace that kube-apiserver lets kubectl select on (Pods by node
/// and phase for `describe node`, Events by their object for `describe`).
const OBJECT_FIELDS: [&str; 10] = [
    "spec.nodeName",
    "status.phase",
    "involvedObject.kind",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.fieldPath",
    "reason",
    "type",
];

/// A parsed field selector over `metadata.name`, `metadata.namespace` and [`OBJECT_FIELDS`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `metadata.name=x,metadata.namespace!=y`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = p.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                (f, true, v)
            } else {
                return Err(SelectorError::FieldRequirement(p.to_string()));
            };
            if !matches!(field.trim(), "metadata.name" | "metadata.namespace")
                && !OBJECT_FIELDS.contains(&field.trim())
            {
                return Err(SelectorError::UnsupportedField(field.trim().to_string()));
            }
            reqs.push((field.trim().to_string(), eq, value.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    /// Whether a stored entry matches (its JSON is read only when a field other than name and
    /// namespace is selected).
    pub fn matches_entry(&self, e: &crate::store::Entry) -> bool {
        if self.0.iter().all(|(f, _, _)| f.starts_with("metadata.")) {
            return self.matches_meta(&e.meta);
        }
        serde_json::from_slice::<Value>(&e.raw).is_ok_and(|obj| self.matches_object(&obj))
    }

    /// Whether a stored object matches on name and namespace (other fields: see
    /// [`FieldSelector::matches_entry`]).
    pub fn matches_meta(&self, meta: &crate::store::Meta) -> bool {
        self.0
            .iter()
            .filter(|(f, _, _)| f.starts_with("metadata."))
            .all(|(field, eq, value)| {
                let actual = if field == "metadata.name" {
                    &meta.name
                } else {
                    &meta.namespace
                };
                (actual == value) == *eq
            })
    }

    /// Whether the object matches.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, value)| {
            let path = format!("/{}", field.replace('.', "/"));
            let actual = obj.pointer(&path).and_then(Value::as_str).unwrap_or("");
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
