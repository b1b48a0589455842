//! Cluster API's own development provider kinds, `infrastructure.cluster.x-k8s.io/v1beta2`
//! DevCluster, DevClusterTemplate, DevMachine and DevMachineTemplate, as upstream's
//! `test/infrastructure/docker/api/v1beta2` defines them, backed by the in-memory provider:
//! `spec.backend.inMemory` runs on it (the `provisioning.startupDuration`s of vm, node,
//! apiServer and etcd add up to the simulated boot, the largest `startupJitter` is the jitter).
//! `spec.backend.docker` is refused at admission: slipway runs no Docker backend.

use std::sync::Arc;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use slipway_api::common::{
    ApiEndpoint, Condition, FailureDomain, MachineAddress, ObjectMeta, ProvisionedInitialization,
    TemplateStatus,
};
use slipway_providers::{
    BootstrapData, ClusterOutcome, ClusterScope, Deletion, InfrastructureProvider, MachineOutcome,
    MachineScope, ProviderError,
};

use crate::{
    InMemory, InMemoryCluster, InMemoryMachine,
    api::{InMemoryClusterSpec, InMemoryMachineSpec, MachineSimulation},
};

const DOCKER_REFUSED: &str =
    "backend.docker is not supported by slipway (it runs no Docker backend); use backend.inMemory";

/// Desired state of a DevCluster.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "DevCluster",
    plural = "devclusters",
    namespaced,
    status = "DevClusterStatus",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DevClusterSpec {
    /// Endpoint of the workload API server; 127.0.0.1 and a free port when empty.
    pub control_plane_endpoint: Option<ApiEndpoint>,
    /// The backend.
    pub backend: DevClusterBackend,
}

/// `spec.backend` of a DevCluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.docker)").message("backend.docker is not supported by slipway (it runs no Docker backend); use backend.inMemory"))]
#[x_kube(validation = Rule::new("has(self.inMemory)").message("backend.inMemory is required"))]
pub struct DevClusterBackend {
    /// Docker backend (refused).
    #[serde(default)]
    #[schemars(schema_with = "open_object")]
    pub docker: Option<serde_json::Value>,
    /// In-memory backend (no settings).
    #[serde(default)]
    #[schemars(schema_with = "open_object")]
    pub in_memory: Option<serde_json::Value>,
}

fn open_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Observed state of a DevCluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevClusterStatus {
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Contract flag `provisioned`.
    pub initialization: Option<ProvisionedInitialization>,
    /// Failure domains.
    pub failure_domains: Option<Vec<FailureDomain>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// Desired state of a DevClusterTemplate.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "DevClusterTemplate",
    plural = "devclustertemplates",
    namespaced,
    status = "TemplateStatus",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct DevClusterTemplateSpec {
    /// The template.
    pub template: DevClusterTemplateResource,
}

/// What a DevClusterTemplate stamps out.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct DevClusterTemplateResource {
    /// Labels and annotations.
    pub metadata: Option<ObjectMeta>,
    /// Spec of the DevCluster.
    pub spec: DevClusterSpec,
}

/// Desired state of a DevMachine.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "DevMachine",
    plural = "devmachines",
    namespaced,
    status = "DevMachineStatus",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DevMachineSpec {
    /// `in-memory://<namespace>/<cluster>/<machine>`; set by the provider.
    #[serde(rename = "providerID")]
    pub provider_id: Option<String>,
    /// The backend.
    pub backend: DevMachineBackend,
}

/// `spec.backend` of a DevMachine.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.docker)").message("backend.docker is not supported by slipway (it runs no Docker backend); use backend.inMemory"))]
#[x_kube(validation = Rule::new("has(self.inMemory)").message("backend.inMemory is required"))]
pub struct DevMachineBackend {
    /// Docker backend (refused).
    #[serde(default)]
    #[schemars(schema_with = "open_object")]
    pub docker: Option<serde_json::Value>,
    /// In-memory backend.
    pub in_memory: Option<InMemoryMachineBackend>,
}

/// `backend.inMemory` of a DevMachine: simulated startup of each part.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct InMemoryMachineBackend {
    /// The VM.
    pub vm: Option<Provisioned>,
    /// The Node.
    pub node: Option<Provisioned>,
    /// The API server (control-plane machines).
    pub api_server: Option<Provisioned>,
    /// etcd (control-plane machines).
    pub etcd: Option<Provisioned>,
}

/// `{provisioning}` of one simulated part.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct Provisioned {
    /// Startup settings.
    pub provisioning: Option<Provisioning>,
}

/// Startup duration and jitter.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Provisioning {
    /// A Go duration, e.g. `10s`, `1m30s`, `500ms`.
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub startup_duration: String,
    /// Jitter as a fraction, e.g. `0.2`.
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub startup_jitter: Option<String>,
}

/// Observed state of a DevMachine.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevMachineStatus {
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Contract flag `provisioned`.
    pub initialization: Option<ProvisionedInitialization>,
    /// Addresses.
    pub addresses: Option<Vec<MachineAddress>>,
    /// Failure domain.
    pub failure_domain: Option<String>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// Desired state of a DevMachineTemplate.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "DevMachineTemplate",
    plural = "devmachinetemplates",
    namespaced,
    status = "TemplateStatus",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct DevMachineTemplateSpec {
    /// The template.
    pub template: DevMachineTemplateResource,
}

/// What a DevMachineTemplate stamps out.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct DevMachineTemplateResource {
    /// Labels and annotations.
    pub metadata: Option<ObjectMeta>,
    /// Spec of created DevMachines.
    pub spec: DevMachineSpec,
}

/// Seconds of a Go duration (`1h2m3.5s`, `500ms`); Err names it.
pub fn go_duration_seconds(s: &str) -> Result<f64, String> {
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(format!("duration {s:?} is empty"));
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration {s:?} lacks a unit"))?;
        let n: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("duration {s:?} is not a Go duration"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            u => return Err(format!("duration {s:?} has unknown unit {u:?}")),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Ok(total)
}

/// The in-memory machine a DevMachine's `backend.inMemory` amounts to.
pub fn machine_spec(spec: &DevMachineSpec) -> Result<InMemoryMachineSpec, String> {
    if spec.backend.docker.is_some() {
        return Err(DOCKER_REFUSED.into());
    }
    let b = spec.backend.in_memory.clone().unwrap_or_default();
    let secs = |p: &Option<Provisioned>, field: &str| -> Result<(f64, f64), String> {
        match p.as_ref().and_then(|p| p.provisioning.as_ref()) {
            None => Ok((0.0, 0.0)),
            Some(p) => {
                let d = go_duration_seconds(&p.startup_duration).map_err(|e| {
                    format!("backend.inMemory.{field}.provisioning.startupDuration: {e}")
                })?;
                let j = match &p.startup_jitter {
                    Some(j) => j.parse::<f64>().map_err(|_| {
                        format!("backend.inMemory.{field}.provisioning.startupJitter {j:?} is not a number")
                    })?,
                    None => 0.0,
                };
                Ok((d, j))
            }
        }
    };
    let (vm, j1) = secs(&b.vm, "vm")?;
    let (node, j2) = secs(&b.node, "node")?;
    let (api, j3) = secs(&b.api_server, "apiServer")?;
    let (etcd, j4) = secs(&b.etcd, "etcd")?;
    let jitter = [j1, j2, j3, j4].into_iter().fold(0.0, f64::max);
    Ok(InMemoryMachineSpec {
        provider_id: spec.provider_id.clone(),
        simulation: Some(MachineSimulation {
            vm_startup_seconds: Some(vm),
            node_startup_seconds: Some(node),
            // etcd starts beside the API server on the init machine: both delay it.
            api_server_startup_seconds: Some(api.max(etcd)),
            jitter_percent: Some((jitter * 100.0).round().clamp(0.0, 100.0) as i32),
        }),
        faults: None,
    })
}

/// The in-memory provider serving the Dev kinds.
pub struct Dev(Arc<InMemory>);

impl Dev {
    /// Dev kinds on an in-memory provider.
    pub fn new(inner: Arc<InMemory>) -> Self {
        Self(inner)
    }
}

fn cluster_of(d: &DevCluster) -> Result<InMemoryCluster, ProviderError> {
    if d.spec.backend.docker.is_some() {
        return Err(ProviderError::terminal(DOCKER_REFUSED));
    }
    Ok(InMemoryCluster {
        metadata: d.metadata.clone(),
        spec: InMemoryClusterSpec {
            control_plane_endpoint: d.spec.control_plane_endpoint.clone(),
            simulation: None,
        },
        status: None,
    })
}

fn cluster_scope(
    s: &ClusterScope<DevCluster>,
) -> Result<ClusterScope<InMemoryCluster>, ProviderError> {
    Ok(ClusterScope {
        cluster: s.cluster.clone(),
        infra: Arc::new(cluster_of(&s.infra)?),
        topology: s.topology.clone(),
        now: s.now,
    })
}

fn machine_scope(
    s: &MachineScope<DevCluster, DevMachine>,
) -> Result<MachineScope<InMemoryCluster, InMemoryMachine>, ProviderError> {
    let spec = machine_spec(&s.infra.spec).map_err(ProviderError::terminal)?;
    Ok(MachineScope {
        cluster: s.cluster.clone(),
        infra_cluster: Arc::new(cluster_of(&s.infra_cluster)?),
        machine: s.machine.clone(),
        infra: Arc::new(InMemoryMachine {
            metadata: s.infra.metadata.clone(),
            spec,
            status: None,
        }),
        now: s.now,
    })
}

impl InfrastructureProvider for Dev {
    type Cluster = DevCluster;
    type Machine = DevMachine;
    const CLUSTER_FINALIZER: &'static str = "devcluster.infrastructure.cluster.x-k8s.io";
    const MACHINE_FINALIZER: &'static str = "devmachine.infrastructure.cluster.x-k8s.io";

    fn name(&self) -> &'static str {
        "in-memory"
    }

    async fn reconcile_cluster(
        &self,
        scope: &ClusterScope<DevCluster>,
    ) -> Result<ClusterOutcome, ProviderError> {
        self.0.reconcile_cluster(&cluster_scope(scope)?).await
    }

    async fn delete_cluster(
        &self,
        scope: &ClusterScope<DevCluster>,
    ) -> Result<Deletion, ProviderError> {
        self.0.delete_cluster(&cluster_scope(scope)?).await
    }

    async fn reconcile_machine(
        &self,
        scope: &MachineScope<DevCluster, DevMachine>,
        bootstrap: &BootstrapData,
    ) -> Result<MachineOutcome, ProviderError> {
        self.0
            .reconcile_machine(&machine_scope(scope)?, bootstrap)
            .await
    }

    async fn delete_machine(
        &self,
        scope: &MachineScope<DevCluster, DevMachine>,
    ) -> Result<Deletion, ProviderError> {
        self.0.delete_machine(&machine_scope(scope)?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        for (s, want) in [
            ("10s", 10.0),
            ("1m30s", 90.0),
            ("500ms", 0.5),
            ("1h", 3600.0),
            ("2.5s", 2.5),
        ] {
            assert_eq!(go_duration_seconds(s).unwrap(), want, "{s}");
        }
        for bad in ["", "10", "10x", "s"] {
            assert!(go_duration_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn upstream_in_memory_backend_maps_to_simulated_delays_and_docker_is_refused() {
        let spec: DevMachineSpec =
            serde_json::from_value(serde_json::json!({"backend": {"inMemory": {
            "vm": {"provisioning": {"startupDuration": "10s", "startupJitter": "0.2"}},
            "node": {"provisioning": {"startupDuration": "2s", "startupJitter": "0.2"}},
            "apiServer": {"provisioning": {"startupDuration": "2s", "startupJitter": "0.2"}},
            "etcd": {"provisioning": {"startupDuration": "3s", "startupJitter": "0.2"}}}}}))
            .unwrap();
        let sim = machine_spec(&spec).unwrap().simulation.unwrap();
        assert_eq!(sim.vm_startup_seconds, Some(10.0));
        assert_eq!(sim.node_startup_seconds, Some(2.0));
        assert_eq!(sim.api_server_startup_seconds, Some(3.0));
        assert_eq!(sim.jitter_percent, Some(20));

        let docker: DevMachineSpec =
            serde_json::from_value(serde_json::json!({"backend": {"docker": {}}})).unwrap();
        assert!(
            machine_spec(&docker)
                .unwrap_err()
                .contains("backend.docker is not supported")
        );
    }
}
