//! Cluster API types slipway serves and reads, their CRDs, and the well-known names.
//!
//! Provider kinds (AWSCluster, KindCluster, InMemoryCluster, ...) live in their provider's
//! crate under `providers/`; this crate holds only what core serves and reads.
//!
//! Every kind is a `#[derive(CustomResource)]` type with upstream JSON field names (contract
//! v1beta2). [`crds::all`] lists every CRD; `slipway crds` prints them and `config/crd/` holds the
//! committed copy, kept equal by a test. Schema validation and CEL rules are part of the types,
//! so the served CRDs reject what upstream's webhooks reject.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// kube-derive takes one `printcolumn(...)` per column; clippy reads the repeats as duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod addons;
pub mod bootstrap;
pub mod cluster;
pub mod clusterclass;
pub mod common;
pub mod controlplane;
pub mod conversion;
pub mod crds;
pub mod drain;
pub mod machine;
pub mod machinepool;
pub mod names;
pub mod registry;

pub use addons::{ClusterResourceSet, ClusterResourceSetBinding};
pub use bootstrap::{KubeadmConfig, KubeadmConfigTemplate};
pub use cluster::Cluster;
pub use clusterclass::{ClusterClass, KubeadmControlPlaneTemplate};
pub use controlplane::KubeadmControlPlane;
pub use drain::MachineDrainRule;
pub use machine::{Machine, MachineDeployment, MachineHealthCheck, MachineSet};
pub use machinepool::MachinePool;
pub use registry::{ClusterProfile, KubeFedCluster};
