//! The bearer token EKS accepts (what `aws eks get-token` prints): `k8s-aws-v1.` and the
//! unpadded base64url of an STS `GetCallerIdentity` URL presigned with SigV4 for 60 seconds,
//! with the `x-k8s-aws-id: <cluster>` header signed in. EKS calls STS with it to learn who is
//! asking; the token is good for about 15 minutes, so the kubeconfig carrying it is renewed.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign},
    sign::v4,
};
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine;

use crate::ProviderError;

/// Token prefix EKS expects.
pub const PREFIX: &str = "k8s-aws-v1.";

/// A token for EKS cluster `cluster` in `region`, signed with `creds` at `now`.
pub fn token(
    creds: &Credentials,
    region: &str,
    cluster: &str,
    now: SystemTime,
) -> Result<String, ProviderError> {
    let host = format!("sts.{region}.amazonaws.com");
    let url = format!("https://{host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let identity: Identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(60));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| ProviderError::terminal(format!("signing the EKS token: {e}")))?
        .into();
    let headers = [("host", host.as_str()), ("x-k8s-aws-id", cluster)];
    let signable = SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(&[]))
        .map_err(|e| ProviderError::terminal(format!("signing the EKS token: {e}")))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| ProviderError::terminal(format!("signing the EKS token: {e}")))?
        .into_parts();
    let mut request = http::Request::builder()
        .method("GET")
        .uri(&url)
        .header("x-k8s-aws-id", cluster)
        .body(())
        .map_err(|e| ProviderError::terminal(format!("signing the EKS token: {e}")))?;
    instructions.apply_to_request_http1x(&mut request);
    let presigned = request.uri().to_string();
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_a_presigned_get_caller_identity_url_for_the_cluster() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let t = token(&creds, "eu-west-1", "default_c1", at).unwrap();
        assert!(t.starts_with(PREFIX), "{t}");
        assert!(!t.contains('='), "unpadded");
        let url = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&t[PREFIX.len()..])
                .unwrap(),
        )
        .unwrap();
        assert!(
            url.starts_with(
                "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
            ),
            "{url}"
        );
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20270115%2Feu-west-1%2Fsts%2Faws4_request",
            "X-Amz-Date=20270115T080000Z",
            "X-Amz-Expires=60",
            "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
            "X-Amz-Signature=",
        ] {
            assert!(url.contains(part), "{part} missing from {url}");
        }
        assert!(!url.contains("secret"), "the secret key never appears");
        // Deterministic for the same inputs; another cluster signs differently.
        assert_eq!(token(&creds, "eu-west-1", "default_c1", at).unwrap(), t);
        assert_ne!(token(&creds, "eu-west-1", "default_c2", at).unwrap(), t);
    }
}
