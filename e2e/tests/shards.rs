//! Sharded controllers end to end: two `slipway controller --watch-filter` processes against
//! one `slipway up --no-controller` plane split 20 in-memory clusters by their
//! `cluster.x-k8s.io/watch-filter` label. Each shard reports (in its own `/metrics`) exactly its
//! clusters and their machines, so no cluster is reconciled by both; each shard holds its own
//! Lease; a cluster without the label is reconciled by neither.
//! Needs `kubectl` on PATH (`.ci/run` installs it).

use std::{
    collections::BTreeSet,
    process::{Child, Command, Stdio},
};

use slipway_testsupport::*;

fn shard(m: &Mgmt, filter: &str, metrics_port: u16) -> Child {
    let log = std::fs::File::create(m.dir.join(format!("controller-{filter}.log"))).unwrap();
    Command::new(slipway_bin())
        .args(["controller", "--data-dir"])
        .arg(&m.dir)
        .args(["--watch-filter", filter, "--leader-elect"])
        .args(["--metrics-address", &format!("127.0.0.1:{metrics_port}")])
        .env("KUBECONFIG", &m.kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Names in the `capi_<kind>_status_phase` series of a shard's /metrics.
fn reported(port: u16, kind: &str) -> BTreeSet<String> {
    let body = http_get(port, "/metrics");
    let prefix = format!("capi_{kind}_status_phase{{");
    body.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| l.split("name=\"").nth(1))
        .filter_map(|l| l.split('"').next())
        .map(str::to_string)
        .collect()
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn two_shards_split_twenty_clusters_without_overlap() {
    let m = Mgmt::start("shards", true);
    let ports = [free_port(), free_port()];
    let mut shards = [
        shard(&m, "shard-a", ports[0]),
        shard(&m, "shard-b", ports[1]),
    ];
    let mut names = [Vec::new(), Vec::new()];
    for i in 0..20 {
        let (s, filter) = if i % 2 == 0 {
            (0, "shard-a")
        } else {
            (1, "shard-b")
        };
        let name = format!("s{i}");
        let manifests = generate(&name, 1, 1, "v1.31.0");
        m.ok(&["apply", "-f", "-"], Some(&manifests));
        // Every object of the cluster carries the label (upstream's rule); what the
        // controllers create from them inherits it.
        m.ok(
            &[
                "label",
                "-f",
                "-",
                &format!("cluster.x-k8s.io/watch-filter={filter}"),
            ],
            Some(&manifests),
        );
        names[s].push(name);
    }
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("nobody", 1, 0, "v1.31.0")),
    );
    for n in names.iter().flatten() {
        wait_available(&m, n, 150);
    }
    for (s, port) in ports.iter().enumerate() {
        let want: BTreeSet<String> = names[s].iter().cloned().collect();
        eventually(30, "each shard reports its own clusters", || {
            let got = reported(*port, "cluster");
            (got == want)
                .then_some(())
                .ok_or_else(|| format!("{got:?} != {want:?}"))
        });
        // Its machines (and so what it made from templates) are its clusters' only.
        let machines = reported(*port, "machine");
        assert_eq!(machines.len(), 2 * want.len(), "{machines:?}");
        for mname in &machines {
            let mach = m.json(&["get", "machine", mname]);
            let cluster = mach["spec"]["clusterName"].as_str().unwrap().to_string();
            assert!(
                want.contains(&cluster),
                "{mname} of {cluster} in the wrong shard"
            );
            let filter = ["shard-a", "shard-b"][s];
            assert_eq!(
                mach["metadata"]["labels"]["cluster.x-k8s.io/watch-filter"], filter,
                "created Machines inherit the label"
            );
        }
    }
    // The control plane's Secrets inherit the label too, so a shard's secondary Secret watch
    // (filtered by it) lists its own clusters' Secrets and not the whole kind.
    for (s, filter) in ["shard-a", "shard-b"].iter().enumerate() {
        for n in &names[s] {
            let sec = m.json(&["get", "secret", &format!("{n}-ca")]);
            assert_eq!(
                sec["metadata"]["labels"]["cluster.x-k8s.io/watch-filter"], *filter,
                "{n}-ca"
            );
        }
    }
    let all = m.items(&["get", "secrets"]).len();
    let own = m
        .items(&[
            "get",
            "secrets",
            "-l",
            "cluster.x-k8s.io/watch-filter=shard-a",
        ])
        .len();
    println!("Secrets: {all} in the plane, {own} listed by shard-a's filtered watch");
    assert!(own * 2 < all, "{own} of {all}");

    // One Lease per shard.
    for f in ["shard-a", "shard-b"] {
        m.ok(
            &[
                "get",
                "lease",
                "-n",
                "kube-system",
                &format!("slipway-controller-{f}"),
            ],
            None,
        );
    }
    // The unlabelled cluster is nobody's: no finalizer, no status.
    let c = m.json(&["get", "cluster", "nobody"]);
    assert!(c["metadata"]["finalizers"].is_null(), "{c:#}");
    assert!(c["status"]["conditions"].is_null(), "{c:#}");
    for s in &mut shards {
        let _ = s.kill();
        let _ = s.wait();
    }
}
