//! Authentication and authorization, as kube-apiserver does them.
//!
//! This module owns who a request comes from ([`Identity`], [`Auth::authenticate`]) and
//! whether it may do what it asks ([`Attributes`], [`Auth::authorize`]), with the pieces by
//! concern:
//! - [`rbac`]: Role/ClusterRole/RoleBinding/ClusterRoleBinding evaluation;
//! - [`defaults`]: the cluster roles and bindings kube-apiserver bootstraps;
//! - [`aggregate`]: the ClusterRole aggregation controller;
//! - [`escalation`]: no Role, ClusterRole or binding grants more than its writer holds;
//! - [`tokens`]: static token file and service-account tokens (JWTs and TokenRequest);
//! - [`proto`]: protobuf bodies of the RBAC kinds and reviews;
//! - [`reviews`]: the authorization APIs (SelfSubjectAccessReview, SelfSubjectRulesReview,
//!   SelfSubjectReview) and their discovery.
//!
//! Members of `system:masters` bypass authorization, as on kube-apiserver.

pub mod aggregate;
pub mod defaults;
pub mod escalation;
pub mod proto;
pub mod rbac;
pub mod reviews;
pub mod tokens;

use std::{collections::BTreeMap, path::Path, sync::Arc};

use http::Method;
use serde_json::json;

use crate::{api::Api, error::ApiError, request::Query};

/// The group whose members may do anything, whatever RBAC says.
pub const MASTERS: &str = "system:masters";
/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The admin user of the kubeconfig slipway writes.
pub const ADMIN_USER: &str = "slipway-admin";

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Identity {
    /// User name.
    pub user: String,
    /// UID ("" when the authenticator knows none).
    pub uid: String,
    /// Groups (with `system:authenticated`).
    pub groups: Vec<String>,
    /// Extra attributes (e.g. a service-account token's credential id).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl Identity {
    /// An authenticated user with these groups (`system:authenticated` added).
    pub fn new(user: impl Into<String>, groups: Vec<String>) -> Self {
        let mut groups = groups;
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.into());
        }
        Self {
            user: user.into(),
            groups,
            ..Default::default()
        }
    }

    /// Whether authorization is bypassed.
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }
}

/// `--authorization-mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Kubernetes RBAC (the default).
    #[default]
    Rbac,
    /// Every authenticated request is allowed.
    AlwaysAllow,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "RBAC" => Ok(Self::Rbac),
            "AlwaysAllow" => Ok(Self::AlwaysAllow),
            other => Err(format!(
                "unsupported authorization mode {other:?} (supported: RBAC, AlwaysAllow)"
            )),
        }
    }
}

/// How a plane authenticates and authorizes beyond its admin token.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--authorization-mode`.
    pub mode: Mode,
    /// `--token-auth-file`: `token,user,uid,"group1,group2"` lines.
    pub token_file: Option<std::path::PathBuf>,
}

/// What a request asks to do, as kube-apiserver's RequestInfo describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// get, list, watch, create, update, patch, delete, deletecollection (resources), or the
    /// lower-case HTTP method (non-resource URLs).
    pub verb: String,
    /// Whether the path addresses a resource (else a non-resource URL).
    pub resource_request: bool,
    /// The URL path.
    pub path: String,
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Namespace ("" for cluster scope; a Namespace's own name for the namespaces resource).
    pub namespace: String,
    /// Object name ("" for collections).
    pub name: String,
}

impl Attributes {
    /// The attributes of an HTTP request.
    pub fn of_request(method: &Method, path: &str, query: &Query) -> Self {
        let Some(t) = crate::request::parse(path) else {
            return Self {
                verb: method.as_str().to_lowercase(),
                path: path.to_string(),
                ..Default::default()
            };
        };
        let mut name = t.name.clone().unwrap_or_default();
        let verb = match *method {
            Method::GET | Method::HEAD if query.flag("watch") => "watch",
            Method::GET | Method::HEAD if name.is_empty() => "list",
            Method::GET | Method::HEAD => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if name.is_empty() => "deletecollection",
            Method::DELETE => "delete",
            _ => "",
        };
        // A list or watch of one object by field selector is authorized for that name.
        if name.is_empty()
            && matches!(verb, "list" | "watch")
            && let Some(sel) = query.get("fieldSelector")
            && let Some(n) = sel
                .strip_prefix("metadata.name=")
                .filter(|n| !n.contains(','))
        {
            name = n.trim_start_matches('=').to_string();
        }
        let mut namespace = t.namespace.clone().unwrap_or_default();
        if t.plural == "namespaces" && t.group.is_empty() && namespace.is_empty() {
            namespace = name.clone();
        }
        Self {
            verb: verb.into(),
            resource_request: true,
            path: path.to_string(),
            group: t.group,
            version: t.version,
            resource: t.plural,
            subresource: t.sub.unwrap_or_default(),
            namespace,
            name,
        }
    }
}

/// The 403 kube-apiserver answers for a request its authorizer denied.
pub fn forbidden(who: &Identity, a: &Attributes, reason: &str) -> ApiError {
    let what = if !a.resource_request {
        format!("User {:?} cannot {} path {:?}", who.user, a.verb, a.path)
    } else {
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let scope = if a.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", a.namespace)
        };
        format!(
            "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
            who.user, a.verb, a.group
        )
    };
    let what = if reason.is_empty() {
        what
    } else {
        format!("{what}: {reason}")
    };
    forbidden_error(&a.resource, &a.group, &a.name, &what)
}

/// kube-apiserver's `NewForbidden`: `<resource>.<group> "<name>" is forbidden: <why>`.
pub fn forbidden_error(resource: &str, group: &str, name: &str, why: &str) -> ApiError {
    let gr = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let message = match (gr.is_empty(), name.is_empty()) {
        (true, _) => format!("forbidden: {why}"),
        (false, true) => format!("{gr} is forbidden: {why}"),
        (false, false) => format!("{gr} {name:?} is forbidden: {why}"),
    };
    ApiError {
        code: 403,
        reason: "Forbidden",
        message,
        details: Some(json!({"name": name, "group": group, "kind": resource})),
    }
}

/// A request body as JSON: protobuf (kubectl's typed commands) or JSON.
pub(crate) fn body_json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.starts_with(b"k8s\0") {
        return crate::proto::decode(body).map_err(|e| ApiError::bad_request(e.to_string()));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding the body: {e}")))
}

/// The verdict on a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, and why.
    Allow(String),
    /// Denied; the reason (RBAC resolution errors) or "".
    Deny(String),
}

/// Authentication and authorization settings of a server, and the RBAC cache.
pub struct Auth {
    /// The authorizer.
    pub mode: Mode,
    tokens: Vec<tokens::StaticToken>,
    signer: tokens::Signer,
    cache: rbac::Cache,
}

impl std::fmt::Debug for Auth {
    // Tokens are secret: only how many there are is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("mode", &self.mode)
            .field("static_tokens", &self.tokens.len())
            .field("signer", &self.signer)
            .finish()
    }
}

/// Failures to set up authentication.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token auth file or signing key is malformed.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong (never the token itself).
        message: String,
    },
}

impl AuthError {
    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Io { .. })
    }
}

impl Auth {
    /// Settings for a server: `admin_token` authenticates as [`ADMIN_USER`] in
    /// `system:masters`; `token_file` (kube-apiserver's `--token-auth-file` CSV) adds users;
    /// the service-account signing key is `sa-signing.key` in `dir` (created when missing).
    pub fn new(
        mode: Mode,
        admin_token: &str,
        token_file: Option<&Path>,
        dir: &Path,
    ) -> Result<Self, AuthError> {
        let mut tokens = vec![tokens::StaticToken {
            token: admin_token.to_string(),
            identity: Identity::new(ADMIN_USER, vec![MASTERS.into()]),
        }];
        if let Some(path) = token_file {
            tokens.extend(tokens::read_token_file(path)?);
        }
        Ok(Self {
            mode,
            tokens,
            signer: tokens::Signer::load_or_create(&dir.join("sa-signing.key"))?,
            cache: rbac::Cache::default(),
        })
    }

    /// The identity a bearer token stands for: a static token, a service-account JWT, or a
    /// legacy service-account token Secret's token.
    pub fn authenticate(&self, api: &Api, token: &str) -> Option<Identity> {
        if let Some(i) = tokens::find_static(&self.tokens, token) {
            return Some(i);
        }
        if let Some(i) = self.signer.verify(api, token) {
            return Some(i);
        }
        let user = api.service_account_of(token)?;
        Some(tokens::service_account_identity(&user, "", None))
    }

    /// Whether `who` may do `a`.
    pub fn authorize(&self, api: &Api, who: &Identity, a: &Attributes) -> Decision {
        if self.mode == Mode::AlwaysAllow || who.is_master() {
            return Decision::Allow(String::new());
        }
        let found = self.cache.get(&api.store).authorize(who, a);
        match found.allowed {
            Some(why) => Decision::Allow(why),
            None if found.errors.is_empty() => Decision::Deny(String::new()),
            None if found.errors.len() == 1 => Decision::Deny(format!("RBAC: {}", found.errors[0])),
            None => Decision::Deny(format!("RBAC: [{}]", found.errors.join(", "))),
        }
    }

    /// [`Auth::authorize`], as the 403 a denied request gets.
    pub fn check(&self, api: &Api, who: &Identity, a: &Attributes) -> Result<(), ApiError> {
        match self.authorize(api, who, a) {
            Decision::Allow(_) => Ok(()),
            Decision::Deny(reason) => Err(forbidden(who, a, &reason)),
        }
    }

    /// The current RBAC objects, parsed.
    pub fn snapshot(&self, api: &Api) -> Arc<rbac::Snapshot> {
        self.cache.get(&api.store)
    }

    /// The service-account token signer.
    pub fn signer(&self) -> &tokens::Signer {
        &self.signer
    }
}

#[cfg(test)]
mod tests;
