//! The kind provider's [`slipway_providers::Plugin`]: its CRDs, kinds, `generate cluster`
//! flavor and controllers (with `kind` and `docker` found on the process's PATH).

use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use slipway_providers::{
    ProvidedKind, Role, Settings,
    flavor::{Check, Infrastructure, VarSpec, var},
};
use slipway_runtime::runner::Runner;

use crate::{Kind, KindCluster, KindClusterTemplate, KindMachine, KindMachineTemplate, cli::Tools};

/// The kind provider as a plugin.
#[derive(Clone, Debug, Default)]
pub struct Plugin {
    tools: Tools,
}

/// The kind provider's plugin, finding `kind` and `docker` on PATH.
pub fn plugin() -> Plugin {
    Plugin::default()
}

impl Plugin {
    /// The plugin with explicit tool locations.
    pub fn with_tools(tools: Tools) -> Self {
        Self { tools }
    }
}

impl slipway_providers::Plugin for Plugin {
    fn name(&self) -> &'static str {
        "kind"
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        vec![
            KindCluster::crd(),
            KindMachine::crd(),
            KindMachineTemplate::crd(),
            KindClusterTemplate::crd(),
        ]
    }

    fn kinds(&self) -> Vec<ProvidedKind> {
        vec![
            ProvidedKind::of::<KindCluster>(Role::InfrastructureCluster, Some("kind")),
            ProvidedKind::of::<KindMachine>(Role::InfrastructureMachine, None),
        ]
    }

    fn infrastructures(&self) -> Vec<Infrastructure> {
        vec![Infrastructure {
            name: "kind",
            flavors: &["default"],
            kubeadm: true,
            external_cloud_provider: false,
            templates: &[(
                "kind.yaml.tera",
                include_str!("../templates/kind.yaml.tera"),
            )],
            cluster_kind: "KindCluster",
            machine_template_kind: "KindMachineTemplate",
            default_kubernetes_version: Some(DEFAULT_KUBERNETES_VERSION),
            variables,
        }]
    }

    fn run(&self, runner: Runner, settings: Settings) -> BoxFuture<'static, ()> {
        Box::pin(slipway_providers::infra::run(
            runner,
            Kind::new(settings.data_dir, self.tools.clone()),
        ))
    }
}

/// Kubernetes version of kind clusters when none is given.
pub const DEFAULT_KUBERNETES_VERSION: &str = "v1.31.0";

fn variables(_flavor: &str) -> Vec<VarSpec> {
    vec![
        var(
            "KIND_NODE_IMAGE",
            Some(""),
            "node image (empty: kindest/node:<KUBERNETES_VERSION>)",
            Check::Any,
        ),
        var(
            "KIND_KUBECONFIG_ACCESS",
            Some("host"),
            "kubeconfig slipway uses: host or internal",
            Check::Any,
        ),
    ]
}
