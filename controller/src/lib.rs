//! slipway's reconcilers of the core Cluster API kinds, one module per kind: Cluster
//! ([`cluster`]), Machine ([`machine`]), MachineSet ([`machine_set`]), MachineDeployment
//! ([`machine_deployment`]), MachinePool ([`machine_pool`]), KubeadmControlPlane ([`kcp`], its
//! machines in [`kcp_machines`]), KubeadmConfig ([`kubeadm_config`]), MachineHealthCheck
//! ([`mhc`]) and ClusterResourceSet ([`addons`]); their pure planners in [`plan`]; and the
//! [`manager`] that runs them beside the providers' controllers and the registry.
//!
//! Every reconciler follows the one skeleton of [`slipway_runtime::reconcile`]. Provider
//! objects are read through the contract fields only, so any contract-following provider
//! plugs in.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod addons;
pub mod cluster;
pub mod kcp;
pub mod kcp_health;
pub mod kcp_machines;
pub mod kcp_remediation;
pub mod kubeadm_config;
pub mod machine;
pub mod machine_deletion;
pub mod machine_deployment;
pub mod machine_pool;
pub mod machine_set;
pub mod manager;
pub mod mhc;
pub mod plan;
pub mod topology;
pub mod version;
