//! DELETE and deletecollection: preconditions, `propagationPolicy` (as the finalizers the
//! garbage collector honours), and graceful deletion of objects that still have finalizers.

use serde_json::{Value, json};

use super::{Api, Call};
use crate::{
    error::{ApiError, success_status},
    meta::{self, deleting, finalizers, meta_str, set_finalizers},
    request::Target,
    store::{Change, ObjKey, Precondition, StoreError},
};

/// Whether a delete is a dry run: `?dryRun=All` or `dryRun: ["All"]` in the DeleteOptions
/// body. Any other value is refused, as kube-apiserver does.
fn dry_run(call: &Call<'_>, options: &Value) -> Result<bool, ApiError> {
    let body = match options.get("dryRun") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    };
    for v in &body {
        if v != "All" {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {v}: supported values: \"All\""
            )));
        }
    }
    Ok(call.query.dry_run() || !body.is_empty())
}

/// How one try at a delete ended, when it did not delete.
enum Attempt {
    /// Another writer committed since the read: read again and retry.
    Raced,
    /// A final answer.
    Failed(ApiError),
}

impl From<ApiError> for Attempt {
    fn from(e: ApiError) -> Self {
        Attempt::Failed(e)
    }
}

impl Api {
    /// DELETE of one object, honouring preconditions, finalizers and propagationPolicy, and
    /// `dryRun` from the query or the DeleteOptions body.
    ///
    /// Retried when a concurrent writer commits between our read and our commit, as
    /// kube-apiserver's guaranteed update does: a delete only fails on a conflict when a
    /// precondition it carries no longer holds.
    pub fn delete(&self, call: &Call<'_>, name: &str, options: &Value) -> Result<Value, ApiError> {
        for _ in 0..8 {
            match self.delete_once(call, name, options) {
                Ok(v) => return Ok(v),
                Err(Attempt::Failed(e)) => return Err(e),
                Err(Attempt::Raced) => {}
            }
        }
        Err(ApiError::conflict(
            &call.res.plural,
            &call.res.group,
            name,
            "too many concurrent writers",
        ))
    }

    fn delete_once(&self, call: &Call<'_>, name: &str, options: &Value) -> Result<Value, Attempt> {
        let dry = dry_run(call, options)?;
        let key = call.key(name);
        let old = self.store.get(&key).ok_or_else(|| call.not_found(name))?;
        call.res.strategy.validate_delete(&call.res, name)?;
        if let Some(uid) = options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            && old.meta.uid != uid
        {
            return Err(ApiError::conflict(
                &call.res.plural,
                &call.res.group,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    old.meta.uid
                ),
            )
            .into());
        }
        if let Some(rv) = options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            && rv != old.rv.to_string()
        {
            return Err(ApiError::conflict(
                &call.res.plural,
                &call.res.group,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    old.rv
                ),
            )
            .into());
        }
        let policy = call
            .query
            .get("propagationPolicy")
            .or_else(|| options.get("propagationPolicy").and_then(Value::as_str))
            .unwrap_or("Background");
        let mut obj = old.value();
        let mut fins = finalizers(&obj);
        let extra = match policy {
            "Foreground" => Some("foregroundDeletion"),
            "Orphan" => Some("orphan"),
            "Background" => None,
            other => {
                return Err(Attempt::Failed(ApiError::bad_request(format!(
                    "unsupported propagationPolicy {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                ))));
            }
        };
        if let Some(f) = extra
            && !deleting(&obj)
            && !fins.iter().any(|x| x == f)
        {
            fins.push(f.to_string());
        }
        let deferred = call.res.strategy.defers_removal();
        if fins.is_empty() && !deferred {
            if dry {
                return Ok(success_status(
                    &call.res.plural,
                    &call.res.group,
                    name,
                    meta_str(&obj, "uid").unwrap_or(""),
                ));
            }
            match self
                .store
                .commit(&key, Precondition::At(old.rv), Change::Delete)
            {
                Ok(_) => call.res.strategy.after_delete(self, &key),
                Err(StoreError::Conflict) => return Err(Attempt::Raced),
                Err(e) => return Err(self.store_error(call, name, e).into()),
            }
            return Ok(success_status(
                &call.res.plural,
                &call.res.group,
                name,
                meta_str(&obj, "uid").unwrap_or(""),
            ));
        }
        if deleting(&obj) && extra.is_none() {
            return Ok(self.at_version(&call.res, &obj)?);
        }
        set_finalizers(&mut obj, &fins);
        let m = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::internal("stored object without metadata"))?;
        if !m.contains_key("deletionTimestamp") {
            m.insert("deletionTimestamp".into(), json!(meta::now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            // As upstream, only kinds that track a generation get it bumped.
            if let Some(g) = m.get("generation").and_then(Value::as_i64) {
                m.insert("generation".into(), json!(g + 1));
            }
        }
        call.res.strategy.on_delete(&mut obj);
        if dry {
            return Ok(self.at_version(&call.res, &obj)?);
        }
        let e = match self
            .store
            .commit(&key, Precondition::At(old.rv), Change::Put(obj))
        {
            Ok(e) => e,
            Err(StoreError::Conflict) => return Err(Attempt::Raced),
            Err(e) => return Err(self.store_error(call, name, e).into()),
        };
        Ok(self.at_version(&call.res, &e.expect("put returns the entry").value())?)
    }

    /// DELETE of a collection. Nothing is deleted when any object of it may not be (a
    /// protected namespace), nor when the options are invalid.
    pub fn delete_collection(&self, call: &Call<'_>, options: &Value) -> Result<Value, ApiError> {
        dry_run(call, options)?;
        let list: Value = serde_json::from_slice(&self.list(call, false)?)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        for item in &items {
            call.res
                .strategy
                .validate_delete(&call.res, meta_str(item, "name").unwrap_or_default())?;
        }
        for item in &items {
            let name = meta_str(item, "name").unwrap_or_default().to_string();
            let scoped = Target {
                namespace: meta_str(item, "namespace").map(str::to_string),
                ..call.target.clone()
            };
            let c = Call {
                res: call.res.clone(),
                target: &scoped,
                query: call.query,
                default_manager: call.default_manager.clone(),
            };
            match self.delete(&c, &name, options) {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}))
    }

    pub(super) fn commit_delete(
        &self,
        call: &Call<'_>,
        key: &ObjKey,
        rv: u64,
    ) -> Result<(), ApiError> {
        self.store
            .commit(key, Precondition::At(rv), Change::Delete)
            .map_err(|e| self.store_error(call, &key.name, e))?;
        call.res.strategy.after_delete(self, key);
        Ok(())
    }
}
