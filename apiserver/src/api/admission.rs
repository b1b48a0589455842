//! Admission: what every write passes through between the verb and the store, in
//! kube-apiserver's order. Server-owned metadata is reset or carried over, status and spec
//! are kept apart, the resource's [`Strategy`](super::strategy::Strategy) adds its kind's
//! rules, custom resources are pruned, defaulted and validated against their schema, and the
//! generation and managed fields follow the change. The commit then honours finalizers and
//! leaves no-op writes unstored.

use serde_json::{Value, json};

use super::{Api, Call, Part, invalid, sub};
use crate::{
    error::ApiError,
    fields,
    meta::{self, deleting, finalizers, meta_str},
    request::FieldValidation,
    schema,
    store::{Change, Entry, ObjKey, Precondition, StoreError},
};

fn body_without_status(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    c
}

impl Api {
    /// Admission of one write. `managed` is the ownership computed by an apply; other writes
    /// get theirs computed here.
    pub fn prepare(
        &self,
        call: &Call<'_>,
        old: Option<&Value>,
        mut new: Value,
        part: Part,
        managed: Option<Vec<fields::Managed>>,
    ) -> Result<Value, ApiError> {
        let res = &call.res;
        new["apiVersion"] = json!(res.api_version());
        new["kind"] = json!(res.kind);
        if !new.get("metadata").is_some_and(Value::is_object) {
            new["metadata"] = json!({});
        }
        let name = meta_str(&new, "name").unwrap_or_default().to_string();
        match old {
            None => {
                let m = new["metadata"].as_object_mut().expect("ensured");
                for k in [
                    "resourceVersion",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "managedFields",
                ] {
                    m.remove(k);
                }
                m.insert("uid".into(), json!(meta::uid()));
                m.insert("creationTimestamp".into(), json!(meta::now()));
                res.strategy.prepare_create(res, &mut new);
            }
            Some(old) => {
                // Server-owned metadata is kept from the stored object.
                for k in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "namespace",
                    "name",
                    "generation",
                ] {
                    match old["metadata"].get(k) {
                        Some(v) => {
                            new["metadata"][k] = v.clone();
                        }
                        None => {
                            new["metadata"].as_object_mut().expect("ensured").remove(k);
                        }
                    }
                }
                if deleting(old) {
                    let before = finalizers(old);
                    if let Some(added) = finalizers(&new).into_iter().find(|f| !before.contains(f))
                    {
                        return Err(invalid(
                            res,
                            &name,
                            schema::FieldError::forbidden(
                                "metadata.finalizers",
                                format!(
                                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{\"{added}\"}}"
                                ),
                            ),
                        ));
                    }
                }
                match part {
                    Part::Status => {
                        let status = new.get("status").cloned();
                        let mut merged = old.clone();
                        match status {
                            Some(s) => merged["status"] = s,
                            None => {
                                merged.as_object_mut().expect("object").remove("status");
                            }
                        }
                        merged["metadata"]["resourceVersion"] =
                            new["metadata"]["resourceVersion"].clone();
                        new = merged;
                    }
                    Part::Main if res.status => match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            new.as_object_mut().expect("object").remove("status");
                        }
                    },
                    _ => {}
                }
            }
        }
        res.strategy.prepare(res, old, &mut new)?;
        if let Some(reason) = res.strategy.validate_name(res, &name) {
            return Err(invalid(
                res,
                &name,
                schema::FieldError::invalid("metadata.name", json!(name), reason),
            ));
        }
        let meta_errors = meta::metadata_errors(&new);
        if !meta_errors.is_empty() {
            return Err(ApiError::invalid(
                &res.kind,
                &res.group,
                &name,
                &meta_errors,
            ));
        }
        let builtin = if res.custom {
            None
        } else {
            schema::builtin::schema(&res.group, &res.kind)
        };
        if builtin.is_some() {
            schema::builtin::strip_nulls(&mut new);
        }
        let mode = call.query.field_validation();
        // Strict refuses before anything else is checked; the other modes learn what was
        // unknown from the pruning itself (no extra pass over the object).
        if mode == FieldValidation::Strict
            && let Some(json) = res.schema.as_ref().map(|s| &s.json).or(builtin.as_deref())
        {
            let unknown = schema::unknown_fields(json, &new);
            if !unknown.is_empty() {
                let list: Vec<String> = unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                    res.kind,
                    res.version,
                    res.kind,
                    list.join(", ")
                )));
            }
        }
        let pruned = if let Some(schema) = &res.schema {
            let managed_fields = new["metadata"].get("managedFields").cloned();
            let (admitted, pruned) = schema
                .admit_pruned(&new, old)
                .map_err(|errs| ApiError::invalid(&res.kind, &res.group, &name, &errs))?;
            new = admitted;
            if let Some(mf) = managed_fields {
                new["metadata"]["managedFields"] = mf;
            }
            pruned
        } else if let Some(json) = &builtin {
            let pruned = schema::prune(json, &mut new);
            let errs = schema::validate(json, &new);
            if !errs.is_empty() {
                return Err(ApiError::invalid(&res.kind, &res.group, &name, &errs));
            }
            pruned
        } else {
            Vec::new()
        };
        if mode == FieldValidation::Warn {
            for f in &pruned {
                crate::warnings::warn(format!("unknown field \"{f}\""));
            }
        }
        if res.strategy.tracks_generation() {
            let generation = match old {
                None => 1,
                Some(old) => {
                    let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
                    if body_without_status(old) != body_without_status(&new) {
                        g + 1
                    } else {
                        g
                    }
                }
            };
            new["metadata"]["generation"] = json!(generation);
        } else if let Some(m) = new["metadata"].as_object_mut() {
            m.remove("generation");
        }
        let managed = managed.unwrap_or_else(|| {
            let stripped_old = old.cloned();
            fields::update(
                stripped_old.as_ref(),
                &new,
                &call.manager(),
                &res.api_version(),
                sub(part),
            )
        });
        let time = meta::now();
        fields::set_managed(&mut new, &managed, &time);
        Ok(new)
    }

    /// Commits a prepared object. An object being deleted whose finalizers are all gone is
    /// removed instead. Returns the stored object (`None` when removed).
    pub fn save(
        &self,
        call: &Call<'_>,
        key: &ObjKey,
        old_rv: Option<u64>,
        obj: Value,
    ) -> Result<Option<Value>, ApiError> {
        let remove = deleting(&obj)
            && finalizers(&obj).is_empty()
            && !call.res.strategy.still_finalizing(&obj);
        // Converted (and admitted at the storage version) first, so a dry run refuses what
        // the write would refuse.
        let stored_old = old_rv.and_then(|_| self.store.get(key)).map(|e| e.value());
        let obj = self.to_storage(&call.res, obj, stored_old.as_ref())?;
        if call.query.dry_run() {
            return self.at_version(&call.res, &obj).map(Some);
        }
        let pre = old_rv.map_or(Precondition::Absent, Precondition::At);
        if remove {
            let rv = old_rv
                .ok_or_else(|| ApiError::internal("deleting an object that does not exist"))?;
            self.commit_delete(call, key, rv)?;
            return Ok(None);
        }
        let stored: Entry = match self.store.commit(key, pre, Change::Put(obj)) {
            Ok(e) => e.expect("put returns the entry"),
            Err(StoreError::Conflict) if old_rv.is_none() => {
                return Err(ApiError::already_exists(
                    &call.res.plural,
                    &call.res.group,
                    &key.name,
                ));
            }
            Err(e) => return Err(self.store_error(call, &key.name, e)),
        };
        call.res.strategy.after_save(self, &stored);
        self.at_version(&call.res, &stored.value()).map(Some)
    }

    /// Saves an update of `old` (stored at `old_rv`). As kube-apiserver, a write that changes
    /// nothing but managedFields timestamps is a no-op: no new resourceVersion, no watch event
    /// (unless `old` is no longer current, which the commit reports as a conflict).
    pub(super) fn save_or_deleted(
        &self,
        call: &Call<'_>,
        key: &ObjKey,
        old_rv: u64,
        old: &Value,
        obj: Value,
    ) -> Result<Value, ApiError> {
        if same_but_times(old, &obj) && self.store.get(key).is_some_and(|e| e.rv == old_rv) {
            return self.at_version(&call.res, old);
        }
        let last = obj.clone();
        match self.save(call, key, Some(old_rv), obj)? {
            Some(saved) => Ok(saved),
            None => self.at_version(&call.res, &last),
        }
    }
}

/// Whether two versions of an object are equal but for `metadata.resourceVersion` and the
/// `time` of their managedFields entries.
fn same_but_times(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    if a.len() != b.len() {
        return false;
    }
    a.iter().all(|(k, va)| {
        let Some(vb) = b.get(k) else { return false };
        if k != "metadata" {
            return va == vb;
        }
        let (Some(ma), Some(mb)) = (va.as_object(), vb.as_object()) else {
            return va == vb;
        };
        let keys = |m: &serde_json::Map<String, Value>| {
            m.keys()
                .filter(|k| *k != "resourceVersion")
                .cloned()
                .collect::<Vec<_>>()
        };
        keys(ma) == keys(mb)
            && ma.iter().all(|(k, x)| match k.as_str() {
                "resourceVersion" => true,
                "managedFields" => same_managed_fields(x, &mb[k]),
                _ => Some(x) == mb.get(k),
            })
    })
}

fn same_managed_fields(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_array(), b.as_array()) else {
        return a == b;
    };
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            let (Some(x), Some(y)) = (x.as_object(), y.as_object()) else {
                return x == y;
            };
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| k == "time" || y.get(k).is_some_and(|w| w == v))
        })
}
