//! clusterctl-style operations behind the CLI: `get kubeconfig` (and merging it into a
//! kubeconfig file), `describe cluster` (a condition tree), `delete cluster` and `init` (the
//! manifests that install slipway into a cluster). Pure renderers are separate from the
//! calls that gather their input, and are tested on their own.

use std::{collections::BTreeMap, io::IsTerminal};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
    discovery::ApiResource,
};
use serde_json::{Value, json};
use slipway_api::{
    Cluster, Machine, MachineDeployment,
    common::Condition,
    names::{conditions, labels, secrets},
};

use slipway_runtime::refs::Resolver;

use crate::OpsError;

/// The `<cluster>-kubeconfig` Secret's kubeconfig.
pub async fn kubeconfig(client: &Client, ns: &str, name: &str) -> Result<String, OpsError> {
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    let secret_name = secrets::name(name, secrets::KUBECONFIG_SUFFIX);
    let s = api
        .get_opt(&secret_name)
        .await?
        .ok_or_else(|| OpsError::NotFound {
            object: format!("Secret {ns}/{secret_name}"),
            hint: Some(format!(
                "cluster {name:?} has no kubeconfig yet (or does not exist in namespace {ns:?})"
            )),
        })?;
    let v = s
        .data
        .and_then(|d| d.get(secrets::VALUE_KEY).cloned())
        .ok_or_else(|| {
            OpsError::invalid(
                format!("Secret {ns}/{secret_name}"),
                format!("no key {:?}", secrets::VALUE_KEY),
            )
        })?;
    String::from_utf8(v.0)
        .map_err(|_| OpsError::invalid(format!("Secret {ns}/{secret_name}"), "not UTF-8"))
}

/// Merges `add` (a kubeconfig) into `existing` (a kubeconfig file's text, maybe empty): its
/// clusters, users and contexts replace same-named entries and are added otherwise; the
/// existing current-context is kept (set to the new one only when there was none).
pub fn merge_kubeconfig(existing: &str, add: &str) -> Result<String, OpsError> {
    let mut base: Value = if existing.trim().is_empty() {
        json!({"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []})
    } else {
        serde_saphyr::from_str(existing)
            .map_err(|e| OpsError::invalid("the existing kubeconfig", e))?
    };
    let add: Value = serde_saphyr::from_str(add)
        .map_err(|e| OpsError::invalid("the cluster's kubeconfig", e))?;
    for list in ["clusters", "users", "contexts"] {
        let target = base[list].as_array().cloned().unwrap_or_default();
        let mut merged: Vec<Value> = target;
        for entry in add[list].as_array().into_iter().flatten() {
            match merged.iter_mut().find(|e| e["name"] == entry["name"]) {
                Some(e) => *e = entry.clone(),
                None => merged.push(entry.clone()),
            }
        }
        base[list] = Value::Array(merged);
    }
    if base["current-context"].as_str().is_none_or(str::is_empty) {
        base["current-context"] = add["current-context"].clone();
    }
    serde_saphyr::to_string(&base).map_err(|e| OpsError::invalid("the merged kubeconfig", e))
}

/// One line of the describe tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// `Kind/name`, maybe with a role prefix.
    pub label: String,
    /// Status, reason and message of its Ready (or Available) condition.
    pub ready: Option<(String, String, String)>,
    /// Children.
    pub children: Vec<Node>,
}

fn ready_of(conds: Option<&Vec<Condition>>, types: &[&str]) -> Option<(String, String, String)> {
    let conds = conds?;
    types.iter().find_map(|t| {
        conds
            .iter()
            .find(|c| c.type_ == *t)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    })
}

fn ready_of_value(obj: &Value, types: &[&str]) -> Option<(String, String, String)> {
    let conds: Vec<Condition> =
        serde_json::from_value(obj.pointer("/status/conditions")?.clone()).ok()?;
    ready_of(Some(&conds), types)
}

/// Renders the tree: NAME, READY, and for what is not ready its reason and message.
pub fn render_tree(root: &Node, color: bool) -> String {
    fn walk<'a>(
        n: &'a Node,
        prefix: &str,
        last: bool,
        top: bool,
        rows: &mut Vec<(String, &'a Node)>,
    ) {
        let branch = if top {
            String::new()
        } else if last {
            format!("{prefix}└─")
        } else {
            format!("{prefix}├─")
        };
        rows.push((format!("{branch}{}", n.label), n));
        let child_prefix = if top {
            String::new()
        } else if last {
            format!("{prefix}  ")
        } else {
            format!("{prefix}│ ")
        };
        for (i, c) in n.children.iter().enumerate() {
            walk(c, &child_prefix, i + 1 == n.children.len(), false, rows);
        }
    }
    let mut rows = vec![];
    walk(root, "", true, true, &mut rows);
    let width = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!("{:width$}  READY  REASON / MESSAGE\n", "NAME");
    for (label, n) in rows {
        let pad = width - label.chars().count();
        let (status, detail) = match &n.ready {
            None => (String::new(), String::new()),
            Some((s, _, _)) if s == "True" => (s.clone(), String::new()),
            Some((s, r, m)) if m.is_empty() => (s.clone(), r.clone()),
            Some((s, r, m)) => (s.clone(), format!("{r}: {m}")),
        };
        let shown = if color && !status.is_empty() {
            let code = match status.as_str() {
                "True" => "32",
                "False" => "31",
                _ => "33",
            };
            format!("\x1b[{code}m{status:5}\x1b[0m")
        } else {
            format!("{status:5}")
        };
        out.push_str(
            format!("{label}{}  {shown}  {detail}", " ".repeat(pad))
                .trim_end()
                .trim_end_matches(' '),
        );
        out.push('\n');
    }
    out
}

/// Whether to colour output: a terminal, and NO_COLOR unset.
pub fn use_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A Machine's row: its Ready condition, or, when a MachineHealthCheck found it unhealthy,
/// why (and what its owner's remediation is doing), on one line.
fn machine_node(m: &Machine) -> Node {
    let conds = m.status.as_ref().and_then(|s| s.conditions.as_ref());
    let find = |t: &str| {
        conds
            .into_iter()
            .flatten()
            .find(|c| c.type_ == t && c.status == "False")
    };
    let one_line = |s: &str| {
        s.lines()
            .map(|l| l.trim().trim_start_matches("* ").trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    };
    if let Some(hc) = find("HealthCheckSucceeded") {
        let mut message = one_line(&hc.message);
        if let Some(or) = find("OwnerRemediated") {
            message.push_str(&format!(
                "; remediation: {} ({})",
                or.reason,
                one_line(&or.message)
            ));
        }
        return Node {
            label: format!("Machine/{} (unhealthy)", m.name_any()),
            ready: Some(("False".into(), hc.reason.clone(), message)),
            children: vec![],
        };
    }
    Node {
        label: format!("Machine/{}", m.name_any()),
        ready: ready_of(conds, &["Ready"]),
        children: vec![],
    }
}

/// Label of a MachineDeployment the topology controller manages, naming its topology name.
const TOPOLOGY_DEPLOYMENT: &str = "topology.cluster.x-k8s.io/deployment-name";

/// Where an object of a topology stands against `spec.topology.version`: still on an older
/// version (the topology controller holds it back until its turn), rolling out, or done.
pub fn topology_state(version: &str, target: &str, rolling: bool) -> String {
    if version != target {
        format!("{version}, upgrade to {target} pending")
    } else if rolling {
        format!("upgrading to {target}")
    } else {
        format!("{target}, up to date")
    }
}

/// Gathers a Cluster's tree: Cluster -> its ClusterClass and topology state (for a topology
/// Cluster), infrastructure, control plane -> its machines, workers -> MachineDeployments ->
/// their machines, MachinePools -> their Nodes (and machines of no deployment).
pub async fn describe(client: &Client, ns: &str, name: &str) -> Result<Node, OpsError> {
    let cluster = Api::<Cluster>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
        .ok_or_else(|| OpsError::NotFound {
            object: format!("Cluster {ns}/{name}"),
            hint: None,
        })?;
    let resolver = Resolver::new(client.clone());
    let machines = Api::<Machine>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("{}={name}", labels::CLUSTER_NAME)))
        .await?
        .items;
    let mut children = vec![];
    let topology = cluster.spec.topology.as_ref();
    if let Some(t) = topology {
        let class_ns = t.class_ref.namespace.as_deref().unwrap_or(ns);
        children.push(Node {
            label: format!(
                "ClusterClass {class_ns}/{} (topology {})",
                t.class_ref.name, t.version
            ),
            ready: ready_of(
                cluster.status.as_ref().and_then(|s| s.conditions.as_ref()),
                &[conditions::TOPOLOGY_RECONCILED],
            ),
            children: vec![],
        });
    }
    let target = topology.map(|t| t.version.as_str());
    if let Some(r) = &cluster.spec.infrastructure_ref {
        let ready = match resolver.get(ns, r).await {
            Ok(Some(o)) => ready_of_value(&o.data, &["Ready"]),
            Ok(None) => Some((
                "False".into(),
                "RefNotFound".into(),
                "does not exist".into(),
            )),
            // The Cluster's own condition says which kind is missing; show it, not an error.
            Err(slipway_runtime::Error::UnservedKind { group, kind }) => Some((
                "False".into(),
                "KindNotServed".into(),
                format!("no CustomResourceDefinition serves kind {kind} of apiGroup {group}"),
            )),
            Err(e) => return Err(e.into()),
        };
        children.push(Node {
            label: format!("ClusterInfrastructure {}/{}", r.kind, r.name),
            ready,
            children: vec![],
        });
    }
    if let Some(r) = &cluster.spec.control_plane_ref {
        let obj = resolver.get(ns, r).await?;
        let mut label = format!("ControlPlane {}/{}", r.kind, r.name);
        if let (Some(target), Some(o)) = (target, &obj) {
            let int = |p: &str| o.data.pointer(p).and_then(Value::as_i64);
            let version = o.data.pointer("/spec/version").and_then(Value::as_str);
            let rolling = o.data.pointer("/status/version").and_then(Value::as_str) != version
                || int("/status/upToDateReplicas") != int("/spec/replicas")
                || int("/status/replicas") != int("/spec/replicas");
            label.push_str(&format!(
                " ({})",
                topology_state(version.unwrap_or_default(), target, rolling)
            ));
        }
        children.push(Node {
            label,
            ready: obj
                .as_ref()
                .map(|o| ready_of_value(&o.data, &["Available", "Ready"]))
                .unwrap_or(Some((
                    "False".into(),
                    "RefNotFound".into(),
                    "does not exist".into(),
                ))),
            children: machines
                .iter()
                .filter(|m| m.labels().contains_key(labels::CONTROL_PLANE))
                .map(machine_node)
                .collect(),
        });
    }
    let mds = Api::<MachineDeployment>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("{}={name}", labels::CLUSTER_NAME)))
        .await?
        .items;
    let mut workers = vec![];
    for md in &mds {
        let mut label = format!("MachineDeployment/{}", md.name_any());
        if let (Some(target), Some(topology_name)) = (target, md.labels().get(TOPOLOGY_DEPLOYMENT))
        {
            let st = md.status.clone().unwrap_or_default();
            let want = md.spec.replicas;
            let rolling = st.replicas != want || st.up_to_date_replicas != want;
            let version = md.spec.template.spec.version.as_deref().unwrap_or_default();
            label.push_str(&format!(
                " (topology {topology_name}: {})",
                topology_state(version, target, rolling)
            ));
        }
        workers.push(Node {
            label,
            ready: ready_of(
                md.status.as_ref().and_then(|s| s.conditions.as_ref()),
                &["Available"],
            ),
            children: machines
                .iter()
                .filter(|m| m.labels().get(labels::MACHINE_DEPLOYMENT_NAME) == Some(&md.name_any()))
                .map(machine_node)
                .collect(),
        });
    }
    let pools = Api::<slipway_api::MachinePool>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items;
    for p in pools.iter().filter(|p| p.spec.cluster_name == name) {
        let s = p.status.clone().unwrap_or_default();
        workers.push(Node {
            label: format!(
                "MachinePool/{} ({}/{} ready)",
                p.name_any(),
                s.ready_replicas.unwrap_or(0),
                p.spec.desired()
            ),
            ready: ready_of(s.conditions.as_ref(), &["Available"]),
            children: s
                .node_refs
                .iter()
                .flatten()
                .filter_map(|r| r.name.as_ref())
                .map(|n| Node {
                    label: format!("Node/{n}"),
                    ready: None,
                    children: vec![],
                })
                .collect(),
        });
    }
    workers.extend(
        machines
            .iter()
            .filter(|m| {
                !m.labels().contains_key(labels::CONTROL_PLANE)
                    && !m.labels().contains_key(labels::MACHINE_DEPLOYMENT_NAME)
            })
            .map(machine_node),
    );
    if !workers.is_empty() {
        children.push(Node {
            label: "Workers".into(),
            ready: None,
            children: workers,
        });
    }
    Ok(Node {
        label: format!("Cluster/{name}"),
        ready: ready_of(
            cluster.status.as_ref().and_then(|s| s.conditions.as_ref()),
            &["Available"],
        ),
        children,
    })
}

/// Deletes a Cluster; with `wait`, reports progress on `progress` until it is gone.
pub async fn delete_cluster(
    client: &Client,
    ns: &str,
    name: &str,
    wait: Option<std::time::Duration>,
    progress: &mut dyn FnMut(String),
) -> Result<(), OpsError> {
    let api: Api<Cluster> = Api::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {
            return Err(OpsError::NotFound {
                object: format!("Cluster {ns}/{name}"),
                hint: None,
            });
        }
        Err(e) => return Err(e.into()),
    }
    progress(format!("cluster {ns}/{name} deletion requested"));
    let Some(timeout) = wait else {
        return Ok(());
    };
    let machines: Api<Machine> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let Some(c) = api.get_opt(name).await? else {
            progress(format!("cluster {ns}/{name} deleted"));
            return Ok(());
        };
        let left = machines
            .list(&ListParams::default().labels(&format!("{}={name}", labels::CLUSTER_NAME)))
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        let waiting = ready_of(
            c.status.as_ref().and_then(|s| s.conditions.as_ref()),
            &["Deleting"],
        )
        .map(|(_, r, m)| format!("{r}: {m}"))
        .unwrap_or_default();
        let line = if waiting.is_empty() {
            format!("{left} machines left")
        } else {
            format!("{left} machines left; {waiting}")
        };
        if line != last {
            progress(line.clone());
            last = line;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(OpsError::Timeout {
                what: format!("cluster {ns}/{name} still exists ({last})"),
                after: timeout,
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// The port the installed controller serves the conversion webhook on (behind the Service's
/// 443).
pub const WEBHOOK_PORT: u16 = 9443;

/// The namespace `slipway init` installs into.
pub const SYSTEM_NAMESPACE: &str = "slipway-system";

/// What the controller asks of its node. Sized from `slipway bench` (README, "Benchmarks"):
/// 1000 in-memory clusters (plane excluded, simulated workload servers included) peak under
/// 1 GiB and idle at under 2 % of a core; real providers hold far less per cluster. The
/// request is what a few hundred clusters need at rest; the memory limit leaves room for a
/// thousand-cluster burst. No CPU limit: throttling a controller only delays reconciles.
pub const CONTROLLER_RESOURCES: (&str, &str, &str) = ("100m", "256Mi", "2Gi");

/// What `slipway init` installs: the CRDs, the namespace, a ServiceAccount with the least
/// privileges the controllers need (listed in the README), the controller Deployment
/// (`replicas` pods, one leading; all serve the conversion webhook), its PodDisruptionBudget
/// and the webhook Service.
pub fn init_manifests(
    image: &str,
    replicas: u32,
    crds: &[CustomResourceDefinition],
) -> Result<Vec<Value>, OpsError> {
    if replicas == 0 {
        return Err(OpsError::invalid(
            "--replicas",
            "must be at least 1 (the controller Deployment's pods)",
        ));
    }
    let ns = SYSTEM_NAMESPACE;
    let (cpu, memory, memory_limit) = CONTROLLER_RESOURCES;
    // One pod may always be disrupted when there is a standby to take the lease; a single
    // replica must not block a node drain forever, so its budget allows the eviction too.
    let pdb = if replicas > 1 {
        json!({"minAvailable": 1})
    } else {
        json!({"maxUnavailable": 1})
    };
    let mut docs: Vec<Value> = crds
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    let all_verbs = json!([
        "get", "list", "watch", "create", "update", "patch", "delete"
    ]);
    docs.extend([
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "slipway-controller", "namespace": ns}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "slipway-controller"},
               "rules": [
                   {"apiGroups": ["cluster.x-k8s.io", "bootstrap.cluster.x-k8s.io", "controlplane.cluster.x-k8s.io",
                                  "infrastructure.cluster.x-k8s.io", "addons.cluster.x-k8s.io", "multicluster.x-k8s.io", "core.kubefed.io"],
                    "resources": ["*", "*/status"], "verbs": all_verbs},
                   {"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": all_verbs},
                   {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
                   {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
                   {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["get", "list", "watch", "patch"]}
               ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "slipway-controller"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "slipway-controller"},
               "subjects": [{"kind": "ServiceAccount", "name": "slipway-controller", "namespace": ns}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "slipway-leader-election", "namespace": ns},
               "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "list", "watch", "create", "update", "patch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "slipway-leader-election", "namespace": ns},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "slipway-leader-election"},
               "subjects": [{"kind": "ServiceAccount", "name": "slipway-controller", "namespace": ns}]}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "slipway-controller", "namespace": ns, "labels": {"app.kubernetes.io/name": "slipway"}},
               "spec": {"replicas": replicas,
                        "selector": {"matchLabels": {"app.kubernetes.io/name": "slipway"}},
                        "template": {
                            "metadata": {"labels": {"app.kubernetes.io/name": "slipway"}},
                            "spec": {"serviceAccountName": "slipway-controller",
                                     "containers": [{
                                         "name": "controller", "image": image,
                                         "args": ["controller", "--leader-elect", "--leader-election-namespace", ns,
                                                  "--metrics-address", "0.0.0.0:9440", "--data-dir", "/var/lib/slipway", "--log-format", "json",
                                                  "--webhook-port", WEBHOOK_PORT.to_string()],
                                         "ports": [{"name": "metrics", "containerPort": 9440},
                                                   {"name": "webhook", "containerPort": WEBHOOK_PORT}],
                                         "livenessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"}},
                                         "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}},
                                         "resources": {"requests": {"cpu": cpu, "memory": memory},
                                                       "limits": {"memory": memory_limit}},
                                         "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                                             "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}},
                                         "volumeMounts": [{"name": "data", "mountPath": "/var/lib/slipway"}]
                                     }],
                                     "volumes": [{"name": "data", "emptyDir": {}}]}}}}),
        // The CRDs' conversion webhook points here (and the controller injects its CA).
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": crate::webhook::SERVICE, "namespace": ns},
               "spec": {"selector": {"app.kubernetes.io/name": "slipway"},
                        "ports": [{"name": "webhook", "port": 443, "targetPort": "webhook"}]}}),
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
               "metadata": {"name": "slipway-controller", "namespace": ns},
               "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "slipway"}}}}),
    ]);
    if let Some(spec) = docs.last_mut().and_then(|d| d["spec"].as_object_mut()) {
        spec.extend(pdb.as_object().cloned().unwrap_or_default());
    }
    Ok(docs)
}

/// Multi-document YAML of `docs`.
pub fn to_yaml(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| format!("---\n{}", serde_saphyr::to_string(d).unwrap_or_default()))
        .collect()
}

fn api_resource(doc: &Value) -> Option<(ApiResource, bool)> {
    let (api_version, kind) = (doc["apiVersion"].as_str()?, doc["kind"].as_str()?);
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let (plural, namespaced) = match kind {
        "CustomResourceDefinition" => ("customresourcedefinitions", false),
        "Namespace" => ("namespaces", false),
        "ServiceAccount" => ("serviceaccounts", true),
        "ClusterRole" => ("clusterroles", false),
        "ClusterRoleBinding" => ("clusterrolebindings", false),
        "Role" => ("roles", true),
        "RoleBinding" => ("rolebindings", true),
        "Deployment" => ("deployments", true),
        "Service" => ("services", true),
        "PodDisruptionBudget" => ("poddisruptionbudgets", true),
        _ => return None,
    };
    Some((
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            plural: plural.into(),
        },
        namespaced,
    ))
}

/// Applies the manifests with server-side apply (field manager `slipway-init`), in order.
pub async fn apply_all(
    client: &Client,
    docs: &[Value],
    progress: &mut dyn FnMut(String),
) -> Result<(), OpsError> {
    for doc in docs {
        let (ar, namespaced) = api_resource(doc).ok_or_else(|| {
            OpsError::invalid(
                format!("{} document", doc["kind"]),
                "slipway init cannot apply this kind",
            )
        })?;
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        let api: Api<DynamicObject> = if namespaced {
            Api::namespaced_with(
                client.clone(),
                doc["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(SYSTEM_NAMESPACE),
                &ar,
            )
        } else {
            Api::all_with(client.clone(), &ar)
        };
        api.patch(
            name,
            &PatchParams::apply("slipway-init").force(),
            &Patch::Apply(doc),
        )
        .await
        .map_err(|e| OpsError::invalid(format!("{} {name}", ar.kind), e))?;
        progress(format!("{}/{name} applied", ar.kind.to_lowercase()));
    }
    Ok(())
}

/// Counts objects by kind (for `init` summaries and tests).
pub fn kinds(docs: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for d in docs {
        *m.entry(d["kind"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_and_replaces_entries_and_keeps_the_current_context() {
        let existing = "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster: {server: https://old:1}\n- name: mgmt\n  cluster: {server: https://m:1}\nusers:\n- name: me\n  user: {token: t}\ncontexts:\n- name: mgmt\n  context: {cluster: mgmt, user: me}\ncurrent-context: mgmt\n";
        let add = "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster: {server: https://new:6443}\nusers:\n- name: prod-admin\n  user: {client-certificate-data: Qw==}\ncontexts:\n- name: prod-admin@prod\n  context: {cluster: prod, user: prod-admin}\ncurrent-context: prod-admin@prod\n";
        let merged: Value =
            serde_saphyr::from_str(&merge_kubeconfig(existing, add).unwrap()).unwrap();
        let clusters = merged["clusters"].as_array().unwrap();
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[0]["cluster"]["server"], "https://new:6443");
        assert_eq!(merged["users"].as_array().unwrap().len(), 2);
        assert_eq!(merged["contexts"].as_array().unwrap().len(), 2);
        assert_eq!(merged["current-context"], "mgmt");
        let fresh: Value = serde_saphyr::from_str(&merge_kubeconfig("", add).unwrap()).unwrap();
        assert_eq!(fresh["current-context"], "prod-admin@prod");
        assert!(merge_kubeconfig("clusters: [", add).is_err());
    }

    #[test]
    fn topology_state_says_held_back_rolling_or_done() {
        for (version, target, rolling, want) in [
            (
                "v1.31.0",
                "v1.32.0",
                false,
                "v1.31.0, upgrade to v1.32.0 pending",
            ),
            (
                "v1.31.0",
                "v1.32.0",
                true,
                "v1.31.0, upgrade to v1.32.0 pending",
            ),
            ("v1.32.0", "v1.32.0", true, "upgrading to v1.32.0"),
            ("v1.32.0", "v1.32.0", false, "v1.32.0, up to date"),
        ] {
            assert_eq!(topology_state(version, target, rolling), want);
        }
    }

    #[test]
    fn the_tree_shows_why_a_machine_is_not_ready() {
        let tree = Node {
            label: "Cluster/demo".into(),
            ready: Some(("False".into(), "NotAvailable".into(), String::new())),
            children: vec![Node {
                label: "Workers".into(),
                ready: None,
                children: vec![Node {
                    label: "Machine/demo-md-0-x".into(),
                    ready: Some((
                        "False".into(),
                        "ProviderTerminalError".into(),
                        "disk on fire".into(),
                    )),
                    children: vec![],
                }],
            }],
        };
        let text = render_tree(&tree, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME"));
        assert!(lines[1].starts_with("Cluster/demo") && lines[1].contains("False  NotAvailable"));
        assert!(lines[2].starts_with("└─Workers"));
        assert!(lines[3].starts_with("  └─Machine/demo-md-0-x"));
        assert!(
            lines[3].contains("ProviderTerminalError: disk on fire"),
            "{text}"
        );
        assert!(render_tree(&tree, true).contains("\x1b[31mFalse"));
    }

    #[test]
    fn init_installs_crds_rbac_and_the_controller() {
        let crds = slipway_api::crds::core();
        let docs = init_manifests("example/slipway:1", 2, &crds).unwrap();
        let k = kinds(&docs);
        assert_eq!(k["CustomResourceDefinition"], crds.len());
        for kind in [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
        ] {
            assert_eq!(k[kind], 1, "{kind}");
        }
        // Two replicas: one may be disrupted, one must stay; the pods are sized and bounded.
        let pdb = docs
            .iter()
            .find(|d| d["kind"] == "PodDisruptionBudget")
            .unwrap();
        assert_eq!(pdb["spec"]["minAvailable"], 1);
        assert_eq!(
            pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
            "slipway"
        );
        // The webhook: a Service on 443 to the controller's webhook port, which the
        // controller serves, and the right to inject the CA into the CRDs.
        let svc = docs.iter().find(|d| d["kind"] == "Service").unwrap();
        assert_eq!(svc["metadata"]["name"], "slipway-webhook-service");
        assert_eq!(svc["spec"]["ports"][0]["port"], 443);
        let deploy = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
        let c = &deploy["spec"]["template"]["spec"]["containers"][0];
        let args = c["args"].to_string();
        assert!(args.contains("\"--webhook-port\",\"9443\""), "{args}");
        assert_eq!(deploy["spec"]["replicas"], 2);
        assert_eq!(c["resources"]["requests"]["memory"], "256Mi");
        assert_eq!(c["resources"]["limits"]["memory"], "2Gi");
        assert!(c["resources"]["limits"].get("cpu").is_none());
        assert!(c["ports"].to_string().contains("\"webhook\""));
        let role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
        assert!(role["rules"].as_array().unwrap().iter().any(|r| {
            r["resources"] == json!(["customresourcedefinitions"])
                && r["verbs"].as_array().unwrap().contains(&json!("patch"))
        }));
        for crd in docs
            .iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
        {
            if let Some(svc_ref) = crd.pointer("/spec/conversion/webhook/clientConfig/service") {
                assert_eq!(svc_ref["name"], "slipway-webhook-service");
                assert_eq!(svc_ref["namespace"], "slipway-system");
            }
        }
        assert!(docs.iter().all(|d| api_resource(d).is_some()));
        let yaml = to_yaml(&docs);
        let back: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        assert_eq!(back.len(), docs.len());
    }

    #[test]
    fn one_replica_never_blocks_a_drain_and_zero_is_refused() {
        let crds = slipway_api::crds::core();
        let docs = init_manifests("example/slipway:1", 1, &crds).unwrap();
        let pdb = docs
            .iter()
            .find(|d| d["kind"] == "PodDisruptionBudget")
            .unwrap();
        assert_eq!(pdb["spec"]["maxUnavailable"], 1);
        assert!(pdb["spec"].get("minAvailable").is_none());
        let err = init_manifests("example/slipway:1", 0, &crds).unwrap_err();
        assert!(err.to_string().contains("--replicas"), "{err}");
    }
}
