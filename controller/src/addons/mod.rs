//! ClusterResourceSet reconciler (upstream `exp/addons`). Thin entry: finalizer dispatch to
//! [`apply`] / [`cleanup`]; decisions are the pure functions of [`plan`].
//!
//! apply: the Clusters in the set's namespace matching `clusterSelector` whose control plane is
//! initialized get every resource (ConfigMap, or Secret of type
//! `addons.cluster.x-k8s.io/resource-set`) server-side applied into their workload cluster;
//! the ClusterResourceSetBinding named after each Cluster records per resource whether it was
//! applied, when, and the hash of its data. `ApplyOnce` never applies a recorded resource
//! again; `Reconcile` re-applies when the hash changes. Clusters that stop matching lose this
//! set's entry in their binding (what was applied stays in the workload cluster, as upstream).
//! Failures land in `ResourcesApplied`, naming the cluster, resource and object.
//!
//! cleanup: the set's entry goes from every binding of the namespace (a binding left empty
//! is deleted).

pub mod plan;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::{
    api::core::v1::{ConfigMap, Secret},
    apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference, Time},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
        PostParams,
    },
    discovery::{ApiCapabilities, Scope},
    runtime::controller::Action,
};
use serde_json::{Value, json};
use slipway_api::{
    Cluster, ClusterResourceSet, ClusterResourceSetBinding,
    addons::{self, ClusterResourceSetBindingSpec, ClusterResourceSetStatus, ResourceRef},
    names::labels,
};
use slipway_runtime::{
    Context, Error, conditions,
    reconcile::{dispatch, write_status},
};

use plan::{Content, Failure, Unusable};

/// Field manager of the server-side applies into workload clusters.
pub const FIELD_MANAGER: &str = "slipway-clusterresourceset";

/// Entry point: finalizer dispatch.
pub async fn reconcile(crs: Arc<ClusterResourceSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = crs.namespace().unwrap_or_default();
    let api: Api<ClusterResourceSet> = Api::namespaced(ctx.client.clone(), &ns);
    let (ctx, api) = (&ctx, &api);
    dispatch(
        api,
        addons::FINALIZER,
        crs,
        |c| async move { apply(&c, ctx, api).await },
        |c| async move { cleanup(&c, ctx).await },
    )
    .await
}

/// A label selector in the query-string form (`k=v,k in (a,b),!k`).
pub fn selector_string(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// A ConfigMap's or Secret's data as text.
async fn fetch(
    ctx: &Context,
    ns: &str,
    r: &ResourceRef,
) -> Result<Result<(BTreeMap<String, String>, Vec<OwnerReference>), Unusable>, Error> {
    let decode = |k: &String, bytes: &[u8]| {
        String::from_utf8(bytes.to_vec())
            .map_err(|_| Unusable::Invalid(format!("key {k:?}: not UTF-8 text")))
    };
    match r.kind.as_str() {
        "ConfigMap" => {
            let Some(cm) = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
                .get_opt(&r.name)
                .await?
            else {
                return Ok(Err(Unusable::Missing));
            };
            let mut data = cm.data.clone().unwrap_or_default();
            for (k, v) in cm.binary_data.iter().flatten() {
                match decode(k, &v.0) {
                    Ok(s) => data.insert(k.clone(), s),
                    Err(e) => return Ok(Err(e)),
                };
            }
            Ok(Ok((data, cm.owner_references().to_vec())))
        }
        _ => {
            let Some(s) = Api::<Secret>::namespaced(ctx.client.clone(), ns)
                .get_opt(&r.name)
                .await?
            else {
                return Ok(Err(Unusable::Missing));
            };
            let type_ = s.type_.clone().unwrap_or_else(|| "Opaque".into());
            if type_ != addons::SECRET_TYPE {
                return Ok(Err(Unusable::WrongSecretType(type_)));
            }
            let mut data = BTreeMap::new();
            for (k, v) in s.data.iter().flatten() {
                match decode(k, &v.0) {
                    Ok(s) => data.insert(k.clone(), s),
                    Err(e) => return Ok(Err(e)),
                };
            }
            for (k, v) in s.string_data.iter().flatten() {
                data.insert(k.clone(), v.clone());
            }
            Ok(Ok((data, s.owner_references().to_vec())))
        }
    }
}

/// Upstream makes every resource of a set owned by it (not controlled), so deleting the set
/// lets the garbage collector take resources no other set owns.
async fn ensure_owned(
    ctx: &Context,
    ns: &str,
    r: &ResourceRef,
    refs: &[OwnerReference],
    crs: &ClusterResourceSet,
) -> Result<(), Error> {
    let uid = crs.uid().unwrap_or_default();
    if refs.iter().any(|o| o.uid == uid) {
        return Ok(());
    }
    let mut owner = crs.controller_owner_ref(&()).ok_or_else(|| Error::NoUid {
        kind: "ClusterResourceSet".into(),
        name: crs.name_any(),
    })?;
    owner.controller = None;
    owner.block_owner_deletion = None;
    let mut all = refs.to_vec();
    all.push(owner);
    let patch = Patch::Merge(json!({"metadata": {"ownerReferences": all}}));
    let pp = PatchParams::default();
    if r.kind == "ConfigMap" {
        Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
            .patch(&r.name, &pp, &patch)
            .await?;
    } else {
        Api::<Secret>::namespaced(ctx.client.clone(), ns)
            .patch(&r.name, &pp, &patch)
            .await?;
    }
    Ok(())
}

/// Server-side applies `objects` into a workload cluster; the error names the object.
async fn apply_objects(client: &Client, objects: &[Value]) -> Result<(), String> {
    let mut kinds: BTreeMap<(String, String), (ApiResource, ApiCapabilities)> = BTreeMap::new();
    for obj in objects {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let key = (api_version.to_string(), kind.to_string());
        if !kinds.contains_key(&key) {
            let (group, version) = match api_version.split_once('/') {
                Some((g, v)) => (g, v),
                None => ("", api_version),
            };
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let found = kube::discovery::pinned_kind(client, &gvk)
                .await
                .map_err(|e| format!("{kind} {name}: {api_version} {kind} is not served: {e}"))?;
            kinds.insert(key.clone(), found);
        }
        let (ar, caps) = &kinds[&key];
        let (api, shown): (Api<DynamicObject>, String) = if caps.scope == Scope::Namespaced {
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("default");
            (
                Api::namespaced_with(client.clone(), ns, ar),
                format!("{kind} {ns}/{name}"),
            )
        } else {
            (Api::all_with(client.clone(), ar), format!("{kind} {name}"))
        };
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .map_err(|e| format!("{shown}: {e}"))?;
    }
    Ok(())
}

/// What one pass over the selected clusters found.
#[derive(Default)]
struct Pass {
    failures: Vec<Failure>,
    /// Some cluster was selected and reachable, so something was (or is) applied.
    attempted: bool,
    /// Some selected cluster is not ready yet (control plane, kubeconfig, reachability).
    waiting: bool,
}

async fn apply(
    crs: &ClusterResourceSet,
    ctx: &Context,
    api: &Api<ClusterResourceSet>,
) -> Result<Action, Error> {
    let ns = crs.namespace().unwrap_or_default();
    let old = crs.status.clone().unwrap_or_default();
    let mut conds = old.conditions.clone().unwrap_or_default();
    let g = crs.metadata.generation;
    let now = ctx.now();
    let paused = crs
        .annotations()
        .contains_key(slipway_api::names::annotations::PAUSED);
    conditions::set(&mut conds, conditions::paused(paused), g, now);
    let mut pass = Pass::default();
    if !paused {
        match reconcile_clusters(crs, ctx, &ns, &mut pass).await {
            Ok(()) => {}
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                conditions::set(
                    &mut conds,
                    conditions::desired(
                        addons::RESOURCES_APPLIED,
                        conditions::Status::False,
                        addons::reasons::INTERNAL_ERROR,
                        e.to_string(),
                    ),
                    g,
                    now,
                );
            }
        }
        if let Some(c) = plan::resources_applied(&pass.failures, pass.attempted) {
            conditions::set(&mut conds, c, g, now);
        }
    }
    let new = ClusterResourceSetStatus {
        conditions: Some(conds),
        observed_generation: g,
    };
    write_status(api, &crs.metadata, Some(&old), &new).await?;
    Ok(if !pass.failures.is_empty() {
        Action::requeue(Duration::from_secs(20))
    } else if pass.waiting {
        // A control plane initializing or a kubeconfig appearing changes the Cluster (watched),
        // but reachability of the workload API server does not: poll while waiting.
        Action::requeue(Duration::from_secs(5))
    } else {
        Action::await_change()
    })
}

async fn reconcile_clusters(
    crs: &ClusterResourceSet,
    ctx: &Context,
    ns: &str,
    pass: &mut Pass,
) -> Result<(), Error> {
    let name = crs.name_any();
    let clusters: Vec<Cluster> = Api::<Cluster>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(&selector_string(&crs.spec.cluster_selector)))
        .await?
        .items
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .collect();
    let bindings_api: Api<ClusterResourceSetBinding> = Api::namespaced(ctx.client.clone(), ns);
    // Clusters no longer selected stop being managed by this set.
    for b in bindings_api.list(&ListParams::default()).await?.items {
        if plan::entry(&b.spec, &name).is_some()
            && !clusters.iter().any(|c| c.name_any() == b.spec.cluster_name)
        {
            drop_entry(ctx, &bindings_api, b, crs).await?;
        }
    }
    let mut contents: Vec<(ResourceRef, Result<Content, Unusable>)> = Vec::new();
    for r in &crs.spec.resources {
        let got = match fetch(ctx, ns, r).await? {
            Ok((data, owners)) => {
                ensure_owned(ctx, ns, r, &owners, crs).await?;
                plan::objects_of(&data).map(|objects| Content {
                    hash: plan::content_hash(&data),
                    objects,
                })
            }
            Err(u) => Err(u),
        };
        contents.push((r.clone(), got));
    }
    for cluster in &clusters {
        let initialized = cluster
            .status
            .as_ref()
            .and_then(|s| s.initialization.as_ref())
            .and_then(|i| i.control_plane_initialized)
            .unwrap_or(false);
        if !initialized {
            pass.waiting = true;
            continue;
        }
        let cname = cluster.name_any();
        let client = match ctx.remote.client(&ctx.client, ns, &cname).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                pass.waiting = true;
                continue;
            }
            Err(e) => {
                for (r, _) in &contents {
                    pass.failures.push(Failure {
                        cluster: cname.clone(),
                        resource: r.clone(),
                        message: format!("no client of the workload cluster: {e}"),
                        wrong_type: false,
                    });
                }
                continue;
            }
        };
        pass.attempted = true;
        let existing = bindings_api.get_opt(&cname).await?;
        let mut spec = existing
            .as_ref()
            .map(|b| b.spec.clone())
            .unwrap_or_else(|| ClusterResourceSetBindingSpec {
                bindings: None,
                cluster_name: cname.clone(),
            });
        let before = spec.clone();
        for (r, content) in &contents {
            let content = match content {
                Ok(c) => c,
                Err(u) => {
                    pass.failures.push(Failure {
                        cluster: cname.clone(),
                        resource: r.clone(),
                        message: u.to_string(),
                        wrong_type: matches!(u, Unusable::WrongSecretType(_)),
                    });
                    continue;
                }
            };
            let prior = plan::resource_of(plan::entry(&spec, &name), r);
            if !plan::needs_apply(crs.spec.strategy(), prior, &content.hash) {
                continue;
            }
            let result = apply_objects(&client, &content.objects).await;
            let ok = result.is_ok();
            if let Err(message) = result {
                tracing::info!(crs = %name, cluster = %cname, resource = %r, %message, "applying a resource failed");
                pass.failures.push(Failure {
                    cluster: cname.clone(),
                    resource: r.clone(),
                    message,
                    wrong_type: false,
                });
            } else {
                tracing::info!(crs = %name, cluster = %cname, resource = %r, objects = content.objects.len(), "resource applied");
            }
            plan::record(
                &mut spec,
                &name,
                r,
                Some(content.hash.clone()),
                ok.then(|| Time(ctx.now())),
                ok,
            );
        }
        // An entry also records a set whose resources all failed, so the binding lists
        // every set that manages the cluster.
        if plan::entry(&spec, &name).is_none() {
            spec.bindings
                .get_or_insert_with(Vec::new)
                .push(addons::ResourceSetBinding {
                    cluster_resource_set_name: name.clone(),
                    resources: Some(vec![]),
                });
        }
        write_binding(ctx, &bindings_api, existing, spec, before, cluster, crs).await?;
    }
    Ok(())
}

fn crs_owner(crs: &ClusterResourceSet) -> Result<OwnerReference, Error> {
    let mut r = crs.controller_owner_ref(&()).ok_or_else(|| Error::NoUid {
        kind: "ClusterResourceSet".into(),
        name: crs.name_any(),
    })?;
    r.controller = None;
    r.block_owner_deletion = None;
    Ok(r)
}

/// Creates or updates the binding of `cluster` when its spec or owners changed. The Cluster
/// owns it (deleting the Cluster deletes it); each set with an entry is an owner too.
async fn write_binding(
    _ctx: &Context,
    api: &Api<ClusterResourceSetBinding>,
    existing: Option<ClusterResourceSetBinding>,
    spec: ClusterResourceSetBindingSpec,
    before: ClusterResourceSetBindingSpec,
    cluster: &Cluster,
    crs: &ClusterResourceSet,
) -> Result<(), Error> {
    let crs_ref = crs_owner(crs)?;
    match existing {
        None => {
            let mut b = ClusterResourceSetBinding::new(&cluster.name_any(), spec);
            b.metadata.namespace = cluster.namespace();
            b.metadata.labels = Some(BTreeMap::from([(
                labels::CLUSTER_NAME.to_string(),
                cluster.name_any(),
            )]));
            b.metadata.owner_references = Some(vec![
                slipway_runtime::objects::cluster_owner_ref(cluster)?,
                crs_ref,
            ]);
            match api.create(&PostParams::default(), &b).await {
                Ok(_) => Ok(()),
                // Another set's pass created it first: this pass retries against it.
                Err(kube::Error::Api(e)) if e.code == 409 => Err(Error::Waiting(format!(
                    "ClusterResourceSetBinding {} was created concurrently",
                    cluster.name_any()
                ))),
                Err(e) => Err(e.into()),
            }
        }
        Some(b) => {
            let owned = b.owner_references().iter().any(|o| o.uid == crs_ref.uid);
            if owned && spec == before {
                return Ok(());
            }
            let mut owners = b.owner_references().to_vec();
            if !owned {
                owners.push(crs_ref);
            }
            let patch = json!({
                "metadata": {"ownerReferences": owners, "resourceVersion": b.resource_version()},
                "spec": spec,
            });
            api.patch(
                &b.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
            Ok(())
        }
    }
}

/// Removes `crs`'s entry (and owner reference) from a binding; deletes a binding left empty.
async fn drop_entry(
    ctx: &Context,
    api: &Api<ClusterResourceSetBinding>,
    mut b: ClusterResourceSetBinding,
    crs: &ClusterResourceSet,
) -> Result<(), Error> {
    let _ = ctx;
    plan::remove(&mut b.spec, &crs.name_any());
    tracing::info!(crs = %crs.name_any(), cluster = %b.spec.cluster_name, "cluster no longer managed by the set");
    if b.spec.bindings.as_ref().is_none_or(Vec::is_empty) {
        match api.delete(&b.name_any(), &DeleteParams::default()).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    let uid = crs.uid().unwrap_or_default();
    let owners: Vec<OwnerReference> = b
        .owner_references()
        .iter()
        .filter(|o| o.uid != uid)
        .cloned()
        .collect();
    let patch = json!({
        "metadata": {"ownerReferences": owners, "resourceVersion": b.resource_version()},
        "spec": {"bindings": b.spec.bindings},
    });
    api.patch(
        &b.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

async fn cleanup(crs: &ClusterResourceSet, ctx: &Context) -> Result<Action, Error> {
    let ns = crs.namespace().unwrap_or_default();
    let api: Api<ClusterResourceSetBinding> = Api::namespaced(ctx.client.clone(), &ns);
    for b in api.list(&ListParams::default()).await?.items {
        if plan::entry(&b.spec, &crs.name_any()).is_some() {
            drop_entry(ctx, &api, b, crs).await?;
        }
    }
    Ok(Action::await_change())
}

/// The sets of `ns` a ConfigMap or Secret named `name` of `kind` feeds.
pub fn uses(crs: &ClusterResourceSet, kind: &str, name: &str) -> bool {
    crs.spec
        .resources
        .iter()
        .any(|r| r.kind == kind && r.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn selectors_render_labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("cni".to_string(), "calico".to_string())])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["x".into()]),
                },
                LabelSelectorRequirement {
                    key: "ccm".into(),
                    operator: "Exists".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "legacy".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(
            selector_string(&sel),
            "cni=calico,env in (a,b),tier notin (x),ccm,!legacy"
        );
    }
}
