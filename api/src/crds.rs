//! The CRDs of every kind slipway serves, in one deterministic order, and their YAML form.
//!
//! The same YAML is committed under `config/crd/` (one file per CRD, named after the CRD); a
//! test fails when the two drift.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::*;

/// Every CRD, core kinds first, then bootstrap, control plane, infrastructure and registry.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        Cluster::crd(),
        Machine::crd(),
        MachineSet::crd(),
        MachineDeployment::crd(),
        MachineHealthCheck::crd(),
        KubeadmConfig::crd(),
        KubeadmConfigTemplate::crd(),
        KubeadmControlPlane::crd(),
        AWSManagedControlPlane::crd(),
        AWSCluster::crd(),
        AWSMachine::crd(),
        AWSMachineTemplate::crd(),
        AWSManagedCluster::crd(),
        AWSManagedMachinePool::crd(),
        KindCluster::crd(),
        KindMachine::crd(),
        KindMachineTemplate::crd(),
        InMemoryCluster::crd(),
        InMemoryMachine::crd(),
        InMemoryMachineTemplate::crd(),
        ClusterProfile::crd(),
        KubeFedCluster::crd(),
    ]
}

/// One CRD as a YAML document (no leading `---`).
pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    serde_saphyr::to_string(crd).expect("a CRD always serializes")
}

/// Every CRD as one multi-document YAML stream, as `slipway crds` prints it.
pub fn all_yaml() -> String {
    all()
        .iter()
        .map(|c| format!("---\n{}", to_yaml(c)))
        .collect()
}

/// File name of a CRD under `config/crd/`: `<group>_<plural>.yaml`, as kubebuilder names them.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// Writes every CRD to `dir/<file_name>`; returns how many were written.
pub fn write_dir(dir: &std::path::Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let crds = all();
    for crd in &crds {
        std::fs::write(dir.join(file_name(crd)), to_yaml(crd))?;
    }
    Ok(crds.len())
}
