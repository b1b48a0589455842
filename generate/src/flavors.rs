//! The variables every flavor shares, and the full variable list of a provider's flavor.
//! Providers describe their flavors (templates, kinds, own variables) in their crates'
//! [`Infrastructure`] entries; the generator's own template is `templates/kubeadm.yaml.tera`.

pub use slipway_providers::flavor::{Check, Infrastructure, VarSpec, var};

/// Every variable of `infra`'s `flavor`: the shared ones, then the provider's.
pub fn variables(infra: &Infrastructure, flavor: &str) -> Vec<VarSpec> {
    let default_version = infra.default_kubernetes_version;
    let mut v = vec![
        var(
            "CLUSTER_NAME",
            None,
            "name of the Cluster (the NAME argument)",
            Check::DnsLabel,
        ),
        var(
            "NAMESPACE",
            Some("default"),
            "namespace of every object (--target-namespace)",
            Check::DnsLabel,
        ),
        var(
            "KUBERNETES_VERSION",
            default_version,
            "Kubernetes version (--kubernetes-version)",
            Check::Version,
        ),
        var(
            "CONTROL_PLANE_MACHINE_COUNT",
            Some("1"),
            "control-plane machines (--control-plane-machine-count)",
            Check::OddCount,
        ),
        var(
            "WORKER_MACHINE_COUNT",
            Some("0"),
            "worker machines (--worker-machine-count)",
            Check::Count,
        ),
        var(
            "POD_CIDR",
            Some("192.168.0.0/16"),
            "pod network",
            Check::Cidr,
        ),
        var(
            "SERVICE_CIDR",
            Some("10.128.0.0/12"),
            "service network",
            Check::Cidr,
        ),
        var(
            "SERVICE_DOMAIN",
            Some("cluster.local"),
            "DNS domain of services",
            Check::Any,
        ),
    ];
    v.extend((infra.variables)(flavor));
    if flavor == TOPOLOGY && !v.iter().any(|s| s.name == "CLUSTER_CLASS_NAME") {
        v.push(var(
            "CLUSTER_CLASS_NAME",
            Some("quick-start"),
            "ClusterClass the Cluster is built from (shared by the Clusters naming it)",
            Check::DnsLabel,
        ));
    }
    v
}

/// The generator's kubeadm template (Cluster, KubeadmControlPlane, MachineDeployment,
/// KubeadmConfigTemplate), rendered before a kubeadm-based provider's templates.
pub(super) const KUBEADM_TEMPLATE: (&str, &str) = (
    "kubeadm.yaml.tera",
    include_str!("../templates/kubeadm.yaml.tera"),
);

/// The flavor whose Cluster is built from a ClusterClass (`spec.topology`).
pub const TOPOLOGY: &str = "topology";

/// The generator's topology template (Cluster with `spec.topology`, ClusterClass,
/// KubeadmControlPlaneTemplate, KubeadmConfigTemplate), rendered instead of the kubeadm
/// template for flavor [`TOPOLOGY`].
pub(super) const TOPOLOGY_TEMPLATE: (&str, &str) = (
    "topology.yaml.tera",
    include_str!("../templates/topology.yaml.tera"),
);
