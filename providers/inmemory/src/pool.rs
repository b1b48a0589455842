//! InMemoryMachinePool: the in-memory infrastructure of a MachinePool. Its instances are
//! simulated machines named `<pool>-<index>` that boot from the pool's one bootstrap Secret
//! exactly as InMemoryMachines do ([`crate::InMemory`]'s machine path), so they join the
//! workload cluster with the pool's token and register Nodes with providerID
//! `in-memory://<namespace>/<cluster>/<pool>-<index>`.
//!
//! The reconciler follows the MachinePool contract: it reads `spec.replicas`, the version and
//! `spec.template.spec.bootstrap.dataSecretName` from the owner MachinePool, keeps indexes
//! `0..replicas` booted (scaling down removes the highest first), and writes
//! `spec.providerIDList`, `status.replicas`, `status.ready` and
//! `status.initialization.provisioned`.

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

fn instance(p: &InMemoryMachinePool, i: usize) -> String {
    format!("{}-{i}", p.name_any())
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
        write_status(api, &p.name_any(), Some(&old), &new).await?;
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
        write_status(api, &p.name_any(), Some(&old), &new).await?;
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
    let mut ids = Vec::new();
    let mut waiting = None;
    let mut failed = None;
    for i in 0..want {
        let s = scope(p, &mp, &cluster, &infra_cluster, &instance(p, i), now);
        match ctx.provider.reconcile_machine(&s, &data).await {
            Ok(MachineOutcome::Ready(r)) => ids.push(r.provider_id),
            Ok(MachineOutcome::Provisioning(pr)) => {
                waiting.get_or_insert((pr.message, pr.requeue_after));
            }
            Err(e) if e.is_terminal() => {
                failed.get_or_insert(format!("instance {}: {e}", instance(p, i)));
            }
            Err(e) => {
                waiting.get_or_insert((e.to_string(), Duration::from_secs(5)));
            }
        }
    }
    // Scale down: instances past the desired count go, Node first.
    let before = p.spec.provider_id_list.clone().unwrap_or_default();
    for id in &before {
        let Some(name) = id.rsplit('/').next() else {
            continue;
        };
        let index = name
            .strip_prefix(&format!("{}-", p.name_any()))
            .and_then(|n| n.parse::<usize>().ok());
        if index.is_some_and(|i| i >= want) {
            remove_instance(ctx, p, &mp, &cluster, &infra_cluster, name, now).await?;
        }
    }
    if before != ids {
        api.patch(
            &p.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"providerIDList": ids}})),
        )
        .await?;
    }
    let ready = ids.len() == want;
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
    write_status(api, &p.name_any(), Some(&old), &new).await?;
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
