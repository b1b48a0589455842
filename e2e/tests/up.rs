//! `slipway up` driven by the real kubectl: the management plane must behave as a Kubernetes
//! API server does for every command here. Needs `kubectl` on PATH (`.ci/run` installs it).

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use slipway_testsupport::{temp_dir, text};

struct Up {
    child: Child,
    dir: PathBuf,
    kubeconfig: PathBuf,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_up(dir: &Path) -> (Child, PathBuf) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["up", "--port", "0", "--no-controller", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("slipway up starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let path = line
        .trim()
        .strip_prefix("export KUBECONFIG=")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, PathBuf::from(path))
}

fn up(tag: &str) -> Up {
    let dir = temp_dir(tag);
    let (child, kubeconfig) = start_up(&dir);
    Up {
        child,
        dir,
        kubeconfig,
    }
}

impl Up {
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let home = self.dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = Command::new("kubectl");
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &home)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().expect("kubectl on PATH");
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

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail: {}",
            text(&out.stdout)
        );
        text(&out.stderr)
    }
}

fn demo_manifests() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "generate",
            "cluster",
            "demo",
            "--control-plane-machine-count",
            "3",
            "--worker-machine-count",
            "2",
            "--kubernetes-version",
            "v1.31.0",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    text(&out.stdout)
}

const MACHINE_SET: &str = "apiVersion: cluster.x-k8s.io/v1beta2
kind: MachineSet
metadata: {name: ms, namespace: default}
spec:
  clusterName: demo
  replicas: 1
  selector: {matchLabels: {pool: a}}
  template:
    metadata: {labels: {pool: a}}
    spec:
      clusterName: demo
      bootstrap: {dataSecretName: bootstrap}
      infrastructureRef: {apiGroup: infrastructure.cluster.x-k8s.io, kind: InMemoryMachine, name: m}
";

#[test]
fn apply_get_columns_yaml_and_unchanged_reapply() {
    let up = up("apply");
    let manifests = demo_manifests();
    let first = up.ok(&["apply", "-f", "-"], Some(&manifests));
    assert!(
        first.contains("cluster.cluster.x-k8s.io/demo created"),
        "{first}"
    );
    assert_eq!(first.matches(" created").count(), 9, "{first}");
    let second = up.ok(&["apply", "-f", "-"], Some(&manifests));
    assert_eq!(second.matches(" unchanged").count(), 9, "{second}");

    let table = up.ok(&["get", "clusters"], None);
    let header = table.lines().next().unwrap();
    for col in ["NAME", "AVAILABLE", "PHASE", "AGE", "VERSION"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(
        table.lines().nth(1).unwrap().starts_with("demo "),
        "{table}"
    );
    let machines = up.kubectl(&["get", "machines"], None);
    assert!(
        machines.status.success() && text(&machines.stderr).contains("No resources found"),
        "{machines:?}"
    );
    let all = up.ok(&["get", "cluster-api"], None);
    for kind in [
        "cluster.cluster.x-k8s.io/demo",
        "kubeadmcontrolplane.controlplane.cluster.x-k8s.io/demo-control-plane",
        "machinedeployment.cluster.x-k8s.io/demo-md-0",
    ] {
        assert!(all.contains(kind), "{all}");
    }
    let yaml = up.ok(&["get", "cluster", "demo", "-o", "yaml"], None);
    for want in [
        "apiVersion: cluster.x-k8s.io/v1beta2",
        "kind: Cluster",
        "uid: ",
        "resourceVersion: ",
        "generation: 1",
        "cidrBlocks:",
    ] {
        assert!(yaml.contains(want), "{want} missing in {yaml}");
    }
    let resources = up.ok(&["api-resources"], None);
    for r in [
        "clusters",
        "machinedeployments",
        "kubeadmcontrolplanes",
        "inmemorymachines",
        "clusterprofiles",
        "secrets",
        "leases",
    ] {
        assert!(resources.contains(r), "{r} missing in api-resources");
    }
}

#[test]
fn watch_sees_added_modified_deleted_and_wait_sees_conditions() {
    let up = up("watch");
    up.ok(&["apply", "-f", "-"], Some(MACHINE_SET));
    let home = up.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let watcher = Command::new("kubectl")
        .args([
            "get",
            "machinesets",
            "-w",
            "--output-watch-events",
            "--request-timeout=20s",
        ])
        .env("KUBECONFIG", &up.kubeconfig)
        .env("HOME", &home)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    up.ok(
        &[
            "patch",
            "machineset",
            "ms",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":2}}"#,
        ],
        None,
    );
    up.ok(&["patch", "machineset", "ms", "--subresource", "status", "--type", "merge", "-p",
            r#"{"status":{"conditions":[{"type":"MachinesReady","status":"True","reason":"Ready","message":"","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#], None);
    let waited = up.ok(
        &[
            "wait",
            "--for=condition=MachinesReady",
            "machineset/ms",
            "--timeout=10s",
        ],
        None,
    );
    assert!(waited.contains("condition met"), "{waited}");
    up.ok(&["delete", "machineset", "ms"], None);
    std::thread::sleep(Duration::from_millis(700));
    let mut watcher = watcher;
    let _ = watcher.kill();
    let out = watcher.wait_with_output().unwrap();
    let events: Vec<&str> = text(&out.stdout)
        .leak()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(events.first(), Some(&"EVENT"), "{events:?}");
    assert_eq!(events[1], "ADDED", "{events:?}");
    assert!(events.contains(&"MODIFIED"), "{events:?}");
    assert_eq!(events.last(), Some(&"DELETED"), "{events:?}");
}

#[test]
fn server_side_apply_conflicts_unless_forced_and_patch_types_work() {
    let up = up("ssa");
    assert!(
        up.ok(&["apply", "--server-side", "-f", "-"], Some(MACHINE_SET))
            .contains("serverside-applied")
    );
    up.ok(
        &[
            "patch",
            "machineset",
            "ms",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":5}}"#,
            "--field-manager",
            "scaler",
        ],
        None,
    );
    let err = up.fails(&["apply", "--server-side", "-f", "-"], Some(MACHINE_SET));
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"scaler\"")
            && err.contains(".spec.replicas"),
        "{err}"
    );
    up.ok(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(MACHINE_SET),
    );
    assert_eq!(
        up.ok(
            &["get", "ms", "ms", "-o", "jsonpath={.spec.replicas}"],
            None
        ),
        "1"
    );
    up.ok(
        &[
            "patch",
            "ms",
            "ms",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
        ],
        None,
    );
    assert_eq!(
        up.ok(
            &["get", "ms", "ms", "-o", "jsonpath={.spec.replicas}"],
            None
        ),
        "4"
    );
    // Labels the applier no longer sets are removed.
    let without_replicas = MACHINE_SET.replace("  replicas: 1\n", "");
    up.ok(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(&without_replicas),
    );
    assert_eq!(
        up.ok(
            &["get", "ms", "ms", "-o", "jsonpath={.spec.replicas}"],
            None
        ),
        "4",
        "replicas is co-owned by the json patch"
    );
}

#[test]
fn delete_waits_for_finalizers_and_invalid_objects_show_field_errors() {
    let up = up("delete");
    up.ok(&["apply", "-f", "-"], Some(MACHINE_SET));
    up.ok(
        &[
            "patch",
            "ms",
            "ms",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"finalizers":["e2e.slipway.dev/hold"]}}"#,
        ],
        None,
    );
    let (kubeconfig, home) = (up.kubeconfig.clone(), up.dir.join("home"));
    let deleter = std::thread::spawn(move || {
        let start = Instant::now();
        let out = Command::new("kubectl")
            .args(["delete", "ms", "ms", "--timeout=30s"])
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", home)
            .output()
            .unwrap();
        (out.status.success(), start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(1500));
    let ts = up.ok(
        &[
            "get",
            "ms",
            "ms",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ],
        None,
    );
    assert!(
        !ts.is_empty(),
        "deletionTimestamp is set while the finalizer holds"
    );
    let err = up.fails(
        &[
            "patch",
            "ms",
            "ms",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"finalizers":["e2e.slipway.dev/hold","new"]}}"#,
        ],
        None,
    );
    assert!(
        err.contains("no new finalizers can be added if the object is being deleted"),
        "{err}"
    );
    up.ok(
        &[
            "patch",
            "ms",
            "ms",
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
        None,
    );
    let (ok, took) = deleter.join().unwrap();
    assert!(
        ok && took >= Duration::from_millis(1500),
        "delete waited for the finalizer ({took:?})"
    );
    assert!(up.fails(&["get", "ms", "ms"], None).contains("NotFound"));
    assert!(up.ok(&["get", "ms"], None).is_empty());

    let bad = MACHINE_SET.replace("replicas: 1", "replicas: -1");
    let err = up.fails(&["apply", "-f", "-"], Some(&bad));
    assert!(err.contains("The MachineSet \"ms\" is invalid: spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"), "{err}");
    let typo = MACHINE_SET.replace("  replicas: 1\n", "  replicas: 1\n  replicaz: 2\n");
    let err = up.fails(&["apply", "-f", "-"], Some(&typo));
    assert!(err.contains("unknown field \"spec.replicaz\""), "{err}");
    let cidr = "apiVersion: cluster.x-k8s.io/v1beta2\nkind: Cluster\nmetadata: {name: c}\nspec: {clusterNetwork: {pods: {cidrBlocks: [10.0.0.0/99]}}}\n";
    let err = up.fails(&["apply", "-f", "-"], Some(cidr));
    assert!(
        err.contains("every entry of cidrBlocks must be a CIDR block"),
        "{err}"
    );
}

#[test]
fn wrong_credentials_are_refused_and_state_survives_sigkill() {
    let dir = temp_dir("restart");
    let (mut child, kubeconfig) = start_up(&dir);
    let mut up = Up {
        child: Command::new("true").spawn().unwrap(),
        dir: dir.clone(),
        kubeconfig: kubeconfig.clone(),
    };
    up.ok(&["apply", "-f", "-"], Some(MACHINE_SET));
    let configmaps: String = (0..20).map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, namespace: default}}\ndata: {{i: \"{i}\"}}\n")).collect();
    up.ok(&["apply", "-f", "-"], Some(&configmaps));
    let before = up.ok(
        &[
            "get",
            "configmaps,machinesets",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}",
        ],
        None,
    );
    let bad = up.fails(&["get", "ns", "--token", "not-the-token"], None);
    assert!(bad.contains("Unauthorized"), "{bad}");

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (child, kubeconfig2) = start_up(&dir);
    up.child = child;
    up.kubeconfig = kubeconfig2;
    let after = up.ok(
        &[
            "get",
            "configmaps,machinesets",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}",
        ],
        None,
    );
    assert_eq!(
        before, after,
        "every acknowledged write is back with its resourceVersion"
    );
    assert_eq!(after.matches("cm-").count(), 20);
}

#[test]
fn typed_create_commands_and_namespace_deletion() {
    let up = up("create");
    up.ok(&["create", "namespace", "team-a"], None);
    up.ok(
        &[
            "create",
            "configmap",
            "cfg",
            "-n",
            "team-a",
            "--from-literal=mode=fast",
        ],
        None,
    );
    up.ok(
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            "team-a",
            "--from-literal=key=s3cr3t",
        ],
        None,
    );
    up.ok(&["create", "serviceaccount", "bot", "-n", "team-a"], None);
    assert_eq!(
        up.ok(
            &[
                "get",
                "cm",
                "cfg",
                "-n",
                "team-a",
                "-o",
                "jsonpath={.data.mode}"
            ],
            None
        ),
        "fast"
    );
    assert_eq!(
        up.ok(
            &[
                "get",
                "secret",
                "creds",
                "-n",
                "team-a",
                "-o",
                "jsonpath={.type} {.data.key}"
            ],
            None
        ),
        "Opaque czNjcjN0"
    );
    let deleted = up.ok(&["delete", "namespace", "team-a", "--timeout=30s"], None);
    assert!(deleted.contains("deleted"), "{deleted}");
    assert!(
        up.fails(&["get", "namespace", "team-a"], None)
            .contains("NotFound")
    );
    assert!(
        up.fails(&["get", "cm", "cfg", "-n", "team-a"], None)
            .contains("NotFound")
    );
}

#[test]
fn client_side_apply_of_a_builtin_kind_merges_without_warnings() {
    let up = up("smp");
    let v1 = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: smp, namespace: default, labels: {a: \"1\", b: \"2\"}}\ndata: {x: \"1\", y: \"2\"}\n";
    let v2 = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: smp, namespace: default, labels: {a: \"1\"}}\ndata: {x: \"9\"}\n";
    up.ok(&["apply", "-f", "-"], Some(v1));
    let out = up.kubectl(&["apply", "-f", "-"], Some(v2));
    assert!(
        out.status.success() && text(&out.stdout).contains("configured"),
        "{out:?}"
    );
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        up.ok(
            &[
                "get",
                "cm",
                "smp",
                "-o",
                "jsonpath={.metadata.labels} {.data}"
            ],
            None
        ),
        r#"{"a":"1"} {"x":"9"}"#
    );
}
