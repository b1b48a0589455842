//! The one reconcile skeleton every reconciler uses, core and provider alike:
//!
//! 1. [`dispatch`]: the finalizer decides between `apply` (the object lives: the finalizer is
//!    added first) and `cleanup` (it is being deleted: the finalizer goes only when cleanup
//!    returns `Ok`);
//! 2. [`is_paused`] / [`paused_condition`]: the Cluster's `spec.paused` and the
//!    `cluster.x-k8s.io/paused` annotation stop all work but the Paused condition;
//! 3. [`write_status`]: the status is computed from the old one, conditions set with the
//!    generation observed, and written once, only when it changed (no hot loops: a reconcile
//!    at rest writes nothing).

use std::{collections::BTreeMap, fmt::Debug, future::Future, sync::Arc};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        finalizer::{Event, finalizer},
    },
};
use serde::{Serialize, de::DeserializeOwned};
use slipway_api::{Cluster, names::annotations};

use crate::{Error, conditions};

/// Finalizer dispatch: `apply` while the object lives (after its finalizer is in place),
/// `cleanup` once it is being deleted (the finalizer goes when cleanup returns `Ok`).
pub async fn dispatch<K, A, AF, C, CF>(
    api: &Api<K>,
    finalizer_name: &str,
    obj: Arc<K>,
    apply: A,
    cleanup: C,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug,
    A: FnOnce(Arc<K>) -> AF,
    AF: Future<Output = Result<Action, Error>>,
    C: FnOnce(Arc<K>) -> CF,
    CF: Future<Output = Result<Action, Error>>,
{
    // `slipway move` is handing the object over to another management cluster: neither
    // re-add the finalizer it removed nor tear down what the object stands for.
    if obj.annotations().contains_key(annotations::DELETE_FOR_MOVE) {
        return Ok(Action::await_change());
    }
    if obj.meta().deletion_timestamp.is_none()
        && !obj.finalizers().iter().any(|f| f == finalizer_name)
    {
        return add_finalizer(api, finalizer_name, obj.as_ref()).await;
    }
    let (meta, deleting) = (obj.meta().clone(), obj.meta().deletion_timestamp.is_some());
    let out = finalizer(api, finalizer_name, obj, |event| async move {
        match event {
            Event::Apply(o) => apply(o).await,
            Event::Cleanup(o) => cleanup(o).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    if deleting && out.is_ok() {
        crate::stale::forget(&meta);
    }
    out
}

/// Adds the finalizer as kube's finalizer helper does (a JSON patch that tests the list it
/// extends, so a concurrent change fails instead of being overwritten), and records the version
/// it read as superseded: the watch brings the new version, which triggers the next pass.
async fn add_finalizer<K>(api: &Api<K>, finalizer_name: &str, obj: &K) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    use json_patch::{AddOperation, PatchOperation, TestOperation, jsonptr::PointerBuf};
    let pointer = |p: &str| p.parse::<PointerBuf>().expect("a valid JSON pointer");
    let current = obj.finalizers();
    let ops = if current.is_empty() {
        vec![
            PatchOperation::Test(TestOperation {
                path: pointer("/metadata/finalizers"),
                value: serde_json::Value::Null,
            }),
            PatchOperation::Add(AddOperation {
                path: pointer("/metadata/finalizers"),
                value: serde_json::json!([finalizer_name]),
            }),
        ]
    } else {
        vec![
            PatchOperation::Test(TestOperation {
                path: pointer("/metadata/finalizers"),
                value: serde_json::json!(current),
            }),
            PatchOperation::Add(AddOperation {
                path: pointer("/metadata/finalizers/-"),
                value: finalizer_name.into(),
            }),
        ]
    };
    let name = obj.meta().name.as_deref().unwrap_or_default();
    let written = api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::<()>::Json(json_patch::Patch(ops)),
        )
        .await
        .map_err(|e| {
            Error::Finalizer(Box::new(kube::runtime::finalizer::Error::AddFinalizer(e)))
        })?;
    crate::stale::superseded(obj.meta(), written.meta());
    Ok(Action::await_change())
}

/// Whether work on an object of `cluster` is paused: the Cluster's `spec.paused`, or the
/// paused annotation on the Cluster or on the object itself.
pub fn is_paused(cluster: &Cluster, object_annotations: &BTreeMap<String, String>) -> bool {
    cluster.spec.paused.unwrap_or(false)
        || cluster.annotations().contains_key(annotations::PAUSED)
        || object_annotations.contains_key(annotations::PAUSED)
}

/// Sets the Paused condition from [`is_paused`] and returns whether the object is paused.
pub fn paused_condition(
    conds: &mut Vec<Condition>,
    cluster: &Cluster,
    object_annotations: &BTreeMap<String, String>,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let paused = is_paused(cluster, object_annotations);
    conditions::set(conds, conditions::paused(paused), generation, now);
    paused
}

/// One status write per reconcile, only when the status changed: writes `new` as a merge
/// patch of the object's status when it differs from `old` (`None`: no status yet); returns
/// whether it wrote. `meta` is the object the status was computed from: its resourceVersion
/// guards the write, so a pass that read a stale cache (the informer has not yet seen this
/// controller's previous write) fails with 409 Conflict, which the runner retries quietly once
/// the cache caught up, instead of rewriting the same status with new transition times.
pub async fn write_status<K, S>(
    api: &Api<K>,
    meta: &ObjectMeta,
    old: Option<&S>,
    new: &S,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if old == Some(new) {
        return Ok(false);
    }
    let name = meta.name.as_deref().unwrap_or_default();
    let patch = match &meta.resource_version {
        Some(rv) => serde_json::json!({ "metadata": {"resourceVersion": rv}, "status": new }),
        None => serde_json::json!({ "status": new }),
    };
    let written = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    crate::stale::superseded(meta, written.meta());
    Ok(true)
}

/// Restamps every condition's `observedGeneration` after this pass wrote the object's own
/// spec (an endpoint, a providerID): the status it computed covers that spec, so it is
/// written once with the new generation instead of once more on the next pass.
pub fn restamp_generation(conds: &mut [Condition], generation: Option<i64>) {
    for c in conds {
        c.observed_generation = generation;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(paused: Option<bool>, annotated: bool) -> Cluster {
        let mut c = Cluster::new("c", Default::default());
        c.spec.paused = paused;
        if annotated {
            c.metadata.annotations = Some(BTreeMap::from([(
                annotations::PAUSED.to_string(),
                String::new(),
            )]));
        }
        c
    }

    #[test]
    fn paused_by_spec_cluster_annotation_or_object_annotation() {
        let none = BTreeMap::new();
        let own = BTreeMap::from([(annotations::PAUSED.to_string(), String::new())]);
        assert!(!is_paused(&cluster(None, false), &none));
        assert!(!is_paused(&cluster(Some(false), false), &none));
        assert!(is_paused(&cluster(Some(true), false), &none));
        assert!(is_paused(&cluster(None, true), &none));
        assert!(is_paused(&cluster(None, false), &own));
    }

    #[test]
    fn paused_condition_records_the_generation_and_time() {
        let now = Timestamp::from_second(1_000).unwrap();
        let mut conds = Vec::new();
        assert!(paused_condition(
            &mut conds,
            &cluster(Some(true), false),
            &BTreeMap::new(),
            Some(3),
            now
        ));
        let c = &conds[0];
        assert_eq!(c.type_, slipway_api::names::conditions::PAUSED);
        assert_eq!(c.status, "True");
        assert_eq!(c.observed_generation, Some(3));
        assert_eq!(c.last_transition_time.0.as_second(), 1_000);
    }
}
