//! The verbs that write an object: create, update and patch (merge, JSON, strategic and
//! server-side apply). They resolve the request against the stored object and hand the
//! result to admission.

use serde_json::{Value, json};

use super::{Api, Call, Part, invalid, schema_error, sub};
use crate::{
    error::ApiError,
    fields,
    meta::{self, meta_str},
    patch, schema,
};

impl Api {
    /// POST.
    pub fn create(&self, call: &Call<'_>, mut obj: Value) -> Result<Value, ApiError> {
        self.check_kind(call, &obj)?;
        let ns = call.target.namespace.clone();
        let meta = obj
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("the body must be an object"))?
            .entry("metadata")
            .or_insert_with(|| json!({}));
        let m = meta
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        if call.res.namespaced {
            let ns = ns.clone().ok_or_else(|| {
                ApiError::bad_request("a namespaced resource must be created in a namespace")
            })?;
            // An empty namespace in the body means the URL's (kubectl's typed create commands
            // send `namespace: ""` without -n).
            match m.get("namespace").and_then(Value::as_str) {
                Some(b) if !b.is_empty() && b != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    m.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            m.remove("namespace");
        }
        if m.get("generateName").and_then(Value::as_str) == Some("") {
            m.remove("generateName");
        }
        if m.get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            match m.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    let name = format!("{prefix}{}", meta::name_suffix());
                    m.insert("name".into(), json!(name));
                }
                _ => {
                    return Err(invalid(
                        &call.res,
                        "",
                        schema::FieldError::required("metadata.name"),
                    ));
                }
            }
        }
        if let Some(ns) = &ns
            && call.res.namespaced
        {
            self.check_namespace(ns)?;
        }
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        let prepared = self.prepare(call, None, obj, Part::Create, None)?;
        self.save(call, &call.key(&name), None, prepared)?
            .ok_or_else(|| ApiError::internal("created object vanished"))
    }

    /// PUT of the main resource or its status.
    pub fn update(
        &self,
        call: &Call<'_>,
        name: &str,
        obj: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        self.check_kind(call, &obj)?;
        if meta_str(&obj, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        let key = call.key(name);
        let old = self.store.get(&key).ok_or_else(|| call.not_found(name))?;
        match meta_str(&obj, "resourceVersion") {
            None => {
                return Err(invalid(
                    &call.res,
                    name,
                    schema::FieldError::invalid(
                        "metadata.resourceVersion",
                        json!("0x0"),
                        "must be specified for an update",
                    ),
                ));
            }
            Some(rv) if rv != old.rv.to_string() => {
                return Err(ApiError::conflict(
                    &call.res.plural,
                    &call.res.group,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            Some(_) => {}
        }
        let old_obj = self.at_version(&call.res, &old.value())?;
        let prepared = self.prepare(call, Some(&old_obj), obj, part, None)?;
        self.save_or_deleted(call, &key, old.rv, &old_obj, prepared)
    }

    /// PATCH (merge, JSON, strategic or apply) of the main resource or its status.
    pub fn patch(
        &self,
        call: &Call<'_>,
        name: &str,
        content_type: &str,
        body: &[u8],
        part: Part,
    ) -> Result<(u16, Value), ApiError> {
        let ct = content_type.split(';').next().unwrap_or("").trim();
        let is_apply = ct == "application/apply-patch+yaml" || ct == "application/apply-patch+json";
        let patch: Value = if is_apply {
            serde_saphyr::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
        };
        if is_apply && call.query.get("fieldManager").is_none() {
            return Err(invalid(
                &call.res,
                name,
                schema::FieldError::required("fieldManager"),
            ));
        }
        let key = call.key(name);
        // Retried when a concurrent writer wins between our read and commit, as kube-apiserver
        // retries patches that carry no resourceVersion.
        for _ in 0..8 {
            let old = self.store.get(&key);
            let old_obj = match old.as_ref() {
                Some(e) => Some(self.at_version(&call.res, &e.value())?),
                None => None,
            };
            let (new, managed) = match (&old, is_apply) {
                (None, false) => return Err(call.not_found(name)),
                (None, true) => {
                    let mut cfg = patch.clone();
                    self.check_kind(call, &cfg)?;
                    if let Some(m) = cfg.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.insert("name".into(), json!(name));
                        if let Some(ns) = &call.target.namespace
                            && call.res.namespaced
                        {
                            m.insert("namespace".into(), json!(ns));
                        }
                    }
                    if let Some(ns) = call
                        .target
                        .namespace
                        .as_deref()
                        .filter(|_| call.res.namespaced)
                    {
                        self.check_namespace(ns)?;
                    }
                    let applied = fields::apply(
                        None,
                        &cfg,
                        &call.manager(),
                        &call.res.api_version(),
                        sub(part),
                        call.query.flag("force"),
                    )
                    .map_err(|c| ApiError::conflict_message(fields::conflict_message(&c)))?;
                    let prepared = self.prepare(
                        call,
                        None,
                        applied.object,
                        Part::Create,
                        Some(applied.managed),
                    )?;
                    match self.save(call, &key, None, prepared) {
                        Err(e) if e.reason == "AlreadyExists" => continue,
                        other => return other.map(|o| (201, o.unwrap_or_default())),
                    }
                }
                (Some(_), true) => {
                    let applied = fields::apply(
                        old_obj.as_ref(),
                        &patch,
                        &call.manager(),
                        &call.res.api_version(),
                        sub(part),
                        call.query.flag("force"),
                    )
                    .map_err(|c| ApiError::conflict_message(fields::conflict_message(&c)))?;
                    (applied.object, Some(applied.managed))
                }
                (Some(_), false) => {
                    let mut target = old_obj.clone().expect("read with the entry");
                    match ct {
                        "application/merge-patch+json" => patch::merge(&mut target, &patch),
                        "application/json-patch+json" => {
                            patch::json(&mut target, &patch).map_err(|e| {
                                ApiError::invalid(
                                    &call.res.kind,
                                    &call.res.group,
                                    name,
                                    &[schema_error("", &e.to_string())],
                                )
                            })?
                        }
                        "application/strategic-merge-patch+json"
                            if call.res.strategy.strategic_merge() =>
                        {
                            patch::strategic(&mut target, &patch)
                        }
                        other => return Err(ApiError::unsupported_media_type(other)),
                    }
                    (target, None)
                }
            };
            let old = old.expect("handled above");
            if let Some(rv) = meta_str(&new, "resourceVersion")
                && rv != old.rv.to_string()
                && meta_str(&patch, "resourceVersion").is_some()
            {
                return Err(ApiError::conflict(
                    &call.res.plural,
                    &call.res.group,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            let prepared = self.prepare(call, old_obj.as_ref(), new, part, managed)?;
            let old_obj = old_obj.as_ref().expect("read with the entry");
            match self.save_or_deleted(call, &key, old.rv, old_obj, prepared) {
                Err(e)
                    if e.reason == "Conflict" && meta_str(&patch, "resourceVersion").is_none() =>
                {
                    continue;
                }
                other => return other.map(|o| (200, o)),
            }
        }
        Err(ApiError::conflict(
            &call.res.plural,
            &call.res.group,
            name,
            "too many concurrent writers",
        ))
    }
}
