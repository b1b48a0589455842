//! Service-account tokens: the token Secrets are filled as kube-controller-manager's token
//! controller fills them, and a bearer token is resolved to the service account it belongs
//! to.

use serde_json::{Value, json};

use super::Api;
use crate::meta::meta_str;

/// Service-account token Secrets get their token, as kube-controller-manager's token
/// controller fills them: `data.token` and `data.namespace`. The token then authenticates as
/// the service account ([`Api::service_account_of`]).
pub(super) fn fill_service_account_token(secret: &mut Value) {
    use base64::Engine;
    use rand::Rng;
    if secret["type"] != SA_TOKEN_TYPE
        || secret
            .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return;
    }
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let token: String = (0..32)
        .map(|_| format!("{:02x}", rand::rng().random::<u8>()))
        .collect();
    let ns = meta_str(secret, "namespace")
        .unwrap_or_default()
        .to_string();
    if !secret["data"].is_object() {
        secret["data"] = json!({});
    }
    secret["data"]["token"] = json!(b64(&token));
    secret["data"]["namespace"] = json!(b64(&ns));
}

/// Type of service-account token Secrets.
pub const SA_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";

impl Api {
    /// The service account (`system:serviceaccount:<ns>:<name>`) whose token Secret holds
    /// `token`, if any.
    pub fn service_account_of(&self, token: &str) -> Option<String> {
        use base64::Engine;
        let (_, secrets) = self.store.list("/secrets", None);
        secrets.into_iter().find_map(|(_, e)| {
            let v = e.value();
            if v["type"] != SA_TOKEN_TYPE {
                return None;
            }
            let stored = base64::engine::general_purpose::STANDARD
                .decode(v["data"]["token"].as_str()?)
                .ok()?;
            let same = stored.len() == token.len()
                && stored
                    .iter()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
            let sa = v
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")?
                .as_str()?;
            same.then(|| {
                format!(
                    "system:serviceaccount:{}:{sa}",
                    meta_str(&v, "namespace").unwrap_or_default()
                )
            })
        })
    }
}
