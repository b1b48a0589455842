//! The error of operations: every failure a CLI command can meet, typed by cause so a caller
//! can tell a missing object from a timeout or an unreachable API server.

use std::time::Duration;

/// Operation failures.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The API server refused or failed a request.
    #[error("kube: {0}")]
    Kube(#[from] kube::Error),
    /// A kubeconfig could not be read or turned into a client configuration.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// A shared reconciler helper failed (reference resolution, JSON).
    #[error(transparent)]
    Runtime(#[from] slipway_runtime::Error),
    /// JSON (de)serialization failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Manifests could not be generated.
    #[error(transparent)]
    Generate(#[from] slipway_generate::GenerateError),
    /// The embedded management plane did not start.
    #[error("management plane: {0}")]
    Plane(#[from] slipway_apiserver::plane::PlaneError),
    /// An object that must exist does not.
    #[error("{object} not found{}", hint.as_deref().map(|h| format!(": {h}")).unwrap_or_default())]
    NotFound {
        /// The object, as `Kind namespace/name`.
        object: String,
        /// What its absence means.
        hint: Option<String>,
    },
    /// An object or document is not what the operation needs.
    #[error("{object}: {reason}")]
    Invalid {
        /// The object or document.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Waiting for a state gave up.
    #[error("{what} after {after:?}")]
    Timeout {
        /// What was not reached.
        what: String,
        /// How long it waited.
        after: Duration,
    },
    /// A listen address could not be bound.
    #[error("{flag} {addr}: {source}")]
    Bind {
        /// The flag that named it.
        flag: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Leadership was lost: the process must exit and restart clean.
    #[error("lost leadership: {0}")]
    LostLeadership(String),
}

impl OpsError {
    /// An [`OpsError::Invalid`].
    pub fn invalid(object: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Invalid {
            object: object.into(),
            reason: reason.to_string(),
        }
    }

    /// Whether a retry soon may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Kube(kube::Error::Api(s)) => !matches!(s.code, 400 | 403 | 404 | 422),
            Self::Kube(_) | Self::Timeout { .. } | Self::LostLeadership(_) => true,
            Self::Runtime(e) => e.is_transient(),
            _ => false,
        }
    }
}
