//! Protobuf bodies of the kinds this module serves, as kubectl's typed commands send them
//! (`kubectl create role|clusterrole|rolebinding|clusterrolebinding|token`, `kubectl auth
//! can-i|whoami`). Field numbers are those of k8s.io/api's generated.proto for rbac/v1,
//! authentication/v1 and authorization/v1; the envelope is [`crate::proto`]'s.

use serde_json::{Map, Value, json};

use crate::proto::{ProtoError, Wire, fields, map_entry, object_meta, string};

type Fields<'a> = Vec<(u64, Wire<'a>)>;

fn strings(fs: &Fields<'_>, n: u64) -> Result<Vec<Value>, ProtoError> {
    fs.iter()
        .filter_map(|(f, w)| match (f, w) {
            (f, Wire::Bytes(x)) if *f == n => Some(string(x).map(Value::String)),
            _ => None,
        })
        .collect()
}

fn one_string(fs: &Fields<'_>, n: u64) -> Result<Option<Value>, ProtoError> {
    Ok(strings(fs, n)?.pop())
}

fn messages<'a>(fs: &Fields<'a>, n: u64) -> Vec<&'a [u8]> {
    fs.iter()
        .filter_map(|(f, w)| match (f, w) {
            (f, Wire::Bytes(x)) if *f == n => Some(*x),
            _ => None,
        })
        .collect()
}

/// An object from (JSON key, field number) pairs of string fields.
fn string_fields(b: &[u8], names: &[(&str, u64)]) -> Result<Value, ProtoError> {
    let fs = fields(b)?;
    let mut m = Map::new();
    for (k, n) in names {
        if let Some(v) = one_string(&fs, *n)? {
            m.insert((*k).into(), v);
        }
    }
    Ok(Value::Object(m))
}

fn rule(b: &[u8]) -> Result<Value, ProtoError> {
    let fs = fields(b)?;
    let mut m = Map::new();
    for (k, n) in [
        ("verbs", 1),
        ("apiGroups", 2),
        ("resources", 3),
        ("resourceNames", 4),
        ("nonResourceURLs", 5),
    ] {
        let v = strings(&fs, n)?;
        if !v.is_empty() || k == "verbs" {
            m.insert(k.into(), Value::Array(v));
        }
    }
    Ok(Value::Object(m))
}

fn label_selector(b: &[u8]) -> Result<Value, ProtoError> {
    let fs = fields(b)?;
    let mut labels = Map::new();
    for x in messages(&fs, 1) {
        let (k, v) = map_entry(x, false)?;
        labels.insert(k, v);
    }
    let exprs: Result<Vec<Value>, ProtoError> = messages(&fs, 2)
        .into_iter()
        .map(|x| {
            let e = fields(x)?;
            Ok(json!({"key": one_string(&e, 1)?, "operator": one_string(&e, 2)?, "values": strings(&e, 3)?}))
        })
        .collect();
    let mut m = Map::new();
    if !labels.is_empty() {
        m.insert("matchLabels".into(), Value::Object(labels));
    }
    let exprs = exprs?;
    if !exprs.is_empty() {
        m.insert("matchExpressions".into(), Value::Array(exprs));
    }
    Ok(Value::Object(m))
}

fn int(fs: &Fields<'_>, n: u64) -> Option<i64> {
    fs.iter().find_map(|(f, w)| match (f, w) {
        (f, Wire::Varint(v)) if *f == n => i64::try_from(*v).ok(),
        _ => None,
    })
}

/// The JSON form of a protobuf `raw` object of `kind`, or `None` for kinds not decoded here.
pub fn decode(api_version: &str, kind: &str, raw: &[u8]) -> Option<Result<Value, ProtoError>> {
    let known = matches!(
        kind,
        "Role"
            | "ClusterRole"
            | "RoleBinding"
            | "ClusterRoleBinding"
            | "TokenRequest"
            | "SelfSubjectAccessReview"
            | "SelfSubjectRulesReview"
            | "SelfSubjectReview"
    );
    known.then(|| decode_known(api_version, kind, raw))
}

fn decode_known(api_version: &str, kind: &str, raw: &[u8]) -> Result<Value, ProtoError> {
    let fs = fields(raw)?;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    if let Some(m) = messages(&fs, 1).first() {
        obj.insert("metadata".into(), object_meta(m)?);
    }
    match kind {
        "Role" | "ClusterRole" => {
            let rules: Result<Vec<Value>, ProtoError> =
                messages(&fs, 2).into_iter().map(rule).collect();
            obj.insert("rules".into(), Value::Array(rules?));
            if let Some(agg) = messages(&fs, 3).first() {
                let selectors: Result<Vec<Value>, ProtoError> = messages(&fields(agg)?, 1)
                    .into_iter()
                    .map(label_selector)
                    .collect();
                obj.insert(
                    "aggregationRule".into(),
                    json!({"clusterRoleSelectors": selectors?}),
                );
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let subjects: Result<Vec<Value>, ProtoError> = messages(&fs, 2)
                .into_iter()
                .map(|s| {
                    string_fields(
                        s,
                        &[("kind", 1), ("apiGroup", 2), ("name", 3), ("namespace", 4)],
                    )
                })
                .collect();
            obj.insert("subjects".into(), Value::Array(subjects?));
            if let Some(r) = messages(&fs, 3).first() {
                obj.insert(
                    "roleRef".into(),
                    string_fields(r, &[("apiGroup", 1), ("kind", 2), ("name", 3)])?,
                );
            }
        }
        "TokenRequest" => {
            if let Some(spec) = messages(&fs, 2).first() {
                let sf = fields(spec)?;
                let mut s = Map::new();
                s.insert("audiences".into(), Value::Array(strings(&sf, 1)?));
                if let Some(e) = int(&sf, 4) {
                    s.insert("expirationSeconds".into(), json!(e));
                }
                if let Some(b) = messages(&sf, 3).first() {
                    s.insert(
                        "boundObjectRef".into(),
                        string_fields(
                            b,
                            &[("kind", 1), ("apiVersion", 2), ("name", 3), ("uid", 4)],
                        )?,
                    );
                }
                obj.insert("spec".into(), Value::Object(s));
            }
        }
        "SelfSubjectAccessReview" => {
            let mut s = Map::new();
            if let Some(spec) = messages(&fs, 2).first() {
                let sf = fields(spec)?;
                if let Some(r) = messages(&sf, 1).first() {
                    s.insert(
                        "resourceAttributes".into(),
                        string_fields(
                            r,
                            &[
                                ("namespace", 1),
                                ("verb", 2),
                                ("group", 3),
                                ("version", 4),
                                ("resource", 5),
                                ("subresource", 6),
                                ("name", 7),
                            ],
                        )?,
                    );
                }
                if let Some(n) = messages(&sf, 2).first() {
                    s.insert(
                        "nonResourceAttributes".into(),
                        string_fields(n, &[("path", 1), ("verb", 2)])?,
                    );
                }
            }
            obj.insert("spec".into(), Value::Object(s));
        }
        "SelfSubjectRulesReview" => {
            let spec = match messages(&fs, 2).first() {
                Some(spec) => string_fields(spec, &[("namespace", 1)])?,
                None => json!({}),
            };
            obj.insert("spec".into(), spec);
        }
        _ => {}
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let tm = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
        [b"k8s\0".to_vec(), field(1, &tm), field(2, raw)].concat()
    }

    #[test]
    fn decodes_roles_bindings_and_token_requests_as_kubectl_sends_them() {
        let rule = [field(1, b"get"), field(2, b""), field(3, b"configmaps")].concat();
        let role = [field(1, &field(1, b"r")), field(2, &rule)].concat();
        let v =
            crate::proto::decode(&envelope("rbac.authorization.k8s.io/v1", "Role", &role)).unwrap();
        assert_eq!(
            v["rules"],
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}])
        );
        let subject = [field(1, b"User"), field(3, b"carol")].concat();
        let role_ref = [field(2, b"ClusterRole"), field(3, b"view")].concat();
        let rb = [
            field(1, &field(1, b"b")),
            field(2, &subject),
            field(3, &role_ref),
        ]
        .concat();
        let v = crate::proto::decode(&envelope(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            &rb,
        ))
        .unwrap();
        assert_eq!(v["subjects"], json!([{"kind": "User", "name": "carol"}]));
        assert_eq!(v["roleRef"], json!({"kind": "ClusterRole", "name": "view"}));
        // expirationSeconds (field 4, varint) = 600.
        let spec = [field(1, b"aud"), vec![4 << 3, 0xd8, 0x04]].concat();
        let tr = [field(1, &field(1, b"bot")), field(2, &spec)].concat();
        let v = crate::proto::decode(&envelope("authentication.k8s.io/v1", "TokenRequest", &tr))
            .unwrap();
        assert_eq!(
            v["spec"],
            json!({"audiences": ["aud"], "expirationSeconds": 600})
        );
    }
}
