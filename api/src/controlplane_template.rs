//! `controlplane.cluster.x-k8s.io/v1beta2` KubeadmControlPlaneTemplate: the control-plane
//! part of a ClusterClass (upstream `kubeadmcontrolplanetemplate_types.go`). It stamps out the
//! spec of a KubeadmControlPlane except what each cluster sets itself (replicas, version, the
//! machines' infrastructure template).

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::{
    bootstrap::KubeadmConfigSpec,
    common::{MachineDeletionSpec, ObjectMeta, TemplateStatus},
    controlplane::{KubeadmControlPlaneRemediation, KubeadmControlPlaneRollout},
    machine::MachineNaming,
};

/// Desired state of a KubeadmControlPlaneTemplate.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "controlplane.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "KubeadmControlPlaneTemplate",
    plural = "kubeadmcontrolplanetemplates",
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
pub struct KubeadmControlPlaneTemplateSpec {
    /// The template.
    pub template: KubeadmControlPlaneTemplateResource,
}

/// What a KubeadmControlPlaneTemplate stamps out.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct KubeadmControlPlaneTemplateResource {
    /// Labels and annotations of created KubeadmControlPlanes.
    pub metadata: Option<ObjectMeta>,
    /// Spec of created KubeadmControlPlanes.
    pub spec: KubeadmControlPlaneTemplateResourceSpec,
}

/// A KubeadmControlPlane spec without replicas, version and infrastructure reference.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeadmControlPlaneTemplateResourceSpec {
    /// Template of the control-plane machines.
    pub machine_template: Option<KubeadmControlPlaneTemplateMachineTemplate>,
    /// kubeadm settings of every control-plane machine.
    pub kubeadm_config_spec: Option<KubeadmConfigSpec>,
    /// Rollout settings.
    pub rollout: Option<KubeadmControlPlaneRollout>,
    /// Remediation settings.
    pub remediation: Option<KubeadmControlPlaneRemediation>,
    /// Naming of created machines.
    pub machine_naming: Option<MachineNaming>,
}

/// Template of control-plane machines, without their infrastructure reference.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct KubeadmControlPlaneTemplateMachineTemplate {
    /// Labels and annotations of created machines.
    pub metadata: Option<ObjectMeta>,
    /// Spec parts of created machines.
    pub spec: Option<KubeadmControlPlaneTemplateMachineTemplateSpec>,
}

/// Machine spec parts a KubeadmControlPlaneTemplate controls.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeadmControlPlaneTemplateMachineTemplateSpec {
    /// Deletion timeouts.
    pub deletion: Option<MachineDeletionSpec>,
}
