//! What provider calls return: progress, readiness with the contract fields, deletion state,
//! and the bootstrap data a machine boots from.

use std::{fmt, time::Duration};

use serde_json::Value;
use slipway_api::common::{ApiEndpoint, FailureDomain, MachineAddress};

/// Work still under way.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Condition reason, e.g. `WaitingForLoadBalancer`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// When to look again.
    pub requeue_after: Duration,
    /// Provider status fields known so far (e.g. ids of what exists), merged into `status`.
    pub status: Value,
}

/// Result of reconciling an infrastructure cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterOutcome {
    /// Not ready yet.
    Provisioning(Progress),
    /// Ready: the contract fields core copies to the Cluster.
    Ready(ClusterReady),
}

/// A provisioned infrastructure cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterReady {
    /// Endpoint of the control plane (copied to `spec.controlPlaneEndpoint`).
    pub control_plane_endpoint: Option<ApiEndpoint>,
    /// Failure domains (copied to `status.failureDomains`).
    pub failure_domains: Vec<FailureDomain>,
    /// Provider status fields, merged into `status`.
    pub status: Value,
    /// Message of the Ready condition: what the user should know although all is provisioned.
    pub message: String,
    /// The admin kubeconfig, when the provider's own tooling made the control plane (kind):
    /// core writes it to `<cluster>-kubeconfig` instead of the one signed by the cluster CA.
    pub kubeconfig: Option<ProvidedKubeconfig>,
}

/// A kubeconfig made by the provider. `value` is the one the management plane uses; `extra`
/// holds variants under further keys of the Secret (e.g. kind's `internal`). Its `Debug` never
/// shows the content: kubeconfigs carry client keys.
#[derive(Clone, PartialEq, Eq)]
pub struct ProvidedKubeconfig {
    /// The kubeconfig under the Secret's `value` key.
    pub value: String,
    /// Further keys of the Secret.
    pub extra: std::collections::BTreeMap<String, String>,
}

impl fmt::Debug for ProvidedKubeconfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvidedKubeconfig")
            .field(
                "value",
                &format_args!("<redacted {} bytes>", self.value.len()),
            )
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Result of reconciling an infrastructure machine.
#[derive(Clone, Debug, PartialEq)]
pub enum MachineOutcome {
    /// Not ready yet.
    Provisioning(Progress),
    /// Ready: the contract fields core copies to the Machine.
    Ready(MachineReady),
}

/// A provisioned machine.
#[derive(Clone, Debug, PartialEq)]
pub struct MachineReady {
    /// Provider ID; equals the Node's `spec.providerID`.
    pub provider_id: String,
    /// Addresses.
    pub addresses: Vec<MachineAddress>,
    /// Failure domain it landed in.
    pub failure_domain: Option<String>,
    /// Provider status fields, merged into `status`.
    pub status: Value,
    /// Message of the Ready condition: what the user should know although all is provisioned.
    pub message: String,
}

/// Result of a delete call.
#[derive(Clone, Debug, PartialEq)]
pub enum Deletion {
    /// Resources are still going away.
    InProgress(Progress),
    /// Nothing is left; the finalizer may go.
    Gone,
}

/// Format of bootstrap data (`status.dataSecretName`'s `format` key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootstrapFormat {
    /// cloud-init user data.
    CloudConfig,
    /// Ignition.
    Ignition,
}

/// A machine's bootstrap data. Its `Debug` never shows the content: bootstrap data carries keys
/// and tokens and must not reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapData {
    /// The data, as stored in the Secret's `value` key.
    pub value: Vec<u8>,
    /// Its format.
    pub format: BootstrapFormat,
}

impl fmt::Debug for BootstrapData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapData")
            .field(
                "value",
                &format_args!("<redacted {} bytes>", self.value.len()),
            )
            .field("format", &self.format)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_data_never_prints_its_content() {
        let data = BootstrapData {
            value: b"token: abcdef.0123456789abcdef".to_vec(),
            format: BootstrapFormat::CloudConfig,
        };
        let shown = format!("{data:?}");
        assert!(!shown.contains("abcdef"), "{shown}");
        assert!(
            shown.contains(&format!("<redacted {} bytes>", data.value.len())),
            "{shown}"
        );
    }
}
