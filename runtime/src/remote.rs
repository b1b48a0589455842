//! Clients of workload clusters, built from their `<cluster>-kubeconfig` Secret and cached until
//! that Secret changes (a renewed certificate gives a new client).
//!
//! [`Remote::client`] reads the Secret every call; [`Remote::recent`] trusts a client whose
//! Secret was read less than a given age ago, for callers on a period (the health probes of
//! every registered cluster) where one management-plane read per call is most of their cost.
//! A kubeconfig is renewed well before its certificate expires, so a client up to that age
//! old still authenticates.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use slipway_api::names::secrets;

use crate::Error;

/// Read timeout of workload clients: a stalled request is abandoned after this long, and an
/// idle pooled connection closed. Several probe periods long.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

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
        // also ends pooled connections that stay idle that long, so it is kept well above the
        // health-probe period: at 10 s every probe found its connection closed and paid a
        // new TLS handshake (and some raced the close and failed).
        config.connect_timeout = Some(std::time::Duration::from_secs(3));
        config.read_timeout = Some(READ_TIMEOUT);
        // Nor may a 429 or 503 hold it: kube's default retry backs off up to 1000 s, and a
        // 429 is an answer here (an eviction a PodDisruptionBudget forbids), which the
        // reconcilers retry on their own schedule.
        config.default_retry = false;
        let client = Client::try_from(config).map_err(|e| bad(e.to_string()))?;
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
