//! Conversion of custom resources between the versions a CRD serves, as kube-apiserver does:
//! objects are stored at the storage version and converted to the version a client asked for
//! on every read, write, list, watch event and patch.
//!
//! Strategy `None` rewrites `apiVersion` only. Strategy `Webhook` converts: the Cluster API
//! kinds slipway serves in-process ([`slipway_api::conversion`]); any other CRD asking for a
//! webhook has it called ([`crate::conversion_webhook`]); a failed call is a 500 naming the
//! object and the webhook's message.
//! A write whose object cannot be represented at the storage version is a 422 naming the field;
//! nothing is stored half-converted (the converted object is admitted against the storage
//! version's schema before it is committed).

use bytes::Bytes;
use serde_json::{Value, json};
use slipway_api::conversion::{self as capi, ConversionError};

use crate::{
    api::{Api, raw_at_version},
    catalog::Resource,
    error::ApiError,
    schema::{self, ErrorType, FieldError},
    store::Entry,
};

/// The version part of an object's apiVersion.
fn version_of_obj(obj: &Value) -> &str {
    obj.get("apiVersion")
        .and_then(Value::as_str)
        .map_or("", |v| v.rsplit_once('/').map_or(v, |(_, v)| v))
}

fn object_name(obj: &Value) -> String {
    let m = &obj["metadata"];
    match (m["namespace"].as_str(), m["name"].as_str()) {
        (Some(ns), Some(n)) if !ns.is_empty() => format!("{ns}/{n}"),
        (_, Some(n)) => n.to_string(),
        _ => String::new(),
    }
}

impl Api {
    /// `obj` (at the version its apiVersion names) converted to `version` of `res`'s group.
    pub fn convert(&self, res: &Resource, obj: &Value, version: &str) -> Result<Value, ApiError> {
        let from = version_of_obj(obj);
        let mut out = if from == version || !res.custom || res.conversion.is_none() {
            obj.clone()
        } else if capi::handles(&res.group, &res.kind) {
            self.convert_in_process(res, obj, from, version)?
        } else {
            let desired = if res.group.is_empty() {
                version.to_string()
            } else {
                format!("{}/{version}", res.group)
            };
            let conversion = res.conversion.as_deref().expect("checked above");
            crate::conversion_webhook::convert(conversion, obj, &desired).map_err(|why| {
                ApiError::internal(format!(
                    "conversion webhook for {}/{from}, Kind={} failed for {} (CRD {}.{}): {why}",
                    res.group,
                    res.kind,
                    object_name(obj),
                    res.plural,
                    res.group
                ))
            })?
        };
        out["apiVersion"] = json!(if res.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", res.group)
        });
        out["kind"] = json!(res.kind);
        Ok(out)
    }

    fn convert_in_process(
        &self,
        res: &Resource,
        obj: &Value,
        from: &str,
        to: &str,
    ) -> Result<Value, ApiError> {
        let version_of = |group: &str, kind: &str| {
            self.catalog
                .all()
                .into_iter()
                .find(|r| r.group == group && r.kind == kind)
                .map(|r| r.storage_version.clone())
        };
        let normalize = |version: &str, v: &mut Value| {
            if let Some(s) = self
                .catalog
                .find(&res.group, version, &res.plural)
                .and_then(|r| r.schema.clone())
            {
                schema::prune(&s.json, v);
            }
        };
        let ctx = capi::Context {
            version_of: &version_of,
            normalize: &normalize,
        };
        capi::convert(obj, to, &ctx).map_err(|e| match e {
            ConversionError::Invalid { field, detail } => ApiError::invalid(
                &res.kind,
                &res.group,
                obj["metadata"]["name"].as_str().unwrap_or_default(),
                &[FieldError {
                    bad_value: value_at(obj, &field).cloned(),
                    field,
                    error_type: ErrorType::Invalid,
                    detail: format!("cannot be represented in {}/{to}: {detail}", res.group),
                }],
            ),
            ConversionError::Failed(why) => ApiError::internal(format!(
                "conversion of {} {} from {}/{from} to {}/{to} failed: {why}",
                res.kind,
                object_name(obj),
                res.group,
                res.group
            )),
        })
    }

    /// A stored object as served at `res`'s version.
    pub fn at_version(&self, res: &Resource, obj: &Value) -> Result<Value, ApiError> {
        self.convert(res, obj, &res.version)
    }

    /// A stored entry's JSON at `res`'s version: the stored bytes when no conversion is needed.
    pub fn raw_at_version(&self, res: &Resource, e: &Entry) -> Result<Bytes, ApiError> {
        if needs_conversion(res) {
            Ok(Bytes::from(
                serde_json::to_vec(&self.at_version(res, &e.value())?).expect("json"),
            ))
        } else {
            Ok(raw_at_version(res, e))
        }
    }

    /// A request-version object converted for storage and admitted against the storage
    /// version's schema (pruned, defaulted, validated with `old` for transition rules).
    pub fn to_storage(
        &self,
        res: &Resource,
        obj: Value,
        old: Option<&Value>,
    ) -> Result<Value, ApiError> {
        if !needs_conversion(res) || version_of_obj(&obj) == res.storage_version {
            return Ok(obj);
        }
        let stored = self.convert(res, &obj, &res.storage_version)?;
        let Some(storage) = self
            .catalog
            .find(&res.group, &res.storage_version, &res.plural)
        else {
            return Ok(stored);
        };
        let Some(s) = &storage.schema else {
            return Ok(stored);
        };
        let managed = stored["metadata"].get("managedFields").cloned();
        let mut admitted = s.admit(&stored, old).map_err(|errs| {
            ApiError::invalid(
                &res.kind,
                &res.group,
                stored["metadata"]["name"].as_str().unwrap_or_default(),
                &errs,
            )
        })?;
        if let Some(mf) = managed {
            admitted["metadata"]["managedFields"] = mf;
        }
        Ok(admitted)
    }
}

/// The value at a field path as conversion errors name it (`spec.list[2].field`).
fn value_at<'a>(obj: &'a Value, field: &str) -> Option<&'a Value> {
    field.split('.').try_fold(obj, |v, part| {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.strip_suffix(']')?.parse::<usize>().ok()),
            None => (part, None),
        };
        let v = v.get(key)?;
        match index {
            Some(i) => v.get(i),
            None => Some(v),
        }
    })
}

/// Whether objects of `res` are converted (not only relabelled) when served.
pub fn needs_conversion(res: &Resource) -> bool {
    res.custom && res.conversion.is_some() && res.version != res.storage_version
}

/// `spec.conversion` of a CRD when its strategy is `Webhook` (what [`Resource::conversion`]
/// holds).
pub fn webhook_conversion(crd: &Value) -> Option<std::sync::Arc<Value>> {
    let c = crd.pointer("/spec/conversion")?;
    (c["strategy"] == "Webhook").then(|| std::sync::Arc::new(c.clone()))
}
