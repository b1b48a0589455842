//! Executing bootstrap data the way cloud-init would, without a shell: the user data is parsed
//! (`## template: jinja` + `#cloud-config`), `write_files` are decoded and written under the
//! machine's root directory, and the kubeadm configuration it carries is parsed and checked
//! against the Cluster. `runcmd` is read to find what kubeadm would run; nothing is executed.
//!
//! Pure apart from [`write_files`]; the checks are table-tested.

use std::{
    io::Read,
    path::{Component, Path, PathBuf},
};

use base64::Engine;
use serde_json::Value;

/// The sentinel cloud-init writes when kubeadm succeeded (the bootstrap contract).
pub const SENTINEL: &str = "/run/cluster-api/bootstrap-success.complete";
/// Where the kubeadm configuration is expected.
pub const KUBEADM_CONFIG: &str = "/run/kubeadm/kubeadm.yaml";

/// Why cloud-init (or kubeadm) would fail on this user data; every one is the machine's failure.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The user data is not UTF-8.
    #[error("the user data is not UTF-8")]
    UserDataNotUtf8,
    /// The user data is not a cloud-config.
    #[error("the user data does not start with '#cloud-config'")]
    NotCloudConfig,
    /// The cloud-config does not parse.
    #[error("the cloud-config is not valid YAML: {0}")]
    CloudConfigYaml(#[source] Box<serde_saphyr::Error>),
    /// A `write_files` entry has no path.
    #[error("write_files[{index}].path is missing")]
    MissingPath {
        /// Position in `write_files`.
        index: usize,
    },
    /// A `write_files` entry's content cannot be decoded.
    #[error("write_files[{index}] ({path}): {source}")]
    Content {
        /// Position in `write_files`.
        index: usize,
        /// The entry's path.
        path: String,
        /// Why.
        #[source]
        source: EncodingError,
    },
    /// A `write_files` entry's permissions are not an octal number.
    #[error("write_files[{index}].permissions is not octal")]
    Permissions {
        /// Position in `write_files`.
        index: usize,
    },
    /// A `write_files` path is relative.
    #[error("{path}: write_files paths must be absolute")]
    RelativePath {
        /// The path as written.
        path: String,
    },
    /// A `write_files` path has `..` or `.` components.
    #[error("{path}: '..' and '.' are not allowed")]
    DotInPath {
        /// The path as written.
        path: String,
    },
    /// Writing a file (or its directory) under the machine's root failed.
    #[error("{}: {source}", .path.display())]
    Write {
        /// The file or directory on the host.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No `write_files` entry writes [`KUBEADM_CONFIG`].
    #[error("the user data writes no {KUBEADM_CONFIG}")]
    NoKubeadmConfig,
    /// [`KUBEADM_CONFIG`] is not UTF-8.
    #[error("{KUBEADM_CONFIG} is not UTF-8")]
    KubeadmConfigNotUtf8,
    /// [`KUBEADM_CONFIG`] does not parse.
    #[error("{KUBEADM_CONFIG} is not valid YAML: {0}")]
    KubeadmConfigYaml(#[source] Box<serde_saphyr::Error>),
    /// `runcmd` runs neither `kubeadm init` nor `kubeadm join`.
    #[error("runcmd never runs kubeadm init or kubeadm join")]
    NoKubeadmCommand,
    /// `runcmd` runs kubeadm without `--config` [`KUBEADM_CONFIG`].
    #[error("runcmd runs kubeadm without --config {KUBEADM_CONFIG}")]
    NoConfigFlag,
    /// `runcmd` never writes [`SENTINEL`].
    #[error("runcmd never writes the sentinel {SENTINEL}")]
    NoSentinel,
    /// The kubeadm configuration lacks a document the command needs.
    #[error("kubeadm {command} without {} {kind} document", article(kind))]
    MissingDocument {
        /// `init` or `join`.
        command: &'static str,
        /// The missing document's kind.
        kind: &'static str,
    },
    /// `JoinConfiguration.discovery.bootstrapToken` is missing.
    #[error("JoinConfiguration.discovery.bootstrapToken is missing")]
    NoBootstrapToken,
    /// An endpoint of the kubeadm configuration is not the Cluster's.
    #[error("{field} is {got:?}, the Cluster's endpoint is {want:?}")]
    Endpoint {
        /// The kubeadm field, e.g. `ClusterConfiguration.controlPlaneEndpoint`.
        field: &'static str,
        /// Its value.
        got: String,
        /// The Cluster's endpoint.
        want: String,
    },
    /// `ClusterConfiguration.kubernetesVersion` is not the Machine's version.
    #[error("ClusterConfiguration.kubernetesVersion is {got:?}, the Machine's version is {want:?}")]
    Version {
        /// The configured version.
        got: String,
        /// The Machine's.
        want: String,
    },
    /// `ClusterConfiguration.networking`'s pod or service subnets differ from the Cluster's.
    #[error(
        "ClusterConfiguration.networking: {what} subnets {got:?} differ from the Cluster's {want:?}"
    )]
    Subnets {
        /// `pod` or `service`.
        what: &'static str,
        /// The configured subnets.
        got: Vec<String>,
        /// The Cluster's.
        want: Vec<String>,
    },
}

fn article(kind: &str) -> &'static str {
    if kind.starts_with(['A', 'E', 'I', 'O', 'U']) {
        "an"
    } else {
        "a"
    }
}

/// Why a `write_files` content cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodingError {
    /// Not base64.
    #[error("invalid base64: {0}")]
    Base64(#[source] base64::DecodeError),
    /// Not gzip.
    #[error("invalid gzip: {0}")]
    Gzip(#[source] std::io::Error),
    /// An `encoding` cloud-init does not know.
    #[error("unknown encoding {0:?}")]
    Unknown(String),
}

/// One decoded file of `write_files`.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteFile {
    /// Absolute path on the machine.
    pub path: String,
    /// Decoded content.
    pub content: Vec<u8>,
    /// Octal permissions.
    pub permissions: u32,
    /// Append instead of overwrite.
    pub append: bool,
}

/// The parts of a cloud-config the simulated machine executes.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudConfig {
    /// write_files, decoded.
    pub files: Vec<WriteFile>,
    /// runcmd, as shell strings.
    pub commands: Vec<String>,
}

/// What kubeadm would do on this machine.
#[derive(Clone, Debug, PartialEq)]
pub enum KubeadmRun {
    /// `kubeadm init`: the first control-plane machine.
    Init {
        /// Bootstrap tokens InitConfiguration creates (`abcdef.0123456789abcdef`).
        tokens: Vec<String>,
        /// The ClusterConfiguration document.
        cluster_configuration: Value,
    },
    /// `kubeadm join`.
    Join {
        /// Joins as a control-plane member.
        control_plane: bool,
        /// Discovery token.
        token: String,
        /// `host:port` it discovers the cluster at.
        api_server_endpoint: String,
        /// Pinned CA public-key hashes.
        ca_cert_hashes: Vec<String>,
    },
}

/// What the Cluster says the configuration must agree with.
#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    /// `host:port` of the control-plane endpoint.
    pub endpoint: String,
    /// Kubernetes version of the Machine, if set.
    pub version: Option<String>,
    /// Pod CIDRs of the Cluster.
    pub pod_cidrs: Vec<String>,
    /// Service CIDRs of the Cluster.
    pub service_cidrs: Vec<String>,
}

/// Parses user data as cloud-init would accept it.
pub fn parse(user_data: &[u8]) -> Result<CloudConfig, BootError> {
    let text = std::str::from_utf8(user_data).map_err(|_| BootError::UserDataNotUtf8)?;
    let body = text.strip_prefix("## template: jinja\n").unwrap_or(text);
    if !body.starts_with("#cloud-config") {
        return Err(BootError::NotCloudConfig);
    }
    let doc: Value =
        serde_saphyr::from_str(body).map_err(|e| BootError::CloudConfigYaml(Box::new(e)))?;
    let mut files = vec![];
    for (i, f) in doc
        .get("write_files")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = f
            .get("path")
            .and_then(Value::as_str)
            .ok_or(BootError::MissingPath { index: i })?;
        let raw = f.get("content").and_then(Value::as_str).unwrap_or_default();
        let encoding = f
            .get("encoding")
            .and_then(Value::as_str)
            .unwrap_or("text/plain");
        let content = decode(raw, encoding).map_err(|source| BootError::Content {
            index: i,
            path: path.into(),
            source,
        })?;
        let permissions = f
            .get("permissions")
            .and_then(Value::as_str)
            .map(|p| u32::from_str_radix(p.trim_start_matches("0o"), 8))
            .transpose()
            .map_err(|_| BootError::Permissions { index: i })?
            .unwrap_or(0o644);
        files.push(WriteFile {
            path: path.into(),
            content,
            permissions,
            append: f.get("append").and_then(Value::as_bool).unwrap_or(false),
        });
    }
    let commands = doc
        .get("runcmd")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| match c {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .map(|p| p.as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        })
        .collect();
    Ok(CloudConfig { files, commands })
}

fn decode(raw: &str, encoding: &str) -> Result<Vec<u8>, EncodingError> {
    let b64 = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s.split_whitespace().collect::<String>())
            .map_err(EncodingError::Base64)
    };
    let gunzip = |data: Vec<u8>| {
        let mut out = vec![];
        flate2::read::GzDecoder::new(&data[..])
            .read_to_end(&mut out)
            .map_err(EncodingError::Gzip)?;
        Ok::<_, EncodingError>(out)
    };
    match encoding {
        "text/plain" => Ok(raw.as_bytes().to_vec()),
        "b64" | "base64" => b64(raw),
        "gz" | "gzip" => gunzip(raw.as_bytes().to_vec()),
        "gz+base64" | "gzip+base64" | "gz+b64" | "gzip+b64" => gunzip(b64(raw)?),
        other => Err(EncodingError::Unknown(other.to_string())),
    }
}

/// Maps an absolute machine path under `root`, refusing anything that would escape it.
pub fn under(root: &Path, path: &str) -> Result<PathBuf, BootError> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(BootError::RelativePath { path: path.into() });
    }
    let mut out = root.to_path_buf();
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => out.push(n),
            _ => return Err(BootError::DotInPath { path: path.into() }),
        }
    }
    Ok(out)
}

/// Writes the files under `root`, as cloud-init's write_files module does.
pub fn write_files(root: &Path, files: &[WriteFile]) -> Result<(), BootError> {
    use std::os::unix::fs::OpenOptionsExt;
    for f in files {
        let target = under(root, &f.path)?;
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|source| BootError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .append(f.append)
            .truncate(!f.append)
            .mode(f.permissions)
            .open(&target)
            .map_err(|source| BootError::Write {
                path: target.clone(),
                source,
            })?;
        std::io::Write::write_all(&mut file, &f.content).map_err(|source| BootError::Write {
            path: target.clone(),
            source,
        })?;
    }
    Ok(())
}

fn strs(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn split_cidrs(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_str)
        .map(|s| s.split(',').map(|c| c.trim().to_string()).collect())
        .unwrap_or_default()
}

/// Reads the kubeadm configuration the user data wrote, checks that runcmd runs kubeadm with it
/// and writes the sentinel, and that it agrees with the Cluster.
pub fn kubeadm_run(cc: &CloudConfig, expect: &Expect) -> Result<KubeadmRun, BootError> {
    let file = cc
        .files
        .iter()
        .find(|f| f.path == KUBEADM_CONFIG)
        .ok_or(BootError::NoKubeadmConfig)?;
    let text = std::str::from_utf8(&file.content).map_err(|_| BootError::KubeadmConfigNotUtf8)?;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| BootError::KubeadmConfigYaml(Box::new(e)))?;
    let doc = |kind: &str| docs.iter().find(|d| d["kind"] == kind).cloned();
    let command = cc
        .commands
        .iter()
        .find(|c| c.contains("kubeadm init") || c.contains("kubeadm join"))
        .ok_or(BootError::NoKubeadmCommand)?;
    if !command.contains(KUBEADM_CONFIG) {
        return Err(BootError::NoConfigFlag);
    }
    if !command.contains(SENTINEL) {
        return Err(BootError::NoSentinel);
    }
    if command.contains("kubeadm init") {
        let missing = |kind| BootError::MissingDocument {
            command: "init",
            kind,
        };
        let cluster = doc("ClusterConfiguration").ok_or(missing("ClusterConfiguration"))?;
        let init = doc("InitConfiguration").ok_or(missing("InitConfiguration"))?;
        let field = |p: &str| {
            cluster
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        if field("/controlPlaneEndpoint") != expect.endpoint {
            return Err(BootError::Endpoint {
                field: "ClusterConfiguration.controlPlaneEndpoint",
                got: field("/controlPlaneEndpoint").into(),
                want: expect.endpoint.clone(),
            });
        }
        if let Some(v) = &expect.version
            && field("/kubernetesVersion") != v
        {
            return Err(BootError::Version {
                got: field("/kubernetesVersion").into(),
                want: v.clone(),
            });
        }
        for (path, want, what) in [
            ("/networking/podSubnet", &expect.pod_cidrs, "pod"),
            (
                "/networking/serviceSubnet",
                &expect.service_cidrs,
                "service",
            ),
        ] {
            let got = split_cidrs(cluster.pointer(path));
            if !want.is_empty() && &got != want {
                return Err(BootError::Subnets {
                    what,
                    got,
                    want: want.clone(),
                });
            }
        }
        let tokens = init
            .get("bootstrapTokens")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("token").and_then(Value::as_str).map(str::to_string))
            .collect();
        return Ok(KubeadmRun::Init {
            tokens,
            cluster_configuration: cluster,
        });
    }
    let join = doc("JoinConfiguration").ok_or(BootError::MissingDocument {
        command: "join",
        kind: "JoinConfiguration",
    })?;
    let bt = join
        .pointer("/discovery/bootstrapToken")
        .ok_or(BootError::NoBootstrapToken)?;
    let api_server_endpoint = bt
        .get("apiServerEndpoint")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if api_server_endpoint != expect.endpoint {
        return Err(BootError::Endpoint {
            field: "JoinConfiguration.discovery.bootstrapToken.apiServerEndpoint",
            got: api_server_endpoint,
            want: expect.endpoint.clone(),
        });
    }
    Ok(KubeadmRun::Join {
        control_plane: join.get("controlPlane").is_some(),
        token: bt
            .get("token")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        api_server_endpoint,
        ca_cert_hashes: strs(bt.get("caCertHashes")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz_b64(s: &str) -> String {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(s.as_bytes()).unwrap();
        base64::engine::general_purpose::STANDARD.encode(e.finish().unwrap())
    }

    fn user_data(kubeadm: &str, command: &str) -> String {
        format!(
            "## template: jinja\n#cloud-config\nwrite_files:\n- path: /run/kubeadm/kubeadm.yaml\n  content: {}\n- path: /etc/a\n  encoding: b64\n  content: aGVsbG8=\n- path: /etc/b\n  encoding: gzip+base64\n  permissions: '0600'\n  content: {}\nruncmd:\n- {}\n",
            serde_json::to_string(kubeadm).unwrap(),
            gz_b64("zipped"),
            serde_json::to_string(command).unwrap()
        )
    }

    const INIT: &str = "---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 127.0.0.1:6443\nkubernetesVersion: v1.31.0\nnetworking:\n  podSubnet: 192.168.0.0/16\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens:\n- token: abcdef.0123456789abcdef\n";
    const RUN_INIT: &str = "kubeadm init --config /run/kubeadm/kubeadm.yaml && echo success > /run/cluster-api/bootstrap-success.complete";

    fn expect() -> Expect {
        Expect {
            endpoint: "127.0.0.1:6443".into(),
            version: Some("v1.31.0".into()),
            pod_cidrs: vec!["192.168.0.0/16".into()],
            service_cidrs: vec![],
        }
    }

    #[test]
    fn files_decode_and_init_is_recognised() {
        let cc = parse(user_data(INIT, RUN_INIT).as_bytes()).unwrap();
        let content = |p: &str| cc.files.iter().find(|f| f.path == p).unwrap().clone();
        assert_eq!(content("/etc/a").content, b"hello");
        assert_eq!(content("/etc/b").content, b"zipped");
        assert_eq!(content("/etc/b").permissions, 0o600);
        match kubeadm_run(&cc, &expect()).unwrap() {
            KubeadmRun::Init { tokens, .. } => {
                assert_eq!(tokens, vec!["abcdef.0123456789abcdef".to_string()])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn disagreements_with_the_cluster_are_named() {
        let cc = parse(user_data(INIT, RUN_INIT).as_bytes()).unwrap();
        let mut e = expect();
        e.version = Some("v1.32.0".into());
        assert!(
            kubeadm_run(&cc, &e)
                .unwrap_err()
                .to_string()
                .contains("kubernetesVersion")
        );
        let mut e = expect();
        e.pod_cidrs = vec!["10.0.0.0/8".into()];
        assert!(
            kubeadm_run(&cc, &e)
                .unwrap_err()
                .to_string()
                .contains("pod subnets")
        );
        let no_sentinel =
            parse(user_data(INIT, "kubeadm init --config /run/kubeadm/kubeadm.yaml").as_bytes())
                .unwrap();
        assert!(
            kubeadm_run(&no_sentinel, &expect())
                .unwrap_err()
                .to_string()
                .contains("sentinel")
        );
        let join = "---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes: [sha256:00]\n";
        let cc =
            parse(user_data(join, &RUN_INIT.replace("kubeadm init", "kubeadm join")).as_bytes())
                .unwrap();
        assert!(
            kubeadm_run(&cc, &expect())
                .unwrap_err()
                .to_string()
                .contains("apiServerEndpoint")
        );
        let no_join =
            parse(user_data(INIT, &RUN_INIT.replace("kubeadm init", "kubeadm join")).as_bytes())
                .unwrap();
        let e = kubeadm_run(&no_join, &expect()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kubeadm join without a JoinConfiguration document"
        );
        let init_only = parse(
            user_data(
                &INIT[..INIT
                    .find("---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: Init")
                    .unwrap()],
                RUN_INIT,
            )
            .as_bytes(),
        )
        .unwrap();
        let e = kubeadm_run(&init_only, &expect()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kubeadm init without an InitConfiguration document"
        );
    }

    #[test]
    fn files_never_escape_the_machine_root() {
        let root = Path::new("/tmp/m");
        assert_eq!(
            under(root, "/etc/x").unwrap(),
            PathBuf::from("/tmp/m/etc/x")
        );
        assert!(matches!(
            under(root, "/etc/../../x"),
            Err(BootError::DotInPath { .. })
        ));
        assert!(matches!(
            under(root, "relative"),
            Err(BootError::RelativePath { .. })
        ));
        assert!(
            parse(b"#!/bin/sh\necho hi")
                .unwrap_err()
                .to_string()
                .contains("#cloud-config")
        );
    }
}
