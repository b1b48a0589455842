//! LIST: selectors, the label index, `limit` and `continue` tokens, and the response body
//! assembled from stored bytes.

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Api, Call};
use crate::{
    error::ApiError,
    selector::{FieldSelector, LabelSelector},
    store::{Entry, ObjKey},
    table::{self, IncludeObject},
};

impl Api {
    /// LIST with selectors and paging; the serialized response body. Items are spliced in
    /// as stored, without being parsed, unless a table or another version is asked for.
    pub fn list(&self, call: &Call<'_>, accept_table: bool) -> Result<Bytes, ApiError> {
        let labels = LabelSelector::parse(call.query.get("labelSelector").unwrap_or(""))?;
        let fields = FieldSelector::parse_for(
            call.query.get("fieldSelector").unwrap_or(""),
            crate::selector::selectable_fields(&call.res.group, &call.res.plural),
        )?;
        let ns = if call.res.namespaced {
            call.target.namespace.as_deref()
        } else {
            None
        };
        if let Some(want) = call
            .query
            .get("resourceVersion")
            .and_then(|v| v.parse::<u64>().ok())
        {
            let current = self.store.current_rv();
            if want > current {
                return Err(ApiError::too_large_resource_version(want, current));
            }
        }
        let start_after = match call.query.get("continue") {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        let keep = |_: &ObjKey, e: &Entry| labels.matches_meta(&e.meta) && fields.matches_entry(e);
        let (rv, items) = match labels.required_value(crate::store::INDEXED_LABEL) {
            Some(v) => self.store.list_labelled(&call.res.gr(), ns, v, keep),
            None => self.store.list_where(&call.res.gr(), ns, keep),
        };
        let limit: usize = call
            .query
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let mut selected: Vec<&Entry> = Vec::new();
        let mut more = false;
        let mut last: Option<&ObjKey> = None;
        for (k, e) in items.iter().filter(|(k, _)| {
            start_after
                .as_ref()
                .is_none_or(|s| (&k.ns, &k.name) > (&s.0, &s.1))
        }) {
            if !labels.matches_meta(&e.meta) || !fields.matches_entry(e) {
                continue;
            }
            if selected.len() == limit {
                more = true;
                break;
            }
            selected.push(e);
            last = Some(k);
        }
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if more && let Some(last) = last {
            metadata["continue"] = json!(encode_continue(&last.ns, &last.name));
        }
        if accept_table {
            let objs: Vec<Value> = selected
                .iter()
                .map(|e| self.at_version(&call.res, &e.value()))
                .collect::<Result<_, _>>()?;
            let refs: Vec<&Value> = objs.iter().collect();
            let t = table::table(
                &call.res,
                &refs,
                IncludeObject::parse(call.query.get("includeObject")),
                metadata,
            );
            return Ok(Bytes::from(serde_json::to_vec(&t).expect("json")));
        }
        let head = json!({"kind": call.res.list_kind, "apiVersion": call.res.api_version(), "metadata": metadata}).to_string();
        let mut out = Vec::with_capacity(
            head.len() + selected.iter().map(|e| e.raw.len() + 1).sum::<usize>() + 16,
        );
        out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        out.extend_from_slice(b",\"items\":[");
        for (i, e) in selected.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&self.raw_at_version(&call.res, e)?);
        }
        out.extend_from_slice(b"]}");
        Ok(Bytes::from(out))
    }
}

fn encode_continue(ns: &str, name: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!([ns, name]).to_string())
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    use base64::Engine;
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((
        v[0].as_str().ok_or_else(bad)?.to_string(),
        v[1].as_str().ok_or_else(bad)?.to_string(),
    ))
}
