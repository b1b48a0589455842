//! Validation of custom objects against a CRD version's `openAPIV3Schema`, the way
//! kube-apiserver does it: structural checks (type, required, enum, pattern, lengths, bounds),
//! pruning of unknown fields, defaulting, and `x-kubernetes-validations` CEL rules (including
//! transition rules with `oldSelf`, evaluated only when an old object is given).
//!
//! Field errors are worded as kube-apiserver words them (`spec.replicas: Invalid value: -1:
//! spec.replicas in body should be greater than or equal to 0`), so a user reading slipway's
//! 422 sees what a real cluster would say.
//!
//! The root's `metadata` is not pruned or validated here: ObjectMeta has its own rules.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, LazyLock, RwLock},
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Map, Value};

/// What went wrong with one field (a subset of k8s.io/apimachinery `field.ErrorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    /// A required field is missing.
    Required,
    /// A value is malformed or out of bounds.
    Invalid,
    /// A value is not one of the allowed values.
    NotSupported,
    /// A string is too long.
    TooLong,
    /// A list or map has too many entries.
    TooMany,
    /// A field the schema does not know (reported in strict mode; otherwise pruned).
    Unknown,
    /// A change that is not allowed.
    Forbidden,
}

/// One field error.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.clusterNetwork.pods.cidrBlocks[0]`.
    pub field: String,
    /// Error type.
    pub error_type: ErrorType,
    /// Offending value, when there is one to show.
    pub bad_value: Option<Value>,
    /// Explanation.
    pub detail: String,
}

impl FieldError {
    fn new(field: &str, error_type: ErrorType, bad_value: Option<&Value>, detail: String) -> Self {
        Self {
            field: field.to_string(),
            error_type,
            bad_value: bad_value.cloned(),
            detail,
        }
    }

    /// kube-apiserver's reason string for the cause (`FieldValueRequired`, ...).
    pub fn reason(&self) -> &'static str {
        match self.error_type {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Unknown => "FieldValueInvalid",
            ErrorType::Forbidden => "FieldValueForbidden",
        }
    }

    /// The error without the field path, as kube-apiserver puts it in `details.causes[].message`.
    pub fn message(&self) -> String {
        let bad = self
            .bad_value
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default();
        match self.error_type {
            ErrorType::Required => "Required value".into(),
            ErrorType::Invalid => format!("Invalid value: {bad}: {}", self.detail),
            ErrorType::NotSupported => format!("Unsupported value: {bad}: {}", self.detail),
            ErrorType::TooLong => format!("Too long: {}", self.detail),
            ErrorType::TooMany => format!("Too many: {}", self.detail),
            ErrorType::Unknown => format!("unknown field \"{}\"", self.field),
            ErrorType::Forbidden => format!("Forbidden: {}", self.detail),
        }
    }

    /// A Forbidden error.
    pub fn forbidden(field: &str, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            error_type: ErrorType::Forbidden,
            bad_value: None,
            detail: detail.into(),
        }
    }

    /// An Invalid error.
    pub fn invalid(field: &str, bad_value: Value, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            error_type: ErrorType::Invalid,
            bad_value: Some(bad_value),
            detail: detail.into(),
        }
    }

    /// A Required error.
    pub fn required(field: &str) -> Self {
        Self {
            field: field.into(),
            error_type: ErrorType::Required,
            bad_value: None,
            detail: String::new(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error_type {
            ErrorType::Unknown => f.write_str(&self.message()),
            _ => write!(f, "{}: {}", self.field, self.message()),
        }
    }
}

/// The schema of `version` in `crd`, if that version exists and has one.
pub fn version_schema(crd: &CustomResourceDefinition, version: &str) -> Option<Value> {
    let v = crd.spec.versions.iter().find(|v| v.name == version)?;
    let schema = v.schema.as_ref()?.open_api_v3_schema.as_ref()?;
    serde_json::to_value(schema).ok()
}

/// A CRD version's schema made ready for admission once, when the CRD is served: the JSON
/// and its CEL rules compiled. Kinds without rules (all of slipway's own) skip the CEL walk.
#[derive(Debug)]
pub struct Schema {
    /// `openAPIV3Schema`.
    pub json: Value,
    /// The compiled `x-kubernetes-validations` rules; `None` when the schema has none.
    rules: Option<kube_cel::CompiledSchema>,
    /// Where the rules sit: the property paths whose values decide every rule.
    rule_paths: Vec<Vec<String>>,
}

impl Schema {
    /// Prepares `json` (compiles its CEL rules, if any).
    pub fn new(json: Value) -> Self {
        let rules = has_rules(&json).then(|| kube_cel::compile_schema(&json));
        let mut rule_paths = Vec::new();
        if rules.is_some() {
            collect_rule_paths(&json, &mut Vec::new(), &mut rule_paths);
        }
        Self {
            json,
            rules,
            rule_paths,
        }
    }

    /// Whether an update leaves every value a rule looks at as it was. Such rules are not
    /// evaluated again, as kube-apiserver's validation ratcheting leaves unchanged values
    /// alone: a status write does not re-run the spec's rules.
    fn rules_unchanged(&self, obj: &Value, old: Option<&Value>) -> bool {
        let Some(old) = old else { return false };
        fn at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
            path.iter().try_fold(v, |v, k| v.get(k))
        }
        self.rule_paths
            .iter()
            .all(|p| !p.is_empty() && at(obj, p) == at(old, p))
    }

    /// Full admission check of a custom object, in kube-apiserver's order: prune unknown
    /// fields, apply defaults, validate structure, then CEL rules (transition rules only when
    /// `old` is given). Returns the pruned, defaulted object, or every field error.
    pub fn admit(&self, obj: &Value, old: Option<&Value>) -> Result<Value, Vec<FieldError>> {
        let mut obj = obj.clone();
        prune(&self.json, &mut obj);
        let obj = kube_cel::apply_defaults(&self.json, &obj);
        let mut errors = validate(&self.json, &obj);
        if errors.is_empty()
            && let Some(rules) = &self.rules
            && !self.rules_unchanged(&obj, old)
            && let Err(errs) = kube_cel::validate_compiled(rules, &obj, old)
        {
            errors.extend(cel_errors(&obj, errs.as_slice()));
        }
        if errors.is_empty() {
            Ok(obj)
        } else {
            Err(errors)
        }
    }
}

/// The property paths of the nodes whose subtree holds every rule: a node with rules itself,
/// or a list, map or combinator holding rules somewhere below (compared whole).
fn collect_rule_paths(schema: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if schema.get("x-kubernetes-validations").is_some() {
        out.push(path.clone());
        return;
    }
    let opaque = [
        "items",
        "additionalProperties",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
    ];
    if opaque.iter().any(|k| schema.get(*k).is_some_and(has_rules)) {
        out.push(path.clone());
        return;
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, sub) in props {
            if has_rules(sub) {
                path.push(k.clone());
                collect_rule_paths(sub, path, out);
                path.pop();
            }
        }
    }
}

/// Whether any node of the schema carries `x-kubernetes-validations`.
fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k == "x-kubernetes-validations" || has_rules(v)),
        Value::Array(a) => a.iter().any(has_rules),
        _ => false,
    }
}

/// [`Schema::admit`] with a schema prepared for this one call.
pub fn admit(schema: &Value, obj: &Value, old: Option<&Value>) -> Result<Value, Vec<FieldError>> {
    Schema::new(schema.clone()).admit(obj, old)
}

/// Evaluates the `x-kubernetes-validations` rules of `schema` on `obj`.
pub fn validate_cel(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    match kube_cel::validate(schema, obj, old) {
        Ok(()) => Vec::new(),
        Err(errs) => cel_errors(obj, errs.as_slice()),
    }
}

fn cel_errors(obj: &Value, errs: &[kube_cel::ValidationError]) -> Vec<FieldError> {
    errs.iter()
        .map(|e| {
            let field = e.field_path.trim_start_matches('.').to_string();
            let bad = lookup(obj, &field).cloned().unwrap_or(Value::Null);
            let bad = if bad.is_object() || bad.is_array() {
                Value::String("object".into())
            } else {
                bad
            };
            FieldError {
                field,
                error_type: ErrorType::Invalid,
                bad_value: Some(bad),
                detail: e.message.clone(),
            }
        })
        .collect()
}

/// Compiled `pattern`s, shared by every schema: compiling one per validated string showed
/// up in the scale profile. Bounded by the distinct patterns of the served CRDs.
type Compiled = Result<Arc<regex::Regex>, String>;

static PATTERNS: LazyLock<RwLock<HashMap<String, Compiled>>> = LazyLock::new(Default::default);

fn pattern(p: &str) -> Compiled {
    if let Some(r) = PATTERNS.read().unwrap_or_else(|e| e.into_inner()).get(p) {
        return r.clone();
    }
    let compiled = regex::Regex::new(p)
        .map(Arc::new)
        .map_err(|e| e.to_string());
    PATTERNS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(p.to_string(), compiled.clone());
    compiled
}

/// Structural validation; returns every error found (empty when valid).
pub fn validate(schema: &Value, obj: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_node(schema, obj, "", true, &mut errors);
    errors
}

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

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn lookup<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(obj);
    }
    path.split('.').try_fold(obj, |v, k| {
        // An index such as `cidrBlocks[0]` addresses a list item.
        if let Some((name, rest)) = k.split_once('[') {
            let idx: usize = rest.trim_end_matches(']').parse().ok()?;
            v.get(name)?.get(idx)
        } else {
            v.get(k)
        }
    })
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
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

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(expected: &str, v: &Value) -> bool {
    match expected {
        "number" => v.is_number(),
        other => type_name(v) == other,
    }
}

fn validate_node(schema: &Value, v: &Value, path: &str, root: bool, errors: &mut Vec<FieldError>) {
    if v.is_null() {
        if !flag(schema, "nullable") && !root {
            let ty = schema
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("object");
            errors.push(FieldError::new(
                path,
                ErrorType::Invalid,
                Some(v),
                format!("{path} in body must be of type {ty}: \"null\""),
            ));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(type_ok("integer", v) || v.is_string()) {
            errors.push(FieldError::new(
                path,
                ErrorType::Invalid,
                Some(v),
                format!(
                    "{path} in body must be of type integer or string: \"{}\"",
                    type_name(v)
                ),
            ));
            return;
        }
    } else if let Some(ty) = schema.get("type").and_then(Value::as_str)
        && !type_ok(ty, v)
    {
        errors.push(FieldError::new(
            path,
            ErrorType::Invalid,
            Some(v),
            format!("{path} in body must be of type {ty}: \"{}\"", type_name(v)),
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        errors.push(FieldError::new(
            path,
            ErrorType::NotSupported,
            Some(v),
            format!("supported values: {}", list.join(", ")),
        ));
    }
    match v {
        Value::String(s) => validate_string(schema, s, v, path, errors),
        Value::Number(_) => validate_number(schema, v, path, errors),
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                errors.push(FieldError::new(
                    path,
                    ErrorType::TooMany,
                    None,
                    format!("{}: must have at most {max} items", items.len()),
                ));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                errors.push(FieldError::new(
                    path,
                    ErrorType::Invalid,
                    Some(v),
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_node(item_schema, item, &format!("{path}[{i}]"), false, errors);
                }
            }
        }
        Value::Object(map) => validate_object(schema, map, path, root, errors),
        _ => {}
    }
}

fn validate_string(schema: &Value, s: &str, v: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        errors.push(FieldError::new(
            path,
            ErrorType::TooLong,
            None,
            format!("may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        errors.push(FieldError::new(
            path,
            ErrorType::Invalid,
            Some(v),
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match self::pattern(pattern) {
            Ok(re) if !re.is_match(s) => {
                errors.push(FieldError::new(
                    path,
                    ErrorType::Invalid,
                    Some(v),
                    format!("{path} in body should match '{pattern}'"),
                ));
            }
            Ok(_) => {}
            Err(e) => errors.push(FieldError::new(
                path,
                ErrorType::Invalid,
                Some(v),
                format!("schema pattern '{pattern}' does not compile: {e}"),
            )),
        }
    }
}

fn validate_number(schema: &Value, v: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let n = v.as_f64().unwrap_or_default();
    let exclusive_min = flag(schema, "exclusiveMinimum");
    let exclusive_max = flag(schema, "exclusiveMaximum");
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && (n < min || (exclusive_min && n == min))
    {
        let op = if exclusive_min {
            "greater than"
        } else {
            "greater than or equal to"
        };
        errors.push(FieldError::new(
            path,
            ErrorType::Invalid,
            Some(v),
            format!("{path} in body should be {op} {}", fmt_num(min)),
        ));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && (n > max || (exclusive_max && n == max))
    {
        let op = if exclusive_max {
            "less than"
        } else {
            "less than or equal to"
        };
        errors.push(FieldError::new(
            path,
            ErrorType::Invalid,
            Some(v),
            format!("{path} in body should be {op} {}", fmt_num(max)),
        ));
    }
    if schema.get("format").and_then(Value::as_str) == Some("int32")
        && !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&n)
    {
        errors.push(FieldError::new(
            path,
            ErrorType::Invalid,
            Some(v),
            format!("{path} in body must be of type int32"),
        ));
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn validate_object(
    schema: &Value,
    map: &Map<String, Value>,
    path: &str,
    root: bool,
    errors: &mut Vec<FieldError>,
) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                errors.push(FieldError::new(
                    &child(path, name),
                    ErrorType::Required,
                    None,
                    String::new(),
                ));
            }
        }
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && map.len() as u64 > max
    {
        errors.push(FieldError::new(
            path,
            ErrorType::TooMany,
            None,
            format!("{}: must have at most {max} items", map.len()),
        ));
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, value) in map {
        if root && key == "metadata" {
            continue;
        }
        if let Some(sub) = props.and_then(|p| p.get(key)) {
            validate_node(sub, value, &child(path, key), false, errors);
        } else if let Some(sub) = additional {
            validate_node(sub, value, &format!("{path}[{key}]"), false, errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
                        "replicas": {"type": "integer", "format": "int32", "minimum": 0, "nullable": true},
                        "mode": {"type": "string", "enum": ["A", "B"]},
                        "surge": {"x-kubernetes-int-or-string": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "blob": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "items": {"type": "array", "maxItems": 2, "items": {
                            "type": "object", "properties": {"a": {"type": "string"}}
                        }},
                        "port": {"type": "integer", "default": 6443}
                    },
                    "x-kubernetes-validations": [
                        {"rule": "!has(self.replicas) || self.replicas != 7", "message": "seven is unlucky"},
                        {"rule": "self.name == oldSelf.name", "message": "name is immutable"}
                    ]
                }
            }
        })
    }

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn accepts_a_valid_object_and_keeps_every_known_field() {
        let obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "anything": 1},
            "spec": {"name": "abc", "replicas": null, "mode": "A", "surge": "25%", "labels": {"k": "v"},
                     "blob": {"free": {"form": true}}, "items": [{"a": "x"}]}});
        assert!(validate(&schema(), &obj).is_empty());
        assert!(unknown_fields(&schema(), &obj).is_empty());
    }

    #[test]
    fn reports_each_structural_error_in_kube_apiserver_words() {
        let obj = json!({"spec": {"name": "toolong", "replicas": -1, "mode": "C", "surge": true,
                                   "labels": {"k": 1}, "items": [{}, {}, {}]}});
        let got = messages(&validate(&schema(), &obj));
        let want = [
            "spec.name: Too long: may not be more than 5 bytes",
            "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
            "spec.mode: Unsupported value: \"C\": supported values: \"A\", \"B\"",
            "spec.surge: Invalid value: true: spec.surge in body must be of type integer or string: \"boolean\"",
            "spec.labels[k]: Invalid value: 1: spec.labels[k] in body must be of type string: \"integer\"",
            "spec.items: Too many: 3: must have at most 2 items",
        ];
        for w in want {
            assert!(got.iter().any(|g| g == w), "missing {w:?} in {got:#?}");
        }
        assert_eq!(got.len(), want.len(), "{got:#?}");
    }

    #[test]
    fn reports_missing_required_fields_and_pattern_mismatches() {
        let got = messages(&validate(&schema(), &json!({"spec": {}})));
        assert_eq!(got, vec!["spec.name: Required value"]);
        let got = messages(&validate(&schema(), &json!({"spec": {"name": "AB"}})));
        assert_eq!(
            got,
            vec!["spec.name: Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'"]
        );
    }

    #[test]
    fn prunes_unknown_fields_but_not_metadata_or_preserved_subtrees() {
        let mut obj = json!({"metadata": {"x": 1}, "extra": 1,
            "spec": {"name": "a", "typo": 2, "blob": {"keep": 3}, "items": [{"a": "b", "z": 4}]}});
        let pruned = prune(&schema(), &mut obj);
        assert_eq!(pruned, vec!["extra", "spec.items[0].z", "spec.typo"]);
        assert_eq!(
            obj,
            json!({"metadata": {"x": 1}, "spec": {"name": "a", "blob": {"keep": 3}, "items": [{"a": "b"}]}})
        );
    }

    #[test]
    fn admit_defaults_then_runs_cel_rules_including_transition_rules() {
        let admitted = admit(&schema(), &json!({"spec": {"name": "a"}}), None).unwrap();
        assert_eq!(admitted["spec"]["port"], 6443);

        let errs = admit(
            &schema(),
            &json!({"spec": {"name": "a", "replicas": 7}}),
            None,
        )
        .unwrap_err();
        assert_eq!(
            messages(&errs),
            vec!["spec: Invalid value: \"object\": seven is unlucky"]
        );

        let old = json!({"spec": {"name": "a"}});
        let errs = admit(&schema(), &json!({"spec": {"name": "b"}}), Some(&old)).unwrap_err();
        assert_eq!(
            messages(&errs),
            vec!["spec: Invalid value: \"object\": name is immutable"]
        );
        assert!(admit(&schema(), &json!({"spec": {"name": "a"}}), Some(&old)).is_ok());
    }

    #[test]
    fn rules_of_unchanged_values_are_ratcheted_and_changed_ones_run() {
        let schema = Schema::new(schema());
        assert_eq!(schema.rule_paths, vec![vec!["spec".to_string()]]);
        // Stored before the rule existed: unlucky, yet a write leaving spec alone passes.
        let old = json!({"spec": {"name": "a", "replicas": 7, "port": 6443}});
        let status_only = json!({"spec": {"name": "a", "replicas": 7}, "status": {"x": 1}});
        assert!(schema.admit(&status_only, Some(&old)).is_ok());
        let changed = json!({"spec": {"name": "a", "replicas": 7, "mode": "A"}});
        let errs = schema.admit(&changed, Some(&old)).unwrap_err();
        assert_eq!(
            messages(&errs),
            vec!["spec: Invalid value: \"object\": seven is unlucky"]
        );
        assert!(
            schema.admit(&status_only, None).is_err(),
            "a create always runs them"
        );
    }
}
