//! cloud-init user data for kubeadm: `## template: jinja` + `#cloud-config` with the cluster
//! certificates, the kubeadm configuration, user files, and runcmd running pre-kubeadm
//! commands, `kubeadm init|join` (which writes the sentinel
//! `/run/cluster-api/bootstrap-success.complete` on success) and post-kubeadm commands.
//!
//! Workers get only the CA certificate; the init machine and control-plane joins get the CA
//! keys too. The render is parsed back before it is returned.

use serde_json::{Value, json};
use slipway_api::bootstrap::KubeadmConfigSpec;

use super::{
    BootstrapError,
    kubeadm::{self, ClusterInfo, JoinDiscovery, KubeadmApi},
    pki::ClusterPki,
};

/// The sentinel the bootstrap contract requires on success.
pub const SENTINEL: &str = "/run/cluster-api/bootstrap-success.complete";
/// Where the kubeadm configuration is written.
pub const KUBEADM_CONFIG_PATH: &str = "/run/kubeadm/kubeadm.yaml";

const TEMPLATE: &str = include_str!("../templates/cloud-config.yaml.tera");

/// What the machine does.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    /// `kubeadm init`: the first control-plane machine.
    Init {
        /// Token created by init for later joins.
        bootstrap_token: String,
    },
    /// `kubeadm join --control-plane`.
    JoinControlPlane(JoinDiscovery),
    /// `kubeadm join` as a worker.
    JoinWorker(JoinDiscovery),
}

/// A file written to the machine, with its content resolved (contentFrom already read).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct File {
    /// Absolute path.
    pub path: String,
    /// `user:group`.
    pub owner: String,
    /// Octal permissions.
    pub permissions: String,
    /// Content.
    pub content: String,
    /// `base64`, `gzip` or `gzip+base64`.
    pub encoding: Option<String>,
    /// Append instead of overwrite.
    pub append: bool,
}

fn pki_file(path: &str, content: &str, private: bool) -> File {
    File {
        path: path.into(),
        owner: "root:root".into(),
        permissions: if private { "0600" } else { "0640" }.into(),
        content: content.into(),
        encoding: None,
        append: false,
    }
}

fn certificate_files(pki: &ClusterPki, with_keys: bool) -> Vec<File> {
    let dir = "/etc/kubernetes/pki";
    let mut files = vec![pki_file(&format!("{dir}/ca.crt"), &pki.ca.cert_pem, false)];
    if with_keys {
        files.extend([
            pki_file(&format!("{dir}/ca.key"), &pki.ca.key_pem, true),
            pki_file(&format!("{dir}/etcd/ca.crt"), &pki.etcd.cert_pem, false),
            pki_file(&format!("{dir}/etcd/ca.key"), &pki.etcd.key_pem, true),
            pki_file(
                &format!("{dir}/front-proxy-ca.crt"),
                &pki.proxy.cert_pem,
                false,
            ),
            pki_file(
                &format!("{dir}/front-proxy-ca.key"),
                &pki.proxy.key_pem,
                true,
            ),
            pki_file(&format!("{dir}/sa.pub"), &pki.sa.cert_pem, false),
            pki_file(&format!("{dir}/sa.key"), &pki.sa.key_pem, true),
        ]);
    }
    files
}

/// User files of the spec; `resolve` returns the content of a `contentFrom` Secret key.
fn user_files(
    spec: &KubeadmConfigSpec,
    resolve: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<Vec<File>, BootstrapError> {
    spec.files
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, f)| {
            let content = match (&f.content, &f.content_from) {
                (Some(c), _) => c.clone(),
                (None, Some(from)) => {
                    resolve(&from.secret.name, &from.secret.key).ok_or_else(|| {
                        BootstrapError::invalid(
                            &format!("spec.files[{i}].contentFrom.secret"),
                            format!(
                                "key {:?} of Secret {:?} not found",
                                from.secret.key, from.secret.name
                            ),
                        )
                    })?
                }
                (None, None) => String::new(),
            };
            Ok(File {
                path: f.path.clone(),
                owner: f.owner.clone().unwrap_or_else(|| "root:root".into()),
                permissions: f.permissions.clone().unwrap_or_else(|| "0644".into()),
                content,
                encoding: f.encoding.clone(),
                append: f.append.unwrap_or(false),
            })
        })
        .collect()
}

fn users(spec: &KubeadmConfigSpec) -> Vec<Value> {
    spec.users
        .iter()
        .flatten()
        .map(|u| {
            let mut v = json!({
                "name": u.name, "gecos": u.gecos, "groups": u.groups, "homedir": u.home_dir, "inactive": u.inactive,
                "shell": u.shell, "passwd": u.passwd, "primary_group": u.primary_group, "lock_passwd": u.lock_password,
                "sudo": u.sudo, "ssh_authorized_keys": u.ssh_authorized_keys,
            });
            kubeadm::drop_nulls(&mut v);
            v
        })
        .collect()
}

/// Renders the user data of one machine.
pub fn render(
    spec: &KubeadmConfigSpec,
    cluster: &ClusterInfo,
    pki: &ClusterPki,
    role: &Role,
    resolve: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<String, BootstrapError> {
    let api = KubeadmApi::for_version(&cluster.version)?;
    let (docs, with_keys, kubeadm_cmd) = match role {
        Role::Init { bootstrap_token } => (
            vec![
                kubeadm::cluster_configuration(spec, cluster, api),
                kubeadm::init_configuration(spec, api, Some(bootstrap_token)),
            ],
            true,
            "kubeadm init",
        ),
        Role::JoinControlPlane(d) => (
            vec![kubeadm::join_configuration(spec, api, d, true)],
            true,
            "kubeadm join",
        ),
        Role::JoinWorker(d) => (
            vec![kubeadm::join_configuration(spec, api, d, false)],
            false,
            "kubeadm join",
        ),
    };
    let mut files = certificate_files(pki, with_keys);
    files.push(File {
        path: KUBEADM_CONFIG_PATH.into(),
        owner: "root:root".into(),
        permissions: "0640".into(),
        content: kubeadm::to_yaml(&docs),
        encoding: None,
        append: false,
    });
    files.extend(user_files(spec, resolve)?);
    let verbosity = spec
        .verbosity
        .map(|v| format!(" -v {v}"))
        .unwrap_or_default();
    let mut commands: Vec<String> = spec.pre_kubeadm_commands.clone().unwrap_or_default();
    commands.push(format!(
        "{kubeadm_cmd} --config {KUBEADM_CONFIG_PATH}{verbosity} && echo success > {SENTINEL}"
    ));
    commands.extend(spec.post_kubeadm_commands.clone().unwrap_or_default());

    let disk = spec.disk_setup.clone().unwrap_or_default();
    let disk_setup: serde_json::Map<String, Value> = disk
        .partitions
        .iter()
        .flatten()
        .map(|p| (p.device.clone(), json!({"table_type": p.table_type.clone().unwrap_or_else(|| "gpt".into()), "layout": p.layout.unwrap_or(true), "overwrite": p.overwrite.unwrap_or(false)})))
        .collect();
    let fs_setup: Vec<Value> = disk
        .filesystems
        .iter()
        .flatten()
        .map(|f| {
            let mut v = json!({"device": f.device, "filesystem": f.filesystem, "label": f.label, "partition": f.partition,
                               "overwrite": f.overwrite, "replace_fs": f.replace_fs, "extra_opts": f.extra_opts});
            kubeadm::drop_nulls(&mut v);
            v
        })
        .collect();
    let context = json!({
        "boot_commands": spec.boot_commands.clone().unwrap_or_default(),
        "files": files,
        "commands": commands,
        "users": users(spec),
        "ntp": spec.ntp.as_ref().map(|n| json!({"enabled": n.enabled.unwrap_or(true), "servers": n.servers.clone().unwrap_or_default()})),
        "disk_setup": (!disk_setup.is_empty()).then_some(Value::Object(disk_setup)),
        "fs_setup": fs_setup,
        "mounts": spec.mounts.clone().unwrap_or_default(),
    });
    let mut tera = tera::Tera::default();
    tera.add_raw_template("cloud-config", TEMPLATE)
        .map_err(|e| BootstrapError::Render(e.to_string()))?;
    let ctx =
        tera::Context::from_value(context).map_err(|e| BootstrapError::Render(e.to_string()))?;
    let out = tera
        .render("cloud-config", &ctx)
        .map_err(|e| BootstrapError::Render(format!("{e:?}")))?;
    parse(&out)?;
    Ok(out)
}

/// Parses user data back (everything after the `## template: jinja` line).
pub fn parse(user_data: &str) -> Result<Value, BootstrapError> {
    let body = user_data
        .strip_prefix("## template: jinja\n")
        .ok_or_else(|| BootstrapError::Render("missing the '## template: jinja' line".into()))?;
    if !body.starts_with("#cloud-config\n") {
        return Err(BootstrapError::Render(
            "missing the '#cloud-config' line".into(),
        ));
    }
    serde_saphyr::from_str(body)
        .map_err(|e| BootstrapError::Render(format!("the user data is not valid YAML: {e}")))
}
