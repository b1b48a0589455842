//! The fleet registry, beside the core reconcilers: a reconciler that registers every Cluster whose control plane is initialized and whose
//! `<cluster>-kubeconfig` exists, so fleet tools can find it.
//!
//! - Always a SIG-Multicluster ClusterProfile in the inventory namespace (default: the
//!   Cluster's): cluster manager `slipway` (spec and label), the Cluster's labels, version,
//!   properties (cluster id, provider, region), ControlPlaneHealthy (from [`crate::health`])
//!   and Joined, and a `kubeconfig-secretreader` access provider naming the kubeconfig Secret.
//!   No secret material is copied into it.
//! - Opt-in: an Argo CD cluster Secret (server-side applied), and a KubeFedCluster with its
//!   token Secret.
//! - On deletion the registry objects go first; the Cluster reconciler waits for this
//!   reconciler's finalizer before tearing anything down.
//!
//! Writes happen only when the desired objects differ from what exists. [`run`] runs the
//! reconciler and the health prober ([`health`]) together.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod health;
pub mod kubefed;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use base64::Engine;
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::{Value, json};
use slipway_api::{
    Cluster,
    names::{conditions as ct, finalizers, labels, reasons, secrets},
    registry::ClusterProfile,
};

use slipway_runtime::{
    Context, Error,
    conditions::{self, Status, desired},
    objects::delete_if_exists,
    reconcile::{dispatch, is_paused},
    runner::Runner,
};

use crate::health::{Outcome, Prober};

/// The cluster manager name slipway registers clusters under.
pub const MANAGER: &str = "slipway";
/// Field manager of the registry's server-side applies.
const FIELD_MANAGER: &str = "slipway-registry";

/// Where registrations go.
#[derive(Clone, Debug)]
pub struct Options {
    /// Namespace of ClusterProfiles (`None`: the Cluster's namespace).
    pub inventory_namespace: Option<String>,
    /// Namespace of Argo CD cluster Secrets (`None`: sink off).
    pub argocd_namespace: Option<String>,
    /// Namespace of KubeFedClusters (`None`: sink off).
    pub kubefed_namespace: Option<String>,
    /// The provider name reported for a Cluster, by the kind of its infrastructure cluster
    /// (from the providers' plugins; kinds not listed are `unknown`).
    pub provider_names: BTreeMap<String, &'static str>,
    /// Period of the health probes.
    pub probe_interval: Duration,
    /// Timeout of one health probe.
    pub probe_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            inventory_namespace: None,
            argocd_namespace: None,
            kubefed_namespace: None,
            provider_names: BTreeMap::new(),
            probe_interval: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(3),
        }
    }
}

/// Runs the registry reconciler over every Cluster, and the health probes of registered
/// clusters that wake it when a cluster's health changes, until dropped.
pub async fn run(runner: &Runner, options: Options) {
    let prober = Arc::new(Prober::new(options.probe_interval, options.probe_timeout));
    let (wake, woken) = futures::channel::mpsc::channel(1024);
    let ctx = Arc::new(RegistryContext {
        base: runner.context(),
        options,
        prober: prober.clone(),
    });
    let c = runner.controller::<Cluster>().reconcile_on(woken);
    futures::join!(
        runner.run(c, "Registry", ctx, reconcile),
        health::run(prober, runner.context(), wake),
    );
}

/// What the registry reconciler shares.
pub struct RegistryContext {
    /// Shared context.
    pub base: Arc<Context>,
    /// Sinks.
    pub options: Options,
    /// Health of registered clusters.
    pub prober: Arc<Prober>,
}

/// Entry point: finalizer dispatch.
pub async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<RegistryContext>) -> Result<Action, Error> {
    let api: Api<Cluster> = Api::namespaced(
        ctx.base.client.clone(),
        &cluster.namespace().unwrap_or_default(),
    );
    let (ctx, api) = (&ctx, &api);
    dispatch(
        api,
        finalizers::REGISTRY,
        cluster,
        |c| async move { apply(&c, ctx).await },
        |c| async move { cleanup(&c, ctx).await },
    )
    .await
}

/// Name and namespace of a Cluster's ClusterProfile: the Cluster's name in its own namespace,
/// `<namespace>-<name>` in a shared inventory namespace.
pub fn profile_key(cluster: &Cluster, opts: &Options) -> (String, String) {
    let ns = cluster.namespace().unwrap_or_default();
    match &opts.inventory_namespace {
        Some(inv) if *inv != ns => (inv.clone(), format!("{ns}-{}", cluster.name_any())),
        _ => (ns, cluster.name_any()),
    }
}

fn argocd_name(cluster: &Cluster) -> String {
    format!(
        "slipway-{}-{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    )
}

/// Server, CA and client certificate of a kubeconfig (base64, as kubeconfigs carry them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Access {
    /// `https://host:port`.
    pub server: String,
    /// certificate-authority-data.
    pub ca_data: String,
    /// client-certificate-data.
    pub cert_data: String,
    /// client-key-data.
    pub key_data: String,
}

/// Why a kubeconfig gives no [`Access`].
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The kubeconfig is not YAML. The parser's message is not kept: it can quote the input,
    /// and a kubeconfig carries client keys.
    #[error("not valid YAML")]
    Yaml,
    /// The current context resolves to no cluster with a server.
    #[error("the current context names no cluster server")]
    NoServer,
}

/// Reads the current context's cluster and user of a kubeconfig.
pub fn access_of(kubeconfig: &str) -> Result<Access, AccessError> {
    let v: Value = serde_saphyr::from_str(kubeconfig).map_err(|_| AccessError::Yaml)?;
    let current = v["current-context"].as_str().unwrap_or_default();
    let named = |list: &str, name: &str| {
        v[list]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let context = named("contexts", current);
    let cluster = named(
        "clusters",
        context["context"]["cluster"].as_str().unwrap_or_default(),
    );
    let user = named(
        "users",
        context["context"]["user"].as_str().unwrap_or_default(),
    );
    let s = |x: &Value| x.as_str().unwrap_or_default().to_string();
    let a = Access {
        server: s(&cluster["cluster"]["server"]),
        ca_data: s(&cluster["cluster"]["certificate-authority-data"]),
        cert_data: s(&user["user"]["client-certificate-data"]),
        key_data: s(&user["user"]["client-key-data"]),
    };
    if a.server.is_empty() {
        return Err(AccessError::NoServer);
    }
    Ok(a)
}

fn provider_of(cluster: &Cluster, names: &BTreeMap<String, &'static str>) -> &'static str {
    cluster
        .spec
        .infrastructure_ref
        .as_ref()
        .and_then(|r| names.get(&r.kind).copied())
        .unwrap_or("unknown")
}

/// The ClusterProfile status conditions for a health state.
fn health_condition(state: Option<&Outcome>) -> conditions::Desired {
    match state {
        Some(Outcome::Healthy(_)) => desired(
            ct::CONTROL_PLANE_HEALTHY,
            Status::True,
            reasons::HEALTHY,
            "/readyz answered 200",
        ),
        Some(Outcome::Unhealthy(m)) => desired(
            ct::CONTROL_PLANE_HEALTHY,
            Status::False,
            reasons::UNHEALTHY,
            m.clone(),
        ),
        Some(Outcome::Unreachable(m)) => desired(
            ct::CONTROL_PLANE_HEALTHY,
            Status::False,
            reasons::UNREACHABLE,
            m.clone(),
        ),
        Some(Outcome::Unauthorized(m)) => desired(
            ct::CONTROL_PLANE_HEALTHY,
            Status::False,
            reasons::UNAUTHORIZED,
            m.clone(),
        ),
        None => desired(
            ct::CONTROL_PLANE_HEALTHY,
            Status::Unknown,
            "NotProbedYet",
            "the control plane has not been probed yet",
        ),
    }
}

async fn apply(cluster: &Cluster, ctx: &RegistryContext) -> Result<Action, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let initialized = cluster
        .status
        .as_ref()
        .and_then(|s| s.initialization.as_ref())
        .and_then(|i| i.control_plane_initialized)
        .unwrap_or(false);
    if !initialized || is_paused(cluster, cluster.annotations()) {
        return Ok(Action::await_change());
    }
    let secrets_api: Api<Secret> = Api::namespaced(ctx.base.client.clone(), &ns);
    let Some(kc_secret) = secrets_api
        .get_opt(&secrets::name(&name, secrets::KUBECONFIG_SUFFIX))
        .await?
    else {
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    let kubeconfig = kc_secret
        .data
        .as_ref()
        .and_then(|d| d.get(secrets::VALUE_KEY))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default();
    let access = access_of(&kubeconfig)
        .map_err(|e| Error::invalid(format!("Secret {ns}/{name}-kubeconfig"), e.to_string()))?;
    ctx.prober.register(&ns, &name);
    ctx.prober.probe_first(&ctx.base, &ns, &name).await;
    let health = ctx.prober.state(&ns, &name).unwrap_or_default();
    write_profile(cluster, ctx, &access, &health).await?;
    if let Some(argo_ns) = &ctx.options.argocd_namespace {
        write_argocd(cluster, ctx, argo_ns, &access).await?;
    }
    if let Some(kf_ns) = &ctx.options.kubefed_namespace {
        crate::kubefed::write(cluster, &ctx.base, kf_ns, &access, &health).await?;
    }
    Ok(Action::await_change())
}

async fn write_profile(
    cluster: &Cluster,
    ctx: &RegistryContext,
    access: &Access,
    health: &health::State,
) -> Result<(), Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let (pns, pname) = profile_key(cluster, &ctx.options);
    let api: Api<ClusterProfile> = Api::namespaced(ctx.base.client.clone(), &pns);
    let existing = api.get_opt(&pname).await?;
    let mut meta_labels: BTreeMap<String, String> = cluster.labels().clone();
    meta_labels.insert(labels::CLUSTER_MANAGER.into(), MANAGER.into());
    meta_labels.insert(labels::CLUSTER_NAME.into(), name.clone());
    let owner = (pns == ns)
        .then(|| cluster.controller_owner_ref(&()))
        .flatten()
        .map(|mut o| {
            o.controller = None;
            vec![o]
        });
    let want_meta = json!({
        "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ClusterProfile",
        "metadata": {"name": pname, "namespace": pns, "labels": meta_labels, "ownerReferences": owner},
        "spec": {"displayName": name, "clusterManager": {"name": MANAGER}},
    });
    let current = existing
        .as_ref()
        .map(|p| serde_json::to_value(p).unwrap_or_default());
    let same_meta = current.as_ref().is_some_and(|c| {
        c["spec"] == want_meta["spec"]
            && c["metadata"]["labels"] == want_meta["metadata"]["labels"]
            && (owner.is_none()
                || c["metadata"]["ownerReferences"] == want_meta["metadata"]["ownerReferences"])
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    if !same_meta {
        api.patch(&pname, &pp, &Patch::Apply(&want_meta)).await?;
    }
    // Status: conditions keep their transition times; one write only when something changed.
    let old_status = existing.and_then(|p| p.status).unwrap_or_default();
    let mut conds = old_status.conditions.clone().unwrap_or_default();
    let now = (ctx.base.clock)();
    conditions::set(
        &mut conds,
        health_condition(health.reported.as_ref()),
        None,
        now,
    );
    conditions::set(
        &mut conds,
        desired(
            ct::JOINED,
            Status::True,
            "Registered",
            format!("managed by {MANAGER}"),
        ),
        None,
        now,
    );
    let region = cluster
        .labels()
        .get(labels::REGION)
        .cloned()
        .or_else(|| cluster.annotations().get("slipway.dev/region").cloned());
    let mut properties = vec![
        json!({"name": "cluster.clusterset.k8s.io", "value": name}),
        json!({"name": "provider", "value": provider_of(cluster, &ctx.options.provider_names)}),
    ];
    if let Some(r) = region {
        properties.push(json!({"name": "region", "value": r}));
    }
    let version = health.version.clone();
    let want_status = json!({
        "conditions": conds,
        "version": {"kubernetes": version},
        "properties": properties,
        "accessProviders": [{
            "name": "kubeconfig-secretreader",
            "cluster": {
                "server": access.server,
                "certificate-authority-data": access.ca_data,
                "extensions": [{"name": "client.authentication.k8s.io/exec",
                                "extension": {"name": secrets::name(&name, secrets::KUBECONFIG_SUFFIX), "key": secrets::VALUE_KEY, "namespace": ns}}]
            }
        }],
    });
    let mut old = serde_json::to_value(&old_status).unwrap_or_default();
    if let Some(o) = old.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    let mut want = want_status.clone();
    if version.is_none() {
        want.as_object_mut().expect("object").remove("version");
    }
    if old != want {
        api.patch_status(
            &pname,
            &pp,
            &Patch::Apply(&json!({
                "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ClusterProfile",
                "metadata": {"name": pname, "namespace": pns},
                "status": want,
            })),
        )
        .await?;
    }
    Ok(())
}

async fn write_argocd(
    cluster: &Cluster,
    ctx: &RegistryContext,
    argo_ns: &str,
    access: &Access,
) -> Result<(), Error> {
    let name = argocd_name(cluster);
    let api: Api<Secret> = Api::namespaced(ctx.base.client.clone(), argo_ns);
    let mut meta_labels: BTreeMap<String, String> = cluster.labels().clone();
    meta_labels.insert("argocd.argoproj.io/secret-type".into(), "cluster".into());
    meta_labels.insert(labels::CLUSTER_MANAGER.into(), MANAGER.into());
    meta_labels.insert(labels::CLUSTER_NAME.into(), cluster.name_any());
    let config = json!({"tlsClientConfig": {"insecure": false, "caData": access.ca_data,
                        "certData": access.cert_data, "keyData": access.key_data}});
    let data: BTreeMap<String, ByteString> = [
        ("name", cluster.name_any()),
        ("server", access.server.clone()),
        ("config", config.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
    .collect();
    if let Some(s) = api.get_opt(&name).await?
        && s.data.as_ref() == Some(&data)
        && s.labels() == &meta_labels
    {
        return Ok(());
    }
    let b64 = |b: &ByteString| base64::engine::general_purpose::STANDARD.encode(&b.0);
    let body = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": argo_ns, "labels": meta_labels},
        "type": "Opaque",
        "data": data.iter().map(|(k, v)| (k.clone(), b64(v))).collect::<BTreeMap<_, _>>(),
    });
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

async fn cleanup(cluster: &Cluster, ctx: &RegistryContext) -> Result<Action, Error> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    ctx.prober.unregister(&ns, &name);
    let (pns, pname) = profile_key(cluster, &ctx.options);
    delete_if_exists(
        &Api::<ClusterProfile>::namespaced(ctx.base.client.clone(), &pns),
        &pname,
    )
    .await?;
    if let Some(argo_ns) = &ctx.options.argocd_namespace {
        delete_if_exists(
            &Api::<Secret>::namespaced(ctx.base.client.clone(), argo_ns),
            &argocd_name(cluster),
        )
        .await?;
    }
    if let Some(kf_ns) = &ctx.options.kubefed_namespace {
        crate::kubefed::remove(cluster, &ctx.base, kf_ns).await?;
    }
    tracing::info!(cluster = %name, "deregistered");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_comes_from_the_current_context() {
        let kc = "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster: {server: https://wrong:1}\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: Q0E=\nusers:\n- name: u\n  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}\ncontexts:\n- name: u@c\n  context: {cluster: c, user: u}\ncurrent-context: u@c\n";
        let a = access_of(kc).unwrap();
        assert_eq!(a.server, "https://127.0.0.1:6443");
        assert_eq!(
            (
                a.ca_data.as_str(),
                a.cert_data.as_str(),
                a.key_data.as_str()
            ),
            ("Q0E=", "Q0VSVA==", "S0VZ")
        );
        assert!(matches!(
            access_of("apiVersion: v1\nkind: Config\n"),
            Err(AccessError::NoServer)
        ));
        assert!(matches!(access_of("a: [\n"), Err(AccessError::Yaml)));
    }

    #[test]
    fn profiles_live_beside_their_cluster_unless_an_inventory_is_shared() {
        let mut c = Cluster::new("prod", Default::default());
        c.metadata.namespace = Some("team-a".into());
        assert_eq!(
            profile_key(&c, &Options::default()),
            ("team-a".into(), "prod".into())
        );
        let shared = Options {
            inventory_namespace: Some("fleet".into()),
            ..Default::default()
        };
        assert_eq!(
            profile_key(&c, &shared),
            ("fleet".into(), "team-a-prod".into())
        );
    }
}
