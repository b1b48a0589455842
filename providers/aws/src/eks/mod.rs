//! EKS: the AWSManagedControlPlane reconciler and the AWSManagedCluster infrastructure
//! provider, after CAPA.
//!
//! An AWSManagedControlPlane gets the cluster's network (the same managed VPC as an AWSCluster,
//! without the API server NLB: EKS serves the API), then the EKS cluster (`eksClusterName`,
//! default `<namespace>_<cluster>`; version major.minor; the role `roleName` of the account
//! STS names; every subnet; endpoint access), tagged `kubernetes.io/cluster/<cluster>=owned` in
//! the create call and adopted only with that tag. Once ACTIVE: `spec.controlPlaneEndpoint` is
//! the EKS endpoint on 443, and `<cluster>-kubeconfig` carries the EKS CA and a presigned STS
//! token ([`token`]), renewed every 10 minutes (it lives about 15). Delete: node groups, then
//! the EKS cluster (waited for), then the network; the finalizer goes only when AWS shows none.
//!
//! Worker node groups are AWSManagedMachinePools ([`pool`]).

mod kubeconfig;
mod managed_cluster;
pub mod pool;
pub mod token;

use std::{sync::Arc, time::Duration};

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::{Value, json};
use slipway_api::{
    Cluster,
    common::ApiEndpoint,
    controlplane::ControlPlaneInitializationStatus,
    names::{conditions as ct, labels, reasons},
};
use slipway_runtime::{
    Context, Error,
    conditions::{self, Status, desired},
    objects::owner_cluster_name,
    reconcile::{dispatch, paused_condition, write_status},
    runner::Runner,
};

use crate::{
    ProviderError,
    api::{AWSManagedControlPlane, NetworkStatus},
    clients::{ClientCache, Clients},
    error,
    network::{
        self, NetworkOutcome,
        model::{k8s_tag, owner_tag},
    },
};

/// Finalizer of AWSManagedControlPlanes.
pub const FINALIZER: &str = "awsmanagedcontrolplane.controlplane.cluster.x-k8s.io";
/// How often an ACTIVE control plane looks at its token.
const AT_REST: Duration = Duration::from_secs(5 * 60);
/// CAPA's default role of EKS control planes.
const DEFAULT_ROLE: &str = "eks-controlplane.cluster-api-provider-aws.sigs.k8s.io";

/// Context of the EKS reconciler.
pub struct EksContext {
    /// Shared controller context.
    pub base: Arc<Context>,
    /// AWS clients.
    pub clients: ClientCache,
    /// This process's sent creates.
    pub ledger: crate::creations::Ledger,
    /// The consistency window.
    pub window: Duration,
}

/// The EKS cluster's lifecycle as it matters here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EksState {
    /// Being made or changed: wait.
    Busy(String),
    /// Serving: endpoint and CA known.
    Active,
    /// Failed: nothing a retry fixes.
    Failed,
}

/// Maps an EKS cluster status (pure).
pub fn state(status: &str) -> EksState {
    match status {
        "ACTIVE" | "UPDATING" => EksState::Active,
        "FAILED" => EksState::Failed,
        other => EksState::Busy(other.to_string()),
    }
}

/// `major.minor` of a version such as `v1.31.0` (EKS takes only those).
pub fn eks_version(v: &str) -> Option<String> {
    let mut parts = v.trim_start_matches('v').split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    (!major.is_empty() && !minor.is_empty()).then(|| format!("{major}.{minor}"))
}

/// Host and port of an EKS endpoint URL (`https://ABC.gr7.us-east-1.eks.amazonaws.com/`).
pub fn endpoint_of(url: &str) -> Option<ApiEndpoint> {
    let rest = url.strip_prefix("https://")?.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (rest, 443),
    };
    (!host.is_empty()).then(|| ApiEndpoint {
        host: host.to_string(),
        port,
    })
}

pub(crate) fn eks_name(cp: &AWSManagedControlPlane, ns: &str, cluster: &str) -> String {
    cp.spec
        .eks_cluster_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{ns}_{cluster}"))
}

fn input<'a>(cp: &'a AWSManagedControlPlane, ns: &'a str, cluster: &'a str) -> network::Input<'a> {
    network::Input {
        network: cp.spec.network.as_ref(),
        load_balancer: None,
        with_lb: false,
        additional_tags: cp.spec.additional_tags.as_ref(),
        namespace: ns,
        cluster,
        uid: cp.metadata.uid.as_deref().unwrap_or_default(),
        creations: cp.status.as_ref().and_then(|s| s.creations.as_ref()),
        known_vpc: cp
            .status
            .as_ref()
            .and_then(|s| s.network_status.as_ref())
            .and_then(|n| n.vpc_id.as_deref()),
    }
}

/// Where a pass got to.
enum Step {
    Waiting {
        reason: String,
        message: String,
        after: Duration,
        network: Value,
    },
    Active {
        endpoint: ApiEndpoint,
        server: String,
        ca: String,
        version: Option<String>,
        network: Value,
        clients: Clients,
        eks: String,
    },
}

pub use self::{
    kubeconfig::{TOKEN_ISSUED_AT, kubeconfig, needs_token},
    managed_cluster::AwsManaged,
};

/// Runs the AWSManagedControlPlane, AWSManagedMachinePool and AWSManagedCluster controllers.
pub async fn run(runner: Runner) {
    let window = crate::seconds_from_env(crate::CONSISTENCY_ENV)
        .unwrap_or_else(|e| {
            tracing::error!("{e}; using the default");
            None
        })
        .unwrap_or(crate::DEFAULT_CONSISTENCY_WINDOW);
    let ctx = Arc::new(EksContext {
        base: runner.context(),
        clients: ClientCache::default(),
        ledger: Default::default(),
        window,
    });
    tokio::join!(
        runner.run_control_plane::<AWSManagedControlPlane, _, _, _>(ctx.clone(), reconcile),
        runner.run(
            // A MachinePool's size reaches the AWSManagedMachinePool it references.
            runner
                .controller::<crate::api::AWSManagedMachinePool>()
                .watches(
                    runner.api::<slipway_api::MachinePool>(),
                    runner.trigger_config(),
                    |mp: slipway_api::MachinePool| {
                        let ns = mp.namespace().unwrap_or_default();
                        let r = &mp.spec.template.spec.infrastructure_ref;
                        (r.kind == "AWSManagedMachinePool")
                            .then(|| kube::runtime::reflector::ObjectRef::new(&r.name).within(&ns))
                    },
                ),
            "AWSManagedMachinePool",
            ctx,
            pool::reconcile,
        ),
        slipway_providers::infra::run_clusters_only(runner.clone(), AwsManaged),
    );
}

/// Entry point: finalizer dispatch.
pub async fn reconcile(
    cp: Arc<AWSManagedControlPlane>,
    ctx: Arc<EksContext>,
) -> Result<Action, Error> {
    let ns = cp.namespace().unwrap_or_default();
    let api: Api<AWSManagedControlPlane> = Api::namespaced(ctx.base.client.clone(), &ns);
    let (ctx, api) = (&ctx, &api);
    dispatch(
        api,
        FINALIZER,
        cp,
        |o| async move { apply(&o, ctx, api).await },
        |o| async move { cleanup(&o, ctx).await },
    )
    .await
}

async fn provision(
    cp: &AWSManagedControlPlane,
    ns: &str,
    cluster: &str,
    ctx: &EksContext,
    now: jiff::Timestamp,
    records: &mut crate::creations::Records,
) -> Result<Step, ProviderError> {
    let c = ctx.clients.get(cp.spec.region.as_deref()).await?;
    let pass = network::Pass {
        ledger: &ctx.ledger,
        now,
        window: ctx.window,
    };
    let outcome = network::reconcile(&c, &input(cp, ns, cluster), &pass).await?;
    let st = match &outcome {
        NetworkOutcome::Progress { status, .. } | NetworkOutcome::Ready { status, .. } => status,
    };
    if let Ok(r) = serde_json::from_value::<crate::creations::Records>(st["creations"].clone()) {
        *records = r;
    }
    let (network, subnets) = match outcome {
        NetworkOutcome::Progress {
            reason,
            message,
            waiting,
            status,
        } => {
            return Ok(Step::Waiting {
                reason,
                message,
                after: if waiting {
                    Duration::from_secs(15)
                } else {
                    Duration::from_millis(200)
                },
                network: status,
            });
        }
        NetworkOutcome::Ready { status, .. } => {
            let subnets: Vec<String> = status["networkStatus"]["subnets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["id"].as_str().map(String::from))
                .collect();
            (status, subnets)
        }
    };
    let eks = eks_name(cp, ns, cluster);
    let found = match c.eks.describe_cluster().name(&eks).send().await {
        Ok(o) => o.cluster().cloned(),
        Err(e) if error::is_not_found(&e) => None,
        Err(e) => return Err(error::map("DescribeCluster", e)),
    };
    let key = format!("eks:{eks}");
    let Some(found) = found else {
        // The attempt goes to status before CreateCluster: a restarted controller sends the
        // same clientRequestToken.
        let uid = cp.metadata.uid.clone().unwrap_or_default();
        let prev = records.get(&key);
        let sent = prev.is_some_and(|p| ctx.ledger.was_sent(&uid, &key, p.attempt));
        let (reason, message, after) = match crate::creations::decide(
            prev,
            now,
            ctx.ledger.me(),
            sent,
            true,
            false,
            ctx.window,
        ) {
            crate::creations::Go::Create(n) => {
                ctx.ledger.send(&uid, &key, n);
                let token = crate::creations::token(&uid, &key, n);
                create(cp, &c, cluster, &eks, subnets, &token).await?;
                (
                    "CreatingEKSCluster",
                    format!("CreateCluster {eks} sent"),
                    Duration::from_secs(15),
                )
            }
            crate::creations::Go::Record(r) => {
                let m = format!("recorded CreateCluster attempt {}", r.attempt);
                records.insert(key, r);
                ("RecordingCreate", m, Duration::from_millis(200))
            }
            crate::creations::Go::Wait { left } => (
                "WaitingForConsistency",
                "a CreateCluster may be in flight".into(),
                left.min(Duration::from_secs(5)),
            ),
        };
        return Ok(Step::Waiting {
            reason: reason.into(),
            message,
            after,
            network,
        });
    };
    if let Some(r) = crate::creations::settled(records.get(&key)) {
        records.insert(key, r);
    }
    let tags = found.tags().cloned().unwrap_or_default();
    let owned = |k: &str| tags.get(k).map(String::as_str) == Some("owned");
    if !owned(&k8s_tag(cluster)) && !owned(&owner_tag(cluster)) {
        return Err(ProviderError::terminal(format!(
            "EKS cluster {eks} exists and is not tagged {}=owned; slipway does not adopt it",
            k8s_tag(cluster)
        )));
    }
    let status = found
        .status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    match state(&status) {
        EksState::Failed => Err(ProviderError::terminal(format!(
            "EKS cluster {eks} is FAILED; delete the Cluster and create it again"
        ))),
        EksState::Busy(s) => Ok(Step::Waiting {
            reason: "WaitingForEKSCluster".into(),
            message: format!("EKS cluster {eks} is {s}"),
            after: Duration::from_secs(30),
            network,
        }),
        EksState::Active => {
            let server = found
                .endpoint()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string();
            let endpoint = endpoint_of(&server).ok_or_else(|| {
                ProviderError::transient(format!("EKS cluster {eks} is ACTIVE without an endpoint"))
            })?;
            Ok(Step::Active {
                endpoint,
                server,
                ca: found
                    .certificate_authority()
                    .and_then(|a| a.data())
                    .unwrap_or_default()
                    .to_string(),
                version: found.version().map(|v| format!("v{v}")),
                network,
                clients: c,
                eks,
            })
        }
    }
}

async fn create(
    cp: &AWSManagedControlPlane,
    c: &Clients,
    cluster: &str,
    eks: &str,
    subnets: Vec<String>,
    token: &str,
) -> Result<(), ProviderError> {
    let account = error::retrying("GetCallerIdentity", || c.sts.get_caller_identity().send())
        .await?
        .account()
        .unwrap_or_default()
        .to_string();
    let role = cp
        .spec
        .role_name
        .clone()
        .unwrap_or_else(|| DEFAULT_ROLE.into());
    let version = cp.spec.version.as_deref().and_then(eks_version);
    let access = cp.spec.endpoint_access.clone().unwrap_or_default();
    let mut tags: std::collections::HashMap<String, String> = cp
        .spec
        .additional_tags
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    tags.insert(k8s_tag(cluster), "owned".into());
    tags.insert(owner_tag(cluster), "owned".into());
    let vpc = aws_sdk_eks::types::VpcConfigRequest::builder()
        .set_subnet_ids(Some(subnets))
        .endpoint_public_access(access.public.unwrap_or(true))
        .endpoint_private_access(access.private.unwrap_or(false))
        .set_public_access_cidrs(access.public_cidrs.clone())
        .build();
    // Not retried in place: the next pass describes first.
    c.eks
        .create_cluster()
        .name(eks)
        .set_version(version)
        .role_arn(format!("arn:aws:iam::{account}:role/{role}"))
        .resources_vpc_config(vpc)
        .set_tags(Some(tags))
        .client_request_token(token)
        .send()
        .await
        .map_err(|e| error::map("CreateCluster", e))?;
    tracing::info!(eks_cluster = %eks, "created the EKS cluster");
    Ok(())
}

async fn apply(
    cp: &AWSManagedControlPlane,
    ctx: &EksContext,
    api: &Api<AWSManagedControlPlane>,
) -> Result<Action, Error> {
    let ns = cp.namespace().unwrap_or_default();
    let Some(cluster_name) = owner_cluster_name(cp) else {
        return Ok(Action::await_change());
    };
    let Some(cluster) = Api::<Cluster>::namespaced(ctx.base.client.clone(), &ns)
        .get_opt(&cluster_name)
        .await?
    else {
        return Ok(Action::await_change());
    };
    let old = cp.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let mut conds = status.conditions.take().unwrap_or_default();
    let generation = cp.metadata.generation;
    let now = (ctx.base.clock)();
    let paused = paused_condition(&mut conds, &cluster, cp.annotations(), generation, now);
    let mut action = Action::await_change();
    if !paused {
        let mut records = status.creations.clone().unwrap_or_default();
        let provisioned = provision(cp, &ns, &cluster_name, ctx, now, &mut records).await;
        if !records.is_empty() {
            status.creations = Some(records);
        }
        let (ready, after) = match provisioned {
            Err(e) => (
                desired(ct::READY, Status::False, e.reason(), e.to_string()),
                if e.is_terminal() {
                    None
                } else {
                    Some(e.fixed_retry().unwrap_or(Duration::from_secs(10)))
                },
            ),
            Ok(Step::Waiting {
                reason,
                message,
                after,
                network,
            }) => {
                set_network(&mut status, &network);
                (
                    desired(ct::READY, Status::False, &reason, message),
                    Some(after),
                )
            }
            Ok(Step::Active {
                endpoint,
                server,
                ca,
                version,
                network,
                clients,
                eks,
            }) => {
                set_network(&mut status, &network);
                if cp.spec.control_plane_endpoint.as_ref() != Some(&endpoint) {
                    api.patch(
                        &cp.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&json!({"spec": {"controlPlaneEndpoint": endpoint}})),
                    )
                    .await?;
                }
                match kubeconfig::write(ctx, cp, &cluster_name, &clients, &eks, &server, &ca).await
                {
                    Ok(()) => {
                        status.initialization = Some(ControlPlaneInitializationStatus {
                            control_plane_initialized: Some(true),
                        });
                        status.version = version;
                        conditions::set(
                            &mut conds,
                            desired(ct::AVAILABLE, Status::True, reasons::AVAILABLE, ""),
                            generation,
                            now,
                        );
                        (
                            desired(ct::READY, Status::True, reasons::READY, ""),
                            Some(AT_REST),
                        )
                    }
                    Err(e) => (
                        desired(ct::READY, Status::False, e.reason(), e.to_string()),
                        Some(Duration::from_secs(10)),
                    ),
                }
            }
        };
        conditions::set(&mut conds, ready, generation, now);
        if let Some(d) = after {
            action = Action::requeue(d);
        }
        status.observed_generation = generation;
    }
    status.conditions = Some(conds);
    write_status(api, &cp.metadata, Some(&old), &status).await?;
    Ok(action)
}

fn set_network(status: &mut crate::api::AwsManagedControlPlaneStatus, v: &Value) {
    if let Ok(n) = serde_json::from_value::<NetworkStatus>(v["networkStatus"].clone()) {
        status.network_status = Some(n);
    }
}

async fn cleanup(cp: &AWSManagedControlPlane, ctx: &EksContext) -> Result<Action, Error> {
    let ns = cp.namespace().unwrap_or_default();
    let cluster = owner_cluster_name(cp)
        .or_else(|| cp.labels().get(labels::CLUSTER_NAME).cloned())
        .unwrap_or_default();
    match teardown(cp, &ns, &cluster, ctx).await {
        Ok(None) => Ok(Action::await_change()),
        Ok(Some(waiting)) => Err(Error::Waiting(waiting)),
        Err(e) => Err(Error::Waiting(format!(
            "deleting the EKS control plane: {e}"
        ))),
    }
}

/// One pass of deleting: `None` once AWS shows nothing left.
async fn teardown(
    cp: &AWSManagedControlPlane,
    ns: &str,
    cluster: &str,
    ctx: &EksContext,
) -> Result<Option<String>, ProviderError> {
    let c = ctx.clients.get(cp.spec.region.as_deref()).await?;
    let eks = eks_name(cp, ns, cluster);
    let found = match c.eks.describe_cluster().name(&eks).send().await {
        Ok(o) => o.cluster().cloned(),
        Err(e) if error::is_not_found(&e) => None,
        Err(e) => return Err(error::map("DescribeCluster", e)),
    };
    if let Some(f) = found.filter(|f| {
        let ok = pool::owned_by(f.tags(), cluster);
        if !ok {
            tracing::warn!(eks_cluster = %eks, "not deleted: not tagged owned by the cluster");
        }
        ok
    }) {
        // Node groups first: AWS refuses to delete a cluster that has any.
        let groups = match c.eks.list_nodegroups().cluster_name(&eks).send().await {
            Ok(o) => o.nodegroups().to_vec(),
            Err(e) if error::is_not_found(&e) => vec![],
            Err(e) => return Err(error::map("ListNodegroups", e)),
        };
        if !groups.is_empty() {
            for g in &groups {
                let ng = match c
                    .eks
                    .describe_nodegroup()
                    .cluster_name(&eks)
                    .nodegroup_name(g)
                    .send()
                    .await
                {
                    Ok(o) => o.nodegroup().cloned(),
                    Err(e) if error::is_not_found(&e) => None,
                    Err(e) => return Err(error::map("DescribeNodegroup", e)),
                };
                if !ng.is_some_and(|n| pool::owned_by(n.tags(), cluster)) {
                    tracing::warn!(nodegroup = %g, eks_cluster = %eks, "not deleted: not tagged owned by the cluster");
                    continue;
                }
                match c
                    .eks
                    .delete_nodegroup()
                    .cluster_name(&eks)
                    .nodegroup_name(g)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e) if error::is_not_found(&e) => {}
                    Err(e) => return Err(error::map("DeleteNodegroup", e)),
                }
            }
            return Ok(Some(format!("deleting node groups {}", groups.join(", "))));
        }
        if f.status().map(|s| s.as_str()) != Some("DELETING") {
            match c.eks.delete_cluster().name(&eks).send().await {
                Ok(_) => {}
                Err(e) if error::is_not_found(&e) => {}
                Err(e) => return Err(error::map("DeleteCluster", e)),
            }
        }
        return Ok(Some(format!("EKS cluster {eks} is being deleted")));
    }
    let pass = network::Pass {
        ledger: &ctx.ledger,
        now: ctx.base.now(),
        window: ctx.window,
    };
    network::delete(&c, &input(cp, ns, cluster), &pass)
        .await
        .map(|done| done.map(|d| format!("deleting the network: {d}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eks_states_versions_and_endpoints() {
        assert_eq!(state("CREATING"), EksState::Busy("CREATING".into()));
        assert_eq!(state("PENDING"), EksState::Busy("PENDING".into()));
        assert_eq!(state("ACTIVE"), EksState::Active);
        assert_eq!(state("UPDATING"), EksState::Active);
        assert_eq!(state("FAILED"), EksState::Failed);
        assert_eq!(eks_version("v1.31.0").as_deref(), Some("1.31"));
        assert_eq!(eks_version("1.30").as_deref(), Some("1.30"));
        assert_eq!(eks_version("v1"), None);
        assert_eq!(
            endpoint_of("https://ABC.gr7.us-east-1.eks.amazonaws.com/"),
            Some(ApiEndpoint {
                host: "ABC.gr7.us-east-1.eks.amazonaws.com".into(),
                port: 443
            })
        );
        assert_eq!(endpoint_of("http://x"), None);
    }
}
