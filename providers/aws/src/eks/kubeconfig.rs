//! The EKS admin kubeconfig in `<cluster>-kubeconfig`: the EKS endpoint and CA and a presigned
//! STS token ([`super::token`]), renewed once the token is ten minutes old (EKS accepts it for
//! about fifteen). The issue time is the Secret's annotation [`TOKEN_ISSUED_AT`].

use std::collections::BTreeMap;

use aws_credential_types::provider::ProvideCredentials;
use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;
use slipway_api::names::{labels, secrets};
use slipway_runtime::objects::controller_ref;

use super::{EksContext, token};
use crate::{ProviderError, api::AWSManagedControlPlane, clients::Clients};

/// When the kubeconfig's token was issued (unix seconds), on `<cluster>-kubeconfig`.
pub const TOKEN_ISSUED_AT: &str = "slipway.dev/token-issued-at";
/// A token older than this is renewed (EKS accepts it for about 15 minutes).
const RENEW_AFTER_SECONDS: i64 = 10 * 60;

/// The admin kubeconfig of an EKS cluster, as JSON (a kubeconfig may be JSON).
pub fn kubeconfig(cluster: &str, server: &str, ca_data: &str, token: &str) -> String {
    let user = format!("{cluster}-capi-admin");
    let context = format!("{user}@{cluster}");
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
    })
    .to_string()
}

/// Whether the kubeconfig Secret needs a new token (pure): missing, unreadable, or older than
/// ten minutes.
pub fn needs_token(secret: Option<&Secret>, now: i64) -> bool {
    secret
        .and_then(|s| s.annotations().get(TOKEN_ISSUED_AT).cloned())
        .and_then(|t| t.parse::<i64>().ok())
        .is_none_or(|at| now - at >= RENEW_AFTER_SECONDS)
}

pub(super) async fn write(
    ctx: &EksContext,
    cp: &AWSManagedControlPlane,
    cluster: &str,
    c: &Clients,
    eks: &str,
    server: &str,
    ca: &str,
) -> Result<(), ProviderError> {
    let ns = cp.namespace().unwrap_or_default();
    let secrets_api: Api<Secret> = Api::namespaced(ctx.base.client.clone(), &ns);
    let name = secrets::name(cluster, secrets::KUBECONFIG_SUFFIX);
    let kube_err = |e: kube::Error| ProviderError::transient(format!("Secret {name}: {e}"));
    let existing = secrets_api.get_opt(&name).await.map_err(kube_err)?;
    let now = (ctx.base.clock)().as_second();
    let same_target = existing.as_ref().is_some_and(|s| {
        let text = s
            .data
            .as_ref()
            .and_then(|d| d.get(secrets::VALUE_KEY))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .unwrap_or_default();
        text.contains(server) && text.contains(ca)
    });
    if same_target && !needs_token(existing.as_ref(), now) {
        return Ok(());
    }
    let provider = c.credentials.clone().ok_or_else(|| {
        ProviderError::unavailable(
            "AWS credentials",
            "no credentials provider to sign the EKS token",
        )
    })?;
    let creds = provider.provide_credentials().await.map_err(|e| {
        ProviderError::unavailable("AWS credentials", format!("signing the EKS token: {e}"))
    })?;
    let t = token::token(&creds, &c.region, eks, std::time::SystemTime::now())?;
    let value = kubeconfig(eks, server, ca, &t);
    let data = BTreeMap::from([(
        secrets::VALUE_KEY.to_string(),
        ByteString(value.into_bytes()),
    )]);
    let annotations = BTreeMap::from([(TOKEN_ISSUED_AT.to_string(), now.to_string())]);
    match existing {
        Some(_) => {
            secrets_api
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"metadata": {"annotations": annotations}, "data": data})),
                )
                .await
                .map_err(kube_err)?;
        }
        None => {
            let owner = controller_ref(cp).map_err(|e| ProviderError::transient(e.to_string()))?;
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns),
                    labels: Some(BTreeMap::from([(
                        labels::CLUSTER_NAME.to_string(),
                        cluster.to_string(),
                    )])),
                    annotations: Some(annotations),
                    owner_references: Some(vec![owner]),
                    ..Default::default()
                },
                type_: Some(secrets::CLUSTER_SECRET_TYPE.into()),
                data: Some(data),
                ..Default::default()
            };
            slipway_runtime::objects::create_once(&secrets_api, &secret)
                .await
                .map_err(kube_err)?;
        }
    }
    tracing::debug!(cluster, "wrote the EKS kubeconfig with a fresh token");
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn tokens_are_renewed_after_ten_minutes() {
        let secret = |at: &str| Secret {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    TOKEN_ISSUED_AT.to_string(),
                    at.to_string(),
                )])),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(needs_token(None, 1000));
        assert!(needs_token(Some(&secret("garbage")), 1000));
        assert!(!needs_token(Some(&secret("1000")), 1000 + 599));
        assert!(needs_token(Some(&secret("1000")), 1000 + 600));
    }

    #[test]
    fn the_kubeconfig_carries_server_ca_and_token() {
        let kc: Value = serde_json::from_str(&kubeconfig(
            "default_c1",
            "https://x.eks",
            "Q0E=",
            "k8s-aws-v1.abc",
        ))
        .unwrap();
        assert_eq!(kc["clusters"][0]["cluster"]["server"], "https://x.eks");
        assert_eq!(
            kc["clusters"][0]["cluster"]["certificate-authority-data"],
            "Q0E="
        );
        assert_eq!(kc["users"][0]["user"]["token"], "k8s-aws-v1.abc");
        assert_eq!(kc["current-context"], "default_c1-capi-admin@default_c1");
    }
}
