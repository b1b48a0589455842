//! The AWS provider's kinds, with CAPA's field names: [`cluster`] (AWSCluster and its
//! network), [`machine`] (AWSMachine, AWSMachineTemplate), [`eks`] (AWSManagedControlPlane,
//! AWSManagedCluster, AWSManagedMachinePool) and [`pool`] (AWSMachinePool). slipway's status
//! follows contract v1beta2: `status.initialization.provisioned` rather than CAPA's
//! `status.ready` (AWSMachinePool carries both, as CAPA's v1beta2 does).

pub mod cluster;
pub mod eks;
pub mod machine;
pub mod pool;

pub use cluster::*;
pub use eks::*;
pub use machine::*;
pub use pool::{
    AWSMachinePool, AwsLaunchTemplate, AwsMachinePoolInstanceStatus, AwsMachinePoolSpec,
    AwsMachinePoolStatus, InstancesDistribution, MixedInstancesPolicy, Overrides,
    RefreshPreferences,
};
