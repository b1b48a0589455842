//! KubeadmConfig reconciler (the kubeadm bootstrap provider): renders a machine's cloud-init
//! once the Cluster allows it and stores it in the Secret named after the config (keys `value`
//! and `format`).
//!
//! - The first control-plane machine runs `kubeadm init`; unless a KubeadmControlPlane
//!   controls it (it makes one machine until initialized), behind a single-init lock (a
//!   ConfigMap `<cluster>-lock` naming the holder) so two machines never both init.
//! - Everything else waits for `controlPlaneInitialized`, then joins with a bootstrap token
//!   this reconciler creates in the workload cluster (`kube-system/bootstrap-token-<id>`,
//!   15-minute TTL), refreshed until the Machine has a Node; the CA is pinned by hash.
//! - The data Secret is written once; status says where it is (`dataSecretName`,
//!   `initialization.dataSecretCreated`) with Ready and DataSecretAvailable conditions.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret},
};
use kube::{
    Api, ResourceExt,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    runtime::controller::Action,
};
use rand::Rng;
use serde_json::json;
use slipway_api::{
    Cluster, KubeadmConfig, Machine,
    bootstrap::KubeadmConfigInitializationStatus,
    common::ApiEndpoint,
    names::{conditions as ct, finalizers, labels, reasons, secrets},
};
use slipway_pki::CertKey;

use slipway_bootstrap::{
    cloudinit::{self, Role},
    kubeadm::{ClusterInfo, JoinDiscovery},
    pki::ClusterPki,
};
use slipway_runtime::{
    Context, Error,
    conditions::{self, Status, desired},
    objects::{controller_ref, create_once},
    reconcile::dispatch,
    reconcile::write_status,
};

/// Lifetime of join tokens.
pub const TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Annotation with the id (not the secret) of the join token, so it can be refreshed: on the
/// bootstrap data Secret, written with it (a config written before that carries it itself).
pub const TOKEN_ID_ANNOTATION: &str = "bootstrap.cluster.x-k8s.io/token-id";

/// Entry point: finalizer dispatch. Cleanup has nothing to release: the data Secret and the
/// init lock are owned by the config and go with it.
pub async fn reconcile(cfg: Arc<KubeadmConfig>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<KubeadmConfig> =
        Api::namespaced(ctx.client.clone(), &cfg.namespace().unwrap_or_default());
    let (ctx, api) = (&ctx, &api);
    dispatch(
        api,
        finalizers::KUBEADM_CONFIG,
        cfg,
        |c| async move { apply(&c, ctx, api).await },
        |_| async { Ok(Action::await_change()) },
    )
    .await
}

/// A new bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn new_token() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
            .collect()
    };
    format!("{}.{}", pick(6), pick(16))
}

enum Step {
    /// Not yet: condition reason and message.
    Wait(&'static str, String),
    /// Rendered (the data Secret exists).
    Done,
}

async fn apply(
    cfg: &KubeadmConfig,
    ctx: &Context,
    api: &Api<KubeadmConfig>,
) -> Result<Action, Error> {
    let ns = cfg.namespace().unwrap_or_default();
    let Some(machine) = owner(cfg, ctx, &ns).await? else {
        // The contract: a config does nothing until a Machine or MachinePool owns it.
        return Ok(Action::await_change());
    };
    let Some(cluster) = Api::<Cluster>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&machine.spec.cluster_name)
        .await?
    else {
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    let old = cfg.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let mut conds = status.conditions.take().unwrap_or_default();
    let generation = cfg.metadata.generation;
    let now = (ctx.clock)();
    let paused = slipway_runtime::reconcile::paused_condition(
        &mut conds,
        &cluster,
        cfg.annotations(),
        generation,
        now,
    );
    let mut action = Action::await_change();
    if !paused {
        if old.data_secret_name.is_some() {
            action = refresh_token(cfg, &machine, &cluster, ctx).await?;
        } else {
            match render(cfg, &machine, &cluster, ctx).await? {
                Step::Done => {
                    status.data_secret_name = Some(cfg.name_any());
                    status.initialization = Some(KubeadmConfigInitializationStatus {
                        data_secret_created: Some(true),
                    });
                    action = Action::requeue(TOKEN_TTL / 3);
                }
                Step::Wait(reason, message) => {
                    for t in [ct::DATA_SECRET_AVAILABLE, ct::READY] {
                        conditions::set(
                            &mut conds,
                            desired(t, Status::False, reason, message.clone()),
                            generation,
                            now,
                        );
                    }
                    action = Action::requeue(Duration::from_secs(2));
                }
            }
        }
        if status.data_secret_name.is_some() {
            for t in [ct::DATA_SECRET_AVAILABLE, ct::READY] {
                conditions::set(
                    &mut conds,
                    desired(t, Status::True, reasons::READY, ""),
                    generation,
                    now,
                );
            }
        }
        status.observed_generation = generation;
    }
    status.conditions = Some(conds);
    write_status(api, &cfg.metadata, Some(&old), &status).await?;
    Ok(action)
}

async fn read_pki(ctx: &Context, ns: &str, cluster: &str) -> Result<Option<ClusterPki>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut found = BTreeMap::new();
    for suffix in [
        secrets::CA_SUFFIX,
        secrets::ETCD_SUFFIX,
        secrets::PROXY_SUFFIX,
        secrets::SA_SUFFIX,
    ] {
        let Some(s) = api.get_opt(&secrets::name(cluster, suffix)).await? else {
            return Ok(None);
        };
        let data = s.data.unwrap_or_default();
        let text = |k: &str| {
            data.get(k)
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        };
        let (Some(cert_pem), Some(key_pem)) = (text(secrets::TLS_CRT), text(secrets::TLS_KEY))
        else {
            return Ok(None);
        };
        found.insert(suffix, CertKey { cert_pem, key_pem });
    }
    let mut take = |s| found.remove(s).expect("all four read");
    Ok(Some(ClusterPki {
        ca: take(secrets::CA_SUFFIX),
        etcd: take(secrets::ETCD_SUFFIX),
        proxy: take(secrets::PROXY_SUFFIX),
        sa: take(secrets::SA_SUFFIX),
    }))
}

/// The Machine owning a config or, for a MachinePool's config, the pool seen as the one
/// worker Machine all its instances join as (its name, cluster and version; never a Node, so
/// the pool's join token keeps being refreshed while the pool exists, as upstream's).
async fn owner(cfg: &KubeadmConfig, ctx: &Context, ns: &str) -> Result<Option<Machine>, Error> {
    if let Some(name) = slipway_runtime::objects::owner_machine_name(cfg) {
        return Ok(Api::<Machine>::namespaced(ctx.client.clone(), ns)
            .get_opt(&name)
            .await?);
    }
    let Some(name) = slipway_runtime::objects::core_owner_name(cfg, "MachinePool") else {
        return Ok(None);
    };
    let Some(pool) = Api::<slipway_api::MachinePool>::namespaced(ctx.client.clone(), ns)
        .get_opt(&name)
        .await?
    else {
        return Ok(None);
    };
    let mut m = Machine::new(&name, pool.spec.template.spec.clone());
    m.spec.cluster_name = pool.spec.cluster_name.clone();
    m.metadata.namespace = Some(ns.to_string());
    Ok(Some(m))
}

fn is_control_plane(m: &Machine) -> bool {
    m.labels().contains_key(labels::CONTROL_PLANE)
}

/// Whether a KubeadmControlPlane controls `m`.
fn controlled_by_kcp(m: &Machine) -> bool {
    m.owner_references().iter().any(|o| {
        o.controller == Some(true)
            && o.kind == "KubeadmControlPlane"
            && o.api_version.starts_with("controlplane.cluster.x-k8s.io/")
    })
}

/// Takes the single-init lock for `machine`; false while another machine holds it.
async fn init_lock(
    cfg: &KubeadmConfig,
    ctx: &Context,
    ns: &str,
    cluster: &str,
    machine: &str,
) -> Result<bool, Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let name = format!("{cluster}-lock");
    let lock = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.into()),
            labels: Some(BTreeMap::from([(
                labels::CLUSTER_NAME.into(),
                cluster.into(),
            )])),
            owner_references: Some(vec![controller_ref(cfg)?]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("machine".into(), machine.into())])),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &lock).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let held = api.get_opt(&name).await?;
            Ok(held
                .and_then(|c| c.data)
                .and_then(|d| d.get("machine").cloned())
                .is_none_or(|holder| holder == machine))
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates (or extends) a join token in the workload cluster.
async fn put_token(client: &kube::Client, token: &str, now: jiff::Timestamp) -> Result<(), Error> {
    let (id, secret) = token.split_once('.').expect("generated tokens have a dot");
    let api: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    let expiration = (now + jiff::SignedDuration::try_from(TOKEN_TTL).expect("small")).to_string();
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": format!("bootstrap-token-{id}")},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {"token-id": id, "token-secret": secret, "expiration": expiration,
                       "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
                       "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}
    }))
    .expect("valid Secret");
    api.patch(
        &format!("bootstrap-token-{id}"),
        &PatchParams::apply("slipway-bootstrap").force(),
        &Patch::Apply(&s),
    )
    .await?;
    Ok(())
}

/// Keeps a join token alive until the Machine's Node has joined.
async fn refresh_token(
    cfg: &KubeadmConfig,
    machine: &Machine,
    cluster: &Cluster,
    ctx: &Context,
) -> Result<Action, Error> {
    let joined = machine
        .status
        .as_ref()
        .is_some_and(|s| s.node_ref.is_some());
    if joined {
        return Ok(Action::await_change());
    }
    let ns = cfg.namespace().unwrap_or_default();
    let id = match cfg.annotations().get(TOKEN_ID_ANNOTATION) {
        Some(id) => id.clone(),
        None => {
            let data = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
                .get_opt(&cfg.name_any())
                .await?;
            match data.and_then(|s| s.annotations().get(TOKEN_ID_ANNOTATION).cloned()) {
                Some(id) => id,
                None => return Ok(Action::await_change()),
            }
        }
    };
    let Some(client) = ctx
        .remote
        .client(&ctx.client, &ns, &cluster.name_any())
        .await?
    else {
        return Ok(Action::requeue(Duration::from_secs(30)));
    };
    let api: Api<Secret> = Api::namespaced(client, "kube-system");
    let name = format!("bootstrap-token-{id}");
    match api.get_opt(&name).await {
        Ok(Some(_)) => {
            let expiration = ((ctx.clock)()
                + jiff::SignedDuration::try_from(TOKEN_TTL).expect("small"))
            .to_string();
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"stringData": {"expiration": expiration}})),
            )
            .await?;
        }
        // Gone (expired and cleaned up): the machine will not join with it; the Machine's
        // health checks and the operator see it stuck. Nothing to refresh.
        Ok(None) => return Ok(Action::await_change()),
        // Unreachable right now: try again later; the token still has time.
        Err(e) => tracing::debug!(%e, "refreshing a join token"),
    }
    Ok(Action::requeue(TOKEN_TTL / 3))
}

async fn render(
    cfg: &KubeadmConfig,
    machine: &Machine,
    cluster: &Cluster,
    ctx: &Context,
) -> Result<Step, Error> {
    let ns = cfg.namespace().unwrap_or_default();
    let cluster_name = cluster.name_any();
    let init = cluster
        .status
        .as_ref()
        .and_then(|s| s.initialization.clone())
        .unwrap_or_default();
    let endpoint = cluster
        .spec
        .control_plane_endpoint
        .clone()
        .filter(ApiEndpoint::is_valid);
    let (true, Some(endpoint)) = (init.infrastructure_provisioned.unwrap_or(false), endpoint)
    else {
        return Ok(Step::Wait(
            reasons::WAITING_FOR_CLUSTER_INFRASTRUCTURE,
            "waiting for the cluster infrastructure and its control-plane endpoint".into(),
        ));
    };
    let Some(pki) = read_pki(ctx, &ns, &cluster_name).await? else {
        return Ok(Step::Wait(
            "WaitingForClusterCertificates",
            format!("waiting for the cluster certificates ({cluster_name}-ca, -etcd, -proxy, -sa)"),
        ));
    };
    let secrets_api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    // Read from the API, not the cache: a pass that rendered but whose status write is not
    // in the cache yet must not render again (and mint a second token).
    if secrets_api.get_opt(&cfg.name_any()).await?.is_some() {
        return Ok(Step::Done);
    }
    let initialized = init.control_plane_initialized.unwrap_or(false);
    let cp = is_control_plane(machine);
    let machine_name = machine.name_any();
    let addr = format!("{}:{}", endpoint.host, endpoint.port);
    let mut token_id = None;
    let role = if !initialized {
        if !cp {
            return Ok(Step::Wait(
                reasons::WAITING_FOR_CONTROL_PLANE,
                "workers join once the control plane is initialized".into(),
            ));
        }
        // A KubeadmControlPlane creates one machine and no other until the control plane is
        // initialized, so its machine needs no lock (two writes fewer per cluster); the lock
        // keeps hand-made control-plane Machines from both running `kubeadm init`.
        if !controlled_by_kcp(machine)
            && !init_lock(cfg, ctx, &ns, &cluster_name, &machine_name).await?
        {
            return Ok(Step::Wait(
                reasons::WAITING_FOR_CONTROL_PLANE,
                "another control-plane machine holds the init lock and is running kubeadm init"
                    .into(),
            ));
        }
        Role::Init {
            bootstrap_token: new_token(),
        }
    } else {
        let Some(client) = ctx.remote.client(&ctx.client, &ns, &cluster_name).await? else {
            return Ok(Step::Wait(
                reasons::WAITING_FOR_CONTROL_PLANE,
                format!("waiting for the {cluster_name}-kubeconfig Secret to create a join token"),
            ));
        };
        let token = new_token();
        if let Err(e) = put_token(&client, &token, (ctx.clock)()).await {
            return Ok(Step::Wait(
                "WaitingForJoinToken",
                format!("creating a join token in the workload cluster: {e}"),
            ));
        }
        token_id = token.split_once('.').map(|(id, _)| id.to_string());
        let discovery = JoinDiscovery {
            token,
            api_server_endpoint: addr,
            ca_cert_hashes: vec![pki.ca_cert_hash().map_err(Error::pki)?],
        };
        if cp {
            Role::JoinControlPlane(discovery)
        } else {
            Role::JoinWorker(discovery)
        }
    };
    let network = cluster.spec.cluster_network.clone().unwrap_or_default();
    let version = machine.spec.version.clone().ok_or_else(|| {
        Error::invalid(
            format!("Machine {machine_name}"),
            "spec.version is required for kubeadm bootstrap",
        )
    })?;
    let info = ClusterInfo {
        name: cluster_name.clone(),
        endpoint,
        version,
        pod_cidrs: network.pods.map(|p| p.cidr_blocks).unwrap_or_default(),
        service_cidrs: network.services.map(|p| p.cidr_blocks).unwrap_or_default(),
        dns_domain: network.service_domain,
    };
    let mut inputs = BTreeMap::new();
    for f in cfg.spec.files.iter().flatten() {
        if let Some(from) = &f.content_from {
            let s = secrets_api.get_opt(&from.secret.name).await?;
            let v = s
                .and_then(|s| s.data)
                .and_then(|d| d.get(&from.secret.key).cloned())
                .map(|b| String::from_utf8_lossy(&b.0).into_owned());
            if let Some(v) = v {
                inputs.insert((from.secret.name.clone(), from.secret.key.clone()), v);
            }
        }
    }
    let resolve = |name: &str, key: &str| inputs.get(&(name.to_string(), key.to_string())).cloned();
    let data = match cloudinit::render(&cfg.spec, &info, &pki, &role, &resolve) {
        Ok(d) => d,
        Err(e) => return Ok(Step::Wait("InvalidConfiguration", e.to_string())),
    };
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(cfg.name_any()),
            // The token's id rides on the Secret written anyway, not on a write of the config.
            annotations: token_id.map(|id| BTreeMap::from([(TOKEN_ID_ANNOTATION.to_string(), id)])),
            namespace: Some(ns.clone()),
            labels: Some(BTreeMap::from([(
                labels::CLUSTER_NAME.into(),
                cluster_name.clone(),
            )])),
            owner_references: Some(vec![controller_ref(cfg)?]),
            ..Default::default()
        },
        type_: Some(secrets::CLUSTER_SECRET_TYPE.into()),
        data: Some(BTreeMap::from([
            (secrets::VALUE_KEY.into(), ByteString(data.into_bytes())),
            (
                secrets::FORMAT_KEY.into(),
                ByteString(b"cloud-config".to_vec()),
            ),
        ])),
        ..Default::default()
    };
    // Already there: written by an earlier pass that crashed before its status write; kept.
    create_once(&secrets_api, &secret).await?;
    Ok(Step::Done)
}
