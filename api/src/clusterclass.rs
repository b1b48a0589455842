//! `cluster.x-k8s.io/v1beta2` ClusterClass and `controlplane.cluster.x-k8s.io/v1beta2`
//! KubeadmControlPlaneTemplate: the blueprint a Cluster with `spec.topology` is built from.
//!
//! Field names follow upstream v1beta2 (`templateRef {apiVersion, kind, name}`, `healthCheck
//! {checks, remediation}`, `patches[].definitions[].jsonPatches[]`). Variable schemas and patch
//! values are free-form JSON (`x-kubernetes-preserve-unknown-fields`), as upstream's
//! `apiextensionsv1.JSON`; the topology controller validates them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::{Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::{
    bootstrap::KubeadmConfigSpec,
    common::{
        Condition, ConditionPolarity, MachineDeletionSpec, ObjectMeta, ReadinessGate, Taint,
        TemplateStatus,
    },
    controlplane::{KubeadmControlPlaneRemediation, KubeadmControlPlaneRollout},
    machine::{
        MachineHealthCheckChecks, MachineHealthCheckRemediationTemplateRef, MachineNaming,
        RemediationTrigger,
    },
};

pub(crate) fn any_json(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

fn any_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Desired state of a ClusterClass.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cluster.x-k8s.io",
    version = "v1beta2",
    kind = "ClusterClass",
    plural = "clusterclasses",
    namespaced,
    status = "ClusterClassStatus",
    shortname = "cc",
    category = "cluster-api",
    printcolumn(
        name = "Variables Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"VariablesReady\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterClassSpec {
    /// Extra conditions that must be true for clusters of this class to be Available.
    pub availability_gates: Option<Vec<ClusterAvailabilityGate>>,
    /// The infrastructure cluster template.
    pub infrastructure: Option<InfrastructureClass>,
    /// The control plane template and its machines' infrastructure template.
    pub control_plane: Option<ControlPlaneClass>,
    /// Worker classes.
    pub workers: Option<WorkersClass>,
    /// Variables a topology Cluster may set.
    pub variables: Option<Vec<ClusterClassVariable>>,
    /// Patches applied to the templates.
    pub patches: Option<Vec<ClusterClassPatch>>,
    /// Upgrade settings (external upgrade plans are not supported).
    #[serde(default)]
    #[schemars(schema_with = "any_object")]
    pub upgrade: Option<serde_json::Value>,
    /// Kubernetes versions the class supports, in upgrade order.
    pub kubernetes_versions: Option<Vec<String>>,
}

/// An availability gate (upstream `ClusterAvailabilityGate`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAvailabilityGate {
    /// Condition type.
    pub condition_type: String,
    /// Positive (default) or Negative.
    pub polarity: Option<ConditionPolarity>,
}

/// Reference to a template (upstream `ClusterClassTemplateReference`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterClassTemplateReference {
    /// Kind of the template, e.g. `KubeadmControlPlaneTemplate`.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Name of the template, in the ClusterClass's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// apiVersion of the template.
    #[schemars(length(min = 1, max = 317))]
    pub api_version: String,
}

impl ClusterClassTemplateReference {
    /// The API group of the reference (`""` for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }
}

/// A template reference wrapper (`{templateRef}`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRefHolder {
    /// The template.
    pub template_ref: ClusterClassTemplateReference,
}

/// Naming of created objects (`{template}`, Go text/template).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct NamingSpec {
    /// Template of the name, e.g. `{{ .cluster.name }}-{{ .random }}`.
    #[schemars(length(min = 1, max = 1024))]
    pub template: Option<String>,
}

/// `spec.infrastructure` of a ClusterClass.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct InfrastructureClass {
    /// The infrastructure cluster template.
    pub template_ref: ClusterClassTemplateReference,
    /// Naming of the infrastructure cluster.
    pub naming: Option<NamingSpec>,
}

/// `spec.controlPlane` of a ClusterClass.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneClass {
    /// Labels and annotations of the control plane.
    pub metadata: Option<ObjectMeta>,
    /// The control plane template.
    pub template_ref: ClusterClassTemplateReference,
    /// The infrastructure template of the control-plane machines.
    pub machine_infrastructure: Option<TemplateRefHolder>,
    /// MachineHealthCheck of the control-plane machines.
    pub health_check: Option<HealthCheckClass>,
    /// Naming of the control plane.
    pub naming: Option<NamingSpec>,
    /// Deletion timeouts of the control-plane machines.
    pub deletion: Option<MachineDeletionSpec>,
    /// Node taints.
    pub taints: Option<Vec<Taint>>,
    /// Extra readiness gates.
    pub readiness_gates: Option<Vec<ReadinessGate>>,
}

/// A class health check: what counts as unhealthy and how to remediate.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckClass {
    /// Checks.
    pub checks: Option<MachineHealthCheckChecks>,
    /// Remediation.
    pub remediation: Option<HealthCheckRemediationClass>,
}

/// Remediation of a class health check (`maxInFlight` for MachineDeployments only).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckRemediationClass {
    /// Machines remediated at once (MachineDeployments).
    pub max_in_flight: Option<IntOrString>,
    /// Remediate only while the unhealthy count is within these limits.
    pub trigger_if: Option<RemediationTrigger>,
    /// External remediation template.
    pub template_ref: Option<MachineHealthCheckRemediationTemplateRef>,
}

/// `spec.workers` of a ClusterClass.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkersClass {
    /// MachineDeployment classes.
    pub machine_deployments: Option<Vec<MachineDeploymentClass>>,
    /// MachinePool classes (not supported by slipway's topology controller).
    #[serde(default)]
    #[schemars(schema_with = "any_array")]
    pub machine_pools: Option<Vec<serde_json::Value>>,
}

fn any_array(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "array", "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } })
}

/// One MachineDeployment class.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineDeploymentClass {
    /// Labels and annotations of the MachineDeployment and its machines.
    pub metadata: Option<ObjectMeta>,
    /// Name of the class, referred to by `topology.workers.machineDeployments[].class`.
    #[schemars(length(min = 1, max = 256))]
    pub class: String,
    /// Bootstrap template.
    pub bootstrap: TemplateRefHolder,
    /// Infrastructure machine template.
    pub infrastructure: TemplateRefHolder,
    /// MachineHealthCheck of the machines.
    pub health_check: Option<HealthCheckClass>,
    /// Default failure domain.
    pub failure_domain: Option<String>,
    /// Naming of the MachineDeployment.
    pub naming: Option<NamingSpec>,
    /// Deletion order and timeouts.
    #[serde(default)]
    #[schemars(schema_with = "any_object")]
    pub deletion: Option<serde_json::Value>,
    /// Node taints.
    pub taints: Option<Vec<Taint>>,
    /// Seconds a machine must be ready to count as available.
    pub min_ready_seconds: Option<i32>,
    /// Extra readiness gates.
    pub readiness_gates: Option<Vec<ReadinessGate>>,
    /// Rollout strategy.
    #[serde(default)]
    #[schemars(schema_with = "any_object")]
    pub rollout: Option<serde_json::Value>,
}

/// One variable definition.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterClassVariable {
    /// Name of the variable (not starting with `builtin`).
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new("!self.startsWith('builtin')").message("variable names must not start with 'builtin' (reserved for builtin variables)"))]
    pub name: String,
    /// Whether a topology Cluster must set it.
    pub required: Option<bool>,
    /// Deprecated v1beta1 metadata.
    pub deprecated_v1_beta1_metadata: Option<ObjectMeta>,
    /// Schema of the value.
    pub schema: VariableSchema,
}

/// `{openAPIV3Schema}` of a variable.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct VariableSchema {
    /// The OpenAPI v3 schema (a subset of JSON Schema, as CRDs use it).
    #[serde(rename = "openAPIV3Schema")]
    #[schemars(schema_with = "any_object")]
    pub open_api_v3_schema: serde_json::Value,
}

/// One patch of a ClusterClass.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterClassPatch {
    /// Name of the patch.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Go template evaluating to `true` when the patch applies.
    pub enabled_if: Option<String>,
    /// Inline patches.
    pub definitions: Option<Vec<PatchDefinition>>,
    /// External patches (runtime extensions): not supported by slipway.
    #[serde(default)]
    #[schemars(schema_with = "any_object")]
    pub external: Option<serde_json::Value>,
}

/// Selector plus JSON patches.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchDefinition {
    /// Which templates the patches apply to.
    pub selector: PatchSelector,
    /// RFC 6902 operations.
    pub json_patches: Vec<JsonPatch>,
}

/// Which templates a patch applies to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchSelector {
    /// apiVersion of the template.
    pub api_version: String,
    /// Kind of the template.
    pub kind: String,
    /// Which uses of the template.
    pub match_resources: PatchSelectorMatch,
}

/// Which uses of a template a selector matches.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchSelectorMatch {
    /// The control plane template (and its machine infrastructure template).
    pub control_plane: Option<bool>,
    /// The infrastructure cluster template.
    pub infrastructure_cluster: Option<bool>,
    /// Templates of these MachineDeployment classes (`*` for all).
    pub machine_deployment_class: Option<NamesMatch>,
    /// Templates of these MachinePool classes.
    pub machine_pool_class: Option<NamesMatch>,
}

/// A list of class names.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct NamesMatch {
    /// Class names; `*` matches every class, `prefix-*` / `*-suffix` match by prefix/suffix.
    pub names: Option<Vec<String>>,
}

/// One JSON patch operation.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct JsonPatch {
    /// add, replace or remove.
    #[schemars(regex(pattern = r"^(add|replace|remove)$"))]
    pub op: String,
    /// JSON pointer, starting with `/spec/`.
    #[x_kube(validation = Rule::new("self.startsWith('/spec/')").message("path must start with /spec/"))]
    pub path: String,
    /// A literal value.
    #[serde(default)]
    #[schemars(schema_with = "any_json")]
    pub value: Option<serde_json::Value>,
    /// A value from a variable or a template.
    pub value_from: Option<JsonPatchValue>,
}

/// `valueFrom` of a JSON patch: exactly one of variable or template.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct JsonPatchValue {
    /// A variable, e.g. `imageRepository`, `builtin.cluster.name` or `httpProxy.url`.
    pub variable: Option<String>,
    /// A Go template rendering YAML/JSON.
    pub template: Option<String>,
}

/// Observed state of a ClusterClass.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterClassStatus {
    /// v1beta2 conditions: VariablesReady, RefVersionsUpToDate, Paused.
    pub conditions: Option<Vec<Condition>>,
    /// The variables of the class, with their definitions.
    pub variables: Option<Vec<ClusterClassStatusVariable>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// A variable in `status.variables`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterClassStatusVariable {
    /// Name.
    pub name: String,
    /// Whether definitions from several sources conflict (never: inline only).
    pub definitions_conflict: Option<bool>,
    /// Definitions.
    pub definitions: Vec<ClusterClassStatusVariableDefinition>,
}

/// One definition of a status variable.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterClassStatusVariableDefinition {
    /// `inline` for definitions of `spec.variables`.
    pub from: String,
    /// Required.
    pub required: Option<bool>,
    /// Schema.
    pub schema: VariableSchema,
}

/// Desired state of a KubeadmControlPlaneTemplate.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "controlplane.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "KubeadmControlPlaneTemplate",
    plural = "kubeadmcontrolplanetemplates",
    namespaced,
    status = "TemplateStatus",
    shortname = "kcpt",
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
    /// Labels and annotations.
    pub metadata: Option<ObjectMeta>,
    /// The control plane spec without replicas, version and infrastructure reference.
    pub spec: KubeadmControlPlaneTemplateResourceSpec,
}

/// KubeadmControlPlane spec parts a template carries.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeadmControlPlaneTemplateResourceSpec {
    /// Machine template parts (metadata, deletion, taints, readiness gates).
    pub machine_template: Option<KubeadmControlPlaneTemplateMachineTemplate>,
    /// kubeadm settings.
    pub kubeadm_config_spec: KubeadmConfigSpec,
    /// Rollout settings.
    pub rollout: Option<KubeadmControlPlaneRollout>,
    /// Remediation settings.
    pub remediation: Option<KubeadmControlPlaneRemediation>,
    /// Naming of created machines.
    pub machine_naming: Option<MachineNaming>,
}

/// `spec.template.spec.machineTemplate` of a KubeadmControlPlaneTemplate.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct KubeadmControlPlaneTemplateMachineTemplate {
    /// Labels and annotations of the machines.
    pub metadata: Option<ObjectMeta>,
    /// Spec parts.
    pub spec: Option<KubeadmControlPlaneTemplateMachineTemplateSpec>,
}

/// Machine spec parts of a KubeadmControlPlaneTemplate.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeadmControlPlaneTemplateMachineTemplateSpec {
    /// Deletion timeouts.
    pub deletion: Option<MachineDeletionSpec>,
}

/// Labels of [`ObjectMeta`] merged over `base` (entries of `over` win).
pub fn merge_labels(
    base: Option<&BTreeMap<String, String>>,
    over: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out = base.cloned().unwrap_or_default();
    out.extend(over.cloned().unwrap_or_default());
    out
}
