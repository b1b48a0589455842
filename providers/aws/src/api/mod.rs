//! The AWS provider's kinds, with CAPA's field names: [`cluster`] (AWSCluster and its
//! network), [`machine`] (AWSMachine, AWSMachineTemplate) and [`eks`] (AWSManagedControlPlane,
//! AWSManagedCluster, AWSManagedMachinePool). slipway's status follows contract v1beta2:
//! `status.initialization.provisioned` rather than CAPA's `status.ready`.

pub mod cluster;
pub mod eks;
pub mod machine;

pub use cluster::*;
pub use eks::*;
pub use machine::*;
