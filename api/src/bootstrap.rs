//! `bootstrap.cluster.x-k8s.io/v1beta2` KubeadmConfig and KubeadmConfigTemplate.
//!
//! `KubeadmConfigSpec` is also embedded in KubeadmControlPlane. Field names follow upstream
//! v1beta2 (`extraArgs` is a list of `{name, value}`, durations are `*Seconds`). The bootstrap
//! contract: the rendered data lands in a Secret named by `status.dataSecretName` (key `value`)
//! and `status.initialization.dataSecretCreated` turns true.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::common::{Condition, ObjectMeta, TemplateStatus};

/// Desired state of a KubeadmConfig: what a machine runs to join or init a cluster.
#[skip_serializing_none]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "bootstrap.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "KubeadmConfig",
    plural = "kubeadmconfigs",
    namespaced,
    status = "KubeadmConfigStatus",
    shortname = "kc",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
    ),
    printcolumn(
        name = "Data secret created",
        type_ = "boolean",
        json_path = ".status.initialization.dataSecretCreated"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KubeadmConfigSpec {
    /// kubeadm ClusterConfiguration (used on init only).
    pub cluster_configuration: Option<ClusterConfiguration>,
    /// kubeadm InitConfiguration (the first control-plane machine).
    pub init_configuration: Option<InitConfiguration>,
    /// kubeadm JoinConfiguration (every other machine).
    pub join_configuration: Option<JoinConfiguration>,
    /// Extra files written to the machine.
    pub files: Option<Vec<File>>,
    /// Disk partitions and filesystems.
    pub disk_setup: Option<DiskSetup>,
    /// Mount points, each a list of cloud-init mount fields.
    pub mounts: Option<Vec<Vec<String>>>,
    /// Commands run very early in boot (cloud-init bootcmd).
    pub boot_commands: Option<Vec<String>>,
    /// Commands run before kubeadm.
    pub pre_kubeadm_commands: Option<Vec<String>>,
    /// Commands run after kubeadm.
    pub post_kubeadm_commands: Option<Vec<String>>,
    /// Users to create.
    pub users: Option<Vec<User>>,
    /// NTP settings.
    pub ntp: Option<Ntp>,
    /// Bootstrap data format: `cloud-config` (default) or `ignition`.
    #[schemars(regex(pattern = r"^(cloud-config|ignition)$"))]
    pub format: Option<String>,
    /// kubeadm `-v` verbosity.
    #[schemars(range(min = 0))]
    pub verbosity: Option<i32>,
    /// Ignition settings (format ignition only).
    pub ignition: Option<IgnitionSpec>,
}

/// A command-line argument `--name=value`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct Arg {
    /// Flag name without dashes.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Flag value.
    #[schemars(length(max = 1024))]
    pub value: String,
}

/// An environment variable of a static pod.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Variable value.
    pub value: Option<String>,
}

/// A host path mounted into a control-plane static pod.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostPathMount {
    /// Volume name.
    pub name: String,
    /// Path on the host.
    pub host_path: String,
    /// Path in the pod.
    pub mount_path: String,
    /// Mount read-only.
    pub read_only: Option<bool>,
    /// Host path type.
    pub path_type: Option<String>,
}

/// Settings of one control-plane component (controller-manager, scheduler).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneComponent {
    /// Extra flags.
    pub extra_args: Option<Vec<Arg>>,
    /// Extra host-path volumes.
    pub extra_volumes: Option<Vec<HostPathMount>>,
    /// Extra environment.
    pub extra_envs: Option<Vec<EnvVar>>,
}

/// API server settings.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiServer {
    /// Extra flags.
    pub extra_args: Option<Vec<Arg>>,
    /// Extra host-path volumes.
    pub extra_volumes: Option<Vec<HostPathMount>>,
    /// Extra environment.
    pub extra_envs: Option<Vec<EnvVar>>,
    /// Extra SANs of the serving certificate.
    #[serde(rename = "certSANs")]
    pub cert_sans: Option<Vec<String>>,
}

/// Local (stacked) etcd.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalEtcd {
    /// Image repository override.
    pub image_repository: Option<String>,
    /// Image tag override.
    pub image_tag: Option<String>,
    /// Data directory.
    pub data_dir: Option<String>,
    /// Extra flags.
    pub extra_args: Option<Vec<Arg>>,
    /// Extra environment.
    pub extra_envs: Option<Vec<EnvVar>>,
    /// Extra SANs of the etcd server certificate.
    #[serde(rename = "serverCertSANs")]
    pub server_cert_sans: Option<Vec<String>>,
    /// Extra SANs of the etcd peer certificate.
    #[serde(rename = "peerCertSANs")]
    pub peer_cert_sans: Option<Vec<String>>,
}

/// External etcd.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalEtcd {
    /// etcd endpoints.
    pub endpoints: Vec<String>,
    /// CA file path.
    pub ca_file: String,
    /// Client certificate path.
    pub cert_file: String,
    /// Client key path.
    pub key_file: String,
}

/// etcd: local or external, not both.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("!(has(self.local) && has(self.external))").message("only one of etcd.local and etcd.external may be set"))]
pub struct Etcd {
    /// Stacked etcd on control-plane machines.
    pub local: Option<LocalEtcd>,
    /// An etcd cluster outside the control plane.
    pub external: Option<ExternalEtcd>,
}

/// CoreDNS image overrides.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    /// Image repository override.
    pub image_repository: Option<String>,
    /// Image tag override.
    pub image_tag: Option<String>,
}

/// kubeadm ClusterConfiguration. Endpoint, networking and version come from the Cluster and the
/// control plane, as in upstream v1beta2.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfiguration {
    /// etcd settings.
    pub etcd: Option<Etcd>,
    /// API server settings.
    pub api_server: Option<ApiServer>,
    /// Controller manager settings.
    pub controller_manager: Option<ControlPlaneComponent>,
    /// Scheduler settings.
    pub scheduler: Option<ControlPlaneComponent>,
    /// CoreDNS settings.
    pub dns: Option<Dns>,
    /// Where certificates live on the machine (default /etc/kubernetes/pki).
    pub certificates_dir: Option<String>,
    /// Image repository of control-plane images.
    pub image_repository: Option<String>,
    /// kubeadm feature gates.
    pub feature_gates: Option<BTreeMap<String, bool>>,
    /// Validity of CA certificates kubeadm generates, in days.
    #[schemars(range(min = 1, max = 36500))]
    pub ca_certificate_validity_period_days: Option<i32>,
    /// Validity of leaf certificates kubeadm generates, in days.
    #[schemars(range(min = 1, max = 1095))]
    pub certificate_validity_period_days: Option<i32>,
    /// Key algorithm: ECDSA-P256, ECDSA-P384, RSA-2048, RSA-3072 or RSA-4096.
    #[schemars(regex(pattern = r"^(ECDSA-P256|ECDSA-P384|RSA-2048|RSA-3072|RSA-4096)$"))]
    pub encryption_algorithm: Option<String>,
}

/// A kubeadm bootstrap token.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapToken {
    /// `abcdef.0123456789abcdef`.
    #[schemars(regex(pattern = r"^[a-z0-9]{6}\.[a-z0-9]{16}$"))]
    pub token: String,
    /// Description.
    pub description: Option<String>,
    /// Lifetime in seconds.
    #[schemars(range(min = 0))]
    pub ttl_seconds: Option<i32>,
    /// Usages, e.g. `signing`, `authentication`.
    pub usages: Option<Vec<String>>,
    /// Extra groups.
    pub groups: Option<Vec<String>>,
}

/// A Node taint set at registration.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct NodeTaint {
    /// Key.
    pub key: String,
    /// Value.
    pub value: Option<String>,
    /// Effect.
    #[schemars(regex(pattern = r"^(NoSchedule|PreferNoSchedule|NoExecute)$"))]
    pub effect: String,
}

/// How the node registers with the API server.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeRegistrationOptions {
    /// Node name (default: hostname; cloud-init `{{ ds.meta_data.local_hostname }}` in templates).
    pub name: Option<String>,
    /// CRI socket.
    pub cri_socket: Option<String>,
    /// Taints; an empty list means no taints.
    pub taints: Option<Vec<NodeTaint>>,
    /// Extra kubelet flags.
    pub kubelet_extra_args: Option<Vec<Arg>>,
    /// Preflight errors to ignore.
    pub ignore_preflight_errors: Option<Vec<String>>,
    /// Always, IfNotPresent or Never.
    #[schemars(regex(pattern = r"^(Always|IfNotPresent|Never)$"))]
    pub image_pull_policy: Option<String>,
    /// Pull images one at a time.
    pub image_pull_serial: Option<bool>,
}

/// Address the local API server advertises and binds.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiEndpointLocal {
    /// Advertised address.
    pub advertise_address: Option<String>,
    /// Bind port.
    #[schemars(range(min = 0, max = 65535))]
    pub bind_port: Option<i32>,
}

/// kubeadm patches.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct Patches {
    /// Directory with patch files.
    pub directory: Option<String>,
}

/// kubeadm timeouts.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// Control-plane component health check.
    #[schemars(range(min = 0))]
    pub control_plane_component_health_check_seconds: Option<i32>,
    /// kubelet health check.
    #[schemars(range(min = 0))]
    pub kubelet_health_check_seconds: Option<i32>,
    /// Kubernetes API calls.
    #[schemars(range(min = 0))]
    pub kubernetes_api_call_seconds: Option<i32>,
    /// etcd API calls.
    #[schemars(range(min = 0))]
    pub etcd_api_call_seconds: Option<i32>,
    /// TLS bootstrap.
    #[schemars(range(min = 0))]
    pub tls_bootstrap_seconds: Option<i32>,
    /// Join discovery.
    #[schemars(range(min = 0))]
    pub discovery_seconds: Option<i32>,
}

/// kubeadm InitConfiguration.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitConfiguration {
    /// Bootstrap tokens to create.
    pub bootstrap_tokens: Option<Vec<BootstrapToken>>,
    /// Node registration.
    pub node_registration: Option<NodeRegistrationOptions>,
    /// Local API endpoint.
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: Option<ApiEndpointLocal>,
    /// Phases to skip.
    pub skip_phases: Option<Vec<String>>,
    /// Patches.
    pub patches: Option<Patches>,
    /// Timeouts.
    pub timeouts: Option<Timeouts>,
}

/// Token-based join discovery.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapTokenDiscovery {
    /// Bootstrap token (filled by the bootstrap reconciler when empty).
    pub token: Option<String>,
    /// API server endpoint `host:port` (filled from the Cluster when empty).
    pub api_server_endpoint: Option<String>,
    /// `sha256:<hex>` hashes of the CA public key (filled when empty).
    pub ca_cert_hashes: Option<Vec<String>>,
    /// Skip CA pinning (not recommended).
    #[serde(rename = "unsafeSkipCAVerification")]
    pub unsafe_skip_ca_verification: Option<bool>,
}

/// File-based join discovery.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileDiscovery {
    /// Path of a kubeconfig on the machine.
    pub kube_config_path: String,
}

/// How a joining node finds and trusts the cluster.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.bootstrapToken) && has(self.file))").message("only one of discovery.bootstrapToken and discovery.file may be set"))]
pub struct Discovery {
    /// Token discovery.
    pub bootstrap_token: Option<BootstrapTokenDiscovery>,
    /// File discovery.
    pub file: Option<FileDiscovery>,
    /// Token for TLS bootstrap.
    pub tls_bootstrap_token: Option<String>,
}

/// Control-plane join settings.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct JoinControlPlane {
    /// Local API endpoint of the joining control plane.
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: Option<ApiEndpointLocal>,
}

/// kubeadm JoinConfiguration.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinConfiguration {
    /// Node registration.
    pub node_registration: Option<NodeRegistrationOptions>,
    /// CA certificate path on the machine.
    pub ca_cert_path: Option<String>,
    /// Discovery.
    pub discovery: Option<Discovery>,
    /// Present for control-plane joins.
    pub control_plane: Option<JoinControlPlane>,
    /// Phases to skip.
    pub skip_phases: Option<Vec<String>>,
    /// Patches.
    pub patches: Option<Patches>,
    /// Timeouts.
    pub timeouts: Option<Timeouts>,
}

/// A file written to the machine.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.content) && has(self.contentFrom))").message("only one of content and contentFrom may be set"))]
pub struct File {
    /// Absolute path.
    #[schemars(length(min = 1, max = 512))]
    pub path: String,
    /// `user:group`.
    pub owner: Option<String>,
    /// Octal permissions, e.g. `0640`.
    pub permissions: Option<String>,
    /// base64, gzip or gzip+base64.
    #[schemars(regex(pattern = r"^(base64|gzip|gzip\+base64)$"))]
    pub encoding: Option<String>,
    /// Append instead of overwrite.
    pub append: Option<bool>,
    /// Inline content.
    pub content: Option<String>,
    /// Content from a Secret.
    pub content_from: Option<FileSource>,
}

/// Source of file content.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct FileSource {
    /// A key of a Secret in the config's namespace.
    pub secret: SecretFileSource,
}

/// A key of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct SecretFileSource {
    /// Secret name.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}

/// A user created on the machine.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// User name.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// GECOS field.
    pub gecos: Option<String>,
    /// Extra groups, comma separated.
    pub groups: Option<String>,
    /// Home directory.
    pub home_dir: Option<String>,
    /// Account inactive.
    pub inactive: Option<bool>,
    /// Login shell.
    pub shell: Option<String>,
    /// Hashed password.
    pub passwd: Option<String>,
    /// Hashed password from a Secret.
    pub passwd_from: Option<FileSource>,
    /// Primary group.
    pub primary_group: Option<String>,
    /// Lock the password.
    pub lock_password: Option<bool>,
    /// sudo rule.
    pub sudo: Option<String>,
    /// SSH public keys.
    pub ssh_authorized_keys: Option<Vec<String>>,
}

/// NTP settings.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct Ntp {
    /// NTP servers.
    pub servers: Option<Vec<String>>,
    /// Enable NTP.
    pub enabled: Option<bool>,
}

/// Disk partitions and filesystems.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct DiskSetup {
    /// Partition tables.
    pub partitions: Option<Vec<Partition>>,
    /// Filesystems.
    pub filesystems: Option<Vec<Filesystem>>,
}

/// A partition table.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Partition {
    /// Device, e.g. `/dev/sdb`.
    pub device: String,
    /// Create one partition spanning the disk.
    pub layout: Option<bool>,
    /// Overwrite an existing table.
    pub overwrite: Option<bool>,
    /// `mbr` or `gpt`.
    #[schemars(regex(pattern = r"^(mbr|gpt)$"))]
    pub table_type: Option<String>,
}

/// A filesystem.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Filesystem {
    /// Device.
    pub device: String,
    /// Filesystem type, e.g. `ext4`.
    pub filesystem: String,
    /// Label.
    pub label: Option<String>,
    /// Partition, e.g. `auto`.
    pub partition: Option<String>,
    /// Overwrite existing data.
    pub overwrite: Option<bool>,
    /// Replace a filesystem of this type.
    #[serde(rename = "replaceFS")]
    pub replace_fs: Option<String>,
    /// Extra mkfs options.
    pub extra_opts: Option<Vec<String>>,
}

/// Ignition settings.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IgnitionSpec {
    /// Container Linux Config settings.
    pub container_linux_config: Option<ContainerLinuxConfig>,
}

/// Container Linux Config settings.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerLinuxConfig {
    /// Extra CLC YAML merged into the generated config.
    pub additional_config: Option<String>,
    /// Fail on unknown fields.
    pub strict: Option<bool>,
}

/// Observed state of a KubeadmConfig.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeadmConfigStatus {
    /// Contract flags, set once.
    pub initialization: Option<KubeadmConfigInitializationStatus>,
    /// Secret holding the bootstrap data.
    pub data_secret_name: Option<String>,
    /// v1beta2 conditions.
    pub conditions: Option<Vec<Condition>>,
    /// Generation last reconciled.
    pub observed_generation: Option<i64>,
}

/// `status.initialization` of a KubeadmConfig.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeadmConfigInitializationStatus {
    /// The data Secret exists.
    pub data_secret_created: Option<bool>,
}

/// Desired state of a KubeadmConfigTemplate.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "bootstrap.cluster.x-k8s.io",
    version = "v1beta2",
    kind = "KubeadmConfigTemplate",
    plural = "kubeadmconfigtemplates",
    namespaced,
    status = "TemplateStatus",
    shortname = "kct",
    category = "cluster-api",
    label("cluster.x-k8s.io/v1beta2", "v1beta2"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct KubeadmConfigTemplateSpec {
    /// The template.
    pub template: KubeadmConfigTemplateResource,
}

/// The object a KubeadmConfigTemplate stamps out.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
pub struct KubeadmConfigTemplateResource {
    /// Labels and annotations.
    pub metadata: Option<ObjectMeta>,
    /// Spec of created KubeadmConfigs.
    pub spec: Option<KubeadmConfigSpec>,
}
