//! Built-in flavors: which templates render for each infrastructure and which variables they
//! take. Templates are tera files under `templates/flavors/`, embedded in the binary.

use super::vars::{Check, VarSpec};

/// Infrastructure providers `generate cluster` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Infrastructure {
    /// EC2 machines with a kubeadm control plane.
    Aws,
    /// EKS managed control plane.
    AwsEks,
    /// kind clusters on Docker.
    Kind,
    /// Simulated machines.
    InMemory,
}

impl Infrastructure {
    /// Every provider, in the order help text lists them.
    pub const ALL: [Infrastructure; 4] = [Self::Aws, Self::AwsEks, Self::Kind, Self::InMemory];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::AwsEks => "aws-eks",
            Self::Kind => "kind",
            Self::InMemory => "in-memory",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.name() == name)
    }

    /// Flavors this provider offers; the first is the default.
    pub fn flavors(self) -> &'static [&'static str] {
        match self {
            Self::InMemory => &["default", "faulty"],
            _ => &["default"],
        }
    }

    /// Template files rendered, in output order.
    pub(super) fn templates(self) -> &'static [&'static str] {
        match self {
            Self::Aws => &["kubeadm.yaml.tera", "aws.yaml.tera"],
            Self::AwsEks => &["aws-eks.yaml.tera"],
            Self::Kind => &["kubeadm.yaml.tera", "kind.yaml.tera"],
            Self::InMemory => &["kubeadm.yaml.tera", "in-memory.yaml.tera"],
        }
    }

    /// Kinds the kubeadm template points at for this provider:
    /// (infrastructure cluster, machine template).
    pub(super) fn infra_kinds(self) -> (&'static str, &'static str) {
        match self {
            Self::Aws => ("AWSCluster", "AWSMachineTemplate"),
            Self::AwsEks => ("AWSManagedCluster", "AWSMachineTemplate"),
            Self::Kind => ("KindCluster", "KindMachineTemplate"),
            Self::InMemory => ("InMemoryCluster", "InMemoryMachineTemplate"),
        }
    }

    /// Every variable of this provider and flavor.
    pub fn variables(self, flavor: &str) -> Vec<VarSpec> {
        let default_version = match self {
            // Simulated and local clusters get a working default; cloud clusters must say.
            Self::InMemory | Self::Kind => Some(DEFAULT_KUBERNETES_VERSION),
            Self::Aws | Self::AwsEks => None,
        };
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
        match self {
            Self::Aws => {
                v.extend(aws_common());
                v.extend([
                    var(
                        "AWS_CONTROL_PLANE_MACHINE_TYPE",
                        Some("t3.large"),
                        "instance type of control-plane machines",
                        Check::Any,
                    ),
                    var(
                        "AWS_NODE_MACHINE_TYPE",
                        Some("t3.large"),
                        "instance type of worker machines",
                        Check::Any,
                    ),
                    var(
                        "AWS_CONTROL_PLANE_IAM_INSTANCE_PROFILE",
                        Some("control-plane.cluster-api-provider-aws.sigs.k8s.io"),
                        "IAM instance profile of control-plane machines",
                        Check::Any,
                    ),
                    var(
                        "AWS_NODE_IAM_INSTANCE_PROFILE",
                        Some("nodes.cluster-api-provider-aws.sigs.k8s.io"),
                        "IAM instance profile of workers",
                        Check::Any,
                    ),
                    var(
                        "AWS_AMI_ID",
                        Some(""),
                        "AMI of every machine (empty: looked up by name)",
                        Check::Any,
                    ),
                ]);
            }
            Self::AwsEks => {
                v.extend(aws_common());
                v.extend([
                    var(
                        "AWS_EKS_ROLE_NAME",
                        Some("eks-controlplane.cluster-api-provider-aws.sigs.k8s.io"),
                        "IAM role of the EKS control plane",
                        Check::Any,
                    ),
                    var(
                        "AWS_EKS_NODEGROUP_ROLE_NAME",
                        Some("eks-nodegroup.cluster-api-provider-aws.sigs.k8s.io"),
                        "IAM role of the worker node group",
                        Check::Any,
                    ),
                    var(
                        "AWS_NODE_MACHINE_TYPE",
                        Some("t3.large"),
                        "instance type of the worker node group",
                        Check::Any,
                    ),
                ]);
            }
            Self::Kind => v.extend([
                var(
                    "KIND_NODE_IMAGE",
                    Some(""),
                    "node image (empty: kindest/node:<KUBERNETES_VERSION>)",
                    Check::Any,
                ),
                var(
                    "KIND_KUBECONFIG_ACCESS",
                    Some("host"),
                    "kubeconfig slipway uses: host or internal",
                    Check::Any,
                ),
            ]),
            Self::InMemory => {
                v.extend([
                    var(
                        "IN_MEMORY_VM_STARTUP_SECONDS",
                        Some("0"),
                        "simulated VM start-up time",
                        Check::Seconds,
                    ),
                    var(
                        "IN_MEMORY_NODE_STARTUP_SECONDS",
                        Some("0"),
                        "simulated Node registration time",
                        Check::Seconds,
                    ),
                    var(
                        "IN_MEMORY_API_SERVER_STARTUP_SECONDS",
                        Some("0"),
                        "simulated API server start-up time",
                        Check::Seconds,
                    ),
                ]);
                if flavor == "faulty" {
                    v.push(var(
                        "IN_MEMORY_FAULT_MESSAGE",
                        Some("simulated boot failure"),
                        "message of the workers' failed boot",
                        Check::Any,
                    ));
                }
            }
        }
        v
    }
}

/// Variables both AWS flavors take.
fn aws_common() -> [VarSpec; 3] {
    [
        var("AWS_REGION", None, "AWS region, e.g. eu-west-1", Check::Any),
        var(
            "AWS_SSH_KEY_NAME",
            None,
            "EC2 key pair for the machines (empty: none)",
            Check::Any,
        ),
        var(
            "AWS_VPC_CIDR",
            Some("10.0.0.0/16"),
            "CIDR of the managed VPC",
            Check::Cidr,
        ),
    ]
}

/// Kubernetes version of simulated and kind clusters when none is given.
pub const DEFAULT_KUBERNETES_VERSION: &str = "v1.31.0";

const fn var(
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

/// The embedded template files.
pub(super) const TEMPLATES: [(&str, &str); 5] = [
    (
        "kubeadm.yaml.tera",
        include_str!("../../../templates/flavors/kubeadm.yaml.tera"),
    ),
    (
        "aws.yaml.tera",
        include_str!("../../../templates/flavors/aws.yaml.tera"),
    ),
    (
        "aws-eks.yaml.tera",
        include_str!("../../../templates/flavors/aws-eks.yaml.tera"),
    ),
    (
        "kind.yaml.tera",
        include_str!("../../../templates/flavors/kind.yaml.tera"),
    ),
    (
        "in-memory.yaml.tera",
        include_str!("../../../templates/flavors/in-memory.yaml.tera"),
    ),
];
