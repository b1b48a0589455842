//! The rules ConfigMaps and Secrets share for their data maps: key names, base64 of binary
//! values, and `immutable: true` (which freezes the data and itself).

use base64::Engine;
use serde_json::Value;

use crate::{catalog::Resource, error::ApiError, meta::meta_str, schema::FieldError};

const KEY_RULE: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// Why `key` is not a valid data key, if it is not.
fn invalid_key(key: &str) -> Option<String> {
    if key.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    if key == "." || key == ".." {
        return Some(format!("must not be '{key}'"));
    }
    let ok = !key.is_empty()
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    (!ok).then(|| KEY_RULE.to_string())
}

/// Checks the data maps `maps` of a ConfigMap or Secret: valid keys, base64 values in the
/// `binary` ones (a typed decode error, 400, as kube-apiserver's), and, when the stored
/// object is immutable, that neither the maps nor `immutable` change.
pub(super) fn check(
    res: &Resource,
    old: Option<&Value>,
    new: &Value,
    maps: &[&str],
    binary: &[&str],
) -> Result<(), ApiError> {
    let name = meta_str(new, "name").unwrap_or_default().to_string();
    let mut errors = Vec::new();
    for m in maps {
        for (k, v) in new.get(*m).and_then(Value::as_object).into_iter().flatten() {
            if let Some(why) = invalid_key(k) {
                errors.push(FieldError::invalid(
                    &format!("{m}[{k}]"),
                    Value::from(k.as_str()),
                    why,
                ));
            }
            if binary.contains(m)
                && let Some(s) = v.as_str()
                && let Err(e) = base64::engine::general_purpose::STANDARD.decode(s)
            {
                return Err(ApiError::bad_request(format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: {m}[{k}]: illegal base64 data: {e}",
                    kind = res.kind,
                    version = res.version,
                )));
            }
        }
    }
    if let Some(old) = old
        && old.get("immutable") == Some(&Value::Bool(true))
    {
        const WHY: &str = "field is immutable when `immutable` is set";
        for m in maps {
            if old.get(*m) != new.get(*m) {
                errors.push(FieldError::forbidden(m, WHY));
            }
        }
        if new.get("immutable") != Some(&Value::Bool(true)) {
            errors.push(FieldError::forbidden("immutable", WHY));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&res.kind, &res.group, &name, &errors))
    }
}
