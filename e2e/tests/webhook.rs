//! `slipway controller --webhook-port` against the embedded plane standing in for
//! kube-apiserver (`slipway up --no-controller`): the controller creates its CA Secret,
//! injects the CA into the caBundle of slipway's CRDs, and answers a v1beta1 Cluster
//! ConversionReview on `/convert` over HTTPS verified with that caBundle. (The plane's own
//! webhook client against a foreign CRD is tested in `apiserver/tests/conversion_webhook.rs`.)

use base64::Engine;
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
