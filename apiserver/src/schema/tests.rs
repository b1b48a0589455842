//! Structural validation, pruning, defaulting and CEL rules against one schema that
//! exercises each keyword.

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
