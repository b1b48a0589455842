//! Status as an operator who knows Cluster API reads it, through kubectl against `slipway up`:
//! the Cluster's `Available` summarises workers too (and says why not), `get cluster -o wide`
//! fills every column, a Cluster's pause reaches every object at once, an infrastructureRef to
//! a kind without CRD is reported and deletable, version skew is refused, Events are recorded.

use std::process::Command;

use serde_json::Value;
use slipway_testsupport::*;

fn slipway_generate(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.args(["generate", "cluster"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn cond<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn cond_field(obj: &Value, type_: &str, field: &str) -> String {
    cond(obj, type_)
        .and_then(|c| c[field].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_cluster_with_failing_workers_is_not_available_and_says_why() {
    let m = Mgmt::start("status-faulty", false);
    m.ok(
        &["apply", "-f", "-"],
        Some(&slipway_generate(
            &["bad", "--flavor", "faulty", "--worker-machine-count", "2"],
            &[("IN_MEMORY_FAULT_MESSAGE", "no disk")],
        )),
    );
    // The control plane comes up; the workers never do.
    eventually(90, "the control plane is available", || {
        let c = m.json(&["get", "cluster", "bad"]);
        (cond_field(&c, "ControlPlaneAvailable", "status") == "True")
            .then_some(())
            .ok_or_else(|| format!("{:#}", c["status"]))
    });
    let wait = m.kubectl_with(
        &m.kubeconfig,
        &[
            "wait",
            "--for=condition=Available",
            "cluster/bad",
            "--timeout=15s",
        ],
        None,
    );
    assert!(
        !wait.status.success(),
        "kubectl wait returned although no worker is available: {}",
        text(&wait.stdout)
    );
    let c = eventually(60, "Available says the workers are why", || {
        let c = m.json(&["get", "cluster", "bad"]);
        let msg = cond_field(&c, "Available", "message");
        (cond_field(&c, "Available", "status") == "False"
            && msg.contains("WorkersAvailable")
            && msg.contains("MachineDeployment bad-md-0"))
        .then_some(c.clone())
        .ok_or_else(|| format!("{:#}", c["status"]["conditions"]))
    });
    assert_eq!(cond_field(&c, "Available", "reason"), "NotAvailable");
    assert_eq!(cond_field(&c, "WorkersAvailable", "status"), "False");
    assert_eq!(cond_field(&c, "RemoteConnectionProbe", "status"), "True");
    assert_eq!(cond_field(&c, "WorkerMachinesReady", "status"), "False");
    assert!(
        cond_field(&c, "WorkerMachinesReady", "message").contains("no disk"),
        "{:#}",
        c["status"]["conditions"]
    );
    assert_eq!(c["status"]["workers"]["desiredReplicas"], 2);
    assert_eq!(c["status"]["workers"]["availableReplicas"], 0);
    // describe shows the same reason to a human.
    let describe = m.ok(&["describe", "cluster", "bad"], None);
    assert!(
        describe.contains("WorkersAvailable") && describe.contains("NotAvailable"),
        "{describe}"
    );
}

#[test]
fn get_cluster_wide_fills_every_column_and_machines_are_up_to_date() {
    let m = Mgmt::start("status-wide", false);
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("good", 1, 1, "v1.31.0")),
    );
    wait_available(&m, "good", 120);
    let table = eventually(60, "every column of get cluster -o wide filled", || {
        let t = m.ok(&["get", "cluster", "good", "-o", "wide"], None);
        let cols = columns(&t);
        cols.iter()
            .all(|(_, v)| !v.is_empty() && v != "<none>")
            .then_some(t.clone())
            .ok_or(format!("{cols:?}"))
    });
    let cols = columns(&table);
    let col = |name: &str| {
        cols.iter()
            .find(|(h, _)| h == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no column {name}: {table}"))
    };
    assert_eq!(col("CP DESIRED"), "1", "{table}");
    assert_eq!(col("W DESIRED"), "1", "{table}");
    assert_eq!(col("W AVAILABLE"), "1", "{table}");
    assert_eq!(col("W UP-TO-DATE"), "1", "{table}");
    assert_eq!(col("VERSION"), "v1.31.0", "{table}");
    assert_eq!(col("PHASE"), "Provisioned", "{table}");
    assert_eq!(col("PAUSED"), "False", "{table}");
    assert_eq!(col("AVAILABLE"), "True", "{table}");

    // Machines: the UP-TO-DATE column is filled.
    let machines = m.ok(&["get", "machines", "-o", "wide"], None);
    for line in machines.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols.iter().filter(|c| **c == "True").count(),
            3,
            "Ready, Available, Up-to-date: {machines}"
        );
    }
    // Upstream's names on the control plane and the deployment.
    let kcp = m.json(&["get", "kubeadmcontrolplane", "good-control-plane"]);
    for t in ["MachinesReady", "MachinesUpToDate", "Available"] {
        assert_eq!(
            cond_field(&kcp, t, "status"),
            "True",
            "{t}: {:#}",
            kcp["status"]
        );
    }
    assert!(cond(&kcp, "ControlPlaneMachinesReady").is_none());
    let md = m.json(&["get", "machinedeployment", "good-md-0"]);
    for t in ["MachinesReady", "MachinesUpToDate", "Available"] {
        assert_eq!(
            cond_field(&md, t, "status"),
            "True",
            "{t}: {:#}",
            md["status"]
        );
    }
    let c = m.json(&["get", "cluster", "good"]);
    for t in [
        "MachinesReady",
        "MachinesUpToDate",
        "ControlPlaneMachinesReady",
        "ControlPlaneMachinesUpToDate",
        "WorkerMachinesReady",
        "WorkerMachinesUpToDate",
        "WorkersAvailable",
        "RemoteConnectionProbe",
    ] {
        assert_eq!(
            cond_field(&c, t, "status"),
            "True",
            "{t}: {:#}",
            c["status"]
        );
    }
    for t in [
        "ScalingUp",
        "ScalingDown",
        "RollingOut",
        "Remediating",
        "Deleting",
    ] {
        assert_eq!(
            cond_field(&c, t, "status"),
            "False",
            "{t}: {:#}",
            c["status"]
        );
    }
}

/// The columns of a one-row kubectl table: each header (columns are separated by at least
/// two spaces) with the row's value starting at the same offset.
fn columns(table: &str) -> Vec<(String, String)> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    let row = lines.next().unwrap_or_default();
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = header.as_bytes();
    while start < header.len() {
        let mut end = start;
        while end < header.len() && !(bytes[end] == b' ' && bytes.get(end + 1) == Some(&b' ')) {
            end += 1;
        }
        let value = row
            .get(start..)
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or_default();
        // A value starting before its header's offset belongs to the previous column.
        let aligned = start == 0 || row.as_bytes().get(start - 1) == Some(&b' ');
        out.push((
            header[start..end].to_string(),
            if aligned {
                value.to_string()
            } else {
                String::new()
            },
        ));
        start = end;
        while start < header.len() && bytes[start] == b' ' {
            start += 1;
        }
    }
    out
}

fn paused_everywhere(m: &Mgmt, want: &str) -> Result<(), String> {
    for kind in ["machinedeployments", "machinesets", "machines"] {
        for o in m.items(&["get", kind, "-l", "cluster.x-k8s.io/cluster-name=p"]) {
            let got = cond_field(&o, "Paused", "status");
            if got != want {
                return Err(format!("{kind} {} Paused={got:?}", o["metadata"]["name"]));
            }
        }
    }
    Ok(())
}

#[test]
fn a_clusters_pause_reaches_every_object_at_once() {
    let m = Mgmt::start("status-pause", false);
    m.ok(&["apply", "-f", "-"], Some(&generate("p", 1, 1, "v1.31.0")));
    wait_available(&m, "p", 120);
    m.ok(
        &[
            "patch",
            "cluster",
            "p",
            "--type=merge",
            "-p",
            r#"{"spec":{"paused":true}}"#,
        ],
        None,
    );
    eventually(10, "every object shows Paused=True", || {
        paused_everywhere(&m, "True")
    });
    // Paused: scaling the deployment does nothing.
    m.ok(
        &["scale", "machinedeployment", "p-md-0", "--replicas=2"],
        None,
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        machines(&m, "p").len(),
        2,
        "no machine created while paused"
    );
    m.ok(
        &[
            "patch",
            "cluster",
            "p",
            "--type=merge",
            "-p",
            r#"{"spec":{"paused":false}}"#,
        ],
        None,
    );
    eventually(10, "every object shows Paused=False", || {
        paused_everywhere(&m, "False")
    });
    eventually(20, "the deployment resumes at once", || {
        let n = machines(&m, "p").len();
        (n == 3).then_some(()).ok_or(format!("{n} machines"))
    });
}

#[test]
fn an_infrastructure_kind_without_crd_is_reported_and_deletable() {
    let m = Mgmt::start("status-nocrd", false);
    m.ok(
        &["apply", "-f", "-"],
        Some(
            r#"apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata:
  name: ghost
  namespace: default
spec:
  infrastructureRef:
    apiGroup: infrastructure.cluster.x-k8s.io
    kind: NopeCluster
    name: ghost
"#,
        ),
    );
    let c = eventually(30, "InfrastructureReady names the missing kind", || {
        let c = m.json(&["get", "cluster", "ghost"]);
        (cond_field(&c, "InfrastructureReady", "reason") == "KindNotServed")
            .then_some(c.clone())
            .ok_or_else(|| format!("{:#}", c["status"]))
    });
    assert!(
        cond_field(&c, "InfrastructureReady", "message").contains("NopeCluster"),
        "{:#}",
        c["status"]
    );
    assert_eq!(cond_field(&c, "Available", "status"), "False");
    let describe = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["describe", "cluster", "ghost"])
        .env("KUBECONFIG", &m.kubeconfig)
        .output()
        .unwrap();
    assert!(describe.status.success(), "{}", text(&describe.stderr));
    assert!(
        text(&describe.stdout).contains("KindNotServed"),
        "{}",
        text(&describe.stdout)
    );
    // The failure is one Warning Event, aggregated and backed off, not one per retry.
    std::thread::sleep(std::time::Duration::from_secs(12));
    let evs: Vec<Value> = events(&m)
        .into_iter()
        .filter(|e| e["involvedObject"]["name"] == "ghost" && e["type"] == "Warning")
        .collect();
    assert_eq!(evs.len(), 1, "{evs:#?}");
    assert!(
        evs[0]["message"].as_str().unwrap().contains("NopeCluster"),
        "{evs:#?}"
    );
    let count = evs[0]["count"].as_i64().unwrap_or(1);
    assert!(
        count <= 6,
        "retries back off (2 s apart would be ~8 by now): {count}"
    );
    // Nothing to tear down: the delete completes, and its progress lines end cleanly.
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["delete", "cluster", "ghost", "--wait", "--timeout", "30"])
        .env("KUBECONFIG", &m.kubeconfig)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let progress = text(&out.stdout);
    assert!(
        progress
            .lines()
            .last()
            .unwrap_or_default()
            .contains("deleted"),
        "{progress}"
    );
    assert!(
        progress.lines().all(|l| !l.trim_end().ends_with(';')),
        "no dangling separator: {progress}"
    );
}

fn events(m: &Mgmt) -> Vec<Value> {
    m.items(&["get", "events", "-A"])
}

fn has_event(events: &[Value], kind: &str, reason: &str, message_part: &str) -> bool {
    events.iter().any(|e| {
        e["involvedObject"]["kind"] == kind
            && e["reason"] == reason
            && e["message"]
                .as_str()
                .unwrap_or_default()
                .contains(message_part)
    })
}

#[test]
fn version_skew_is_refused_with_a_reason_and_an_event() {
    let m = Mgmt::start("status-skew", false);
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("sk", 1, 1, "v1.31.0")),
    );
    wait_available(&m, "sk", 120);
    // The control plane may not skip a minor version.
    m.ok(
        &[
            "patch",
            "kubeadmcontrolplane",
            "sk-control-plane",
            "--type=merge",
            "-p",
            r#"{"spec":{"version":"v1.33.0"}}"#,
        ],
        None,
    );
    let kcp = eventually(30, "RollingOut says the skew is not allowed", || {
        let k = m.json(&["get", "kubeadmcontrolplane", "sk-control-plane"]);
        (cond_field(&k, "RollingOut", "reason") == "VersionSkewNotAllowed")
            .then_some(k.clone())
            .ok_or_else(|| format!("{:#}", k["status"]))
    });
    assert!(
        cond_field(&kcp, "RollingOut", "message").contains("skips a minor version"),
        "{:#}",
        kcp["status"]
    );
    // Workers may not be newer than the control plane.
    m.ok(
        &[
            "patch",
            "machinedeployment",
            "sk-md-0",
            "--type=merge",
            "-p",
            r#"{"spec":{"template":{"spec":{"version":"v1.32.0"}}}}"#,
        ],
        None,
    );
    let evs = eventually(30, "Warning Events name both refusals", || {
        let evs = events(&m);
        (has_event(
            &evs,
            "KubeadmControlPlane",
            "VersionSkewNotAllowed",
            "skips a minor",
        ) && has_event(
            &evs,
            "MachineSet",
            "VersionSkewNotAllowed",
            "newer than the control plane",
        ))
        .then_some(evs.clone())
        .ok_or_else(|| format!("{evs:#?}"))
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    for mach in machines(&m, "sk") {
        assert_eq!(
            mach["spec"]["version"], "v1.31.0",
            "nothing rolled out: {mach:#}"
        );
    }
    // A refusal repeated every few seconds stays one Event with a count.
    let skew: Vec<_> = evs
        .iter()
        .filter(|e| {
            e["reason"] == "VersionSkewNotAllowed"
                && e["involvedObject"]["kind"] == "KubeadmControlPlane"
        })
        .collect();
    assert_eq!(skew.len(), 1, "{skew:#?}");
    // The lifecycle's Events are there too.
    assert!(has_event(
        &evs,
        "MachineDeployment",
        "SuccessfulCreate",
        "Created MachineSet"
    ));
    assert!(has_event(
        &evs,
        "MachineSet",
        "SuccessfulCreate",
        "Created machine"
    ));
    assert!(has_event(
        &evs,
        "KubeadmControlPlane",
        "SuccessfulCreate",
        "Created machine"
    ));
    // The init lock is gone once the control plane is initialized.
    assert!(
        !m.kubectl_with(&m.kubeconfig, &["get", "configmap", "sk-lock"], None)
            .status
            .success(),
        "sk-lock still exists"
    );
}

fn http_get(port: u16, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or_default()
        .to_string())
}

/// promtool, or `None` (with the reason printed) when it is not installed and not required.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("promtool");
    }
    assert!(
        std::env::var_os("SLIPWAY_REQUIRE_PROMTOOL").is_none(),
        "SLIPWAY_REQUIRE_PROMTOOL is set but promtool is missing (apt-get install prometheus)"
    );
    eprintln!(
        "skipping the promtool check: promtool is not installed (apt-get install prometheus)"
    );
    None
}

#[test]
fn metrics_have_controller_runtime_names_and_pass_promtool() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let m = Mgmt::start_with("status-metrics", false, &["--metrics-address", &addr]);
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("mx", 1, 1, "v1.31.0")),
    );
    wait_available(&m, "mx", 120);
    let body = eventually(
        40,
        "state metrics of the cluster and a registry probe",
        || {
            let b = http_get(port, "/metrics")?;
            (b.contains("capi_cluster_status_condition{namespace=\"default\",name=\"mx\",type=\"Available\",status=\"True\"} 1")
            && b.contains("slipway_registry_probes_total{result=\"healthy\"}"))
            .then_some(b.clone())
            .ok_or(b)
        },
    );
    for want in [
        "# TYPE controller_runtime_reconcile_total counter",
        "controller_runtime_reconcile_total{controller=\"cluster\",result=\"success\"}",
        "controller_runtime_reconcile_errors_total{controller=\"machine\"}",
        "# TYPE controller_runtime_reconcile_time_seconds histogram",
        "controller_runtime_reconcile_time_seconds_bucket{le=\"+Inf\",controller=\"machineset\"}",
        "workqueue_adds_total{controller=\"machinedeployment\",name=\"machinedeployment\"}",
        "workqueue_depth{controller=\"kubeadmcontrolplane\",name=\"kubeadmcontrolplane\"}",
        "# TYPE workqueue_queue_duration_seconds histogram",
        "rest_client_requests_total{code=\"200\",method=\"GET\"}",
        "rest_client_requests_total{code=\"201\",method=\"POST\"}",
        "slipway_registry_probes_total",
        "capi_cluster_status_phase{namespace=\"default\",name=\"mx\",phase=\"Provisioned\"} 1",
        "capi_machine_status_phase{namespace=\"default\",name=\"",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(body.contains(want), "{want} missing from:\n{body}");
    }
    let Some(promtool) = promtool() else { return };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn workload_clusters_read_like_kubeadm_clusters_and_feed_kcp_health() {
    let m = Mgmt::start("status-workload", false);
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("wl", 1, 1, "v1.31.0")),
    );
    wait_available(&m, "wl", 120);
    let kc = m.workload_kubeconfig("wl");
    let k = |args: &[&str]| {
        let out = m.kubectl_with(&kc, args, None);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let nodes = k(&["get", "nodes"]);
    let header: Vec<&str> = nodes.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        "{nodes}"
    );
    let rows: Vec<Vec<&str>> = nodes
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{nodes}");
    assert!(
        rows.iter().all(|r| r[1] == "Ready" && r[4] == "v1.31.0"),
        "{nodes}"
    );
    let cp: Vec<&Vec<&str>> = rows.iter().filter(|r| r[2] == "control-plane").collect();
    assert_eq!(cp.len(), 1, "one control-plane node: {nodes}");
    assert!(
        rows.iter().any(|r| r[2] == "<none>"),
        "the worker has no role: {nodes}"
    );
    let cp_node = cp[0][0].to_string();

    let pods = k(&["get", "pods", "-A"]);
    for c in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "etcd",
    ] {
        let line = pods
            .lines()
            .find(|l| l.contains(&format!("{c}-{cp_node}")))
            .unwrap_or_else(|| panic!("no {c} pod: {pods}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            &cols[..4],
            ["kube-system", &format!("{c}-{cp_node}"), "1/1", "Running"],
            "{pods}"
        );
    }
    let svc = k(&["get", "svc", "kubernetes"]);
    assert!(
        svc.contains("10.96.0.1") && svc.contains("443/TCP"),
        "{svc}"
    );
    let describe = k(&["describe", "node", &cp_node]);
    for want in [
        "node-role.kubernetes.io/control-plane:NoSchedule",
        "Capacity:",
        "kube-apiserver-",
        "Non-terminated Pods:",
    ] {
        assert!(describe.contains(want), "{want} missing from:\n{describe}");
    }
    let info = k(&["cluster-info"]);
    assert!(info.contains("is running at"), "{info}");

    let kcp = eventually(30, "KCP health from the workload cluster", || {
        let kcp = m.json(&["get", "kubeadmcontrolplane", "wl-control-plane"]);
        (cond_field(&kcp, "EtcdClusterHealthy", "status") == "True"
            && cond_field(&kcp, "ControlPlaneComponentsHealthy", "status") == "True")
            .then_some(kcp.clone())
            .ok_or_else(|| format!("{:#}", kcp["status"]["conditions"]))
    });
    assert_eq!(cond_field(&kcp, "EtcdClusterHealthy", "reason"), "Healthy");
    // A missing static Pod is named.
    k(&[
        "delete",
        "pod",
        "-n",
        "kube-system",
        &format!("kube-scheduler-{cp_node}"),
    ]);
    // Nothing in the management cluster announces the change: wake the control plane.
    m.ok(
        &[
            "annotate",
            "kubeadmcontrolplane",
            "wl-control-plane",
            "poke=1",
        ],
        None,
    );
    eventually(
        30,
        "ControlPlaneComponentsHealthy names the missing Pod",
        || {
            let kcp = m.json(&["get", "kubeadmcontrolplane", "wl-control-plane"]);
            let msg = cond_field(&kcp, "ControlPlaneComponentsHealthy", "message");
            (cond_field(&kcp, "ControlPlaneComponentsHealthy", "status") == "False"
                && msg.contains(&format!("Pod kube-scheduler-{cp_node} is missing")))
            .then_some(())
            .ok_or(msg)
        },
    );
}
