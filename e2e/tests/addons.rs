//! ClusterResourceSets end to end, driven by kubectl against `slipway up` with the in-memory
//! provider: a template shaped like CAPA's `cluster-template.yaml` (v1beta1
//! ClusterResourceSets selecting the Cluster by its `cni` and `ccm` labels, their ConfigMaps
//! holding multi-document manifests) applies unmodified; the addon objects appear in the
//! workload cluster; `Reconcile` re-applies a changed Secret while `ApplyOnce` leaves its
//! objects alone; failures name the object; a Cluster leaving the selector stops being managed.
//! Needs `kubectl` on PATH.

use std::{process::Command, time::Duration};

use serde_json::Value;
use slipway_testsupport::*;

const CNI: &str = r#"---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cni-demo-crs-0
data:
  calico.yaml: |
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: ippools.crd.projectcalico.org
    spec:
      group: crd.projectcalico.org
      names: {kind: IPPool, listKind: IPPoolList, plural: ippools, singular: ippool}
      scope: Cluster
      versions:
      - name: v1
        served: true
        storage: true
        schema:
          openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
    ---
    apiVersion: v1
    kind: ServiceAccount
    metadata: {name: calico-node, namespace: kube-system}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: calico-config, namespace: kube-system}
    data: {calico_backend: bird}
    ---
    apiVersion: v1
    kind: Secret
    metadata: {name: calico-etcd-secrets, namespace: kube-system}
    type: Opaque
    stringData: {etcd-key: none}
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRole
    metadata: {name: calico-node}
    rules:
    - apiGroups: [""]
      resources: [pods, nodes, namespaces]
      verbs: [get, list, watch]
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRoleBinding
    metadata: {name: calico-node}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: calico-node}
    subjects:
    - {kind: ServiceAccount, name: calico-node, namespace: kube-system}
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: Role
    metadata: {name: calico-leader, namespace: kube-system}
    rules:
    - apiGroups: [coordination.k8s.io]
      resources: [leases]
      verbs: [get, update]
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: RoleBinding
    metadata: {name: calico-leader, namespace: kube-system}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: calico-leader}
    subjects:
    - {kind: ServiceAccount, name: calico-node, namespace: kube-system}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: calico-typha, namespace: kube-system}
    spec:
      ports:
      - {port: 5473, name: calico-typha}
      selector: {k8s-app: calico-typha}
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: calico-kube-controllers, namespace: kube-system}
    spec:
      replicas: 1
      selector: {matchLabels: {k8s-app: calico-kube-controllers}}
      template:
        metadata: {labels: {k8s-app: calico-kube-controllers}}
        spec:
          serviceAccountName: calico-node
          containers:
          - {name: calico-kube-controllers, image: docker.io/calico/kube-controllers:v3.29.1}
    ---
    apiVersion: apps/v1
    kind: DaemonSet
    metadata: {name: calico-node, namespace: kube-system}
    spec:
      selector: {matchLabels: {k8s-app: calico-node}}
      template:
        metadata: {labels: {k8s-app: calico-node}}
        spec:
          serviceAccountName: calico-node
          containers:
          - {name: calico-node, image: docker.io/calico/node:v3.29.1}
---
apiVersion: addons.cluster.x-k8s.io/v1beta1
kind: ClusterResourceSet
metadata:
  name: crs-cni
spec:
  clusterSelector:
    matchLabels:
      cni: demo-crs-0
  resources:
  - kind: ConfigMap
    name: cni-demo-crs-0
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cloud-controller-manager-addon
data:
  aws-ccm-external.yaml: |
    apiVersion: v1
    kind: ServiceAccount
    metadata: {name: cloud-controller-manager, namespace: kube-system}
    ---
    apiVersion: apps/v1
    kind: DaemonSet
    metadata:
      name: aws-cloud-controller-manager
      namespace: kube-system
      labels: {k8s-app: aws-cloud-controller-manager}
    spec:
      selector: {matchLabels: {k8s-app: aws-cloud-controller-manager}}
      template:
        metadata: {labels: {k8s-app: aws-cloud-controller-manager}}
        spec:
          serviceAccountName: cloud-controller-manager
          containers:
          - {name: aws-cloud-controller-manager, image: registry.k8s.io/provider-aws/cloud-controller-manager:v1.31.1}
---
apiVersion: addons.cluster.x-k8s.io/v1beta1
kind: ClusterResourceSet
metadata:
  name: crs-ccm
spec:
  clusterSelector:
    matchLabels:
      ccm: external
  resources:
  - kind: ConfigMap
    name: cloud-controller-manager-addon
  strategy: ApplyOnce
"#;

/// A `Reconcile` set fed by a resource-set Secret, and a set whose resources fail.
const MORE: &str = r#"---
apiVersion: v1
kind: Secret
metadata:
  name: addon-settings
type: addons.cluster.x-k8s.io/resource-set
stringData:
  settings.yaml: |
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: addon-settings, namespace: kube-system}
    data: {mode: first}
---
apiVersion: addons.cluster.x-k8s.io/v1beta2
kind: ClusterResourceSet
metadata:
  name: crs-settings
spec:
  clusterSelector:
    matchExpressions:
    - {key: cni, operator: Exists}
  resources:
  - {kind: Secret, name: addon-settings}
  strategy: Reconcile
---
apiVersion: v1
kind: Secret
metadata:
  name: plain-secret
type: Opaque
stringData:
  x.yaml: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: never}\n"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: widgets
data:
  w.yaml: |
    apiVersion: v1
    kind: ServiceAccount
    metadata: {name: before-widget, namespace: kube-system}
    ---
    apiVersion: example.com/v1
    kind: Widget
    metadata: {name: w1, namespace: kube-system}
---
apiVersion: addons.cluster.x-k8s.io/v1beta2
kind: ClusterResourceSet
metadata:
  name: crs-broken
spec:
  clusterSelector:
    matchLabels: {ccm: external}
  resources:
  - {kind: Secret, name: plain-secret}
  - {kind: ConfigMap, name: widgets}
"#;

fn generate_labelled() -> String {
    let out = Command::new(slipway_bin())
        .args([
            "generate",
            "cluster",
            "demo",
            "--infrastructure",
            "in-memory",
        ])
        .args(["--control-plane-machine-count", "1"])
        .args(["--worker-machine-count", "0"])
        .args(["--kubernetes-version", "v1.31.0"])
        .args(["--label", "cni=demo-crs-0", "--label", "ccm=external"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn applied_condition(m: &Mgmt, crs: &str) -> Option<(String, String, String)> {
    let c = m.json(&[
        "get",
        "clusterresourcesets.v1beta2.addons.cluster.x-k8s.io",
        crs,
    ]);
    c["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "ResourcesApplied")
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("status"), s("reason"), s("message"))
        })
}

fn binding(m: &Mgmt) -> Value {
    m.json(&[
        "get",
        "clusterresourcesetbindings.v1beta2.addons.cluster.x-k8s.io",
        "demo",
    ])
}

fn entry(b: &Value, crs: &str) -> Option<Value> {
    b["spec"]["bindings"]
        .as_array()?
        .iter()
        .find(|e| e["clusterResourceSetName"] == crs)
        .cloned()
}

fn workload_json(m: &Mgmt, kc: &std::path::Path, args: &[&str]) -> Result<Value, String> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = m.kubectl_with(kc, &all, None);
    if !out.status.success() {
        return Err(text(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

#[test]
fn a_capa_shaped_template_with_cluster_resource_sets_installs_its_addons() {
    let m = Mgmt::start("addons", false);
    let mut manifest = generate_labelled();
    manifest.push_str(CNI);
    m.ok(&["apply", "-f", "-"], Some(&manifest));
    for crs in ["crs-cni", "crs-ccm"] {
        eventually(120, &format!("{crs} applied"), || {
            match applied_condition(&m, crs) {
                Some((s, _, _)) if s == "True" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }
    let kc = m.workload_kubeconfig("demo");
    // Every addon kind is there, read back with kubectl from the workload cluster.
    for args in [
        &["get", "crd", "ippools.crd.projectcalico.org"][..],
        &["get", "serviceaccount", "-n", "kube-system", "calico-node"],
        &["get", "configmap", "-n", "kube-system", "calico-config"],
        &["get", "secret", "-n", "kube-system", "calico-etcd-secrets"],
        &["get", "clusterrole", "calico-node"],
        &["get", "clusterrolebinding", "calico-node"],
        &["get", "role", "-n", "kube-system", "calico-leader"],
        &["get", "rolebinding", "-n", "kube-system", "calico-leader"],
        &["get", "service", "-n", "kube-system", "calico-typha"],
        &[
            "get",
            "deployment",
            "-n",
            "kube-system",
            "calico-kube-controllers",
        ],
        &["get", "daemonset", "-n", "kube-system", "calico-node"],
        &[
            "get",
            "daemonset",
            "-n",
            "kube-system",
            "aws-cloud-controller-manager",
        ],
    ] {
        let mut with_fields = args.to_vec();
        with_fields.push("--show-managed-fields");
        let obj = workload_json(&m, &kc, &with_fields).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let managers: Vec<&str> = obj["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["operation"] == "Apply")
            .filter_map(|f| f["manager"].as_str())
            .collect();
        // A bare ServiceAccount owns no field but its identity: no managedFields entry.
        let want: &[&str] = if args[1] == "serviceaccount" {
            &[]
        } else {
            &["slipway-clusterresourceset"]
        };
        assert_eq!(
            managers, want,
            "{args:?}: server-side applied: {:#}",
            obj["metadata"]
        );
    }
    // The binding records both sets, applied, with their hashes; the ConfigMaps are owned by
    // their sets.
    let b = binding(&m);
    assert_eq!(b["spec"]["clusterName"], "demo");
    for crs in ["crs-cni", "crs-ccm"] {
        let e = entry(&b, crs).unwrap_or_else(|| panic!("{crs} in {b:#}"));
        let r = &e["resources"][0];
        assert_eq!(r["applied"], true, "{e:#}");
        assert!(r["hash"].as_str().unwrap().starts_with("sha256:"), "{e:#}");
        assert!(r["lastAppliedTime"].is_string(), "{e:#}");
    }
    let cm = m.json(&["get", "configmap", "cni-demo-crs-0"]);
    assert_eq!(
        cm["metadata"]["ownerReferences"][0]["kind"],
        "ClusterResourceSet"
    );
    // Served at v1beta1 too, as the template applied it.
    let v1 = m.json(&[
        "get",
        "clusterresourcesets.v1beta1.addons.cluster.x-k8s.io",
        "crs-cni",
    ]);
    assert_eq!(v1["apiVersion"], "addons.cluster.x-k8s.io/v1beta1");

    // Reconcile re-applies a changed Secret; ApplyOnce leaves a changed ConfigMap's objects.
    m.ok(&["apply", "-f", "-"], Some(MORE));
    eventually(60, "first settings applied", || {
        let cm = workload_json(
            &m,
            &kc,
            &["get", "cm", "-n", "kube-system", "addon-settings"],
        )?;
        (cm["data"]["mode"] == "first")
            .then_some(())
            .ok_or(format!("{cm}"))
    });
    let first_hash = entry(&binding(&m), "crs-settings").unwrap()["resources"][0]["hash"].clone();
    let patched_cni = CNI.replace("calico_backend: bird", "calico_backend: vxlan");
    m.ok(&["apply", "-f", "-"], Some(&patched_cni));
    m.ok(
        &["apply", "-f", "-"],
        Some(&MORE.replace("mode: first", "mode: second")),
    );
    eventually(60, "second settings applied", || {
        let cm = workload_json(
            &m,
            &kc,
            &["get", "cm", "-n", "kube-system", "addon-settings"],
        )?;
        (cm["data"]["mode"] == "second")
            .then_some(())
            .ok_or(format!("{cm}"))
    });
    let second_hash = entry(&binding(&m), "crs-settings").unwrap()["resources"][0]["hash"].clone();
    assert_ne!(first_hash, second_hash, "the binding records the new hash");
    std::thread::sleep(Duration::from_secs(3));
    let calico = workload_json(
        &m,
        &kc,
        &["get", "cm", "-n", "kube-system", "calico-config"],
    )
    .unwrap();
    assert_eq!(
        calico["data"]["calico_backend"], "bird",
        "ApplyOnce applies once"
    );

    // Failures name the cluster, the resource and the object.
    let (status, reason, message) =
        eventually(60, "crs-broken reports", || {
            match applied_condition(&m, "crs-broken") {
                Some(c) if c.0 == "False" => Ok(c),
                other => Err(format!("{other:?}")),
            }
        });
    assert_eq!((status.as_str(), reason.as_str()), ("False", "NotApplied"));
    assert!(
        message
            .contains("Cluster demo: Secret plain-secret: Secret type \"Opaque\" is not supported"),
        "{message}"
    );
    assert!(
        message.contains(
            "Cluster demo: ConfigMap widgets: Widget w1: example.com/v1 Widget is not served"
        ),
        "{message}"
    );
    let broken = entry(&binding(&m), "crs-broken").unwrap();
    let widgets = broken["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "widgets")
        .cloned()
        .unwrap();
    assert_eq!(widgets["applied"], false, "{broken:#}");

    // A Cluster leaving the selector stops being managed: the entry goes, the objects stay.
    m.ok(&["label", "cluster", "demo", "cni-"], None);
    eventually(60, "crs-cni and crs-settings leave the binding", || {
        let b = binding(&m);
        (entry(&b, "crs-cni").is_none() && entry(&b, "crs-settings").is_none())
            .then_some(())
            .ok_or(format!("{b:#}"))
    });
    assert!(entry(&binding(&m), "crs-ccm").is_some());
    workload_json(
        &m,
        &kc,
        &["get", "daemonset", "-n", "kube-system", "calico-node"],
    )
    .unwrap();

    // Deleting a set removes its entry; the last one leaving deletes the binding.
    m.ok(
        &["delete", "clusterresourceset", "crs-broken", "crs-ccm"],
        None,
    );
    eventually(60, "the binding goes", || {
        let out = m.kubectl_with(
            &m.kubeconfig,
            &["get", "clusterresourcesetbindings", "demo"],
            None,
        );
        (!out.status.success())
            .then_some(())
            .ok_or(text(&out.stdout))
    });
}
