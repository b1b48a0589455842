//! The in-memory provider: simulated infrastructure for tests, demos and scale runs.
//!
//! Clusters: an InMemoryCluster gets an endpoint on 127.0.0.1 with a free port (or keeps the one
//! in its spec) once its simulated provisioning delay has passed.
//!
//! Machines are not simulated yet: reconciling one is an `Unavailable` error saying so, never a
//! machine reported as running.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;
use slipway_api::{
    common::ApiEndpoint,
    inmemory::{InMemoryCluster, InMemoryMachine},
    names::finalizers,
};

use crate::{
    BootstrapData, ClusterOutcome, ClusterReady, ClusterScope, Deletion, InfrastructureProvider,
    MachineOutcome, MachineScope, Progress, ProviderError,
};

/// The in-memory provider.
#[derive(Debug, Default)]
pub struct InMemory;

/// Seconds left of a simulated delay that started at `created`.
fn remaining(created: Option<Timestamp>, delay: f64, now: Timestamp) -> Option<Duration> {
    let created = created?;
    let elapsed = (now.as_millisecond() - created.as_millisecond()) as f64 / 1000.0;
    (elapsed < delay).then(|| Duration::from_secs_f64(delay - elapsed))
}

fn free_port() -> Result<u16, ProviderError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| ProviderError::Transient {
        message: "allocating a port on 127.0.0.1".into(),
        source: Some(Box::new(e)),
    })?;
    Ok(l.local_addr()
        .map_err(|e| ProviderError::Transient {
            message: "reading the allocated port".into(),
            source: Some(Box::new(e)),
        })?
        .port())
}

impl InfrastructureProvider for InMemory {
    type Cluster = InMemoryCluster;
    type Machine = InMemoryMachine;
    const CLUSTER_FINALIZER: &'static str = finalizers::IN_MEMORY_CLUSTER;
    const MACHINE_FINALIZER: &'static str = finalizers::IN_MEMORY_MACHINE;

    fn name(&self) -> &'static str {
        "in-memory"
    }

    async fn reconcile_cluster(
        &self,
        scope: &ClusterScope<InMemoryCluster>,
    ) -> Result<ClusterOutcome, ProviderError> {
        let delay = scope
            .infra
            .spec
            .simulation
            .as_ref()
            .and_then(|s| s.provisioning_delay_seconds)
            .unwrap_or(0.0);
        let created = scope
            .infra
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0);
        if let Some(left) = remaining(created, delay, Timestamp::now()) {
            return Ok(ClusterOutcome::Provisioning(Progress {
                reason: "SimulatedProvisioning".into(),
                message: format!(
                    "simulated provisioning delay: {:.1}s left",
                    left.as_secs_f64()
                ),
                requeue_after: left,
                status: json!({}),
            }));
        }
        let endpoint = match scope
            .infra
            .spec
            .control_plane_endpoint
            .clone()
            .filter(ApiEndpoint::is_valid)
        {
            Some(ep) => ep,
            None => ApiEndpoint {
                host: "127.0.0.1".into(),
                port: i32::from(free_port()?),
            },
        };
        Ok(ClusterOutcome::Ready(ClusterReady {
            control_plane_endpoint: Some(endpoint),
            failure_domains: vec![],
            status: json!({}),
        }))
    }

    async fn delete_cluster(
        &self,
        _: &ClusterScope<InMemoryCluster>,
    ) -> Result<Deletion, ProviderError> {
        Ok(Deletion::Gone)
    }

    async fn reconcile_machine(
        &self,
        _: &MachineScope<InMemoryCluster, InMemoryMachine>,
        _: &BootstrapData,
    ) -> Result<MachineOutcome, ProviderError> {
        Err(ProviderError::unavailable(
            "in-memory machines",
            "the simulated machines are not implemented yet in this build",
        ))
    }

    async fn delete_machine(
        &self,
        _: &MachineScope<InMemoryCluster, InMemoryMachine>,
    ) -> Result<Deletion, ProviderError> {
        Ok(Deletion::Gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_delays_count_from_creation() {
        let now = Timestamp::from_second(1000).unwrap();
        assert_eq!(
            remaining(Some(Timestamp::from_second(998).unwrap()), 5.0, now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            remaining(Some(Timestamp::from_second(990).unwrap()), 5.0, now),
            None
        );
        assert_eq!(
            remaining(None, 5.0, now),
            None,
            "no creation time: no delay to wait for"
        );
    }
}
