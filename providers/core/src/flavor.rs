//! What a provider contributes to `slipway generate cluster`: an [`Infrastructure`] entry
//! with its flavors, its tera templates (embedded from the provider crate's `templates/`),
//! its kinds and its variables. The generator (crate `slipway-generate`) renders them; the
//! variables every flavor shares are the generator's.

/// How a variable's value is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Any string.
    Any,
    /// A DNS label (RFC 1123): at most 63 lower-case alphanumerics or '-'.
    DnsLabel,
    /// A Kubernetes version such as v1.31.0.
    Version,
    /// A CIDR block.
    Cidr,
    /// A non-negative integer.
    Count,
    /// An odd positive integer (control-plane replicas with stacked etcd).
    OddCount,
    /// A non-negative number of seconds.
    Seconds,
}

/// A variable a flavor uses.
#[derive(Clone, Copy, Debug)]
pub struct VarSpec {
    /// Name, e.g. `AWS_REGION`.
    pub name: &'static str,
    /// Default; `None` makes the variable required.
    pub default: Option<&'static str>,
    /// What it is for.
    pub description: &'static str,
    /// Check applied to its value.
    pub check: Check,
}

/// A [`VarSpec`].
pub const fn var(
    name: &'static str,
    default: Option<&'static str>,
    description: &'static str,
    check: Check,
) -> VarSpec {
    VarSpec {
        name,
        default,
        description,
        check,
    }
}

/// One `--infrastructure NAME` of `generate cluster`.
#[derive(Clone, Debug)]
pub struct Infrastructure {
    /// The name on the command line (`aws`, `aws-eks`, `kind`, `in-memory`).
    pub name: &'static str,
    /// Flavors offered; the first is the default.
    pub flavors: &'static [&'static str],
    /// Whether the generator's kubeadm template (Cluster, KubeadmControlPlane,
    /// MachineDeployment, KubeadmConfigTemplate) renders before the provider's templates.
    pub kubeadm: bool,
    /// Whether kubeadm is told the cloud provider is external (a cloud controller manager
    /// runs, node names come from the instance metadata).
    pub external_cloud_provider: bool,
    /// The provider's templates `(file name, contents)`, rendered in order.
    pub templates: &'static [(&'static str, &'static str)],
    /// Infrastructure cluster kind the Cluster references.
    pub cluster_kind: &'static str,
    /// Machine template kind the control plane and workers reference.
    pub machine_template_kind: &'static str,
    /// `KUBERNETES_VERSION` when none is given (`None`: required).
    pub default_kubernetes_version: Option<&'static str>,
    /// The provider's own variables for a flavor.
    pub variables: fn(flavor: &str) -> Vec<VarSpec>,
}
