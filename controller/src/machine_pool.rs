//! MachinePool reconciler (upstream `exp/internal/controllers` machinepool). Thin entry:
//! finalizer dispatch to [`apply`] / [`cleanup`]; status from the pure [`desired_status`].
//!
//! apply: cluster-name label and Cluster owner reference; the bootstrap config and the
//! infrastructure pool become controlled by the MachinePool; the config's `dataSecretName` is
//! copied into `spec.template.spec.bootstrap`; the infrastructure pool is read through the
//! MachinePool contract (`spec.providerIDList`, `status.replicas`,
//! `status.initialization.provisioned` or v1beta1's `status.ready`), its provider IDs copied to
//! `spec.providerIDList`, and the workload cluster's Nodes with those IDs become
//! `status.nodeRefs`. Scaling and rolling out on a template or version change are the
//! infrastructure's: it reads `spec.replicas` and the template from its owner pool.
//!
//! cleanup: the infrastructure pool, then the bootstrap config, then (when the workload
//! cluster answers) the pool's Nodes; the finalizer goes when the first two are gone.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::{Value, json};
use slipway_api::{
    Cluster,
    common::StatusVersion,
    machinepool::{self, MachinePool, MachinePoolInitializationStatus, MachinePoolStatus, phase},
    names::{conditions as ct, labels, reasons},
};
use slipway_runtime::{
    Context, Error,
    conditions::{self, Status, desired},
    reconcile::{dispatch, is_paused, write_status},
};

use crate::machine::RefView;

/// A Node of one of the pool's instances.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolNode {
    /// Node name.
    pub name: String,
    /// Node uid.
    pub uid: Option<String>,
    /// Its Ready condition is True.
    pub ready: bool,
    /// kubelet version.
    pub version: Option<String>,
}

/// Everything a MachinePool's status is computed from.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// metadata.generation.
    pub generation: Option<i64>,
    /// Paused.
    pub paused: bool,
    /// Being deleted.
    pub deleting: bool,
    /// `spec.replicas` (default 1).
    pub desired: i32,
    /// The version the template asks for.
    pub version: Option<String>,
    /// The bootstrap config (`None`: not found).
    pub bootstrap: Option<RefView>,
    /// The infrastructure pool (`None`: not found).
    pub infra: Option<RefView>,
    /// `status.replicas` of the infrastructure pool (else the provider ID count).
    pub infra_replicas: Option<i32>,
    /// Provider IDs the infrastructure reports.
    pub provider_ids: Vec<String>,
    /// Nodes found for those IDs.
    pub nodes: Vec<PoolNode>,
}

/// The status a MachinePool should have; `old` keeps transition times and set-once flags.
pub fn desired_status(o: &Observed, old: &MachinePoolStatus, now: Timestamp) -> MachinePoolStatus {
    let mut status = old.clone();
    let mut conds = old.conditions.clone().unwrap_or_default();
    let g = o.generation;
    conditions::set(&mut conds, conditions::paused(o.paused), g, now);
    if o.paused {
        status.conditions = Some(conds);
        return status;
    }
    let bootstrap_done = o.bootstrap.as_ref().is_some_and(|b| b.done);
    let infra_done = o.infra.as_ref().is_some_and(|i| i.done);
    let init = old.initialization.clone().unwrap_or_default();
    status.initialization = Some(MachinePoolInitializationStatus {
        bootstrap_data_secret_created: Some(
            init.bootstrap_data_secret_created.unwrap_or(false) || bootstrap_done,
        ),
        infrastructure_provisioned: Some(
            init.infrastructure_provisioned.unwrap_or(false) || infra_done,
        ),
    });
    conditions::set(
        &mut conds,
        crate::machine::from_ref(
            ct::BOOTSTRAP_CONFIG_READY,
            o.bootstrap.as_ref(),
            reasons::WAITING_FOR_BOOTSTRAP_DATA,
            "bootstrap data",
        ),
        g,
        now,
    );
    conditions::set(
        &mut conds,
        crate::machine::from_ref(
            ct::INFRASTRUCTURE_READY,
            o.infra.as_ref(),
            reasons::WAITING_FOR_INFRASTRUCTURE,
            "infrastructure machine pool",
        ),
        g,
        now,
    );
    let replicas = o.infra_replicas.unwrap_or(o.provider_ids.len() as i32);
    let ready = o.nodes.iter().filter(|n| n.ready).count() as i32;
    let up_to_date = match &o.version {
        Some(v) => o
            .nodes
            .iter()
            .filter(|n| n.version.as_deref() == Some(v.as_str()))
            .count() as i32,
        None => o.nodes.len() as i32,
    };
    status.replicas = Some(replicas);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(ready);
    status.up_to_date_replicas = Some(up_to_date);
    let mut nodes = o.nodes.clone();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    status.node_refs = Some(
        nodes
            .iter()
            .map(|n| ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(n.name.clone()),
                uid: n.uid.clone(),
                ..Default::default()
            })
            .collect(),
    );
    let mut versions: BTreeMap<String, i32> = BTreeMap::new();
    for n in &nodes {
        if let Some(v) = &n.version {
            *versions.entry(v.clone()).or_default() += 1;
        }
    }
    status.versions = (!versions.is_empty()).then(|| {
        versions
            .into_iter()
            .map(|(version, n)| StatusVersion {
                version,
                replicas: Some(n),
            })
            .collect()
    });
    let d = o.desired;
    conditions::set(
        &mut conds,
        if replicas < d {
            desired(
                ct::SCALING_UP,
                Status::True,
                reasons::SCALING_UP,
                format!("Scaling up from {replicas} to {d} replicas"),
            )
        } else {
            desired(ct::SCALING_UP, Status::False, reasons::NOT_SCALING_UP, "")
        },
        g,
        now,
    );
    conditions::set(
        &mut conds,
        if replicas > d {
            desired(
                ct::SCALING_DOWN,
                Status::True,
                reasons::SCALING_DOWN,
                format!("Scaling down from {replicas} to {d} replicas"),
            )
        } else {
            desired(
                ct::SCALING_DOWN,
                Status::False,
                reasons::NOT_SCALING_DOWN,
                "",
            )
        },
        g,
        now,
    );
    let available = infra_done && ready >= d;
    conditions::set(
        &mut conds,
        if available {
            desired(ct::AVAILABLE, Status::True, reasons::AVAILABLE, "")
        } else {
            desired(
                ct::AVAILABLE,
                Status::False,
                reasons::NOT_AVAILABLE,
                format!("{ready} of {d} replicas are ready"),
            )
        },
        g,
        now,
    );
    status.phase = Some(
        if o.deleting {
            phase::DELETING
        } else if o
            .infra
            .as_ref()
            .and_then(|i| i.ready.as_ref())
            .is_some_and(|c| c.reason == reasons::PROVIDER_TERMINAL_ERROR)
        {
            phase::FAILED
        } else if !bootstrap_done {
            phase::PENDING
        } else if !infra_done {
            phase::PROVISIONING
        } else if replicas < d {
            phase::SCALING_UP
        } else if replicas > d {
            phase::SCALING_DOWN
        } else if ready == d {
            phase::RUNNING
        } else {
            phase::PROVISIONED
        }
        .to_string(),
    );
    status.conditions = Some(conds);
    status.observed_generation = g;
    status
}

/// Entry point: finalizer dispatch.
pub async fn reconcile(pool: Arc<MachinePool>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = pool.namespace().unwrap_or_default();
    let api: Api<MachinePool> = Api::namespaced(ctx.client.clone(), &ns);
    let (ctx, api) = (&ctx, &api);
    dispatch(
        api,
        machinepool::FINALIZER,
        pool,
        |p| async move { apply(&p, ctx, api).await },
        |p| async move { cleanup(&p, ctx, api).await },
    )
    .await
}

async fn ensure_metadata(
    api: &Api<MachinePool>,
    pool: &MachinePool,
    cluster: &Cluster,
) -> Result<Option<kube::api::ObjectMeta>, Error> {
    let cluster_uid = cluster.uid().unwrap_or_default();
    let has_owner = pool.owner_references().iter().any(|o| o.uid == cluster_uid);
    let labelled = pool.labels().get(labels::CLUSTER_NAME) == Some(&cluster.name_any());
    if has_owner && labelled {
        return Ok(None);
    }
    let mut refs = pool.owner_references().to_vec();
    if !has_owner {
        let mut r = slipway_runtime::objects::cluster_owner_ref(cluster)?;
        r.controller = None;
        refs.push(r);
    }
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "labels": {labels::CLUSTER_NAME: cluster.name_any()},
        "resourceVersion": pool.resource_version(),
    }});
    let patched = api
        .patch(
            &pool.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    slipway_runtime::stale::superseded(&pool.metadata, &patched.metadata);
    Ok(Some(patched.metadata))
}

fn infra_view(obj: &DynamicObject) -> (RefView, Option<i32>, Vec<String>) {
    let provisioned = obj
        .data
        .pointer("/status/initialization/provisioned")
        .or_else(|| obj.data.pointer("/status/ready"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let replicas = obj
        .data
        .pointer("/status/replicas")
        .and_then(Value::as_i64)
        .and_then(|n| i32::try_from(n).ok());
    let ids = obj
        .data
        .pointer("/spec/providerIDList")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    (
        RefView {
            done: provisioned,
            ready: conditions::of_object(obj, ct::READY),
        },
        replicas,
        ids,
    )
}

async fn apply(pool: &MachinePool, ctx: &Context, api: &Api<MachinePool>) -> Result<Action, Error> {
    let ns = pool.namespace().unwrap_or_default();
    let Some(cluster) = Api::<Cluster>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&pool.spec.cluster_name)
        .await?
    else {
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    let mut o = Observed {
        generation: pool.metadata.generation,
        paused: is_paused(&cluster, pool.annotations()),
        desired: pool.spec.desired(),
        version: pool.spec.template.spec.version.clone(),
        ..Default::default()
    };
    let old = pool.status.clone().unwrap_or_default();
    // The version the status write is guarded by: this pass's own writes move it.
    let mut meta = pool.metadata.clone();
    if !o.paused {
        if let Some(m) = ensure_metadata(api, pool, &cluster).await? {
            meta = m;
        }
        let mut spec_patch = serde_json::Map::new();
        let boot = &pool.spec.template.spec.bootstrap;
        o.bootstrap = match (&boot.config_ref, &boot.data_secret_name) {
            (None, _) => Some(RefView {
                done: boot.data_secret_name.is_some(),
                ready: None,
            }),
            (Some(r), _) => match ctx.resolver.get(&ns, r).await? {
                None => None,
                Some(obj) => {
                    crate::machine::adopt(ctx, pool, &pool.spec.cluster_name, r, &obj).await?;
                    let secret = obj
                        .data
                        .pointer("/status/dataSecretName")
                        .and_then(Value::as_str);
                    if let Some(s) = secret
                        && boot.data_secret_name.as_deref() != Some(s)
                    {
                        spec_patch.insert(
                            "template".into(),
                            json!({"spec": {"bootstrap": {"dataSecretName": s}}}),
                        );
                    }
                    Some(RefView {
                        done: secret.is_some(),
                        ready: conditions::of_object(&obj, ct::READY),
                    })
                }
            },
        };
        let r = &pool.spec.template.spec.infrastructure_ref;
        if let Some(obj) = ctx.resolver.get(&ns, r).await? {
            crate::machine::adopt(ctx, pool, &pool.spec.cluster_name, r, &obj).await?;
            let (view, replicas, ids) = infra_view(&obj);
            if pool.spec.provider_id_list.as_deref().unwrap_or_default() != ids.as_slice() {
                spec_patch.insert("providerIDList".into(), json!(ids));
            }
            o.infra = Some(view);
            o.infra_replicas = replicas;
            o.provider_ids = ids;
        }
        if !spec_patch.is_empty() {
            let patched = api
                .patch(
                    &pool.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&json!({ "spec": spec_patch })),
                )
                .await?;
            slipway_runtime::stale::superseded(&meta, &patched.metadata);
            o.generation = patched.metadata.generation;
            meta = patched.metadata;
        }
        if !o.provider_ids.is_empty() {
            o.nodes = find_nodes(ctx, &ns, &pool.spec.cluster_name, &o.provider_ids).await?;
        }
    }
    let new = desired_status(&o, &old, ctx.now());
    write_status(api, &meta, Some(&old), &new).await?;
    let settled = new.ready_replicas == Some(o.desired) && new.replicas == Some(o.desired);
    // Nodes joining announce nothing in the management cluster: poll until settled.
    Ok(if o.paused || settled {
        Action::await_change()
    } else {
        Action::requeue(Duration::from_secs(2))
    })
}

/// The Nodes whose providerID is one of `ids`, when the workload cluster answers.
async fn find_nodes(
    ctx: &Context,
    ns: &str,
    cluster: &str,
    ids: &[String],
) -> Result<Vec<PoolNode>, Error> {
    let Some(client) = ctx.remote.client(&ctx.client, ns, cluster).await? else {
        return Ok(vec![]);
    };
    let list = match Api::<Node>::all(client).list(&ListParams::default()).await {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(%cluster, %e, "workload cluster did not answer");
            return Ok(vec![]);
        }
    };
    Ok(list
        .items
        .into_iter()
        .filter(|n| {
            n.spec
                .as_ref()
                .and_then(|s| s.provider_id.as_ref())
                .is_some_and(|p| ids.contains(p))
        })
        .map(|n| {
            let status = n.status.clone().unwrap_or_default();
            PoolNode {
                name: n.name_any(),
                uid: n.uid(),
                ready: status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True"),
                version: status.node_info.map(|i| i.kubelet_version),
            }
        })
        .collect())
}

async fn cleanup(
    pool: &MachinePool,
    ctx: &Context,
    api: &Api<MachinePool>,
) -> Result<Action, Error> {
    let ns = pool.namespace().unwrap_or_default();
    let old = pool.status.clone().unwrap_or_default();
    let mut new = old.clone();
    let mut pending = None;
    let refs = [
        Some(&pool.spec.template.spec.infrastructure_ref),
        pool.spec.template.spec.bootstrap.config_ref.as_ref(),
    ];
    for r in refs.into_iter().flatten() {
        if let Some(obj) = ctx.resolver.get(&ns, r).await? {
            if obj.metadata.deletion_timestamp.is_none() {
                let (dapi, _) = ctx.resolver.api(&ns, r).await?;
                dapi.delete(&r.name, &DeleteParams::default()).await?;
                tracing::info!(pool = %pool.name_any(), kind = %r.kind, name = %r.name, "deleting");
            }
            // Infrastructure first: the bootstrap config goes only after the instances.
            pending = Some(format!("waiting for {} {} to be deleted", r.kind, r.name));
            break;
        }
    }
    let mut conds = new.conditions.take().unwrap_or_default();
    conditions::set(
        &mut conds,
        desired(
            ct::DELETING,
            Status::True,
            reasons::DELETING,
            pending.clone().unwrap_or_default(),
        ),
        pool.metadata.generation,
        ctx.now(),
    );
    new.conditions = Some(conds);
    new.phase = Some(phase::DELETING.into());
    write_status(api, &pool.metadata, Some(&old), &new).await?;
    if let Some(message) = pending {
        return Err(Error::Waiting(message));
    }
    if let Ok(Some(client)) = ctx
        .remote
        .client(&ctx.client, &ns, &pool.spec.cluster_name)
        .await
    {
        let nodes: Api<Node> = Api::all(client);
        for n in old.node_refs.iter().flatten() {
            let Some(name) = &n.name else { continue };
            // Best effort: a workload cluster being deleted itself keeps no pool.
            if let Err(e) = nodes.delete(name, &DeleteParams::default()).await {
                tracing::debug!(node = %name, %e, "deleting a pool's Node");
            }
        }
    }
    tracing::info!(pool = %pool.name_any(), namespace = %ns, "machine pool deleted");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn node(name: &str, ready: bool) -> PoolNode {
        PoolNode {
            name: name.into(),
            uid: None,
            ready,
            version: Some("v1.31.0".into()),
        }
    }

    fn cond<'a>(s: &'a MachinePoolStatus, type_: &str) -> &'a slipway_api::common::Condition {
        conditions::get(s.conditions.as_deref().unwrap(), type_).unwrap()
    }

    #[test]
    fn a_pool_goes_pending_provisioning_scaling_running() {
        let done = || {
            Some(RefView {
                done: true,
                ready: None,
            })
        };
        let mut o = Observed {
            generation: Some(1),
            desired: 0,
            version: Some("v1.31.0".into()),
            ..Default::default()
        };
        let s = desired_status(&o, &MachinePoolStatus::default(), t(1));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, "BootstrapConfigReady").reason, "RefNotFound");

        o.bootstrap = done();
        o.infra = Some(RefView::default());
        let s = desired_status(&o, &s, t(2));
        assert_eq!(s.phase.as_deref(), Some("Provisioning"));

        // Scale from zero: provisioned with no instances is Running at 0.
        o.infra = done();
        o.infra_replicas = Some(0);
        let s = desired_status(&o, &s, t(3));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Available").status, "True");

        o.desired = 5;
        o.infra_replicas = Some(2);
        o.provider_ids = vec!["p1".into(), "p2".into()];
        o.nodes = vec![node("n2", true), node("n1", false)];
        let s = desired_status(&o, &s, t(4));
        assert_eq!(s.phase.as_deref(), Some("ScalingUp"));
        assert_eq!(
            cond(&s, "ScalingUp").message,
            "Scaling up from 2 to 5 replicas"
        );
        assert_eq!(cond(&s, "Available").message, "1 of 5 replicas are ready");
        assert_eq!((s.replicas, s.ready_replicas), (Some(2), Some(1)));
        let names: Vec<_> = s
            .node_refs
            .iter()
            .flatten()
            .map(|r| r.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["n1", "n2"], "sorted nodeRefs");

        o.desired = 2;
        o.nodes = vec![node("n1", true), node("n2", true)];
        let s = desired_status(&o, &s, t(5));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.available_replicas, Some(2));
        assert_eq!(s.versions.as_ref().unwrap()[0].replicas, Some(2));
        assert_eq!(desired_status(&o, &s, t(6)), s, "at rest nothing changes");

        o.infra_replicas = Some(3);
        let s = desired_status(&o, &s, t(7));
        assert_eq!(s.phase.as_deref(), Some("ScalingDown"));
        assert_eq!(
            s.initialization,
            Some(MachinePoolInitializationStatus {
                infrastructure_provisioned: Some(true),
                bootstrap_data_secret_created: Some(true)
            })
        );
    }
}
