//! The cluster roles and bindings kube-apiserver bootstraps that matter to slipway's users:
//! `cluster-admin` (bound to `system:masters`), the user-facing `admin`, `edit` and `view`
//! (aggregated from the `system:aggregate-to-*` roles by their labels), and what any
//! authenticated user needs for discovery, health and the self-reviews. slipway adds
//! `slipway:aggregate-to-{edit,view}` so that `edit` and `view` cover the Cluster API kinds.
//!
//! As kube-apiserver's RBAC bootstrap, a role or binding is created when missing and updated
//! when it differs, unless its `rbac.authorization.kubernetes.io/autoupdate` annotation is
//! `"false"`. The rules of aggregated roles are the aggregation controller's to write.

use serde_json::{Value, json};

use super::rbac::GROUP;
use crate::{
    api::{Api, Call, Part},
    error::ApiError,
    request::{Query, Target},
};

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

fn rw() -> Vec<&'static str> {
    READ.iter().chain(WRITE).copied().collect()
}

fn meta(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut l = serde_json::Map::new();
    l.insert("kubernetes.io/bootstrapping".into(), json!("rbac-defaults"));
    for (k, v) in labels {
        l.insert((*k).into(), json!(v));
    }
    json!({"name": name, "labels": l, "annotations": {AUTOUPDATE: "true"}})
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
           "metadata": meta(name, labels), "rules": rules})
}

fn aggregated(name: &str, labels: &[(&str, &str)], selector_label: &str) -> Value {
    let mut r = cluster_role(name, labels, vec![]);
    r["aggregationRule"] =
        json!({"clusterRoleSelectors": [{"matchLabels": {selector_label: "true"}}]});
    r
}

fn binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": GROUP, "kind": "Group", "name": g}))
        .collect();
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": meta(name, &[]),
           "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
           "subjects": subjects})
}

const TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// The Cluster API groups `edit` and `view` cover on a slipway plane.
pub const CLUSTER_API_GROUPS: &[&str] = &[
    "cluster.x-k8s.io",
    "bootstrap.cluster.x-k8s.io",
    "controlplane.cluster.x-k8s.io",
    "infrastructure.cluster.x-k8s.io",
    "addons.cluster.x-k8s.io",
    "ipam.cluster.x-k8s.io",
    "runtime.cluster.x-k8s.io",
    "multicluster.x-k8s.io",
];

/// The default ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let rw = rw();
    vec![
        cluster_role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        aggregated("admin", &[], TO_ADMIN),
        aggregated("edit", &[(TO_ADMIN, "true")], TO_EDIT),
        aggregated("view", &[(TO_EDIT, "true")], TO_VIEW),
        cluster_role(
            "system:aggregate-to-admin",
            &[(TO_ADMIN, "true")],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
                rule(&rw, &[GROUP], &["rolebindings", "roles"]),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[(TO_EDIT, "true")],
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                rule(&["impersonate"], &[""], &["serviceaccounts"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                    ],
                ),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                ),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(
                    WRITE,
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                ),
                rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(WRITE, &["batch"], &["cronjobs", "jobs"]),
                rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    WRITE,
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                ),
                rule(&rw, &["coordination.k8s.io"], &["leases"]),
            ],
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[(TO_VIEW, "true")],
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "bindings",
                        "configmaps",
                        "endpoints",
                        "events",
                        "limitranges",
                        "namespaces",
                        "namespaces/status",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                ),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(
                    READ,
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                ),
                rule(
                    READ,
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                ),
                rule(
                    READ,
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                ),
                rule(
                    READ,
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                rule(
                    READ,
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                ),
                rule(READ, &["events.k8s.io"], &["events"]),
            ],
        ),
        cluster_role(
            "slipway:aggregate-to-edit",
            &[(TO_EDIT, "true")],
            vec![rule(&rw, CLUSTER_API_GROUPS, &["*"])],
        ),
        cluster_role(
            "slipway:aggregate-to-view",
            &[(TO_VIEW, "true")],
            vec![rule(READ, CLUSTER_API_GROUPS, &["*"])],
        ),
    ]
}

/// The default ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", "cluster-admin", &[super::MASTERS]),
        binding(
            "system:discovery",
            "system:discovery",
            &[super::AUTHENTICATED],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            &[super::AUTHENTICATED],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &[super::AUTHENTICATED, "system:unauthenticated"],
        ),
    ]
}

/// A call of the plane itself on a cluster-scoped RBAC resource.
pub(super) fn with_call<T>(
    api: &Api,
    plural: &str,
    namespace: Option<&str>,
    f: impl FnOnce(&Call<'_>) -> T,
) -> T {
    let target = Target {
        group: GROUP.into(),
        version: "v1".into(),
        namespace: namespace.map(str::to_string),
        plural: plural.into(),
        name: None,
        sub: None,
    };
    let query = Query::default();
    let call = Call {
        res: api
            .catalog
            .find(GROUP, "v1", plural)
            .expect("RBAC kinds are built in"),
        target: &target,
        query: &query,
        default_manager: "slipway-rbac-bootstrap".into(),
    };
    f(&call)
}

/// Whether a stored default differs from `want` in what the bootstrap owns.
fn differs(existing: &Value, want: &Value) -> bool {
    let owned = |v: &Value| {
        let mut o = json!({
            "labels": v["metadata"]["labels"],
            "aggregationRule": v["aggregationRule"],
            "roleRef": v["roleRef"],
            "subjects": v["subjects"],
        });
        // The rules of an aggregated role are the aggregation controller's.
        if want["aggregationRule"].is_null() {
            o["rules"] = v["rules"].clone();
        }
        o
    };
    owned(existing) != owned(want)
}

/// Creates (or brings back up to date) the default roles and bindings.
pub fn ensure(api: &Api) -> Result<(), ApiError> {
    for (plural, objects) in [
        ("clusterroles", cluster_roles()),
        ("clusterrolebindings", cluster_role_bindings()),
    ] {
        with_call(api, plural, None, |call| -> Result<(), ApiError> {
            for want in objects {
                let name = want["metadata"]["name"].as_str().unwrap_or_default();
                match api.get(call, name) {
                    Err(e) if e.code == 404 => {
                        api.create(call, want.clone())?;
                    }
                    Err(e) => return Err(e),
                    Ok(existing)
                        if existing["metadata"]["annotations"][AUTOUPDATE] != "false"
                            && differs(&existing, &want) =>
                    {
                        let mut updated = want.clone();
                        updated["metadata"]["resourceVersion"] =
                            existing["metadata"]["resourceVersion"].clone();
                        if !want["aggregationRule"].is_null() {
                            updated["rules"] = existing["rules"].clone();
                        }
                        api.update(call, name, updated, Part::Main)?;
                    }
                    Ok(_) => {}
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}
