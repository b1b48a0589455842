//! Clients of workload clusters, built from their `<cluster>-kubeconfig` Secret and cached until
//! that Secret changes (a renewed certificate gives a new client).

use std::{collections::HashMap, sync::Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use slipway_api::names::secrets;

use crate::Error;

/// The cache.
#[derive(Default)]
pub struct Remote {
    cache: Mutex<HashMap<(String, String), (String, Client)>>,
}

impl Remote {
    /// A client of the workload cluster `cluster` in `ns`; `None` while it has no kubeconfig.
    pub async fn client(
        &self,
        management: &Client,
        ns: &str,
        cluster: &str,
    ) -> Result<Option<Client>, Error> {
        let api: Api<Secret> = Api::namespaced(management.clone(), ns);
        let Some(secret) = api
            .get_opt(&secrets::name(cluster, secrets::KUBECONFIG_SUFFIX))
            .await?
        else {
            return Ok(None);
        };
        let rv = secret.resource_version().unwrap_or_default();
        let key = (ns.to_string(), cluster.to_string());
        if let Some((seen, c)) = self.cache.lock().expect("remote cache").get(&key)
            && *seen == rv
        {
            return Ok(Some(c.clone()));
        }
        let Some(value) = secret.data.as_ref().and_then(|d| d.get(secrets::VALUE_KEY)) else {
            return Err(Error::Contract(format!(
                "Secret {ns}/{} has no key {:?}",
                secret.name_any(),
                secrets::VALUE_KEY
            )));
        };
        let bad = |e: String| {
            Error::Contract(format!(
                "Secret {ns}/{}: not a usable kubeconfig: {e}",
                secret.name_any()
            ))
        };
        let text = String::from_utf8(value.0.clone()).map_err(|e| bad(e.to_string()))?;
        let kc = kube::config::Kubeconfig::from_yaml(&text).map_err(|e| bad(e.to_string()))?;
        let mut config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| bad(e.to_string()))?;
        // One unreachable cluster must not hold a reconcile worker for long.
        config.connect_timeout = Some(std::time::Duration::from_secs(3));
        config.read_timeout = Some(std::time::Duration::from_secs(10));
        let client = Client::try_from(config).map_err(|e| bad(e.to_string()))?;
        self.cache
            .lock()
            .expect("remote cache")
            .insert(key, (rv, client.clone()));
        Ok(Some(client))
    }
}
