//! Operability: two `slipway controller` replicas with leader election never both reconcile;
//! killing the leader hands over to the standby; /metrics, /healthz and /readyz answer.

use std::{
    io::{Read, Write},
    process::{Child, Command, Stdio},
};

use slipway_testsupport::*;

fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status line")?;
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
    Ok((code, body.to_string()))
}

struct Replica {
    child: Child,
    port: u16,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replica(m: &Mgmt) -> Replica {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["controller", "--leader-elect", "--data-dir"])
        .arg(&m.dir)
        .args(["--metrics-address", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", &m.kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Replica { child, port }
}

fn reconciles(port: u16) -> u64 {
    let (_, body) = http_get(port, "/metrics").unwrap();
    body.lines()
        .filter(|l| l.starts_with("controller_runtime_reconcile_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn one_leader_reconciles_and_a_standby_takes_over() {
    let m = Mgmt::start("leader", true);
    let a = replica(&m);
    let b = replica(&m);
    for r in [&a, &b] {
        eventually(20, "the operations endpoint answers", || {
            let (code, body) = http_get(r.port, "/healthz")?;
            let (ready, _) = http_get(r.port, "/readyz")?;
            (code == 200 && body == "ok" && ready == 200)
                .then_some(())
                .ok_or_else(|| format!("{code} {body} {ready}"))
        });
    }
    let holder = eventually(30, "a lease holder", || {
        let l = m.json(&["get", "lease", "-n", "kube-system", "slipway-controller"]);
        l["spec"]["holderIdentity"]
            .as_str()
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("{l}"))
    });
    let (leader, standby) = if holder.ends_with(&format!("-{}", a.child.id())) {
        (a, b)
    } else {
        assert!(holder.ends_with(&format!("-{}", b.child.id())), "{holder}");
        (b, a)
    };
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("one", 1, 0, "v1.31.0")),
    );
    wait_available(&m, "one", 120);
    assert!(reconciles(leader.port) > 0, "the leader reconciled");
    assert_eq!(reconciles(standby.port), 0, "the standby never reconciled");

    // The leader dies without releasing the Lease: the standby takes over once it expires.
    let standby_port = standby.port;
    drop(leader);
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("two", 1, 0, "v1.31.0")),
    );
    wait_available(&m, "two", 90);
    assert!(reconciles(standby_port) > 0, "the standby took over");
    // Rows, not just HELP lines: the new leader has probed the registered clusters.
    let metrics = eventually(40, "probe results in /metrics", || {
        let (_, m) = http_get(standby_port, "/metrics")?;
        m.contains("slipway_registry_probes_total{result=\"healthy\"}")
            .then_some(m.clone())
            .ok_or(m)
    });
    for family in [
        "controller_runtime_reconcile_total{controller=\"cluster\",result=\"success\"}",
        "controller_runtime_reconcile_errors_total{controller=\"cluster\"}",
        "controller_runtime_reconcile_time_seconds_bucket{le=\"+Inf\",controller=\"machine\"}",
        "workqueue_depth{controller=\"kubeadmcontrolplane\",name=\"kubeadmcontrolplane\"}",
        "rest_client_requests_total{code=\"200\",method=\"GET\"}",
        "capi_cluster_status_phase{namespace=\"default\",name=\"two\",phase=\"Provisioned\"} 1",
        "capi_machine_status_condition{",
        "process_resident_memory_bytes",
    ] {
        assert!(
            metrics.contains(family),
            "{family} missing from:\n{metrics}"
        );
    }

    // Graceful shutdown releases the Lease and exits cleanly.
    let mut standby = standby;
    let pid = standby.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = standby.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let l = m.json(&["get", "lease", "-n", "kube-system", "slipway-controller"]);
    assert!(
        l["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "released: {l}"
    );
}
