//! The conversion webhook `slipway controller --webhook-port` serves for real clusters:
//! `POST /convert` over HTTPS, answered by [`slipway_api::conversion::review::review`].
//!
//! It manages its own CA (no cert-manager): the CA lives in the Secret
//! `slipway-system/slipway-webhook-ca`, the serving certificate (for the Service
//! `slipway-system/slipway-webhook-service`) in `slipway-system/slipway-webhook-tls`. On start
//! the CA is injected into `spec.conversion.webhook.clientConfig.caBundle` of every CRD whose
//! webhook is that Service; the serving certificate is renewed when less than a third of its
//! lifetime remains ([`needs_renewal`]), checked every [`RENEW_CHECK`].

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, OnceLock, RwLock},
    time::Duration,
};

use axum::{Json, Router, routing::post};
use base64::Engine;
use k8s_openapi::{
    ByteString, api::core::v1::Secret,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use slipway_api::conversion::{Context, review::review};
use slipway_pki::CertKey;

use crate::OpsError;

/// Namespace of the webhook's Service and Secrets.
pub const NAMESPACE: &str = "slipway-system";
/// The Service in front of the controller's webhook port (created by `slipway init`).
pub const SERVICE: &str = "slipway-webhook-service";
/// The Secret holding the webhook's CA.
pub const CA_SECRET: &str = "slipway-webhook-ca";
/// The Secret holding the serving certificate.
pub const TLS_SECRET: &str = "slipway-webhook-tls";
/// How often the serving certificate's remaining lifetime is checked.
pub const RENEW_CHECK: Duration = Duration::from_secs(3600);

/// Whether a certificate valid from `not_before` to `not_after` must be renewed at `now`
/// (Unix seconds): when less than a third of its lifetime remains.
pub fn needs_renewal(not_before: i64, not_after: i64, now: i64) -> bool {
    let lifetime = (not_after - not_before).max(0);
    lifetime == 0 || (not_after - now) * 3 < lifetime
}

/// DNS names (and loopback) the serving certificate is valid for.
pub fn serving_hosts() -> Vec<String> {
    vec![
        SERVICE.to_string(),
        format!("{SERVICE}.{NAMESPACE}"),
        format!("{SERVICE}.{NAMESPACE}.svc"),
        format!("{SERVICE}.{NAMESPACE}.svc.cluster.local"),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ]
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> OpsError {
    OpsError::invalid(format!("conversion webhook {what}"), e)
}

fn secret_field(s: &Secret, key: &str) -> Option<String> {
    let v = s.data.as_ref()?.get(key)?;
    String::from_utf8(v.0.clone()).ok()
}

fn tls_secret(name: &str, ck: &CertKey, ca_pem: &str) -> Secret {
    let data = BTreeMap::from([
        (
            "tls.crt".to_string(),
            ByteString(ck.cert_pem.clone().into_bytes()),
        ),
        (
            "tls.key".to_string(),
            ByteString(ck.key_pem.clone().into_bytes()),
        ),
        ("ca.crt".to_string(), ByteString(ca_pem.as_bytes().to_vec())),
    ]);
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NAMESPACE.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// The CA from its Secret, created on first start.
async fn ensure_ca(secrets: &Api<Secret>) -> Result<CertKey, OpsError> {
    for _ in 0..2 {
        if let Some(s) = secrets.get_opt(CA_SECRET).await? {
            return match (secret_field(&s, "tls.crt"), secret_field(&s, "tls.key")) {
                (Some(cert_pem), Some(key_pem)) => Ok(CertKey { cert_pem, key_pem }),
                _ => Err(OpsError::invalid(
                    format!("Secret {NAMESPACE}/{CA_SECRET}"),
                    "tls.crt or tls.key is missing",
                )),
            };
        }
        let ca = slipway_pki::new_ca("slipway-webhook-ca").map_err(|e| tls_err("CA", e))?;
        match secrets
            .create(
                &PostParams::default(),
                &tls_secret(CA_SECRET, &ca, &ca.cert_pem),
            )
            .await
        {
            Ok(_) => return Ok(ca),
            // Another replica created it first: read theirs.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(OpsError::invalid(
        format!("Secret {NAMESPACE}/{CA_SECRET}"),
        "created concurrently but not readable",
    ))
}

/// The serving certificate from its Secret; issued anew when missing, signed by another CA or
/// due for renewal.
async fn ensure_serving(secrets: &Api<Secret>, ca: &CertKey) -> Result<CertKey, OpsError> {
    let current = secrets.get_opt(TLS_SECRET).await?;
    if let Some(s) = &current
        && let (Some(cert_pem), Some(key_pem), Some(ca_pem)) = (
            secret_field(s, "tls.crt"),
            secret_field(s, "tls.key"),
            secret_field(s, "ca.crt"),
        )
        && ca_pem == ca.cert_pem
        && let (Ok(nb), Ok(na)) = (
            slipway_pki::not_before(&cert_pem),
            slipway_pki::not_after(&cert_pem),
        )
        && !needs_renewal(nb, na, now())
    {
        return Ok(CertKey { cert_pem, key_pem });
    }
    let serving = slipway_pki::serving_cert(ca, &serving_hosts())
        .map_err(|e| tls_err("serving certificate", e))?;
    let secret = tls_secret(TLS_SECRET, &serving, &ca.cert_pem);
    if current.is_some() {
        secrets
            .patch(
                TLS_SECRET,
                &PatchParams::default(),
                &Patch::Merge(json!({"data": secret.data})),
            )
            .await?;
    } else {
        secrets.create(&PostParams::default(), &secret).await?;
    }
    tracing::info!("conversion webhook serving certificate issued");
    Ok(serving)
}

/// Puts the CA into the caBundle of every CRD whose conversion webhook is [`SERVICE`];
/// returns how many CRDs were patched.
pub async fn inject_ca_bundle(client: &kube::Client, ca_pem: &str) -> Result<usize, OpsError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut patched = 0;
    for crd in crds.list(&ListParams::default()).await? {
        let Some(cc) = crd
            .spec
            .conversion
            .as_ref()
            .and_then(|c| c.webhook.as_ref())
            .and_then(|w| w.client_config.as_ref())
        else {
            continue;
        };
        let ours = cc
            .service
            .as_ref()
            .is_some_and(|s| s.name == SERVICE && s.namespace == NAMESPACE);
        if !ours || cc.ca_bundle.as_ref().map(|b| b.0.as_slice()) == Some(ca_pem.as_bytes()) {
            continue;
        }
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"conversion": {"webhook": {"clientConfig": {"caBundle": bundle}}}}})),
        )
        .await?;
        patched += 1;
    }
    Ok(patched)
}

fn storage_version(group: &str, kind: &str) -> Option<String> {
    static VERSIONS: OnceLock<BTreeMap<(String, String), String>> = OnceLock::new();
    VERSIONS
        .get_or_init(|| {
            slipway_api::crds::core()
                .into_iter()
                .filter_map(|crd| {
                    let v = crd.spec.versions.iter().find(|v| v.storage)?.name.clone();
                    Some(((crd.spec.group.clone(), crd.spec.names.kind.clone()), v))
                })
                .collect()
        })
        .get(&(group.to_string(), kind.to_string()))
        .cloned()
}

/// Prunes a converted object by its target version's schema, as the plane does, so what
/// that version has no place for is kept by the conversion's residual record.
fn prune(version: &str, obj: &mut Value) {
    static SCHEMAS: OnceLock<BTreeMap<(String, String), Value>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        let mut m = BTreeMap::new();
        for crd in slipway_api::crds::core() {
            for v in &crd.spec.versions {
                if let Some(s) = slipway_apiserver::schema::version_schema(&crd, &v.name) {
                    m.insert((crd.spec.names.kind.clone(), v.name.clone()), s);
                }
            }
        }
        m
    });
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    if let Some(s) = schemas.get(&(kind, version.to_string())) {
        slipway_apiserver::schema::prune(s, obj);
    }
}

async fn convert(Json(body): Json<Value>) -> Json<Value> {
    let ctx = Context {
        version_of: &storage_version,
        normalize: &prune,
    };
    Json(review(&body, &ctx))
}

/// Serves the webhook on `port` until `shutdown`; renews the serving certificate as it
/// ages. Fails fast when the Secrets cannot be read or written or the port cannot be bound.
pub async fn serve(
    client: kube::Client,
    port: u16,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), OpsError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let ca = ensure_ca(&secrets).await?;
    let serving = ensure_serving(&secrets, &ca).await?;
    let patched = inject_ca_bundle(&client, &ca.cert_pem).await?;
    tracing::info!(patched, "conversion webhook CA injected into CRDs");
    let config =
        slipway_pki::server_config(&serving, &ca.cert_pem).map_err(|e| tls_err("TLS config", e))?;
    let current = Arc::new(RwLock::new(config));
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| OpsError::Bind {
            flag: "--webhook-port",
            addr,
            source,
        })?;
    tracing::info!(%addr, "conversion webhook listening");
    let app = Router::new().route("/convert", post(convert));
    let renew = {
        let current = current.clone();
        async move {
            let mut tick = tokio::time::interval(RENEW_CHECK);
            tick.tick().await;
            loop {
                tick.tick().await;
                match ensure_serving(&secrets, &ca).await.and_then(|s| {
                    slipway_pki::server_config(&s, &ca.cert_pem)
                        .map_err(|e| tls_err("TLS config", e))
                }) {
                    Ok(c) => *current.write().expect("lock") = c,
                    Err(e) => {
                        tracing::warn!(error = %e, "conversion webhook certificate check failed")
                    }
                }
            }
        }
    };
    let accept = async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(current.read().expect("lock").clone());
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(
                    hyper_util::rt::TokioIo::new(tls),
                    hyper_util::service::TowerToHyperService::new(app),
                )
                .await;
            });
        }
    };
    tokio::select! {
        () = shutdown => {}
        () = renew => {}
        () = accept => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_when_less_than_a_third_of_the_lifetime_remains() {
        let (nb, na) = (0, 300);
        for (now, due) in [
            (0, false),
            (150, false),
            (199, false),
            (200, false),
            (201, true),
            (299, true),
            (300, true),
            (1000, true),
        ] {
            assert_eq!(needs_renewal(nb, na, now), due, "at {now}");
        }
        assert!(needs_renewal(10, 10, 5), "an empty lifetime is always due");
    }

    #[test]
    fn the_serving_certificate_names_the_service() {
        let hosts = serving_hosts();
        assert!(hosts.contains(&"slipway-webhook-service.slipway-system.svc".to_string()));
    }
}
