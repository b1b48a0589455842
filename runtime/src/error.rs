//! The reconcilers' error. Every variant says whether a retry soon may succeed
//! ([`Error::is_transient`]): the runner requeues transient failures in seconds and others
//! slowly, and an operator reading a condition or log sees what kind of failure it was.

/// Reconciler errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("kube: {0}")]
    Kube(#[from] kube::Error),
    /// Adding or removing a finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// An object was read before the API server gave it a uid (a stale cache): the next read
    /// has it.
    #[error("{kind} {name} has no uid yet")]
    NoUid {
        /// Kind of the object.
        kind: String,
        /// Its name.
        name: String,
    },
    /// A reference names a kind no CustomResourceDefinition serves.
    #[error("no CustomResourceDefinition serves kind {kind} in group {group}")]
    UnservedKind {
        /// The reference's API group.
        group: String,
        /// The reference's kind.
        kind: String,
    },
    /// A referenced object does not exist (yet).
    #[error("{kind} {namespace}/{name} does not exist")]
    Missing {
        /// Kind of the object.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// An object does not meet the contract (a template reference to a kind that is no
    /// template, a Secret without its key, a Machine without `spec.version`): retrying
    /// without a change of the object cannot help.
    #[error("{object}: {reason}")]
    Invalid {
        /// The object, as `Kind namespace/name`.
        object: String,
        /// What is wrong.
        reason: String,
    },
    /// An object could not be turned into or read from JSON.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Making key material failed (a random source or encoder failure): retried.
    #[error("pki: {0}")]
    Pki(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A workload cluster did not give what was asked of it (no token for a ServiceAccount yet).
    #[error("workload cluster: {0}")]
    Workload(String),
    /// Deletion is waiting for something to go (a cleanup that returned `Ok` would let the
    /// finalizer go, so waiting is an error that requeues soon).
    #[error("waiting: {0}")]
    Waiting(String),
}

impl Error {
    /// An [`Error::Invalid`] for `object`.
    pub fn invalid(object: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            object: object.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Pki`] from any error of the PKI code.
    pub fn pki(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Pki(Box::new(e))
    }

    /// Whether a retry soon may succeed (API errors other than invalid requests).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Kube(kube::Error::Api(s)) => !matches!(s.code, 400 | 403 | 404 | 422),
            Self::Kube(_) => true,
            Self::Finalizer(_) => true,
            Self::NoUid { .. } | Self::Missing { .. } | Self::Pki(_) | Self::Workload(_) => true,
            Self::Waiting(_) => true,
            Self::UnservedKind { .. } | Self::Invalid { .. } | Self::Json(_) => false,
        }
    }

    /// A write lost to a concurrent one: 409 Conflict, or the finalizer helper's JSON patch
    /// refused with 422 (that patch is well-formed by construction and carries a `test` of the
    /// finalizer list, so a 422 can only mean the list changed underneath it).
    pub fn is_conflict(&self) -> bool {
        use kube::runtime::finalizer::Error as F;
        match self {
            Self::Kube(e) => api_code(e) == Some(409),
            Self::Finalizer(inner) => match inner.as_ref() {
                F::AddFinalizer(e) | F::RemoveFinalizer(e) => {
                    matches!(api_code(e), Some(409 | 422))
                }
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.is_conflict(),
                _ => false,
            },
            _ => false,
        }
    }

    /// The object went away while its finalizer was being removed (its deletion completed
    /// another way): nothing is left to do.
    pub fn is_gone(&self) -> bool {
        use kube::runtime::finalizer::Error as F;
        match self {
            Self::Finalizer(inner) => {
                matches!(inner.as_ref(), F::RemoveFinalizer(e) if api_code(e) == Some(404))
            }
            _ => false,
        }
    }

    /// The reason a deletion is waiting, when that is all this error is.
    pub fn waiting(&self) -> Option<&str> {
        match self {
            Self::Waiting(why) => Some(why),
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::CleanupFailed(e) => e.waiting(),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The HTTP status of an API error.
fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, message: &str) -> Error {
        Error::Kube(kube::Error::Api(
            kube::core::Status::failure(message, "")
                .with_code(code)
                .boxed(),
        ))
    }

    #[test]
    fn transience_by_variant() {
        assert!(api(500, "x").is_transient());
        assert!(api(409, "x").is_transient());
        assert!(!api(422, "x").is_transient());
        assert!(!api(404, "x").is_transient());
        assert!(
            Error::NoUid {
                kind: "Cluster".into(),
                name: "a".into()
            }
            .is_transient()
        );
        assert!(!Error::invalid("Secret a/b", "no key value").is_transient());
        assert!(
            !Error::UnservedKind {
                group: "g".into(),
                kind: "K".into()
            }
            .is_transient()
        );
    }

    #[test]
    fn conflicts_and_waiting_seen_through_the_finalizer_wrapper() {
        assert!(api(409, "conflict").is_conflict());
        assert!(
            !api(422, "spec.replicas: Invalid value").is_conflict(),
            "a schema failure is no conflict"
        );
        let kube_err = |code| match api(code, "x") {
            Error::Kube(e) => e,
            _ => unreachable!(),
        };
        let finalizer_patch = Error::Finalizer(Box::new(
            kube::runtime::finalizer::Error::AddFinalizer(kube_err(422)),
        ));
        assert!(
            finalizer_patch.is_conflict(),
            "the finalizer helper's test op failed"
        );
        let wrapped = Error::Finalizer(Box::new(kube::runtime::finalizer::Error::CleanupFailed(
            Error::Waiting("machines".into()),
        )));
        assert_eq!(wrapped.waiting(), Some("machines"));
        assert!(!wrapped.is_conflict());
        let wrapped = Error::Finalizer(Box::new(kube::runtime::finalizer::Error::ApplyFailed(
            api(409, "c"),
        )));
        assert!(wrapped.is_conflict());
    }
}
