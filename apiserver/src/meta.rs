//! Small helpers over object metadata: times, uids, generated names, name validation.

use rand::Rng;
use serde_json::Value;

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A random RFC 4122 version-4 UUID.
pub fn uid() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The 5-character suffix `generateName` gets (kube-apiserver's alphabet).
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// `metadata.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Sets `metadata.finalizers` (removing the field when empty).
pub fn set_finalizers(obj: &mut Value, f: &[String]) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if f.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), Value::from(f.to_vec()));
        }
    }
}

/// Whether the object is being deleted.
pub fn deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// Why `name` is not a DNS-1123 subdomain (as kube-apiserver words it), if it is not one.
/// Checked by hand rather than by regex: it runs on every write, and a compiled regex per
/// call showed up in the scale profile.
pub fn invalid_subdomain(name: &str) -> Option<String> {
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    // Dot-separated labels of [a-z0-9-], each starting and ending with [a-z0-9].
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (!name.split('.').all(label_ok)).then(|| {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into()
    })
}

/// Why `name` is not a valid path segment name (the rule for RBAC objects), if it is not.
pub fn invalid_path_segment(name: &str) -> Option<String> {
    if name == "." || name == ".." {
        return Some(format!("may not be '{name}'"));
    }
    ["/", "%"]
        .iter()
        .find(|c| name.contains(**c))
        .map(|c| format!("may not contain '{c}'"))
}

/// Why `name` is not a DNS-1123 label, if it is not one.
pub fn invalid_label(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    (!ok).then(|| "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into())
}

const NAME_PART_RULE: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn name_part_ok(s: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.bytes()
            .all(|c| alnum(c) || c == b'-' || c == b'_' || c == b'.')
        && alnum(s.as_bytes()[0])
        && alnum(s.as_bytes()[s.len() - 1])
}

/// Why `key` is not a qualified name (`[prefix/]name`, the rule for label and annotation keys
/// and finalizer names), worded as kube-apiserver's `IsQualifiedName`, if it is not one.
pub fn invalid_qualified_name(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if name.contains('/') {
        return Some(format!(
            "a qualified name {NAME_PART_RULE} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ));
    }
    if let Some(p) = prefix {
        if p.is_empty() {
            return Some("prefix part must be non-empty".into());
        }
        if let Some(why) = invalid_subdomain(p) {
            return Some(format!("prefix part {why}"));
        }
    }
    if name.is_empty() {
        return Some("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    (!name_part_ok(name)).then(|| NAME_PART_RULE.to_string())
}

/// Why `v` is not a valid label value, worded as kube-apiserver, if it is not one.
pub fn invalid_label_value(v: &str) -> Option<String> {
    if v.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    (!v.is_empty() && !name_part_ok(v)).then(|| "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into())
}

/// The total size annotations may have (kube-apiserver's `TotalAnnotationSizeLimitB`).
pub const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// The metadata rules kube-apiserver checks on every object of every kind: label keys and
/// values, annotation keys and their total size, finalizer names.
pub fn metadata_errors(obj: &Value) -> Vec<crate::schema::FieldError> {
    use crate::schema::FieldError;
    let mut errors = Vec::new();
    let m = &obj["metadata"];
    if let Some(labels) = m.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(why) = invalid_qualified_name(k) {
                errors.push(FieldError::invalid(
                    "metadata.labels",
                    Value::from(k.as_str()),
                    why,
                ));
            }
            match v.as_str() {
                Some(s) => {
                    if let Some(why) = invalid_label_value(s) {
                        errors.push(FieldError::invalid("metadata.labels", v.clone(), why));
                    }
                }
                None => errors.push(FieldError::invalid(
                    &format!("metadata.labels[{k}]"),
                    v.clone(),
                    "must be a string",
                )),
            }
        }
    }
    if let Some(annotations) = m.get("annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in annotations {
            total += k.len() + v.as_str().map_or(0, str::len);
            if let Some(why) = invalid_qualified_name(&k.to_lowercase()) {
                errors.push(FieldError::invalid(
                    "metadata.annotations",
                    Value::from(k.as_str()),
                    why,
                ));
            }
            if !v.is_string() {
                errors.push(FieldError::invalid(
                    &format!("metadata.annotations[{k}]"),
                    v.clone(),
                    "must be a string",
                ));
            }
        }
        if total > ANNOTATIONS_MAX_BYTES {
            errors.push(FieldError::too_long(
                "metadata.annotations",
                format!("must have at most {ANNOTATIONS_MAX_BYTES} bytes"),
            ));
        }
    }
    if let Some(fins) = m.get("finalizers").and_then(Value::as_array) {
        for (i, f) in fins.iter().enumerate() {
            let field = format!("metadata.finalizers[{i}]");
            match f.as_str() {
                Some(s) => {
                    if let Some(why) = invalid_qualified_name(s) {
                        errors.push(FieldError::invalid(&field, f.clone(), why));
                    }
                }
                None => errors.push(FieldError::invalid(&field, f.clone(), "must be a string")),
            }
        }
        let has = |n: &str| fins.iter().any(|f| f == n);
        if has("orphan") && has("foregroundDeletion") {
            errors.push(FieldError::invalid(
                "metadata.finalizers",
                Value::from("foregroundDeletion"),
                "finalizer foregroundDeletion and orphan cannot be both set",
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_and_suffixes_have_kubernetes_shapes() {
        let u = uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(uid(), u);
        let s = name_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert!(now().ends_with('Z') && now().len() == 20);
    }

    #[test]
    fn name_rules() {
        assert!(invalid_subdomain("demo.example-1").is_none());
        assert!(invalid_subdomain("Demo").is_some());
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "-a",
            "a-",
            "a.-b",
            "a_b",
            &"a".repeat(254),
        ] {
            assert!(
                invalid_subdomain(bad).is_some(),
                "{bad:?} is not a subdomain"
            );
        }
        for good in ["a", "0", "a-b.c0.d", &"a".repeat(253)] {
            assert!(invalid_subdomain(good).is_none(), "{good:?} is a subdomain");
        }
        assert!(invalid_label("a.b").is_some());
        assert!(invalid_label("kube-system").is_none());
    }

    #[test]
    fn qualified_names_and_label_values() {
        for good in [
            "a",
            "A_b.c-1",
            "example.com/x",
            "cluster.x-k8s.io/cluster-name",
        ] {
            assert!(invalid_qualified_name(good).is_none(), "{good:?}");
        }
        for bad in [
            "has space",
            "-k",
            "",
            "a/",
            "/a",
            "Ex.com/a",
            "a/b/c",
            &"a".repeat(64),
        ] {
            assert!(invalid_qualified_name(bad).is_some(), "{bad:?}");
        }
        assert!(invalid_label_value("").is_none());
        assert!(invalid_label_value("v1.2_x").is_none());
        for bad in ["-k", "has space", "=b", &"a".repeat(64)] {
            assert!(invalid_label_value(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn metadata_rules_report_every_bad_entry() {
        let obj = serde_json::json!({"metadata": {
            "labels": {"has space": "v", "ok": "-k", "fine": "yes"},
            "annotations": {"-bad": "x", "example.com/good": "y"},
            "finalizers": ["example.com/f", "bad finalizer"],
        }});
        let errs = metadata_errors(&obj);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.labels",
                "metadata.labels",
                "metadata.annotations",
                "metadata.finalizers[1]"
            ],
            "{errs:?}"
        );
        assert!(errs[0].to_string().contains("\"has space\""), "{}", errs[0]);
    }
}
