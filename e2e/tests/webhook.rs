//! `slipway controller --webhook-port` against the embedded plane standing in for
//! kube-apiserver (`slipway up --no-controller`): the controller creates its CA Secret,
//! injects the CA into the caBundle of slipway's CRDs, and answers a v1beta1 Cluster
//! ConversionReview on `/convert` over HTTPS verified with that caBundle; and the plane calls
//! the webhook (a tiny in-test HTTPS server) of a foreign CRD for kubectl at both versions.

use base64::Engine;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use slipway_testsupport::{Mgmt, eventually, free_port};

#[test]
fn the_controller_serves_conversion_with_the_ca_it_injects_into_the_crds() {
    let mut m = Mgmt::start("webhook", true);
    m.ok(&["create", "namespace", "slipway-system"], None);
    let port = free_port();
    let port_s = port.to_string();
    m.start_controller_with(&[], &["--webhook-port", &port_s]);

    let bundle = eventually(60, "the CA injected into the Cluster CRD", || {
        let crd = m.json(&["get", "crd", "clusters.cluster.x-k8s.io", "-o", "json"]);
        let cc = &crd["spec"]["conversion"]["webhook"]["clientConfig"];
        assert_eq!(cc["service"]["name"], "slipway-webhook-service", "{cc}");
        cc["caBundle"]
            .as_str()
            .filter(|b| !b.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("no caBundle yet: {cc}"))
    });
    let ca_pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&bundle)
            .unwrap(),
    )
    .unwrap();
    assert!(ca_pem.contains("BEGIN CERTIFICATE"), "{ca_pem}");
    let secret = m.json(&[
        "get",
        "secret",
        "-n",
        "slipway-system",
        "slipway-webhook-ca",
        "-o",
        "json",
    ]);
    assert_eq!(
        secret["data"]["tls.crt"], bundle,
        "the injected CA is the stored one"
    );
    let kcp = m.json(&[
        "get",
        "crd",
        "kubeadmcontrolplanes.controlplane.cluster.x-k8s.io",
        "-o",
        "json",
    ]);
    assert_eq!(
        kcp["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"],
        bundle
    );

    // The same caBundle verifies the controller's serving certificate for 127.0.0.1.
    let conversion = json!({"strategy": "Webhook", "webhook": {"clientConfig": {
        "url": format!("https://127.0.0.1:{port}/convert"), "caBundle": bundle}}});
    let cluster = json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster",
        "metadata": {"name": "c1", "namespace": "default", "uid": "u-1"},
        "spec": {"controlPlaneRef": {"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
                                     "kind": "KubeadmControlPlane", "name": "c1-cp"}}});
    let converted = eventually(30, "the webhook answering", || {
        slipway_apiserver::conversion_webhook::convert(
            &conversion,
            &cluster,
            "cluster.x-k8s.io/v1beta2",
        )
    });
    assert_eq!(converted["apiVersion"], "cluster.x-k8s.io/v1beta2");
    assert_eq!(
        converted["spec"]["controlPlaneRef"],
        json!({"apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": "c1-cp"})
    );
    assert_eq!(converted["metadata"]["uid"], "u-1");

    // A version the webhook does not serve: a Failure carrying its message.
    let err = slipway_apiserver::conversion_webhook::convert(
        &conversion,
        &cluster,
        "cluster.x-k8s.io/v9",
    )
    .unwrap_err();
    assert!(err.contains("v9"), "{err}");

    // A CA that is not the injected one is refused at the TLS handshake.
    let other = slipway_pki::new_ca("other").unwrap().cert_pem;
    let mut wrong: Value = conversion.clone();
    wrong["webhook"]["clientConfig"]["caBundle"] =
        json!(base64::engine::general_purpose::STANDARD.encode(other));
    let err = slipway_apiserver::conversion_webhook::convert(
        &wrong,
        &cluster,
        "cluster.x-k8s.io/v1beta2",
    )
    .unwrap_err();
    assert!(err.contains("TLS"), "{err}");
}

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

/// A foreign CRD converted by an HTTPS webhook, through `slipway up` and kubectl: written at
/// v1, read at v1 and v2; a webhook refusal is a 500 naming the object.
#[test]
fn the_plane_calls_the_webhook_of_a_foreign_crd_through_kubectl() {
    let (url, ca) = start_webhook();
    let m = Mgmt::start("webhook-foreign", true);
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca);
    m.ok(
        &["apply", "-f", "-"],
        Some(&crd(json!({"url": url, "caBundle": bundle})).to_string()),
    );
    eventually(30, "the Gadget CRD served", || {
        let out = m.kubectl_with(&m.kubeconfig, &["get", "gadgets.v2.example.test"], None);
        out.status
            .success()
            .then_some(())
            .ok_or_else(|| String::from_utf8_lossy(&out.stderr).to_string())
    });
    let g = json!({"apiVersion": "example.test/v1", "kind": "Gadget",
                   "metadata": {"name": "g", "namespace": "default"}, "spec": {"size": 3}});
    m.ok(&["apply", "-f", "-"], Some(&g.to_string()));
    let v2 = m.json(&["get", "gadgets.v2.example.test", "g", "-o", "json"]);
    assert_eq!(v2["apiVersion"], "example.test/v2");
    assert_eq!(v2["spec"], json!({"dimensions": {"size": 3}}));
    let v1 = m.json(&["get", "gadgets.v1.example.test", "g", "-o", "json"]);
    assert_eq!(v1["spec"], json!({"size": 3}));
    let list = m.json(&["get", "gadgets.v1.example.test", "-o", "json"]);
    assert_eq!(list["items"][0]["spec"], json!({"size": 3}), "{list}");

    let bad = json!({"apiVersion": "example.test/v1", "kind": "Gadget",
                     "metadata": {"name": "bad", "namespace": "default"}, "spec": {"size": 1}});
    let out = m.kubectl_with(&m.kubeconfig, &["apply", "-f", "-"], Some(&bad.to_string()));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("default/bad") && err.contains("gadget bad cannot be converted"),
        "{err}"
    );
}
