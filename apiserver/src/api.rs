//! The resource verbs: get, list, create, update, patch, delete, deletecollection (watch lives
//! in `watch`). Every write goes through [`Api::prepare`] (admission: server-owned metadata,
//! status/spec split, kind-specific defaults, schema + CEL for custom resources, generation,
//! managed fields) and [`Api::save`] (finalizer-aware commit).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::{
    catalog::{Catalog, Resource},
    error::{ApiError, success_status},
    fields,
    meta::{self, deleting, finalizers, meta_str, set_finalizers},
    patch,
    request::{Query, Target},
    schema,
    selector::{FieldSelector, LabelSelector},
    store::{Change, Entry, ObjKey, Precondition, Store, StoreError},
    table::{self, IncludeObject},
};

/// Shared server state.
pub struct Api {
    /// Objects.
    pub store: Arc<Store>,
    /// Served resources.
    pub catalog: Catalog,
}

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// A create.
    Create,
    /// The main resource.
    Main,
    /// The status subresource.
    Status,
}

/// A resolved request.
pub struct Call<'a> {
    /// The resource.
    pub res: Arc<Resource>,
    /// The path.
    pub target: &'a Target,
    /// Query parameters.
    pub query: &'a Query,
    /// Field manager for writes without `fieldManager`.
    pub default_manager: String,
}

impl Call<'_> {
    fn key(&self, name: &str) -> ObjKey {
        let ns = if self.res.namespaced {
            self.target.namespace.as_deref().unwrap_or("")
        } else {
            ""
        };
        ObjKey::new(&self.res.gr(), ns, name)
    }

    fn manager(&self) -> String {
        self.query
            .get("fieldManager")
            .map_or_else(|| self.default_manager.clone(), str::to_string)
    }

    fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(&self.res.plural, &self.res.group, name)
    }
}

/// A stored object's JSON at the requested version: as stored when the versions agree
/// (serde_json writes keys sorted, so `apiVersion` leads), rewritten otherwise.
pub fn raw_at_version(res: &Resource, e: &Entry) -> Bytes {
    let prefix = format!("{{\"apiVersion\":\"{}\",", res.api_version());
    if e.raw.starts_with(prefix.as_bytes()) {
        e.raw.clone()
    } else {
        Bytes::from(serde_json::to_vec(&at_version(res, &e.value())).expect("json"))
    }
}

/// Kubernetes serves an object at the version asked for; with conversion strategy None that is
/// the stored object with its apiVersion rewritten.
pub fn at_version(res: &Resource, obj: &Value) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(res.api_version());
    o["kind"] = json!(res.kind);
    o
}

fn body_without_status(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    c
}

impl Api {
    /// A server state over a store, serving the built-in kinds and every stored CRD.
    pub fn new(store: Arc<Store>) -> Self {
        let api = Self {
            store,
            catalog: Catalog::new(),
        };
        for (_, e) in api
            .store
            .list("apiextensions.k8s.io/customresourcedefinitions", None)
            .1
        {
            if let Err(e) = api.catalog.register_crd(&e.value()) {
                tracing::warn!(error = %e, "stored CRD cannot be served");
            }
        }
        api
    }

    /// GET of one object.
    pub fn get(&self, call: &Call<'_>, name: &str) -> Result<Value, ApiError> {
        let e = self
            .store
            .get(&call.key(name))
            .ok_or_else(|| call.not_found(name))?;
        Ok(at_version(&call.res, &e.value()))
    }

    /// GET of one object as served on the wire: the stored bytes, unparsed, when the versions
    /// agree (most reads of a controller).
    pub fn get_raw(&self, call: &Call<'_>, name: &str) -> Result<Bytes, ApiError> {
        let e = self
            .store
            .get(&call.key(name))
            .ok_or_else(|| call.not_found(name))?;
        Ok(raw_at_version(&call.res, &e))
    }

    /// LIST with selectors and paging; the serialized response body. Items are spliced in
    /// as stored, without being parsed, unless a table or another version is asked for.
    pub fn list(&self, call: &Call<'_>, accept_table: bool) -> Result<Bytes, ApiError> {
        let labels = LabelSelector::parse(call.query.get("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(call.query.get("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let ns = if call.res.namespaced {
            call.target.namespace.as_deref()
        } else {
            None
        };
        let start_after = match call.query.get("continue") {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        let keep =
            |_: &ObjKey, e: &Entry| labels.matches_meta(&e.meta) && fields.matches_meta(&e.meta);
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
            if !labels.matches_meta(&e.meta) || !fields.matches_meta(&e.meta) {
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
                .map(|e| at_version(&call.res, &e.value()))
                .collect();
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
            out.extend_from_slice(&raw_at_version(&call.res, e));
        }
        out.extend_from_slice(b"]}");
        Ok(Bytes::from(out))
    }

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
            match m.get("namespace").and_then(Value::as_str) {
                Some(b) if b != ns => {
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
        let old_obj = old.value();
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
            let old_obj = old.as_ref().map(Entry::value);
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
                (Some(old), false) => {
                    let mut target = old.value();
                    match ct {
                        "application/merge-patch+json" => patch::merge(&mut target, &patch),
                        "application/json-patch+json" => {
                            patch::json(&mut target, &patch).map_err(|e| {
                                ApiError::invalid(
                                    &call.res.kind,
                                    &call.res.group,
                                    name,
                                    &[schema_error("", &e)],
                                )
                            })?
                        }
                        "application/strategic-merge-patch+json" if !call.res.custom => {
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

    /// DELETE of one object, honouring preconditions, finalizers and propagationPolicy.
    pub fn delete(&self, call: &Call<'_>, name: &str, options: &Value) -> Result<Value, ApiError> {
        let key = call.key(name);
        let old = self.store.get(&key).ok_or_else(|| call.not_found(name))?;
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
            ));
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
            ));
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
                return Err(ApiError::bad_request(format!(
                    "unsupported propagationPolicy {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        };
        if let Some(f) = extra
            && !deleting(&obj)
            && !fins.iter().any(|x| x == f)
        {
            fins.push(f.to_string());
        }
        let namespace_pending = call.res.plural == "namespaces" && call.res.group.is_empty();
        if fins.is_empty() && !namespace_pending {
            if call.query.dry_run() {
                return Ok(success_status(
                    &call.res.plural,
                    &call.res.group,
                    name,
                    meta_str(&obj, "uid").unwrap_or(""),
                ));
            }
            self.commit_delete(call, &key, old.rv)?;
            return Ok(success_status(
                &call.res.plural,
                &call.res.group,
                name,
                meta_str(&obj, "uid").unwrap_or(""),
            ));
        }
        if deleting(&obj) && extra.is_none() {
            return Ok(at_version(&call.res, &obj));
        }
        set_finalizers(&mut obj, &fins);
        let m = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::internal("stored object without metadata"))?;
        if !m.contains_key("deletionTimestamp") {
            m.insert("deletionTimestamp".into(), json!(meta::now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            let g = m.get("generation").and_then(Value::as_i64).unwrap_or(1);
            m.insert("generation".into(), json!(g + 1));
        }
        if namespace_pending {
            obj["status"] = json!({"phase": "Terminating"});
        }
        if call.query.dry_run() {
            return Ok(at_version(&call.res, &obj));
        }
        let e = self
            .store
            .commit(&key, Precondition::At(old.rv), Change::Put(obj))
            .map_err(|e| self.store_error(call, name, e))?;
        Ok(at_version(
            &call.res,
            &e.expect("put returns the entry").value(),
        ))
    }

    /// DELETE of a collection.
    pub fn delete_collection(&self, call: &Call<'_>, options: &Value) -> Result<Value, ApiError> {
        let list: Value = serde_json::from_slice(&self.list(call, false)?)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        for item in list["items"].as_array().into_iter().flatten() {
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

    fn commit_delete(&self, call: &Call<'_>, key: &ObjKey, rv: u64) -> Result<(), ApiError> {
        self.store
            .commit(key, Precondition::At(rv), Change::Delete)
            .map_err(|e| self.store_error(call, &key.name, e))?;
        self.after_delete(call, key);
        Ok(())
    }

    fn after_delete(&self, call: &Call<'_>, key: &ObjKey) {
        if call.res.group == "apiextensions.k8s.io"
            && call.res.plural == "customresourcedefinitions"
        {
            // Deleting a CRD deletes its objects and stops serving it.
            if let Some((plural, group)) = key.name.split_once('.') {
                let gr = format!("{group}/{plural}");
                for (k, e) in self.store.list(&gr, None).1 {
                    let _ = self
                        .store
                        .commit(&k, Precondition::At(e.rv), Change::Delete);
                }
                self.catalog.unregister(group, plural);
            }
        }
    }

    fn store_error(&self, call: &Call<'_>, name: &str, e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict => ApiError::conflict(
                &call.res.plural,
                &call.res.group,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ),
            other => other.into(),
        }
    }

    fn check_kind(&self, call: &Call<'_>, obj: &Value) -> Result<(), ApiError> {
        if let Some(kind) = obj.get("kind").and_then(Value::as_str)
            && kind != call.res.kind
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({}) or the kind {kind} is not {}",
                obj.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
                call.res.api_version(),
                call.res.kind
            )));
        }
        Ok(())
    }

    fn check_namespace(&self, ns: &str) -> Result<(), ApiError> {
        match self.store.get(&ObjKey::new("/namespaces", "", ns)) {
            None => Err(ApiError::not_found("namespaces", "", ns)),
            Some(e) if e.meta.deleting => Err(ApiError {
                code: 403,
                reason: "Forbidden",
                message: format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
                details: None,
            }),
            Some(_) => Ok(()),
        }
    }

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
                if res.group.is_empty() && res.plural == "secrets" {
                    fill_service_account_token(&mut new);
                }
                if res.status && res.custom {
                    new.as_object_mut().expect("object").remove("status");
                }
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
        self.kind_defaults(res, old, &mut new)?;
        if let Some(reason) = if res.plural == "namespaces" && res.group.is_empty() {
            meta::invalid_label(&name)
        } else if res.group == "rbac.authorization.k8s.io" {
            // RBAC names are path segments (`system:controller:x` is a valid role name).
            meta::invalid_path_segment(&name)
        } else {
            meta::invalid_subdomain(&name)
        } {
            return Err(invalid(
                res,
                &name,
                schema::FieldError::invalid("metadata.name", json!(name), reason),
            ));
        }
        if let Some(schema) = &res.schema {
            if call.query.get("fieldValidation") == Some("Strict") {
                let unknown = schema::unknown_fields(&schema.json, &new);
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
            let managed_fields = new["metadata"].get("managedFields").cloned();
            new = schema
                .admit(&new, old)
                .map_err(|errs| ApiError::invalid(&res.kind, &res.group, &name, &errs))?;
            if let Some(mf) = managed_fields {
                new["metadata"]["managedFields"] = mf;
            }
        }
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

    /// Defaults and checks particular to built-in kinds.
    fn kind_defaults(
        &self,
        res: &Resource,
        old: Option<&Value>,
        new: &mut Value,
    ) -> Result<(), ApiError> {
        if res.custom {
            return Ok(());
        }
        match (res.group.as_str(), res.plural.as_str()) {
            ("", "secrets") => {
                use base64::Engine;
                if let Some(Value::Object(sd)) =
                    new.as_object_mut().and_then(|m| m.remove("stringData"))
                {
                    let data = new
                        .as_object_mut()
                        .expect("object")
                        .entry("data")
                        .or_insert_with(|| json!({}));
                    for (k, v) in sd {
                        let s = v.as_str().unwrap_or_default();
                        data[k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
                    }
                }
                if new.get("type").is_none_or(|t| t.as_str() == Some("")) {
                    new["type"] = json!(
                        old.and_then(|o| o.get("type"))
                            .cloned()
                            .unwrap_or(json!("Opaque"))
                    );
                }
            }
            ("", "namespaces") => {
                // As upstream, a new namespace always carries the `kubernetes` finalizer; later
                // writes keep whatever the namespace controller (here: the GC) left.
                if old.is_none() || new.pointer("/spec/finalizers").is_none() {
                    new["spec"] = json!({"finalizers": ["kubernetes"]});
                }
                let phase = if deleting(new) {
                    "Terminating"
                } else {
                    "Active"
                };
                new["status"] = json!({"phase": phase});
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                let resources = crate::catalog::resources_of_crd(new).map_err(|e| {
                    ApiError::invalid(
                        "CustomResourceDefinition",
                        "apiextensions.k8s.io",
                        meta_str(new, "name").unwrap_or(""),
                        &[schema_error("", &e)],
                    )
                })?;
                let first = resources.first().ok_or_else(|| {
                    ApiError::bad_request("spec.versions: at least one version must be served")
                })?;
                let want = format!("{}.{}", first.plural, first.group);
                if meta_str(new, "name") != Some(want.as_str()) {
                    let name = meta_str(new, "name").unwrap_or("").to_string();
                    return Err(invalid(
                        res,
                        &name,
                        schema::FieldError::invalid(
                            "metadata.name",
                            json!(name),
                            format!("must be spec.names.plural+\".\"+spec.group ({want})"),
                        ),
                    ));
                }
                let now = meta::now();
                let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "reason": reason, "message": msg, "lastTransitionTime": now});
                new["status"] = json!({
                    "conditions": [cond("NamesAccepted", "NoConflicts", "no conflicts found"), cond("Established", "InitialNamesAccepted", "the initial names have been accepted")],
                    "acceptedNames": new["spec"]["names"].clone(),
                    "storedVersions": [first.storage_version.clone()],
                });
                if let Some(old_status) = old.and_then(|o| o.get("status"))
                    && old_status.get("conditions").is_some()
                {
                    // Keep transition times stable across updates.
                    new["status"]["conditions"] = old_status["conditions"].clone();
                }
            }
            _ => {}
        }
        Ok(())
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
        let namespace_pending = call.res.plural == "namespaces"
            && call.res.group.is_empty()
            && obj
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
        let remove = deleting(&obj) && finalizers(&obj).is_empty() && !namespace_pending;
        if call.query.dry_run() {
            return Ok(Some(at_version(&call.res, &obj)));
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
        if call.res.group == "apiextensions.k8s.io"
            && call.res.plural == "customresourcedefinitions"
            && let Err(e) = self.catalog.register_crd(&stored.value())
        {
            tracing::warn!(error = %e, "stored CRD cannot be served");
        }
        Ok(Some(at_version(&call.res, &stored.value())))
    }

    /// Saves an update of `old` (stored at `old_rv`). As kube-apiserver, a write that changes
    /// nothing but managedFields timestamps is a no-op: no new resourceVersion, no watch event
    /// (unless `old` is no longer current, which the commit reports as a conflict).
    fn save_or_deleted(
        &self,
        call: &Call<'_>,
        key: &ObjKey,
        old_rv: u64,
        old: &Value,
        obj: Value,
    ) -> Result<Value, ApiError> {
        if same_but_times(old, &obj) && self.store.get(key).is_some_and(|e| e.rv == old_rv) {
            return Ok(at_version(&call.res, old));
        }
        let last = obj.clone();
        Ok(self
            .save(call, key, Some(old_rv), obj)?
            .unwrap_or_else(|| at_version(&call.res, &last)))
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

fn sub(part: Part) -> &'static str {
    if part == Part::Status { "status" } else { "" }
}

fn invalid(res: &Resource, name: &str, error: schema::FieldError) -> ApiError {
    ApiError::invalid(&res.kind, &res.group, name, &[error])
}

fn schema_error(field: &str, detail: &str) -> schema::FieldError {
    schema::FieldError {
        field: field.into(),
        error_type: schema::ErrorType::Invalid,
        bad_value: None,
        detail: detail.into(),
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

/// Service-account token Secrets get their token, as kube-controller-manager's token
/// controller fills them: `data.token` and `data.namespace`. The token then authenticates as
/// the service account ([`Api::service_account_of`]).
fn fill_service_account_token(secret: &mut Value) {
    use base64::Engine;
    use rand::Rng;
    if secret["type"] != SA_TOKEN_TYPE
        || secret
            .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return;
    }
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let token: String = (0..32)
        .map(|_| format!("{:02x}", rand::rng().random::<u8>()))
        .collect();
    let ns = meta_str(secret, "namespace")
        .unwrap_or_default()
        .to_string();
    if !secret["data"].is_object() {
        secret["data"] = json!({});
    }
    secret["data"]["token"] = json!(b64(&token));
    secret["data"]["namespace"] = json!(b64(&ns));
}

/// Type of service-account token Secrets.
pub const SA_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";

impl Api {
    /// The service account (`system:serviceaccount:<ns>:<name>`) whose token Secret holds
    /// `token`, if any.
    pub fn service_account_of(&self, token: &str) -> Option<String> {
        use base64::Engine;
        let (_, secrets) = self.store.list("/secrets", None);
        secrets.into_iter().find_map(|(_, e)| {
            let v = e.value();
            if v["type"] != SA_TOKEN_TYPE {
                return None;
            }
            let stored = base64::engine::general_purpose::STANDARD
                .decode(v["data"]["token"].as_str()?)
                .ok()?;
            let same = stored.len() == token.len()
                && stored
                    .iter()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
            let sa = v
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")?
                .as_str()?;
            same.then(|| {
                format!(
                    "system:serviceaccount:{}:{sa}",
                    meta_str(&v, "namespace").unwrap_or_default()
                )
            })
        })
    }
}
