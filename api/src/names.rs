//! Well-known names: labels, annotations, finalizers, Secret types, condition types and reasons.
//!
//! Values are upstream's where upstream has one, so objects written by slipway read the same to
//! tools built for Cluster API (clusterctl, Argo CD, dashboards).

/// Labels.
pub mod labels {
    /// Name of the Cluster an object belongs to; set on every child object and Secret.
    pub const CLUSTER_NAME: &str = "cluster.x-k8s.io/cluster-name";
    /// Present (empty value) on control-plane Machines.
    pub const CONTROL_PLANE: &str = "cluster.x-k8s.io/control-plane";
    /// Name of the control plane owning a Machine.
    pub const CONTROL_PLANE_NAME: &str = "cluster.x-k8s.io/control-plane-name";
    /// Name of the MachineSet owning a Machine.
    pub const MACHINE_SET_NAME: &str = "cluster.x-k8s.io/set-name";
    /// Name of the MachineDeployment owning a MachineSet or Machine.
    pub const MACHINE_DEPLOYMENT_NAME: &str = "cluster.x-k8s.io/deployment-name";
    /// Hash of a MachineDeployment template; one MachineSet per revision.
    pub const MACHINE_TEMPLATE_HASH: &str = "machine-template-hash";
    /// Marks infrastructure managed outside Cluster API; providers skip such objects.
    pub const MANAGED_BY: &str = "cluster.x-k8s.io/managed-by";
    /// Prefix of the contract label on provider CRDs: `cluster.x-k8s.io/v1beta2: v1beta2`.
    pub const CONTRACT_V1BETA2: &str = "cluster.x-k8s.io/v1beta2";
    /// Cluster manager label on registry objects (SIG-Multicluster ClusterProfile).
    pub const CLUSTER_MANAGER: &str = "x-k8s.io/cluster-manager";
    /// Region label copied from a Cluster onto registry objects.
    pub const REGION: &str = "topology.kubernetes.io/region";
    /// Shards controllers: `slipway controller --watch-filter V` reconciles only objects
    /// carrying this label with value V (upstream's watch filter); objects slipway creates
    /// inherit it from their creator.
    pub const WATCH_FILTER: &str = "cluster.x-k8s.io/watch-filter";
}

/// Annotations.
pub mod annotations {
    /// Pauses reconciliation of the annotated object (any value).
    pub const PAUSED: &str = "cluster.x-k8s.io/paused";
    /// Cluster name on objects that cannot carry the label.
    pub const CLUSTER_NAME: &str = "cluster.x-k8s.io/cluster-name";
    /// MachineDeployment revision of a MachineSet.
    pub const REVISION: &str = "machinedeployment.clusters.x-k8s.io/revision";
    /// Desired replicas of the owning MachineDeployment, recorded on its MachineSets.
    pub const DESIRED_REPLICAS: &str = "machinedeployment.clusters.x-k8s.io/desired-replicas";
    /// Maximum replicas (desired + maxSurge) recorded on MachineSets.
    pub const MAX_REPLICAS: &str = "machinedeployment.clusters.x-k8s.io/max-replicas";
    /// Marks a Machine for deletion first when its set scales down.
    pub const DELETE_MACHINE: &str = "cluster.x-k8s.io/delete-machine";
    /// Asks for a Machine to be remediated.
    pub const REMEDIATE_MACHINE: &str = "cluster.x-k8s.io/remediate-machine";
    /// Excludes a Machine from health-check remediation.
    pub const SKIP_REMEDIATION: &str = "cluster.x-k8s.io/skip-remediation";
    /// On `<cluster>-kubeconfig`: the infrastructure provider (e.g. `kind`) whose own tooling
    /// made the control plane wrote it; the control plane leaves such a kubeconfig alone.
    pub const KUBECONFIG_PROVIDER: &str = "slipway.dev/kubeconfig-provider";
    /// Set by `slipway move` on a source object just before it deletes it (upstream
    /// clusterctl's): controllers neither add their finalizer nor run their cleanup, so the
    /// infrastructure the object stands for is left alone.
    pub const DELETE_FOR_MOVE: &str = "clusterctl.cluster.x-k8s.io/delete-for-move";
    /// Set by `slipway move` on every object it creates in the target: the UID of the source
    /// object, so a re-run recognises its own work instead of reporting a clash.
    pub const MOVED_FROM_UID: &str = "slipway.dev/moved-from-uid";
    /// Set by `slipway move` on a Cluster it paused (one the user had paused has none): the
    /// move unpauses in the target exactly the Clusters that carry it.
    pub const PAUSED_BY_MOVE: &str = "slipway.dev/paused-by-move";
    /// Skips draining the Node of a deleted Machine (any value).
    pub const EXCLUDE_NODE_DRAINING: &str = "machine.cluster.x-k8s.io/exclude-node-draining";
    /// Skips waiting for volumes to detach from the Node of a deleted Machine (any value).
    pub const EXCLUDE_WAIT_FOR_NODE_VOLUME_DETACH: &str =
        "machine.cluster.x-k8s.io/exclude-wait-for-node-volume-detach";
    /// Prefix of pre-drain hook annotations: each holds a Machine's deletion before its drain.
    pub const PRE_DRAIN_HOOK_PREFIX: &str = "pre-drain.delete.hook.machine.cluster.x-k8s.io";
    /// Prefix of pre-terminate hook annotations: each holds a Machine's deletion before its
    /// infrastructure is deleted.
    pub const PRE_TERMINATE_HOOK_PREFIX: &str =
        "pre-terminate.delete.hook.machine.cluster.x-k8s.io";
    /// On a KubeadmControlPlane: a remediation is in progress (JSON: machine, timestamp,
    /// retryCount).
    pub const REMEDIATION_IN_PROGRESS: &str =
        "controlplane.cluster.x-k8s.io/remediation-in-progress";
    /// On a control-plane Machine: the remediation it replaces (same JSON).
    pub const REMEDIATION_FOR: &str = "controlplane.cluster.x-k8s.io/remediation-for";
    /// On a workload Pod: `skip` leaves it out of drains (upstream `cluster.x-k8s.io/drain`).
    pub const POD_DRAIN: &str = "cluster.x-k8s.io/drain";
    /// On a mirror (static) Pod, set by the kubelet: drains skip it.
    pub const MIRROR_POD: &str = "kubernetes.io/config.mirror";
}

/// Finalizers, one per reconciler.
pub mod finalizers {
    /// Cluster reconciler.
    pub const CLUSTER: &str = "cluster.cluster.x-k8s.io";
    /// Machine reconciler.
    pub const MACHINE: &str = "machine.cluster.x-k8s.io";
    /// MachineSet reconciler.
    pub const MACHINE_SET: &str = "cluster.x-k8s.io/machineset";
    /// MachineDeployment reconciler.
    pub const MACHINE_DEPLOYMENT: &str = "cluster.x-k8s.io/machinedeployment";
    /// KubeadmControlPlane reconciler.
    pub const KUBEADM_CONTROL_PLANE: &str = "kubeadm.controlplane.cluster.x-k8s.io";
    /// KubeadmConfig reconciler.
    pub const KUBEADM_CONFIG: &str = "kubeadmconfig.bootstrap.cluster.x-k8s.io";
    /// AWS infrastructure reconcilers (CAPA's names).
    pub const AWS_CLUSTER: &str = "awscluster.infrastructure.cluster.x-k8s.io";
    /// AWS machine reconciler.
    pub const AWS_MACHINE: &str = "awsmachine.infrastructure.cluster.x-k8s.io";
    /// EKS control plane reconciler.
    pub const AWS_MANAGED_CONTROL_PLANE: &str =
        "awsmanagedcontrolplane.controlplane.cluster.x-k8s.io";
    /// kind cluster reconciler.
    pub const KIND_CLUSTER: &str = "kindcluster.infrastructure.cluster.x-k8s.io";
    /// kind machine reconciler.
    pub const KIND_MACHINE: &str = "kindmachine.infrastructure.cluster.x-k8s.io";
    /// In-memory cluster reconciler.
    pub const IN_MEMORY_CLUSTER: &str = "inmemorycluster.infrastructure.cluster.x-k8s.io";
    /// In-memory machine reconciler.
    pub const IN_MEMORY_MACHINE: &str = "inmemorymachine.infrastructure.cluster.x-k8s.io";
    /// Registry reconciler (deregisters before a Cluster goes).
    pub const REGISTRY: &str = "registry.slipway.dev";
}

/// Secret types and key names.
pub mod secrets {
    /// Type of Secrets Cluster API writes (PKI, kubeconfig, bootstrap data).
    pub const CLUSTER_SECRET_TYPE: &str = "cluster.x-k8s.io/secret";
    /// Key holding a kubeconfig or bootstrap data.
    pub const VALUE_KEY: &str = "value";
    /// Key holding the bootstrap data format.
    pub const FORMAT_KEY: &str = "format";
    /// Certificate key in PKI Secrets.
    pub const TLS_CRT: &str = "tls.crt";
    /// Private key in PKI Secrets.
    pub const TLS_KEY: &str = "tls.key";
    /// Suffix of the cluster CA Secret.
    pub const CA_SUFFIX: &str = "ca";
    /// Suffix of the etcd CA Secret.
    pub const ETCD_SUFFIX: &str = "etcd";
    /// Suffix of the front-proxy CA Secret.
    pub const PROXY_SUFFIX: &str = "proxy";
    /// Suffix of the service-account key Secret.
    pub const SA_SUFFIX: &str = "sa";
    /// Suffix of the admin kubeconfig Secret.
    pub const KUBECONFIG_SUFFIX: &str = "kubeconfig";

    /// `<cluster>-<suffix>`, the upstream naming of per-cluster Secrets.
    pub fn name(cluster: &str, suffix: &str) -> String {
        format!("{cluster}-{suffix}")
    }
}

/// Condition types (v1beta2).
pub mod conditions {
    /// Summary: the object is fully usable.
    pub const AVAILABLE: &str = "Available";
    /// Summary for machines and provider objects.
    pub const READY: &str = "Ready";
    /// The object matches its desired spec.
    pub const UP_TO_DATE: &str = "UpToDate";
    /// Reconciliation is paused.
    pub const PAUSED: &str = "Paused";
    /// The object is being deleted.
    pub const DELETING: &str = "Deleting";
    /// Infrastructure (cluster or machine) is ready.
    pub const INFRASTRUCTURE_READY: &str = "InfrastructureReady";
    /// Bootstrap data is ready.
    pub const BOOTSTRAP_CONFIG_READY: &str = "BootstrapConfigReady";
    /// The control plane has been initialized.
    pub const CONTROL_PLANE_INITIALIZED: &str = "ControlPlaneInitialized";
    /// The control plane is available.
    pub const CONTROL_PLANE_AVAILABLE: &str = "ControlPlaneAvailable";
    /// Workers are available.
    pub const WORKERS_AVAILABLE: &str = "WorkersAvailable";
    /// Control-plane machines are Ready.
    pub const CONTROL_PLANE_MACHINES_READY: &str = "ControlPlaneMachinesReady";
    /// Worker machines are Ready.
    pub const WORKER_MACHINES_READY: &str = "WorkerMachinesReady";
    /// Machines of a set are Ready.
    pub const MACHINES_READY: &str = "MachinesReady";
    /// Machines of a set are up to date.
    pub const MACHINES_UP_TO_DATE: &str = "MachinesUpToDate";
    /// The Node of a Machine is Ready.
    pub const NODE_READY: &str = "NodeReady";
    /// The Node of a Machine is healthy.
    pub const NODE_HEALTHY: &str = "NodeHealthy";
    /// A rollout is in progress.
    pub const ROLLING_OUT: &str = "RollingOut";
    /// Scaling up.
    pub const SCALING_UP: &str = "ScalingUp";
    /// Scaling down.
    pub const SCALING_DOWN: &str = "ScalingDown";
    /// A KubeadmControlPlane is initialized.
    pub const INITIALIZED: &str = "Initialized";
    /// Cluster certificates exist.
    pub const CERTIFICATES_AVAILABLE: &str = "CertificatesAvailable";
    /// A KubeadmConfig's bootstrap Secret exists.
    pub const DATA_SECRET_AVAILABLE: &str = "DataSecretAvailable";
    /// The management plane can reach the workload cluster.
    pub const REMOTE_CONNECTION_PROBE: &str = "RemoteConnectionProbe";
    /// ClusterProfile: the cluster's control plane answers health probes.
    pub const CONTROL_PLANE_HEALTHY: &str = "ControlPlaneHealthy";
    /// ClusterProfile: the cluster has joined the inventory.
    pub const JOINED: &str = "Joined";
    /// MachineHealthCheck: remediation is allowed.
    pub const REMEDIATION_ALLOWED: &str = "RemediationAllowed";
    /// Machines are being remediated.
    pub const REMEDIATING: &str = "Remediating";
    /// ClusterClass topology reconciled.
    pub const TOPOLOGY_RECONCILED: &str = "TopologyReconciled";
    /// ClusterClass: its variable definitions are usable.
    pub const VARIABLES_READY: &str = "VariablesReady";
    /// ClusterClass: every template it references exists at a served version.
    pub const REF_VERSIONS_UP_TO_DATE: &str = "RefVersionsUpToDate";
    /// Worker machines (Cluster) reported UpToDate.
    pub const WORKER_MACHINES_UP_TO_DATE: &str = "WorkerMachinesUpToDate";
    /// Control-plane machines (Cluster) reported UpToDate.
    pub const CONTROL_PLANE_MACHINES_UP_TO_DATE: &str = "ControlPlaneMachinesUpToDate";
    /// KubeadmControlPlane: the etcd cluster is healthy (every member's etcd Pod runs and is a
    /// member).
    pub const ETCD_CLUSTER_HEALTHY: &str = "EtcdClusterHealthy";
    /// KubeadmControlPlane: the static control-plane Pods are healthy on every machine.
    pub const CONTROL_PLANE_COMPONENTS_HEALTHY: &str = "ControlPlaneComponentsHealthy";
    /// Control-plane Machine: its kube-apiserver Pod is healthy.
    pub const API_SERVER_POD_HEALTHY: &str = "APIServerPodHealthy";
    /// Control-plane Machine: its kube-controller-manager Pod is healthy.
    pub const CONTROLLER_MANAGER_POD_HEALTHY: &str = "ControllerManagerPodHealthy";
    /// Control-plane Machine: its kube-scheduler Pod is healthy.
    pub const SCHEDULER_POD_HEALTHY: &str = "SchedulerPodHealthy";
    /// Control-plane Machine: its etcd Pod is healthy.
    pub const ETCD_POD_HEALTHY: &str = "EtcdPodHealthy";
    /// Control-plane Machine: its etcd member is healthy.
    pub const ETCD_MEMBER_HEALTHY: &str = "EtcdMemberHealthy";
    /// Machine: a MachineHealthCheck found it healthy (set by the MachineHealthCheck).
    pub const HEALTH_CHECK_SUCCEEDED: &str = "HealthCheckSucceeded";
    /// Machine: its owner is remediating it (set False by the MachineHealthCheck, then the
    /// owner's).
    pub const OWNER_REMEDIATED: &str = "OwnerRemediated";
}

/// Condition reasons.
pub mod reasons {
    /// Reconciliation is paused.
    pub const PAUSED: &str = "Paused";
    /// Reconciliation is not paused.
    pub const NOT_PAUSED: &str = "NotPaused";
    /// Generic success.
    pub const READY: &str = "Ready";
    /// Generic not-ready.
    pub const NOT_READY: &str = "NotReady";
    /// Available summary true.
    pub const AVAILABLE: &str = "Available";
    /// Available summary false.
    pub const NOT_AVAILABLE: &str = "NotAvailable";
    /// Up to date.
    pub const UP_TO_DATE: &str = "UpToDate";
    /// Not up to date.
    pub const NOT_UP_TO_DATE: &str = "NotUpToDate";
    /// Waiting for the infrastructure cluster to be provisioned.
    pub const WAITING_FOR_INFRASTRUCTURE: &str = "WaitingForInfrastructure";
    /// Waiting for the control plane to be initialized.
    pub const WAITING_FOR_CONTROL_PLANE: &str = "WaitingForControlPlaneInitialization";
    /// Waiting for bootstrap data.
    pub const WAITING_FOR_BOOTSTRAP_DATA: &str = "WaitingForBootstrapData";
    /// Waiting for the cluster's infrastructure before creating machines.
    pub const WAITING_FOR_CLUSTER_INFRASTRUCTURE: &str = "WaitingForClusterInfrastructureReady";
    /// Waiting for a Node with the machine's providerID.
    pub const WAITING_FOR_NODE_REF: &str = "WaitingForNodeRef";
    /// A referenced object does not exist.
    pub const REFERENCE_NOT_FOUND: &str = "RefNotFound";
    /// A provider tool, credential or endpoint is missing.
    pub const PROVIDER_UNAVAILABLE: &str = "ProviderUnavailable";
    /// The provider rejected the spec; no retry helps.
    pub const PROVIDER_TERMINAL_ERROR: &str = "ProviderTerminalError";
    /// A transient provider error; retried with backoff.
    pub const PROVIDER_TRANSIENT_ERROR: &str = "ProviderTransientError";
    /// Something was provisioned.
    pub const PROVISIONED: &str = "Provisioned";
    /// Provisioning in progress.
    pub const PROVISIONING: &str = "Provisioning";
    /// Deletion in progress.
    pub const DELETING: &str = "Deleting";
    /// Not being deleted.
    pub const NOT_DELETING: &str = "NotDeleting";
    /// Waiting for workers to be deleted.
    pub const WAITING_FOR_WORKERS_DELETION: &str = "WaitingForWorkersDeletion";
    /// Waiting for the control plane to be deleted.
    pub const WAITING_FOR_CONTROL_PLANE_DELETION: &str = "WaitingForControlPlaneDeletion";
    /// Waiting for the infrastructure to be deleted.
    pub const WAITING_FOR_INFRASTRUCTURE_DELETION: &str = "WaitingForInfrastructureDeletion";
    /// Deletion finished.
    pub const DELETION_COMPLETED: &str = "DeletionCompleted";
    /// A workload cluster is reachable and healthy.
    pub const HEALTHY: &str = "Healthy";
    /// A workload cluster answers but reports unhealthy.
    pub const UNHEALTHY: &str = "Unhealthy";
    /// A workload cluster cannot be reached.
    pub const UNREACHABLE: &str = "Unreachable";
    /// A workload cluster refuses the registry's credentials.
    pub const UNAUTHORIZED: &str = "Unauthorized";
    /// kind: a machine cannot be added to an existing kind cluster.
    pub const UNSUPPORTED_SCALING: &str = "UnsupportedScaling";
    /// kind: the change needs the kind cluster to be recreated.
    pub const RECREATE_REQUIRED: &str = "RecreateRequired";
    /// The node a kind Machine was bound to no longer exists.
    pub const NODE_NOT_FOUND: &str = "NodeNotFound";
    /// kind is creating the cluster.
    pub const CREATING_KIND_CLUSTER: &str = "CreatingKindCluster";
    /// kind is deleting the cluster to create it again (`recreatePolicy: Recreate`).
    pub const RECREATING_KIND_CLUSTER: &str = "RecreatingKindCluster";
    /// The Cluster has no control plane to size the infrastructure from yet.
    pub const WAITING_FOR_TOPOLOGY: &str = "WaitingForTopology";
    /// The node container of a kind Machine is not running.
    pub const NODE_NOT_RUNNING: &str = "NodeNotRunning";
    /// ClusterClass topology is not supported by slipway.
    pub const TOPOLOGY_UNSUPPORTED: &str = "TopologyUnsupported";
    /// Summaries: some input is unknown.
    pub const AVAILABLE_UNKNOWN: &str = "AvailableUnknown";
    /// Summaries: some input is unknown.
    pub const READY_UNKNOWN: &str = "ReadyUnknown";
    /// Summaries: some input is unknown.
    pub const UP_TO_DATE_UNKNOWN: &str = "UpToDateUnknown";
    /// Machine aggregates of an object with no machines.
    pub const NO_REPLICAS: &str = "NoReplicas";
    /// WorkersAvailable of a Cluster without MachineDeployments.
    pub const NO_WORKERS: &str = "NoWorkers";
    /// RemoteConnectionProbe succeeded.
    pub const PROBE_SUCCEEDED: &str = "ProbeSucceeded";
    /// RemoteConnectionProbe failed (or no connection yet).
    pub const PROBE_FAILED: &str = "ProbeFailed";
    /// Scaling up.
    pub const SCALING_UP: &str = "ScalingUp";
    /// Not scaling up.
    pub const NOT_SCALING_UP: &str = "NotScalingUp";
    /// Scaling-up state unknown.
    pub const SCALING_UP_UNKNOWN: &str = "ScalingUpUnknown";
    /// Scaling down.
    pub const SCALING_DOWN: &str = "ScalingDown";
    /// Not scaling down.
    pub const NOT_SCALING_DOWN: &str = "NotScalingDown";
    /// Scaling-down state unknown.
    pub const SCALING_DOWN_UNKNOWN: &str = "ScalingDownUnknown";
    /// Rolling out.
    pub const ROLLING_OUT: &str = "RollingOut";
    /// Not rolling out.
    pub const NOT_ROLLING_OUT: &str = "NotRollingOut";
    /// Roll-out state unknown.
    pub const ROLLING_OUT_UNKNOWN: &str = "RollingOutUnknown";
    /// Remediating.
    pub const REMEDIATING: &str = "Remediating";
    /// Not remediating.
    pub const NOT_REMEDIATING: &str = "NotRemediating";
    /// Remediation state unknown.
    pub const REMEDIATING_UNKNOWN: &str = "RemediatingUnknown";
    /// A reference names a kind no CustomResourceDefinition serves.
    pub const KIND_NOT_SERVED: &str = "KindNotServed";
    /// An upgrade or downgrade breaks the version-skew policy.
    pub const VERSION_SKEW: &str = "VersionSkewNotAllowed";
    /// Health of a workload-cluster component is not known (no connection yet).
    pub const INSPECTION_FAILED: &str = "InspectionFailed";
    /// KubeadmControlPlane health: some member or component is not healthy.
    pub const NOT_HEALTHY: &str = "NotHealthy";
    /// KubeadmControlPlane health: not reported yet for some machine.
    pub const HEALTH_UNKNOWN: &str = "HealthUnknown";
    /// HealthCheckSucceeded: every check passes.
    pub const HEALTH_CHECK_SUCCEEDED: &str = "HealthCheckSucceeded";
    /// HealthCheckSucceeded: a Node condition matched for longer than its timeout.
    pub const UNHEALTHY_NODE: &str = "UnhealthyNode";
    /// HealthCheckSucceeded: a Machine condition matched for longer than its timeout.
    pub const UNHEALTHY_MACHINE: &str = "UnhealthyMachine";
    /// HealthCheckSucceeded: no Node within nodeStartupTimeoutSeconds.
    pub const NODE_STARTUP_TIMEOUT: &str = "NodeStartupTimeout";
    /// HealthCheckSucceeded: the Machine's Node is gone.
    pub const NODE_DELETED: &str = "NodeDeleted";
    /// HealthCheckSucceeded: the remediate-machine annotation asks for remediation.
    pub const HAS_REMEDIATE_ANNOTATION: &str = "HasRemediateAnnotation";
    /// OwnerRemediated: the owner has not started yet.
    pub const WAITING_FOR_REMEDIATION: &str = "WaitingForRemediation";
    /// OwnerRemediated: the owner deleted the Machine (a replacement follows).
    pub const MACHINE_DELETING: &str = "MachineDeleting";
    /// OwnerRemediated: the control plane must not remediate this Machine now.
    pub const CANNOT_BE_REMEDIATED: &str = "CannotBeRemediated";
    /// OwnerRemediated: the control plane remediates it later.
    pub const REMEDIATION_DEFERRED: &str = "RemediationDeferred";
    /// MachineHealthCheck RemediationAllowed: within the triggerIf limits.
    pub const REMEDIATION_ALLOWED: &str = "RemediationAllowed";
    /// MachineHealthCheck RemediationAllowed: too many unhealthy machines.
    pub const TOO_MANY_UNHEALTHY: &str = "TooManyUnhealthy";
    /// MachineHealthCheck RemediationAllowed: `remediation.templateRef` asks for external
    /// remediation, which slipway does not support.
    pub const EXTERNAL_REMEDIATION_NOT_SUPPORTED: &str = "ExternalRemediationNotSupported";
    /// Machine Deleting: waiting for pre-drain hook annotations to go.
    pub const WAITING_FOR_PRE_DRAIN_HOOK: &str = "WaitingForPreDrainHook";
    /// Machine Deleting: draining the Node.
    pub const DRAINING_NODE: &str = "DrainingNode";
    /// Machine Deleting: waiting for volumes to detach from the Node.
    pub const WAITING_FOR_VOLUME_DETACH: &str = "WaitingForVolumeDetach";
    /// Machine Deleting: waiting for pre-terminate hook annotations to go.
    pub const WAITING_FOR_PRE_TERMINATE_HOOK: &str = "WaitingForPreTerminateHook";
    /// Machine Deleting: waiting for the bootstrap config to go.
    pub const WAITING_FOR_BOOTSTRAP_DELETION: &str = "WaitingForBootstrapDeletion";
    /// Machine Deleting: deleting the Node.
    pub const DELETING_NODE: &str = "DeletingNode";
}
