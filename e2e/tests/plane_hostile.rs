//! The embedded plane against a hostile-but-fair user (issue 15): dry runs that must not
//! delete, protected namespaces, private files, Secrets encrypted at rest with key rotation,
//! size limits, validation of built-in kinds and of every kind's metadata, immutability.
//! Driven through kubectl, curl (what kubectl cannot send) and kube-rs, in-process.

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use serde_json::{Value, json};
use slipway_apiserver::plane::{Options, Plane};
use slipway_testsupport::{local::Local, temp_dir};

fn ns_of(l: &Local) -> Api<Namespace> {
    Api::all(l.client.clone())
}

async fn secret(l: &Local, ns: &str, name: &str, value: &str) {
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"name": name}, "stringData": {"password": value}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(l.client.clone(), ns)
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_deletes_delete_nothing() {
    let l = Local::start("dry-run").await;
    l.kubectl_ok(&["create", "namespace", "t1"], None);
    for i in 0..3 {
        secret(&l, "t1", &format!("s{i}"), "x").await;
    }
    let secrets = Api::<Secret>::namespaced(l.client.clone(), "t1");
    let count = async || secrets.list(&Default::default()).await.unwrap().items.len();

    // kubectl sends dryRun in the DeleteOptions body.
    let out = l.kubectl_ok(&["delete", "ns", "t1", "--dry-run=server"], None);
    assert!(out.contains("server dry run"), "{out}");
    let ns = ns_of(&l).get("t1").await.unwrap();
    assert!(ns.metadata.deletion_timestamp.is_none());
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    l.kubectl_ok(
        &["delete", "secret", "--all", "-n", "t1", "--dry-run=server"],
        None,
    );
    l.kubectl_ok(
        &["delete", "secret", "s0", "-n", "t1", "--dry-run=server"],
        None,
    );
    assert_eq!(count().await, 3);

    // deletecollection and single delete with the body's dryRun, and the query's.
    let coll = "/api/v1/namespaces/t1/secrets";
    let a = l.curl("DELETE", coll, Some(br#"{"dryRun":["All"]}"#), &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let a = l.curl("DELETE", &format!("{coll}?dryRun=All"), None, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let a = l.curl(
        "DELETE",
        &format!("{coll}/s1"),
        Some(br#"{"dryRun":["All"]}"#),
        &[],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(count().await, 3);

    // Any other value is refused, and nothing is deleted.
    for (path, body) in [
        (format!("{coll}/s1"), Some(&br#"{"dryRun":["Bogus"]}"#[..])),
        (coll.to_string(), Some(&br#"{"dryRun":["All","x"]}"#[..])),
        (format!("{coll}?dryRun=Bogus"), None),
    ] {
        let a = l.curl("DELETE", &path, body, &[]);
        assert_eq!(a.status, 400, "{path}: {}", a.body);
        assert!(a.body.contains("dryRun"), "{}", a.body);
    }
    assert_eq!(count().await, 3);

    // A real delete still deletes.
    l.kubectl_ok(&["delete", "secret", "--all", "-n", "t1"], None);
    assert_eq!(count().await, 0);
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_namespaces_cannot_be_deleted() {
    let l = Local::start("protected").await;
    for ns in ["default", "kube-system", "kube-public"] {
        let err = l.kubectl_err(&["delete", "namespace", ns], None);
        assert!(
            err.contains(&format!(
                "namespaces \"{ns}\" is forbidden: this namespace may not be deleted"
            )),
            "{err}"
        );
        let e = ns_of(&l)
            .delete(ns, &DeleteParams::default())
            .await
            .unwrap_err();
        assert!(matches!(e, kube::Error::Api(ref s) if s.code == 403), "{e}");
        let still = ns_of(&l).get(ns).await.unwrap();
        assert!(still.metadata.deletion_timestamp.is_none(), "{ns}");
    }
    // deletecollection over all namespaces deletes none when a protected one is among them.
    l.kubectl_ok(&["create", "namespace", "other"], None);
    let a = l.curl("DELETE", "/api/v1/namespaces", None, &[]);
    assert_eq!(a.status, 403, "{}", a.body);
    let other = ns_of(&l).get("other").await.unwrap();
    assert!(other.metadata.deletion_timestamp.is_none());
    // Other namespaces still delete.
    l.kubectl_ok(&["delete", "namespace", "other", "--wait=false"], None);
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_database_are_private_even_when_made_readable_before() {
    let dir = temp_dir("private");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.join("state.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let l = Local::start_with(
        "private",
        Options {
            data_dir: Some(dir.clone()),
            ..Options::default()
        },
    )
    .await;
    secret(&l, "default", "s", "x").await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for f in [
        "state.db",
        "state.db-wal",
        "state.db-shm",
        "ca.key",
        "serving.key",
        "token",
        "kubeconfig",
    ] {
        let p = dir.join(f);
        assert!(p.exists(), "{f}");
        assert_eq!(mode(&p), 0o600, "{f}");
    }
    l.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn key_file(dir: &std::path::Path, name: &str, keys: &[(&str, u8)]) -> std::path::PathBuf {
    let mut yaml = String::from("keys:\n");
    for (n, b) in keys {
        let secret = base64::engine::general_purpose::STANDARD.encode([*b; 32]);
        yaml.push_str(&format!("- name: {n}\n  secret: {secret}\n"));
    }
    let p = dir.join(name);
    std::fs::write(&p, yaml).unwrap();
    p
}

/// Everything SQLite has on disk (the database and its WAL).
fn on_disk(dir: &std::path::Path) -> Vec<u8> {
    let mut all = std::fs::read(dir.join("state.db")).unwrap();
    all.extend(std::fs::read(dir.join("state.db-wal")).unwrap_or_default());
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_encrypted_at_rest_and_keys_rotate() {
    let dir = temp_dir("encrypt");
    let keys = temp_dir("encrypt-keys");
    let opts = |file: Option<std::path::PathBuf>| Options {
        data_dir: Some(dir.clone()),
        encryption_key_file: file,
        ..Options::default()
    };
    let plain = base64::engine::general_purpose::STANDARD.encode("before-encryption-value");
    let hidden = base64::engine::general_purpose::STANDARD.encode("hunter2-very-secret");

    // A Secret written before encryption is enabled is on disk as sent.
    let l = Local::start_with("encrypt", opts(None)).await;
    secret(&l, "default", "early", "before-encryption-value").await;
    l.stop().await;
    assert!(contains(&on_disk(&dir), &plain));

    // With k1: the early Secret is rewritten, new ones are written encrypted.
    let k1 = key_file(&keys, "k1.yaml", &[("k1", 1)]);
    let l = Local::start_with("encrypt", opts(Some(k1.clone()))).await;
    secret(&l, "default", "late", "hunter2-very-secret").await;
    let got = Api::<Secret>::namespaced(l.client.clone(), "default")
        .get("early")
        .await
        .unwrap();
    assert_eq!(got.data.unwrap()["password"].0, b"before-encryption-value");
    l.stop().await;
    let disk = on_disk(&dir);
    assert!(
        !contains(&disk, &plain),
        "the early Secret is still in plain text"
    );
    assert!(
        !contains(&disk, &hidden),
        "a Secret was written in plain text"
    );
    assert!(!contains(&disk, "hunter2-very-secret"));
    assert!(contains(&disk, "k8s:enc:aesgcm:v1:k1:"));

    // Without the key, or with another key of that name, the plane refuses to start.
    let e = Plane::start(opts(None))
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("\"k1\"") && e.contains("--encryption-key-file"),
        "{e}"
    );
    let wrong = key_file(&keys, "wrong.yaml", &[("k1", 9)]);
    let e = Plane::start(opts(Some(wrong)))
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("\"k1\"") && e.contains("does not decrypt"),
        "{e}"
    );
    assert!(!e.contains(&base64::engine::general_purpose::STANDARD.encode([9u8; 32])));

    // Rotation: k2 first, k1 still given; every Secret is rewritten with k2.
    let both = key_file(&keys, "both.yaml", &[("k2", 2), ("k1", 1)]);
    let l = Local::start_with("encrypt", opts(Some(both))).await;
    l.stop().await;
    let disk = on_disk(&dir);
    assert!(contains(&disk, "k8s:enc:aesgcm:v1:k2:"));
    assert!(
        !contains(&disk, "k8s:enc:aesgcm:v1:k1:"),
        "a Secret kept the old key"
    );

    // So k1 can go.
    let k2 = key_file(&keys, "k2.yaml", &[("k2", 2)]);
    let l = Local::start_with("encrypt", opts(Some(k2))).await;
    let out = l.kubectl_ok(
        &["get", "secret", "late", "-o", "jsonpath={.data.password}"],
        None,
    );
    assert_eq!(out, hidden);
    l.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_and_objects_are_refused() {
    let l = Local::start("sizes").await;
    let cm = |name: &str, size: usize| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
               "data": {"blob": "x".repeat(size)}})
    };
    // Bodies over 3 MiB: 413 before anything is parsed.
    let body = serde_json::to_vec(&cm("huge", 4 << 20)).unwrap();
    let a = l.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(&body),
        &[],
    );
    assert_eq!(a.status, 413, "{}", a.body);
    assert_eq!(a.json()["reason"], "RequestEntityTooLarge");
    assert!(a.body.contains("limit is 3145728"), "{}", a.body);

    // Objects over 1.5 MiB: refused as etcd's limit makes kube-apiserver refuse them.
    let api = Api::<ConfigMap>::namespaced(l.client.clone(), "default");
    let big: ConfigMap = serde_json::from_value(cm("big", 2 << 20)).unwrap();
    let e = api.create(&PostParams::default(), &big).await.unwrap_err();
    match e {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 413);
            assert!(s.message.contains("request is too large"), "{}", s.message);
        }
        other => panic!("{other}"),
    }
    assert!(api.get_opt("big").await.unwrap().is_none());

    // An object under the limit is stored; growing it past the limit is refused.
    let ok: ConfigMap = serde_json::from_value(cm("ok", 1 << 20)).unwrap();
    api.create(&PostParams::default(), &ok).await.unwrap();
    let grow = json!({"data": {"more": "y".repeat(700 << 10)}});
    let e = api
        .patch("ok", &Default::default(), &kube::api::Patch::Merge(&grow))
        .await
        .unwrap_err();
    assert!(matches!(e, kube::Error::Api(ref s) if s.code == 413), "{e}");
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_configmaps_and_secrets_and_secret_types() {
    let l = Local::start("immutable").await;
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"frozen"},"data":{"a":"1"},"immutable":true}"#;
    l.kubectl_ok(&["apply", "-f", "-"], Some(cm));
    let err = l.kubectl_err(
        &[
            "patch",
            "configmap",
            "frozen",
            "--type=merge",
            "-p",
            r#"{"data":{"a":"2"}}"#,
        ],
        None,
    );
    assert!(
        err.contains("data: Forbidden: field is immutable when `immutable` is set"),
        "{err}"
    );
    let err = l.kubectl_err(
        &[
            "patch",
            "configmap",
            "frozen",
            "--type=merge",
            "-p",
            r#"{"immutable":false}"#,
        ],
        None,
    );
    assert!(err.contains("immutable: Forbidden"), "{err}");
    // Metadata still changes.
    l.kubectl_ok(&["label", "configmap", "frozen", "team=a"], None);

    l.kubectl_ok(
        &["create", "secret", "generic", "s", "--from-literal=k=v"],
        None,
    );
    let err = l.kubectl_err(
        &[
            "patch",
            "secret",
            "s",
            "--type=merge",
            "-p",
            r#"{"type":"kubernetes.io/tls"}"#,
        ],
        None,
    );
    assert!(
        err.contains("type: Invalid value: \"kubernetes.io/tls\": field is immutable"),
        "{err}"
    );
    l.kubectl_ok(
        &[
            "patch",
            "secret",
            "s",
            "--type=merge",
            "-p",
            r#"{"immutable":true}"#,
        ],
        None,
    );
    let err = l.kubectl_err(
        &[
            "patch",
            "secret",
            "s",
            "--type=merge",
            "-p",
            r#"{"stringData":{"k":"w"}}"#,
        ],
        None,
    );
    assert!(
        err.contains("field is immutable when `immutable` is set"),
        "{err}"
    );
    let got: Value =
        serde_json::from_str(&l.kubectl_ok(&["get", "secret", "s", "-o", "json"], None)).unwrap();
    assert_eq!(
        got["data"]["k"],
        base64::engine::general_purpose::STANDARD.encode("v")
    );
    l.stop().await;
}
