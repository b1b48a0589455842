//! Pure planning of a ClusterResourceSet: reading a ConfigMap's or Secret's data into objects
//! and a hash, deciding per resource and cluster whether to apply, updating the binding's
//! entry, and summarizing the outcome into the `ResourcesApplied` condition.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;
use slipway_api::addons::{
    self, ClusterResourceSetBindingSpec, RECONCILE, ResourceBinding, ResourceRef,
    ResourceSetBinding, reasons,
};
use slipway_runtime::conditions::{Desired, Status, desired};

/// What a referenced ConfigMap or Secret gives.
#[derive(Clone, Debug, PartialEq)]
pub struct Content {
    /// `sha256:<hex>` over the sorted keys and values of its data.
    pub hash: String,
    /// The objects its values hold, in apply order.
    pub objects: Vec<Value>,
}

/// Why a resource could not be used.
#[derive(Clone, Debug, PartialEq)]
pub enum Unusable {
    /// It does not exist.
    Missing,
    /// A Secret of another type than `addons.cluster.x-k8s.io/resource-set`.
    WrongSecretType(String),
    /// Its data does not hold manifests (which key, why).
    Invalid(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Missing => write!(f, "not found"),
            Unusable::WrongSecretType(t) => write!(
                f,
                "Secret type {t:?} is not supported (use {:?})",
                addons::SECRET_TYPE
            ),
            Unusable::Invalid(why) => write!(f, "{why}"),
        }
    }
}

/// `sha256:<hex>` of data values, keys sorted (a map iterates sorted), so a reordered
/// manifest key set hashes the same and any change of a value does not.
pub fn content_hash(data: &BTreeMap<String, String>) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for (k, v) in data {
        ctx.update(k.as_bytes());
        ctx.update(&[0]);
        ctx.update(v.as_bytes());
        ctx.update(&[0]);
    }
    let hex: String = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Kinds applied before the others: what later objects live in or are instances of.
fn rank(obj: &Value) -> u8 {
    match obj.get("kind").and_then(Value::as_str) {
        Some("CustomResourceDefinition") => 0,
        Some("Namespace") => 1,
        _ => 2,
    }
}

/// The objects of data values (each a YAML or JSON stream of one or more documents; `List`
/// kinds are flattened), every one with apiVersion, kind and metadata.name; CRDs and
/// Namespaces first, otherwise in key then document order.
pub fn objects_of(data: &BTreeMap<String, String>) -> Result<Vec<Value>, Unusable> {
    let mut out = Vec::new();
    for (key, text) in data {
        let docs: Vec<Value> = serde_saphyr::from_multiple(text)
            .map_err(|e| Unusable::Invalid(format!("key {key:?}: not YAML: {e}")))?;
        for doc in docs {
            if doc.is_null() {
                continue;
            }
            let items = match doc.get("items") {
                Some(Value::Array(items))
                    if doc
                        .get("kind")
                        .and_then(Value::as_str)
                        .is_some_and(|k| k.ends_with("List")) =>
                {
                    items.clone()
                }
                _ => vec![doc],
            };
            for obj in items {
                for field in ["apiVersion", "kind"] {
                    if obj
                        .get(field)
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        return Err(Unusable::Invalid(format!(
                            "key {key:?}: an object has no {field}"
                        )));
                    }
                }
                if obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err(Unusable::Invalid(format!(
                        "key {key:?}: a {} has no metadata.name",
                        obj["kind"].as_str().unwrap_or_default()
                    )));
                }
                out.push(obj);
            }
        }
    }
    out.sort_by_key(rank);
    Ok(out)
}

/// Whether a resource with content `hash` needs applying given what the binding recorded:
/// not yet applied always; applied again under `Reconcile` when the hash changed.
pub fn needs_apply(strategy: &str, prior: Option<&ResourceBinding>, hash: &str) -> bool {
    match prior {
        Some(p) if p.applied => strategy == RECONCILE && p.hash.as_deref() != Some(hash),
        _ => true,
    }
}

/// The binding's entry for a ClusterResourceSet, if any.
pub fn entry<'a>(
    spec: &'a ClusterResourceSetBindingSpec,
    crs: &str,
) -> Option<&'a ResourceSetBinding> {
    spec.bindings
        .iter()
        .flatten()
        .find(|b| b.cluster_resource_set_name == crs)
}

/// The recorded state of one resource in a binding entry.
pub fn resource_of<'a>(
    entry: Option<&'a ResourceSetBinding>,
    r: &ResourceRef,
) -> Option<&'a ResourceBinding> {
    entry?
        .resources
        .iter()
        .flatten()
        .find(|b| b.name == r.name && b.kind == r.kind)
}

/// Records the outcome of one resource in the binding entry of `crs` (created when missing).
pub fn record(
    spec: &mut ClusterResourceSetBindingSpec,
    crs: &str,
    r: &ResourceRef,
    hash: Option<String>,
    applied_at: Option<Time>,
    applied: bool,
) {
    let bindings = spec.bindings.get_or_insert_with(Vec::new);
    let idx = match bindings
        .iter()
        .position(|b| b.cluster_resource_set_name == crs)
    {
        Some(i) => i,
        None => {
            bindings.push(ResourceSetBinding {
                cluster_resource_set_name: crs.into(),
                resources: Some(vec![]),
            });
            bindings.len() - 1
        }
    };
    let resources = bindings[idx].resources.get_or_insert_with(Vec::new);
    let new = ResourceBinding {
        name: r.name.clone(),
        kind: r.kind.clone(),
        hash,
        last_applied_time: applied_at,
        applied,
    };
    match resources
        .iter_mut()
        .find(|b| b.name == r.name && b.kind == r.kind)
    {
        Some(old) => *old = new,
        None => resources.push(new),
    }
}

/// Removes the entry of `crs`; returns whether there was one.
pub fn remove(spec: &mut ClusterResourceSetBindingSpec, crs: &str) -> bool {
    let Some(b) = spec.bindings.as_mut() else {
        return false;
    };
    let before = b.len();
    b.retain(|e| e.cluster_resource_set_name != crs);
    b.len() != before
}

/// One failure: a resource (or one object of it) that did not reach one cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The Cluster.
    pub cluster: String,
    /// The resource.
    pub resource: ResourceRef,
    /// What failed, naming the object where one object failed.
    pub message: String,
    /// The Secret had the wrong type.
    pub wrong_type: bool,
}

/// The `ResourcesApplied` condition from every failure of a pass (`None`: nothing was
/// attempted yet, no cluster selected and ready).
pub fn resources_applied(failures: &[Failure], attempted: bool) -> Option<Desired> {
    if failures.is_empty() {
        return attempted.then(|| {
            desired(
                addons::RESOURCES_APPLIED,
                Status::True,
                reasons::APPLIED,
                "",
            )
        });
    }
    let reason = if failures.iter().all(|f| f.wrong_type) {
        reasons::WRONG_SECRET_TYPE
    } else {
        reasons::NOT_APPLIED
    };
    let mut lines: Vec<String> = failures
        .iter()
        .map(|f| format!("* Cluster {}: {}: {}", f.cluster, f.resource, f.message))
        .collect();
    lines.sort();
    lines.dedup();
    Some(desired(
        addons::RESOURCES_APPLIED,
        Status::False,
        reason,
        lines.join("\n"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_api::addons::APPLY_ONCE;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn applied(hash: &str) -> ResourceBinding {
        ResourceBinding {
            name: "cni".into(),
            kind: "ConfigMap".into(),
            hash: Some(hash.into()),
            last_applied_time: None,
            applied: true,
        }
    }

    #[test]
    fn apply_decisions_by_strategy_and_hash() {
        let not_applied = ResourceBinding {
            applied: false,
            ..applied("h1")
        };
        let table = [
            (APPLY_ONCE, None, "h1", true),
            (APPLY_ONCE, Some(applied("h1")), "h1", false),
            (APPLY_ONCE, Some(applied("h1")), "h2", false),
            (APPLY_ONCE, Some(not_applied.clone()), "h1", true),
            (RECONCILE, None, "h1", true),
            (RECONCILE, Some(applied("h1")), "h1", false),
            (RECONCILE, Some(applied("h1")), "h2", true),
            (RECONCILE, Some(not_applied), "h1", true),
        ];
        for (strategy, prior, hash, want) in table {
            assert_eq!(
                needs_apply(strategy, prior.as_ref(), hash),
                want,
                "{strategy} {prior:?} {hash}"
            );
        }
    }

    #[test]
    fn hash_is_stable_over_key_order_and_changes_with_any_value() {
        let a = content_hash(&data(&[("a", "x"), ("b", "y")]));
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64, "{a}");
        let mut m = BTreeMap::new();
        m.insert("b".to_string(), "y".to_string());
        m.insert("a".to_string(), "x".to_string());
        assert_eq!(content_hash(&m), a);
        assert_ne!(content_hash(&data(&[("a", "x"), ("b", "z")])), a);
        // Key/value boundaries count: "ab"+"c" is not "a"+"bc".
        assert_ne!(
            content_hash(&data(&[("ab", "c")])),
            content_hash(&data(&[("a", "bc")]))
        );
    }

    #[test]
    fn manifests_split_into_objects_with_crds_and_namespaces_first() {
        let objs = objects_of(&data(&[
            (
                "a.yaml",
                "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa, namespace: kube-system}\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: calico}\n",
            ),
            (
                "b.json",
                r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"x.y"}},{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"ds"}}]}"#,
            ),
        ]))
        .unwrap();
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "CustomResourceDefinition",
                "Namespace",
                "ServiceAccount",
                "DaemonSet"
            ]
        );
    }

    #[test]
    fn bad_manifests_name_the_key_and_the_gap() {
        let e = objects_of(&data(&[("k", "kind: ConfigMap\nmetadata: {name: x}\n")])).unwrap_err();
        assert_eq!(e.to_string(), "key \"k\": an object has no apiVersion");
        let e = objects_of(&data(&[("k", "apiVersion: v1\nkind: ConfigMap\n")])).unwrap_err();
        assert_eq!(e.to_string(), "key \"k\": a ConfigMap has no metadata.name");
        let e = objects_of(&data(&[("k", "a: [1, 2")])).unwrap_err();
        assert!(e.to_string().starts_with("key \"k\": not YAML"), "{e}");
    }

    #[test]
    fn binding_entries_are_recorded_replaced_and_removed() {
        let mut spec = ClusterResourceSetBindingSpec {
            cluster_name: "c".into(),
            bindings: None,
        };
        let r = ResourceRef {
            name: "cni".into(),
            kind: "ConfigMap".into(),
        };
        record(&mut spec, "crs", &r, Some("h1".into()), None, true);
        record(&mut spec, "crs", &r, Some("h2".into()), None, true);
        record(&mut spec, "other", &r, Some("h1".into()), None, false);
        let e = entry(&spec, "crs").unwrap();
        assert_eq!(e.resources.as_ref().unwrap().len(), 1);
        assert_eq!(
            resource_of(Some(e), &r).unwrap().hash.as_deref(),
            Some("h2")
        );
        assert!(!resource_of(entry(&spec, "other"), &r).unwrap().applied);
        assert!(remove(&mut spec, "crs"));
        assert!(!remove(&mut spec, "crs"));
        assert!(entry(&spec, "crs").is_none());
        assert_eq!(spec.bindings.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn the_condition_names_every_failing_object() {
        assert_eq!(resources_applied(&[], false), None);
        let ok = resources_applied(&[], true).unwrap();
        assert_eq!((ok.status, ok.reason.as_str()), (Status::True, "Applied"));
        let f = |cluster: &str, wrong_type: bool, message: &str| Failure {
            cluster: cluster.into(),
            resource: ResourceRef {
                name: "cni".into(),
                kind: if wrong_type { "Secret" } else { "ConfigMap" }.into(),
            },
            message: message.into(),
            wrong_type,
        };
        let c = resources_applied(
            &[
                f(
                    "b",
                    false,
                    "DaemonSet kube-system/calico-node: the server is down",
                ),
                f("a", true, "Secret type \"Opaque\" is not supported"),
            ],
            true,
        )
        .unwrap();
        assert_eq!((c.status, c.reason.as_str()), (Status::False, "NotApplied"));
        assert_eq!(
            c.message,
            "* Cluster a: Secret cni: Secret type \"Opaque\" is not supported\n* Cluster b: ConfigMap cni: DaemonSet kube-system/calico-node: the server is down"
        );
        let c = resources_applied(&[f("a", true, "x")], true).unwrap();
        assert_eq!(c.reason, "WrongSecretType");
    }
}
