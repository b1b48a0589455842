//! InMemoryMachinePool: the in-memory infrastructure of a MachinePool. Its instances are
//! simulated machines named `<pool>-<index>` that boot from the pool's one bootstrap Secret
//! exactly as InMemoryMachines do ([`crate::InMemory`]'s machine path), so they join the
//! workload cluster with the pool's token and register Nodes with providerID
//! `in-memory://<namespace>/<cluster>/<pool>-<index>`.
//!
//! The reconciler follows the MachinePool contract: it reads `spec.replicas`, the version and
//! `spec.template.spec.bootstrap.dataSecretName` from the owner MachinePool, keeps indexes
//! `0..replicas` of the current revision booted (scaling down removes the highest first), and
//! writes `spec.providerIDList`, `status.replicas`, `status.ready` and
//! `status.initialization.provisioned`.
//!
//! Instances are named `<pool>-<revision>-<index>`, the revision a hash of what they are
//! booted from (the MachinePool's version, the pool's simulation and faults). A change of any
//! of these rolls the pool as upstream's DevMachinePool does ([`plan_removals`]): the new
//! revision's instances boot first, and outdated ones go only while the Ready instances
//! outnumber the replicas, so the pool never drops below its replicas in Ready instances.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::{Node, Secret};
use kube::{
    Api, CustomResource, KubeSchema, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::controller::Action,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_with::skip_serializing_none;
use slipway_api::{
    Cluster, Machine, MachinePool,
    common::{Condition, ProvisionedInitialization},
    machine::MachineSpec,
    names::{conditions as ct, reasons, secrets},
};
use slipway_providers::{
    BootstrapData, BootstrapFormat, InfrastructureProvider, MachineOutcome, MachineScope,
};
use slipway_runtime::{
    Context, Error,
    conditions::{self, Status, desired},
    reconcile::{dispatch, write_status},
    runner::Runner,
};

use crate::{
    InMemory, InMemoryCluster, InMemoryMachine,
    api::{InMemoryMachineSpec, MachineFaults, MachineSimulation},
};

/// Finalizer of InMemoryMachinePools.
pub const FINALIZER: &str = "inmemorymachinepool.infrastructure.cluster.x-k8s.io";

/// Desired state of an InMemoryMachinePool.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1alpha1",
    kind = "InMemoryMachinePool",
    plural = "inmemorymachinepools",
    namespaced,
    status = "InMemoryMachinePoolStatus",
    shortname = "immp",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1alpha1"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(name = "Ready", type_ = "boolean", json_path = ".status.ready"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct InMemoryMachinePoolSpec {
    /// Provider IDs of the booted instances; set by the provider.
    #[serde(rename = "providerIDList")]
    pub provider_id_list: Option<Vec<String>>,
    /// Simulated delays of every instance.
    pub simulation: Option<MachineSimulation>,
    /// Faults injected into every instance.
    pub faults: Option<MachineFaults>,
}

/// Observed state of an InMemoryMachinePool.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct InMemoryMachinePoolStatus {
    /// Booted instances.
    pub replicas: Option<i32>,
    /// Every desired instance is booted.
    pub ready: Option<bool>,
    /// Contract flag `provisioned`.
    pub initialization: Option<ProvisionedInitialization>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

struct PoolContext {
    base: Arc<Context>,
    provider: InMemory,
}

/// Runs the InMemoryMachinePool controller (woken by its owner MachinePool's changes).
pub async fn run(runner: Runner, provider: InMemory) {
    let ctx = Arc::new(PoolContext {
        base: runner.context(),
        provider,
    });
    let c = runner.controller::<InMemoryMachinePool>().watches(
        runner.api::<MachinePool>(),
        runner.trigger_config(),
        |mp: MachinePool| {
            let ns = mp.namespace().unwrap_or_default();
            let r = &mp.spec.template.spec.infrastructure_ref;
            (r.kind == "InMemoryMachinePool")
                .then(|| kube::runtime::reflector::ObjectRef::new(&r.name).within(&ns))
        },
    );
    runner
        .run(c, "InMemoryMachinePool", ctx, |p, ctx| async move {
            let ns = p.namespace().unwrap_or_default();
            let api: Api<InMemoryMachinePool> = Api::namespaced(ctx.base.client.clone(), &ns);
            let (ctx, api) = (&ctx, &api);
            dispatch(
                api,
                FINALIZER,
                p,
                |p| async move { apply(&p, ctx, api).await },
                |p| async move { cleanup(&p, ctx).await },
            )
            .await
        })
        .await;
}

/// The owner MachinePool's name.
fn owner_pool(p: &InMemoryMachinePool) -> Option<String> {
    slipway_runtime::objects::core_owner_name(p, "MachinePool")
}

fn instance(p: &InMemoryMachinePool, revision: &str, i: usize) -> String {
    format!("{}-{revision}-{i}", p.name_any())
}

/// The revision of the instances a pool wants: a hash of what they boot from.
pub fn revision(p: &InMemoryMachinePool, mp: &MachinePool) -> String {
    slipway_runtime::objects::hash(&json!({
        "version": mp.spec.template.spec.version,
        "simulation": p.spec.simulation,
        "faults": p.spec.faults,
    }))
}

/// Which listed instances (names from `spec.providerIDList`) a pass removes, given the current
/// `revision`, `want` replicas and how many current instances (`0..want`) are Ready now.
/// Current instances past `want` go at once (scale down); outdated ones (another revision, or
/// a name of no revision) go oldest name first, only while the Ready instances would still
/// outnumber `want`. Returns (remove, keep) with the kept outdated names.
pub fn plan_removals(
    pool: &str,
    revision: &str,
    want: usize,
    listed: &[String],
    ready_current: usize,
) -> (Vec<String>, Vec<String>) {
    let mut remove = Vec::new();
    let mut outdated = Vec::new();
    for name in listed {
        let rest = name
            .strip_prefix(pool)
            .and_then(|r| r.strip_prefix('-'))
            .unwrap_or_default();
        match rest.rsplit_once('-') {
            Some((rev, i)) if rev == revision => {
                if !i.parse::<usize>().is_ok_and(|i| i < want) {
                    remove.push(name.clone());
                }
            }
            _ => outdated.push(name.clone()),
        }
    }
    outdated.sort();
    let over = (ready_current + outdated.len()).saturating_sub(want);
    let keep = outdated.split_off(over.min(outdated.len()));
    remove.extend(outdated);
    (remove, keep)
}

/// The scope of one instance: a Machine and an InMemoryMachine made up from the pool, so an
/// instance boots through exactly the machine path.
fn scope(
    p: &InMemoryMachinePool,
    mp: &MachinePool,
    cluster: &Arc<Cluster>,
    infra_cluster: &Arc<InMemoryCluster>,
    name: &str,
    now: jiff::Timestamp,
) -> MachineScope<InMemoryCluster, InMemoryMachine> {
    let mut m = Machine::new(
        name,
        MachineSpec {
            cluster_name: mp.spec.cluster_name.clone(),
            version: mp.spec.template.spec.version.clone(),
            ..Default::default()
        },
    );
    m.metadata.namespace = p.namespace();
    let mut im = InMemoryMachine::new(
        name,
        InMemoryMachineSpec {
            provider_id: None,
            simulation: p.spec.simulation.clone(),
            faults: p.spec.faults.clone(),
        },
    );
    im.metadata.namespace = p.namespace();
    im.metadata.creation_timestamp = p.metadata.creation_timestamp.clone();
    MachineScope {
        cluster: cluster.clone(),
        infra_cluster: infra_cluster.clone(),
        machine: Arc::new(m),
        infra: Arc::new(im),
        now,
    }
}

async fn apply(
    p: &InMemoryMachinePool,
    ctx: &PoolContext,
    api: &Api<InMemoryMachinePool>,
) -> Result<Action, Error> {
    let ns = p.namespace().unwrap_or_default();
    let client = ctx.base.client.clone();
    let Some(mp_name) = owner_pool(p) else {
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
    let old = p.status.clone().unwrap_or_default();
    let mut conds = old.conditions.clone().unwrap_or_default();
    let g = p.metadata.generation;
    let now = ctx.base.now();
    let paused =
        slipway_runtime::reconcile::paused_condition(&mut conds, &cluster, p.annotations(), g, now);
    if paused {
        let new = InMemoryMachinePoolStatus {
            conditions: Some(conds),
            ..old.clone()
        };
        write_status(api, &p.metadata, Some(&old), &new).await?;
        return Ok(Action::await_change());
    }
    let data = match &mp.spec.template.spec.bootstrap.data_secret_name {
        Some(name) => bootstrap(&client, &ns, name).await?,
        None => None,
    };
    let Some(data) = data else {
        conditions::set(
            &mut conds,
            desired(
                ct::READY,
                Status::False,
                reasons::WAITING_FOR_BOOTSTRAP_DATA,
                "waiting for the MachinePool's bootstrap data",
            ),
            g,
            now,
        );
        let new = InMemoryMachinePoolStatus {
            conditions: Some(conds),
            observed_generation: g,
            ..old.clone()
        };
        write_status(api, &p.metadata, Some(&old), &new).await?;
        return Ok(Action::await_change());
    };
    let infra_ref = cluster.spec.infrastructure_ref.clone().ok_or_else(|| {
        Error::invalid(
            format!("Cluster {ns}/{}", cluster.name_any()),
            "no infrastructureRef",
        )
    })?;
    let infra_cluster = Api::<InMemoryCluster>::namespaced(client.clone(), &ns)
        .get_opt(&infra_ref.name)
        .await?
        .ok_or_else(|| Error::Missing {
            kind: "InMemoryCluster".into(),
            namespace: ns.clone(),
            name: infra_ref.name.clone(),
        })?;
    let (cluster, infra_cluster) = (Arc::new(cluster), Arc::new(infra_cluster));
    let want = usize::try_from(mp.spec.desired()).unwrap_or(0);
    let rev = revision(p, &mp);
    let mut ids = Vec::new();
    let mut waiting = None;
    let mut failed = None;
    for i in 0..want {
        let name = instance(p, &rev, i);
        let s = scope(p, &mp, &cluster, &infra_cluster, &name, now);
        match ctx.provider.reconcile_machine(&s, &data).await {
            Ok(MachineOutcome::Ready(r)) => ids.push(r.provider_id),
            Ok(MachineOutcome::Provisioning(pr)) => {
                waiting.get_or_insert((pr.message, pr.requeue_after));
            }
            Err(e) if e.is_terminal() => {
                failed.get_or_insert(format!("instance {name}: {e}"));
            }
            Err(e) => {
                waiting.get_or_insert((e.to_string(), Duration::from_secs(5)));
            }
        }
    }
    // Scale down and roll: excess instances go at once, outdated ones as new ones are Ready
    // (Node first).
    let before = p.spec.provider_id_list.clone().unwrap_or_default();
    let listed: Vec<String> = before
        .iter()
        .filter_map(|id| id.rsplit('/').next().map(str::to_string))
        .collect();
    let ready_current = ids.len();
    let (remove, keep) = plan_removals(&p.name_any(), &rev, want, &listed, ready_current);
    for name in &remove {
        remove_instance(ctx, p, &mp, &cluster, &infra_cluster, name, now).await?;
    }
    ids.extend(
        before
            .iter()
            .filter(|id| {
                id.rsplit('/')
                    .next()
                    .is_some_and(|n| keep.iter().any(|k| k == n))
            })
            .cloned(),
    );
    if !keep.is_empty() {
        waiting.get_or_insert((
            format!(
                "rolling out: {} outdated instance(s) go as new ones are Ready",
                keep.len()
            ),
            Duration::from_secs(1),
        ));
    }
    // The version the status write is guarded by: this pass's own writes move it.
    let mut meta = p.metadata.clone();
    if before != ids {
        meta = api
            .patch(
                &p.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"providerIDList": ids}})),
            )
            .await?
            .metadata;
    }
    let ready = ready_current == want && keep.is_empty();
    conditions::set(
        &mut conds,
        match (&failed, &waiting) {
            (Some(why), _) => desired(
                ct::READY,
                Status::False,
                reasons::PROVIDER_TERMINAL_ERROR,
                why.clone(),
            ),
            (None, Some((why, _))) => {
                desired(ct::READY, Status::False, reasons::PROVISIONING, why.clone())
            }
            (None, None) => desired(ct::READY, Status::True, reasons::READY, ""),
        },
        g,
        now,
    );
    let new = InMemoryMachinePoolStatus {
        replicas: Some(ids.len() as i32),
        ready: Some(ready),
        // The pool exists once it boots from its bootstrap data, whatever its size.
        initialization: Some(ProvisionedInitialization {
            provisioned: Some(true),
        }),
        conditions: Some(conds),
        observed_generation: g,
    };
    write_status(api, &meta, Some(&old), &new).await?;
    Ok(match waiting {
        Some((_, after)) if failed.is_none() => Action::requeue(after.max(Duration::from_secs(1))),
        _ => Action::await_change(),
    })
}

async fn bootstrap(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<BootstrapData>, Error> {
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
    let format = match data.get(secrets::FORMAT_KEY).map(|b| b.0.as_slice()) {
        Some(b"ignition") => BootstrapFormat::Ignition,
        _ => BootstrapFormat::CloudConfig,
    };
    Ok(Some(BootstrapData {
        value: value.0.clone(),
        format,
    }))
}

async fn remove_instance(
    ctx: &PoolContext,
    p: &InMemoryMachinePool,
    mp: &MachinePool,
    cluster: &Arc<Cluster>,
    infra_cluster: &Arc<InMemoryCluster>,
    name: &str,
    now: jiff::Timestamp,
) -> Result<(), Error> {
    let ns = p.namespace().unwrap_or_default();
    if let Ok(Some(w)) = ctx.provider.workload(&ns, &mp.spec.cluster_name).await {
        match Api::<Node>::all(w.client.clone())
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let s = scope(p, mp, cluster, infra_cluster, name, now);
    ctx.provider
        .delete_machine(&s)
        .await
        .map_err(|e| Error::Workload(format!("removing instance {name}: {e}")))?;
    tracing::info!(pool = %p.name_any(), %name, "instance removed");
    Ok(())
}

async fn cleanup(p: &InMemoryMachinePool, ctx: &PoolContext) -> Result<Action, Error> {
    let ns = p.namespace().unwrap_or_default();
    let client = ctx.base.client.clone();
    let ids = p.spec.provider_id_list.clone().unwrap_or_default();
    if ids.is_empty() {
        return Ok(Action::await_change());
    }
    let mp = match owner_pool(p) {
        Some(n) => {
            Api::<MachinePool>::namespaced(client.clone(), &ns)
                .get_opt(&n)
                .await?
        }
        None => None,
    };
    let cluster_name = ids[0].split('/').nth(3).unwrap_or_default().to_string();
    let mp = mp.unwrap_or_else(|| {
        let mut m = MachinePool::new(&p.name_any(), Default::default());
        m.spec.cluster_name = cluster_name.clone();
        m
    });
    let cluster = Arc::new(Cluster::new(&cluster_name, Default::default()));
    let infra_cluster = Arc::new(InMemoryCluster::new(&cluster_name, Default::default()));
    for id in &ids {
        if let Some(name) = id.rsplit('/').next() {
            remove_instance(ctx, p, &mp, &cluster, &infra_cluster, name, ctx.base.now()).await?;
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scaling_down_removes_the_highest_current_indexes_at_once() {
        let listed = names(&["p-r1-0", "p-r1-1", "p-r1-2", "p-r1-3"]);
        assert_eq!(
            plan_removals("p", "r1", 2, &listed, 2),
            (names(&["p-r1-2", "p-r1-3"]), vec![])
        );
        assert_eq!(plan_removals("p", "r1", 4, &listed, 4), (vec![], vec![]));
    }

    #[test]
    fn a_new_revision_replaces_old_instances_only_as_new_ones_are_ready() {
        let old = names(&["p-r1-0", "p-r1-1", "p-r1-2"]);
        // None of the new revision is Ready: every old instance stays.
        assert_eq!(plan_removals("p", "r2", 3, &old, 0), (vec![], old.clone()));
        // Two new ones Ready: two old ones go, one stays so 3 remain Ready.
        let mut listed = old.clone();
        listed.extend(names(&["p-r2-0", "p-r2-1"]));
        assert_eq!(
            plan_removals("p", "r2", 3, &listed, 2),
            (names(&["p-r1-0", "p-r1-1"]), names(&["p-r1-2"]))
        );
        // All new ones Ready: the last old one goes.
        assert_eq!(
            plan_removals("p", "r2", 3, &names(&["p-r1-2", "p-r2-0"]), 3),
            (names(&["p-r1-2"]), vec![])
        );
        // Names of no revision (an older naming) are outdated too.
        assert_eq!(
            plan_removals("p", "r2", 1, &names(&["p-0"]), 1),
            (names(&["p-0"]), vec![])
        );
    }

    #[test]
    fn the_revision_follows_version_and_simulation() {
        let mut mp = MachinePool::new("p", Default::default());
        mp.spec.template.spec.version = Some("v1.31.0".into());
        let mut p = InMemoryMachinePool::new("p", Default::default());
        let r1 = revision(&p, &mp);
        assert_eq!(revision(&p, &mp), r1, "stable");
        mp.spec.template.spec.version = Some("v1.31.1".into());
        let r2 = revision(&p, &mp);
        assert_ne!(r1, r2);
        p.spec.faults = Some(MachineFaults::default());
        assert_ne!(revision(&p, &mp), r2);
    }
}
