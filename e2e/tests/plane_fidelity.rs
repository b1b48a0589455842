//! API fidelity of the embedded plane that tools rely on (issue 15): kubectl's typed creates
//! without -n, watch errors as kube-apiserver sends them (and a kube-rs watcher recovering
//! from one), garbage parameters, apiVersion checks, escaped paths, HEAD over HTTP/1.1 and
//! HTTP/2, field selectors of Events, Secrets and Namespaces, generation only on kinds with a
//! spec, and `/openapi/v2`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Api,
    api::PostParams,
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};
use slipway_testsupport::local::{Local, ShortHistory};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_typed_creates_without_a_namespace_use_the_urls() {
    let l = Local::start("typed-create").await;
    l.kubectl_ok(&["create", "configmap", "c1", "--from-literal=a=b"], None);
    l.kubectl_ok(
        &["create", "secret", "generic", "s1", "--from-literal=a=b"],
        None,
    );
    l.kubectl_ok(&["create", "serviceaccount", "sa1"], None);
    for kind in ["configmap/c1", "secret/s1", "serviceaccount/sa1"] {
        let ns = l.kubectl_ok(&["get", kind, "-o", "jsonpath={.metadata.namespace}"], None);
        assert_eq!(ns, "default", "{kind}");
    }
    // A body naming another namespace than the URL is still refused.
    let a = l.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(br#"{"metadata":{"name":"x","namespace":"kube-system"}}"#),
        &[],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_from_old_or_future_versions_fail_as_kube_apiserver_does() {
    let s = ShortHistory::start("watch-rv", 5).await;
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), "default");
    for i in 0..10 {
        let sec: Secret =
            serde_json::from_value(json!({"metadata": {"name": format!("s{i}")}})).unwrap();
        secrets.create(&PostParams::default(), &sec).await.unwrap();
    }
    // Too old: 200, then one ERROR event with a 410 Status, then the end of the stream.
    let a = s.access.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1",
        None,
        &[],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let event: Value = serde_json::from_str(a.body.trim()).unwrap();
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
    assert!(
        event["object"]["message"]
            .as_str()
            .unwrap()
            .contains("too old resource version")
    );

    // From the future: refused at once rather than hanging.
    let started = Instant::now();
    let a = s.access.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=999999",
        None,
        &[],
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(a.status, 504, "{}", a.body);
    assert!(
        a.body.contains("Too large resource version: 999999"),
        "{}",
        a.body
    );
    let a = s.access.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps?resourceVersion=999999",
        None,
        &[],
    );
    assert_eq!(a.status, 504, "{}", a.body);
    s.server.shutdown().await;
}

/// Waits for the watcher to report what `want` accepts, keeping what it saw for the message.
async fn next(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: &mut Vec<String>,
    want: impl Fn(&str) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("watcher stalled; saw {seen:?}"))
            .expect("the watcher task runs");
        seen.push(got.clone());
        if want(&got) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kube_rs_watcher_relists_after_its_version_expires() {
    let s = ShortHistory::start("relist", 5).await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), "default");
    let cm = |n: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": n}})).unwrap()
    };
    cms.create(&PostParams::default(), &cm("before"))
        .await
        .unwrap();

    // Server-side timeout of 1 s: the watcher re-watches from its last version every second.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = watcher(cms.clone(), watcher::Config::default().timeout(1)).default_backoff();
    let task = tokio::spawn(async move {
        let mut stream = stream.boxed();
        while let Some(ev) = stream.next().await {
            let what = match ev {
                Ok(watcher::Event::InitDone) => "init-done".to_string(),
                Ok(watcher::Event::Apply(c) | watcher::Event::InitApply(c)) => {
                    format!("apply:{}", c.metadata.name.unwrap_or_default())
                }
                Ok(_) => continue,
                Err(e) => format!("error:{e}"),
            };
            let _ = tx.send(what);
        }
    });
    let mut seen = Vec::new();
    next(&mut rx, &mut seen, |e| e == "init-done").await;
    // Other writes push the history past the watcher's version while it reconnects.
    for i in 0..20 {
        let sec: Secret =
            serde_json::from_value(json!({"metadata": {"name": format!("s{i}")}})).unwrap();
        secrets.create(&PostParams::default(), &sec).await.unwrap();
    }
    // It is told its version expired, lists again, and goes on watching.
    next(&mut rx, &mut seen, |e| {
        e.starts_with("error:") && (e.contains("410") || e.contains("too old"))
    })
    .await;
    next(&mut rx, &mut seen, |e| e == "init-done").await;
    cms.create(&PostParams::default(), &cm("after"))
        .await
        .unwrap();
    next(&mut rx, &mut seen, |e| e == "apply:after").await;
    task.abort();
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_parameters_and_mismatched_bodies_are_bad_requests() {
    let l = Local::start("garbage").await;
    for q in [
        "labelSelector=a%3D%3D%3Db",
        "limit=abc",
        "resourceVersion=garbage",
        "timeoutSeconds=abc",
        "fieldSelector=spec.x%3D1",
        "watch=1&timeoutSeconds=abc",
    ] {
        let a = l.curl(
            "GET",
            &format!("/api/v1/namespaces/default/configmaps?{q}"),
            None,
            &[],
        );
        assert_eq!(a.status, 400, "{q}: {}", a.body);
        assert_eq!(a.json()["reason"], "BadRequest", "{q}");
    }
    let err = l.kubectl_err(&["get", "configmaps", "-l", "a===b"], None);
    assert!(
        err.contains("BadRequest") || err.contains("unable to parse"),
        "{err}"
    );

    let a = l.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(br#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}"#),
        &[],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.body
            .contains("does not match the expected API version (v1)"),
        "{}",
        a.body
    );
    let a = l.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#),
        &[],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_paths_and_head_over_http1_and_http2() {
    let l = Local::start("paths").await;
    l.kubectl_ok(
        &["create", "configmap", "a-b.c", "--from-literal=k=v"],
        None,
    );
    let a = l.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps/a%2Db%2Ec",
        None,
        &[],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["metadata"]["name"], "a-b.c");
    let a = l.curl("GET", "/api/v1/namespaces/%64efault/configmaps", None, &[]);
    assert_eq!(a.status, 200, "{}", a.body);

    for (proto, want) in [("--http1.1", "HTTP/1.1 200"), ("--http2", "HTTP/2 200")] {
        let a = l.curl(
            "HEAD",
            "/api/v1/namespaces/default/configmaps/a-b.c",
            None,
            &[proto],
        );
        assert_eq!(a.status, 200, "{proto}: {}", a.headers);
        assert!(a.headers.starts_with(want), "{proto}: {}", a.headers);
        // The GET's length is announced; with -I curl writes only the headers.
        assert!(
            a.headers.to_lowercase().contains("content-length: "),
            "{proto}: {}",
            a.headers
        );
        assert!(
            !a.body.contains("\"kind\""),
            "{proto}: a body was sent: {}",
            a.body
        );
        let a = l.curl(
            "HEAD",
            "/api/v1/namespaces/default/configmaps/missing",
            None,
            &[proto],
        );
        assert_eq!(a.status, 404, "{proto}");
    }
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selectors_of_events_secrets_and_namespaces() {
    let l = Local::start("field-selectors").await;
    l.kubectl_ok(
        &["create", "configmap", "target", "--from-literal=k=v"],
        None,
    );
    let uid = l.kubectl_ok(
        &[
            "get",
            "configmap",
            "target",
            "-o",
            "jsonpath={.metadata.uid}",
        ],
        None,
    );
    let event = |name: &str, obj: &str, reason: &str, type_: &str| {
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
            "involvedObject": {"kind": "ConfigMap", "name": obj, "namespace": "default", "uid": if obj == "target" { uid.clone() } else { "u2".into() }, "apiVersion": "v1"},
            "reason": reason, "type": type_, "message": format!("{reason} on {obj}"),
            "firstTimestamp": "2026-12-01T00:00:00Z", "lastTimestamp": "2026-12-01T00:00:00Z", "count": 1,
            "source": {"component": "test"}})
    };
    for e in [
        event("e1", "target", "Failed", "Warning"),
        event("e2", "target", "Started", "Normal"),
        event("e3", "other", "Failed", "Warning"),
    ] {
        l.kubectl_ok(&["create", "-f", "-"], Some(&e.to_string()));
    }
    let names = |sel: &str| {
        l.kubectl_ok(
            &[
                "get",
                "events",
                "--field-selector",
                sel,
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ],
            None,
        )
    };
    assert_eq!(names("involvedObject.name=target"), "e1 e2");
    assert_eq!(
        names("involvedObject.kind=ConfigMap,reason=Failed"),
        "e1 e3"
    );
    assert_eq!(names(&format!("involvedObject.uid={uid}")), "e1 e2");
    assert_eq!(
        names("type=Warning,involvedObject.namespace=default"),
        "e1 e3"
    );
    assert_eq!(names("type!=Warning"), "e2");
    let out = l.kubectl_ok(&["events", "--for", "configmap/target"], None);
    assert!(
        out.contains("Failed on target") && !out.contains("on other"),
        "{out}"
    );
    let out = l.kubectl_ok(&["describe", "configmap", "target"], None);
    assert!(out.contains("Started on target"), "{out}");

    l.kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "opaque",
            "--from-literal=k=v",
        ],
        None,
    );
    l.kubectl_ok(
        &[
            "create",
            "secret",
            "docker-registry",
            "reg",
            "--docker-server=r",
            "--docker-username=u",
            "--docker-password=p",
        ],
        None,
    );
    let out = l.kubectl_ok(
        &[
            "get",
            "secrets",
            "--field-selector",
            "type=Opaque",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
        None,
    );
    assert_eq!(out, "opaque");
    let out = l.kubectl_ok(
        &[
            "get",
            "ns",
            "--field-selector",
            "status.phase=Active",
            "-o",
            "name",
        ],
        None,
    );
    assert!(
        out.contains("namespace/default") && out.contains("namespace/kube-system"),
        "{out}"
    );
    let out = l.kubectl_ok(
        &[
            "get",
            "ns",
            "--field-selector",
            "status.phase=Terminating",
            "-o",
            "name",
        ],
        None,
    );
    assert!(out.trim().is_empty(), "{out}");
    let err = l.kubectl_err(&["get", "configmaps", "--field-selector", "reason=x"], None);
    assert!(err.contains("field label not supported: reason"), "{err}");
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_only_on_kinds_with_a_spec_and_no_empty_generate_name() {
    let l = Local::start("generation").await;
    l.kubectl_ok(&["create", "configmap", "c", "--from-literal=k=v"], None);
    l.kubectl_ok(
        &["create", "secret", "generic", "s", "--from-literal=k=v"],
        None,
    );
    l.kubectl_ok(&["create", "serviceaccount", "sa"], None);
    l.kubectl_ok(&["create", "namespace", "n"], None);
    // kubectl's typed `create deployment` sends protobuf, which only some kinds decode here.
    let manifest = l.kubectl_ok(
        &[
            "create",
            "deployment",
            "d",
            "--image=nginx",
            "--dry-run=client",
            "-o",
            "json",
        ],
        None,
    );
    l.kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
    for kind in [
        "configmap/c",
        "secret/s",
        "serviceaccount/sa",
        "namespace/n",
    ] {
        let got: Value =
            serde_json::from_str(&l.kubectl_ok(&["get", kind, "-o", "json"], None)).unwrap();
        assert!(
            got["metadata"].get("generation").is_none(),
            "{kind}: {}",
            got["metadata"]
        );
        assert!(got["metadata"].get("generateName").is_none(), "{kind}");
    }
    let gen_of = || {
        l.kubectl_ok(
            &[
                "get",
                "deployment",
                "d",
                "-o",
                "jsonpath={.metadata.generation}",
            ],
            None,
        )
    };
    assert_eq!(gen_of(), "1");
    l.kubectl_ok(
        &[
            "patch",
            "deployment",
            "d",
            "-p",
            r#"{"spec":{"replicas":3}}"#,
        ],
        None,
    );
    assert_eq!(gen_of(), "2");

    let a = l.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(br#"{"metadata":{"name":"named","generateName":""}}"#),
        &[],
    );
    assert_eq!(a.status, 201, "{}", a.body);
    assert!(
        a.json()["metadata"].get("generateName").is_none(),
        "{}",
        a.body
    );
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_v2_is_served_as_protobuf_and_json() {
    let l = Local::start("openapi-v2").await;
    let a = l.curl("GET", "/openapi/v2", None, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["swagger"], "2.0");
    let a = l.curl(
        "GET",
        "/openapi/v2",
        None,
        &[
            "-H",
            "Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        ],
    );
    assert_eq!(a.status, 200);
    assert!(
        a.headers.to_lowercase().contains("protobuf"),
        "{}",
        a.headers
    );
    // swagger = "2.0" is field 1 of openapi_v2.Document.
    assert!(a.body.starts_with("\n\u{3}2.0\u{12}"), "{:?}", a.body);
    // kubectl reading the cluster's schemas reports the real problem of a bad request, not a
    // failure to download them.
    let err = l.kubectl_err(&["explain", "configmaps.nosuchfield"], None);
    assert!(!err.contains("failed to download openapi"), "{err}");
    l.stop().await;
}
