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
//!
//! The walks live in `validate` (structure) and `prune` (unknown fields); this module owns
//! [`Schema`], the per-CRD-version compiled form the catalog caches, and CEL evaluation.

pub mod builtin;
mod error;
mod prune;
#[cfg(test)]
mod tests;
mod validate;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

pub use error::{ErrorType, FieldError};
pub use prune::{prune, unknown_fields};
pub use validate::validate;

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
        self.admit_pruned(obj, old).map(|(o, _)| o)
    }

    /// [`Schema::admit`], also returning the paths of the unknown fields it pruned.
    pub fn admit_pruned(
        &self,
        obj: &Value,
        old: Option<&Value>,
    ) -> Result<(Value, Vec<String>), Vec<FieldError>> {
        let mut obj = obj.clone();
        let pruned = prune(&self.json, &mut obj);
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
            Ok((obj, pruned))
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
