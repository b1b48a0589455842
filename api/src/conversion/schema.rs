//! The v1beta1 entry of a CRD's `spec.versions` (served, not stored, deprecated) and the
//! CRD's `spec.conversion`.
//!
//! The v1beta1 schema is closed and structural, derived from the v1beta2 one by the kind's
//! conversion table ([`super::derive`]); the converted object is still admitted against the
//! v1beta2 schema, and what v1beta2 has no place for is kept by the residual annotation.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceConversion, CustomResourceDefinition,
    CustomResourceDefinitionVersion, CustomResourceValidation, JSONSchemaProps, ServiceReference,
    WebhookClientConfig, WebhookConversion,
};

use super::{HUB, SPOKE, handles};

const CONTRACT_V1BETA2: &str = "cluster.x-k8s.io/v1beta2";
const CONTRACT_V1BETA1: &str = "cluster.x-k8s.io/v1beta1";

/// Namespace and Service the conversion webhook is reached at on a real cluster.
pub const WEBHOOK_NAMESPACE: &str = "slipway-system";
/// Service in front of the controller's webhook server.
pub const WEBHOOK_SERVICE: &str = "slipway-webhook-service";
/// Path of the conversion endpoint.
pub const WEBHOOK_PATH: &str = "/convert";

fn column(name: &str, type_: &str, path: &str) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: name.into(),
        type_: type_.into(),
        json_path: path.into(),
        ..Default::default()
    }
}

/// Upstream's v1beta1 printer columns of a kind.
fn columns(kind: &str) -> Vec<CustomResourceColumnDefinition> {
    let mut cols = match kind {
        "Cluster" => vec![
            column("ClusterClass", "string", ".spec.topology.class"),
            column("Phase", "string", ".status.phase"),
        ],
        "Machine" => vec![
            column("Cluster", "string", ".spec.clusterName"),
            column("NodeName", "string", ".status.nodeRef.name"),
            column("ProviderID", "string", ".spec.providerID"),
            column("Phase", "string", ".status.phase"),
        ],
        "MachineSet" | "MachineDeployment" => vec![
            column("Cluster", "string", ".spec.clusterName"),
            column("Replicas", "integer", ".status.replicas"),
            column("Ready", "integer", ".status.readyReplicas"),
            column("Available", "integer", ".status.availableReplicas"),
        ],
        "KubeadmControlPlane" => vec![
            column(
                "Cluster",
                "string",
                ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']",
            ),
            column("Initialized", "boolean", ".status.initialized"),
            column("API Server Available", "boolean", ".status.ready"),
            column("Replicas", "integer", ".status.replicas"),
            column("Ready", "integer", ".status.readyReplicas"),
            column("Updated", "integer", ".status.updatedReplicas"),
            column("Unavailable", "integer", ".status.unavailableReplicas"),
        ],
        "KubeadmConfig" => vec![
            column(
                "Cluster",
                "string",
                ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']",
            ),
            column("Ready", "boolean", ".status.ready"),
        ],
        // CAPA's v1beta1 columns.
        "AWSCluster" | "AWSManagedControlPlane" => vec![
            column(
                "Cluster",
                "string",
                ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']",
            ),
            column("Ready", "string", ".status.ready"),
            column("VPC", "string", ".spec.network.vpc.id"),
            column("Bastion IP", "string", ".status.bastion.publicIp"),
        ],
        "AWSMachine" => vec![
            column(
                "Cluster",
                "string",
                ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']",
            ),
            column("State", "string", ".status.instanceState"),
            column("Ready", "string", ".status.ready"),
            column("InstanceID", "string", ".spec.providerID"),
        ],
        "AWSManagedMachinePool" => vec![
            column("Ready", "string", ".status.ready"),
            column("Replicas", "integer", ".status.replicas"),
        ],
        "AWSMachinePool" => vec![
            column("Ready", "string", ".status.ready"),
            column("Replicas", "integer", ".status.replicas"),
            column("MinSize", "integer", ".spec.minSize"),
            column("MaxSize", "integer", ".spec.maxSize"),
            column("LaunchTemplate ID", "string", ".status.launchTemplateID"),
        ],
        _ => vec![],
    };
    cols.push(column("Age", "date", ".metadata.creationTimestamp"));
    if matches!(kind, "Cluster" | "Machine" | "KubeadmControlPlane") {
        let path = match kind {
            "Cluster" => ".spec.topology.version",
            _ => ".spec.version",
        };
        cols.push(column("Version", "string", path));
    }
    cols
}

/// Adds the v1beta1 version and webhook conversion to a CRD of a kind [`handles`] covers
/// (core kinds, and provider kinds once [`super::register`]ed); other CRDs are returned
/// unchanged.
pub fn with_v1beta1(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let (group, kind) = (crd.spec.group.clone(), crd.spec.names.kind.clone());
    if !handles(&group, &kind) || crd.spec.versions.iter().any(|v| v.name == SPOKE) {
        return crd;
    }
    let Some(hub) = crd.spec.versions.iter().find(|v| v.name == HUB).cloned() else {
        return crd;
    };
    let Some(hub_schema) = hub
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
    else {
        return crd;
    };
    let table = super::table_of(&group, &kind).unwrap_or_default();
    let spoke =
        super::derive::spoke_schema(&hub_schema, &table, &super::spoke_only_of(&group, &kind));
    let spoke: JSONSchemaProps =
        serde_json::from_value(spoke).expect("a derived schema is a JSONSchemaProps");
    crd.spec.versions.push(CustomResourceDefinitionVersion {
        name: SPOKE.into(),
        served: true,
        storage: false,
        deprecated: Some(true),
        deprecation_warning: Some(format!(
            "{group}/{SPOKE} {kind} is deprecated; use {group}/{HUB} {kind}"
        )),
        schema: Some(CustomResourceValidation {
            open_api_v3_schema: Some(spoke),
        }),
        subresources: hub.subresources.clone(),
        additional_printer_columns: Some(columns(&kind)),
        selectable_fields: None,
    });
    // The contract label names the versions implementing each contract: v1beta1 objects
    // follow the v1beta1 contract (`cluster.x-k8s.io/v1beta1: v1beta1`), as upstream labels it.
    if let Some(labels) = crd.metadata.labels.as_mut()
        && labels.contains_key(CONTRACT_V1BETA2)
    {
        labels.insert(CONTRACT_V1BETA1.into(), SPOKE.into());
    }
    crd.spec.conversion = Some(CustomResourceConversion {
        strategy: "Webhook".into(),
        webhook: Some(WebhookConversion {
            conversion_review_versions: vec!["v1".into()],
            client_config: Some(WebhookClientConfig {
                service: Some(ServiceReference {
                    namespace: WEBHOOK_NAMESPACE.into(),
                    name: WEBHOOK_SERVICE.into(),
                    path: Some(WEBHOOK_PATH.into()),
                    port: Some(443),
                }),
                ..Default::default()
            }),
        }),
    });
    crd
}
