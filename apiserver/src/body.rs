//! Request bodies: the size kube-apiserver accepts, and the duplicate keys of a JSON body
//! (which a parse into a map silently collapses to the last).

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The largest request body accepted (kube-apiserver's `MaxRequestBodyBytes`); larger ones
/// get 413.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// How much of a too-large body is read (and dropped) before answering 413: a client that
/// sent it whole then reads the answer (an HTTP/2 stream reset before the body is read makes
/// curl report a framing error instead of the 413), while a client streaming without end is
/// cut off.
const DRAIN_BYTES: usize = 64 * 1024 * 1024;

/// Reads a request body of at most [`MAX_BODY_BYTES`]; a larger one is 413
/// RequestEntityTooLarge, worded as kube-apiserver's.
pub async fn read<B>(mut body: B) -> Result<bytes::Bytes, crate::error::ApiError>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    use http_body_util::BodyExt;
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| crate::error::ApiError::bad_request(format!("reading the body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len();
        if total <= MAX_BODY_BYTES {
            buf.extend_from_slice(&data);
        } else if total > DRAIN_BYTES {
            break;
        } else {
            buf = Vec::new();
        }
    }
    if total > MAX_BODY_BYTES {
        return Err(crate::error::ApiError::too_large(format!(
            "Request entity too large: limit is {MAX_BODY_BYTES}"
        )));
    }
    Ok(bytes::Bytes::from(buf))
}

/// Duplicate keys of a JSON create or update body (`json_write`) under the request's
/// `fieldValidation`: Strict refuses them (400, as kube-apiserver's strict decoding), Warn
/// returns one warning each, Ignore nothing.
pub fn duplicates_per_mode(
    res: &crate::catalog::Resource,
    query: &crate::request::Query,
    json_write: bool,
    body: &[u8],
) -> Result<Vec<String>, crate::error::ApiError> {
    use crate::request::FieldValidation;
    if !json_write || body.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = duplicate_keys(body)
        .iter()
        .map(|f| format!("duplicate field \"{f}\""))
        .collect();
    match query.field_validation() {
        FieldValidation::Strict if !list.is_empty() => {
            Err(crate::error::ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                list.join(", "),
                kind = res.kind,
                version = res.version,
            )))
        }
        FieldValidation::Warn => Ok(list),
        _ => Ok(Vec::new()),
    }
}

/// The paths (`data.a`, `spec.items[0].name`) of keys that appear more than once in one JSON
/// object of `body`, in document order. A body that is not JSON has none (its parse error is
/// reported by the verb).
pub fn duplicate_keys(body: &[u8]) -> Vec<String> {
    let mut dups = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let _ = Walk {
        path: String::new(),
        dups: &mut dups,
    }
    .deserialize(&mut de);
    dups
}

struct Walk<'a> {
    path: String,
    dups: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let seed = Walk {
                path: format!("{}[{i}]", self.path),
                dups: &mut *self.dups,
            };
            if seq.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                k.clone()
            } else {
                format!("{}.{k}", self.path)
            };
            if !seen.insert(k) {
                self.dups.push(path.clone());
            }
            map.next_value_seed(Walk {
                path,
                dups: &mut *self.dups,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_duplicate_keys_at_any_depth() {
        let body = br#"{"data": {"a": "1", "a": "2"}, "kind": "ConfigMap", "kind": "ConfigMap",
            "list": [{"x": 1}, {"y": 1, "y": 2}]}"#;
        assert_eq!(duplicate_keys(body), ["data.a", "kind", "list[1].y"]);
        assert!(duplicate_keys(br#"{"a": {"b": 1}, "c": {"b": 2}}"#).is_empty());
        assert!(duplicate_keys(b"not json").is_empty());
    }
}
