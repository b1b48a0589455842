//! kube-rs against the embedded plane: a watcher keeps delivering across a server restart, and
//! a reflector store converges on the server's state.

use std::{collections::BTreeSet, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client, Config,
    api::{DeleteParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{WatchStreamExt, reflector, watcher},
};
use slipway_apiserver::plane::Plane;
use slipway_testsupport::{client, plane, plane_with, temp_dir};
use tokio::sync::mpsc;

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"k": name}}))
        .unwrap()
}

async fn next_name(rx: &mut mpsc::UnboundedReceiver<String>, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("watcher never delivered {want}"));
        if got.as_deref() == Some(want) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_keeps_delivering_across_a_server_restart() {
    let dir = temp_dir("restart");
    let first = plane_with(Some(dir.clone()), 0, vec![]).await;
    let port = first.server.addr.port();
    let c = client(&first).await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");

    let (tx, mut rx) = mpsc::unbounded_channel();
    let watch = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(item) = stream.next().await {
            if let Ok(cm) = item {
                let _ = tx.send(cm.metadata.name.unwrap_or_default());
            }
        }
    });

    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    api.create(&PostParams::default(), &configmap("before"))
        .await
        .unwrap();
    next_name(&mut rx, "before").await;

    first.shutdown().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = plane_with(Some(dir.clone()), port, vec![]).await;
    let api2: Api<ConfigMap> = Api::namespaced(client(&second).await, "default");
    api2.create(&PostParams::default(), &configmap("after"))
        .await
        .unwrap();
    next_name(&mut rx, "after").await;

    watch.abort();
    second.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_store_converges_on_creates_and_deletes() {
    let p = plane().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&p).await, "default");
    for i in 0..30 {
        api.create(&PostParams::default(), &configmap(&format!("cm-{i}")))
            .await
            .unwrap();
    }
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().any_semantic()),
    )
    .default_backoff()
    .touched_objects();
    let task = tokio::spawn(stream.for_each(|_| futures::future::ready(())));
    reader.wait_until_ready().await.unwrap();

    for i in 0..10 {
        api.delete(&format!("cm-{i}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    for i in 30..35 {
        api.create(&PostParams::default(), &configmap(&format!("cm-{i}")))
            .await
            .unwrap();
    }
    let want: BTreeSet<String> = (10..35).map(|i| format!("cm-{i}")).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let have: BTreeSet<String> = reader
            .state()
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        if have == want {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "store never converged: {have:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    p.shutdown().await;
}

fn cert_kubeconfig(plane: &Plane, client: &slipway_apiserver::tls::CertKey) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: p\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: c\n  context: {{cluster: p, user: u}}\ncurrent-context: c\n",
        plane.url(),
        b64(&plane.ca.cert_pem),
        b64(&client.cert_pem),
        b64(&client.key_pem)
    )
}

async fn client_from(yaml: &str) -> Client {
    let kc = Kubeconfig::from_yaml(yaml).unwrap();
    Client::try_from(
        Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_signed_by_the_ca_authenticate_and_others_do_not() {
    use slipway_apiserver::tls;
    let p = plane().await;
    let good = tls::client_cert(&p.ca, "kubernetes-admin", &["kubeadm:cluster-admins"]).unwrap();
    let api: Api<ConfigMap> =
        Api::namespaced(client_from(&cert_kubeconfig(&p, &good)).await, "default");
    // Authenticated, but not yet authorized: the certificate's user and group hold no role.
    let err = api
        .create(&PostParams::default(), &configmap("by-cert"))
        .await
        .expect_err("no role is bound to the certificate's group yet");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403 && s.message.contains(r#"User "kubernetes-admin" cannot create resource "configmaps""#)),
        "{err:?}"
    );
    // As kubeadm does: its admin group is bound to cluster-admin.
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(client(&p).await);
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "kubeadm:cluster-admins"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "kubeadm:cluster-admins"}]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    api.create(&PostParams::default(), &configmap("by-cert"))
        .await
        .expect("a CA-signed client certificate is accepted");

    let other_ca = tls::new_ca("someone-else").unwrap();
    let bad = tls::client_cert(&other_ca, "mallory", &[]).unwrap();
    let api: Api<ConfigMap> =
        Api::namespaced(client_from(&cert_kubeconfig(&p, &bad)).await, "default");
    let err = api
        .list(&Default::default())
        .await
        .expect_err("a certificate from another CA is refused");
    let refused = match &err {
        // Either the TLS handshake refuses the certificate, or the request gets 401.
        kube::Error::Api(s) => s.code == 401,
        _ => true,
    };
    assert!(refused, "{err:?}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_collection_by_label() {
    let p = plane().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&p).await, "default");
    for (name, team) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let mut cm = configmap(name);
        cm.metadata.labels = Some([("team".to_string(), team.to_string())].into());
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    api.delete_collection(
        &DeleteParams::default(),
        &kube::api::ListParams::default().labels("team=x"),
    )
    .await
    .unwrap();
    let left: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, vec!["c".to_string()]);
    p.shutdown().await;
}
