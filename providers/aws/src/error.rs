//! AWS SDK errors mapped to [`ProviderError`]: throttling, server errors and eventual-
//! consistency NotFound races are transient; rejected credentials and an unreachable endpoint
//! are `Unavailable`; a request AWS says can never work (bad instance type, AMI, parameter) is
//! terminal, with AWS's own message. Messages name the operation and never carry request
//! bodies (user data, credentials).

use std::time::Duration;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::{display::DisplayErrorContext, metadata::ProvideErrorMetadata};
use backon::{ExponentialBuilder, Retryable};

use crate::ProviderError;

/// AWS error codes that mean "slow down" or "try again".
const TRANSIENT: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "Unavailable",
    "InternalError",
    "InternalFailure",
    "DependencyViolation",
    "IncorrectState",
    "InvalidIPAddress.InUse",
    "ResourceInUse",
    "ResourceInUseException",
];

/// AWS error codes that mean the credentials are missing or rejected.
const CREDENTIALS: &[&str] = &[
    "AuthFailure",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "MissingAuthenticationToken",
    "UnrecognizedClientException",
    "AccessDenied",
    "AccessDeniedException",
];

/// AWS error codes that mean the request can never succeed as written.
pub const TERMINAL: &[&str] = &[
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "InvalidAMIID.Malformed",
    "InvalidAMIID.NotFound",
    "InvalidAMIID.Unavailable",
    "InvalidInstanceType",
    "InvalidInstanceType.NotFound",
    "Unsupported",
    "UnsupportedOperation",
    "InvalidKeyPair.NotFound",
    "InvalidBlockDeviceMapping",
];

/// A failed AWS call: the [`ProviderError`] it maps to, and AWS's error code when AWS
/// answered, so that callers decide on the code (`InvalidVpcID.NotFound`,
/// `InvalidPermission.Duplicate`, ...) and never on message text.
#[derive(Debug)]
pub struct AwsError {
    code: Option<String>,
    error: ProviderError,
}

impl AwsError {
    /// An error with this code (tests of callers).
    #[cfg(test)]
    pub(crate) fn with_code(code: Option<&str>, error: ProviderError) -> Self {
        Self {
            code: code.map(str::to_string),
            error,
        }
    }

    /// AWS's error code, if the service answered.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// Whether AWS answered "not found" (the resource is gone, or not visible yet); the same
    /// rule as [`is_not_found`].
    pub fn is_not_found(&self) -> bool {
        self.code().is_some_and(is_not_found_code)
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for AwsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

impl From<AwsError> for ProviderError {
    fn from(e: AwsError) -> Self {
        e.error
    }
}

/// The AWS error code of an SDK error, if AWS answered.
pub fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// Whether the error is "not found" (the resource is gone, or not visible yet).
pub fn is_not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    code(e).is_some_and(is_not_found_code)
}

fn is_not_found_code(c: &str) -> bool {
    c.contains("NotFound") || c.contains("NotFoundException")
}

/// Maps an SDK error of operation `op`.
pub fn map<E, R>(op: &str, e: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &e {
        SdkError::DispatchFailure(d) if !d.is_timeout() => ProviderError::unavailable(
            "the AWS endpoint",
            format!(
                "{op} could not reach it ({}); check AWS_ENDPOINT_URL, the region and the \
                 network",
                DisplayErrorContext(&e)
            ),
        ),
        SdkError::ConstructionFailure(_) => ProviderError::unavailable(
            "the AWS client configuration",
            format!("{op}: {}", DisplayErrorContext(&e)),
        ),
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("Unknown").to_string();
            let msg = s.err().message().unwrap_or_default().to_string();
            let text = format!("{op}: {code}: {msg}");
            if CREDENTIALS.contains(&code.as_str()) {
                ProviderError::unavailable("AWS credentials", text)
            } else if TERMINAL.contains(&code.as_str()) {
                ProviderError::terminal(text)
            } else {
                ProviderError::Transient {
                    message: text,
                    source: None,
                }
            }
        }
        _ => ProviderError::Transient {
            message: format!("{op}: {}", DisplayErrorContext(&e)),
            source: None,
        },
    }
}

/// Whether a code is one CAPA retries in place: throttling, or a resource created a moment ago
/// that another endpoint does not see yet.
pub fn is_retryable_code(code: &str) -> bool {
    TRANSIENT.contains(&code) || code.ends_with(".NotFound") || code == "InvalidSubnet"
}

/// Runs `f` again on throttling and NotFound-after-create races (1 s doubling, 4 retries), as
/// CAPA's `WaitForWithRetryable` does; other errors return at once.
pub async fn retrying<T, E, R, Fut>(op: &str, f: impl FnMut() -> Fut) -> Result<T, ProviderError>
where
    Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    retrying_coded(op, f).await.map_err(ProviderError::from)
}

/// [`retrying`], keeping AWS's error code for callers that treat some codes as success.
pub async fn retrying_coded<T, E, R, Fut>(op: &str, f: impl FnMut() -> Fut) -> Result<T, AwsError>
where
    Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    retrying_on(op, f, is_retryable_code).await
}

/// Whether a code means AWS refused the request without running it (throttling).
pub fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "RequestThrottled"
            | "TooManyRequestsException"
    )
}

/// [`retrying_coded`] for a create AWS takes no ClientToken for: retried in place only on
/// throttling (AWS did not run it). Anything else, a lost answer or a server error, may have
/// created the resource: the caller's in-flight marker then waits and describes before a new
/// attempt, instead of a blind resend. Callers also turn the SDK's own retries off for it.
pub async fn retrying_create<T, E, R, Fut>(op: &str, f: impl FnMut() -> Fut) -> Result<T, AwsError>
where
    Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    retrying_on(op, f, is_throttling_code).await
}

/// Retries `f` with backoff while AWS answers with a code `retry` accepts; keeps the code of
/// the last answer.
async fn retrying_on<T, E, R, Fut>(
    op: &str,
    f: impl FnMut() -> Fut,
    retry: fn(&str) -> bool,
) -> Result<T, AwsError>
where
    Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    f.retry(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(8))
            .with_max_times(4)
            .with_jitter(),
    )
    .when(|e: &SdkError<E, R>| code(e).is_some_and(retry))
    .await
    .map_err(|e| AwsError {
        code: code(&e).map(str::to_string),
        error: map(op, e),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use aws_sdk_ec2::operation::delete_vpc::DeleteVpcError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::{body::SdkBody, error::ErrorMetadata};

    use super::*;

    fn aws_error(code: &str, message: &str) -> SdkError<DeleteVpcError, Response> {
        SdkError::service_error(
            DeleteVpcError::generic(ErrorMetadata::builder().code(code).message(message).build()),
            Response::new(StatusCode::try_from(400).unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn errors_map_by_code() {
        let e = map(
            "DeleteVpc",
            aws_error("DependencyViolation", "The vpc 'vpc-1' has dependencies"),
        );
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            "DeleteVpc: DependencyViolation: The vpc 'vpc-1' has dependencies"
        );
        let e = map(
            "RunInstances",
            aws_error("InvalidAMIID.NotFound", "ami-1 does not exist"),
        );
        assert!(e.is_terminal(), "{e}");
        let e = map("DescribeVpcs", aws_error("AuthFailure", "not authorized"));
        assert_eq!(e.reason(), "ProviderUnavailable");
        assert!(
            e.to_string().starts_with("AWS credentials is unavailable"),
            "{e}"
        );
        let e = map(
            "DescribeVpcs",
            aws_error("RequestLimitExceeded", "slow down"),
        );
        assert!(e.is_transient());
    }

    #[tokio::test]
    async fn throttling_is_retried_in_place_and_other_errors_are_not() {
        let tries = AtomicU32::new(0);
        let out = retrying("DeleteVpc", || {
            let n = tries.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(aws_error("Throttling", "Rate exceeded"))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(out, 2);
        assert_eq!(tries.load(Ordering::SeqCst), 3);
        let tries = AtomicU32::new(0);
        let e = retrying("RunInstances", || {
            tries.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(aws_error("InvalidParameterValue", "bad")) }
        })
        .await
        .unwrap_err();
        assert!(e.is_terminal());
        assert_eq!(tries.load(Ordering::SeqCst), 1, "not retried");
    }

    #[tokio::test]
    async fn callers_see_the_code_and_the_same_mapped_error() {
        let e = retrying_coded("DeleteVpc", || async {
            Err::<(), _>(aws_error(
                "InvalidParameterValue",
                "NotFound in the text only",
            ))
        })
        .await
        .unwrap_err();
        assert_eq!(e.code(), Some("InvalidParameterValue"));
        assert!(!e.is_not_found(), "decided by the code, not the message");
        let p = ProviderError::from(e);
        assert!(p.is_terminal());
        assert_eq!(
            p.to_string(),
            "DeleteVpc: InvalidParameterValue: NotFound in the text only"
        );
        let e = retrying_coded("AuthorizeSecurityGroupIngress", || async {
            Err::<(), _>(aws_error("InvalidPermission.Duplicate", "already exists"))
        })
        .await
        .unwrap_err();
        assert_eq!(e.code(), Some("InvalidPermission.Duplicate"));
        assert!(!e.is_not_found());
        for c in [
            "InvalidGroup.NotFound",
            "TargetGroupNotFound",
            "LoadBalancerNotFoundException",
        ] {
            let e = AwsError {
                code: Some(c.into()),
                error: ProviderError::transient(c),
            };
            assert!(e.is_not_found(), "{c}");
        }
        let e = AwsError {
            code: None,
            error: ProviderError::transient("DeleteVpc: dispatch failure: NotFound"),
        };
        assert!(!e.is_not_found(), "no code, no NotFound");
    }

    #[test]
    fn retryable_codes() {
        assert!(is_retryable_code("RequestLimitExceeded"));
        assert!(is_retryable_code("InvalidVpcID.NotFound"));
        assert!(is_retryable_code("InvalidInternetGatewayID.NotFound"));
        assert!(is_retryable_code("DependencyViolation"));
        assert!(!is_retryable_code("InvalidParameterValue"));
        assert!(!is_retryable_code("AuthFailure"));
    }
}
