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
pub fn parse(user_data: &[u8]) -> Result<CloudConfig, String> {
    let text =
        std::str::from_utf8(user_data).map_err(|_| "the user data is not UTF-8".to_string())?;
    let body = text.strip_prefix("## template: jinja\n").unwrap_or(text);
    if !body.starts_with("#cloud-config") {
        return Err("the user data does not start with '#cloud-config'".into());
    }
    let doc: Value = serde_saphyr::from_str(body)
        .map_err(|e| format!("the cloud-config is not valid YAML: {e}"))?;
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
            .ok_or_else(|| format!("write_files[{i}].path is missing"))?;
        let raw = f.get("content").and_then(Value::as_str).unwrap_or_default();
        let encoding = f
            .get("encoding")
            .and_then(Value::as_str)
            .unwrap_or("text/plain");
        let content =
            decode(raw, encoding).map_err(|e| format!("write_files[{i}] ({path}): {e}"))?;
        let permissions = f
            .get("permissions")
            .and_then(Value::as_str)
            .map(|p| u32::from_str_radix(p.trim_start_matches("0o"), 8))
            .transpose()
            .map_err(|_| format!("write_files[{i}].permissions is not octal"))?
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

fn decode(raw: &str, encoding: &str) -> Result<Vec<u8>, String> {
    let b64 = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s.split_whitespace().collect::<String>())
            .map_err(|e| format!("invalid base64: {e}"))
    };
    let gunzip = |data: Vec<u8>| {
        let mut out = vec![];
        flate2::read::GzDecoder::new(&data[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("invalid gzip: {e}"))?;
        Ok::<_, String>(out)
    };
    match encoding {
        "text/plain" => Ok(raw.as_bytes().to_vec()),
        "b64" | "base64" => b64(raw),
        "gz" | "gzip" => gunzip(raw.as_bytes().to_vec()),
        "gz+base64" | "gzip+base64" | "gz+b64" | "gzip+b64" => gunzip(b64(raw)?),
        other => Err(format!("unknown encoding {other:?}")),
    }
}

/// Maps an absolute machine path under `root`, refusing anything that would escape it.
pub fn under(root: &Path, path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(format!("{path}: write_files paths must be absolute"));
    }
    let mut out = root.to_path_buf();
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => out.push(n),
            _ => return Err(format!("{path}: '..' and '.' are not allowed")),
        }
    }
    Ok(out)
}

/// Writes the files under `root`, as cloud-init's write_files module does.
pub fn write_files(root: &Path, files: &[WriteFile]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    for f in files {
        let target = under(root, &f.path)?;
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .append(f.append)
            .truncate(!f.append)
            .mode(f.permissions)
            .open(&target)
            .map_err(|e| format!("{}: {e}", target.display()))?;
        std::io::Write::write_all(&mut file, &f.content)
            .map_err(|e| format!("{}: {e}", target.display()))?;
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
pub fn kubeadm_run(cc: &CloudConfig, expect: &Expect) -> Result<KubeadmRun, String> {
    let file = cc
        .files
        .iter()
        .find(|f| f.path == KUBEADM_CONFIG)
        .ok_or_else(|| format!("the user data writes no {KUBEADM_CONFIG}"))?;
    let text =
        std::str::from_utf8(&file.content).map_err(|_| format!("{KUBEADM_CONFIG} is not UTF-8"))?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| format!("{KUBEADM_CONFIG} is not valid YAML: {e}"))?;
    let doc = |kind: &str| docs.iter().find(|d| d["kind"] == kind).cloned();
    let command = cc
        .commands
        .iter()
        .find(|c| c.contains("kubeadm init") || c.contains("kubeadm join"))
        .ok_or("runcmd never runs kubeadm init or kubeadm join")?;
    if !command.contains(KUBEADM_CONFIG) {
        return Err(format!(
            "runcmd runs kubeadm without --config {KUBEADM_CONFIG}"
        ));
    }
    if !command.contains(SENTINEL) {
        return Err(format!("runcmd never writes the sentinel {SENTINEL}"));
    }
    if command.contains("kubeadm init") {
        let cluster = doc("ClusterConfiguration")
            .ok_or("kubeadm init without a ClusterConfiguration document")?;
        let init =
            doc("InitConfiguration").ok_or("kubeadm init without an InitConfiguration document")?;
        let field = |p: &str| {
            cluster
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        if field("/controlPlaneEndpoint") != expect.endpoint {
            return Err(format!(
                "ClusterConfiguration.controlPlaneEndpoint is {:?}, the Cluster's endpoint is {:?}",
                field("/controlPlaneEndpoint"),
                expect.endpoint
            ));
        }
        if let Some(v) = &expect.version
            && field("/kubernetesVersion") != v
        {
            return Err(format!(
                "ClusterConfiguration.kubernetesVersion is {:?}, the Machine's version is {v:?}",
                field("/kubernetesVersion")
            ));
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
                return Err(format!(
                    "ClusterConfiguration.networking: {what} subnets {got:?} differ from the Cluster's {want:?}"
                ));
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
    let join =
        doc("JoinConfiguration").ok_or("kubeadm join without a JoinConfiguration document")?;
    let bt = join
        .pointer("/discovery/bootstrapToken")
        .ok_or("JoinConfiguration.discovery.bootstrapToken is missing")?;
    let api_server_endpoint = bt
        .get("apiServerEndpoint")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if api_server_endpoint != expect.endpoint {
        return Err(format!(
            "JoinConfiguration.discovery.bootstrapToken.apiServerEndpoint is {api_server_endpoint:?}, the Cluster's endpoint is {:?}",
            expect.endpoint
        ));
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
                .contains("kubernetesVersion")
        );
        let mut e = expect();
        e.pod_cidrs = vec!["10.0.0.0/8".into()];
        assert!(kubeadm_run(&cc, &e).unwrap_err().contains("pod subnets"));
        let no_sentinel =
            parse(user_data(INIT, "kubeadm init --config /run/kubeadm/kubeadm.yaml").as_bytes())
                .unwrap();
        assert!(
            kubeadm_run(&no_sentinel, &expect())
                .unwrap_err()
                .contains("sentinel")
        );
        let join = "---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n    apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes: [sha256:00]\n";
        let cc =
            parse(user_data(join, &RUN_INIT.replace("kubeadm init", "kubeadm join")).as_bytes())
                .unwrap();
        assert!(
            kubeadm_run(&cc, &expect())
                .unwrap_err()
                .contains("apiServerEndpoint")
        );
    }

    #[test]
    fn files_never_escape_the_machine_root() {
        let root = Path::new("/tmp/m");
        assert_eq!(
            under(root, "/etc/x").unwrap(),
            PathBuf::from("/tmp/m/etc/x")
        );
        assert!(under(root, "/etc/../../x").is_err());
        assert!(under(root, "relative").is_err());
        assert!(
            parse(b"#!/bin/sh\necho hi")
                .unwrap_err()
                .contains("#cloud-config")
        );
    }
}
