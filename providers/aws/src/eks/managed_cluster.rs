//! The AWSManagedCluster infrastructure provider of EKS clusters.

use crate::api::{AWSMachine, AWSManagedCluster};
use serde_json::json;
use slipway_providers::{
    BootstrapData, ClusterOutcome, ClusterReady, ClusterScope, Deletion, InfrastructureProvider,
    MachineOutcome, MachineScope,
};

use crate::ProviderError;

/// The AWSManagedCluster infrastructure provider: EKS makes the infrastructure with the
/// control plane, so there is nothing to provision; the endpoint comes from the
/// AWSManagedControlPlane (core reads it there).
#[derive(Debug, Default)]
pub struct AwsManaged;

impl InfrastructureProvider for AwsManaged {
    type Cluster = AWSManagedCluster;
    type Machine = AWSMachine;
    const CLUSTER_FINALIZER: &'static str = "awsmanagedcluster.infrastructure.cluster.x-k8s.io";
    const MACHINE_FINALIZER: &'static str = "awsmachine.infrastructure.cluster.x-k8s.io";

    fn name(&self) -> &'static str {
        "aws-eks"
    }

    async fn reconcile_cluster(
        &self,
        _scope: &ClusterScope<AWSManagedCluster>,
    ) -> Result<ClusterOutcome, ProviderError> {
        Ok(ClusterOutcome::Ready(ClusterReady {
            control_plane_endpoint: None,
            failure_domains: vec![],
            status: json!({}),
            message: "EKS makes the network and serves the API with the AWSManagedControlPlane"
                .into(),
            kubeconfig: None,
        }))
    }

    async fn delete_cluster(
        &self,
        _scope: &ClusterScope<AWSManagedCluster>,
    ) -> Result<Deletion, ProviderError> {
        Ok(Deletion::Gone)
    }

    async fn reconcile_machine(
        &self,
        _scope: &MachineScope<AWSManagedCluster, AWSMachine>,
        _bootstrap: &BootstrapData,
    ) -> Result<MachineOutcome, ProviderError> {
        Err(ProviderError::terminal(
            "an EKS cluster has no Machines of its own; its workers are node groups",
        ))
    }

    async fn delete_machine(
        &self,
        _scope: &MachineScope<AWSManagedCluster, AWSMachine>,
    ) -> Result<Deletion, ProviderError> {
        Ok(Deletion::Gone)
    }
}
