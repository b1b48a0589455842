//! AWSManagedMachinePool: one EKS managed node group of a Cluster (the pool stands on its own:
//! slipway has no core MachinePool kind yet). Made once the control plane is initialized, in
//! the private subnets of the cluster's network (or `spec.subnetIDs`), with the role of the
//! account STS names, tagged `kubernetes.io/cluster/<cluster>=owned` in the create call and
//! adopted only with it; resized with UpdateNodegroupConfig when `spec.replicas` changes;
//! deleted (and waited for) before its finalizer goes.

use std::{collections::HashMap, sync::Arc, time::Duration};

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;
use slipway_api::{
    Cluster,
    common::ProvisionedInitialization,
    names::{conditions as ct, labels, reasons},
};
use slipway_runtime::{
    Error,
    conditions::{self, Status, desired},
    reconcile::{dispatch, paused_condition, write_status},
};

use super::{EksContext, eks_name};
use crate::{
    ProviderError,
    api::{AWSManagedControlPlane, AWSManagedMachinePool, AwsManagedMachinePoolStatus},
    clients::Clients,
    error,
    network::model::{k8s_tag, owner_tag},
};

/// Finalizer of AWSManagedMachinePools.
pub const FINALIZER: &str = "awsmanagedmachinepool.infrastructure.cluster.x-k8s.io";
/// CAPA's default role of node groups.
const DEFAULT_ROLE: &str = "eks-nodegroup.cluster-api-provider-aws.sigs.k8s.io";

/// Scaling of a pool (pure): desired = `replicas` (default 1); min and max default to it (max
/// at least 1).
pub fn scaling(pool: &AWSManagedMachinePool) -> (i32, i32, i32) {
    let desired = pool.spec.replicas.unwrap_or(1).max(0);
    let s = pool.spec.scaling.clone().unwrap_or_default();
    let min = s.min_size.unwrap_or(desired).min(desired);
    let max = s.max_size.unwrap_or(desired).max(desired).max(1);
    (min, desired, max)
}

fn nodegroup_name(pool: &AWSManagedMachinePool) -> String {
    pool.spec
        .eks_nodegroup_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            format!(
                "{}_{}",
                pool.namespace().unwrap_or_default(),
                pool.name_any()
            )
        })
}

/// The pool's control plane, through its Cluster (label `cluster.x-k8s.io/cluster-name`).
async fn control_plane(
    pool: &AWSManagedMachinePool,
    ctx: &EksContext,
) -> Result<Option<(Cluster, AWSManagedControlPlane)>, Error> {
    let ns = pool.namespace().unwrap_or_default();
    let Some(name) = pool.labels().get(labels::CLUSTER_NAME).cloned() else {
        return Ok(None);
    };
    let Some(cluster) = Api::<Cluster>::namespaced(ctx.base.client.clone(), &ns)
        .get_opt(&name)
        .await?
    else {
        return Ok(None);
    };
    let Some(cp_ref) = cluster.spec.control_plane_ref.clone() else {
        return Ok(None);
    };
    let cp = Api::<AWSManagedControlPlane>::namespaced(ctx.base.client.clone(), &ns)
        .get_opt(&cp_ref.name)
        .await?;
    Ok(cp.map(|cp| (cluster, cp)))
}

/// Entry point: finalizer dispatch.
pub async fn reconcile(
    pool: Arc<AWSManagedMachinePool>,
    ctx: Arc<EksContext>,
) -> Result<Action, Error> {
    let ns = pool.namespace().unwrap_or_default();
    let api: Api<AWSManagedMachinePool> = Api::namespaced(ctx.base.client.clone(), &ns);
    let (ctx, api) = (&ctx, &api);
    dispatch(
        api,
        FINALIZER,
        pool,
        |o| async move { apply(&o, ctx, api).await },
        |o| async move { cleanup(&o, ctx).await },
    )
    .await
}

enum Step {
    Waiting(String, String, Duration),
    Ready { replicas: i32, arn: String },
}

async fn apply(
    pool: &AWSManagedMachinePool,
    ctx: &EksContext,
    api: &Api<AWSManagedMachinePool>,
) -> Result<Action, Error> {
    let Some((cluster, cp)) = control_plane(pool, ctx).await? else {
        return Ok(Action::requeue(Duration::from_secs(15)));
    };
    // Owned by the Cluster, so deleting the Cluster removes the pool.
    if !pool
        .owner_references()
        .iter()
        .any(|o| o.kind == "Cluster" && o.uid == cluster.uid().unwrap_or_default())
    {
        let mut owners = pool.owner_references().to_vec();
        owners.push(slipway_runtime::objects::cluster_owner_ref(&cluster)?);
        api.patch(
            &pool.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"ownerReferences": owners}})),
        )
        .await?;
    }
    let old = pool.status.clone().unwrap_or_default();
    let mut status: AwsManagedMachinePoolStatus = old.clone();
    let mut conds = status.conditions.take().unwrap_or_default();
    let generation = pool.metadata.generation;
    let now = (ctx.base.clock)();
    let paused = paused_condition(&mut conds, &cluster, pool.annotations(), generation, now);
    let mut action = Action::await_change();
    // As the infrastructure of a MachinePool (CAPA's shape), the size is the MachinePool's;
    // standalone, the pool's own `spec.replicas`. One code path: only the size differs.
    let mut sized = pool.clone();
    if let Some(mp) = slipway_runtime::objects::core_owner_name(pool, "MachinePool") {
        let ns = pool.namespace().unwrap_or_default();
        match Api::<slipway_api::MachinePool>::namespaced(ctx.base.client.clone(), &ns)
            .get_opt(&mp)
            .await?
        {
            Some(mp) => sized.spec.replicas = Some(mp.spec.desired()),
            None => return Ok(Action::requeue(Duration::from_secs(5))),
        }
    }
    let pool = &sized;
    if !paused {
        let ready = match step(pool, &cluster, &cp, ctx, &mut status.creation, now).await {
            Ok(Step::Waiting(reason, message, after)) => {
                action = Action::requeue(after);
                desired(ct::READY, Status::False, &reason, message)
            }
            Ok(Step::Ready { replicas, arn }) => {
                status.replicas = Some(replicas);
                status.ready_replicas = Some(replicas);
                status.nodegroup_arn = Some(arn);
                status.initialization = Some(ProvisionedInitialization {
                    provisioned: Some(true),
                });
                desired(ct::READY, Status::True, reasons::READY, "")
            }
            Err(e) => {
                if !e.is_terminal() {
                    action = Action::requeue(e.fixed_retry().unwrap_or(Duration::from_secs(10)));
                }
                desired(ct::READY, Status::False, e.reason(), e.to_string())
            }
        };
        conditions::set(&mut conds, ready, generation, now);
        status.observed_generation = generation;
    }
    status.conditions = Some(conds);
    write_status(api, &pool.metadata, Some(&old), &status).await?;
    Ok(action)
}

async fn step(
    pool: &AWSManagedMachinePool,
    cluster: &Cluster,
    cp: &AWSManagedControlPlane,
    ctx: &EksContext,
    creation: &mut Option<crate::api::Creation>,
    now: jiff::Timestamp,
) -> Result<Step, ProviderError> {
    let initialized = cp
        .status
        .as_ref()
        .and_then(|s| s.initialization.as_ref())
        .and_then(|i| i.control_plane_initialized)
        .unwrap_or(false);
    if !initialized {
        return Ok(Step::Waiting(
            reasons::WAITING_FOR_CONTROL_PLANE.into(),
            "waiting for the EKS control plane to be ACTIVE".into(),
            Duration::from_secs(15),
        ));
    }
    let c = ctx.clients.get(cp.spec.region.as_deref()).await?;
    let ns = cp.namespace().unwrap_or_default();
    let cluster_name = cluster.name_any();
    let eks = eks_name(cp, &ns, &cluster_name);
    let ng = nodegroup_name(pool);
    let (min, want, max) = scaling(pool);
    let Some(found) = describe(&c, &eks, &ng).await? else {
        // The attempt goes to status before CreateNodegroup: a restarted controller sends the
        // same clientRequestToken.
        let uid = pool.metadata.uid.clone().unwrap_or_default();
        let sent = creation
            .as_ref()
            .is_some_and(|p| ctx.ledger.was_sent(&uid, "nodegroup", p.attempt));
        match crate::creations::decide(
            creation.as_ref(),
            now,
            ctx.ledger.me(),
            sent,
            true,
            false,
            ctx.window,
        ) {
            crate::creations::Go::Create(n) => {
                ctx.ledger.send(&uid, "nodegroup", n);
                let token = crate::creations::token(&uid, "nodegroup", n);
                create(pool, cp, &c, &cluster_name, &eks, &ng, &token).await?;
                return Ok(Step::Waiting(
                    "CreatingNodegroup".into(),
                    format!("CreateNodegroup {ng} sent"),
                    Duration::from_secs(15),
                ));
            }
            crate::creations::Go::Record(r) => {
                let msg = format!("recorded CreateNodegroup attempt {}", r.attempt);
                *creation = Some(r);
                return Ok(Step::Waiting(
                    "RecordingCreate".into(),
                    msg,
                    Duration::from_millis(200),
                ));
            }
            crate::creations::Go::Wait { left } => {
                return Ok(Step::Waiting(
                    "WaitingForConsistency".into(),
                    "a CreateNodegroup may be in flight".into(),
                    left.min(Duration::from_secs(5)),
                ));
            }
        }
    };
    if let Some(r) = crate::creations::settled(creation.as_ref()) {
        *creation = Some(r);
    }
    let tags = found.tags().cloned().unwrap_or_default();
    if tags.get(&k8s_tag(&cluster_name)).map(String::as_str) != Some("owned") {
        return Err(ProviderError::terminal(format!(
            "node group {ng} exists and is not tagged {}=owned; slipway does not adopt it",
            k8s_tag(&cluster_name)
        )));
    }
    let state = found
        .status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    match state.as_str() {
        "ACTIVE" => {}
        "CREATE_FAILED" | "DELETE_FAILED" => {
            return Err(ProviderError::terminal(format!(
                "node group {ng} is {state}"
            )));
        }
        other => {
            return Ok(Step::Waiting(
                "WaitingForNodegroup".into(),
                format!("node group {ng} is {other}"),
                Duration::from_secs(15),
            ));
        }
    }
    let have = found
        .scaling_config()
        .map(|s| (s.min_size(), s.desired_size(), s.max_size()))
        .unwrap_or_default();
    if have != (Some(min), Some(want), Some(max)) {
        let cfg = aws_sdk_eks::types::NodegroupScalingConfig::builder()
            .min_size(min)
            .desired_size(want)
            .max_size(max)
            .build();
        error::retrying("UpdateNodegroupConfig", || {
            c.eks
                .update_nodegroup_config()
                .cluster_name(&eks)
                .nodegroup_name(&ng)
                .scaling_config(cfg.clone())
                .send()
        })
        .await?;
        return Ok(Step::Waiting(
            "ScalingNodegroup".into(),
            format!("node group {ng}: {min} <= {want} <= {max}"),
            Duration::from_secs(15),
        ));
    }
    Ok(Step::Ready {
        replicas: want,
        arn: found.nodegroup_arn().unwrap_or_default().to_string(),
    })
}

/// The node group, if it exists.
async fn describe(
    c: &Clients,
    eks: &str,
    ng: &str,
) -> Result<Option<aws_sdk_eks::types::Nodegroup>, ProviderError> {
    match c
        .eks
        .describe_nodegroup()
        .cluster_name(eks)
        .nodegroup_name(ng)
        .send()
        .await
    {
        Ok(o) => Ok(o.nodegroup().cloned()),
        Err(e) if error::is_not_found(&e) => Ok(None),
        Err(e) => Err(error::map("DescribeNodegroup", e)),
    }
}

async fn create(
    pool: &AWSManagedMachinePool,
    cp: &AWSManagedControlPlane,
    c: &Clients,
    cluster: &str,
    eks: &str,
    ng: &str,
    token: &str,
) -> Result<(), ProviderError> {
    let subnets = match pool.spec.subnet_ids.clone().filter(|s| !s.is_empty()) {
        Some(s) => s,
        None => cp
            .status
            .as_ref()
            .and_then(|s| s.network_status.as_ref())
            .and_then(|n| n.subnets.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|s| !s.is_public)
            .map(|s| s.id)
            .collect(),
    };
    if subnets.is_empty() {
        return Err(ProviderError::transient(
            "the control plane's network has no private subnet recorded yet",
        ));
    }
    let account = error::retrying("GetCallerIdentity", || c.sts.get_caller_identity().send())
        .await?
        .account()
        .unwrap_or_default()
        .to_string();
    let role = pool
        .spec
        .role_name
        .clone()
        .unwrap_or_else(|| DEFAULT_ROLE.into());
    let (min, want, max) = scaling(pool);
    let mut tags: HashMap<String, String> = pool
        .spec
        .additional_tags
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    tags.insert(k8s_tag(cluster), "owned".into());
    tags.insert(owner_tag(cluster), "owned".into());
    let mut req = c
        .eks
        .create_nodegroup()
        .cluster_name(eks)
        .nodegroup_name(ng)
        .scaling_config(
            aws_sdk_eks::types::NodegroupScalingConfig::builder()
                .min_size(min)
                .desired_size(want)
                .max_size(max)
                .build(),
        )
        .set_subnets(Some(subnets))
        .node_role(format!("arn:aws:iam::{account}:role/{role}"))
        .set_labels(pool.spec.labels.clone().map(|l| l.into_iter().collect()))
        .set_tags(Some(tags))
        .set_disk_size(pool.spec.disk_size)
        .client_request_token(token);
    if let Some(t) = &pool.spec.instance_type {
        req = req.instance_types(t);
    }
    if let Some(a) = &pool.spec.ami_type {
        req = req.ami_type(aws_sdk_eks::types::AmiTypes::from(a.as_str()));
    }
    // Not retried in place: the next pass describes first, and resends the same token.
    req.send()
        .await
        .map_err(|e| error::map("CreateNodegroup", e))?;
    tracing::info!(nodegroup = %ng, eks_cluster = %eks, "created the node group");
    Ok(())
}

async fn cleanup(pool: &AWSManagedMachinePool, ctx: &EksContext) -> Result<Action, Error> {
    // Without its control plane the EKS cluster is gone, and its node groups went first.
    let Some((cluster, cp)) = control_plane(pool, ctx).await? else {
        return Ok(Action::await_change());
    };
    let result: Result<Option<String>, ProviderError> = async {
        let c = ctx.clients.get(cp.spec.region.as_deref()).await?;
        let ns = cp.namespace().unwrap_or_default();
        let eks = eks_name(&cp, &ns, &cluster.name_any());
        let ng = nodegroup_name(pool);
        let Some(found) = describe(&c, &eks, &ng).await? else {
            return Ok(None);
        };
        let cluster_name = cluster.name_any();
        if !owned_by(found.tags(), &cluster_name) {
            tracing::warn!(nodegroup = %ng, eks_cluster = %eks, "not deleted: not tagged owned by the cluster");
            return Ok(None);
        }
        if found.status().map(|s| s.as_str()) != Some("DELETING") {
            match c
                .eks
                .delete_nodegroup()
                .cluster_name(&eks)
                .nodegroup_name(&ng)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if error::is_not_found(&e) => return Ok(None),
                Err(e) => return Err(error::map("DeleteNodegroup", e)),
            }
        }
        Ok(Some(format!("node group {ng} is being deleted")))
    }
    .await;
    match result {
        Ok(None) => Ok(Action::await_change()),
        Ok(Some(w)) => Err(Error::Waiting(w)),
        Err(e) => Err(Error::Waiting(format!("deleting the node group: {e}"))),
    }
}

/// Whether EKS tags (of a cluster or node group) carry the cluster's owned tag (either key).
pub(crate) fn owned_by(
    tags: Option<&std::collections::HashMap<String, String>>,
    cluster: &str,
) -> bool {
    let owned = |k: &str| tags.and_then(|t| t.get(k)).map(String::as_str) == Some("owned");
    owned(&k8s_tag(cluster)) || owned(&owner_tag(cluster))
}

#[cfg(test)]
mod tests {
    use crate::api::{AwsManagedMachinePoolSpec, ManagedMachinePoolScaling};

    use super::*;

    #[test]
    fn scaling_defaults_to_the_replicas() {
        let mut p = AWSManagedMachinePool::new("p", AwsManagedMachinePoolSpec::default());
        assert_eq!(scaling(&p), (1, 1, 1));
        p.spec.replicas = Some(3);
        assert_eq!(scaling(&p), (3, 3, 3));
        p.spec.scaling = Some(ManagedMachinePoolScaling {
            min_size: Some(1),
            max_size: Some(5),
        });
        assert_eq!(scaling(&p), (1, 3, 5));
        p.spec.replicas = Some(0);
        p.spec.scaling = None;
        assert_eq!(scaling(&p), (0, 0, 1));
        p.metadata.namespace = Some("default".into());
        assert_eq!(nodegroup_name(&p), "default_p");
    }
}
