//! The KubeFed sink: what `kubefedctl join <cluster>` leaves behind, done by slipway.
//!
//! In the workload cluster: namespace `kube-federation-system`, ServiceAccount
//! `<cluster>-slipway`, its token Secret (type `kubernetes.io/service-account-token`) and
//! cluster-wide RBAC (`kubefed-controller-manager:<cluster>-slipway`). In the management
//! cluster's KubeFed namespace: a Secret holding that token (key `token`) and a
//! KubeFedCluster `<namespace>-<cluster>` with the endpoint, the CA bundle and `secretRef`;
//! its status carries Ready / Offline from the registry's health probes.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::core::v1::{Namespace, Secret, ServiceAccount},
    api::rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;
use slipway_api::{Cluster, names::labels, registry::KubeFedCluster};

use slipway_runtime::{
    Context, Error,
    objects::{create_once, delete_if_exists},
};

use crate::{Access, health::Outcome};

const HOST: &str = "slipway";
const NAMESPACE: &str = "kube-federation-system";

fn names(cluster: &Cluster) -> (String, String) {
    let sa = format!("{}-{HOST}", cluster.name_any());
    let fed = format!(
        "{}-{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    );
    (sa, fed)
}

/// Creates `obj` (given as JSON) unless it exists.
async fn create<K>(api: &Api<K>, obj: serde_json::Value) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(obj)?;
    create_once(api, &obj).await?;
    Ok(())
}

/// Joins the cluster (once) and keeps the KubeFedCluster's spec and status current.
pub async fn write(
    cluster: &Cluster,
    ctx: &Context,
    kf_ns: &str,
    access: &Access,
    health: &crate::health::State,
) -> Result<(), Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let (sa, fed) = names(cluster);
    let Some(remote) = ctx
        .remote
        .client(&ctx.client, &ns, &cluster.name_any())
        .await?
    else {
        return Ok(());
    };
    let fed_api: Api<KubeFedCluster> = Api::namespaced(ctx.client.clone(), kf_ns);
    let token_api: Api<Secret> = Api::namespaced(ctx.client.clone(), kf_ns);
    let existing = fed_api.get_opt(&fed).await?;
    if existing.is_none() || token_api.get_opt(&fed).await?.is_none() {
        create(
            &Api::<Namespace>::all(remote.clone()),
            json!({"metadata": {"name": NAMESPACE}}),
        )
        .await?;
        create(
            &Api::<ServiceAccount>::namespaced(remote.clone(), NAMESPACE),
            json!({"metadata": {"name": sa, "annotations": {"kubernetes.io/enforce-mountable-secrets": "true"}},
                   "automountServiceAccountToken": false}),
        )
        .await?;
        let secrets: Api<Secret> = Api::namespaced(remote.clone(), NAMESPACE);
        create(
            &secrets,
            json!({"metadata": {"name": sa, "annotations": {"kubernetes.io/service-account.name": sa}},
                   "type": "kubernetes.io/service-account-token"}),
        )
        .await?;
        let role = format!("kubefed-controller-manager:{sa}");
        create(
            &Api::<ClusterRole>::all(remote.clone()),
            json!({"metadata": {"name": role},
                   "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                             {"nonResourceURLs": ["*"], "verbs": ["get"]}]}),
        )
        .await?;
        create(
            &Api::<ClusterRoleBinding>::all(remote.clone()),
            json!({"metadata": {"name": role},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                   "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]}),
        )
        .await?;
        let Some(token) = secrets
            .get_opt(&sa)
            .await?
            .and_then(|s| s.data)
            .and_then(|d| d.get("token").cloned())
        else {
            return Err(Error::Workload(format!(
                "no token issued for ServiceAccount {NAMESPACE}/{sa} yet"
            )));
        };
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(fed.clone()),
                namespace: Some(kf_ns.into()),
                labels: Some(BTreeMap::from([(
                    labels::CLUSTER_NAME.into(),
                    cluster.name_any(),
                )])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("token".to_string(), ByteString(token.0))])),
            ..Default::default()
        };
        create_once(&token_api, &secret).await?;
    }
    let spec = json!({"apiEndpoint": access.server, "caBundle": access.ca_data, "secretRef": {"name": fed}});
    if existing
        .as_ref()
        .is_none_or(|e| serde_json::to_value(&e.spec).unwrap_or_default() != spec)
    {
        fed_api
            .patch(
                &fed,
                &PatchParams::apply("slipway-registry").force(),
                &Patch::Apply(&json!({
                    "apiVersion": "core.kubefed.io/v1beta1", "kind": "KubeFedCluster",
                    "metadata": {"name": fed, "namespace": kf_ns,
                                 "labels": {labels::CLUSTER_NAME: cluster.name_any(), labels::CLUSTER_MANAGER: HOST}},
                    "spec": spec,
                })),
            )
            .await?;
    }
    // Status as KubeFed's own health check writes it: Ready, or Offline when unreachable.
    let (ready, reason, message) = match &health.reported {
        Some(Outcome::Healthy(_)) => (
            "True",
            "ClusterReady",
            "/readyz responded with ok".to_string(),
        ),
        Some(Outcome::Unreachable(m)) => ("Unknown", "ClusterNotReachable", m.clone()),
        Some(Outcome::Unhealthy(m)) | Some(Outcome::Unauthorized(m)) => {
            ("False", "ClusterNotReady", m.clone())
        }
        None => return Ok(()),
    };
    let old = existing.and_then(|e| e.status).unwrap_or_default();
    let old_ready = old.conditions.iter().flatten().find(|c| c.type_ == "Ready");
    if old_ready.is_some_and(|c| c.status == ready && c.reason.as_deref() == Some(reason))
        && old.kubernetes_version == health.version
    {
        return Ok(());
    }
    let now = (ctx.clock)().to_string();
    let mut conds = vec![
        json!({"type": "Ready", "status": ready, "reason": reason, "message": message,
                                "lastProbeTime": now, "lastTransitionTime": now}),
    ];
    if ready == "Unknown" {
        conds.push(
            json!({"type": "Offline", "status": "True", "reason": reason, "message": message,
                          "lastProbeTime": now, "lastTransitionTime": now}),
        );
    }
    fed_api
        .patch_status(
            &fed,
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"status": {"conditions": conds, "kubernetesVersion": health.version}}),
            ),
        )
        .await?;
    Ok(())
}

/// Removes the management-side objects (the workload cluster goes with its Cluster).
pub async fn remove(cluster: &Cluster, ctx: &Context, kf_ns: &str) -> Result<(), Error> {
    let (_, fed) = names(cluster);
    delete_if_exists(
        &Api::<KubeFedCluster>::namespaced(ctx.client.clone(), kf_ns),
        &fed,
    )
    .await?;
    delete_if_exists(&Api::<Secret>::namespaced(ctx.client.clone(), kf_ns), &fed).await?;
    Ok(())
}
