//! The in-memory provider's [`slipway_providers::Plugin`]: its CRDs, kinds, `generate cluster`
//! flavors (`default`, `faulty`, `machinepool`, `topology`) and controllers.

use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use slipway_providers::{
    ProvidedKind, Role, Settings,
    flavor::{Check, Infrastructure, VarSpec, var},
};
use slipway_runtime::runner::Runner;

use crate::{
    InMemory, InMemoryCluster, InMemoryClusterTemplate, InMemoryMachine, InMemoryMachinePool,
    InMemoryMachineTemplate,
    dev::{Dev, DevCluster, DevClusterTemplate, DevMachine, DevMachineTemplate},
};

/// The in-memory provider as a plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plugin;

/// The in-memory provider's plugin.
pub fn plugin() -> Plugin {
    Plugin
}

impl slipway_providers::Plugin for Plugin {
    fn name(&self) -> &'static str {
        "in-memory"
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        vec![
            InMemoryCluster::crd(),
            InMemoryMachine::crd(),
            InMemoryMachineTemplate::crd(),
            InMemoryClusterTemplate::crd(),
            DevCluster::crd(),
            DevClusterTemplate::crd(),
            DevMachine::crd(),
            DevMachineTemplate::crd(),
            InMemoryMachinePool::crd(),
        ]
    }

    fn kinds(&self) -> Vec<ProvidedKind> {
        vec![
            ProvidedKind::of::<InMemoryCluster>(Role::InfrastructureCluster, Some("in-memory")),
            ProvidedKind::of::<InMemoryMachine>(Role::InfrastructureMachine, None),
            ProvidedKind::of::<DevCluster>(Role::InfrastructureCluster, Some("in-memory")),
            ProvidedKind::of::<DevMachine>(Role::InfrastructureMachine, None),
            ProvidedKind::of::<InMemoryMachinePool>(Role::InfrastructureMachinePool, None),
        ]
    }

    fn infrastructures(&self) -> Vec<Infrastructure> {
        vec![Infrastructure {
            name: "in-memory",
            flavors: &["default", "faulty", "machinepool", "topology"],
            kubeadm: true,
            external_cloud_provider: false,
            templates: &[
                (
                    "in-memory.yaml.tera",
                    include_str!("../templates/in-memory.yaml.tera"),
                ),
                (
                    "_topology-class.yaml.tera",
                    include_str!("../templates/_topology-class.yaml.tera"),
                ),
                (
                    "_topology-values.yaml.tera",
                    include_str!("../templates/_topology-values.yaml.tera"),
                ),
            ],
            cluster_kind: "InMemoryCluster",
            machine_template_kind: "InMemoryMachineTemplate",
            default_kubernetes_version: Some(DEFAULT_KUBERNETES_VERSION),
            variables,
        }]
    }

    fn run(&self, runner: Runner, settings: Settings) -> BoxFuture<'static, ()> {
        // Cluster API's Dev kinds run on their own in-memory provider (own data dir).
        let dev = Dev::new(std::sync::Arc::new(InMemory::new(
            settings.data_dir.join("dev"),
        )));
        let provider = InMemory::new(settings.data_dir);
        Box::pin(async move {
            futures::join!(
                slipway_providers::infra::run(runner.clone(), provider.clone()),
                crate::pool::run(runner.clone(), provider),
                slipway_providers::infra::run(runner, dev),
            );
        })
    }
}

/// Kubernetes version of simulated clusters when none is given.
pub const DEFAULT_KUBERNETES_VERSION: &str = "v1.31.0";

fn variables(flavor: &str) -> Vec<VarSpec> {
    let mut v = vec![
        var(
            "IN_MEMORY_VM_STARTUP_SECONDS",
            Some("0"),
            "simulated VM start-up time",
            Check::Seconds,
        ),
        var(
            "IN_MEMORY_NODE_STARTUP_SECONDS",
            Some("0"),
            "simulated Node registration time",
            Check::Seconds,
        ),
        var(
            "IN_MEMORY_API_SERVER_STARTUP_SECONDS",
            Some("0"),
            "simulated API server start-up time",
            Check::Seconds,
        ),
    ];
    if flavor == "topology" {
        v.push(var(
            "CLUSTER_CLASS_NAME",
            Some("in-memory-quick-start"),
            "ClusterClass the Cluster is built from (shared by the Clusters naming it)",
            Check::DnsLabel,
        ));
    }
    if flavor == "faulty" {
        v.push(var(
            "IN_MEMORY_FAULT_MESSAGE",
            Some("simulated boot failure"),
            "message of the workers' failed boot",
            Check::Any,
        ));
    }
    v
}
