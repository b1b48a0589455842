//! kind clusters through `slipway up` and kubectl.
//!
//! - Always: on a machine without Docker a kind cluster shows ProviderUnavailable naming the
//!   missing tool and is never Available.
//! - Always: the whole lifecycle against the fake `kind` / `docker` of `e2e/tests/fixtures/fake-kind`,
//!   whose "kind cluster" API server is a second `slipway up` plane holding the Nodes kind's
//!   kubelets would register.
//! - Gated: a real 1 + 1 kind cluster where `docker info` succeeds and `kind` is on PATH;
//!   elsewhere the test prints why it was skipped.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use slipway_testsupport::{
    Mgmt, condition, eventually, fixture, machines, register_node, temp_dir, text, wait_available,
};

/// A temporary bin dir holding the named fakes (their state lives in `<bin>/state`).
struct FakeBin(PathBuf);

impl Drop for FakeBin {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl FakeBin {
    fn new(tag: &str, tools: &[&str]) -> Self {
        let bin = Self(temp_dir(&format!("{tag}-bin")));
        std::fs::create_dir_all(bin.0.join("state")).unwrap();
        for t in tools {
            bin.add(t);
        }
        bin
    }

    fn add(&self, tool: &str) {
        let src = fixture("fake-kind");
        std::fs::copy(src.join(tool), self.0.join(tool)).unwrap();
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

fn generate_kind(name: &str, workers: u32) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["generate", "cluster", name, "--infrastructure", "kind"])
        .args(["--worker-machine-count", &workers.to_string()])
        .args(["--kubernetes-version", "v1.31.0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn ready_condition(obj: &Value) -> (String, String, String) {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("status"), s("reason"), s("message"))
        })
        .unwrap_or_default()
}

fn calls(bin: &Path) -> Vec<String> {
    std::fs::read_to_string(bin.join("state/calls.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// `slipway up` whose PATH is `bin` only, so only the fakes placed there exist.
fn start_with_path(tag: &str, bin: &FakeBin) -> Mgmt {
    start_with_path_and(tag, bin, &[])
}

fn start_with_path_and(tag: &str, bin: &FakeBin, flags: &[&str]) -> Mgmt {
    Mgmt::start_env(tag, false, flags, &[("PATH", bin.path().as_os_str())])
}

#[test]
fn a_kind_cluster_without_docker_names_the_missing_tool_and_is_never_available() {
    // kind is there, docker is not: the provider must say so, not fake a cluster.
    let fake = FakeBin::new("kind-nodocker", &["kind"]);
    let bin = fake.path();
    let m = start_with_path("kind-nodocker", &fake);
    m.ok(&["apply", "-f", "-"], Some(&generate_kind("k1", 1)));
    let msg = eventually(30, "KindCluster reports ProviderUnavailable", || {
        let kc = m.json(&["get", "kindcluster", "k1"]);
        let (status, reason, message) = ready_condition(&kc);
        (status == "False" && reason == "ProviderUnavailable")
            .then_some(message.clone())
            .ok_or_else(|| format!("{status} {reason} {message}"))
    });
    assert!(msg.contains("the `docker` binary is unavailable"), "{msg}");
    assert!(msg.contains("docs.docker.com"), "{msg}");
    // Docker comes, but its daemon is down: the message changes to say that.
    fake.add("docker");
    std::fs::write(bin.join("state/docker-down"), "").unwrap();
    m.ok(&["annotate", "kindcluster", "k1", "poke=1"], None);
    let msg = eventually(30, "the daemon is reported down", || {
        let (_, reason, message) = ready_condition(&m.json(&["get", "kindcluster", "k1"]));
        (reason == "ProviderUnavailable" && message.contains("Docker daemon"))
            .then_some(message.clone())
            .ok_or(message)
    });
    assert!(msg.contains("Cannot connect to the Docker daemon"), "{msg}");
    // Never Available, no infrastructure, no kind cluster made.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let c = m.json(&["get", "cluster", "k1"]);
    assert_ne!(condition(&c, "Available").as_deref(), Some("True"));
    assert_ne!(
        condition(&c, "InfrastructureReady").as_deref(),
        Some("True")
    );
    assert!(
        !calls(bin).iter().any(|c| c.starts_with("kind create")),
        "{:?}",
        calls(bin)
    );
    let machines = machines(&m, "k1");
    assert!(machines.iter().all(|x| x["status"]["phase"] != "Running"));
    // Deleting it needs no tools: nothing was made.
    m.ok(&["delete", "cluster", "k1", "--timeout=60s"], None);
    assert!(m.items(&["get", "kindclusters"]).is_empty());
}

#[test]
fn a_kind_cluster_goes_available_through_kind_and_is_deleted_with_it() {
    // The "kind cluster": an API server holding the Nodes kind's kubelets would register.
    let workload = Mgmt::start("kind-workload", true);
    for node in ["c1-control-plane", "c1-worker"] {
        register_node(
            &workload,
            node,
            &format!("kind://docker/c1/{node}"),
            "v1.31.0",
        );
    }
    let fake = FakeBin::new("kind-flow", &["kind", "docker"]);
    let bin = fake.path();
    std::fs::copy(&workload.kubeconfig, bin.join("state/kubeconfig")).unwrap();
    let m = start_with_path_and("kind-flow", &fake, &["--argocd-sink"]);
    m.ok(&["create", "namespace", "argocd"], None);
    m.ok(&["apply", "-f", "-"], Some(&generate_kind("c1", 1)));
    wait_available(&m, "c1", 90);
    eventually(60, "both machines Running", || {
        let ms = machines(&m, "c1");
        let running = ms
            .iter()
            .filter(|x| x["status"]["phase"] == "Running")
            .count();
        (ms.len() == 2 && running == 2)
            .then_some(())
            .ok_or_else(|| format!("{running} of {} Running", ms.len()))
    });

    // One kind create, with a private kubeconfig path and the rendered config.
    let creates: Vec<String> = calls(bin)
        .into_iter()
        .filter(|c| c.starts_with("kind create"))
        .collect();
    let private = m.dir.join("kind/default/c1/kubeconfig");
    assert_eq!(
        creates,
        [format!(
            "kind create cluster --name c1 --config - --kubeconfig {} --wait 5m",
            private.display()
        )]
    );
    let config = std::fs::read_to_string(bin.join("state/clusters/c1/config.yaml")).unwrap();
    assert!(config.contains("kindest/node:v1.31.0"), "{config}");
    assert!(config.contains("podSubnet: 192.168.0.0/16"), "{config}");

    // The KindCluster: Ready, saying kind bootstrapped the nodes.
    let kc = m.json(&["get", "kindcluster", "c1"]);
    let (status, _, message) = ready_condition(&kc);
    assert_eq!(status, "True");
    assert!(
        message.contains("slipway's bootstrap data is not executed"),
        "{message}"
    );
    assert_eq!(kc["status"]["kindClusterName"], "c1");
    // Machines bound to node containers, with kind's providerIDs and the Nodes as nodeRefs.
    let mut bound: Vec<(String, String, String)> = machines(&m, "c1")
        .iter()
        .map(|x| {
            let s = |p: &str| {
                x.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            (
                s("/spec/providerID"),
                s("/status/nodeRef/name"),
                s("/status/phase"),
            )
        })
        .collect();
    bound.sort();
    assert_eq!(
        bound,
        [
            (
                "kind://docker/c1/c1-control-plane".into(),
                "c1-control-plane".into(),
                "Running".into()
            ),
            (
                "kind://docker/c1/c1-worker".into(),
                "c1-worker".into(),
                "Running".into()
            ),
        ]
    );
    let kms = m.items(&["get", "kindmachines"]);
    assert!(kms.iter().all(|k| {
        k["status"]["addresses"][0]["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("172.18.0."))
    }));

    // The kubeconfig Secret is kind's (host and internal variants), and it works.
    let secret = m.json(&["get", "secret", "c1-kubeconfig"]);
    assert_eq!(
        secret["metadata"]["annotations"]["slipway.dev/kubeconfig-provider"],
        "kind"
    );
    use base64::Engine;
    let b64 = |k: &str| {
        text(
            &base64::engine::general_purpose::STANDARD
                .decode(secret["data"][k].as_str().unwrap())
                .unwrap(),
        )
    };
    assert_eq!(
        b64("value"),
        std::fs::read_to_string(&workload.kubeconfig).unwrap()
    );
    assert!(b64("internal").contains("server: https://c1-control-plane:6443"));
    let got = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["get", "kubeconfig", "c1"])
        .env("KUBECONFIG", &m.kubeconfig)
        .output()
        .unwrap();
    assert!(got.status.success(), "{}", text(&got.stderr));
    let path = m.dir.join("c1-from-cli.kubeconfig");
    std::fs::write(&path, &got.stdout).unwrap();
    let nodes = m.nodes(&path).unwrap();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    // The registry has kind's endpoint: the Argo CD cluster Secret points where kubectl went.
    let server = b64("value")
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: ").map(String::from))
        .unwrap();
    let argo = eventually(30, "the Argo CD cluster Secret", || {
        let out = m.kubectl_with(
            &m.kubeconfig,
            &[
                "get",
                "secret",
                "-n",
                "argocd",
                "slipway-default-c1",
                "-o",
                "json",
            ],
            None,
        );
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
            .ok_or_else(|| text(&out.stderr))
    });
    let argo_server = text(
        &base64::engine::general_purpose::STANDARD
            .decode(argo["data"]["server"].as_str().unwrap())
            .unwrap(),
    );
    assert_eq!(argo_server, server);

    // A third node cannot be added: the new Machine says why and is not Running.
    m.ok(
        &["scale", "machinedeployment", "c1-md-0", "--replicas=2"],
        None,
    );
    let msg = eventually(60, "the extra machine reports UnsupportedScaling", || {
        m.items(&["get", "kindmachines"])
            .iter()
            .map(ready_condition)
            .find(|(_, reason, _)| reason == "UnsupportedScaling")
            .map(|(_, _, message)| message)
            .ok_or_else(|| "no UnsupportedScaling yet".to_string())
    });
    assert!(msg.contains("kind cannot add nodes"), "{msg}");
    assert_eq!(
        calls(bin)
            .iter()
            .filter(|c| c.starts_with("kind create"))
            .count(),
        1
    );

    // Delete: the worker's container, then the kind cluster; nothing left behind.
    m.ok(&["delete", "cluster", "c1", "--timeout=90s"], None);
    let log = calls(bin);
    assert!(
        log.iter().any(|c| c == "docker rm --force c1-worker"),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|c| c.starts_with("kind delete cluster --name c1")),
        "{log:?}"
    );
    assert!(!bin.join("state/clusters/c1").exists());
    assert!(!m.dir.join("kind/default/c1").exists());
    for kind in ["kindclusters", "kindmachines", "machines", "secrets"] {
        let left: Vec<Value> = m
            .items(&["get", kind])
            .into_iter()
            .filter(|o| {
                o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("c1"))
            })
            .collect();
        assert!(left.is_empty(), "{kind} left: {left:?}");
    }
}

#[test]
fn a_real_kind_cluster_when_docker_and_kind_are_present() {
    let docker_up = Command::new("docker")
        .args(["info"])
        .output()
        .is_ok_and(|o| o.status.success());
    let kind = Command::new("kind")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(docker_up && kind) {
        println!(
            "skipped: a real kind cluster needs {}",
            match (docker_up, kind) {
                (false, false) =>
                    "a running Docker daemon (`docker info` failed) and `kind` on PATH",
                (false, true) => "a running Docker daemon (`docker info` failed)",
                _ => "`kind` on PATH",
            }
        );
        return;
    }
    let m = Mgmt::start_env(
        "kind-real",
        false,
        &[],
        &[("PATH", &std::env::var_os("PATH").unwrap_or_default())],
    );
    let name = format!("slipway-e2e-{}", std::process::id());
    m.ok(&["apply", "-f", "-"], Some(&generate_kind(&name, 1)));
    wait_available(&m, &name, 600);
    let kubeconfig = m.workload_kubeconfig(&name);
    let nodes = m.nodes(&kubeconfig).unwrap();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    m.ok(&["delete", "cluster", &name, "--timeout=300s"], None);
    let left = Command::new("kind")
        .args(["get", "clusters"])
        .output()
        .unwrap();
    assert!(!text(&left.stdout).lines().any(|l| l == name));
}
