//! KubeadmControlPlane reconciler, certificates part: the cluster PKI Secrets
//! `<cluster>-{ca,etcd,proxy,sa}` are created once and never regenerated (each missing one is
//! created on its own, so a lost etcd CA never replaces the cluster CA), and the admin
//! `<cluster>-kubeconfig` (key `value`) once the Cluster has an endpoint. All are type
//! `cluster.x-k8s.io/secret`, labelled with the cluster name, and owned by the control plane.
//!
//! The kubeconfig's client certificate is renewed 30 days before it expires. Machines (init,
//! joins, scaling, rollout, replica counts) are [`crate::kcp_machines`]'s.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Resource, ResourceExt,
    api::{ObjectMeta, Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;
use slipway_api::{
    Cluster, KubeadmControlPlane,
    common::ApiEndpoint,
    names::{conditions as ct, finalizers, labels, reasons, secrets},
};
use slipway_pki::{self as tls, CertKey};

use slipway_runtime::{hold, reconcile::dispatch};

use slipway_bootstrap::pki::admin_kubeconfig;
use slipway_runtime::{
    Context, Error,
    conditions::{self, Status, desired},
    objects::create_once,
    objects::owner_cluster_name,
};

use crate::{kcp_machines, plan::controlplane::CpAction};

/// Entry point: finalizer dispatch.
pub async fn reconcile(kcp: Arc<KubeadmControlPlane>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<KubeadmControlPlane> =
        Api::namespaced(ctx.client.clone(), &kcp.namespace().unwrap_or_default());
    let (ctx, api) = (&ctx, &api);
    dispatch(
        api,
        finalizers::KUBEADM_CONTROL_PLANE,
        kcp,
        |k| async move { apply(&k, ctx, api).await },
        |k| async move { cleanup(&k, ctx).await },
    )
    .await
}

fn secret(
    kcp: &KubeadmControlPlane,
    cluster: &str,
    name: String,
    data: BTreeMap<String, String>,
) -> Result<Secret, Error> {
    let owner = kcp.controller_owner_ref(&()).ok_or_else(|| Error::NoUid {
        kind: "KubeadmControlPlane".into(),
        name: kcp.name_any(),
    })?;
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: kcp.namespace(),
            labels: Some({
                let mut l =
                    BTreeMap::from([(labels::CLUSTER_NAME.to_string(), cluster.to_string())]);
                // The shard that reconciles the control plane watches its Secrets by this label.
                slipway_runtime::runner::inherit_watch_filter(kcp.labels(), &mut l);
                l
            }),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        type_: Some(secrets::CLUSTER_SECRET_TYPE.into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Default::default()
    })
}

fn cert_key(s: &Secret) -> Option<CertKey> {
    let data = s.data.as_ref()?;
    let text = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    };
    Some(CertKey {
        cert_pem: text(secrets::TLS_CRT)?,
        key_pem: text(secrets::TLS_KEY)?,
    })
}

/// Ensures the four PKI Secrets; returns the cluster CA.
async fn ensure_pki(
    kcp: &KubeadmControlPlane,
    cluster: &str,
    secrets_api: &Api<Secret>,
) -> Result<CertKey, Error> {
    let mut ca = None;
    for (suffix, cn) in [
        (secrets::CA_SUFFIX, "kubernetes"),
        (secrets::ETCD_SUFFIX, "etcd-ca"),
        (secrets::PROXY_SUFFIX, "front-proxy-ca"),
        (secrets::SA_SUFFIX, ""),
    ] {
        let name = secrets::name(cluster, suffix);
        let existing = secrets_api.get_opt(&name).await?;
        let pair = match existing.as_ref().and_then(cert_key) {
            Some(pair) => pair,
            None => {
                let pair = if suffix == secrets::SA_SUFFIX {
                    let (private, public) = tls::new_key_pair().map_err(Error::pki)?;
                    CertKey {
                        cert_pem: public,
                        key_pem: private,
                    }
                } else {
                    tls::new_ca(cn).map_err(Error::pki)?
                };
                let data = BTreeMap::from([
                    (secrets::TLS_CRT.to_string(), pair.cert_pem.clone()),
                    (secrets::TLS_KEY.to_string(), pair.key_pem.clone()),
                ]);
                create_once(secrets_api, &secret(kcp, cluster, name.clone(), data)?).await?;
                // Re-read: a concurrent reconcile may have won the creation.
                secrets_api
                    .get(&name)
                    .await
                    .ok()
                    .as_ref()
                    .and_then(cert_key)
                    .unwrap_or(pair)
            }
        };
        if suffix == secrets::CA_SUFFIX {
            ca = Some(pair);
        }
    }
    Ok(ca.expect("the CA is the first Secret"))
}

async fn apply(
    kcp: &KubeadmControlPlane,
    ctx: &Context,
    api: &Api<KubeadmControlPlane>,
) -> Result<Action, Error> {
    let ns = kcp.namespace().unwrap_or_default();
    let Some(cluster_name) = owner_cluster_name(kcp) else {
        return Ok(Action::await_change());
    };
    let Some(cluster) = Api::<Cluster>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&cluster_name)
        .await?
    else {
        return Ok(Action::await_change());
    };
    let old = kcp.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let mut conds = status.conditions.take().unwrap_or_default();
    let generation = kcp.metadata.generation;
    let now = (ctx.clock)();
    let paused = slipway_runtime::reconcile::paused_condition(
        &mut conds,
        &cluster,
        kcp.annotations(),
        generation,
        now,
    );
    let mut action = Action::await_change();
    let mut remediated = false;
    if !paused {
        let secrets_api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let ca = ensure_pki(kcp, &cluster_name, &secrets_api).await?;
        conditions::set(
            &mut conds,
            desired(ct::CERTIFICATES_AVAILABLE, Status::True, reasons::READY, ""),
            generation,
            now,
        );
        if let Some(ep) = cluster
            .spec
            .control_plane_endpoint
            .clone()
            .filter(ApiEndpoint::is_valid)
        {
            let name = secrets::name(&cluster_name, secrets::KUBECONFIG_SUFFIX);
            let existing = secrets_api.get_opt(&name).await?;
            // A kubeconfig the infrastructure's own tooling made (kind) is not signed by this
            // control plane's CA: it is the provider's to keep current.
            if let Some(s) = &existing
                && !slipway_providers::infra::topology::provided(s)
                && needs_renewal(s, now)
            {
                let kubeconfig = admin_kubeconfig(
                    &cluster_name,
                    &format!("https://{}:{}", ep.host, ep.port),
                    &ca,
                )
                .map_err(Error::pki)?;
                secrets_api
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(&json!({"data": {secrets::VALUE_KEY: ByteString(kubeconfig.into_bytes())}})),
                    )
                    .await?;
                tracing::info!(cluster = %cluster_name, "renewed the admin kubeconfig");
            }
            if existing.is_none() {
                let kubeconfig = admin_kubeconfig(
                    &cluster_name,
                    &format!("https://{}:{}", ep.host, ep.port),
                    &ca,
                )
                .map_err(Error::pki)?;
                create_once(
                    &secrets_api,
                    &secret(
                        kcp,
                        &cluster_name,
                        name,
                        BTreeMap::from([(secrets::VALUE_KEY.to_string(), kubeconfig)]),
                    )?,
                )
                .await?;
            }
        }
        slipway_runtime::objects::ensure_template_owner(
            ctx,
            &ns,
            &kcp.spec.machine_template.spec.infrastructure_ref,
            &cluster,
        )
        .await?;
        let machines = kcp_machines::list(ctx, kcp, &cluster_name).await?;
        let infra_ready = cluster
            .status
            .as_ref()
            .and_then(|s| s.initialization.as_ref())
            .and_then(|i| i.infrastructure_provisioned)
            .unwrap_or(false);
        let cluster_initialized = cluster
            .status
            .as_ref()
            .and_then(|s| s.initialization.as_ref())
            .and_then(|i| i.control_plane_initialized)
            .unwrap_or(false);
        // Upstream's version policy: one minor at a time, never below the running minor.
        let running = machines
            .iter()
            .filter_map(|m| m.spec.version.clone())
            .min_by_key(|v| kcp_machines::version_key(v));
        let skew =
            crate::version::control_plane_change(running.as_deref(), &kcp.spec.version).err();
        let mut health = if cluster_initialized {
            Some(crate::kcp_health::observe(ctx, &ns, &cluster_name, &machines).await)
        } else {
            None
        };
        // Members of Machines deleted without their member being removed (deleted by hand,
        // say) are removed, as upstream's reconcileEtcdMembers does; only when every Machine
        // has its Node, since a joining machine's member shows up before its nodeRef.
        if let Some(h) = health.as_mut()
            && machines
                .iter()
                .all(|m| m.status.as_ref().is_some_and(|s| s.node_ref.is_some()))
        {
            let orphans: Vec<String> = h.orphan_members().into_iter().map(String::from).collect();
            for node in &orphans {
                crate::kcp_health::remove_member(ctx, &ns, &cluster_name, node).await?;
            }
            if let Some(members) = h.members.as_mut() {
                members.retain(|m| !orphans.contains(m));
            }
        }
        let remediation = if skew.is_none() && infra_ready {
            Some(
                crate::kcp_remediation::reconcile(
                    ctx,
                    kcp,
                    &machines,
                    health.as_ref().unwrap_or(&Default::default()),
                    cluster_initialized,
                )
                .await?,
            )
        } else {
            None
        };
        let step = if let Some(why) = &skew {
            CpAction::Wait(why.clone())
        } else if let Some(m) = remediation.as_ref().and_then(|r| r.deleted.clone()) {
            CpAction::Wait(format!("remediating machine {m}"))
        } else if infra_ready {
            kcp_machines::step(ctx, kcp, &cluster_name, &machines, cluster_initialized).await?
        } else {
            CpAction::Wait("waiting for the cluster infrastructure to be provisioned".into())
        };
        status = kcp_machines::status(kcp, &machines, &step, &status, &mut conds, now);
        if let Some(health) = &health {
            for d in crate::kcp_health::conditions(health) {
                conditions::set(&mut conds, d, generation, now);
            }
        }
        if let Some(r) = remediation {
            conditions::set(&mut conds, r.condition, generation, now);
            remediated = r.last.is_some();
            if r.last.is_some() {
                status.last_remediation = r.last;
            }
        }
        if let Some(why) = skew {
            conditions::set(
                &mut conds,
                desired(
                    ct::ROLLING_OUT,
                    Status::False,
                    reasons::VERSION_SKEW,
                    format!("Rolling out is blocked because:\n* {why}"),
                ),
                generation,
                now,
            );
            ctx.events.warning(kcp, reasons::VERSION_SKEW, why).await;
        }
        action = match step {
            CpAction::Idle => Action::requeue(RENEWAL_CHECK),
            // Changes of machines arrive as events; the requeue covers what does not (a Node
            // joining a workload cluster shows up on the Machine, which is owned: an event).
            _ => Action::requeue(std::time::Duration::from_secs(5)),
        };
        status.selector = Some(format!(
            "{}={cluster_name},{}={}",
            labels::CLUSTER_NAME,
            labels::CONTROL_PLANE_NAME,
            kcp.name_any()
        ));
        status.observed_generation = generation;
    }
    status.conditions = Some(conds);
    let mut meta = kcp.metadata.clone();
    if remediated {
        // This pass deleted a machine: its record (lastRemediation) must land even when the
        // pass read a stale copy, since no later pass sees that machine again.
        meta.resource_version = None;
    }
    if let Some(wait) = hold::write_status_or_hold(api, &meta, &old, &status).await? {
        // Only the wording of conditions changed: it waits for the next real change.
        return Ok(Action::requeue(wait));
    }
    Ok(action)
}

/// How often a control plane at rest looks at its kubeconfig's expiry.
const RENEWAL_CHECK: std::time::Duration = std::time::Duration::from_secs(6 * 3600);
/// A kubeconfig whose client certificate expires within this is renewed.
const RENEW_BEFORE_SECONDS: i64 = 30 * 24 * 3600;

/// Whether the admin kubeconfig's client certificate expires within [`RENEW_BEFORE_SECONDS`]
/// (or cannot be read, which a renewal repairs).
fn needs_renewal(s: &Secret, now: jiff::Timestamp) -> bool {
    use base64::Engine;
    let Some(value) = s.data.as_ref().and_then(|d| d.get(secrets::VALUE_KEY)) else {
        return true;
    };
    let text = String::from_utf8_lossy(&value.0);
    let Some(cert) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-certificate-data:"))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
    else {
        return true;
    };
    match tls::not_after(&String::from_utf8_lossy(&cert)) {
        Ok(t) => t - now.as_second() < RENEW_BEFORE_SECONDS,
        Err(_) => true,
    }
}

/// Deletes the control-plane machines and waits for them to go.
async fn cleanup(kcp: &KubeadmControlPlane, ctx: &Context) -> Result<Action, Error> {
    let Some(cluster) = owner_cluster_name(kcp) else {
        return Ok(Action::await_change());
    };
    let machines = kcp_machines::list(ctx, kcp, &cluster).await?;
    let api: Api<slipway_api::Machine> =
        Api::namespaced(ctx.client.clone(), &kcp.namespace().unwrap_or_default());
    slipway_runtime::objects::delete_children(&api, &machines, "control-plane machines").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_is_renewed_within_thirty_days_of_expiry() {
        let ca = tls::new_ca("kubernetes").unwrap();
        let kc = admin_kubeconfig("c", "https://127.0.0.1:6443", &ca).unwrap();
        let secret = Secret {
            data: Some(BTreeMap::from([(
                secrets::VALUE_KEY.to_string(),
                ByteString(kc.into_bytes()),
            )])),
            ..Default::default()
        };
        let now = jiff::Timestamp::now();
        let days = |d: i64| now + jiff::SignedDuration::from_hours(24 * d);
        assert!(!needs_renewal(&secret, now), "a fresh one-year certificate");
        assert!(!needs_renewal(&secret, days(300)));
        assert!(needs_renewal(&secret, days(340)), "inside the last 30 days");
        assert!(
            needs_renewal(&Secret::default(), now),
            "an unreadable kubeconfig is repaired"
        );
    }
}
