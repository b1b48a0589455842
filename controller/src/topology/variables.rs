//! ClusterClass variables: the values a topology Cluster sets, checked against the class's
//! OpenAPI schemas with the same engine the embedded plane admits objects with (defaults,
//! structural validation, CEL rules), `required` enforced, and the builtin variables.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use slipway_api::{Cluster, cluster::ClusterVariable, clusterclass::ClusterClassVariable};

/// Resolved variable values by name (user variables only; builtins are added per target).
pub type Values = BTreeMap<String, Value>;

/// Checks the schema of every variable definition (it must be an object schema the engine can
/// use, and its default must satisfy it). Err names the variable and what is wrong.
pub fn check_definitions(defs: &[ClusterClassVariable]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for d in defs {
        if !seen.insert(d.name.as_str()) {
            return Err(format!("variable {:?} is defined more than once", d.name));
        }
        let schema = &d.schema.open_api_v3_schema;
        if !schema.is_object() || schema.get("type").is_none() {
            return Err(format!(
                "variable {:?}: schema.openAPIV3Schema must be an object schema with a type",
                d.name
            ));
        }
        if let Some(default) = schema.get("default") {
            validate(&d.name, schema, default)?;
        }
    }
    Ok(())
}

/// Validates and defaults one value against its schema; Err names the variable and the field.
pub fn validate(name: &str, schema: &Value, value: &Value) -> Result<Value, String> {
    // The engine admits objects: wrap the value in a one-property object so scalars, lists
    // and objects go through the same defaulting, validation and CEL rules.
    let wrapper = json!({"type": "object", "properties": {"value": schema}});
    let admitted = slipway_apiserver::schema::admit(&wrapper, &json!({ "value": value }), None)
        .map_err(|errs| {
            let causes: Vec<String> = errs
                .iter()
                .map(|e| {
                    let field = e.field.strip_prefix("value").unwrap_or(&e.field);
                    format!("{name}{field}: {}", e.message())
                })
                .collect();
            format!("variable {name:?} is invalid: {}", causes.join("; "))
        })?;
    Ok(admitted.get("value").cloned().unwrap_or(Value::Null))
}

/// The value of every defined variable: given values validated, defaults applied to missing
/// ones, `required` enforced, unknown names refused. `overrides` (a control plane's or a
/// MachineDeployment's) replace the Cluster's values.
pub fn resolve(
    defs: &[ClusterClassVariable],
    given: &[ClusterVariable],
    overrides: &[ClusterVariable],
    at: &str,
) -> Result<Values, String> {
    let mut out = Values::new();
    for v in given.iter().chain(overrides) {
        if !defs.iter().any(|d| d.name == v.name) {
            return Err(format!(
                "{at}: variable {:?} is not defined by the ClusterClass",
                v.name
            ));
        }
    }
    for d in defs {
        let value = overrides
            .iter()
            .rev()
            .chain(given.iter().rev())
            .find(|v| v.name == d.name)
            .map(|v| v.value.clone());
        let schema = &d.schema.open_api_v3_schema;
        let value = match value {
            Some(v) => Some(v),
            None => schema.get("default").cloned(),
        };
        match value {
            Some(v) => {
                let v = validate(&d.name, schema, &v).map_err(|e| format!("{at}: {e}"))?;
                out.insert(d.name.clone(), v);
            }
            None if d.required.unwrap_or(false) => {
                return Err(format!(
                    "{at}: variable {:?} is required by the ClusterClass and not set",
                    d.name
                ));
            }
            None => {}
        }
    }
    Ok(out)
}

/// `builtin.cluster`: what every patch sees of the Cluster.
pub fn builtin_cluster(cluster: &Cluster, class_namespace: &str) -> Value {
    let topo = cluster.spec.topology.clone().unwrap_or_default();
    let mut c = Map::new();
    c.insert("name".into(), json!(cluster.metadata.name));
    c.insert("namespace".into(), json!(cluster.metadata.namespace));
    c.insert("uid".into(), json!(cluster.metadata.uid));
    c.insert(
        "metadata".into(),
        json!({"labels": cluster.metadata.labels, "annotations": cluster.metadata.annotations}),
    );
    c.insert(
        "topology".into(),
        json!({"version": topo.version, "class": topo.class_ref.name, "classNamespace": class_namespace}),
    );
    if let Some(n) = &cluster.spec.cluster_network {
        let mut net = Map::new();
        if let Some(d) = &n.service_domain {
            net.insert("serviceDomain".into(), json!(d));
        }
        if let Some(s) = &n.services {
            net.insert("services".into(), json!(s.cidr_blocks));
        }
        if let Some(p) = &n.pods {
            net.insert("pods".into(), json!(p.cidr_blocks));
        }
        c.insert("network".into(), Value::Object(net));
    }
    Value::Object(c)
}

/// The template data of a patch: user values, plus `builtin` (cluster and, per target,
/// controlPlane or machineDeployment).
pub fn data(values: &Values, builtin: Value) -> Value {
    let mut m: Map<String, Value> = values.clone().into_iter().collect();
    m.insert("builtin".into(), builtin);
    Value::Object(m)
}

/// Looks up `a.b.c` in the template data (a variable or a field of one); Err names it.
pub fn lookup(data: &Value, path: &str) -> Result<Value, String> {
    let mut cur = data;
    for part in path.split('.') {
        cur = cur
            .get(part)
            .ok_or_else(|| format!("variable {path:?} is not set"))?;
    }
    Ok(cur.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_api::clusterclass::VariableSchema;

    fn def(name: &str, required: bool, schema: Value) -> ClusterClassVariable {
        ClusterClassVariable {
            name: name.into(),
            required: Some(required),
            schema: VariableSchema {
                open_api_v3_schema: schema,
            },
            ..Default::default()
        }
    }

    fn val(name: &str, v: Value) -> ClusterVariable {
        ClusterVariable {
            name: name.into(),
            value: v,
        }
    }

    fn defs() -> Vec<ClusterClassVariable> {
        vec![
            def(
                "imageRepository",
                false,
                json!({"type": "string", "default": "registry.k8s.io", "maxLength": 40}),
            ),
            def(
                "replicasHint",
                true,
                json!({"type": "integer", "minimum": 1}),
            ),
            def(
                "httpProxy",
                false,
                json!({"type": "object", "properties": {
                    "enabled": {"type": "boolean", "default": false},
                    "url": {"type": "string", "pattern": "^https?://"}}}),
            ),
        ]
    }

    #[test]
    fn defaults_required_overrides_and_validation() {
        let d = defs();
        let got = resolve(&d, &[val("replicasHint", json!(3))], &[], "cluster").unwrap();
        assert_eq!(got["imageRepository"], json!("registry.k8s.io"));
        assert_eq!(got["replicasHint"], json!(3));
        assert!(!got.contains_key("httpProxy"));

        // Nested defaults apply inside a given object.
        let got = resolve(
            &d,
            &[
                val("replicasHint", json!(3)),
                val("httpProxy", json!({"url": "http://p"})),
            ],
            &[val("replicasHint", json!(5))],
            "md-0",
        )
        .unwrap();
        assert_eq!(
            got["httpProxy"],
            json!({"url": "http://p", "enabled": false})
        );
        assert_eq!(got["replicasHint"], json!(5), "override wins");

        let cases: Vec<(Vec<ClusterVariable>, &str)> = vec![
            (vec![], "\"replicasHint\" is required"),
            (
                vec![val("replicasHint", json!(0))],
                "variable \"replicasHint\" is invalid",
            ),
            (vec![val("replicasHint", json!("three"))], "replicasHint"),
            (
                vec![
                    val("replicasHint", json!(1)),
                    val("httpProxy", json!({"url": "ftp://x"})),
                ],
                "httpProxy.url",
            ),
            (
                vec![val("replicasHint", json!(1)), val("nope", json!(1))],
                "\"nope\" is not defined",
            ),
        ];
        for (given, want) in cases {
            let e = resolve(&d, &given, &[], "cluster").unwrap_err();
            assert!(e.contains(want), "{given:?}: {e}");
        }
    }

    #[test]
    fn definitions_are_checked() {
        assert!(check_definitions(&defs()).is_ok());
        let bad = vec![def("x", false, json!({"type": "integer", "default": "a"}))];
        let e = check_definitions(&bad).unwrap_err();
        assert!(e.contains("\"x\""), "{e}");
        let untyped = vec![def("y", false, json!({}))];
        assert!(check_definitions(&untyped).unwrap_err().contains("\"y\""));
    }

    #[test]
    fn lookup_dotted_paths() {
        let data = data(
            &Values::from([("httpProxy".into(), json!({"url": "u"}))]),
            json!({"cluster": {"name": "c"}}),
        );
        assert_eq!(lookup(&data, "httpProxy.url").unwrap(), json!("u"));
        assert_eq!(lookup(&data, "builtin.cluster.name").unwrap(), json!("c"));
        assert!(lookup(&data, "nope.x").unwrap_err().contains("nope.x"));
    }
}
