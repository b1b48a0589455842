//! `slipway bench`: how many clusters one slipway runs. Starts an embedded management plane
//! (or uses the external one of `--kubeconfig`, see [`crate::bench_plane`]), the controllers
//! and the in-memory provider (zero simulated delays) in this process, creates N clusters of
//! one shape, and measures: time until all are Available, per-cluster time to Available
//! (p50/p99), CPU seconds, peak RSS, management API writes and requests per cluster (requests
//! by resource and verb, counted on the clients: [`crate::requests`]), then idle CPU, writes
//! and requests over a quiet window. Also a scale mode: one cluster from 0 to W workers.
//! The last line printed is one JSON object with the figures.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use kube::{
    Api, ResourceExt,
    api::{DynamicObject, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use slipway_api::{Cluster, MachineDeployment, common::ContractVersionedObjectReference};
use slipway_controller::manager;
use slipway_generate::{self as generate, Infrastructure, Request, vars::Sources};
use slipway_providers::Plugins;
use slipway_runtime::refs::Resolver;

use crate::{
    OpsError,
    bench_plane::{self, WriteTally, breakdown, idle_breakdown},
    requests,
};

/// Tags of the bench's clients: the controllers; the user's creates and deletes of the
/// clusters (the workload, counted with the controllers); the bench watching progress (its own
/// polling, reported apart since it depends on time, not on clusters).
const CONTROLLERS: &str = "controllers";
const USER: &str = "user";
const OBSERVER: &str = "observer";
const WORKLOAD: &[&str] = &[CONTROLLERS, USER];

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Clusters to create.
    pub clusters: u32,
    /// Control-plane machines per cluster.
    pub control_plane: u32,
    /// Workers per cluster.
    pub workers: u32,
    /// Scale mode: one cluster, workers 0 -> this.
    pub scale_workers: Option<u32>,
    /// Quiet window measured once everything is Available.
    pub idle_seconds: u64,
    /// Reconciles in parallel per kind.
    pub concurrency: u16,
    /// Give up after this long.
    pub timeout: Duration,
    /// The providers to run (the bench's clusters use `infrastructure`).
    pub plugins: Plugins,
    /// The `generate cluster` entry of the benchmarked provider (in-memory).
    pub infrastructure: Infrastructure,
    /// Topology mode: one ClusterClass (in-memory kinds), each cluster one topology Cluster.
    pub topology: bool,
    /// After the idle window, delete every Cluster and time until all are gone.
    pub delete: bool,
    /// Run against the management plane of this kubeconfig instead of an embedded one.
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// The ClusterClass (and its templates) of the topology mode, in-memory kinds, no delays.
fn topology_class() -> Vec<Value> {
    let infra = "infrastructure.cluster.x-k8s.io/v1alpha1";
    vec![
        json!({"apiVersion": infra, "kind": "InMemoryClusterTemplate",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {"template": {"spec": {}}}}),
        json!({"apiVersion": infra, "kind": "InMemoryMachineTemplate",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {"template": {"spec": {}}}}),
        json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta2", "kind": "KubeadmControlPlaneTemplate",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {"template": {"spec": {"kubeadmConfigSpec": {}}}}}),
        json!({"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfigTemplate",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {"template": {"spec": {"joinConfiguration": {}}}}}),
        json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "ClusterClass",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {
                "infrastructure": {"templateRef": {"apiVersion": infra, "kind": "InMemoryClusterTemplate", "name": "bench"}},
                "controlPlane": {
                    "templateRef": {"apiVersion": "controlplane.cluster.x-k8s.io/v1beta2", "kind": "KubeadmControlPlaneTemplate", "name": "bench"},
                    "machineInfrastructure": {"templateRef": {"apiVersion": infra, "kind": "InMemoryMachineTemplate", "name": "bench"}}},
                "workers": {"machineDeployments": [{"class": "worker",
                    "bootstrap": {"templateRef": {"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfigTemplate", "name": "bench"}},
                    "infrastructure": {"templateRef": {"apiVersion": infra, "kind": "InMemoryMachineTemplate", "name": "bench"}}}]}}}),
    ]
}

fn topology_cluster(name: &str, cp: u32, workers: u32) -> Value {
    json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "clusterNetwork": {"pods": {"cidrBlocks": ["192.168.0.0/16"]}, "services": {"cidrBlocks": ["10.128.0.0/12"]}},
            "topology": {"classRef": {"name": "bench"}, "version": "v1.31.0",
            "controlPlane": {"replicas": cp},
            "workers": {"machineDeployments": [{"class": "worker", "name": "md-0", "replicas": workers}]}}}})
}

/// CPU seconds used by this process so far (user + system), from /proc.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size in MiB (VmHWM).
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The p-th percentile (0..=100) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn manifests(
    infrastructure: &Infrastructure,
    name: &str,
    cp: u32,
    workers: u32,
) -> Result<Vec<Value>, OpsError> {
    let flags = BTreeMap::from([
        ("CLUSTER_NAME".to_string(), name.to_string()),
        ("CONTROL_PLANE_MACHINE_COUNT".to_string(), cp.to_string()),
        ("WORKER_MACHINE_COUNT".to_string(), workers.to_string()),
    ]);
    let yaml = generate::generate(&Request {
        infrastructure: infrastructure.clone(),
        flavor: None,
        from: None,
        labels: vec![],
        sources: Sources {
            flags,
            ..Default::default()
        },
        config_hint: String::new(),
    })?;
    generate::objects(&yaml).map_err(|reason| OpsError::invalid("generated manifests", reason))
}

async fn create(resolver: &Resolver, obj: &Value) -> Result<(), OpsError> {
    let (group, _) = obj["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .split_once('/')
        .unwrap_or_default();
    let r = ContractVersionedObjectReference {
        api_group: group.into(),
        kind: obj["kind"].as_str().unwrap_or_default().into(),
        name: String::new(),
    };
    let (api, _) = resolver
        .api(
            obj["metadata"]["namespace"].as_str().unwrap_or("default"),
            &r,
        )
        .await?;
    let d: DynamicObject = serde_json::from_value(obj.clone())?;
    match api.create(&PostParams::default(), &d).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn available(c: &Cluster) -> bool {
    c.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .is_some_and(|c| slipway_runtime::conditions::is_true(c, "Available"))
}

/// How many objects have the condition `type_` True.
async fn count_true<K>(
    api: &Api<K>,
    type_: &str,
    conditions: impl Fn(&K) -> Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]>,
) -> Result<usize, OpsError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|o| conditions(o).is_some_and(|c| slipway_runtime::conditions::is_true(c, type_)))
        .count())
}

/// Waits until `want` Machines are Ready.
async fn wait_machines_ready(
    client: &kube::Client,
    want: u32,
    start: Instant,
    timeout: Duration,
) -> Result<(), OpsError> {
    let machines: Api<slipway_api::Machine> = Api::namespaced(client.clone(), "default");
    loop {
        let ready = count_true(&machines, "Ready", |m| {
            m.status.as_ref().and_then(|s| s.conditions.as_deref())
        })
        .await?;
        if ready >= want as usize {
            return Ok(());
        }
        if start.elapsed() > timeout {
            report_stuck(client).await;
            return Err(OpsError::Timeout {
                what: format!("only {ready} of {want} machines Ready"),
                after: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints why machines are not Ready (for a benchmark that timed out).
async fn report_stuck(client: &kube::Client) {
    let machines: Api<slipway_api::Machine> = Api::namespaced(client.clone(), "default");
    let Ok(list) = machines.list(&ListParams::default()).await else {
        return;
    };
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for m in list.items {
        let conds = m.status.and_then(|s| s.conditions).unwrap_or_default();
        if let Some(c) = conds
            .iter()
            .find(|c| c.type_ == "Ready" && c.status != "True")
        {
            *reasons
                .entry(format!("{}: {}", c.reason, c.message))
                .or_default() += 1;
        }
    }
    for (r, n) in reasons {
        println!("  {n} machines not Ready: {r}");
    }
}

/// `verb=n` of the workload's requests, most first.
fn requests_summary(s: &requests::Snapshot) -> String {
    let by_verb = requests::by_verb(s, WORKLOAD);
    breakdown(
        by_verb
            .into_iter()
            .map(|(v, n)| (v.to_string(), n))
            .collect(),
    )
}

/// Runs the benchmark, printing progress and figures to stdout.
pub async fn run(cfg: Config) -> Result<Value, OpsError> {
    let (soft, hard) = crate::fds::raise_nofile_limit()
        .map_err(|e| OpsError::invalid("the open-file limit (RLIMIT_NOFILE)", e.to_string()))?;
    let per_cluster_machines =
        u64::from(cfg.control_plane + cfg.scale_workers.unwrap_or(cfg.workers));
    let bench_clusters = if cfg.scale_workers.is_some() {
        1
    } else {
        cfg.clusters
    };
    crate::fds::check_fits(u64::from(bench_clusters), per_cluster_machines, soft, hard)?;
    let mut crds = slipway_api::crds::core();
    crds.extend(cfg.plugins.crds());
    let target = match &cfg.kubeconfig {
        None => bench_plane::embedded(&crds).await?,
        Some(path) => bench_plane::external(path, &crds).await?,
    };
    match &target.plane {
        Some(plane) => println!(
            "management plane at {} (inspect with KUBECONFIG={})",
            target.url,
            plane.kubeconfig_path.display()
        ),
        None => println!("external management plane at {}", target.url),
    }
    let store = target.plane.as_ref().map(|p| p.server.api.store.clone());
    let tally = store.as_ref().map(WriteTally::start);
    let requests = requests::Tally::default();
    let controller_client =
        requests::counted_client(target.config.clone(), &requests, CONTROLLERS)?;
    let user = requests::counted_client(target.config.clone(), &requests, USER)?;
    let observer = requests::counted_client(target.config.clone(), &requests, OBSERVER)?;
    if let Some(path) = &cfg.kubeconfig {
        let flag = format!("--kubeconfig {}", path.display());
        bench_plane::refuse_leftovers(&observer, "default", &flag).await?;
    }
    let data_dir = std::env::temp_dir().join(format!("slipway-bench-{}", std::process::id()));
    let opts = manager::Options {
        data_dir: data_dir.clone(),
        concurrency: cfg.concurrency,
        ..Default::default()
    };
    let controllers = tokio::spawn(manager::run(controller_client, opts, cfg.plugins.clone()));
    let resolver = Arc::new(Resolver::new(user.clone()));
    let (n, workers) = match cfg.scale_workers {
        Some(_) => (1, 0),
        None => (cfg.clusters, cfg.workers),
    };
    let machines = n * (cfg.control_plane + cfg.scale_workers.unwrap_or(workers));
    println!(
        "creating {n} clusters of {} control-plane + {workers} worker machines ({machines} machines)",
        cfg.control_plane
    );
    // Descriptors of the plane and the controllers' watches are not per cluster.
    let fds0 = crate::fds::open_fds();
    let fds_plane0 = crate::fds::sockets_on_port(target.port);
    let writes0 = target.committed(&observer).await?;
    let requests0 = requests.snapshot();
    let (cpu0, start) = (cpu_seconds(), Instant::now());
    let mut created_at: BTreeMap<String, Instant> = BTreeMap::new();
    let names: Vec<String> = (0..n).map(|i| format!("bench-{i:05}")).collect();
    let mut docs = vec![];
    if cfg.topology {
        for o in topology_class() {
            create(&resolver, &o).await?;
        }
    }
    for name in &names {
        let objs = if cfg.topology {
            vec![topology_cluster(name, cfg.control_plane, workers)]
        } else if cfg.scale_workers.is_some() {
            // The flavor only emits a MachineDeployment for workers; start it at zero.
            let mut objs = manifests(&cfg.infrastructure, name, cfg.control_plane, 1)?;
            for o in objs.iter_mut().filter(|o| o["kind"] == "MachineDeployment") {
                o["spec"]["replicas"] = json!(0);
            }
            objs
        } else {
            manifests(&cfg.infrastructure, name, cfg.control_plane, workers)?
        };
        docs.push((name.clone(), objs));
    }
    let mut creating = futures::stream::iter(docs.into_iter().map(|(name, objs)| {
        let resolver = resolver.clone();
        async move {
            for o in &objs {
                create(&resolver, o).await?;
            }
            Ok::<_, OpsError>((name, Instant::now()))
        }
    }))
    .buffer_unordered(16);
    while let Some(r) = creating.next().await {
        let (name, t) = r?;
        created_at.insert(name, t);
    }
    let seconds_created = start.elapsed().as_secs_f64();
    println!("created in {seconds_created:.1}s");
    let clusters: Api<Cluster> = Api::namespaced(observer.clone(), "default");
    let mut done: BTreeMap<String, f64> = BTreeMap::new();
    let (mut infra_at, mut initialized_at) = (None, None);
    while done.len() < names.len() {
        if start.elapsed() > cfg.timeout {
            controllers.abort();
            report_stuck(&observer).await;
            return Err(OpsError::Timeout {
                what: format!("only {} of {} clusters Available", done.len(), names.len()),
                after: cfg.timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = Instant::now();
        let list = clusters.list(&ListParams::default()).await?.items;
        let flag = |c: &Cluster, f: fn(&slipway_api::cluster::ClusterInitializationStatus) -> Option<bool>| {
            c.status
                .as_ref()
                .and_then(|s| s.initialization.as_ref())
                .and_then(f)
                .unwrap_or(false)
        };
        if infra_at.is_none()
            && list
                .iter()
                .filter(|c| flag(c, |i| i.infrastructure_provisioned))
                .count()
                >= names.len()
        {
            infra_at = Some(start.elapsed().as_secs_f64());
        }
        if initialized_at.is_none()
            && list
                .iter()
                .filter(|c| flag(c, |i| i.control_plane_initialized))
                .count()
                >= names.len()
        {
            initialized_at = Some(start.elapsed().as_secs_f64());
        }
        for c in list {
            let name = c.name_any();
            if available(&c) && !done.contains_key(&name) {
                let since = created_at.get(&name).copied().unwrap_or(start);
                done.insert(name, now.saturating_duration_since(since).as_secs_f64());
            }
        }
    }
    let seconds_all = start.elapsed().as_secs_f64();
    // Registration (ClusterProfile, first health probe) follows availability; the idle
    // window starts once every cluster is registered healthy.
    let profiles: Api<slipway_api::registry::ClusterProfile> =
        Api::namespaced(observer.clone(), "default");
    loop {
        let healthy = count_true(&profiles, "ControlPlaneHealthy", |p| {
            p.status.as_ref().and_then(|s| s.conditions.as_deref())
        })
        .await?;
        if healthy >= names.len() {
            break;
        }
        if start.elapsed() > cfg.timeout {
            return Err(OpsError::Timeout {
                what: format!(
                    "only {healthy} of {} clusters registered healthy",
                    names.len()
                ),
                after: cfg.timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let seconds_registered = start.elapsed().as_secs_f64();
    println!(
        "all {n} clusters registered (ClusterProfile ControlPlaneHealthy) at {seconds_registered:.1}s"
    );
    // The idle window needs everything at rest: Cluster Available does not wait for workers.
    let ready_machines = n * (cfg.control_plane + workers);
    wait_machines_ready(&observer, ready_machines, start, cfg.timeout).await?;
    let seconds_machines = start.elapsed().as_secs_f64();
    println!("all {ready_machines} machines Ready at {seconds_machines:.1}s");
    let mut scale_seconds = None;
    if let Some(w) = cfg.scale_workers {
        let mds: Api<MachineDeployment> = Api::namespaced(observer.clone(), "default");
        let name = format!("{}-md-0", names[0]);
        let scale_start = Instant::now();
        Api::<MachineDeployment>::namespaced(user.clone(), "default")
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"replicas": w}})),
            )
            .await?;
        loop {
            if scale_start.elapsed() > cfg.timeout {
                return Err(OpsError::Timeout {
                    what: format!("{name} did not reach {w} ready workers"),
                    after: cfg.timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            let md = mds.get(&name).await?;
            if md.status.and_then(|s| s.ready_replicas).unwrap_or(0) >= w as i32 {
                break;
            }
        }
        scale_seconds = Some(scale_start.elapsed().as_secs_f64());
        println!(
            "scaled {name} from 0 to {w} ready workers in {:.1}s",
            scale_seconds.unwrap_or(0.0)
        );
    }
    let busy_cpu = cpu_seconds() - cpu0;
    let busy_writes = target.committed(&observer).await? - writes0;
    let busy_requests = requests::since(&requests0, &requests.snapshot());
    let busy_counts = tally.as_ref().map(WriteTally::counts);
    let rss = peak_rss_mib();
    let mut per: Vec<f64> = done.values().copied().collect();
    per.sort_by(f64::total_cmp);
    println!(
        "all {n} clusters Available in {seconds_all:.1}s; per cluster p50 {:.2}s p99 {:.2}s; CPU {busy_cpu:.1}s; peak RSS {:.0} MiB; {:.1} API writes per cluster",
        percentile(&per, 50.0),
        percentile(&per, 99.0),
        peak_rss_mib(),
        busy_writes as f64 / f64::from(n)
    );
    if let Some(tally) = &tally {
        println!("writes by resource while busy: {}", tally.summary());
    }
    let busy_workload_requests = requests::total(&busy_requests, WORKLOAD);
    println!(
        "{:.1} API requests per cluster by the controllers and the user ({}); the bench's own polling: {}",
        busy_workload_requests as f64 / f64::from(n),
        requests_summary(&busy_requests),
        requests::total(&busy_requests, &[OBSERVER])
    );
    let writes1 = target.committed(&observer).await?;
    let idle_requests0 = requests.snapshot();
    let (cpu1, idle_start) = (cpu_seconds(), Instant::now());
    // At rest: the fewest descriptors seen while idle (between health-probe rounds, whose
    // connections close a few seconds after them); the most is a probe round's.
    let (fds_at_rest, fds_idle_peak) =
        crate::fds::fewest_and_most_while_sleeping(Duration::from_secs(cfg.idle_seconds)).await;
    let plane_port = target.port;
    // Connections to the management plane are per process (watches, pooled requests).
    let fds_plane = crate::fds::sockets_on_port(plane_port);
    let fds_plane0 = fds_plane0.min(fds_plane);
    let fds_per_workload = (fds_at_rest.saturating_sub(fds0) as f64
        - fds_plane.saturating_sub(fds_plane0) as f64)
        / f64::from(n);
    let fds_per_cluster = fds_at_rest.saturating_sub(fds0) as f64 / f64::from(n);
    println!(
        "{fds_at_rest} open file descriptors at rest, {fds_idle_peak} at most while idle ({fds_per_cluster:.1} per cluster; {fds_plane} of them both ends of connections to the management plane, {fds_per_workload:.1} per cluster without those; {fds0} before creating; soft limit {soft}); {:.3} CPU-seconds and {:.2} MiB peak RSS per cluster",
        busy_cpu / f64::from(n),
        rss / f64::from(n)
    );
    let idle_elapsed = idle_start.elapsed().as_secs_f64().max(0.001);
    let idle_cpu_percent = (cpu_seconds() - cpu1) / idle_elapsed * 100.0;
    let idle_requests = requests::since(&idle_requests0, &requests.snapshot());
    let idle_writes = target.committed(&observer).await? - writes1;
    if let (true, Some(store)) = (idle_writes > 0, &store) {
        println!(
            "idle writes by resource: {}",
            idle_breakdown(store, writes1)
        );
    }
    let idle_workload_requests = requests::total(&idle_requests, WORKLOAD);
    if idle_workload_requests > 0 {
        println!("idle requests: {}", requests_summary(&idle_requests));
    }
    println!(
        "idle for {:.0}s: {idle_cpu_percent:.2}% of one core, {idle_writes} API writes, {idle_workload_requests} API requests",
        idle_elapsed
    );
    let mut seconds_deleted = None;
    let mut fds_after_delete = None;
    let mut delete_requests = None;
    let mut fds_left_by_deleted = None;
    if cfg.delete {
        let delete_requests0 = requests.snapshot();
        let t = Instant::now();
        let user_clusters: Api<Cluster> = Api::namespaced(user.clone(), "default");
        for name in &names {
            match user_clusters.delete(name, &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        loop {
            let left = bench_plane::objects_left(&observer, "default").await?;
            if left.is_empty() {
                break;
            }
            if t.elapsed() > cfg.timeout {
                return Err(OpsError::Timeout {
                    what: format!("still there after deleting the Clusters: {left:?}"),
                    after: cfg.timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        seconds_deleted = Some((t.elapsed().as_secs_f64() * 100.0).round() / 100.0);
        delete_requests = Some(requests::total(
            &requests::since(&delete_requests0, &requests.snapshot()),
            WORKLOAD,
        ));
        // Idle connections to the deleted servers close a few seconds after their last use.
        fds_after_delete = Some(
            crate::fds::fewest_and_most_while_sleeping(Duration::from_secs(4))
                .await
                .0,
        );
        // Beside connections to the management plane, which the deletes may have added to.
        let plane_after = crate::fds::sockets_on_port(target.port);
        fds_left_by_deleted = fds_after_delete
            .map(|f| f.saturating_sub(plane_after) as i64 - fds0.saturating_sub(fds_plane0) as i64);
        println!(
            "deleted all {n} clusters (Clusters, machines, control planes, configs, infrastructure, labelled Secrets gone) in {:.1}s; {} open file descriptors left",
            seconds_deleted.unwrap_or(0.0),
            fds_after_delete.unwrap_or(0)
        );
    }
    controllers.abort();
    let _ = std::fs::remove_dir_all(&data_dir);
    let round = |x: f64| (x * 100.0).round() / 100.0;
    Ok(json!({
        "plane": target.mode(),
        "requests_per_cluster": (busy_workload_requests as f64 / f64::from(n) * 10.0).round() / 10.0,
        "requests_by_resource_verb": requests::by_resource_verb(&busy_requests, WORKLOAD, false),
        "requests_by_verb": requests::by_verb(&busy_requests, WORKLOAD),
        "failed_requests_by_resource_verb": requests::by_resource_verb(&busy_requests, WORKLOAD, true),
        "requests_by_client": requests::by_client(&busy_requests),
        "idle_requests": idle_workload_requests,
        "idle_requests_by_resource_verb": requests::by_resource_verb(&idle_requests, WORKLOAD, false),
        "requests_while_deleting": delete_requests,
        "seconds_created": round(seconds_created),
        "seconds_to_all_infrastructure_ready": infra_at.map(round),
        "seconds_to_all_control_planes_initialized": initialized_at.map(round),
        "seconds_to_all_deleted": seconds_deleted,
        "cpu_seconds_per_cluster": (busy_cpu / f64::from(n) * 1000.0).round() / 1000.0,
        "peak_rss_mib_per_cluster": round(rss / f64::from(n)),
        "open_fds_at_rest": fds_at_rest,
        "open_fds_before_create": fds0,
        "open_fds_idle_peak": fds_idle_peak,
        "fds_left_by_deleted_clusters": fds_left_by_deleted,
        "fds_per_cluster": (fds_per_cluster * 10.0).round() / 10.0,
        "fds_plane_connections": fds_plane,
        "fds_per_cluster_without_plane_connections": (fds_per_workload * 10.0).round() / 10.0,
        "fds_after_delete": fds_after_delete,
        "nofile_soft_limit": soft,
        "writes_by_resource": busy_counts,
        "clusters": n,
        "machines": machines,
        "seconds_to_all_available": (seconds_all * 100.0).round() / 100.0,
        "seconds_to_all_registered": (seconds_registered * 100.0).round() / 100.0,
        "seconds_to_all_machines_ready": (seconds_machines * 100.0).round() / 100.0,
        "p50_seconds_to_available": percentile(&per, 50.0),
        "p99_seconds_to_available": percentile(&per, 99.0),
        "cpu_seconds": (busy_cpu * 100.0).round() / 100.0,
        "peak_rss_mib": peak_rss_mib().round(),
        "writes_per_cluster": (busy_writes as f64 / f64::from(n) * 10.0).round() / 10.0,
        "idle_seconds": cfg.idle_seconds,
        "idle_cpu_percent": (idle_cpu_percent * 100.0).round() / 100.0,
        "idle_writes": idle_writes,
        "scale_workers": cfg.scale_workers,
        "scale_seconds": scale_seconds,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_process_figures() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 51.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert!(peak_rss_mib() > 1.0, "this process uses memory");
        let before = cpu_seconds();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(cpu_seconds() > before, "CPU time advances");
    }
}
