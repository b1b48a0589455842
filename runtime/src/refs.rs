//! Contract references: resolves a v1beta2 `{apiGroup, kind, name}` reference to a served
//! resource through the referenced CRD's contract label (`cluster.x-k8s.io/v1beta2:
//! v1alpha1_v1beta1` -> the last listed version), as upstream core does, so any
//! contract-following provider plugs in. Resolutions are cached.

use std::{collections::HashMap, sync::Mutex};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, ListParams},
};
use slipway_api::{common::ContractVersionedObjectReference, names::labels};

use crate::Error;

/// Resolves and reads referenced objects.
pub struct Resolver {
    client: Client,
    cache: Mutex<HashMap<(String, String), ApiResource>>,
}

impl Resolver {
    /// A resolver over a client.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The served resource of `kind` in `group`, at its newest contract version.
    pub async fn resolve(&self, group: &str, kind: &str) -> Result<ApiResource, Error> {
        let key = (group.to_string(), kind.to_string());
        if let Some(ar) = self.cache.lock().expect("cache lock").get(&key) {
            return Ok(ar.clone());
        }
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let found = crds
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .find(|c| c.spec.group == group && c.spec.names.kind == kind)
            .ok_or_else(|| Error::UnservedKind {
                group: group.to_string(),
                kind: kind.to_string(),
            })?;
        let contract = found
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::CONTRACT_V1BETA2))
            .cloned();
        let version = match contract {
            Some(v) => v.rsplit('_').next().unwrap_or_default().to_string(),
            // Core's own kinds carry no contract label; their storage version is the one.
            None => found
                .spec
                .versions
                .iter()
                .find(|v| v.storage)
                .map(|v| v.name.clone())
                .unwrap_or_default(),
        };
        let ar = ApiResource {
            group: group.to_string(),
            version: version.clone(),
            api_version: format!("{group}/{version}"),
            kind: kind.to_string(),
            plural: found.spec.names.plural.clone(),
        };
        self.cache
            .lock()
            .expect("cache lock")
            .insert(key, ar.clone());
        Ok(ar)
    }

    /// The API for a reference's kind in `namespace`.
    pub async fn api(
        &self,
        namespace: &str,
        r: &ContractVersionedObjectReference,
    ) -> Result<(Api<DynamicObject>, ApiResource), Error> {
        let ar = self.resolve(&r.api_group, &r.kind).await?;
        Ok((
            Api::namespaced_with(self.client.clone(), namespace, &ar),
            ar,
        ))
    }

    /// The referenced object, if it exists.
    pub async fn get(
        &self,
        namespace: &str,
        r: &ContractVersionedObjectReference,
    ) -> Result<Option<DynamicObject>, Error> {
        let (api, _) = self.api(namespace, r).await?;
        Ok(api.get_opt(&r.name).await?)
    }
}
