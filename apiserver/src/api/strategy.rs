//! What particular kinds add to the generic verbs, as kube-apiserver's per-kind
//! `RESTCreateStrategy`/`RESTUpdateStrategy`/`RESTDeleteStrategy` do.
//!
//! The generic verbs never ask which kind they are writing: each served [`Resource`] holds
//! the [`Strategy`] chosen for it by [`for_resource`] when the catalog builds it, and the
//! verbs call its hooks. A kind with no special behaviour gets [`Plain`]; every custom
//! resource gets [`Custom`]. Adding behaviour for a kind means one implementation here and
//! one row in [`for_resource`].

use std::fmt;

use serde_json::{Value, json};

use super::{Api, data, invalid, schema_error, tokens};
use crate::{
    catalog::Resource,
    error::ApiError,
    meta::{self, deleting, meta_str},
    schema,
    store::{Change, Entry, ObjKey, Precondition},
};

/// The group of the RBAC kinds, whose names follow a looser rule than other objects'.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Kind-specific behaviour of a resource's writes. Every hook has the behaviour of a kind
/// without special rules as its default, so an implementation states only what differs.
pub trait Strategy: fmt::Debug + Send + Sync {
    /// A short name, for logs and tests.
    fn name(&self) -> &'static str;

    /// Server-set fields of a new object, after its uid and creation time are set. Runs on
    /// creates only (including an apply that creates).
    fn prepare_create(&self, _res: &Resource, _new: &mut Value) {}

    /// Defaults and checks of the kind on every write; `old` is `None` on a create. Runs
    /// after server-owned metadata and the status/spec split are settled, before the name is
    /// validated.
    fn prepare(
        &self,
        _res: &Resource,
        _old: Option<&Value>,
        _new: &mut Value,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    /// Why `name` is not a valid name for the kind, or `None`.
    fn validate_name(&self, _res: &Resource, name: &str) -> Option<String> {
        meta::invalid_subdomain(name)
    }

    /// Whether the kind accepts strategic merge patches (which need the Go struct tags only
    /// built-in kinds have).
    fn strategic_merge(&self) -> bool {
        true
    }

    /// Whether a DELETE only marks the object as deleting even when it has no finalizers,
    /// leaving its removal to a controller.
    fn defers_removal(&self) -> bool {
        false
    }

    /// Whether the object `name` may be deleted at all (checked before anything else of a
    /// DELETE).
    fn validate_delete(&self, _res: &Resource, _name: &str) -> Result<(), ApiError> {
        Ok(())
    }

    /// Whether objects of the kind carry `metadata.generation` (kinds with a spec whose
    /// changes a controller observes); kube-apiserver sets none on the others.
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Changes to the object a DELETE marks as deleting (or finds already marked).
    fn on_delete(&self, _obj: &mut Value) {}

    /// Whether an object being deleted, with no finalizers left, must still be kept: its kind
    /// has finalization of its own that is not done.
    fn still_finalizing(&self, _obj: &Value) -> bool {
        false
    }

    /// Effects of a committed create or update beyond the object itself.
    fn after_save(&self, _api: &Api, _stored: &Entry) {}

    /// Effects of a committed removal beyond the object itself.
    fn after_delete(&self, _api: &Api, _key: &ObjKey) {}
}

/// The strategy of the resource `group/plural`; `custom` when it is served from a CRD (a
/// custom resource never gets a built-in kind's strategy, whatever its names).
pub fn for_resource(group: &str, plural: &str, custom: bool) -> &'static dyn Strategy {
    if custom {
        return &Custom;
    }
    match (group, plural) {
        ("", "secrets") => &Secret,
        ("", "configmaps") => &ConfigMap,
        ("apps", "deployments") => &Deployment,
        ("", "namespaces") => &Namespace,
        ("apiextensions.k8s.io", "customresourcedefinitions") => &CustomResourceDefinition,
        (RBAC_GROUP, _) => &Rbac,
        _ => &Plain,
    }
}

/// Built-in kinds without rules of their own.
#[derive(Debug)]
pub struct Plain;

impl Strategy for Plain {
    fn name(&self) -> &'static str {
        "Plain"
    }
}

/// ConfigMaps: valid data keys, base64 `binaryData`, and `immutable`.
#[derive(Debug)]
pub struct ConfigMap;

impl Strategy for ConfigMap {
    fn name(&self) -> &'static str {
        "ConfigMap"
    }

    fn prepare(
        &self,
        res: &Resource,
        old: Option<&Value>,
        new: &mut Value,
    ) -> Result<(), ApiError> {
        data::check(res, old, new, &["data", "binaryData"], &["binaryData"])
    }
}

/// Deployments: a spec a controller observes, so a generation.
#[derive(Debug)]
pub struct Deployment;

impl Strategy for Deployment {
    fn name(&self) -> &'static str {
        "Deployment"
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}

/// Secrets: `stringData` folded into `data`, the default type (immutable once set), valid
/// base64 data, `immutable`, and service-account tokens.
#[derive(Debug)]
pub struct Secret;

impl Strategy for Secret {
    fn name(&self) -> &'static str {
        "Secret"
    }

    fn prepare_create(&self, _res: &Resource, new: &mut Value) {
        tokens::fill_service_account_token(new);
    }

    fn prepare(
        &self,
        res: &Resource,
        old: Option<&Value>,
        new: &mut Value,
    ) -> Result<(), ApiError> {
        use base64::Engine;
        if let Some(Value::Object(sd)) = new.as_object_mut().and_then(|m| m.remove("stringData")) {
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
        if let Some(old) = old
            && old.get("type") != new.get("type")
        {
            let name = meta_str(new, "name").unwrap_or_default().to_string();
            return Err(invalid(
                res,
                &name,
                schema::FieldError::invalid("type", new["type"].clone(), "field is immutable"),
            ));
        }
        data::check(res, old, new, &["data"], &["data"])
    }
}

/// The namespaces kube-apiserver refuses to delete.
pub const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// Namespaces: the `kubernetes` finalizer in `spec`, the phase, label-shaped names, and
/// removal left to the namespace controller (here: the GC), which empties them first.
#[derive(Debug)]
pub struct Namespace;

impl Strategy for Namespace {
    fn name(&self) -> &'static str {
        "Namespace"
    }

    fn prepare(
        &self,
        _res: &Resource,
        old: Option<&Value>,
        new: &mut Value,
    ) -> Result<(), ApiError> {
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
        Ok(())
    }

    fn validate_name(&self, _res: &Resource, name: &str) -> Option<String> {
        meta::invalid_label(name)
    }

    fn validate_delete(&self, res: &Resource, name: &str) -> Result<(), ApiError> {
        if PROTECTED_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(
                &res.plural,
                &res.group,
                name,
                "this namespace may not be deleted",
            ));
        }
        Ok(())
    }

    fn defers_removal(&self) -> bool {
        true
    }

    fn on_delete(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Terminating"});
    }

    fn still_finalizing(&self, obj: &Value) -> bool {
        obj.pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    }
}

/// CustomResourceDefinitions: checked to define servable resources, established at once
/// (status written by the server), and served or no longer served as they are stored or
/// removed.
#[derive(Debug)]
pub struct CustomResourceDefinition;

impl Strategy for CustomResourceDefinition {
    fn name(&self) -> &'static str {
        "CustomResourceDefinition"
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare(
        &self,
        res: &Resource,
        old: Option<&Value>,
        new: &mut Value,
    ) -> Result<(), ApiError> {
        let resources = crate::catalog::resources_of_crd(new).map_err(|e| {
            ApiError::invalid(
                "CustomResourceDefinition",
                "apiextensions.k8s.io",
                meta_str(new, "name").unwrap_or(""),
                &[schema_error("", &e.to_string())],
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
        Ok(())
    }

    fn after_save(&self, api: &Api, stored: &Entry) {
        if let Err(e) = api.catalog.register_crd(&stored.value()) {
            tracing::warn!(error = %e, "stored CRD cannot be served");
        }
    }

    fn after_delete(&self, api: &Api, key: &ObjKey) {
        // Deleting a CRD deletes its objects and stops serving it.
        if let Some((plural, group)) = key.name.split_once('.') {
            let gr = format!("{group}/{plural}");
            for (k, e) in api.store.list(&gr, None).1 {
                let _ = api.store.commit(&k, Precondition::At(e.rv), Change::Delete);
            }
            api.catalog.unregister(group, plural);
        }
    }
}

/// Roles, ClusterRoles and their bindings: names are path segments, so that
/// `system:controller:x` is a valid role name.
#[derive(Debug)]
pub struct Rbac;

impl Strategy for Rbac {
    fn name(&self) -> &'static str {
        "Rbac"
    }

    fn validate_name(&self, _res: &Resource, name: &str) -> Option<String> {
        meta::invalid_path_segment(name)
    }
}

/// Custom resources: a status subresource is written only through it (so a create drops
/// it), and strategic merge patches are refused (no Go struct tags to merge by). Their
/// schema and CEL rules are admission's business, as every served schema is.
#[derive(Debug)]
pub struct Custom;

impl Strategy for Custom {
    fn name(&self) -> &'static str {
        "Custom"
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_create(&self, res: &Resource, new: &mut Value) {
        if res.status {
            new.as_object_mut().expect("object").remove("status");
        }
    }

    fn validate_name(&self, res: &Resource, name: &str) -> Option<String> {
        // The name rule has always followed the group, so a CRD serving a resource in the
        // RBAC group keeps the RBAC rule.
        if res.group == RBAC_GROUP {
            Rbac.validate_name(res, name)
        } else {
            meta::invalid_subdomain(name)
        }
    }

    fn strategic_merge(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, resources_of_crd};

    #[test]
    fn each_resource_gets_the_strategy_of_its_kind() {
        let table = [
            ("", "secrets", false, "Secret"),
            ("", "namespaces", false, "Namespace"),
            (
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                false,
                "CustomResourceDefinition",
            ),
            (RBAC_GROUP, "roles", false, "Rbac"),
            (RBAC_GROUP, "clusterroles", false, "Rbac"),
            (RBAC_GROUP, "rolebindings", false, "Rbac"),
            (RBAC_GROUP, "clusterrolebindings", false, "Rbac"),
            ("", "configmaps", false, "ConfigMap"),
            ("", "serviceaccounts", false, "Plain"),
            ("", "events", false, "Plain"),
            ("", "nodes", false, "Plain"),
            ("apps", "deployments", false, "Deployment"),
            ("coordination.k8s.io", "leases", false, "Plain"),
            ("events.k8s.io", "events", false, "Plain"),
            // Same plural, other group: not the core kind.
            ("example.com", "secrets", false, "Plain"),
            ("apiextensions.k8s.io", "secrets", false, "Plain"),
            // Custom resources never take a built-in kind's strategy.
            ("cluster.x-k8s.io", "clusters", true, "Custom"),
            ("", "secrets", true, "Custom"),
            ("", "namespaces", true, "Custom"),
            (RBAC_GROUP, "roles", true, "Custom"),
        ];
        for (group, plural, custom, want) in table {
            assert_eq!(
                for_resource(group, plural, custom).name(),
                want,
                "{group}/{plural} (custom: {custom})"
            );
        }
    }

    #[test]
    fn the_catalog_gives_every_served_resource_its_strategy() {
        let catalog = Catalog::new();
        let got: Vec<(String, &str)> = catalog
            .all()
            .iter()
            .map(|r| (r.gr(), r.strategy.name()))
            .collect();
        let want = [
            ("/configmaps", "ConfigMap"),
            ("/events", "Plain"),
            ("/namespaces", "Namespace"),
            ("/nodes", "Plain"),
            ("/pods", "Plain"),
            ("/secrets", "Secret"),
            ("/serviceaccounts", "Plain"),
            ("/services", "Plain"),
            (
                "apiextensions.k8s.io/customresourcedefinitions",
                "CustomResourceDefinition",
            ),
            ("apps/daemonsets", "Plain"),
            ("apps/deployments", "Deployment"),
            ("coordination.k8s.io/leases", "Plain"),
            ("events.k8s.io/events", "Plain"),
            ("policy/poddisruptionbudgets", "Plain"),
            ("rbac.authorization.k8s.io/clusterrolebindings", "Rbac"),
            ("rbac.authorization.k8s.io/clusterroles", "Rbac"),
            ("rbac.authorization.k8s.io/rolebindings", "Rbac"),
            ("rbac.authorization.k8s.io/roles", "Rbac"),
        ];
        let want: Vec<(String, &str)> = want.iter().map(|(g, s)| (g.to_string(), *s)).collect();
        assert_eq!(got, want);

        let crd = json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true}]}});
        let served = resources_of_crd(&crd).unwrap();
        assert_eq!(served[0].strategy.name(), "Custom");
    }

    #[test]
    fn an_unservable_crd_names_the_field_at_fault() {
        use crate::catalog::CrdError;
        let mut crd = json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": false}]}});
        let e = resources_of_crd(&crd).unwrap_err();
        assert_eq!(e, CrdError::StorageVersion);
        crd["spec"]["scope"] = json!("Galaxy");
        let e = resources_of_crd(&crd).unwrap_err();
        assert_eq!(e, CrdError::Scope(Some("Galaxy".into())));
        assert_eq!(
            e.to_string(),
            r#"spec.scope: Unsupported value: Some("Galaxy"): supported values: "Cluster", "Namespaced""#
        );
        crd["spec"].as_object_mut().unwrap().remove("group");
        let e = resources_of_crd(&crd).unwrap_err();
        assert_eq!(e, CrdError::Required("spec.group"));
        assert_eq!(e.to_string(), "spec.group: Required value");
    }

    #[test]
    fn name_rules_follow_the_strategy() {
        let res = |group: &str, plural: &str, custom: bool| {
            let mut r = Catalog::new()
                .all()
                .into_iter()
                .next()
                .map(|r| (*r).clone())
                .unwrap();
            r.group = group.into();
            r.plural = plural.into();
            r.custom = custom;
            r.strategy = for_resource(group, plural, custom);
            r
        };
        let ok = |r: &Resource, name: &str| r.strategy.validate_name(r, name).is_none();
        let role = res(RBAC_GROUP, "roles", false);
        assert!(ok(&role, "system:controller:x"));
        let cm = res("", "configmaps", false);
        assert!(!ok(&cm, "system:controller:x"));
        assert!(ok(&cm, "a.b-c"));
        let ns = res("", "namespaces", false);
        assert!(!ok(&ns, "a.b"), "a namespace name is a label");
        let custom_rbac = res(RBAC_GROUP, "widgets", true);
        assert!(ok(&custom_rbac, "system:controller:x"));
        let custom = res("example.com", "widgets", true);
        assert!(!ok(&custom, "system:controller:x"));
    }
}
