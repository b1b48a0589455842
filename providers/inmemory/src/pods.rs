//! What a kubelet and kubeadm leave in a workload cluster beyond the Node, so kubectl and the
//! control plane's health checks read a simulated cluster as a real one: the static
//! control-plane Pods of each control-plane Node (`kube-system/<component>-<node>`, Running and
//! Ready), its etcd member (ConfigMap `kube-system/slipway-etcd-members`, one key per member
//! Node: what `etcdctl member list` reports on a kubeadm cluster) and the `default/kubernetes`
//! Service. The static Pods carry the kubelet's mirror-Pod annotation, so drains skip them.

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use slipway_providers::ProviderError;

use crate::workload::Workload;

/// The static Pods of a kubeadm control-plane Node.
pub const COMPONENTS: [&str; 4] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
];

/// Where the etcd members are listed.
pub const ETCD_MEMBERS: &str = "slipway-etcd-members";

fn err(what: &'static str) -> impl Fn(kube::Error) -> ProviderError {
    move |e| ProviderError::transient(format!("{what}: {e}"))
}

/// The static Pods and etcd member of control-plane Node `node` at `version`.
pub async fn control_plane(
    w: &Workload,
    node: &str,
    version: &str,
    address: &str,
) -> Result<(), ProviderError> {
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), "kube-system");
    let now = jiff::Timestamp::now().to_string();
    let pp = PatchParams::apply("slipway-in-memory-kubelet").force();
    for c in COMPONENTS {
        let name = format!("{c}-{node}");
        let image = if c == "etcd" {
            "registry.k8s.io/etcd:3.5.15-0".to_string()
        } else {
            format!("registry.k8s.io/{c}:{version}")
        };
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "kube-system",
                         "labels": {"component": c, "tier": "control-plane"},
                         "annotations": {"kubernetes.io/config.source": "file",
                                         "kubernetes.io/config.mirror": format!("{c}-{node}")}},
            "spec": {"nodeName": node, "priorityClassName": "system-node-critical", "hostNetwork": true,
                     "containers": [{"name": c, "image": image}]},
        });
        pods.patch(&name, &pp, &Patch::Apply(&pod))
            .await
            .map_err(err("static pod"))?;
        let status = json!({"apiVersion": "v1", "kind": "Pod", "status": {
            "phase": "Running", "podIP": address, "hostIP": address, "startTime": now,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now},
                           {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}],
            "containerStatuses": [{"name": c, "image": image, "imageID": "", "ready": true, "started": true,
                                   "restartCount": 0, "state": {"running": {"startedAt": now}}}],
        }});
        pods.patch_status(&name, &pp, &Patch::Apply(&status))
            .await
            .map_err(err("static pod status"))?;
    }
    let cms: Api<ConfigMap> = Api::namespaced(w.client.clone(), "kube-system");
    let member = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": ETCD_MEMBERS, "namespace": "kube-system"},
        "data": {node: format!("https://{address}:2379")},
    });
    // Server-side apply with a field manager per member: members add up, none is lost.
    cms.patch(
        ETCD_MEMBERS,
        &PatchParams::apply(&format!("etcd-member-{node}")).force(),
        &Patch::Apply(&member),
    )
    .await
    .map_err(err("etcd member"))?;
    Ok(())
}

/// The `default/kubernetes` Service kube-apiserver keeps.
pub async fn kubernetes_service(w: &Workload) -> Result<(), ProviderError> {
    let svcs: Api<Service> = Api::namespaced(w.client.clone(), "default");
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": w.addr.port()}]},
    });
    svcs.patch(
        "kubernetes",
        &PatchParams::apply("kube-apiserver").force(),
        &Patch::Apply(&svc),
    )
    .await
    .map_err(err("kubernetes service"))?;
    Ok(())
}
