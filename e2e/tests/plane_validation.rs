//! Validation on the embedded plane (issue 15): built-in kinds against their Kubernetes
//! schemas with `fieldValidation` Strict, Warn and Ignore as for custom resources, duplicate
//! JSON keys, and the metadata rules of every kind (built-in and custom). Through kubectl,
//! curl and kube-rs, in-process.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams},
};
use serde_json::{Value, json};
use slipway_testsupport::local::Local;

const CM: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_kinds_are_validated_against_their_schemas() {
    let l = Local::start("builtin-validation").await;
    // A number where a string belongs: refused, so typed clients never meet it.
    let bad =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bad"},"data":{"port":8080}}"#;
    let err = l.kubectl_err(&["apply", "-f", "-"], Some(bad));
    assert!(err.contains("is invalid") && err.contains("port"), "{err}");
    let a = l.curl("POST", CM, Some(bad.as_bytes()), &[]);
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.json()["reason"], "Invalid");
    let api = Api::<ConfigMap>::namespaced(l.client.clone(), "default");
    assert!(api.get_opt("bad").await.unwrap().is_none());
    // Typed clients can list the namespace.
    api.list(&ListParams::default()).await.unwrap();

    // Other kinds too.
    let sa = r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"sa"},"automountServiceAccountToken":"yes"}"#;
    let a = l.curl(
        "POST",
        "/api/v1/namespaces/default/serviceaccounts",
        Some(sa.as_bytes()),
        &[],
    );
    assert_eq!(a.status, 422, "{}", a.body);
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": "three", "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let a = l.curl(
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        Some(dep.to_string().as_bytes()),
        &[],
    );
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("spec.replicas"), "{}", a.body);
    // What kubectl itself generates is accepted (creationTimestamp: null and all).
    let manifest = l.kubectl_ok(
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        None,
    );
    l.kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_follow_field_validation() {
    let l = Local::start("field-validation").await;
    let cm = |name: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
               "data": {"a": "b"}, "spec": {"x": 1}})
        .to_string()
    };
    // kubectl's default is Strict.
    let err = l.kubectl_err(&["apply", "-f", "-"], Some(&cm("strict")));
    assert!(
        err.contains("strict decoding error: unknown field \"spec\""),
        "{err}"
    );
    let a = l.curl(
        "POST",
        &format!("{CM}?fieldValidation=Strict"),
        Some(cm("strict").as_bytes()),
        &[],
    );
    assert_eq!(a.status, 400, "{}", a.body);

    // Warn (the server's default): stored without the field, one Warning header each.
    let out = l.kubectl(
        &["apply", "--validate=warn", "-f", "-"],
        Some(&cm("warned")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("unknown field \"spec\""), "{stderr}");
    let a = l.curl("POST", CM, Some(cm("warned2").as_bytes()), &[]);
    assert_eq!(a.status, 201, "{}", a.body);
    assert!(
        a.headers.contains("299 - \"unknown field \\\"spec\\\"\""),
        "{}",
        a.headers
    );
    assert!(a.json().get("spec").is_none());

    // Ignore: stored without the field, silently.
    let a = l.curl(
        "POST",
        &format!("{CM}?fieldValidation=Ignore"),
        Some(cm("ignored").as_bytes()),
        &[],
    );
    assert_eq!(a.status, 201, "{}", a.body);
    assert!(
        !a.headers.to_lowercase().contains("warning"),
        "{}",
        a.headers
    );
    l.kubectl_ok(
        &["apply", "--validate=false", "-f", "-"],
        Some(&cm("ignored2")),
    );
    let got: Value =
        serde_json::from_str(&l.kubectl_ok(&["get", "cm", "ignored2", "-o", "json"], None))
            .unwrap();
    assert!(
        got.get("spec").is_none() && got["data"]["a"] == "b",
        "{got}"
    );

    // An unknown mode is refused.
    let a = l.curl(
        "POST",
        &format!("{CM}?fieldValidation=Loose"),
        Some(cm("x").as_bytes()),
        &[],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("fieldValidation"), "{}", a.body);
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_are_reported() {
    let l = Local::start("duplicates").await;
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"a":"1","a":"2"}}"#;
    let a = l.curl(
        "POST",
        &format!("{CM}?fieldValidation=Strict"),
        Some(body),
        &[],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.body.contains(r#"duplicate field \"data.a\""#),
        "{}",
        a.body
    );
    let a = l.curl("POST", CM, Some(body), &[]);
    assert_eq!(a.status, 201, "{}", a.body);
    assert!(
        a.headers.contains(r#"299 - "duplicate field \"data.a\"""#),
        "{}",
        a.headers
    );
    assert_eq!(
        a.json()["data"]["a"],
        "2",
        "the last value wins, as upstream"
    );
    l.stop().await;
}

fn widget_crd() -> String {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_rules_hold_on_every_kind() {
    let l = Local::start("metadata-rules").await;
    l.kubectl_ok(&["apply", "-f", "-"], Some(&widget_crd()));
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(l.client.clone(), "default", &ar);
    let cms = Api::<ConfigMap>::namespaced(l.client.clone(), "default");

    let cases = [
        (
            json!({"labels": {"has space": "v"}}),
            "metadata.labels: Invalid value: \"has space\"",
        ),
        (
            json!({"labels": {"ok": "-k"}}),
            "metadata.labels: Invalid value: \"-k\"",
        ),
        (
            json!({"annotations": {"-k": "v"}}),
            "metadata.annotations: Invalid value: \"-k\"",
        ),
        (
            json!({"finalizers": ["bad finalizer"]}),
            "metadata.finalizers[0]: Invalid value: \"bad finalizer\"",
        ),
    ];
    for (i, (meta, want)) in cases.iter().enumerate() {
        let mut m = meta.clone();
        m["name"] = json!(format!("x{i}"));
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": m})).unwrap();
        let e = cms.create(&PostParams::default(), &cm).await.unwrap_err();
        match e {
            kube::Error::Api(s) => {
                assert_eq!(s.code, 422, "{}", s.message);
                assert!(s.message.contains(want), "{} lacks {want}", s.message);
            }
            other => panic!("{other}"),
        }
        let w: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": m, "spec": {"size": 1}})).unwrap();
        let e = widgets
            .create(&PostParams::default(), &w)
            .await
            .unwrap_err();
        assert!(
            matches!(e, kube::Error::Api(ref s) if s.code == 422 && s.message.contains(want)),
            "{e}"
        );
    }
    // A bad label patched onto an existing object (kubectl label checks it client-side).
    l.kubectl_ok(&["create", "configmap", "good", "--from-literal=k=v"], None);
    let err = l.kubectl_err(
        &[
            "patch",
            "configmap",
            "good",
            "-p",
            r#"{"metadata":{"labels":{"team":"-bad"}}}"#,
        ],
        None,
    );
    assert!(err.contains("Invalid value: \"-bad\""), "{err}");
    // Valid metadata is stored.
    let ok = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "labels": {"example.com/team": "a_b.c"}, "annotations": {"Example.com/Note": "x"}, "finalizers": ["example.com/f"]},
        "spec": {"size": 1}});
    l.kubectl_ok(&["apply", "-f", "-"], Some(&ok.to_string()));
    l.kubectl_ok(
        &[
            "patch",
            "widget",
            "w",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
        None,
    );
    // Custom resources follow the same fieldValidation modes: Warn by default.
    let w2 = br#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w2"},"spec":{"size":1,"color":"red"}}"#;
    let path = "/apis/example.com/v1/namespaces/default/widgets";
    let a = l.curl("POST", path, Some(w2), &[]);
    assert_eq!(a.status, 201, "{}", a.body);
    assert!(
        a.headers
            .contains(r#"299 - "unknown field \"spec.color\"""#),
        "{}",
        a.headers
    );
    assert!(a.json()["spec"].get("color").is_none());
    let a = l.curl(
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        Some(w2),
        &[],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    l.stop().await;
}
