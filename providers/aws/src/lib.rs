//! The AWS infrastructure provider (EC2 + kubeadm), after CAPA: an AWSCluster gets a managed
//! VPC (or uses a brought one), subnets across zones, internet and NAT gateways, route tables,
//! security groups per role and the API server NLB ([`network`]); an AWSMachine gets an EC2
//! instance booted from its bootstrap data ([`machine`]). Everything is tagged in its create
//! call and found again by tags, so a crash at any point never duplicates or leaks anything;
//! deletion goes in dependency order and is done only when AWS shows nothing left.
//!
//! EKS control planes and node groups are in [`eks`]; AWSMachinePools (launch template +
//! Auto Scaling group) in [`pool`].
#![forbid(unsafe_code)]
// kube-derive takes one `printcolumn(...)` per column; clippy reads the repeats as duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod api;
pub mod clients;
pub mod conversion;
pub mod creations;
pub mod eks;
pub mod error;
pub mod instances;
pub mod machine;
pub mod network;
mod plugin;
pub mod pool;

use std::time::Duration;

use crate::api::{AWSCluster, AWSMachine};
use kube::Resource;
use serde_json::{Value, json};
pub use slipway_providers::ProviderError;
use slipway_providers::{
    BootstrapData, BootstrapFormat, ClusterOutcome, ClusterReady, ClusterScope, Deletion,
    InfrastructureProvider, MachineOutcome, MachineReady, MachineScope, Progress,
};

pub use crate::plugin::{Plugin, plugin};
use crate::{clients::ClientCache, network::NetworkOutcome};

/// Default period of the drift resync of a Ready cluster's network and load balancer.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(300);
/// Environment variable overriding [`DEFAULT_RESYNC`], in seconds.
pub const RESYNC_ENV: &str = "SLIPWAY_AWS_RESYNC_SECONDS";

/// Default consistency window: how long a create AWS may have made can stay invisible to
/// Describe before slipway creates it again.
pub const DEFAULT_CONSISTENCY_WINDOW: Duration = Duration::from_secs(60);
/// Environment variable overriding [`DEFAULT_CONSISTENCY_WINDOW`], in seconds.
pub const CONSISTENCY_ENV: &str = "SLIPWAY_AWS_CONSISTENCY_SECONDS";

/// A duration in whole seconds from environment variable `var` (`None` when unset); anything
/// but a positive whole number is an error naming the variable.
pub fn seconds_from_env(var: &str) -> Result<Option<Duration>, ProviderError> {
    std::env::var(var)
        .ok()
        .map(|v| parse_seconds(var, &v))
        .transpose()
}

/// `value` of variable `var` as a positive whole number of seconds.
pub fn parse_seconds(var: &str, value: &str) -> Result<Duration, ProviderError> {
    match value.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
        _ => Err(ProviderError::terminal(format!(
            "{var}={value:?} is not a positive whole number of seconds"
        ))),
    }
}

/// The AWS provider.
#[derive(Default)]
pub struct Aws {
    clients: ClientCache,
    resync: Option<Duration>,
    window: Option<Duration>,
    events: Option<kube::runtime::events::Recorder>,
    ledger: creations::Ledger,
}

impl std::fmt::Debug for Aws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws")
            .field("clients", &self.clients)
            .field("resync", &self.resync)
            .field("events", &self.events.is_some())
            .finish()
    }
}

impl Aws {
    /// A provider using the standard AWS chain for credentials, region and endpoints.
    pub fn new() -> Self {
        Self::default()
    }

    /// A provider with explicit settings over the chain.
    pub fn with_settings(settings: clients::Settings) -> Self {
        Self {
            clients: ClientCache::new(settings),
            ..Default::default()
        }
    }

    /// The same provider, rechecking a Ready cluster for drift every `period` (default
    /// [`DEFAULT_RESYNC`]).
    pub fn with_resync(mut self, period: Duration) -> Self {
        self.resync = Some(period);
        self
    }

    /// The same provider, with a consistency window of `window` (default
    /// [`DEFAULT_CONSISTENCY_WINDOW`]).
    pub fn with_consistency_window(mut self, window: Duration) -> Self {
        self.window = Some(window);
        self
    }

    /// The same provider with the periods the environment sets ([`RESYNC_ENV`],
    /// [`CONSISTENCY_ENV`]); a bad value is an error naming its variable.
    pub fn with_env(mut self) -> Result<Self, ProviderError> {
        if let Some(d) = seconds_from_env(RESYNC_ENV)? {
            self.resync = Some(d);
        }
        if let Some(d) = seconds_from_env(CONSISTENCY_ENV)? {
            self.window = Some(d);
        }
        Ok(self)
    }

    fn pass(&self, now: jiff::Timestamp) -> network::Pass<'_> {
        network::Pass {
            ledger: &self.ledger,
            now,
            window: self.window.unwrap_or(DEFAULT_CONSISTENCY_WINDOW),
        }
    }

    /// The same provider, recording Kubernetes Events (drift repairs) through `client`.
    pub fn with_events(mut self, client: kube::Client) -> Self {
        self.events = Some(kube::runtime::events::Recorder::new(
            client,
            kube::runtime::events::Reporter {
                controller: "slipway-aws".into(),
                instance: None,
            },
        ));
        self
    }

    /// API calls made so far, by `service:Operation`.
    pub fn calls(&self) -> &clients::CallCounter {
        self.clients.counter()
    }

    /// Records a Warning Event on the AWSCluster; a failure is only logged (an Event is a
    /// report, never a reason to fail a reconcile).
    async fn event(&self, infra: &AWSCluster, reason: &str, note: String) {
        let Some(rec) = &self.events else { return };
        let ev = kube::runtime::events::Event {
            type_: kube::runtime::events::EventType::Warning,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = rec.publish(&ev, &infra.object_ref(&())).await {
            tracing::debug!(error = %e, "recording an Event failed");
        }
    }
}

/// Condition reason while a Ready cluster's missing resources are being re-created.
pub const DRIFT_REPAIRING: &str = "DriftRepairing";

fn cluster_name(scope_cluster: &slipway_api::Cluster) -> String {
    scope_cluster.metadata.name.clone().unwrap_or_default()
}

fn progress(reason: &str, message: String, after: Duration, status: Value) -> Progress {
    Progress {
        reason: reason.into(),
        message,
        requeue_after: after,
        status,
    }
}

/// What an instance's state means for its machine: running is Ready, pending and stopped are
/// waited for, anything else (terminated outside slipway) is terminal.
fn machine_outcome(inst: &machine::Found) -> Result<MachineOutcome, ProviderError> {
    let status = machine::status(inst);
    match inst.state.as_str() {
        "running" => Ok(MachineOutcome::Ready(MachineReady {
            provider_id: format!("aws:///{}/{}", inst.az, inst.id),
            addresses: inst.addresses.clone(),
            failure_domain: Some(inst.az.clone()).filter(|z| !z.is_empty()),
            status,
            message: String::new(),
        })),
        "pending" => Ok(MachineOutcome::Provisioning(progress(
            "InstancePending",
            format!("instance {} is pending", inst.id),
            Duration::from_secs(2),
            status,
        ))),
        "stopping" | "stopped" => Ok(MachineOutcome::Provisioning(progress(
            "InstanceStopped",
            format!("instance {} is {}", inst.id, inst.state),
            Duration::from_secs(30),
            status,
        ))),
        other => Err(ProviderError::terminal(format!(
            "instance {} is {other}: it was terminated outside slipway; delete the Machine to \
             replace it",
            inst.id
        ))),
    }
}

impl InfrastructureProvider for Aws {
    type Cluster = AWSCluster;
    type Machine = AWSMachine;
    const CLUSTER_FINALIZER: &'static str = "awscluster.infrastructure.cluster.x-k8s.io";
    const MACHINE_FINALIZER: &'static str = "awsmachine.infrastructure.cluster.x-k8s.io";

    fn name(&self) -> &'static str {
        "aws"
    }

    fn ready_recheck(&self) -> Option<Duration> {
        Some(self.resync.unwrap_or(DEFAULT_RESYNC))
    }

    async fn reconcile_cluster(
        &self,
        scope: &ClusterScope<AWSCluster>,
    ) -> Result<ClusterOutcome, ProviderError> {
        let infra = scope.infra.as_ref();
        let c = self.clients.get(infra.spec.region.as_deref()).await?;
        let ns = infra.metadata.namespace.clone().unwrap_or_default();
        let name = cluster_name(&scope.cluster);
        let input = network::Input::of_aws_cluster(infra, &ns, &name);
        // Once provisioned, anything the network plan still has to do is drift: something
        // slipway made went missing (deleted outside slipway) and is made again.
        let was_ready = infra
            .status
            .as_ref()
            .and_then(|s| s.initialization.as_ref())
            .and_then(|i| i.provisioned)
            .unwrap_or(false);
        match network::reconcile(&c, &input, &self.pass(scope.now)).await? {
            NetworkOutcome::Progress {
                reason,
                message,
                waiting,
                mut status,
            } => {
                let reason = if was_ready {
                    let note = format!("repairing drift: {message}");
                    tracing::warn!(cluster = %name, "{note}");
                    self.event(infra, DRIFT_REPAIRING, note).await;
                    // One repair takes a few passes: they add to the same record.
                    let prev = infra
                        .status
                        .as_ref()
                        .and_then(|s| s.drift.as_ref())
                        .filter(|d| d.repairing == Some(true));
                    status["drift"] = json!({
                        "lastRepairTime": prev
                            .and_then(|d| d.last_repair_time.clone())
                            .unwrap_or_else(|| scope.now.to_string()),
                        "repaired": match prev.and_then(|d| d.repaired.as_deref()) {
                            Some(before) => format!("{before}; {message}"),
                            None => message.clone(),
                        },
                        "repairing": true,
                    });
                    DRIFT_REPAIRING.to_string()
                } else {
                    reason
                };
                let message = if was_ready {
                    format!("repairing drift: {message}")
                } else {
                    message
                };
                Ok(ClusterOutcome::Provisioning(progress(
                    &reason,
                    message,
                    if waiting {
                        Duration::from_secs(15)
                    } else {
                        Duration::from_millis(200)
                    },
                    status,
                )))
            }
            NetworkOutcome::Ready {
                endpoint,
                failure_domains,
                mut status,
            } => {
                let drift = infra.status.as_ref().and_then(|s| s.drift.clone());
                if let Some(d) = drift.as_ref().filter(|d| d.repairing == Some(true)) {
                    let mut done = d.clone();
                    done.repairing = Some(false);
                    status["drift"] = json!(done);
                }
                Ok(ClusterOutcome::Ready(ClusterReady {
                    control_plane_endpoint: endpoint,
                    failure_domains,
                    status,
                    // The last repair stays told on the Ready condition.
                    message: drift
                        .map(|d| {
                            format!(
                                "drift repaired at {}: {}",
                                d.last_repair_time.as_deref().unwrap_or_default(),
                                d.repaired.as_deref().unwrap_or_default()
                            )
                        })
                        .unwrap_or_default(),
                    kubeconfig: None,
                }))
            }
        }
    }

    async fn delete_cluster(
        &self,
        scope: &ClusterScope<AWSCluster>,
    ) -> Result<Deletion, ProviderError> {
        let infra = scope.infra.as_ref();
        let c = self.clients.get(infra.spec.region.as_deref()).await?;
        let ns = infra.metadata.namespace.clone().unwrap_or_default();
        // The owner Cluster may be gone already; the tags carry the name the network was
        // made under, which the AWSCluster's cluster-name label keeps.
        let name = infra
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(slipway_api::names::labels::CLUSTER_NAME).cloned())
            .unwrap_or_else(|| cluster_name(&scope.cluster));
        match network::delete(
            &c,
            &network::Input::of_aws_cluster(infra, &ns, &name),
            &self.pass(scope.now),
        )
        .await?
        {
            None => Ok(Deletion::Gone),
            Some(done) => Ok(Deletion::InProgress(progress(
                "Deleting",
                format!("deleting the network: {done}"),
                Duration::from_secs(5),
                Value::Null,
            ))),
        }
    }

    async fn reconcile_machine(
        &self,
        scope: &MachineScope<AWSCluster, AWSMachine>,
        bootstrap: &BootstrapData,
    ) -> Result<MachineOutcome, ProviderError> {
        if bootstrap.format == BootstrapFormat::Ignition {
            return Err(ProviderError::terminal(
                "the AWS provider boots instances with cloud-init; Ignition bootstrap data is not \
                 supported",
            ));
        }
        let ic = scope.infra_cluster.as_ref();
        let m = scope.infra.as_ref();
        let c = self.clients.get(ic.spec.region.as_deref()).await?;
        let cluster = cluster_name(&scope.cluster);
        let Some(net) = ic.status.as_ref().and_then(|s| s.network_status.clone()) else {
            return Ok(MachineOutcome::Provisioning(progress(
                "WaitingForNetwork",
                "the AWSCluster has no network status yet".into(),
                Duration::from_secs(5),
                Value::Null,
            )));
        };
        let cp = scope.is_control_plane();
        let uid = m.metadata.uid.clone().unwrap_or_default();
        let prev = m.status.as_ref().and_then(|s| s.creation.as_ref());
        let mut creation = None;
        let recorded = m
            .spec
            .provider_id
            .as_deref()
            .and_then(machine::instance_id_of);
        let current = prev.map(|p| creations::token(&uid, "instance", p.attempt));
        let seen = instances::decide(
            recorded,
            current.as_deref(),
            &instances::observe(&c, &cluster, m).await?,
        );
        let name = m.metadata.name.clone().unwrap_or_default();
        instances::terminate_extras(
            &c,
            &name,
            seen.keep.as_ref().map(|k| k.id.as_str()),
            &seen.extras,
        )
        .await?;
        let inst = match seen.keep {
            Some(i) => {
                creation = creations::settled(prev);
                i
            }
            None => {
                // The attempt is in status before RunInstances goes out: a restarted
                // controller sends the same ClientToken, which AWS answers with the instance
                // the first call launched.
                let sent = prev.is_some_and(|p| self.ledger.was_sent(&uid, "instance", p.attempt));
                let attempt = match creations::decide(
                    prev,
                    scope.now,
                    self.ledger.me(),
                    sent,
                    true,
                    false,
                    self.window.unwrap_or(DEFAULT_CONSISTENCY_WINDOW),
                ) {
                    creations::Go::Create(n) => n,
                    creations::Go::Record(r) => {
                        return Ok(MachineOutcome::Provisioning(progress(
                            "RecordingCreate",
                            format!("recorded RunInstances attempt {}", r.attempt),
                            Duration::from_millis(200),
                            json!({ "creation": r }),
                        )));
                    }
                    creations::Go::Wait { left } => {
                        return Ok(MachineOutcome::Provisioning(progress(
                            "WaitingForConsistency",
                            "a launch may be in flight".into(),
                            left.min(Duration::from_secs(5)),
                            Value::Null,
                        )));
                    }
                };
                self.ledger.send(&uid, "instance", attempt);
                let (subnet, groups) =
                    machine::placement(&net, m, scope.machine.spec.failure_domain.as_deref(), cp)?;
                let launch = machine::Launch {
                    image: machine::image(&c, ic, m, scope.machine.spec.version.as_deref()).await?,
                    subnet,
                    groups,
                    key: machine::ssh_key(ic, m),
                };
                let machine_name = scope.machine.metadata.name.clone().unwrap_or_default();
                machine::run(
                    &c,
                    &cluster,
                    ic,
                    m,
                    &machine_name,
                    cp,
                    &launch,
                    &bootstrap.value,
                    &creations::token(&uid, "instance", attempt),
                )
                .await?
            }
        };
        if cp && inst.state == "running" {
            machine::target(&c, &net, &inst.id, true).await?;
        }
        let mut out = machine_outcome(&inst)?;
        if let Some(r) = creation {
            let st = match &mut out {
                MachineOutcome::Ready(r) => &mut r.status,
                MachineOutcome::Provisioning(p) => &mut p.status,
            };
            st["creation"] = json!(r);
        }
        Ok(out)
    }

    async fn delete_machine(
        &self,
        scope: &MachineScope<AWSCluster, AWSMachine>,
    ) -> Result<Deletion, ProviderError> {
        let ic = scope.infra_cluster.as_ref();
        let c = self.clients.get(ic.spec.region.as_deref()).await?;
        let cluster = cluster_name(&scope.cluster);
        let m = scope.infra.as_ref();
        let seen = instances::decide(
            m.spec
                .provider_id
                .as_deref()
                .and_then(machine::instance_id_of),
            None,
            &instances::observe(&c, &cluster, m).await?,
        );
        // Extras carrying the machine's tags go with it.
        instances::terminate_extras(
            &c,
            m.metadata.name.as_deref().unwrap_or_default(),
            seen.keep.as_ref().map(|k| k.id.as_str()),
            &seen.extras,
        )
        .await?;
        let Some(inst) = seen.keep else {
            // A launch recorded in flight may still show up: wait out the window first.
            let window = self.window.unwrap_or(DEFAULT_CONSISTENCY_WINDOW);
            if let Some(age) = scope
                .infra
                .status
                .as_ref()
                .and_then(|s| s.creation.as_ref())
                .and_then(|r| creations::in_flight_for(r, scope.now))
                .filter(|age| *age < window)
            {
                return Ok(Deletion::InProgress(progress(
                    "WaitingForConsistency",
                    "a launch may be in flight: describing again before declaring it gone".into(),
                    (window - age).min(Duration::from_secs(5)),
                    Value::Null,
                )));
            }
            return Ok(Deletion::Gone);
        };
        if scope.is_control_plane()
            && inst.state != "terminated"
            && let Some(net) = ic.status.as_ref().and_then(|s| s.network_status.as_ref())
        {
            machine::target(&c, net, &inst.id, false).await?;
        }
        match inst.state.as_str() {
            "terminated" => Ok(Deletion::Gone),
            "shutting-down" => Ok(Deletion::InProgress(progress(
                "Terminating",
                format!("instance {} is shutting down", inst.id),
                Duration::from_secs(10),
                json!({"instanceState": inst.state}),
            ))),
            _ => {
                error::retrying("TerminateInstances", || {
                    c.ec2.terminate_instances().instance_ids(&inst.id).send()
                })
                .await?;
                Ok(Deletion::InProgress(progress(
                    "Terminating",
                    format!("terminating instance {}", inst.id),
                    Duration::from_secs(2),
                    Value::Null,
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(state: &str) -> machine::Found {
        machine::Found {
            id: "i-0abc".into(),
            state: state.into(),
            az: "us-east-1b".into(),
            addresses: vec![],
        }
    }

    #[test]
    fn periods_from_the_environment_are_whole_seconds_or_an_error_naming_the_variable() {
        assert_eq!(
            parse_seconds(RESYNC_ENV, " 30 ").unwrap(),
            Duration::from_secs(30)
        );
        for bad in ["0", "-1", "5m", ""] {
            let e = parse_seconds(RESYNC_ENV, bad).unwrap_err();
            assert!(e.to_string().contains(RESYNC_ENV), "{e}");
        }
        assert_eq!(Aws::new().ready_recheck(), Some(DEFAULT_RESYNC));
        assert_eq!(
            Aws::new()
                .with_resync(Duration::from_secs(7))
                .ready_recheck(),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn instance_states_map_to_machine_outcomes() {
        let MachineOutcome::Ready(r) = machine_outcome(&inst("running")).unwrap() else {
            panic!("running is Ready")
        };
        assert_eq!(r.provider_id, "aws:///us-east-1b/i-0abc");
        assert_eq!(r.failure_domain.as_deref(), Some("us-east-1b"));
        assert_eq!(r.status["instanceState"], "running");
        let MachineOutcome::Provisioning(p) = machine_outcome(&inst("pending")).unwrap() else {
            panic!("pending is not Ready")
        };
        assert_eq!(p.reason, "InstancePending");
        assert_eq!(p.requeue_after, Duration::from_secs(2));
        assert_eq!(p.status["instanceState"], "pending");
        let MachineOutcome::Provisioning(p) = machine_outcome(&inst("stopped")).unwrap() else {
            panic!("stopped is not Ready")
        };
        assert_eq!(p.reason, "InstanceStopped");
        for gone in ["shutting-down", "terminated"] {
            let e = machine_outcome(&inst(gone)).unwrap_err();
            assert!(
                e.is_terminal() && e.to_string().contains("outside slipway"),
                "{e}"
            );
        }
    }
}
