//! The harness of the root package's end-to-end suites: `slipway up` (and `slipway
//! controller`) as child processes, kubectl against them, and helpers over what it lists.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

use serde_json::Value;

use crate::{eventually, temp_dir, text};

/// The `slipway` binary under test. Cargo builds it for the root package's test targets and
/// names it in `CARGO_BIN_EXE_slipway`, at their compile time (`env!`, which this library
/// cannot use: it is not such a target) and when it runs them. Run by hand, a test binary
/// (`target/<profile>/deps/<test>-<hash>`) finds it two directories up.
pub fn slipway_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CARGO_BIN_EXE_slipway") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join(format!("slipway{}", std::env::consts::EXE_SUFFIX)))
        .filter(|p| p.is_file());
    bin.unwrap_or_else(|| {
        panic!(
            "no slipway binary: CARGO_BIN_EXE_slipway is unset and none is beside {}",
            exe.display()
        )
    })
}

/// A `slipway up` child process (and maybe a `slipway controller`) with its data dir, killed
/// and removed on drop.
pub struct Mgmt {
    pub up: Child,
    pub controller: Option<Child>,
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Drop for Mgmt {
    fn drop(&mut self) {
        for c in [Some(&mut self.up), self.controller.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Mgmt {
    /// `slipway up` with the controllers in-process, or (`separate`) without them, started
    /// by [`Mgmt::start_controller`] as their own process.
    pub fn start(tag: &str, separate: bool) -> Self {
        Self::start_with(tag, separate, &[])
    }

    /// [`Mgmt::start`] with extra flags for `slipway up`.
    pub fn start_with(tag: &str, separate: bool, extra: &[&str]) -> Self {
        Self::start_env(tag, separate, extra, &[])
    }

    /// [`Mgmt::start_with`] with environment variables for `slipway up` (e.g. its PATH).
    pub fn start_env(
        tag: &str,
        separate: bool,
        extra: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Self {
        let dir = temp_dir(tag);
        let mut cmd = Command::new(slipway_bin());
        cmd.args(["up", "--port", "0", "--data-dir"]).arg(&dir);
        if separate {
            cmd.arg("--no-controller");
        }
        cmd.args(extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut up = cmd
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("slipway up starts");
        let mut line = String::new();
        BufReader::new(up.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let kubeconfig = PathBuf::from(
            line.trim()
                .strip_prefix("export KUBECONFIG=")
                .unwrap_or_else(|| panic!("unexpected first line {line:?}")),
        );
        Self {
            up,
            controller: None,
            dir,
            kubeconfig,
        }
    }

    pub fn start_controller(&mut self) {
        self.start_controller_env(&[]);
    }

    /// [`Mgmt::start_controller`] with extra environment variables.
    pub fn start_controller_env(&mut self, env: &[(&str, String)]) {
        self.start_controller_with(env, &[]);
    }

    /// [`Mgmt::start_controller_env`] with extra flags for `slipway controller`.
    pub fn start_controller_with(&mut self, env: &[(&str, String)], extra: &[&str]) {
        let mut cmd = Command::new(slipway_bin());
        cmd.env("RUST_LOG", "warn")
            .env("KUBECONFIG", &self.kubeconfig);
        // After the admin KUBECONFIG: a test may run the controller as another user.
        for (k, v) in env {
            cmd.env(k, v);
        }
        // Its warnings go to <dir>/controller.log, for a failing test to show.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("controller.log"))
            .unwrap();
        let child = cmd
            .args(["controller", "--data-dir"])
            .arg(&self.dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("slipway controller starts");
        self.controller = Some(child);
    }

    pub fn kill_controller(&mut self) {
        let mut c = self.controller.take().expect("a controller runs");
        c.kill().unwrap();
        c.wait().unwrap();
    }

    pub fn kubectl_with(&self, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        let home = self.dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", &home)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl on PATH");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl_with(&self.kubeconfig, args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all, None)).unwrap()
    }

    pub fn items(&self, args: &[&str]) -> Vec<Value> {
        self.json(args)["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The workload cluster's kubeconfig, from the `<cluster>-kubeconfig` Secret.
    pub fn workload_kubeconfig(&self, cluster: &str) -> PathBuf {
        use base64::Engine;
        let s = self.json(&["get", "secret", &format!("{cluster}-kubeconfig")]);
        let data = base64::engine::general_purpose::STANDARD
            .decode(s["data"]["value"].as_str().unwrap())
            .unwrap();
        let path = self.dir.join(format!("{cluster}.kubeconfig"));
        std::fs::write(&path, data).unwrap();
        path
    }

    /// Nodes of a workload cluster as (name, Ready status, kubelet version).
    pub fn nodes(&self, kubeconfig: &Path) -> Result<Vec<(String, String, String)>, String> {
        let out = self.kubectl_with(kubeconfig, &["get", "nodes", "-o", "json"], None);
        if !out.status.success() {
            return Err(text(&out.stderr));
        }
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        Ok(v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let ready = n["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"] == "Ready")
                    .map(|c| c["status"].as_str().unwrap_or_default().to_string())
                    .unwrap_or_default();
                (
                    n["metadata"]["name"].as_str().unwrap().to_string(),
                    ready,
                    n["status"]["nodeInfo"]["kubeletVersion"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect())
    }
}

/// `slipway generate cluster <name> --infrastructure in-memory` with the given shape.
pub fn generate(name: &str, cp: u32, workers: u32, version: &str) -> String {
    let out = Command::new(slipway_bin())
        .args(["generate", "cluster", name, "--infrastructure", "in-memory"])
        .args(["--control-plane-machine-count", &cp.to_string()])
        .args(["--worker-machine-count", &workers.to_string()])
        .args(["--kubernetes-version", version])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// The status of condition `type_` of `obj`.
pub fn condition(obj: &Value, type_: &str) -> Option<String> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| c["status"].as_str().unwrap_or_default().to_string())
}

/// The Machines of `cluster`.
pub fn machines(m: &Mgmt, cluster: &str) -> Vec<Value> {
    m.items(&[
        "get",
        "machines",
        "-l",
        &format!("cluster.x-k8s.io/cluster-name={cluster}"),
    ])
}

/// Waits until the Cluster's Available condition is True.
pub fn wait_available(m: &Mgmt, cluster: &str, secs: u64) {
    eventually(secs, &format!("Cluster {cluster} Available"), || {
        let c = m.json(&["get", "cluster", cluster]);
        (condition(&c, "Available").as_deref() == Some("True"))
            .then_some(())
            .ok_or_else(|| format!("{:#}", c["status"]))
    });
}

/// Waits until the cluster has exactly `cp` control-plane and `workers` worker Machines, all
/// Running with a nodeRef, and the workload cluster lists the same number of Ready Nodes.
pub fn wait_shape(m: &Mgmt, cluster: &str, cp: usize, workers: usize, kubeconfig: &Path) {
    eventually(90, &format!("{cp} + {workers} running machines"), || {
        let ms = machines(m, cluster);
        let running = |want_cp: bool| {
            ms.iter()
                .filter(|x| {
                    x["metadata"]["labels"]
                        .get("cluster.x-k8s.io/control-plane")
                        .is_some()
                        == want_cp
                })
                .filter(|x| {
                    x["status"]["phase"] == "Running" && x["status"]["nodeRef"]["name"].is_string()
                })
                .count()
        };
        if ms.len() != cp + workers || running(true) != cp || running(false) != workers {
            return Err(format!(
                "machines: {:?}",
                ms.iter()
                    .map(|x| (x["metadata"]["name"].clone(), x["status"]["phase"].clone()))
                    .collect::<Vec<_>>()
            ));
        }
        let nodes = m.nodes(kubeconfig)?;
        let ready = nodes.iter().filter(|n| n.1 == "True").count();
        (nodes.len() == cp + workers && ready == cp + workers)
            .then_some(())
            .ok_or_else(|| format!("nodes: {nodes:?}"))
    });
}

/// Registers a Ready Node in a workload plane, as a kubelet (and its cloud provider) would.
pub fn register_node(workload: &Mgmt, node: &str, provider_id: &str, version: &str) {
    let manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node}, "spec": {"providerID": provider_id},
    });
    workload.ok(&["apply", "-f", "-"], Some(&manifest.to_string()));
    let status = serde_json::json!({"status": {
        "conditions": [{"type": "Ready", "status": "True",
            "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
        "nodeInfo": {"kubeletVersion": version},
    }});
    workload.ok(
        &[
            "patch",
            "node",
            node,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ],
        None,
    );
}

/// `slipway generate cluster NAME --infrastructure INFRA` with the AWS variables the moto
/// suites share (region, an AMI moto knows, no IAM instance profiles) and one control-plane
/// machine for `aws`.
pub fn generate_for_moto(name: &str, infrastructure: &str, workers: u32) -> String {
    generate_flavor_for_moto(name, infrastructure, "default", workers)
}

/// [`generate_for_moto`] with a `--flavor`.
pub fn generate_flavor_for_moto(
    name: &str,
    infrastructure: &str,
    flavor: &str,
    workers: u32,
) -> String {
    let mut cmd = Command::new(slipway_bin());
    cmd.args([
        "generate",
        "cluster",
        name,
        "--infrastructure",
        infrastructure,
        "--flavor",
        flavor,
    ])
    .args(["--worker-machine-count", &workers.to_string()]);
    if infrastructure == "aws" {
        cmd.args(["--control-plane-machine-count", "1"]);
    }
    let out = cmd
        .args(["--kubernetes-version", "v1.31.0"])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_AMI_ID", "ami-760aaa0f")
        .env("AWS_SSH_KEY_NAME", "slipway-e2e")
        .env("AWS_CONTROL_PLANE_IAM_INSTANCE_PROFILE", "")
        .env("AWS_NODE_IAM_INSTANCE_PROFILE", "")
        .output()
        .expect("running slipway generate cluster");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

impl Mgmt {
    /// `<cluster>-kubeconfig` in `default` pointing at `workload` (a stand-in API server for
    /// a provider whose machines run no kubeadm), marked as written by a provider so the
    /// control plane leaves it alone.
    pub fn stand_in_kubeconfig(&self, cluster: &str, workload: &Mgmt) {
        use base64::Engine;
        let kc = std::fs::read(&workload.kubeconfig).expect("reading the stand-in's kubeconfig");
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": format!("{cluster}-kubeconfig"), "namespace": "default",
                "labels": {"cluster.x-k8s.io/cluster-name": cluster},
                "annotations": {"slipway.dev/kubeconfig-provider": "e2e-stand-in"},
            },
            "type": "cluster.x-k8s.io/secret",
            "data": {"value": base64::engine::general_purpose::STANDARD.encode(kc)},
        });
        self.ok(&["apply", "-f", "-"], Some(&secret.to_string()));
    }
}
