//! What the generic infrastructure cluster reconciler reads and writes for providers that
//! build a whole cluster at once (kind):
//!
//! - [`topology`]: the Cluster's machine shape, read through contract fields only: the control
//!   plane's `spec.replicas`, `spec.version` and `spec.machineTemplate.spec.infrastructureRef`,
//!   and each MachineDeployment's replicas, version and infrastructure template.
//! - [`write_kubeconfig`]: a kubeconfig the provider's tooling made, written to
//!   `<cluster>-kubeconfig` with the annotation that keeps the control plane from replacing it.

use std::collections::BTreeMap;

use crate::{Pool, ProvidedKubeconfig, Topology};
use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};
use slipway_api::{
    Cluster, MachineDeployment,
    common::ContractVersionedObjectReference,
    names::{annotations, labels, secrets},
};

use slipway_runtime::{Context, Error, objects::create_once};

/// The Cluster's topology; `None` while it has no control plane object.
pub async fn topology(ctx: &Context, cluster: &Cluster) -> Result<Option<Topology>, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let Some(cp_ref) = cluster.spec.control_plane_ref.as_ref() else {
        return Ok(None);
    };
    let Some(cp) = ctx.resolver.get(&ns, cp_ref).await? else {
        return Ok(None);
    };
    let spec = &cp.data["spec"];
    let cp_template = spec
        .pointer("/machineTemplate/spec/infrastructureRef")
        .and_then(|r| serde_json::from_value(r.clone()).ok());
    let control_plane = Pool {
        name: cp_ref.name.clone(),
        replicas: replicas(&spec["replicas"]),
        version: spec["version"].as_str().map(String::from),
        machine_template: template_spec(ctx, &ns, cp_template.as_ref()).await?,
    };
    let mds: Api<MachineDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!("{}={}", labels::CLUSTER_NAME, cluster.name_any());
    let mut workers = Vec::new();
    for md in mds.list(&ListParams::default().labels(&selector)).await? {
        if md.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let t = &md.spec.template.spec;
        workers.push(Pool {
            name: md.name_any(),
            replicas: md.spec.replicas.map_or(1, |r| r.max(0) as u32),
            version: t.version.clone(),
            machine_template: template_spec(ctx, &ns, Some(&t.infrastructure_ref)).await?,
        });
    }
    workers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(Topology {
        control_plane,
        workers,
    }))
}

fn replicas(v: &Value) -> u32 {
    v.as_u64().map_or(1, |r| r.min(u64::from(u32::MAX)) as u32)
}

async fn template_spec(
    ctx: &Context,
    ns: &str,
    r: Option<&ContractVersionedObjectReference>,
) -> Result<Value, Error> {
    let Some(r) = r else {
        return Ok(Value::Null);
    };
    Ok(ctx
        .resolver
        .get(ns, r)
        .await?
        .map(|t| t.data["spec"]["template"]["spec"].clone())
        .unwrap_or(Value::Null))
}

/// Writes the provider's kubeconfig to `<cluster>-kubeconfig` unless it is there already.
pub async fn write_kubeconfig(
    ctx: &Context,
    cluster: &Cluster,
    provider: &str,
    kubeconfig: &ProvidedKubeconfig,
) -> Result<(), Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let cluster_name = cluster.name_any();
    let name = secrets::name(&cluster_name, secrets::KUBECONFIG_SUFFIX);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut data = BTreeMap::from([(
        secrets::VALUE_KEY.to_string(),
        ByteString(kubeconfig.value.clone().into_bytes()),
    )]);
    for (k, v) in &kubeconfig.extra {
        data.insert(k.clone(), ByteString(v.clone().into_bytes()));
    }
    let existing = api.get_opt(&name).await?;
    let Some(existing) = existing else {
        let owner = slipway_runtime::objects::cluster_owner_ref(cluster)?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(ns),
                labels: Some(BTreeMap::from([(
                    labels::CLUSTER_NAME.to_string(),
                    cluster_name,
                )])),
                annotations: Some(BTreeMap::from([(
                    annotations::KUBECONFIG_PROVIDER.to_string(),
                    provider.to_string(),
                )])),
                owner_references: Some(vec![owner]),
                ..Default::default()
            },
            type_: Some(secrets::CLUSTER_SECRET_TYPE.into()),
            data: Some(data),
            ..Default::default()
        };
        create_once(&api, &secret).await?;
        tracing::info!(cluster = %cluster.name_any(), provider, "wrote the provider's kubeconfig");
        return Ok(());
    };
    let current = existing.data.clone().unwrap_or_default();
    let same_data = data.iter().all(|(k, v)| current.get(k) == Some(v));
    let annotated =
        existing.annotations().get(annotations::KUBECONFIG_PROVIDER) == Some(&provider.to_string());
    if same_data && annotated {
        return Ok(());
    }
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({
            "metadata": {"annotations": {annotations::KUBECONFIG_PROVIDER: provider}},
            "data": data,
        })),
    )
    .await?;
    tracing::info!(cluster = %cluster.name_any(), provider, "replaced the kubeconfig with the provider's");
    Ok(())
}

/// Whether `<cluster>-kubeconfig` was written by an infrastructure provider.
pub fn provided(secret: &Secret) -> bool {
    secret
        .annotations()
        .contains_key(annotations::KUBECONFIG_PROVIDER)
}
