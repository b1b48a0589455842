//! The RBAC authorizer: which rules the bindings give a user, and whether one of them allows a
//! request. Semantics as kube-apiserver's `rbac` authorizer: ClusterRoleBindings first, then
//! the RoleBindings of the request's namespace; `*` matches any verb, group, resource
//! (subresources included) or non-resource URL; `*/sub` matches a subresource of any resource;
//! a trailing `*` on a non-resource URL matches a prefix; resourceNames limit a rule to named
//! objects (so never a list or create without a name).
//!
//! The RBAC objects are parsed once per change into a [`Snapshot`], so a request costs a walk
//! over bindings, not a parse of every Role.

use std::{collections::HashMap, sync::Arc};

use serde_json::Value;

use super::{Attributes, Identity};
use crate::store::Store;

/// The API group of the RBAC kinds.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// One `rules[]` entry of a Role or ClusterRole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// verbs.
    pub verbs: Vec<String>,
    /// apiGroups.
    pub api_groups: Vec<String>,
    /// resources (`plural` or `plural/subresource`).
    pub resources: Vec<String>,
    /// resourceNames.
    pub resource_names: Vec<String>,
    /// nonResourceURLs.
    pub non_resource_urls: Vec<String>,
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

impl Rule {
    /// A rule from its JSON.
    pub fn of(v: &Value) -> Self {
        Self {
            verbs: strs(&v["verbs"]),
            api_groups: strs(&v["apiGroups"]),
            resources: strs(&v["resources"]),
            resource_names: strs(&v["resourceNames"]),
            non_resource_urls: strs(&v["nonResourceURLs"]),
        }
    }

    /// The rules of a Role or ClusterRole.
    pub fn all_of(role: &Value) -> Vec<Self> {
        role["rules"]
            .as_array()
            .map(|a| a.iter().map(Self::of).collect())
            .unwrap_or_default()
    }

    /// The rule as JSON (empty lists omitted, as the API server writes them).
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (k, v) in [
            ("verbs", &self.verbs),
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !v.is_empty() || k == "verbs" {
                m.insert(k.into(), Value::from(v.clone()));
            }
        }
        Value::Object(m)
    }

    /// Whether the rule allows the request.
    pub fn allows(&self, a: &Attributes) -> bool {
        if !has(&self.verbs, &a.verb) {
            return false;
        }
        if !a.resource_request {
            return self.non_resource_urls.iter().any(|u| {
                u == "*"
                    || *u == a.path
                    || u.strip_suffix('*')
                        .is_some_and(|prefix| a.path.starts_with(prefix))
            });
        }
        has(&self.api_groups, &a.group)
            && self.resource_matches(&a.resource, &a.subresource)
            && (self.resource_names.is_empty() || self.resource_names.contains(&a.name))
    }

    fn resource_matches(&self, resource: &str, sub: &str) -> bool {
        let combined = if sub.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}/{sub}")
        };
        self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!sub.is_empty() && r.strip_prefix("*/").is_some_and(|s| s == sub))
        })
    }

    /// `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}`, as kube-apiserver
    /// names a rule in escalation errors.
    pub fn compact(&self) -> String {
        let q = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut parts = Vec::new();
        if !self.api_groups.is_empty() {
            parts.push(format!("APIGroups:[{}]", q(&self.api_groups)));
        }
        if !self.resources.is_empty() {
            parts.push(format!("Resources:[{}]", q(&self.resources)));
        }
        if !self.resource_names.is_empty() {
            parts.push(format!("ResourceNames:[{}]", q(&self.resource_names)));
        }
        if !self.non_resource_urls.is_empty() {
            parts.push(format!("NonResourceURLs:[{}]", q(&self.non_resource_urls)));
        }
        parts.push(format!("Verbs:[{}]", q(&self.verbs)));
        format!("{{{}}}", parts.join(", "))
    }
}

fn has(list: &[String], v: &str) -> bool {
    list.iter().any(|x| x == "*" || x == v)
}

/// A `roleRef`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleRef {
    /// `Role` or `ClusterRole`.
    pub kind: String,
    /// Name.
    pub name: String,
}

/// A RoleBinding or ClusterRoleBinding.
#[derive(Clone, Debug)]
pub struct Binding {
    /// Name.
    pub name: String,
    /// Namespace ("" for a ClusterRoleBinding).
    pub namespace: String,
    /// The role it grants.
    pub role: RoleRef,
    /// subjects[] as (kind, name, namespace).
    pub subjects: Vec<(String, String, String)>,
}

impl Binding {
    fn of(v: &Value) -> Self {
        let s = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Self {
            name: s("/metadata/name"),
            namespace: s("/metadata/namespace"),
            role: RoleRef {
                kind: s("/roleRef/kind"),
                name: s("/roleRef/name"),
            },
            subjects: v["subjects"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            let f = |k: &str| x[k].as_str().unwrap_or("").to_string();
                            (f("kind"), f("name"), f("namespace"))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Whether a subject of the binding is the user, one of its groups or its service account.
    pub fn applies_to(&self, who: &Identity) -> bool {
        self.subjects
            .iter()
            .any(|(kind, name, ns)| match kind.as_str() {
                "User" => *name == who.user,
                "Group" => who.groups.contains(name),
                "ServiceAccount" => {
                    let ns = if ns.is_empty() { &self.namespace } else { ns };
                    who.user == format!("system:serviceaccount:{ns}:{name}")
                }
                _ => false,
            })
    }

    /// `ClusterRoleBinding "x"` or `RoleBinding "ns/x"`.
    fn describe(&self) -> String {
        if self.namespace.is_empty() {
            format!("ClusterRoleBinding {:?}", self.name)
        } else {
            format!("RoleBinding \"{}/{}\"", self.name, self.namespace)
        }
    }
}

/// The parsed RBAC objects of a store at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    cluster_roles: HashMap<String, Vec<Rule>>,
    roles: HashMap<(String, String), Vec<Rule>>,
    cluster_bindings: Vec<Binding>,
    bindings: HashMap<String, Vec<Binding>>,
}

/// What a walk over the bindings found.
#[derive(Debug, Default)]
pub struct Found {
    /// Why the request is allowed (kube-apiserver's wording), if it is.
    pub allowed: Option<String>,
    /// Roles referenced by a binding of the user that do not exist.
    pub errors: Vec<String>,
}

const KINDS: [&str; 4] = [
    "clusterroles",
    "roles",
    "clusterrolebindings",
    "rolebindings",
];

/// What changes when any RBAC object changes: each kind's count and highest resourceVersion.
pub type Fingerprint = Vec<(usize, u64)>;

/// The [`Fingerprint`] of a store's RBAC objects.
pub fn fingerprint(store: &Store) -> Fingerprint {
    KINDS
        .iter()
        .map(|k| {
            let (_, items) = store.list(&format!("{GROUP}/{k}"), None);
            (
                items.len(),
                items.iter().map(|(_, e)| e.rv).max().unwrap_or(0),
            )
        })
        .collect()
}

impl Snapshot {
    /// Parses every RBAC object of the store.
    pub fn load(store: &Store) -> Self {
        let mut s = Self::default();
        let list = |k: &str| store.list(&format!("{GROUP}/{k}"), None).1;
        for (key, e) in list("clusterroles") {
            s.cluster_roles.insert(key.name, Rule::all_of(&e.value()));
        }
        for (key, e) in list("roles") {
            s.roles.insert((key.ns, key.name), Rule::all_of(&e.value()));
        }
        for (_, e) in list("clusterrolebindings") {
            s.cluster_bindings.push(Binding::of(&e.value()));
        }
        for (key, e) in list("rolebindings") {
            s.bindings
                .entry(key.ns)
                .or_default()
                .push(Binding::of(&e.value()));
        }
        s
    }

    /// The rules a role reference grants in `namespace` (a Role lives there; "" for a
    /// ClusterRoleBinding's).
    pub fn role_rules(&self, role: &RoleRef, namespace: &str) -> Result<&[Rule], String> {
        let found = match role.kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&role.name),
            "Role" => self.roles.get(&(namespace.to_string(), role.name.clone())),
            _ => None,
        };
        found.map(Vec::as_slice).ok_or_else(|| {
            format!(
                "{}.{GROUP} {:?} not found",
                role.kind.to_lowercase(),
                role.name
            )
        })
    }

    /// The rules of a ClusterRole, if it exists.
    pub fn cluster_role(&self, name: &str) -> Option<&[Rule]> {
        self.cluster_roles.get(name).map(Vec::as_slice)
    }

    /// Calls `visit` with each binding of the user that applies in `namespace` and the rules
    /// of its role, until it returns true. Missing roles are collected as errors.
    fn walk(
        &self,
        who: &Identity,
        namespace: &str,
        mut visit: impl FnMut(&Binding, &[Rule]) -> bool,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        let namespaced = self
            .bindings
            .get(namespace)
            .filter(|_| !namespace.is_empty());
        let all = self
            .cluster_bindings
            .iter()
            .chain(namespaced.into_iter().flatten());
        for b in all.filter(|b| b.applies_to(who)) {
            match self.role_rules(&b.role, &b.namespace) {
                Ok(rules) => {
                    if visit(b, rules) {
                        break;
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    /// Whether some binding of the user allows the request.
    pub fn authorize(&self, who: &Identity, a: &Attributes) -> Found {
        let mut allowed = None;
        let errors = self.walk(who, &a.namespace, |b, rules| {
            if rules.iter().any(|r| r.allows(a)) {
                allowed = Some(format!(
                    "RBAC: allowed by {} of {} {:?} to {}",
                    b.describe(),
                    b.role.kind,
                    b.role.name,
                    subject_of(b, who)
                ));
                return true;
            }
            false
        });
        Found { allowed, errors }
    }

    /// Every rule the user holds in `namespace` (cluster-wide ones included), and the errors
    /// met (bindings to missing roles).
    pub fn rules_for(&self, who: &Identity, namespace: &str) -> (Vec<Rule>, Vec<String>) {
        let mut out = Vec::new();
        let errors = self.walk(who, namespace, |_, rules| {
            out.extend(rules.iter().cloned());
            false
        });
        (out, errors)
    }
}

fn subject_of(b: &Binding, who: &Identity) -> String {
    for (kind, name, ns) in &b.subjects {
        let ns = if ns.is_empty() { &b.namespace } else { ns };
        match kind.as_str() {
            "Group" if who.groups.contains(name) => return format!("Group {name:?}"),
            "User" if *name == who.user => return format!("User {name:?}"),
            "ServiceAccount" if who.user == format!("system:serviceaccount:{ns}:{name}") => {
                return format!("ServiceAccount \"{ns}/{name}\"");
            }
            _ => {}
        }
    }
    format!("User {:?}", who.user)
}

/// A cached [`Snapshot`], reloaded when an RBAC object changes.
#[derive(Default)]
pub struct Cache {
    inner: std::sync::Mutex<Option<(Fingerprint, Arc<Snapshot>)>>,
}

impl Cache {
    /// The snapshot of the store's current RBAC objects.
    pub fn get(&self, store: &Store) -> Arc<Snapshot> {
        let fp = fingerprint(store);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, snap)) = inner.as_ref()
            && *seen == fp
        {
            return snap.clone();
        }
        let snap = Arc::new(Snapshot::load(store));
        *inner = Some((fp, snap.clone()));
        snap
    }
}

#[cfg(test)]
mod tests;
