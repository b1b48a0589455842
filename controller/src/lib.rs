//! slipway's controllers, and the pure pieces they stand on: the cluster generator
//! (`slipway generate cluster`) and kubeadm bootstrap (PKI, kubeadm configuration, cloud-init).
//!
//! The reconcilers arrive with the provisioning issue.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bootstrap;
pub mod conditions;
pub mod generate;
pub mod plan;
