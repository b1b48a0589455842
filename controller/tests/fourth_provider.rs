//! A provider the core has never heard of plugs in through `slipway_providers::Plugin` alone:
//! its own CRD kinds (group `infrastructure.example.dev`), its own provider, and one
//! `.with(...)` in the plugin list. The core Cluster reconciler then follows its
//! infrastructure cluster through the contract fields (watching the kind it learns from the
//! plugin), and the generic infrastructure reconciler writes the provider's outcome back,
//! exactly as for the built-in providers.

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, CustomResource, CustomResourceExt, api::PostParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use slipway_api::{
    Cluster,
    common::{ApiEndpoint, Condition},
};
use slipway_providers::{
    BootstrapData, ClusterOutcome, ClusterReady, ClusterScope, Deletion, InfrastructureProvider,
    MachineOutcome, MachineScope, Plugin, Plugins, ProvidedKind, ProviderError, Role, Settings,
};
use slipway_runtime::runner::Runner;
use slipway_testsupport::{client, eventually_async, plane_with, temp_dir};

/// A Widget cluster: the fourth provider's infrastructure cluster kind.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infrastructure.example.dev",
    version = "v1alpha1",
    kind = "WidgetCluster",
    plural = "widgetclusters",
    namespaced,
    status = "WidgetStatus",
    label("cluster.x-k8s.io/v1beta2", "v1alpha1")
)]
#[serde(rename_all = "camelCase")]
struct WidgetClusterSpec {
    control_plane_endpoint: Option<ApiEndpoint>,
}

/// A Widget machine.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infrastructure.example.dev",
    version = "v1alpha1",
    kind = "WidgetMachine",
    plural = "widgetmachines",
    namespaced,
    status = "WidgetStatus",
    label("cluster.x-k8s.io/v1beta2", "v1alpha1")
)]
struct WidgetMachineSpec {
    #[serde(rename = "providerID")]
    provider_id: Option<String>,
}

/// Status of both kinds: only what the contract says (the generic reconcilers write it).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct WidgetStatus {
    #[schemars(schema_with = "any_object")]
    initialization: Option<Value>,
    conditions: Option<Vec<Condition>>,
    observed_generation: Option<i64>,
}

fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// The provider: a cluster is ready on its second reconcile, at 127.0.0.1:7443.
#[derive(Default)]
struct Widgets {
    calls: Arc<AtomicU32>,
}

impl InfrastructureProvider for Widgets {
    type Cluster = WidgetCluster;
    type Machine = WidgetMachine;
    const CLUSTER_FINALIZER: &'static str = "widgetcluster.infrastructure.example.dev";
    const MACHINE_FINALIZER: &'static str = "widgetmachine.infrastructure.example.dev";

    fn name(&self) -> &'static str {
        "widgets"
    }

    async fn reconcile_cluster(
        &self,
        _scope: &ClusterScope<WidgetCluster>,
    ) -> Result<ClusterOutcome, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(ClusterOutcome::Ready(ClusterReady {
            control_plane_endpoint: Some(ApiEndpoint {
                host: "127.0.0.1".into(),
                port: 7443,
            }),
            failure_domains: Default::default(),
            kubeconfig: None,
            status: Value::Null,
            message: "widgets are up".into(),
        }))
    }

    async fn delete_cluster(
        &self,
        _scope: &ClusterScope<WidgetCluster>,
    ) -> Result<Deletion, ProviderError> {
        Ok(Deletion::Gone)
    }

    async fn reconcile_machine(
        &self,
        _scope: &MachineScope<WidgetCluster, WidgetMachine>,
        _bootstrap: &BootstrapData,
    ) -> Result<MachineOutcome, ProviderError> {
        Err(ProviderError::terminal("widgets make no machines"))
    }

    async fn delete_machine(
        &self,
        _scope: &MachineScope<WidgetCluster, WidgetMachine>,
    ) -> Result<Deletion, ProviderError> {
        Ok(Deletion::Gone)
    }
}

/// The fourth provider's plugin: everything the core learns about it.
struct WidgetPlugin {
    calls: Arc<AtomicU32>,
}

impl Plugin for WidgetPlugin {
    fn name(&self) -> &'static str {
        "widgets"
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        vec![WidgetCluster::crd(), WidgetMachine::crd()]
    }

    fn kinds(&self) -> Vec<ProvidedKind> {
        vec![
            ProvidedKind::of::<WidgetCluster>(Role::InfrastructureCluster, Some("widgets")),
            ProvidedKind::of::<WidgetMachine>(Role::InfrastructureMachine, None),
        ]
    }

    fn run(&self, runner: Runner, _settings: Settings) -> BoxFuture<'static, ()> {
        let provider = Widgets {
            calls: self.calls.clone(),
        };
        Box::pin(slipway_providers::infra::run(runner, provider))
    }
}

fn condition(c: &Cluster, type_: &str) -> Option<String> {
    c.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|x| x.type_ == type_)
        .map(|x| x.status.clone())
}

#[tokio::test]
async fn a_provider_the_core_does_not_know_plugs_in_through_its_plugin() {
    let calls = Arc::new(AtomicU32::new(0));
    let plugins = Plugins::default().with(WidgetPlugin {
        calls: calls.clone(),
    });
    let mut crds = slipway_api::crds::core();
    crds.extend(plugins.crds());
    let crds = crds
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    let p = plane_with(None, 0, crds).await;
    let c = client(&p).await;
    let opts = slipway_controller::manager::Options {
        data_dir: temp_dir("widgets"),
        ..Default::default()
    };
    let manager = tokio::spawn(slipway_controller::manager::run(c.clone(), opts, plugins));

    let widgets: Api<WidgetCluster> = Api::namespaced(c.clone(), "default");
    widgets
        .create(
            &PostParams::default(),
            &WidgetCluster::new("w1", WidgetClusterSpec::default()),
        )
        .await
        .unwrap();
    let clusters: Api<Cluster> = Api::namespaced(c.clone(), "default");
    let cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "Cluster",
        "metadata": {"name": "w1", "namespace": "default"},
        "spec": {"infrastructureRef": {
            "apiGroup": "infrastructure.example.dev", "kind": "WidgetCluster", "name": "w1"
        }}
    }))
    .unwrap();
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();

    // The core adopts the widget cluster, the generic reconciler calls the provider and writes
    // the contract fields, and the Cluster follows them.
    let got = eventually_async(
        30,
        "the Cluster to see its widget infrastructure",
        async || {
            let got = clusters.get("w1").await.ok()?;
            (condition(&got, "InfrastructureReady")? == "True").then_some(got)
        },
    )
    .await;
    assert_eq!(
        got.spec.control_plane_endpoint,
        Some(ApiEndpoint {
            host: "127.0.0.1".into(),
            port: 7443
        }),
        "the endpoint the provider reported reached the Cluster"
    );
    let widget = widgets.get("w1").await.unwrap();
    assert!(
        widget
            .metadata
            .owner_references
            .unwrap_or_default()
            .iter()
            .any(|o| o.kind == "Cluster" && o.name == "w1"),
        "the Cluster owns its widget cluster"
    );
    assert_eq!(
        widget.status.unwrap().initialization,
        Some(json!({"provisioned": true}))
    );
    assert!(calls.load(Ordering::SeqCst) >= 1);

    // Deletion goes through the widget's finalizer too.
    clusters.delete("w1", &Default::default()).await.unwrap();
    eventually_async(30, "the Cluster and its widget cluster to go", async || {
        (clusters.get_opt("w1").await.ok()?.is_none()
            && widgets.get_opt("w1").await.ok()?.is_none())
        .then_some(())
    })
    .await;
    manager.abort();
    p.shutdown().await;
}
