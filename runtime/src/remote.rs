//! Clients of workload clusters, built from their `<cluster>-kubeconfig` Secret and cached until
//! that Secret changes (a renewed certificate gives a new client).
//!
//! [`Remote::client`] reads the Secret every call; [`Remote::recent`] trusts a client whose
//! Secret was read less than a given age ago, for callers on a period (the health probes of
//! every registered cluster) where one management-plane read per call is most of their cost.
//! A kubeconfig is renewed well before its certificate expires, so a client up to that age
//! old still authenticates.
//!
//! Descriptors against CPU: a workload client closes a pooled connection idle for
//! [`POOL_IDLE`] ([`idle_closing_client`]), shorter than the health-probe period, so a cluster
//! at rest holds no connection (each is two descriptors when the simulated server is in this
//! process, and ten thousand clusters share one open-file limit). The price: every probe of
//! a cluster at rest opens a connection and pays a TLS handshake. Clients of clusters whose
//! kubeconfig Secret is gone are dropped from the cache ([`Remote::forget`] and every read
//! that finds no Secret).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use slipway_api::names::secrets;

use crate::Error;

/// Read timeout of workload clients: a stalled request is abandoned after this long. Far above
/// [`POOL_IDLE`], so it never closes a pooled connection the pool may hand out.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a workload client keeps an idle pooled connection: long enough for the requests
/// of one reconcile pass, far below the 10 s health-probe period (at 2 s, the connections of
/// the periodic passes at rest, probes and health checks, still averaged about 0.6 per
/// cluster).
pub const POOL_IDLE: Duration = Duration::from_secs(1);

/// A client for `config` (as [`kube::Client::try_from`] builds, without its retry, tracing
/// and decompression layers) whose pooled connections close after `idle` without a request.
pub fn idle_closing_client(config: kube::Config, idle: Duration) -> Result<Client, kube::Error> {
    use kube::client::ConfigExt;
    use tower::ServiceBuilder;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let https = config.rustls_https_connector_with_connector(http)?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(idle)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(client);
    Ok(kube::client::ClientBuilder::new(service, config.default_namespace.clone()).build())
}

/// The cache.
#[derive(Default)]
pub struct Remote {
    cache: Mutex<HashMap<(String, String), Cached>>,
}

struct Cached {
    /// resourceVersion of the Secret the client was built from.
    rv: String,
    client: Client,
    /// When that Secret was last read.
    read_at: Instant,
}

impl Remote {
    /// Drops the cached client of a cluster (deleted): its pooled connections close.
    pub fn forget(&self, ns: &str, cluster: &str) {
        self.cache
            .lock()
            .expect("remote cache")
            .remove(&(ns.to_string(), cluster.to_string()));
    }

    /// Like [`Remote::client`], without reading the Secret when it was read less than
    /// `max_age` ago.
    pub async fn recent(
        &self,
        management: &Client,
        ns: &str,
        cluster: &str,
        max_age: Duration,
    ) -> Result<Option<Client>, Error> {
        let key = (ns.to_string(), cluster.to_string());
        if let Some(c) = self.cache.lock().expect("remote cache").get(&key)
            && c.read_at.elapsed() < max_age
        {
            return Ok(Some(c.client.clone()));
        }
        self.client(management, ns, cluster).await
    }

    /// A client of the workload cluster `cluster` in `ns`; `None` while it has no kubeconfig.
    pub async fn client(
        &self,
        management: &Client,
        ns: &str,
        cluster: &str,
    ) -> Result<Option<Client>, Error> {
        let api: Api<Secret> = Api::namespaced(management.clone(), ns);
        let key = (ns.to_string(), cluster.to_string());
        let Some(secret) = api
            .get_opt(&secrets::name(cluster, secrets::KUBECONFIG_SUFFIX))
            .await?
        else {
            self.cache.lock().expect("remote cache").remove(&key);
            return Ok(None);
        };
        let rv = secret.resource_version().unwrap_or_default();
        if let Some(c) = self.cache.lock().expect("remote cache").get_mut(&key)
            && c.rv == rv
        {
            c.read_at = Instant::now();
            return Ok(Some(c.client.clone()));
        }
        let Some(value) = secret.data.as_ref().and_then(|d| d.get(secrets::VALUE_KEY)) else {
            return Err(Error::invalid(
                format!("Secret {ns}/{}", secret.name_any()),
                format!("no key {:?}", secrets::VALUE_KEY),
            ));
        };
        let bad = |e: String| {
            Error::invalid(
                format!("Secret {ns}/{}", secret.name_any()),
                format!("not a usable kubeconfig: {e}"),
            )
        };
        let text = String::from_utf8(value.0.clone()).map_err(|e| bad(e.to_string()))?;
        let kc = kube::config::Kubeconfig::from_yaml(&text).map_err(|e| bad(e.to_string()))?;
        let mut config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| bad(e.to_string()))?;
        // One unreachable cluster must not hold a reconcile worker for long. The read timeout
        // would also end a pooled connection idle that long, racing a request sent on it (at
        // 10 s some probes failed so); the pool closes idle connections itself after
        // POOL_IDLE, before the read timeout could.
        config.connect_timeout = Some(std::time::Duration::from_secs(3));
        config.read_timeout = Some(READ_TIMEOUT);
        // Nor may a 429 or 503 hold it: kube's default retry backs off up to 1000 s, and a
        // 429 is an answer here (an eviction a PodDisruptionBudget forbids), which the
        // reconcilers retry on their own schedule.
        config.default_retry = false;
        let client = idle_closing_client(config, POOL_IDLE).map_err(|e| bad(e.to_string()))?;
        self.cache.lock().expect("remote cache").insert(
            key,
            Cached {
                rv,
                client: client.clone(),
                read_at: Instant::now(),
            },
        );
        Ok(Some(client))
    }
}
