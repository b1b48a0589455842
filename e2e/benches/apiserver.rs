//! Embedded API server benchmark. Prints figures; asserts nothing.
//!
//! `cargo bench -p slipway-e2e --bench apiserver` measures, over HTTPS with kube-rs clients
//! against a SQLite-backed plane: creates/s and updates/s with 1 and 8 concurrent clients, LIST
//! latency at 10,000 objects, watch event latency p50/p99 with 10 watchers; then the resident
//! memory the store adds for 100,000 small objects (written in-process, without HTTP); and the
//! cost of authorization: GETs/s as the admin (`system:masters`, no RBAC walk) against GETs/s
//! with a ServiceAccount token (JWT verified, RBAC bindings walked).
//! Targets (2 cores): >= 2,000 writes/s, LIST of 10,000 <= 200 ms, watch p99 <= 20 ms,
//! RSS <= 300 MiB at 100,000 objects. Set SLIPWAY_BENCH_SCALE=0.1 for a quick run.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures::{StreamExt, future::join_all};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use slipway_apiserver::{
    api::{Api as ServerApi, Call},
    request::{Query, Target},
    store::Store,
};
use slipway_testsupport::{client, plane_with};

fn scale() -> f64 {
    std::env::var("SLIPWAY_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

fn n(base: usize) -> usize {
    ((base as f64 * scale()) as usize).max(10)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"bench": "yes"}}, "data": {"key": "value"}}),
    )
    .unwrap()
}

async fn writes(
    api: &Api<ConfigMap>,
    clients: usize,
    total: usize,
    prefix: &str,
    update: bool,
) -> f64 {
    let per = total / clients;
    let start = Instant::now();
    join_all((0..clients).map(|c| {
        let api = api.clone();
        let prefix = prefix.to_string();
        async move {
            for i in 0..per {
                let name = format!("{prefix}-{c}-{i}");
                if update {
                    let patch = json!({"data": {"key": format!("v{i}")}});
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .unwrap();
                } else {
                    api.create(&PostParams::default(), &cm(&name))
                        .await
                        .unwrap();
                }
            }
        }
    }))
    .await;
    (per * clients) as f64 / start.elapsed().as_secs_f64()
}

async fn gets(api: &Api<ConfigMap>, clients: usize, total: usize, name: &str) -> f64 {
    let per = total / clients;
    let start = Instant::now();
    join_all((0..clients).map(|_| async {
        for _ in 0..per {
            api.get(name).await.unwrap();
        }
    }))
    .await;
    (per * clients) as f64 / start.elapsed().as_secs_f64()
}

/// GETs/s (8 clients) as the admin and as a ServiceAccount bound to `view` in `default`.
async fn rbac_gets(
    plane: &slipway_apiserver::plane::Plane,
    admin: &Api<ConfigMap>,
    total: usize,
) -> (f64, f64) {
    use k8s_openapi::api::{
        authentication::v1::TokenRequest, core::v1::ServiceAccount, rbac::v1::RoleBinding,
    };
    let c = client(plane).await;
    let sas: Api<ServiceAccount> = Api::namespaced(c.clone(), "default");
    let sa = serde_json::from_value(json!({"metadata": {"name": "bench"}})).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let rb: RoleBinding = serde_json::from_value(json!({"metadata": {"name": "bench-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "bench", "namespace": "default"}]}))
    .unwrap();
    Api::<RoleBinding>::namespaced(c, "default")
        .create(&PostParams::default(), &rb)
        .await
        .unwrap();
    let tr = sas
        .create_token_request("bench", &PostParams::default(), &TokenRequest::default())
        .await
        .unwrap();
    let token = tr.status.unwrap().token;
    let kc: Vec<String> = plane
        .kubeconfig
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("token: ") {
                format!("    token: {token}")
            } else {
                l.to_string()
            }
        })
        .collect();
    let kc = kube::config::Kubeconfig::from_yaml(&kc.join("\n")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let sa_api: Api<ConfigMap> =
        Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    let name = "one-0-0";
    // `view` is filled by the plane's aggregation controller an instant after start.
    for _ in 0..100 {
        if sa_api.get(name).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (
        gets(admin, 8, total, name).await,
        gets(&sa_api, 8, total, name).await,
    )
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = std::env::temp_dir().join(format!("slipway-bench-{}", std::process::id()));
    let plane = plane_with(Some(dir.clone()), 0, vec![]).await;
    let api: Api<ConfigMap> = Api::namespaced(client(&plane).await, "default");
    println!(
        "slipway apiserver benchmark (SQLite, HTTPS, kube-rs clients; scale {})",
        scale()
    );

    let w = n(2000);
    let c1 = writes(&api, 1, w, "one", false).await;
    let c8 = writes(&api, 8, w, "eight", false).await;
    let u1 = writes(&api, 1, w, "one", true).await;
    let u8 = writes(&api, 8, w, "eight", true).await;
    println!("creates/s: 1 client {c1:.0}, 8 clients {c8:.0}");
    println!("updates/s: 1 client {u1:.0}, 8 clients {u8:.0}");

    // Fill to 10,000 and time LISTs.
    let have = 2 * w;
    let fill = n(10_000).saturating_sub(have);
    writes(&api, 8, fill.max(8), "fill", false).await;
    let total = api.list(&ListParams::default()).await.unwrap().items.len();
    let mut list_ms: Vec<f64> = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let l = api.list(&ListParams::default()).await.unwrap();
        list_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(l.items.len(), total);
    }
    list_ms.sort_by(f64::total_cmp);
    println!(
        "LIST of {total} objects: median {:.1} ms (min {:.1}, max {:.1})",
        pct(&list_ms, 0.5),
        list_ms[0],
        list_ms[list_ms.len() - 1]
    );

    // Watch latency: 10 watchers, each event stamped with its send time.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<f64>();
    let mut watchers = Vec::new();
    for _ in 0..10 {
        let (api, tx) = (api.clone(), tx.clone());
        watchers.push(tokio::spawn(async move {
            let cfg = watcher::Config::default().labels("latency=yes");
            let mut s = watcher(api, cfg).applied_objects().boxed();
            while let Some(Ok(obj)) = s.next().await {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as f64;
                if let Some(sent) = obj
                    .data
                    .as_ref()
                    .and_then(|d| d.get("sent"))
                    .and_then(|s| s.parse::<f64>().ok())
                {
                    let _ = tx.send((now - sent) / 1e6);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = n(300);
    for i in 0..events {
        let sent = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let obj: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("lat-{i}"), "labels": {"latency": "yes"}}, "data": {"sent": sent.to_string()}})).unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut lat = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while lat.len() < events * 10 && Instant::now() < deadline {
        if let Ok(Some(v)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            lat.push(v);
        }
    }
    watchers.iter().for_each(|w| w.abort());
    lat.sort_by(f64::total_cmp);
    println!(
        "watch latency, 10 watchers, {} events received of {}: p50 {:.2} ms, p99 {:.2} ms",
        lat.len(),
        events * 10,
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    let (admin_gets, sa_gets) = rbac_gets(&plane, &api, n(4000)).await;
    println!(
        "GETs/s, 8 clients: admin (system:masters) {admin_gets:.0}, ServiceAccount token under RBAC {sa_gets:.0}"
    );
    plane.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);

    // Memory: 100,000 small objects written in-process.
    let before = rss_mib();
    let server = Arc::new(ServerApi::new(Arc::new(Store::in_memory())));
    let target = Target {
        group: String::new(),
        version: "v1".into(),
        namespace: Some("default".into()),
        plural: "configmaps".into(),
        name: None,
        sub: None,
    };
    let query = Query::default();
    let ns_target = Target {
        namespace: None,
        plural: "namespaces".into(),
        ..target.clone()
    };
    let ns_call = Call {
        res: server.catalog.find("", "v1", "namespaces").unwrap(),
        target: &ns_target,
        query: &query,
        default_manager: "bench".into(),
    };
    server
        .create(&ns_call, json!({"metadata": {"name": "default"}}))
        .unwrap();
    let call = Call {
        res: server.catalog.find("", "v1", "configmaps").unwrap(),
        target: &target,
        query: &query,
        default_manager: "bench".into(),
    };
    let count = n(100_000);
    let t = Instant::now();
    for i in 0..count {
        server.create(&call, json!({"metadata": {"name": format!("obj-{i}"), "labels": {"bench": "yes"}}, "data": {"key": "value"}})).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let after = rss_mib();
    println!(
        "in-process writes (no HTTP, no SQLite): {:.0}/s; RSS with {count} objects: {after:.0} MiB (+{:.0} MiB over {before:.0} MiB)",
        count as f64 / secs,
        after - before
    );
    println!(
        "{}",
        json!({"creates_per_s_1": c1.round(), "creates_per_s_8": c8.round(), "updates_per_s_1": u1.round(), "updates_per_s_8": u8.round(),
               "list_objects": total, "list_ms_median": (pct(&list_ms, 0.5) * 10.0).round() / 10.0,
               "watch_p50_ms": (pct(&lat, 0.5) * 100.0).round() / 100.0, "watch_p99_ms": (pct(&lat, 0.99) * 100.0).round() / 100.0,
               "rss_objects": count, "rss_mib": after.round(),
               "gets_per_s_admin": admin_gets.round(), "gets_per_s_service_account": sa_gets.round()})
    );
}
