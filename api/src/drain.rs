//! `cluster.x-k8s.io/v1beta2` MachineDrainRule: how the drain of a deleted Machine's Node
//! treats the Pods a rule selects (evict in an order, skip, or wait for them to complete).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// Desired state of a MachineDrainRule.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cluster.x-k8s.io",
    version = "v1beta2",
    kind = "MachineDrainRule",
    plural = "machinedrainrules",
    namespaced,
    category = "cluster-api",
    printcolumn(
        name = "Behavior",
        type_ = "string",
        json_path = ".spec.drain.behavior"
    ),
    printcolumn(name = "Order", type_ = "string", json_path = ".spec.drain.order"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MachineDrainRuleSpec {
    /// What happens to the selected Pods.
    pub drain: MachineDrainRuleDrainConfig,
    /// Machines the rule applies to (all when empty).
    #[schemars(length(max = 32))]
    pub machines: Option<Vec<MachineDrainRuleMachineSelector>>,
    /// Pods the rule applies to (all when empty).
    #[schemars(length(max = 32))]
    pub pods: Option<Vec<MachineDrainRulePodSelector>>,
}

/// Drain behavior and order.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.behavior == 'Drain' || !has(self.order)").message("order can only be set if behavior is set to \"Drain\""))]
pub struct MachineDrainRuleDrainConfig {
    /// `Drain` (evict), `Skip` (leave) or `WaitCompleted` (wait until the Pod completes).
    #[schemars(regex(pattern = r"^(Drain|Skip|WaitCompleted)$"))]
    pub behavior: String,
    /// Pods of a lower order are evicted (and gone) before Pods of a higher one (default 0).
    pub order: Option<i32>,
}

/// Which Machines a rule applies to: both selectors must match (an absent one matches all).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineDrainRuleMachineSelector {
    /// Labels of the Machine.
    pub selector: Option<LabelSelector>,
    /// Labels of the Machine's Cluster.
    pub cluster_selector: Option<LabelSelector>,
}

/// Which Pods a rule applies to: both selectors must match (an absent one matches all).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineDrainRulePodSelector {
    /// Labels of the Pod.
    pub selector: Option<LabelSelector>,
    /// Labels of the Pod's namespace in the workload cluster.
    pub namespace_selector: Option<LabelSelector>,
}

/// Drain behaviors.
pub mod behavior {
    /// Evict the Pod.
    pub const DRAIN: &str = "Drain";
    /// Leave the Pod alone.
    pub const SKIP: &str = "Skip";
    /// Do not evict; wait until the Pod completes.
    pub const WAIT_COMPLETED: &str = "WaitCompleted";
}
