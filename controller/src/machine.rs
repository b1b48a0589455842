//! Machine reconciler. Thin entry: finalizer dispatch to [`apply`] / [`cleanup`].
//!
//! apply: the cluster-name label and, for a stand-alone Machine, a Cluster owner reference
//! (as upstream: a Machine of a MachineSet or control plane is owned through it); the
//! bootstrap config and the infrastructure machine become owned (controller) by the Machine;
//! their contract fields are
//! copied (`spec.bootstrap.dataSecretName`, `spec.providerID`, `status.addresses`,
//! `failureDomain`); the Node with the Machine's providerID is found through the workload
//! kubeconfig and becomes `status.nodeRef`. Status (phase, conditions) is computed by the pure
//! [`desired_status`] and written only when it changed.
//!
//! cleanup: pre-drain hooks, Node drain, volume detach and pre-terminate hooks
//! ([`crate::machine_deletion`]), then the infrastructure machine, then the bootstrap config,
//! then (when the workload cluster answers, within `nodeDeletionTimeoutSeconds`) the Node; the
//! Deleting condition says what it waits for, and the finalizer goes when all is done.

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, NodeSystemInfo};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::{Value, json};
use slipway_api::{
    Cluster, KubeadmControlPlane, Machine, MachineDeployment,
    common::{Condition, ContractVersionedObjectReference, MachineAddress, NameReference},
    machine::{MachineInitializationStatus, MachineStatus, phase},
    names::{conditions as ct, finalizers, labels, reasons},
};

use slipway_runtime::reconcile::{dispatch, write_status};

use slipway_runtime::{
    Context, Error,
    conditions::{self, Status, desired},
    objects::controller_ref,
};

/// What a referenced object (bootstrap config or infrastructure machine) reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RefView {
    /// The contract flag (`dataSecretCreated` / `provisioned`).
    pub done: bool,
    /// Its Ready condition.
    pub ready: Option<Condition>,
}

/// The Node of a Machine.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// Its Ready condition is True.
    pub ready: bool,
    /// The Ready condition's message when not ready.
    pub message: String,
}

/// Everything a Machine's status is computed from.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// metadata.generation.
    pub generation: Option<i64>,
    /// Paused.
    pub paused: bool,
    /// Being deleted.
    pub deleting: bool,
    /// The bootstrap config (`None`: not found), or true when `dataSecretName` is set directly.
    pub bootstrap: Option<RefView>,
    /// The infrastructure machine (`None`: not found).
    pub infra: Option<RefView>,
    /// The Node, once found.
    pub node: Option<NodeView>,
    /// Whether the Machine matches what its owner wants now (`Err`: why not); `None` when
    /// unknown (paused).
    pub up_to_date: Option<Result<(), String>>,
}

/// A condition mirrored from a referenced object (bootstrap config, infrastructure): missing,
/// done, its own False reason, or waiting; shared by Machine and MachinePool.
pub(crate) fn from_ref(
    type_: &str,
    view: Option<&RefView>,
    waiting: &str,
    what: &str,
) -> conditions::Desired {
    match view {
        None => desired(
            type_,
            Status::False,
            reasons::REFERENCE_NOT_FOUND,
            format!("the {what} does not exist"),
        ),
        Some(v) if v.done => desired(type_, Status::True, reasons::READY, ""),
        Some(v) => match &v.ready {
            Some(c) if c.status == "False" => {
                desired(type_, Status::False, &c.reason, c.message.clone())
            }
            _ => desired(
                type_,
                Status::False,
                waiting,
                format!("waiting for the {what}"),
            ),
        },
    }
}

/// The status a Machine should have; `old` keeps transition times, nodeRef and addresses.
pub fn desired_status(o: &Observed, old: &MachineStatus, now: Timestamp) -> MachineStatus {
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
    status.initialization = Some(MachineInitializationStatus {
        bootstrap_data_secret_created: Some(
            init.bootstrap_data_secret_created.unwrap_or(false) || bootstrap_done,
        ),
        infrastructure_provisioned: Some(
            init.infrastructure_provisioned.unwrap_or(false) || infra_done,
        ),
    });
    let boot = from_ref(
        ct::BOOTSTRAP_CONFIG_READY,
        o.bootstrap.as_ref(),
        reasons::WAITING_FOR_BOOTSTRAP_DATA,
        "bootstrap data",
    );
    let infra = from_ref(
        ct::INFRASTRUCTURE_READY,
        o.infra.as_ref(),
        reasons::WAITING_FOR_INFRASTRUCTURE,
        "infrastructure machine",
    );
    let failed = infra.reason == reasons::PROVIDER_TERMINAL_ERROR;
    conditions::set(&mut conds, boot, g, now);
    conditions::set(&mut conds, infra, g, now);
    let node = match &o.node {
        Some(n) if n.ready => desired(ct::NODE_READY, Status::True, reasons::READY, ""),
        Some(n) => desired(
            ct::NODE_READY,
            Status::False,
            reasons::NOT_READY,
            n.message.clone(),
        ),
        None => desired(
            ct::NODE_READY,
            Status::Unknown,
            reasons::WAITING_FOR_NODE_REF,
            "waiting for a Node with the machine's providerID",
        ),
    };
    conditions::set(&mut conds, node, g, now);
    if let Some(n) = &o.node {
        status.node_ref = Some(NameReference {
            name: n.name.clone(),
        });
    }
    let ready = conditions::summary(
        ct::READY,
        &[
            (
                ct::BOOTSTRAP_CONFIG_READY,
                conditions::get(&conds, ct::BOOTSTRAP_CONFIG_READY),
            ),
            (
                ct::INFRASTRUCTURE_READY,
                conditions::get(&conds, ct::INFRASTRUCTURE_READY),
            ),
            (ct::NODE_READY, conditions::get(&conds, ct::NODE_READY)),
        ],
        reasons::READY,
    );
    let available = conditions::Desired {
        type_: ct::AVAILABLE.into(),
        reason: if ready.status == Status::True {
            reasons::AVAILABLE.into()
        } else {
            reasons::NOT_AVAILABLE.into()
        },
        ..ready.clone()
    };
    conditions::set(&mut conds, ready, g, now);
    conditions::set(&mut conds, available, g, now);
    if let Some(u) = &o.up_to_date {
        conditions::set(
            &mut conds,
            match u {
                Ok(()) => desired(ct::UP_TO_DATE, Status::True, reasons::UP_TO_DATE, ""),
                Err(why) => desired(
                    ct::UP_TO_DATE,
                    Status::False,
                    reasons::NOT_UP_TO_DATE,
                    why.clone(),
                ),
            },
            g,
            now,
        );
    }
    status.phase = Some(
        if o.deleting {
            phase::DELETING
        } else if failed {
            phase::FAILED
        } else if status.node_ref.is_some() {
            phase::RUNNING
        } else if infra_done {
            phase::PROVISIONED
        } else if bootstrap_done {
            phase::PROVISIONING
        } else {
            phase::PENDING
        }
        .to_string(),
    );
    status.conditions = Some(conds);
    status.observed_generation = g;
    status
}

/// Entry point: finalizer dispatch.
pub async fn reconcile(machine: Arc<Machine>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = machine.namespace().unwrap_or_default();
    let api: Api<Machine> = Api::namespaced(ctx.client.clone(), &ns);
    let (ctx, api) = (&ctx, &api);
    let has_finalizer = machine
        .finalizers()
        .iter()
        .any(|f| f == finalizers::MACHINE);
    if !has_finalizer
        && machine.metadata.deletion_timestamp.is_none()
        && !machine
            .annotations()
            .contains_key(slipway_api::names::annotations::DELETE_FOR_MOVE)
        && let Some(cluster) = Api::<Cluster>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&machine.spec.cluster_name)
            .await?
        && !slipway_runtime::reconcile::is_paused(&cluster, machine.annotations())
    {
        // The finalizer and the adoption by the Cluster in one write instead of two; the
        // patch's own watch event brings the first apply.
        ensure_metadata(api, &machine, &cluster, true).await?;
        return Ok(Action::await_change());
    }
    dispatch(
        api,
        finalizers::MACHINE,
        machine,
        |m| async move { apply(&m, ctx, api).await },
        |m| async move { cleanup(&m, ctx, api).await },
    )
    .await
}

/// Makes `owner` (a Machine or a MachinePool) the controller owner of an object it references
/// (replacing the creator's owner reference, as upstream does) and labels it with the cluster.
pub(crate) async fn adopt<K: kube::Resource<DynamicType = ()>>(
    ctx: &Context,
    owner: &K,
    cluster_name: &str,
    r: &ContractVersionedObjectReference,
    obj: &DynamicObject,
) -> Result<(), Error> {
    let uid = owner.uid().unwrap_or_default();
    let owned = obj
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true));
    let labelled = obj.labels().get(labels::CLUSTER_NAME).map(String::as_str) == Some(cluster_name);
    if owned && labelled {
        return Ok(());
    }
    let ns = owner.namespace().unwrap_or_default();
    let (api, _) = ctx.resolver.api(&ns, r).await?;
    let patch = json!({"metadata": {
        "ownerReferences": [controller_ref(owner)?],
        "labels": {labels::CLUSTER_NAME: cluster_name},
        "resourceVersion": obj.metadata.resource_version,
    }});
    api.patch(&r.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Returns the patched object's metadata when it wrote.
async fn ensure_metadata(
    api: &Api<Machine>,
    machine: &Machine,
    cluster: &Cluster,
    add_finalizer: bool,
) -> Result<Option<kube::api::ObjectMeta>, Error> {
    let cluster_uid = cluster.uid().unwrap_or_default();
    // Upstream adopts only a stand-alone Machine: one controlled by a MachineSet or a control
    // plane is owned through its controller, not by the Cluster directly.
    let has_owner = machine
        .owner_references()
        .iter()
        .any(|o| o.uid == cluster_uid || o.controller == Some(true));
    let labelled = machine.labels().get(labels::CLUSTER_NAME) == Some(&cluster.name_any());
    if has_owner && labelled && !add_finalizer {
        return Ok(None);
    }
    let mut refs = machine.owner_references().to_vec();
    if !has_owner {
        let mut r = cluster
            .controller_owner_ref(&())
            .ok_or_else(|| Error::NoUid {
                kind: "Cluster".into(),
                name: cluster.name_any(),
            })?;
        r.controller = Some(true);
        refs.push(r);
    }
    let mut patch = json!({"metadata": {
        "ownerReferences": refs,
        "labels": {labels::CLUSTER_NAME: cluster.name_any()},
        "resourceVersion": machine.resource_version(),
    }});
    if add_finalizer {
        let mut all = machine.finalizers().to_vec();
        all.push(finalizers::MACHINE.to_string());
        patch["metadata"]["finalizers"] = json!(all);
    }
    let patched = api
        .patch(
            &machine.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    slipway_runtime::stale::superseded(&machine.metadata, &patched.metadata);
    Ok(Some(patched.metadata))
}

async fn apply(machine: &Machine, ctx: &Context, api: &Api<Machine>) -> Result<Action, Error> {
    let ns = machine.namespace().unwrap_or_default();
    let Some(cluster) = Api::<Cluster>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&machine.spec.cluster_name)
        .await?
    else {
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    let mut o = Observed {
        generation: machine.metadata.generation,
        paused: slipway_runtime::reconcile::is_paused(&cluster, machine.annotations()),
        ..Default::default()
    };
    let old = machine.status.clone().unwrap_or_default();
    let mut status = old.clone();
    // The version the status write is guarded by: this pass's own writes move it.
    let mut meta = machine.metadata.clone();
    if !o.paused {
        if let Some(m) = ensure_metadata(api, machine, &cluster, false).await? {
            meta = m;
        }
        let mut spec_patch = serde_json::Map::new();
        o.bootstrap = match (
            &machine.spec.bootstrap.config_ref,
            &machine.spec.bootstrap.data_secret_name,
        ) {
            (_, Some(_)) | (None, None) => Some(RefView {
                done: machine.spec.bootstrap.data_secret_name.is_some(),
                ready: None,
            }),
            (Some(r), None) => match ctx.resolver.get(&ns, r).await? {
                None => None,
                Some(obj) => {
                    adopt(ctx, machine, &machine.spec.cluster_name, r, &obj).await?;
                    let secret = obj
                        .data
                        .pointer("/status/dataSecretName")
                        .and_then(Value::as_str);
                    if let Some(s) = secret {
                        spec_patch.insert("bootstrap".into(), json!({"dataSecretName": s}));
                    }
                    Some(RefView {
                        done: secret.is_some(),
                        ready: conditions::of_object(&obj, ct::READY),
                    })
                }
            },
        };
        let r = &machine.spec.infrastructure_ref;
        o.infra = match ctx.resolver.get(&ns, r).await? {
            None => None,
            Some(obj) => {
                adopt(ctx, machine, &machine.spec.cluster_name, r, &obj).await?;
                let provisioned = obj
                    .data
                    .pointer("/status/initialization/provisioned")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if provisioned {
                    if let Some(id) = obj.data.pointer("/spec/providerID").and_then(Value::as_str)
                        && machine.spec.provider_id.as_deref() != Some(id)
                    {
                        spec_patch.insert("providerID".into(), json!(id));
                    }
                    if let Some(a) = obj.data.pointer("/status/addresses") {
                        status.addresses =
                            serde_json::from_value::<Vec<MachineAddress>>(a.clone()).ok();
                    }
                    let fd = obj
                        .data
                        .pointer("/spec/failureDomain")
                        .or_else(|| obj.data.pointer("/status/failureDomain"))
                        .and_then(Value::as_str);
                    if let Some(fd) = fd {
                        status.failure_domain = Some(fd.to_string());
                    }
                }
                Some(RefView {
                    done: provisioned,
                    ready: conditions::of_object(&obj, ct::READY),
                })
            }
        };
        if !spec_patch.is_empty() {
            let patched = api
                .patch(
                    &machine.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&json!({ "spec": spec_patch })),
                )
                .await?;
            slipway_runtime::stale::superseded(&meta, &patched.metadata);
            // The status below is computed from what that spec change was made from, so it
            // observes the new generation (one status write, not a second one to catch up).
            o.generation = patched.metadata.generation;
            meta = patched.metadata;
        }
        let provider_id = spec_patch
            .get("providerID")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| machine.spec.provider_id.clone());
        if let Some(pid) = provider_id {
            let (node, info) = find_node(ctx, &ns, &machine.spec.cluster_name, &pid).await?;
            o.node = node;
            if info.is_some() {
                status.node_info = info;
            }
        }
    }
    if !o.paused {
        o.up_to_date = Some(up_to_date(ctx, machine, &ns).await?);
    }
    let new = desired_status(&o, &status, (ctx.clock)());
    write_status(api, &meta, Some(&old), &new).await?;
    slipway_runtime::metrics::state(
        slipway_runtime::metrics::StateKind::Machine,
        &ns,
        &machine.name_any(),
        Some((
            new.phase.as_deref(),
            new.conditions.as_deref().unwrap_or_default(),
        )),
    );
    // Nothing in the management cluster announces a Node joining a workload cluster: poll
    // until it has, then rest.
    Ok(match &o.node {
        Some(n) if n.ready => Action::await_change(),
        _ if o.paused => Action::await_change(),
        _ if o.infra.as_ref().is_some_and(|i| i.done) => Action::requeue(Duration::from_secs(2)),
        _ => Action::requeue(Duration::from_secs(10)),
    })
}

/// Whether a Machine matches what its owner wants now: a control-plane Machine its
/// KubeadmControlPlane's version and spec, a MachineDeployment's Machine its current template.
/// A standalone Machine is up to date by definition.
async fn up_to_date(ctx: &Context, m: &Machine, ns: &str) -> Result<Result<(), String>, Error> {
    if let Some(kcp) = slipway_runtime::objects::core_owner_name(m, "KubeadmControlPlane") {
        let api: Api<KubeadmControlPlane> = Api::namespaced(ctx.client.clone(), ns);
        return Ok(match api.get_opt(&kcp).await? {
            Some(kcp) => match crate::kcp_machines::not_up_to_date(
                m,
                &kcp,
                &crate::kcp_machines::spec_hash(&kcp),
            ) {
                None => Ok(()),
                Some(why) => Err(why),
            },
            None => Ok(()),
        });
    }
    if let Some(md) = m.labels().get(labels::MACHINE_DEPLOYMENT_NAME) {
        let api: Api<MachineDeployment> = Api::namespaced(ctx.client.clone(), ns);
        if let Some(md) = api.get_opt(md).await? {
            let hash = crate::machine_deployment::template_hash(&md);
            if m.labels().get(labels::MACHINE_TEMPLATE_HASH) != Some(&hash) {
                let want = md.spec.template.spec.version.clone();
                return Ok(Err(if want != m.spec.version {
                    format!(
                        "* Version {}, {} required",
                        m.spec.version.as_deref().unwrap_or("unset"),
                        want.as_deref().unwrap_or("unset")
                    )
                } else {
                    format!(
                        "* MachineDeployment {} spec.template changed",
                        md.name_any()
                    )
                }));
            }
        }
    }
    Ok(Ok(()))
}

/// The Node with `provider_id` in the workload cluster, when it answers.
async fn find_node(
    ctx: &Context,
    ns: &str,
    cluster: &str,
    provider_id: &str,
) -> Result<(Option<NodeView>, Option<NodeSystemInfo>), Error> {
    let Some(client) = ctx.remote.client(&ctx.client, ns, cluster).await? else {
        return Ok((None, None));
    };
    let nodes: Api<Node> = Api::all(client);
    let list = match nodes.list(&ListParams::default()).await {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(%cluster, %e, "workload cluster did not answer");
            return Ok((None, None));
        }
    };
    let Some(node) = list
        .items
        .into_iter()
        .find(|n| n.spec.as_ref().and_then(|s| s.provider_id.as_deref()) == Some(provider_id))
    else {
        return Ok((None, None));
    };
    let status = node.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready");
    Ok((
        Some(NodeView {
            name: node.name_any(),
            ready: ready.is_some_and(|c| c.status == "True"),
            message: ready
                .and_then(|c| c.message.clone())
                .unwrap_or_else(|| "the Node has no Ready condition".into()),
        }),
        status.node_info,
    ))
}

async fn cleanup(machine: &Machine, ctx: &Context, api: &Api<Machine>) -> Result<Action, Error> {
    let ns = machine.namespace().unwrap_or_default();
    let old = machine.status.clone().unwrap_or_default();
    let mut new = old.clone();
    let now = (ctx.clock)();
    // Hooks, drain and volume detach come first, as upstream orders them, but only while the
    // infrastructure is still there: once it is going there is no Node left to protect.
    let infra = ctx
        .resolver
        .get(&ns, &machine.spec.infrastructure_ref)
        .await?;
    let hold = match &infra {
        Some(obj) if obj.metadata.deletion_timestamp.is_none() => {
            // A failing step (an unreachable workload API mid-drain) is shown, then retried.
            match crate::machine_deletion::before_infrastructure(ctx, machine, &mut new).await {
                Ok(h) => h,
                Err(e) => Some(crate::machine_deletion::Hold {
                    reason: reasons::DELETING,
                    message: format!("Deletion step failed, retrying: {e}"),
                }),
            }
        }
        _ => None,
    };
    let hold = match hold {
        Some(h) => Some(h),
        None => delete_references(ctx, machine, &ns).await?,
    };
    let hold = match hold {
        Some(h) => Some(h),
        None => delete_node(ctx, machine, &ns, &old, now).await?,
    };
    let mut conds = new.conditions.take().unwrap_or_default();
    let (reason, message) = hold
        .as_ref()
        .map_or((reasons::DELETION_COMPLETED, String::new()), |h| {
            (h.reason, h.message.clone())
        });
    conditions::set(
        &mut conds,
        desired(ct::DELETING, Status::True, reason, message.clone()),
        machine.metadata.generation,
        now,
    );
    new.conditions = Some(conds);
    new.phase = Some(phase::DELETING.into());
    write_status(api, &machine.metadata, Some(&old), &new).await?;
    if hold.is_some() {
        return Err(Error::Waiting(message));
    }
    slipway_runtime::metrics::state(
        slipway_runtime::metrics::StateKind::Machine,
        &ns,
        &machine.name_any(),
        None,
    );
    tracing::info!(machine = %machine.name_any(), namespace = %ns, "machine deleted");
    Ok(Action::await_change())
}

/// Deletes the infrastructure machine, then (once it is gone) the bootstrap config.
async fn delete_references(
    ctx: &Context,
    machine: &Machine,
    ns: &str,
) -> Result<Option<crate::machine_deletion::Hold>, Error> {
    let refs = [
        (
            Some(&machine.spec.infrastructure_ref),
            reasons::WAITING_FOR_INFRASTRUCTURE_DELETION,
        ),
        (
            machine.spec.bootstrap.config_ref.as_ref(),
            reasons::WAITING_FOR_BOOTSTRAP_DELETION,
        ),
    ];
    for (r, reason) in refs {
        let Some(r) = r else { continue };
        if let Some(obj) = ctx.resolver.get(ns, r).await? {
            if obj.metadata.deletion_timestamp.is_none() {
                let (dapi, _) = ctx.resolver.api(ns, r).await?;
                dapi.delete(&r.name, &DeleteParams::default()).await?;
                tracing::info!(machine = %machine.name_any(), kind = %r.kind, name = %r.name, "deleting");
            }
            // Infrastructure first: the bootstrap config goes only after the machine is gone.
            return Ok(Some(crate::machine_deletion::Hold {
                reason,
                message: format!("waiting for {} {} to be deleted", r.kind, r.name),
            }));
        }
    }
    Ok(None)
}

/// Deletes the Node, retrying for `nodeDeletionTimeoutSeconds` (default 10) from the
/// Machine's deletion; an unreachable workload cluster (being deleted itself) keeps no
/// Machine.
async fn delete_node(
    ctx: &Context,
    machine: &Machine,
    ns: &str,
    old: &MachineStatus,
    now: Timestamp,
) -> Result<Option<crate::machine_deletion::Hold>, Error> {
    let Some(node) = &old.node_ref else {
        return Ok(None);
    };
    let Ok(Some(client)) = ctx
        .remote
        .client(&ctx.client, ns, &machine.spec.cluster_name)
        .await
    else {
        return Ok(None);
    };
    let err = match Api::<Node>::all(client)
        .delete(&node.name, &DeleteParams::default())
        .await
    {
        Ok(_) => return Ok(None),
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
        Err(e) => e,
    };
    let timeout = machine
        .spec
        .deletion
        .as_ref()
        .and_then(|d| d.node_deletion_timeout_seconds)
        .unwrap_or(10);
    let since = machine
        .metadata
        .deletion_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    if timeout == 0 || now.as_second() - since.as_second() <= i64::from(timeout) {
        return Ok(Some(crate::machine_deletion::Hold {
            reason: reasons::DELETING_NODE,
            message: format!("deleting Node {}: {err}", node.name),
        }));
    }
    tracing::info!(node = %node.name, %err, "nodeDeletionTimeoutSeconds passed: leaving the Node");
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn cond<'a>(s: &'a MachineStatus, type_: &str) -> &'a Condition {
        conditions::get(s.conditions.as_deref().unwrap(), type_).unwrap()
    }

    #[test]
    fn phases_and_conditions_follow_the_references() {
        let mut o = Observed {
            generation: Some(1),
            ..Default::default()
        };
        let s = desired_status(&o, &MachineStatus::default(), t(1));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, "BootstrapConfigReady").reason, "RefNotFound");
        assert_eq!(cond(&s, "Ready").status, "False");

        o.bootstrap = Some(RefView {
            done: true,
            ready: None,
        });
        o.infra = Some(RefView::default());
        let s = desired_status(&o, &s, t(2));
        assert_eq!(s.phase.as_deref(), Some("Provisioning"));
        assert_eq!(
            cond(&s, "InfrastructureReady").reason,
            "WaitingForInfrastructure"
        );

        o.infra = Some(RefView {
            done: true,
            ready: None,
        });
        let s = desired_status(&o, &s, t(3));
        assert_eq!(s.phase.as_deref(), Some("Provisioned"));
        assert_eq!(cond(&s, "NodeReady").status, "Unknown");
        assert_eq!(cond(&s, "Ready").status, "Unknown");

        o.node = Some(NodeView {
            name: "n1".into(),
            ready: true,
            message: String::new(),
        });
        let s = desired_status(&o, &s, t(4));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.node_ref.as_ref().unwrap().name, "n1");
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "Available").reason, "Available");
        assert_eq!(
            cond(&s, "Ready").last_transition_time.0,
            t(4),
            "Ready turned True now"
        );
        assert_eq!(
            desired_status(&o, &s, t(5)),
            s,
            "a second pass changes nothing: no write"
        );
        assert_eq!(
            s.initialization,
            Some(MachineInitializationStatus {
                infrastructure_provisioned: Some(true),
                bootstrap_data_secret_created: Some(true)
            })
        );
    }

    #[test]
    fn a_terminal_infrastructure_error_fails_the_machine() {
        let o = Observed {
            bootstrap: Some(RefView {
                done: true,
                ready: None,
            }),
            infra: Some(RefView {
                done: false,
                ready: Some(Condition {
                    type_: "Ready".into(),
                    status: "False".into(),
                    reason: "ProviderTerminalError".into(),
                    message: "the machine failed to boot (simulated fault): disk on fire".into(),
                    observed_generation: None,
                    last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(
                        0,
                    )),
                }),
            }),
            ..Default::default()
        };
        let s = desired_status(&o, &MachineStatus::default(), t(1));
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let ready = cond(&s, "Ready");
        assert_eq!(ready.status, "False");
        assert!(ready.message.contains("disk on fire"), "{}", ready.message);
    }
}
