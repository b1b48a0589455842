//! The resources the server serves: the built-in kinds slipway needs, and every version of
//! every established CustomResourceDefinition.
//!
//! Each [`Resource`] carries its write [`Strategy`], chosen here once, so that the verbs never
//! decide by a resource's names what its kind adds.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
};

use serde_json::{Value, json};

use crate::api::strategy::{self, Strategy};

/// Why a CustomResourceDefinition cannot be served; worded as kube-apiserver's field errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrdError {
    /// A required field (named by its path, e.g. `spec.names.plural`) is missing.
    #[error("{0}: Required value")]
    Required(&'static str),
    /// `spec.scope` is neither `Cluster` nor `Namespaced` (`None` when it is missing).
    #[error("spec.scope: Unsupported value: {0:?}: supported values: \"Cluster\", \"Namespaced\"")]
    Scope(Option<String>),
    /// No version of `spec.versions` is marked as the storage version.
    #[error(
        "spec.versions: Invalid value: must have exactly one version marked as storage version"
    )]
    StorageVersion,
}

/// A printer column (CRD `additionalPrinterColumns` shape).
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Header.
    pub name: String,
    /// string, integer, number, boolean or date.
    pub type_: String,
    /// JSONPath of the value (`.metadata.name` style).
    pub json_path: String,
    /// Column description.
    pub description: String,
    /// 0 for the default view, higher for `-o wide`.
    pub priority: i64,
}

/// The scale subresource paths.
#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    /// `.spec.replicas`.
    pub spec_replicas_path: String,
    /// `.status.replicas`.
    pub status_replicas_path: String,
    /// `.status.selector`.
    pub label_selector_path: Option<String>,
}

/// One served resource at one version.
#[derive(Clone, Debug)]
pub struct Resource {
    /// API group ("" for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Plural (the path segment).
    pub plural: String,
    /// Singular.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// List kind.
    pub list_kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names.
    pub short_names: Vec<String>,
    /// Categories.
    pub categories: Vec<String>,
    /// Has a status subresource.
    pub status: bool,
    /// Scale subresource.
    pub scale: Option<Scale>,
    /// `openAPIV3Schema` (custom resources only), ready for admission.
    pub schema: Option<Arc<crate::schema::Schema>>,
    /// Printer columns after Name.
    pub columns: Vec<Column>,
    /// Served from a CRD.
    pub custom: bool,
    /// The version objects are stored at (the CRD's storage version).
    pub storage_version: String,
    /// What the kind adds to the generic verbs, chosen once here rather than by each verb.
    pub strategy: &'static dyn Strategy,
    /// The CRD's `spec.conversion` when its strategy is `Webhook` (see [`crate::conversion`]).
    pub conversion: Option<Arc<Value>>,
}

impl Resource {
    /// `group/plural`, the storage identity shared by every version.
    pub fn gr(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// `group/version`, or `version` for core.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The APIResource entries of discovery for this resource and its subresources.
    pub fn discovery(&self) -> Vec<Value> {
        let mut out = vec![json!({
            "name": self.plural, "singularName": self.singular, "namespaced": self.namespaced, "kind": self.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": self.short_names, "categories": self.categories,
            "storageVersionHash": format!("{:x}", fxhash(&self.gr())),
        })];
        if self.status {
            out.push(json!({"name": format!("{}/status", self.plural), "singularName": "", "namespaced": self.namespaced,
                            "kind": self.kind, "verbs": ["get", "patch", "update"]}));
        }
        if self.group.is_empty() && self.plural == "pods" {
            out.push(json!({"name": "pods/eviction", "singularName": "", "namespaced": true,
                            "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]}));
        }
        if self.scale.is_some() {
            out.push(json!({"name": format!("{}/scale", self.plural), "singularName": "", "namespaced": self.namespaced,
                            "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
        out
    }
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn col(name: &str, type_: &str, json_path: &str) -> Column {
    Column {
        name: name.into(),
        type_: type_.into(),
        json_path: json_path.into(),
        description: String::new(),
        priority: 0,
    }
}

fn wide(name: &str, json_path: &str) -> Column {
    Column {
        priority: 1,
        ..col(name, "string", json_path)
    }
}

fn age() -> Column {
    col("Age", "date", ".metadata.creationTimestamp")
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    status: bool,
    columns: Vec<Column>,
) -> Resource {
    Resource {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: vec![],
        status,
        scale: None,
        schema: None,
        columns,
        custom: false,
        storage_version: version.into(),
        strategy: strategy::for_resource(group, plural, false),
        conversion: None,
    }
}

fn builtins() -> Vec<Resource> {
    vec![
        builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            true,
            vec![col("Status", "string", ".status.phase"), age()],
        ),
        builtin(
            "",
            "v1",
            "secrets",
            "Secret",
            true,
            &[],
            false,
            vec![
                col("Type", "string", ".type"),
                col("Data", "integer", ".data"),
                age(),
            ],
        ),
        builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            true,
            &["cm"],
            false,
            vec![col("Data", "integer", ".data"), age()],
        ),
        builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            false,
            vec![age()],
        ),
        builtin(
            "",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            false,
            vec![
                col("Type", "string", ".type"),
                col("Reason", "string", ".reason"),
                col("Object", "string", ".involvedObject.name"),
                col("Message", "string", ".message"),
                age(),
            ],
        ),
        builtin(
            "",
            "v1",
            "nodes",
            "Node",
            false,
            &["no"],
            true,
            vec![
                col("Status", "string", "@node-status"),
                col("Roles", "string", "@node-roles"),
                age(),
                col("Version", "string", ".status.nodeInfo.kubeletVersion"),
                wide(
                    "Internal-IP",
                    ".status.addresses[?(@.type==\"InternalIP\")].address",
                ),
                wide("OS-Image", ".status.nodeInfo.osImage"),
                wide("Kernel-Version", ".status.nodeInfo.kernelVersion"),
                wide(
                    "Container-Runtime",
                    ".status.nodeInfo.containerRuntimeVersion",
                ),
            ],
        ),
        builtin(
            "",
            "v1",
            "pods",
            "Pod",
            true,
            &["po"],
            true,
            vec![
                col("Ready", "string", "@pod-ready"),
                col("Status", "string", ".status.phase"),
                col("Restarts", "integer", "@pod-restarts"),
                age(),
                wide("IP", ".status.podIP"),
                wide("Node", ".spec.nodeName"),
            ],
        ),
        builtin(
            "",
            "v1",
            "services",
            "Service",
            true,
            &["svc"],
            true,
            vec![
                col("Type", "string", ".spec.type"),
                col("Cluster-IP", "string", ".spec.clusterIP"),
                col("Port(s)", "string", "@service-ports"),
                age(),
            ],
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            false,
            vec![col("Holder", "string", ".spec.holderIdentity"), age()],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
            false,
            vec![age()],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            false,
            vec![col("Role", "string", ".roleRef.name"), age()],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            true,
            &[],
            false,
            vec![age()],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
            false,
            vec![col("Role", "string", ".roleRef.name"), age()],
        ),
        builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            true,
            vec![
                col("Ready", "integer", ".status.readyReplicas"),
                col("Up-to-date", "integer", ".status.updatedReplicas"),
                col("Available", "integer", ".status.availableReplicas"),
                age(),
            ],
        ),
        // Addon manifests (a CNI, a cloud controller manager) bring DaemonSets; a
        // ClusterResourceSet applies them into workload planes.
        builtin(
            "apps",
            "v1",
            "daemonsets",
            "DaemonSet",
            true,
            &["ds"],
            true,
            vec![
                col("Desired", "integer", ".status.desiredNumberScheduled"),
                col("Current", "integer", ".status.currentNumberScheduled"),
                col("Ready", "integer", ".status.numberReady"),
                col("Up-to-date", "integer", ".status.updatedNumberScheduled"),
                col("Available", "integer", ".status.numberAvailable"),
                age(),
            ],
        ),
        builtin(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
            &["pdb"],
            true,
            vec![
                col("Min Available", "string", "@pdb-min-available"),
                col("Max Unavailable", "string", "@pdb-max-unavailable"),
                col(
                    "Allowed Disruptions",
                    "integer",
                    ".status.disruptionsAllowed",
                ),
                age(),
            ],
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            false,
            vec![
                col("Type", "string", ".type"),
                col("Reason", "string", ".reason"),
                col("Object", "string", ".regarding.name"),
                col("Note", "string", ".note"),
                age(),
            ],
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
            vec![col("Created At", "date", ".metadata.creationTimestamp")],
        ),
    ]
}

/// Every served resource.
pub struct Catalog {
    inner: RwLock<BTreeMap<(String, String, String), Arc<Resource>>>,
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new()
    }
}

impl Catalog {
    /// The built-in resources.
    pub fn new() -> Self {
        let map = builtins()
            .into_iter()
            .map(|r| {
                (
                    (r.group.clone(), r.version.clone(), r.plural.clone()),
                    Arc::new(r),
                )
            })
            .collect();
        Self {
            inner: RwLock::new(map),
        }
    }

    fn read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<(String, String, String), Arc<Resource>>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The resource at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        self.read()
            .get(&(group.into(), version.into(), plural.into()))
            .cloned()
    }

    /// The resource serving `kind` in `group/version`.
    pub fn find_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<Resource>> {
        self.read()
            .values()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
    }

    /// Every served resource.
    pub fn all(&self) -> Vec<Arc<Resource>> {
        self.read().values().cloned().collect()
    }

    /// Groups with their versions, preferred (storage) version first.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in self.read().values() {
            let versions = groups.entry(r.group.clone()).or_default();
            if !versions.contains(&r.version) {
                if r.version == r.storage_version {
                    versions.insert(0, r.version.clone());
                } else {
                    versions.push(r.version.clone());
                }
            }
        }
        groups
    }

    /// Serves every served version of a CRD (replacing what it served before).
    pub fn register_crd(&self, crd: &Value) -> Result<(), CrdError> {
        let resources = resources_of_crd(crd)?;
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(first) = resources.first() {
            let gr = first.gr();
            map.retain(|_, r| !(r.custom && r.gr() == gr));
        }
        for r in resources {
            map.insert(
                (r.group.clone(), r.version.clone(), r.plural.clone()),
                Arc::new(r),
            );
        }
        Ok(())
    }

    /// Stops serving a CRD's resources.
    pub fn unregister(&self, group: &str, plural: &str) {
        let gr = format!("{group}/{plural}");
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, r| !(r.custom && r.gr() == gr));
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The resources a CRD defines, one per served version.
pub fn resources_of_crd(crd: &Value) -> Result<Vec<Resource>, CrdError> {
    let spec = crd.get("spec").ok_or(CrdError::Required("spec"))?;
    let s = |p: &str| spec.pointer(p).and_then(Value::as_str).map(str::to_string);
    let group = s("/group").ok_or(CrdError::Required("spec.group"))?;
    let plural = s("/names/plural").ok_or(CrdError::Required("spec.names.plural"))?;
    let kind = s("/names/kind").ok_or(CrdError::Required("spec.names.kind"))?;
    let singular = s("/names/singular").unwrap_or_else(|| kind.to_lowercase());
    let list_kind = s("/names/listKind").unwrap_or_else(|| format!("{kind}List"));
    let namespaced = match s("/scope").as_deref() {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            return Err(CrdError::Scope(other.map(str::to_string)));
        }
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or(CrdError::Required("spec.versions"))?;
    let storage_version = versions
        .iter()
        .find(|v| v["storage"] == true)
        .and_then(|v| v["name"].as_str())
        .ok_or(CrdError::StorageVersion)?
        .to_string();
    let mut out = Vec::new();
    for v in versions.iter().filter(|v| v["served"] == true) {
        let version = v["name"]
            .as_str()
            .ok_or(CrdError::Required("spec.versions[].name"))?
            .to_string();
        let scale = v.pointer("/subresources/scale").map(|sc| Scale {
            spec_replicas_path: sc["specReplicasPath"]
                .as_str()
                .unwrap_or(".spec.replicas")
                .into(),
            status_replicas_path: sc["statusReplicasPath"]
                .as_str()
                .unwrap_or(".status.replicas")
                .into(),
            label_selector_path: sc["labelSelectorPath"].as_str().map(str::to_string),
        });
        let columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| Column {
                        name: c["name"].as_str().unwrap_or_default().into(),
                        type_: c["type"].as_str().unwrap_or("string").into(),
                        json_path: c["jsonPath"].as_str().unwrap_or_default().into(),
                        description: c["description"].as_str().unwrap_or_default().into(),
                        priority: c["priority"].as_i64().unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_else(|| vec![age()]);
        out.push(Resource {
            group: group.clone(),
            version,
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            list_kind: list_kind.clone(),
            namespaced,
            short_names: strs(&spec["names"]["shortNames"]),
            categories: strs(&spec["names"]["categories"]),
            status: v.pointer("/subresources/status").is_some(),
            scale,
            schema: v
                .pointer("/schema/openAPIV3Schema")
                .map(|s| Arc::new(crate::schema::Schema::new(s.clone()))),
            columns,
            custom: true,
            storage_version: storage_version.clone(),
            strategy: strategy::for_resource(&group, &plural, true),
            conversion: crate::conversion::webhook_conversion(crd),
        });
    }
    Ok(out)
}
