//! The AWS provider's [`slipway_providers::Plugin`]: its CRDs (CAPA's kinds), kinds, the
//! `aws` (flavors `default`, `machinepool`, `topology`) and `aws-eks` entries of `generate
//! cluster`, and its controllers (EC2 + kubeadm infrastructure and machine pools; EKS control
//! planes, node groups and managed clusters).

use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use slipway_providers::{
    ProvidedKind, Role, Settings,
    flavor::{Check, Infrastructure, VarSpec, var},
};
use slipway_runtime::runner::Runner;

use crate::api::{
    AWSCluster, AWSClusterTemplate, AWSMachine, AWSMachinePool, AWSMachineTemplate,
    AWSManagedCluster, AWSManagedControlPlane, AWSManagedMachinePool,
};

/// The AWS provider as a plugin.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plugin;

/// The AWS provider's plugin, using the standard AWS chain for credentials, region and
/// endpoints.
/// Building it registers the v1beta1 conversions of its kinds, so the plane and the webhook
/// of any process carrying the provider convert them.
pub fn plugin() -> Plugin {
    crate::conversion::register();
    Plugin
}

impl slipway_providers::Plugin for Plugin {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn crds(&self) -> Vec<CustomResourceDefinition> {
        // A CRD served at v1beta1 must convert wherever it is served.
        crate::conversion::register();
        vec![
            AWSManagedControlPlane::crd(),
            AWSCluster::crd(),
            AWSMachine::crd(),
            AWSMachineTemplate::crd(),
            AWSClusterTemplate::crd(),
            AWSManagedCluster::crd(),
            AWSManagedMachinePool::crd(),
            AWSMachinePool::crd(),
        ]
        .into_iter()
        .map(slipway_api::conversion::schema::with_v1beta1)
        .collect()
    }

    fn kinds(&self) -> Vec<ProvidedKind> {
        vec![
            ProvidedKind::of::<AWSCluster>(Role::InfrastructureCluster, Some("aws")),
            ProvidedKind::of::<AWSManagedCluster>(Role::InfrastructureCluster, Some("aws-eks")),
            ProvidedKind::of::<AWSMachine>(Role::InfrastructureMachine, None),
            ProvidedKind::of::<AWSManagedControlPlane>(Role::ControlPlane, None),
            ProvidedKind::of::<AWSManagedMachinePool>(Role::InfrastructureMachinePool, None),
            ProvidedKind::of::<AWSMachinePool>(Role::InfrastructureMachinePool, None),
        ]
    }

    fn infrastructures(&self) -> Vec<Infrastructure> {
        vec![
            Infrastructure {
                name: "aws",
                flavors: &["default", "machinepool", "topology"],
                kubeadm: true,
                external_cloud_provider: true,
                templates: &[
                    ("aws.yaml.tera", include_str!("../templates/aws.yaml.tera")),
                    (
                        "_topology-class.yaml.tera",
                        include_str!("../templates/_topology-class.yaml.tera"),
                    ),
                    (
                        "_topology-values.yaml.tera",
                        include_str!("../templates/_topology-values.yaml.tera"),
                    ),
                ],
                cluster_kind: "AWSCluster",
                machine_template_kind: "AWSMachineTemplate",
                default_kubernetes_version: None,
                variables: aws_variables,
            },
            Infrastructure {
                name: "aws-eks",
                flavors: &["default"],
                kubeadm: false,
                external_cloud_provider: true,
                templates: &[(
                    "aws-eks.yaml.tera",
                    include_str!("../templates/aws-eks.yaml.tera"),
                )],
                cluster_kind: "AWSManagedCluster",
                machine_template_kind: "AWSMachineTemplate",
                default_kubernetes_version: None,
                variables: eks_variables,
            },
        ]
    }

    fn run(&self, runner: Runner, _settings: Settings) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            futures::join!(
                slipway_providers::infra::run(runner.clone(), {
                    let aws = crate::Aws::new().with_events(runner.context().client.clone());
                    aws.with_env().unwrap_or_else(|e| {
                        tracing::error!("{e}; using the defaults");
                        crate::Aws::new().with_events(runner.context().client.clone())
                    })
                }),
                crate::eks::run(runner.clone()),
                crate::pool::run(runner),
            );
        })
    }
}

/// Variables both AWS flavors take.
fn common() -> [VarSpec; 3] {
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

fn aws_variables(flavor: &str) -> Vec<VarSpec> {
    let mut v = common().to_vec();
    if flavor == "topology" {
        v.push(var(
            "CLUSTER_CLASS_NAME",
            Some("aws-quick-start"),
            "ClusterClass the Cluster is built from (shared by the Clusters naming it)",
            Check::DnsLabel,
        ));
    }
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
    v
}

fn eks_variables(_flavor: &str) -> Vec<VarSpec> {
    let mut v = common().to_vec();
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
    v
}
