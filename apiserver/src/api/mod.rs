//! The resource verbs and the state they share.
//!
//! This module owns the request-facing surface ([`Api`], [`Call`], [`Part`]) and the reads;
//! the rest of a verb lives in a submodule by concern:
//! - `write`: create, update and patch (including server-side apply);
//! - `delete`: delete and deletecollection, with preconditions and propagation;
//! - `paging`: list with selectors and continue tokens;
//! - `admission`: what every write passes through before it is committed ([`Api::prepare`])
//!   and the finalizer-aware commit ([`Api::save`]);
//! - [`strategy`]: what particular kinds add to that (Secret, Namespace, CRD, RBAC, custom
//!   resources), chosen once per served resource;
//! - `tokens`: service-account token Secrets and the identities they authenticate.
//!
//! Watch lives in [`crate::watch`].

mod admission;
mod data;
mod delete;
mod paging;
pub mod strategy;
mod tokens;
mod write;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

pub use tokens::SA_TOKEN_TYPE;

use crate::{
    catalog::{Catalog, Resource},
    error::ApiError,
    request::{Query, Target},
    schema,
    store::{Entry, ObjKey, Store, StoreError},
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
        self.at_version(&call.res, &e.value())
    }

    /// GET of one object as served on the wire: the stored bytes, unparsed, when the versions
    /// agree (most reads of a controller).
    pub fn get_raw(&self, call: &Call<'_>, name: &str) -> Result<Bytes, ApiError> {
        let e = self
            .store
            .get(&call.key(name))
            .ok_or_else(|| call.not_found(name))?;
        self.raw_at_version(&call.res, &e)
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
        let kind_differs = obj
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| !k.is_empty() && k != call.res.kind);
        let version_differs = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty() && v != call.res.api_version());
        if kind_differs || version_differs {
            let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
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
