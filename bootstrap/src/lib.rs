//! kubeadm bootstrap, the pure parts: the cluster PKI and admin kubeconfig ([`pki`]), the
//! kubeadm configuration documents for a Kubernetes version ([`kubeadm`]), and the cloud-init
//! user data that runs them ([`cloudinit`]), rendered from this crate's `templates/`. The
//! KubeadmControlPlane and KubeadmConfig reconcilers store what these produce in Secrets;
//! nothing here does I/O.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cloudinit;
pub mod kubeadm;
pub mod pki;

/// Bootstrap failures.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Certificate work failed.
    #[error("pki: {0}")]
    Pki(#[from] slipway_pki::TlsError),
    /// The spec or cluster cannot produce a valid configuration.
    #[error("{field}: {reason}")]
    Invalid {
        /// The offending field.
        field: String,
        /// Why.
        reason: String,
    },
    /// A template failed to render or parse back (a bug in slipway).
    #[error("rendering cloud-init: {0}")]
    Render(String),
}

impl BootstrapError {
    /// Bootstrap errors come from input or bugs; retrying does not help.
    pub fn is_transient(&self) -> bool {
        false
    }

    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
