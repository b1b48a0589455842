//! The CRDs of every kind slipway serves, in one deterministic order, and their YAML form.
//!
//! The same YAML is committed under `config/crd/` (one file per CRD, named after the CRD); a
//! test fails when the two drift.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::*;

/// The CRDs of core kinds: Cluster API core, bootstrap, control plane and registry kinds.
/// Provider crates list their own; the binary serves both. Cluster API kinds are served at
/// v1beta1 too (see [`crate::conversion`]).
pub fn core() -> Vec<CustomResourceDefinition> {
    [
        Cluster::crd(),
        Machine::crd(),
        MachineSet::crd(),
        MachineDeployment::crd(),
        MachineHealthCheck::crd(),
        MachineDrainRule::crd(),
        MachinePool::crd(),
        KubeadmConfig::crd(),
        KubeadmConfigTemplate::crd(),
        KubeadmControlPlane::crd(),
        ClusterClass::crd(),
        KubeadmControlPlaneTemplate::crd(),
        ClusterResourceSet::crd(),
        ClusterResourceSetBinding::crd(),
        ClusterProfile::crd(),
        KubeFedCluster::crd(),
    ]
    .into_iter()
    .map(crate::conversion::schema::with_v1beta1)
    .collect()
}

/// One CRD as a YAML document (no leading `---`).
pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    serde_saphyr::to_string(crd).expect("a CRD always serializes")
}

/// CRDs as one multi-document YAML stream, as `slipway crds` prints them.
pub fn to_yaml_stream(crds: &[CustomResourceDefinition]) -> String {
    crds.iter()
        .map(|c| format!("---\n{}", to_yaml(c)))
        .collect()
}

/// File name of a CRD under `config/crd/`: `<group>_<plural>.yaml`, as kubebuilder names them.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// Writes CRDs to `dir/<file_name>`; returns how many were written.
pub fn write_dir(
    dir: &std::path::Path,
    crds: &[CustomResourceDefinition],
) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    for crd in crds {
        std::fs::write(dir.join(file_name(crd)), to_yaml(crd))?;
    }
    Ok(crds.len())
}
