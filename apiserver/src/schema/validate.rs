//! The structural walk: type, nullability, enum, string, number, list and map bounds, and
//! required properties, checked node by node against the raw `openAPIV3Schema`.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, RwLock},
};

use serde_json::{Map, Value};

use super::{ErrorType, FieldError, child, flag};

/// Compiled `pattern`s, shared by every schema: compiling one per validated string showed
/// up in the scale profile. Bounded by the distinct patterns of the served CRDs.
type Compiled = Result<Arc<regex::Regex>, regex::Error>;

static PATTERNS: LazyLock<RwLock<HashMap<String, Compiled>>> = LazyLock::new(Default::default);

fn pattern(p: &str) -> Compiled {
    if let Some(r) = PATTERNS.read().unwrap_or_else(|e| e.into_inner()).get(p) {
        return r.clone();
    }
    let compiled = regex::Regex::new(p).map(Arc::new);
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
