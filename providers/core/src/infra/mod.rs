//! The generic infrastructure reconcilers: one infrastructure cluster reconciler
//! ([`cluster`]) and one infrastructure machine reconciler ([`machine`]) serve every
//! [`InfrastructureProvider`]. They read core objects, call the provider, and write the
//! contract fields back; providers never write status.
//!
//! They live beside the trait rather than in the controller crate because a provider crate's
//! [`crate::Plugin::run`] instantiates them for its own types, and provider crates sit below
//! the controller.

pub mod cluster;
pub mod machine;
pub mod topology;

use std::sync::Arc;

use kube::{Resource, ResourceExt, runtime::reflector::ObjectRef};
use slipway_api::{Cluster, Machine};
use slipway_runtime::{Context, runner::Runner, runner::Watched};

use crate::InfrastructureProvider;

/// Context of one provider's infrastructure reconcilers.
pub struct InfraContext<P> {
    /// Shared context.
    pub base: Arc<Context>,
    /// The provider.
    pub provider: P,
}

/// Runs the infrastructure cluster and machine controllers of `provider`.
pub async fn run<P>(runner: Runner, provider: P)
where
    P: InfrastructureProvider,
    P::Cluster: Watched,
    P::Machine: Watched,
{
    let ctx = Arc::new(InfraContext {
        base: runner.context(),
        provider,
    });
    futures::join!(
        clusters::<P>(&runner, ctx.clone()),
        machines::<P>(&runner, ctx),
    );
}

/// Runs only the infrastructure cluster controller of `provider` (a provider whose machines
/// are not Machines, as EKS node groups).
pub async fn run_clusters_only<P>(runner: Runner, provider: P)
where
    P: InfrastructureProvider,
    P::Cluster: Watched,
{
    let ctx = Arc::new(InfraContext {
        base: runner.context(),
        provider,
    });
    clusters::<P>(&runner, ctx).await;
}

async fn clusters<P>(runner: &Runner, ctx: Arc<InfraContext<P>>)
where
    P: InfrastructureProvider,
    P::Cluster: Watched,
{
    let kind = P::Cluster::kind(&()).to_string();
    let c = runner.controller::<P::Cluster>().watches(
        runner.api::<Cluster>(),
        runner.trigger_config(),
        move |c: Cluster| {
            // A Cluster's changes (pause, its infrastructureRef) reach its infrastructure
            // cluster.
            let ns = c.namespace().unwrap_or_default();
            c.spec
                .infrastructure_ref
                .clone()
                .filter(|r| r.kind == kind)
                .map(|r| ObjectRef::new(&r.name).within(&ns))
        },
    );
    runner
        .run(c, "InfrastructureCluster", ctx, cluster::reconcile::<P>)
        .await;
}

async fn machines<P>(runner: &Runner, ctx: Arc<InfraContext<P>>)
where
    P: InfrastructureProvider,
    P::Cluster: Watched,
    P::Machine: Watched,
{
    let kind = P::Machine::kind(&()).to_string();
    slipway_runtime::objects::register_finalizer(
        &P::Machine::group(&()),
        &kind,
        P::MACHINE_FINALIZER,
    );
    let c = runner.controller::<P::Machine>().watches(
        runner.api::<Machine>(),
        runner.trigger_config(),
        move |m: Machine| {
            // The Machine's bootstrap data and pause reach its infrastructure machine.
            let ns = m.namespace().unwrap_or_default();
            (m.spec.infrastructure_ref.kind == kind)
                .then(|| ObjectRef::new(&m.spec.infrastructure_ref.name).within(&ns))
        },
    );
    runner
        .run(c, "InfrastructureMachine", ctx, machine::reconcile::<P>)
        .await;
}
