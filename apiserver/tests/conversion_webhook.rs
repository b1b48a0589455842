//! The plane calls the conversion webhook of a CRD that is not slipway's own: a tiny HTTPS
//! ConversionReview server in the test converts `example.test` Gadgets between v1
//! (`spec.size`) and v2 (`spec.dimensions.size`, storage); reads, lists, watch events and
//! writes at both versions go through it, and a failing webhook is a 500 naming the object
//! and the webhook's message.

use std::{sync::Arc, time::Duration};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use slipway_apiserver::{
    api::{Api, Call},
    request::{Query, Target},
    store::Store,
    watch,
};

/// v1 <-> v2 of a Gadget; an object named `bad` fails.
fn convert_one(obj: &Value, desired: &str) -> Result<Value, String> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    if name == "bad" {
        return Err(format!("gadget {name} cannot be converted"));
    }
    let mut out = obj.clone();
    match desired {
        "example.test/v2" => {
            if let Some(size) = out["spec"].as_object_mut().and_then(|s| s.remove("size")) {
                out["spec"]["dimensions"] = json!({"size": size});
            }
        }
        "example.test/v1" => {
            if let Some(size) = out.pointer("/spec/dimensions/size").cloned() {
                out["spec"].as_object_mut().unwrap().remove("dimensions");
                out["spec"]["size"] = size;
            }
        }
        other => return Err(format!("unknown version {other}")),
    }
    out["apiVersion"] = json!(desired);
    Ok(out)
}

fn review(body: &[u8]) -> Value {
    let r: Value = serde_json::from_slice(body).expect("a ConversionReview");
    let req = &r["request"];
    let desired = req["desiredAPIVersion"].as_str().unwrap();
    let converted: Result<Vec<Value>, String> = req["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| convert_one(o, desired))
        .collect();
    let response = match converted {
        Ok(objs) => {
            json!({"uid": req["uid"], "convertedObjects": objs, "result": {"status": "Success"}})
        }
        Err(m) => {
            json!({"uid": req["uid"], "convertedObjects": [], "result": {"status": "Failure", "message": m}})
        }
    };
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "response": response})
}

/// Starts the HTTPS webhook on its own thread and runtime; returns (url, CA PEM).
fn start_webhook() -> (String, String) {
    let ca = slipway_pki::new_ca("test-webhook-ca").unwrap();
    let serving = slipway_pki::serving_cert(&ca, &["127.0.0.1".to_string()]).unwrap();
    let tls = slipway_pki::server_config(&serving, &ca.cert_pem).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(
                        |req: http::Request<hyper::body::Incoming>| async move {
                            assert_eq!(req.uri().path(), "/convert");
                            let body = req.into_body().collect().await?.to_bytes();
                            let out = serde_json::to_vec(&review(&body)).unwrap();
                            Ok::<_, hyper::Error>(http::Response::new(Full::new(
                                bytes::Bytes::from(out),
                            )))
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
                });
            }
        });
    });
    (format!("https://127.0.0.1:{port}/convert"), ca.cert_pem)
}

fn crd(client_config: Value) -> Value {
    let schema =
        |spec: Value| json!({"openAPIV3Schema": {"type": "object", "properties": {"spec": spec}}});
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
      "metadata": {"name": "gadgets.example.test"},
      "spec": {"group": "example.test", "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
        "conversion": {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": client_config}},
        "versions": [
          {"name": "v1", "served": true, "storage": false,
           "schema": schema(json!({"type": "object", "properties": {"size": {"type": "integer"}}}))},
          {"name": "v2", "served": true, "storage": true,
           "schema": schema(json!({"type": "object", "properties": {"dimensions": {"type": "object", "properties": {"size": {"type": "integer"}}}}}))}]}})
}

fn setup(client_config: Value) -> Arc<Api> {
    let api = Arc::new(Api::new(Arc::new(Store::in_memory())));
    call(&api, "", "v1", "namespaces", None, |a, c| {
        a.create(c, json!({"metadata": {"name": "default"}}))
    })
    .unwrap();
    call(
        &api,
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        None,
        |a, c| a.create(c, crd(client_config)),
    )
    .unwrap();
    api
}

fn target(group: &str, version: &str, plural: &str, ns: Option<&str>) -> Target {
    Target {
        group: group.into(),
        version: version.into(),
        namespace: ns.map(Into::into),
        plural: plural.into(),
        name: None,
        sub: None,
    }
}

fn call<T>(
    api: &Api,
    group: &str,
    version: &str,
    plural: &str,
    ns: Option<&str>,
    f: impl FnOnce(&Api, &Call<'_>) -> T,
) -> T {
    let target = target(group, version, plural, ns);
    let q = Query::parse(None);
    let call = Call {
        res: api.catalog.find(group, version, plural).expect("served"),
        target: &target,
        query: &q,
        default_manager: "test".into(),
    };
    f(api, &call)
}

fn gadgets<T>(api: &Api, version: &str, f: impl FnOnce(&Api, &Call<'_>) -> T) -> T {
    call(api, "example.test", version, "gadgets", Some("default"), f)
}

fn v1_gadget(name: &str, size: i64) -> Value {
    json!({"apiVersion": "example.test/v1", "kind": "Gadget",
           "metadata": {"name": name, "namespace": "default"}, "spec": {"size": size}})
}

async fn next_event(
    w: &mut tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(10), w.recv())
        .await
        .expect("a watch event within 10s")
        .expect("the watch is open")
        .expect("a body chunk");
    serde_json::from_slice(&line).expect("a JSON line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plane_converts_a_foreign_crd_through_its_https_webhook() {
    let (url, ca) = start_webhook();
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca);
    let api = setup(json!({"url": url, "caBundle": ca_bundle}));

    let res_v1 = api.catalog.find("example.test", "v1", "gadgets").unwrap();
    let t = target("example.test", "v1", "gadgets", Some("default"));
    let mut watch_v1 = watch::start(api.clone(), res_v1, &t, &Query::parse(None), false).unwrap();

    // Written at v1, stored at v2 through the webhook, served at both.
    let created = gadgets(&api, "v1", |a, c| a.create(c, v1_gadget("g", 3))).unwrap();
    assert_eq!(created["apiVersion"], "example.test/v1");
    assert_eq!(created["spec"], json!({"size": 3}));
    let at_v2 = gadgets(&api, "v2", |a, c| a.get(c, "g")).unwrap();
    assert_eq!(at_v2["apiVersion"], "example.test/v2");
    assert_eq!(at_v2["spec"], json!({"dimensions": {"size": 3}}));
    assert_eq!(at_v2["metadata"]["uid"], created["metadata"]["uid"]);
    let at_v1 = gadgets(&api, "v1", |a, c| a.get(c, "g")).unwrap();
    assert_eq!(at_v1["spec"], json!({"size": 3}));
    assert_eq!(
        at_v1["metadata"]["resourceVersion"],
        at_v2["metadata"]["resourceVersion"]
    );

    for (version, spec) in [
        ("v1", json!({"size": 3})),
        ("v2", json!({"dimensions": {"size": 3}})),
    ] {
        let list: Value =
            serde_json::from_slice(&gadgets(&api, version, |a, c| a.list(c, false)).unwrap())
                .unwrap();
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{list}");
        assert_eq!(items[0]["apiVersion"], format!("example.test/{version}"));
        assert_eq!(items[0]["spec"], spec);
    }

    let e = next_event(&mut watch_v1).await;
    assert_eq!(e["type"], "ADDED", "{e}");
    assert_eq!(e["object"]["apiVersion"], "example.test/v1");
    assert_eq!(e["object"]["spec"], json!({"size": 3}));

    // The webhook refuses: a 500 naming the object and carrying the webhook's message;
    // nothing stored.
    let err = gadgets(&api, "v1", |a, c| a.create(c, v1_gadget("bad", 1))).unwrap_err();
    assert_eq!(err.code, 500, "{}", err.message);
    assert!(err.message.contains("default/bad"), "{}", err.message);
    assert!(
        err.message.contains("gadget bad cannot be converted"),
        "{}",
        err.message
    );
    assert_eq!(
        gadgets(&api, "v2", |a, c| a.get(c, "bad"))
            .unwrap_err()
            .code,
        404
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_webhook_that_cannot_be_reached_or_trusted_is_a_500_naming_the_object() {
    // Served by a CA the CRD does not name: the TLS handshake fails.
    let (url, _) = start_webhook();
    let other_ca = slipway_pki::new_ca("someone-else").unwrap().cert_pem;
    let api = setup(json!({"url": url,
        "caBundle": base64::engine::general_purpose::STANDARD.encode(other_ca)}));
    let err = gadgets(&api, "v1", |a, c| a.create(c, v1_gadget("g", 1))).unwrap_err();
    assert_eq!(err.code, 500);
    assert!(err.message.contains("default/g"), "{}", err.message);
    assert!(err.message.contains("TLS"), "{}", err.message);

    // A Service reference: the plane has no cluster network and says so.
    let api = setup(json!({"service": {"namespace": "ns", "name": "svc", "path": "/convert"}}));
    let err = gadgets(&api, "v1", |a, c| a.create(c, v1_gadget("g", 1))).unwrap_err();
    assert_eq!(err.code, 500);
    assert!(
        err.message.contains("clientConfig.service ns/svc"),
        "{}",
        err.message
    );
}
