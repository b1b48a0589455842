//! Decoding of the protobuf bodies kubectl's typed `create` commands send for built-in kinds
//! (`kubectl create namespace|configmap|secret|serviceaccount`). Responses are always JSON,
//! which client-go accepts since it asks for `application/vnd.kubernetes.protobuf,application/json`.
//!
//! Wire format: the magic `k8s\0`, then a `runtime.Unknown {typeMeta = 1, raw = 2}` whose `raw`
//! is the object's message. Field numbers are those of k8s.io/api generated.proto. Only the
//! fields these commands set are decoded; any other kind is refused (415).

use base64::Engine;
use serde_json::{Map, Value, json};

/// Why a protobuf body could not be decoded; answered as 415 with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The body ends inside a varint.
    #[error("truncated varint")]
    TruncatedVarint,
    /// A varint is longer than 64 bits.
    #[error("varint too long")]
    VarintTooLong,
    /// A length-delimited field's length does not fit in memory.
    #[error("length overflow")]
    LengthOverflow,
    /// A length-delimited field runs past the end of its message.
    #[error("truncated field")]
    TruncatedField,
    /// A wire type this decoder does not know (groups, or garbage).
    #[error("unsupported wire type {0}")]
    UnsupportedWireType(u64),
    /// A string field is not UTF-8.
    #[error("invalid UTF-8 string")]
    InvalidUtf8,
    /// The body does not start with `k8s\0`.
    #[error("missing the k8s protobuf magic prefix")]
    MissingMagic,
    /// The `runtime.Unknown` envelope has no `raw` field.
    #[error("the protobuf envelope carries no object")]
    NoObject,
    /// The object's kind is not one decoded here.
    #[error(
        "protobuf bodies are decoded only for Namespace, ConfigMap, Secret, ServiceAccount, the RBAC kinds, TokenRequest and the self-reviews, not {0}; send JSON"
    )]
    UnsupportedKind(String),
}

pub(crate) enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, ProtoError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or(ProtoError::TruncatedVarint)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(ProtoError::VarintTooLong)
}

pub(crate) fn fields(buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, ProtoError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => out.push((field, Wire::Varint(varint(buf, &mut pos)?))),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?)
                    .map_err(|_| ProtoError::LengthOverflow)?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or(ProtoError::TruncatedField)?;
                out.push((field, Wire::Bytes(&buf[pos..end])));
                pos = end;
            }
            1 => pos += 8,
            5 => pos += 4,
            other => return Err(ProtoError::UnsupportedWireType(other)),
        }
    }
    Ok(out)
}

pub(crate) fn string(b: &[u8]) -> Result<String, ProtoError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtoError::InvalidUtf8)
}

/// A `map<string, string>` or `map<string, bytes>` entry.
pub(crate) fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ProtoError> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    for (f, w) in fields(b)? {
        match (f, w) {
            (1, Wire::Bytes(x)) => k = string(x)?,
            (2, Wire::Bytes(x)) if bytes_value => {
                v = json!(base64::engine::general_purpose::STANDARD.encode(x))
            }
            (2, Wire::Bytes(x)) => v = json!(string(x)?),
            _ => {}
        }
    }
    Ok((k, v))
}

pub(crate) fn object_meta(b: &[u8]) -> Result<Value, ProtoError> {
    let mut m = Map::new();
    let (mut labels, mut annotations, mut finalizers, mut owners) =
        (Map::new(), Map::new(), Vec::new(), Vec::new());
    for (f, w) in fields(b)? {
        match (f, w) {
            (1, Wire::Bytes(x)) => {
                m.insert("name".into(), json!(string(x)?));
            }
            (2, Wire::Bytes(x)) => {
                m.insert("generateName".into(), json!(string(x)?));
            }
            (3, Wire::Bytes(x)) => {
                m.insert("namespace".into(), json!(string(x)?));
            }
            (6, Wire::Bytes(x)) => {
                m.insert("resourceVersion".into(), json!(string(x)?));
            }
            (11, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                labels.insert(k, v);
            }
            (12, Wire::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                annotations.insert(k, v);
            }
            (13, Wire::Bytes(x)) => owners.push(owner_reference(x)?),
            (14, Wire::Bytes(x)) => finalizers.push(json!(string(x)?)),
            _ => {}
        }
    }
    for (k, v) in [
        ("labels", Value::Object(labels)),
        ("annotations", Value::Object(annotations)),
    ] {
        if v.as_object().is_some_and(|o| !o.is_empty()) {
            m.insert(k.into(), v);
        }
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    if !owners.is_empty() {
        m.insert("ownerReferences".into(), Value::Array(owners));
    }
    Ok(Value::Object(m))
}

fn owner_reference(b: &[u8]) -> Result<Value, ProtoError> {
    let mut r = Map::new();
    for (f, w) in fields(b)? {
        let (k, v) = match (f, w) {
            (1, Wire::Bytes(x)) => ("kind", json!(string(x)?)),
            (3, Wire::Bytes(x)) => ("name", json!(string(x)?)),
            (4, Wire::Bytes(x)) => ("uid", json!(string(x)?)),
            (5, Wire::Bytes(x)) => ("apiVersion", json!(string(x)?)),
            (6, Wire::Varint(x)) => ("controller", json!(x != 0)),
            (7, Wire::Varint(x)) => ("blockOwnerDeletion", json!(x != 0)),
            _ => continue,
        };
        r.insert(k.into(), v);
    }
    Ok(Value::Object(r))
}

/// Decodes a protobuf request body for a built-in kind into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let inner = body
        .strip_prefix(b"k8s\0")
        .ok_or(ProtoError::MissingMagic)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    for (f, w) in fields(inner)? {
        match (f, w) {
            (1, Wire::Bytes(tm)) => {
                for (tf, tw) in fields(tm)? {
                    match (tf, tw) {
                        (1, Wire::Bytes(x)) => api_version = string(x)?,
                        (2, Wire::Bytes(x)) => kind = string(x)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(x)) => raw = Some(x),
            _ => {}
        }
    }
    let raw = raw.ok_or(ProtoError::NoObject)?;
    if let Some(decoded) = crate::authz::proto::decode(&api_version, &kind, raw) {
        return decoded;
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    let (mut data, mut string_data) = (Map::new(), Map::new());
    for (f, w) in fields(raw)? {
        let Wire::Bytes(x) = w else {
            // immutable (ConfigMap 4, Secret 5), automountServiceAccountToken (ServiceAccount 4)
            if let (Wire::Varint(v), "ConfigMap", 4) | (Wire::Varint(v), "Secret", 5) =
                (&w, kind.as_str(), f)
            {
                obj.insert("immutable".into(), json!(*v != 0));
            } else if let (Wire::Varint(v), "ServiceAccount", 4) = (&w, kind.as_str(), f) {
                obj.insert("automountServiceAccountToken".into(), json!(*v != 0));
            }
            continue;
        };
        match (kind.as_str(), f) {
            (_, 1) => {
                obj.insert("metadata".into(), object_meta(x)?);
            }
            ("ConfigMap", 2) => {
                let (k, v) = map_entry(x, false)?;
                data.insert(k, v);
            }
            ("ConfigMap", 3) | ("Secret", 2) => {
                let (k, v) = map_entry(x, true)?;
                let target = if kind == "ConfigMap" {
                    "binaryData"
                } else {
                    "data"
                };
                obj.entry(target).or_insert_with(|| json!({}))[k] = v;
            }
            ("Secret", 3) => {
                obj.insert("type".into(), json!(string(x)?));
            }
            ("Secret", 4) => {
                let (k, v) = map_entry(x, false)?;
                string_data.insert(k, v);
            }
            ("Namespace", 2) => {
                let finalizers: Result<Vec<Value>, ProtoError> = fields(x)?
                    .into_iter()
                    .filter_map(|(ff, ww)| match (ff, ww) {
                        (1, Wire::Bytes(s)) => Some(string(s).map(Value::String)),
                        _ => None,
                    })
                    .collect();
                obj.insert("spec".into(), json!({"finalizers": finalizers?}));
            }
            ("Namespace" | "ServiceAccount", _) => {}
            (other, _) => {
                return Err(ProtoError::UnsupportedKind(other.to_string()));
            }
        }
    }
    if !data.is_empty() {
        obj.insert("data".into(), Value::Object(data));
    }
    if !string_data.is_empty() {
        obj.insert("stringData".into(), Value::Object(string_data));
    }
    if !matches!(
        kind.as_str(),
        "ConfigMap" | "Secret" | "Namespace" | "ServiceAccount"
    ) {
        return Err(ProtoError::UnsupportedKind(kind));
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

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        [field(1, k.as_bytes()), field(2, v)].concat()
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let tm = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
        [b"k8s\0".to_vec(), field(1, &tm), field(2, raw)].concat()
    }

    #[test]
    fn decodes_a_configmap_and_a_secret_as_kubectl_create_sends_them() {
        let meta = [field(1, b"settings"), field(11, &entry("app", b"web"))].concat();
        let cm = [field(1, &meta), field(2, &entry("mode", b"fast"))].concat();
        let v = decode(&envelope("v1", "ConfigMap", &cm)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "labels": {"app": "web"}}, "data": {"mode": "fast"}})
        );
        let secret = [
            field(1, &field(1, b"creds")),
            field(2, &entry("key", b"s3cr3t")),
            field(3, b"Opaque"),
        ]
        .concat();
        let v = decode(&envelope("v1", "Secret", &secret)).unwrap();
        assert_eq!(v["data"]["key"], "czNjcjN0");
        assert_eq!(v["type"], "Opaque");
    }

    #[test]
    fn refuses_other_kinds_and_garbage() {
        let pod = field(1, &field(1, b"p"));
        let e = decode(&envelope("v1", "Pod", &pod)).unwrap_err();
        assert_eq!(e, ProtoError::UnsupportedKind("Pod".into()));
        assert!(e.to_string().contains("not Pod"), "{e}");
        assert_eq!(decode(b"not protobuf"), Err(ProtoError::MissingMagic));
        assert_eq!(
            decode(b"k8s\0\x12\x7f"),
            Err(ProtoError::TruncatedField),
            "a truncated field is an error, not a panic"
        );
    }
}
