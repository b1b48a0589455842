//! Provider failures, split by what the caller should do about them.

use std::time::Duration;

use slipway_api::names::reasons;

/// A provider failure.
///
/// - `Transient`: throttling, timeouts, eventual consistency; retry with backoff.
/// - `Unavailable`: a missing tool, credential or endpoint; report it plainly, retry slowly.
/// - `Terminal`: the spec cannot work (unknown instance type, bad AMI); no retry helps.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Retry with backoff.
    #[error("{message}")]
    Transient {
        /// What failed, with the provider's message.
        message: String,
        /// Underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Something the provider needs is missing: say what and how to get it.
    #[error("{what} is unavailable: {message}")]
    Unavailable {
        /// The missing thing: a binary, credentials, an endpoint.
        what: String,
        /// Why, and how to fix it.
        message: String,
    },
    /// The spec cannot be provisioned as written.
    #[error("{message}")]
    Terminal {
        /// What is wrong, with the provider's message.
        message: String,
    },
}

/// How soon an `Unavailable` failure is retried: long enough not to spin, short enough that
/// installing the missing tool or fixing credentials is noticed promptly.
pub const UNAVAILABLE_RETRY: Duration = Duration::from_secs(30);

impl ProviderError {
    /// A transient failure with no underlying error value.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            source: None,
        }
    }

    /// An unavailable dependency.
    pub fn unavailable(what: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Unavailable {
            what: what.into(),
            message: message.into(),
        }
    }

    /// A terminal failure.
    pub fn terminal(message: impl Into<String>) -> Self {
        Self::Terminal {
            message: message.into(),
        }
    }

    /// Whether retrying with backoff may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// Whether retrying can never help until the spec changes.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Terminal { .. })
    }

    /// A fixed retry delay for failures that are not retried with backoff: `Unavailable` waits
    /// [`UNAVAILABLE_RETRY`]; `Terminal` is not retried until the object changes (`None`);
    /// `Transient` leaves the delay to the caller's backoff (`None`).
    pub fn fixed_retry(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { .. } => Some(UNAVAILABLE_RETRY),
            Self::Transient { .. } | Self::Terminal { .. } => None,
        }
    }

    /// Condition reason reported for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Transient { .. } => reasons::PROVIDER_TRANSIENT_ERROR,
            Self::Unavailable { .. } => reasons::PROVIDER_UNAVAILABLE,
            Self::Terminal { .. } => reasons::PROVIDER_TERMINAL_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_maps_to_its_retry_policy_and_reason() {
        let t = ProviderError::transient("RequestLimitExceeded: slow down");
        let u = ProviderError::unavailable(
            "kind binary",
            "not found on PATH; install it from the kind releases",
        );
        let x =
            ProviderError::terminal("InvalidParameterValue: instance type t9.huge does not exist");
        assert!(t.is_transient() && !t.is_terminal());
        assert!(!u.is_transient() && !u.is_terminal());
        assert!(x.is_terminal() && !x.is_transient());
        assert_eq!(t.fixed_retry(), None);
        assert_eq!(u.fixed_retry(), Some(UNAVAILABLE_RETRY));
        assert_eq!(x.fixed_retry(), None);
        assert_eq!(t.reason(), "ProviderTransientError");
        assert_eq!(u.reason(), "ProviderUnavailable");
        assert_eq!(x.reason(), "ProviderTerminalError");
        assert_eq!(
            u.to_string(),
            "kind binary is unavailable: not found on PATH; install it from the kind releases"
        );
    }

    #[test]
    fn transient_keeps_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
        let e = ProviderError::Transient {
            message: "DescribeVpcs".into(),
            source: Some(Box::new(io)),
        };
        let source = std::error::Error::source(&e).unwrap();
        assert_eq!(source.to_string(), "connect timed out");
    }
}
