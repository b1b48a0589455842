//! AWSMachinePool (CAPA's `exp/controllers/awsmachinepool_controller.go`): the infrastructure
//! of a MachinePool as one EC2 launch template and one Auto Scaling group, both named after
//! the pool and tagged for the cluster in their create calls.
//!
//! apply: waits for the AWSCluster's network and the MachinePool's bootstrap data; makes the
//! launch template (the bootstrap data as base64 user data, the cluster's `node` and `lb`
//! security groups, AMI and SSH key resolved as for AWSMachines); a later change makes a new
//! version (the oldest spare one pruned first, as CAPA does), and when more than the user data
//! changed an instance refresh is owed ([`crate::api::AwsMachinePoolStatus::pending_instance_refresh`])
//! until StartInstanceRefresh succeeds; makes the Auto Scaling group at `$Latest` sized by the
//! MachinePool's replicas within `minSize`..`maxSize`, keeps it there, and reports the group's
//! instances as `spec.providerIDList`. cleanup: deletes the group (ForceDelete, which
//! terminates its instances), waits until it is gone, then deletes the launch template. A
//! group or template not tagged as the cluster's is never adopted or deleted.

pub mod calls;
pub mod plan;

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;
use slipway_api::{
    Cluster, MachinePool,
    common::ProvisionedInitialization,
    names::{conditions as ct, labels, reasons, secrets},
};
use slipway_runtime::{
    Context, Error,
    conditions::{self, Status, desired},
    reconcile::{dispatch, paused_condition, write_status},
    runner::Runner,
};

use crate::{
    ProviderError,
    api::{AWSCluster, AWSMachine, AWSMachinePool, AwsMachinePoolStatus, pool::conditions as pc},
    clients::{ClientCache, Clients},
    network::model::owner_tag,
};
use plan::{Change, Template};

/// Finalizer of AWSMachinePools (CAPA's).
pub const FINALIZER: &str = "awsmachinepool.infrastructure.cluster.x-k8s.io";
/// How often a settled pool looks at its group again (instances replaced by AWS, a refreshed
/// bootstrap token); nothing is written when nothing changed.
const RESYNC: Duration = Duration::from_secs(120);

/// What the AWSMachinePool reconciler shares.
pub struct PoolContext {
    /// Shared controller context.
    pub base: Arc<Context>,
    /// AWS clients.
    pub clients: ClientCache,
}

/// Runs the AWSMachinePool controller (woken by its owner MachinePool's changes).
pub async fn run(runner: Runner) {
    let ctx = Arc::new(PoolContext {
        base: runner.context(),
        clients: ClientCache::default(),
    });
    let c = runner.controller::<AWSMachinePool>().watches(
        runner.api::<MachinePool>(),
        Default::default(),
        |mp: MachinePool| {
            let ns = mp.namespace().unwrap_or_default();
            let r = &mp.spec.template.spec.infrastructure_ref;
            (r.kind == "AWSMachinePool")
                .then(|| kube::runtime::reflector::ObjectRef::new(&r.name).within(&ns))
        },
    );
    runner.run(c, "AWSMachinePool", ctx, reconcile).await;
}

/// Entry point: finalizer dispatch.
pub async fn reconcile(pool: Arc<AWSMachinePool>, ctx: Arc<PoolContext>) -> Result<Action, Error> {
    let ns = pool.namespace().unwrap_or_default();
    let api: Api<AWSMachinePool> = Api::namespaced(ctx.base.client.clone(), &ns);
    let (ctx, api) = (&ctx, &api);
    dispatch(
        api,
        FINALIZER,
        pool,
        |p| async move { apply(&p, ctx, api).await },
        |p| async move { cleanup(&p, ctx).await },
    )
    .await
}

/// Where a pass stopped short of a settled group.
enum Step {
    /// Waiting for something outside AWS (ASGReady False with this reason and message).
    Waiting(&'static str, String, Duration),
    /// The group exists: its provider IDs and ARN, and when to look again.
    Group {
        ids: Vec<String>,
        arn: String,
        again: Duration,
    },
}

/// A failure, with the condition it belongs on.
struct Failed {
    condition: &'static str,
    reason: &'static str,
    error: ProviderError,
}

fn on(condition: &'static str, reason: &'static str) -> impl Fn(ProviderError) -> Failed {
    move |error| Failed {
        condition,
        reason,
        error,
    }
}

async fn apply(
    pool: &AWSMachinePool,
    ctx: &PoolContext,
    api: &Api<AWSMachinePool>,
) -> Result<Action, Error> {
    let ns = pool.namespace().unwrap_or_default();
    let client = ctx.base.client.clone();
    let Some(mp_name) = slipway_runtime::objects::core_owner_name(pool, "MachinePool") else {
        // The contract: nothing happens until a MachinePool owns the pool.
        return Ok(Action::await_change());
    };
    let Some(mp) = Api::<MachinePool>::namespaced(client.clone(), &ns)
        .get_opt(&mp_name)
        .await?
    else {
        return Ok(Action::await_change());
    };
    let Some(cluster) = Api::<Cluster>::namespaced(client.clone(), &ns)
        .get_opt(&mp.spec.cluster_name)
        .await?
    else {
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    let old = pool.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let mut conds = status.conditions.take().unwrap_or_default();
    let g = pool.metadata.generation;
    let now = ctx.base.now();
    if paused_condition(&mut conds, &cluster, pool.annotations(), g, now) {
        status.conditions = Some(conds);
        write_status(api, &pool.metadata, Some(&old), &status).await?;
        return Ok(Action::await_change());
    }
    let mut set = |d: conditions::Desired| {
        conditions::set(&mut conds, d, g, now);
    };
    // The version the status write is guarded by: this pass's own spec write moves it.
    let mut meta = pool.metadata.clone();
    let action = match step(pool, &mp, &cluster, ctx, &mut status, &mut set).await {
        Ok(Step::Waiting(reason, message, after)) => {
            set(desired(pc::ASG_READY, Status::False, reason, message));
            Action::requeue(after)
        }
        Ok(Step::Group { ids, arn, again }) => {
            if pool.spec.provider_id_list.as_deref().unwrap_or_default() != ids.as_slice()
                || pool.spec.provider_id.as_deref() != Some(arn.as_str())
            {
                meta = api
                    .patch(
                        &pool.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&json!({"spec": {"providerIDList": ids, "providerID": arn}})),
                    )
                    .await?
                    .metadata;
            }
            status.replicas = Some(ids.len() as i32);
            status.ready = Some(true);
            status.initialization = Some(ProvisionedInitialization {
                provisioned: Some(true),
            });
            set(desired(pc::ASG_READY, Status::True, reasons::READY, ""));
            Action::requeue(again)
        }
        Err(f) => {
            set(desired(
                f.condition,
                Status::False,
                f.reason,
                f.error.to_string(),
            ));
            if f.error.is_terminal() {
                Action::await_change()
            } else {
                Action::requeue(f.error.fixed_retry().unwrap_or(Duration::from_secs(10)))
            }
        }
    };
    let ready = [pc::LAUNCH_TEMPLATE_READY, pc::ASG_READY]
        .iter()
        .find_map(|t| {
            conditions::get(&conds, t)
                .filter(|c| c.status != "True")
                .map(|c| (c.reason.clone(), c.message.clone()))
        });
    let ready = match ready {
        None if conditions::is_true(&conds, pc::ASG_READY) => {
            desired(ct::READY, Status::True, reasons::READY, "")
        }
        None => desired(
            ct::READY,
            Status::False,
            reasons::PROVISIONING,
            "the launch template and Auto Scaling group are being made",
        ),
        Some((reason, message)) => desired(ct::READY, Status::False, &reason, message),
    };
    conditions::set(&mut conds, ready, g, now);
    status.conditions = Some(conds);
    status.observed_generation = g;
    write_status(api, &meta, Some(&old), &status).await?;
    Ok(action)
}

/// The pool's AWSCluster, if its Cluster's infrastructure is one.
async fn aws_cluster(
    client: &kube::Client,
    ns: &str,
    cluster: &Cluster,
) -> Result<Result<Option<AWSCluster>, String>, Error> {
    let Some(r) = &cluster.spec.infrastructure_ref else {
        return Ok(Ok(None));
    };
    if r.kind != "AWSCluster" {
        return Ok(Err(format!(
            "the Cluster's infrastructure is a {}: slipway's AWSMachinePool works with an \
             AWSCluster only (EKS clusters use AWSManagedMachinePool)",
            r.kind
        )));
    }
    Ok(Ok(Api::<AWSCluster>::namespaced(client.clone(), ns)
        .get_opt(&r.name)
        .await?))
}

/// The bootstrap data (`value` of the MachinePool's data Secret), if it exists yet.
async fn bootstrap(client: &kube::Client, ns: &str, name: &str) -> Result<Option<Vec<u8>>, Error> {
    let Some(s) = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
    else {
        return Ok(None);
    };
    let data = s.data.unwrap_or_default();
    let value = data.get(secrets::VALUE_KEY).ok_or_else(|| {
        Error::invalid(
            format!("bootstrap Secret {ns}/{name}"),
            format!("no key {:?}", secrets::VALUE_KEY),
        )
    })?;
    Ok(Some(value.0.clone()))
}

async fn step(
    pool: &AWSMachinePool,
    mp: &MachinePool,
    cluster: &Cluster,
    ctx: &PoolContext,
    status: &mut AwsMachinePoolStatus,
    set: &mut impl FnMut(conditions::Desired),
) -> Result<Step, Failed> {
    let ns = pool.namespace().unwrap_or_default();
    let client = &ctx.base.client;
    let kube = |e: Error| {
        on(pc::ASG_READY, reasons::PROVIDER_TRANSIENT_ERROR)(ProviderError::transient(
            e.to_string(),
        ))
    };
    let infra = match aws_cluster(client, &ns, cluster).await.map_err(kube)? {
        Err(why) => {
            return Err(on(pc::ASG_READY, pc::ASG_PROVISION_FAILED)(
                ProviderError::terminal(why),
            ));
        }
        Ok(None) => {
            return Ok(Step::Waiting(
                pc::WAITING_FOR_CLUSTER_INFRASTRUCTURE,
                "waiting for the Cluster's AWSCluster".into(),
                Duration::from_secs(5),
            ));
        }
        Ok(Some(i)) => i,
    };
    let net = infra
        .status
        .as_ref()
        .filter(|s| {
            s.initialization
                .as_ref()
                .and_then(|i| i.provisioned)
                .unwrap_or(false)
        })
        .and_then(|s| s.network_status.clone());
    let Some(net) = net else {
        return Ok(Step::Waiting(
            pc::WAITING_FOR_CLUSTER_INFRASTRUCTURE,
            "waiting for the AWSCluster's network".into(),
            Duration::from_secs(5),
        ));
    };
    let data = match &mp.spec.template.spec.bootstrap.data_secret_name {
        Some(s) => bootstrap(client, &ns, s).await.map_err(kube)?,
        None => None,
    };
    let Some(data) = data else {
        return Ok(Step::Waiting(
            reasons::WAITING_FOR_BOOTSTRAP_DATA,
            "waiting for the MachinePool's bootstrap data".into(),
            Duration::from_secs(5),
        ));
    };
    let lt_err = on(
        pc::LAUNCH_TEMPLATE_READY,
        pc::LAUNCH_TEMPLATE_RECONCILE_FAILED,
    );
    let asg_err = on(pc::ASG_READY, pc::ASG_PROVISION_FAILED);
    let c = ctx
        .clients
        .get(infra.spec.region.as_deref())
        .await
        .map_err(&asg_err)?;
    let name = pool.name_any();
    let cluster_name = cluster.name_any();
    let want = template(&c, pool, mp, &infra, &net, &data)
        .await
        .map_err(&lt_err)?;
    let tags = plan::tags(
        &cluster_name,
        &name,
        &infra.spec.additional_tags.clone().unwrap_or_default(),
        &pool.spec.additional_tags.clone().unwrap_or_default(),
    );
    let group = calls::describe_group(&c, &name).await.map_err(&asg_err)?;
    if let Some(g) = &group
        && g.tags.get(&owner_tag(&cluster_name)).map(String::as_str) != Some("owned")
    {
        return Err(asg_err(ProviderError::terminal(format!(
            "Auto Scaling group {name} exists and is not tagged {}=owned; slipway does not \
             adopt it",
            owner_tag(&cluster_name)
        ))));
    }
    let refresh_off = pool
        .spec
        .refresh_preferences
        .as_ref()
        .and_then(|r| r.disable)
        .unwrap_or(false);
    let (lt_id, version) = match calls::describe_template(&c, &name).await.map_err(&lt_err)? {
        None => {
            let id = calls::create_template(&c, pool, &name, &want, &tags)
                .await
                .map_err(&lt_err)?;
            (id, 1)
        }
        Some(found) => match plan::change(&want, &found.data) {
            Change::None => (found.id, found.version),
            change => {
                calls::prune_versions(&c, &found.id)
                    .await
                    .map_err(&lt_err)?;
                let v = calls::create_version(&c, pool, &found.id, &want, &tags)
                    .await
                    .map_err(&lt_err)?;
                if let Change::Instances(fields) = &change
                    && group.is_some()
                    && !refresh_off
                {
                    tracing::info!(pool = %name, version = v, ?fields, "a template change owes an instance refresh");
                    status.pending_instance_refresh = Some(v.to_string());
                }
                (found.id, v)
            }
        },
    };
    status.launch_template_id = Some(lt_id.clone());
    status.launch_template_version = Some(version.to_string());
    set(desired(
        pc::LAUNCH_TEMPLATE_READY,
        Status::True,
        reasons::READY,
        "",
    ));
    let (min, max, desired_n) = plan::sizes(pool, mp.spec.desired()).map_err(&asg_err)?;
    let want_group = plan::Group {
        min,
        max,
        desired: desired_n,
        subnets: subnets(&c, pool, mp, &net).await.map_err(&asg_err)?,
        overrides: pool
            .spec
            .mixed_instances_policy
            .iter()
            .flat_map(|m| m.overrides.iter().flatten())
            .map(|o| o.instance_type.clone())
            .collect(),
        capacity_rebalance: pool.spec.capacity_rebalance.unwrap_or(false),
    };
    let Some(g) = group else {
        calls::create_group(&c, pool, &name, &lt_id, &want_group, &tags)
            .await
            .map_err(&asg_err)?;
        return Ok(Step::Waiting(
            reasons::PROVISIONING,
            format!("created Auto Scaling group {name}"),
            Duration::from_secs(2),
        ));
    };
    status.asg_status = g.status.clone();
    if g.status.is_some() {
        return Ok(Step::Waiting(
            pc::ASG_DELETION_IN_PROGRESS,
            format!(
                "Auto Scaling group {name} is {}",
                g.status.clone().unwrap_or_default()
            ),
            Duration::from_secs(15),
        ));
    }
    let diff = plan::group_diff(&want_group, &g.group);
    if !diff.is_empty() {
        tracing::info!(pool = %name, ?diff, "the Auto Scaling group differs");
        calls::update_group(&c, pool, &name, &lt_id, &want_group)
            .await
            .map_err(&asg_err)?;
    }
    if refresh_off {
        status.pending_instance_refresh = None;
    }
    if let Some(v) = status.pending_instance_refresh.clone() {
        let outcome = match calls::refreshes(&c, &name).await {
            Err(e) => Err(e),
            Ok(statuses) => match plan::refresh(&statuses) {
                plan::Refresh::Wait(s) => Ok(Some(s)),
                plan::Refresh::Start => calls::start_refresh(&c, pool, &name).await.map(|()| None),
            },
        };
        set(match outcome {
            Ok(None) => {
                status.pending_instance_refresh = None;
                desired(
                    pc::INSTANCE_REFRESH_STARTED,
                    Status::True,
                    pc::INSTANCE_REFRESH_STARTED,
                    format!("started for launch template version {v}"),
                )
            }
            Ok(Some(s)) => desired(
                pc::INSTANCE_REFRESH_STARTED,
                Status::False,
                pc::INSTANCE_REFRESH_NOT_READY,
                format!(
                    "another instance refresh is {s}; the one for launch template version {v} \
                     waits for it"
                ),
            ),
            Err(e) => desired(
                pc::INSTANCE_REFRESH_STARTED,
                Status::False,
                pc::INSTANCE_REFRESH_FAILED,
                format!("the instances still run an older launch template than version {v}: {e}"),
            ),
        });
    }
    status.instances = Some(
        g.instances
            .iter()
            .map(|i| crate::api::AwsMachinePoolInstanceStatus {
                instance_id: Some(i.id.clone()),
                version: i.version.clone(),
            })
            .collect(),
    );
    let ids = plan::provider_ids(&g.instances);
    // A group on its way to its size is watched closely; an owed refresh that could not start
    // is tried again every 30 s (CAPA's delay), not on every pass.
    let again = if !diff.is_empty() || ids.len() != desired_n as usize {
        Duration::from_secs(3)
    } else if status.pending_instance_refresh.is_some() {
        Duration::from_secs(30)
    } else {
        RESYNC
    };
    Ok(Step::Group {
        ids,
        arn: g.arn,
        again,
    })
}

/// The launch template data wanted: AMI and SSH key as an AWSMachine of this template would
/// get them, the cluster's `node` and `lb` groups plus the template's own, the user data.
async fn template(
    c: &Clients,
    pool: &AWSMachinePool,
    mp: &MachinePool,
    infra: &AWSCluster,
    net: &crate::api::NetworkStatus,
    data: &[u8],
) -> Result<Template, ProviderError> {
    let lt = &pool.spec.aws_launch_template;
    let instance_type = lt
        .instance_type
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| {
            pool.spec
                .mixed_instances_policy
                .iter()
                .flat_map(|m| m.overrides.iter().flatten())
                .map(|o| o.instance_type.clone())
                .next()
        })
        .ok_or_else(|| {
            ProviderError::terminal(
                "spec.awsLaunchTemplate.instanceType is required (or \
                 spec.mixedInstancesPolicy.overrides)",
            )
        })?;
    // The AWSMachine this template stands for, so AMI and key follow the AWSMachine rules.
    let m = AWSMachine::new(
        &pool.name_any(),
        crate::api::AwsMachineSpec {
            ami: lt.ami.clone(),
            image_lookup_format: lt.image_lookup_format.clone(),
            image_lookup_org: lt.image_lookup_org.clone(),
            image_lookup_base_os: lt.image_lookup_base_os.clone(),
            instance_type: instance_type.clone(),
            ssh_key_name: lt.ssh_key_name.clone(),
            ..Default::default()
        },
    );
    let image =
        crate::machine::image(c, infra, &m, mp.spec.template.spec.version.as_deref()).await?;
    let sgs = net.security_groups.clone().unwrap_or_default();
    let mut groups = Vec::new();
    for role in ["node", "lb"] {
        groups.push(sgs.get(role).map(|g| g.id.clone()).ok_or_else(|| {
            ProviderError::transient(format!("security group {role} not made yet"))
        })?);
    }
    for (i, g) in lt.additional_security_groups.iter().flatten().enumerate() {
        groups.push(g.id.clone().ok_or_else(|| {
            ProviderError::terminal(format!(
                "spec.awsLaunchTemplate.additionalSecurityGroups[{i}]: only ids are supported"
            ))
        })?);
    }
    groups.sort();
    groups.dedup();
    Ok(Template {
        image,
        instance_type,
        key: crate::machine::ssh_key(infra, &m),
        profile: lt.iam_instance_profile.clone().filter(|p| !p.is_empty()),
        groups,
        spot: lt
            .spot_market_options
            .as_ref()
            .map(|s| s.max_price.clone().unwrap_or_default()),
        user_data: crate::machine::user_data(data, false)?,
    })
}

/// The group's subnets: the pool's by id, by EC2 filters, or placed by zone in the cluster's
/// network ([`plan::subnets`]).
async fn subnets(
    c: &Clients,
    pool: &AWSMachinePool,
    mp: &MachinePool,
    net: &crate::api::NetworkStatus,
) -> Result<Vec<String>, ProviderError> {
    let mut explicit = Vec::new();
    let mut filters = Vec::new();
    for s in pool.spec.subnets.iter().flatten() {
        if let Some(id) = &s.id {
            explicit.push(id.clone());
        }
        for f in s.filters.iter().flatten() {
            filters.push(
                aws_sdk_ec2::types::Filter::builder()
                    .name(&f.name)
                    .set_values(Some(f.values.clone()))
                    .build(),
            );
        }
    }
    if !filters.is_empty() {
        let out = crate::error::retrying("DescribeSubnets", || {
            c.ec2
                .describe_subnets()
                .set_filters(Some(filters.clone()))
                .send()
        })
        .await?;
        let found: Vec<String> = out
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_id().map(String::from))
            .collect();
        if found.is_empty() {
            return Err(ProviderError::terminal(
                "no subnet matches the filters of spec.subnets",
            ));
        }
        explicit.extend(found);
    }
    let cluster: Vec<plan::Subnet> = net
        .subnets
        .iter()
        .flatten()
        .map(|s| plan::Subnet {
            id: s.id.clone(),
            zone: s.availability_zone.clone(),
            public: s.is_public,
        })
        .collect();
    plan::subnets(
        &explicit,
        pool.spec.availability_zones.as_deref().unwrap_or_default(),
        mp.spec.failure_domains.as_deref().unwrap_or_default(),
        pool.spec.availability_zone_subnet_type.as_deref(),
        &cluster,
    )
}

async fn cleanup(pool: &AWSMachinePool, ctx: &PoolContext) -> Result<Action, Error> {
    let ns = pool.namespace().unwrap_or_default();
    let client = &ctx.base.client;
    let Some(cluster_name) = pool.labels().get(labels::CLUSTER_NAME).cloned() else {
        // Never adopted by a MachinePool: nothing was made.
        return Ok(Action::await_change());
    };
    let region = match Api::<Cluster>::namespaced(client.clone(), &ns)
        .get_opt(&cluster_name)
        .await?
    {
        Some(cl) => match aws_cluster(client, &ns, &cl).await? {
            Ok(Some(i)) => i.spec.region,
            _ => None,
        },
        None => None,
    };
    let name = pool.name_any();
    let result: Result<Option<String>, ProviderError> = async {
        let c = ctx.clients.get(region.as_deref()).await?;
        let owner = owner_tag(&cluster_name);
        if let Some(g) = calls::describe_group(&c, &name).await? {
            if g.tags.get(&owner).map(String::as_str) != Some("owned") {
                tracing::warn!(group = %name, "not deleted: not tagged owned by the cluster");
            } else {
                if g.status.is_none() {
                    calls::delete_group(&c, &name).await?;
                }
                return Ok(Some(format!("Auto Scaling group {name} is being deleted")));
            }
        }
        if let Some((id, tags)) = calls::template_tags(&c, &name).await? {
            if tags.get(&owner).map(String::as_str) == Some("owned") {
                calls::delete_template(&c, &id).await?;
                tracing::info!(launch_template = %name, %id, "deleted the launch template");
            } else {
                tracing::warn!(launch_template = %name, "not deleted: not tagged owned by the cluster");
            }
        }
        Ok(None)
    }
    .await;
    match result {
        Ok(None) => Ok(Action::await_change()),
        Ok(Some(w)) => Err(Error::Waiting(w)),
        Err(e) => Err(Error::Waiting(format!(
            "deleting the Auto Scaling group and launch template: {e}"
        ))),
    }
}
