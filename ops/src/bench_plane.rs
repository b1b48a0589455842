//! Where `slipway bench` runs its workload: an embedded management plane it starts in the
//! process, or an external one named by `--kubeconfig` (any Kubernetes-compatible API server,
//! e.g. `slipway up --no-controller` in another process), into which it installs slipway's
//! CRDs when they are missing. Owns reaching the plane and counting the writes it committed
//! (on the embedded plane, by resource and event type from its store).

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{Api, api::ListParams};
use slipway_apiserver::plane::{Options as PlaneOptions, Plane};

use crate::OpsError;

/// How long the bench waits for an external plane to answer, and for CRDs it installed to be
/// established.
const REACH_TIMEOUT: Duration = Duration::from_secs(20);
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// The management plane of one bench run.
pub(crate) struct Target {
    /// The embedded plane (`None`: an external one).
    pub plane: Option<Plane>,
    /// How to reach it.
    pub config: kube::Config,
    /// Its port on this machine (for counting the connections to it).
    pub port: u16,
    /// Its URL, for the progress lines.
    pub url: String,
}

impl Target {
    /// `embedded` or `external`, as the JSON names the mode.
    pub fn mode(&self) -> &'static str {
        if self.plane.is_some() {
            "embedded"
        } else {
            "external"
        }
    }

    /// Writes the plane has committed so far: the embedded store's resourceVersion, or for an
    /// external plane the resourceVersion of a list, which a Kubernetes API server takes from
    /// its storage's global revision (so it also counts other writers of that plane).
    pub async fn committed(&self, client: &kube::Client) -> Result<u64, OpsError> {
        if let Some(p) = &self.plane {
            return Ok(p.server.api.store.current_rv());
        }
        let list = Api::<Namespace>::all(client.clone())
            .list_metadata(&ListParams::default().limit(1))
            .await?;
        let rv = list.metadata.resource_version.unwrap_or_default();
        rv.parse::<u64>().map_err(|_| {
            OpsError::invalid(
                "the external plane's resourceVersion",
                format!("{rv:?} is not a number: writes cannot be counted on this plane"),
            )
        })
    }
}

/// Starts an embedded plane serving `crds`, in memory, on a free port of 127.0.0.1.
pub(crate) async fn embedded(crds: &[CustomResourceDefinition]) -> Result<Target, OpsError> {
    let crds = crds
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    let plane = Plane::start(PlaneOptions {
        data_dir: None,
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 0,
        crds,
        version_from_nodes: false,
        encryption_key_file: None,
        auth: Default::default(),
    })
    .await?;
    let kc = kube::config::Kubeconfig::from_yaml(&plane.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(Target {
        port: plane.server.addr.port(),
        url: plane.url(),
        plane: Some(plane),
        config,
    })
}

/// The plane of the kubeconfig at `path` (its current context): checks that it answers and
/// installs the `crds` it does not serve yet, as `slipway init` does (server-side apply),
/// waiting until they are established.
pub(crate) async fn external(
    path: &Path,
    crds: &[CustomResourceDefinition],
) -> Result<Target, OpsError> {
    let flag = format!("--kubeconfig {}", path.display());
    let kc = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| OpsError::invalid(&flag, format!("cannot read the kubeconfig: {e}")))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| OpsError::invalid(&flag, format!("not a usable kubeconfig: {e}")))?;
    let url = config.cluster_url.to_string();
    let port = config
        .cluster_url
        .port_u16()
        .unwrap_or(match config.cluster_url.scheme_str() {
            Some("http") => 80,
            _ => 443,
        });
    let client = kube::Client::try_from(config.clone())
        .map_err(|e| OpsError::invalid(&flag, format!("no client for {url}: {e}")))?;
    let unreachable = |why: String| {
        OpsError::invalid(
            &flag,
            format!("the management plane at {url} is unreachable: {why}"),
        )
    };
    match tokio::time::timeout(REACH_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => return Err(unreachable(format!("no answer within {REACH_TIMEOUT:?}"))),
    }
    install_missing_crds(&client, crds).await.map_err(|e| {
        OpsError::invalid(&flag, format!("installing slipway's CRDs at {url}: {e}"))
    })?;
    Ok(Target {
        plane: None,
        config,
        port,
        url,
    })
}

async fn install_missing_crds(
    client: &kube::Client,
    crds: &[CustomResourceDefinition],
) -> Result<(), OpsError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut missing = vec![];
    for crd in crds {
        let name = crd.metadata.name.as_deref().unwrap_or_default();
        if api.get_opt(name).await?.is_none() {
            missing.push(serde_json::to_value(crd)?);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    println!("installing {} CRDs the plane does not serve", missing.len());
    crate::clusterctl::apply_all(client, &missing, &mut |_| {}).await?;
    let start = Instant::now();
    for doc in &missing {
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        loop {
            let established = api.get_opt(name).await?.is_some_and(|c| {
                c.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            if established {
                break;
            }
            if start.elapsed() > ESTABLISH_TIMEOUT {
                return Err(OpsError::Timeout {
                    what: format!("CustomResourceDefinition {name} not Established"),
                    after: ESTABLISH_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Refuses a plane that already holds Clusters of an earlier run (`bench-*` in `namespace`):
/// creating them again would be a conflict taken for a success, and their figures would be
/// another run's.
pub(crate) async fn refuse_leftovers(
    client: &kube::Client,
    namespace: &str,
    flag: &str,
) -> Result<(), OpsError> {
    let clusters: Api<slipway_api::Cluster> = Api::namespaced(client.clone(), namespace);
    let left: Vec<String> = clusters
        .list_metadata(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n.starts_with("bench-"))
        .collect();
    match left.first() {
        None => Ok(()),
        Some(first) => Err(OpsError::invalid(
            flag,
            format!(
                "the plane already holds {} Clusters of an earlier bench ({namespace}/{first}, ...): delete them (kubectl delete clusters -n {namespace} --all) or use a fresh plane",
                left.len()
            ),
        )),
    }
}

/// What is left of the bench's clusters in `namespace`, by kind (kinds with none left are
/// absent): Clusters and every object made for them, down to the simulated machines and the
/// Secrets labelled with a cluster's name.
pub(crate) async fn objects_left(
    client: &kube::Client,
    namespace: &str,
) -> Result<std::collections::BTreeMap<&'static str, usize>, OpsError> {
    use kube::{
        api::DynamicObject,
        core::{ApiResource, GroupVersionKind},
    };
    let kinds: [(&str, &str, &str, &str); 9] = [
        ("cluster.x-k8s.io", "v1beta2", "Cluster", "clusters"),
        (
            "cluster.x-k8s.io",
            "v1beta2",
            "MachineDeployment",
            "machinedeployments",
        ),
        ("cluster.x-k8s.io", "v1beta2", "MachineSet", "machinesets"),
        ("cluster.x-k8s.io", "v1beta2", "Machine", "machines"),
        (
            "controlplane.cluster.x-k8s.io",
            "v1beta2",
            "KubeadmControlPlane",
            "kubeadmcontrolplanes",
        ),
        (
            "bootstrap.cluster.x-k8s.io",
            "v1beta2",
            "KubeadmConfig",
            "kubeadmconfigs",
        ),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1alpha1",
            "InMemoryCluster",
            "inmemoryclusters",
        ),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1alpha1",
            "InMemoryMachine",
            "inmemorymachines",
        ),
        ("", "v1", "Secret", "secrets"),
    ];
    let mut left = std::collections::BTreeMap::new();
    for (group, version, kind, plural) in kinds {
        let ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
        // Only the Secrets made for a cluster carry its name label.
        let lp = match kind {
            "Secret" => ListParams::default().labels("cluster.x-k8s.io/cluster-name"),
            _ => ListParams::default(),
        };
        let n = api.list_metadata(&lp).await?.items.len();
        if n > 0 {
            left.insert(kind, n);
        }
    }
    Ok(left)
}

/// Counts the management plane's writes by resource and event type as they happen (a
/// subscriber that falls behind reports how many it missed instead of guessing).
pub(crate) struct WriteTally {
    counts: Arc<std::sync::Mutex<BTreeMap<String, u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WriteTally {
    pub(crate) fn start(store: &Arc<slipway_apiserver::store::Store>) -> Self {
        let counts: Arc<std::sync::Mutex<BTreeMap<String, u64>>> = Arc::default();
        // The newest resourceVersion is never older than the history.
        let (_, mut rx) = store
            .watch_from(store.current_rv())
            .expect("the current resourceVersion is in the history");
        let c = counts.clone();
        let task = tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let key = match rx.recv().await {
                    Ok(e) => format!("{} {}", e.key.gr, e.kind.as_str()),
                    Err(RecvError::Lagged(n)) => {
                        *c.lock()
                            .expect("tally")
                            .entry("(missed)".into())
                            .or_default() += n;
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                *c.lock().expect("tally").entry(key).or_default() += 1;
            }
        });
        Self { counts, task }
    }

    pub(crate) fn summary(&self) -> String {
        breakdown(self.counts())
    }

    /// Per `resource EVENT`, so far.
    pub(crate) fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().expect("tally").clone()
    }
}

impl Drop for WriteTally {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `resource EVENT=n` pairs, most first.
pub(crate) fn breakdown(counts: BTreeMap<String, u64>) -> String {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The writes after `since`, from the store's history, by resource, event type and name.
pub(crate) fn idle_breakdown(store: &slipway_apiserver::store::Store, since: u64) -> String {
    let Ok((events, _)) = store.watch_from(since) else {
        return "(older than the history)".into();
    };
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for e in events {
        *counts
            .entry(format!("{} {} {}", e.key.gr, e.kind.as_str(), e.key.name))
            .or_default() += 1;
    }
    breakdown(counts)
}
