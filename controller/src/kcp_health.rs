//! The KubeadmControlPlane's view of its workload cluster, as upstream reads it: the static
//! Pods of each control-plane Node (`kube-system/<component>-<node>`) and the etcd member list
//! give EtcdClusterHealthy and ControlPlaneComponentsHealthy. Gathering is [`observe`]; the
//! conditions are the pure [`conditions`]. The control plane removes a Machine's etcd member
//! before it deletes the Machine, and members no Machine accounts for ([`remove_member`]), as
//! upstream does with `etcdctl member remove`, so the member list stays the etcd cluster's truth.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use slipway_api::{
    Machine,
    names::{conditions as ct, reasons},
};
use slipway_runtime::{
    Context, Error,
    conditions::{Desired, Status, desired},
};

/// Where the workload cluster lists its etcd members (the in-memory provider writes it as a
/// kubeadm cluster's `etcdctl member list` would answer).
pub const ETCD_MEMBERS: &str = "slipway-etcd-members";

/// What the workload cluster reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// `(machine, node)` of each control-plane Machine (node `None`: not joined yet).
    pub machines: Vec<(String, Option<String>)>,
    /// Pod name -> healthy (Running and Ready); `None`: the workload cluster did not answer.
    pub pods: Option<BTreeMap<String, bool>>,
    /// Node names of the etcd members (`None`: no member list).
    pub members: Option<Vec<String>>,
    /// Why the workload cluster could not be read.
    pub error: Option<String>,
}

fn healthy(p: &Pod) -> bool {
    let st = p.status.as_ref();
    st.and_then(|s| s.phase.as_deref()) == Some("Running")
        && st
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl Observed {
    /// Members whose Node is no control-plane Machine's (left by a Machine deleted without
    /// its member being removed): etcd still counts them, so quorum must too.
    pub fn orphan_members(&self) -> Vec<&str> {
        self.members
            .iter()
            .flatten()
            .filter(|m| !self.machines.iter().any(|(_, n)| n.as_deref() == Some(m)))
            .map(String::as_str)
            .collect()
    }
}

/// Removes the etcd member of Node `node` from `cluster`'s member list (what `etcdctl member
/// remove` does on a kubeadm cluster). `Ok(false)`: the workload cluster has no kubeconfig yet.
pub async fn remove_member(
    ctx: &Context,
    ns: &str,
    cluster: &str,
    node: &str,
) -> Result<bool, Error> {
    let Some(client) = ctx
        .remote
        .recent(&ctx.client, ns, cluster, std::time::Duration::from_secs(60))
        .await?
    else {
        return Ok(false);
    };
    let cms: Api<ConfigMap> = Api::namespaced(client, "kube-system");
    let Some(cm) = cms.get_opt(ETCD_MEMBERS).await? else {
        return Ok(true);
    };
    if cm.data.as_ref().is_some_and(|d| d.contains_key(node)) {
        cms.patch(
            ETCD_MEMBERS,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"data": {node: null}})),
        )
        .await?;
        tracing::info!(%cluster, %node, "removed the etcd member");
    }
    Ok(true)
}

/// Reads the control-plane Pods and the etcd members of `cluster`. Machines being deleted are
/// left out: their member is removed before deletion, so their health is no longer etcd's.
pub async fn observe(ctx: &Context, ns: &str, cluster: &str, machines: &[Machine]) -> Observed {
    let mut o = Observed {
        machines: machines
            .iter()
            .filter(|m| m.metadata.deletion_timestamp.is_none())
            .map(|m| {
                (
                    m.name_any(),
                    m.status
                        .as_ref()
                        .and_then(|s| s.node_ref.as_ref())
                        .map(|n| n.name.clone()),
                )
            })
            .collect(),
        ..Default::default()
    };
    let client = match ctx
        .remote
        .recent(&ctx.client, ns, cluster, std::time::Duration::from_secs(60))
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => {
            o.error = Some("no kubeconfig for the workload cluster yet".into());
            return o;
        }
        Err(e) => {
            o.error = Some(e.to_string());
            return o;
        }
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    match pods
        .list(&ListParams::default().labels("tier=control-plane"))
        .await
    {
        Ok(l) => {
            o.pods = Some(l.items.iter().map(|p| (p.name_any(), healthy(p))).collect());
        }
        Err(e) => {
            o.error = Some(format!("listing the control-plane Pods: {e}"));
            return o;
        }
    }
    let cms: Api<ConfigMap> = Api::namespaced(client, "kube-system");
    if let Ok(Some(cm)) = cms.get_opt(ETCD_MEMBERS).await {
        o.members = Some(cm.data.unwrap_or_default().into_keys().collect());
    }
    o
}

fn pod_line(o: &Observed, component: &str, node: &str) -> Option<String> {
    let pods = o.pods.as_ref()?;
    match pods.get(&format!("{component}-{node}")) {
        Some(true) => None,
        Some(false) => Some(format!("Pod {component}-{node} is not Running and Ready")),
        None => Some(format!("Pod {component}-{node} is missing")),
    }
}

fn verdict(type_: &str, o: &Observed, problems: Vec<String>, waiting: usize) -> Desired {
    if let Some(e) = &o.error {
        return desired(
            type_,
            Status::Unknown,
            reasons::INSPECTION_FAILED,
            format!("Failed to inspect the workload cluster: {e}"),
        );
    }
    if !problems.is_empty() {
        return desired(
            type_,
            Status::False,
            reasons::NOT_HEALTHY,
            problems.join("\n"),
        );
    }
    if waiting > 0 || o.machines.is_empty() {
        return desired(
            type_,
            Status::Unknown,
            reasons::HEALTH_UNKNOWN,
            format!("{waiting} control-plane machines have no Node yet"),
        );
    }
    desired(type_, Status::True, reasons::HEALTHY, "")
}

/// EtcdClusterHealthy and ControlPlaneComponentsHealthy.
pub fn conditions(o: &Observed) -> [Desired; 2] {
    let waiting = o.machines.iter().filter(|(_, n)| n.is_none()).count();
    let mut etcd = Vec::new();
    let mut components = Vec::new();
    for (machine, node) in &o.machines {
        let Some(node) = node else { continue };
        let mut e: Vec<String> = pod_line(o, "etcd", node).into_iter().collect();
        if let Some(members) = &o.members
            && !members.contains(node)
        {
            e.push(format!("Node {node} is not an etcd member"));
        } else if o.members.is_none() && o.pods.is_some() {
            e.push("the etcd member list is not available".into());
        }
        if !e.is_empty() {
            etcd.push(format!("* Machine {machine}: {}", e.join("; ")));
        }
        let c: Vec<String> = [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ]
        .iter()
        .filter_map(|c| pod_line(o, c, node))
        .collect();
        if !c.is_empty() {
            components.push(format!("* Machine {machine}: {}", c.join("; ")));
        }
    }
    for m in o.orphan_members() {
        etcd.push(format!(
            "* Etcd member {m} does not have a corresponding Machine"
        ));
    }
    [
        verdict(ct::ETCD_CLUSTER_HEALTHY, o, etcd, waiting),
        verdict(ct::CONTROL_PLANE_COMPONENTS_HEALTHY, o, components, waiting),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs() -> Observed {
        let mut pods = BTreeMap::new();
        for c in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "etcd",
        ] {
            pods.insert(format!("{c}-n1"), true);
            pods.insert(format!("{c}-n2"), true);
        }
        Observed {
            machines: vec![
                ("m1".into(), Some("n1".into())),
                ("m2".into(), Some("n2".into())),
            ],
            pods: Some(pods),
            members: Some(vec!["n1".into(), "n2".into()]),
            error: None,
        }
    }

    #[test]
    fn healthy_when_every_node_runs_its_pods_and_is_a_member() {
        let [e, c] = conditions(&obs());
        assert_eq!((e.status, c.status), (Status::True, Status::True));
        assert_eq!(e.reason, "Healthy");
    }

    #[test]
    fn problems_are_named_per_machine() {
        let mut o = obs();
        o.pods
            .as_mut()
            .unwrap()
            .insert("kube-scheduler-n2".into(), false);
        o.pods.as_mut().unwrap().remove("etcd-n1");
        o.members = Some(vec!["n2".into()]);
        let [e, c] = conditions(&o);
        assert_eq!(
            (e.status, e.reason.as_str(), e.message.as_str()),
            (
                Status::False,
                "NotHealthy",
                "* Machine m1: Pod etcd-n1 is missing; Node n1 is not an etcd member"
            )
        );
        assert_eq!(
            c.message,
            "* Machine m2: Pod kube-scheduler-n2 is not Running and Ready"
        );
    }

    #[test]
    fn a_member_without_a_machine_is_reported() {
        let mut o = obs();
        o.members = Some(vec!["n0".into(), "n1".into(), "n2".into()]);
        assert_eq!(o.orphan_members(), vec!["n0"]);
        let [e, c] = conditions(&o);
        assert_eq!(
            (e.status, e.message.as_str()),
            (
                Status::False,
                "* Etcd member n0 does not have a corresponding Machine"
            )
        );
        assert_eq!(c.status, Status::True);
        o.members = Some(vec!["n1".into(), "n2".into()]);
        assert!(o.orphan_members().is_empty());
    }

    #[test]
    fn unknown_when_unreachable_or_not_joined() {
        let mut o = obs();
        o.error = Some("connection refused".into());
        let [e, _] = conditions(&o);
        assert_eq!(
            (e.status, e.reason.as_str()),
            (Status::Unknown, "InspectionFailed")
        );
        let mut o = obs();
        o.machines.push(("m3".into(), None));
        let [e, _] = conditions(&o);
        assert_eq!(
            (e.status, e.reason.as_str()),
            (Status::Unknown, "HealthUnknown")
        );
    }
}
