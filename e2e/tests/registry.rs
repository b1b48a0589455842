//! The cluster registry end to end: with both sinks on, Ready in-memory clusters get their
//! ClusterProfile, Argo CD cluster Secret and KubeFedCluster; an outage of one cluster's API
//! server is reported for that cluster only; deletion deregisters before teardown.

use base64::Engine;
use serde_json::Value;
use slipway_testsupport::*;

fn b64(s: &str) -> String {
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
}

fn cond_reason(obj: &Value, type_: &str) -> Option<(String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
}

#[test]
fn clusters_are_registered_probed_and_deregistered_first() {
    let m = Mgmt::start_with("registry", false, &["--argocd-sink", "--kubefed-sink"]);
    m.ok(&["create", "namespace", "argocd"], None);
    m.ok(&["create", "namespace", "kube-federation-system"], None);
    let alpha = generate("alpha", 1, 1, "v1.31.0").replacen(
        "cluster.x-k8s.io/cluster-name: \"alpha\"\n",
        "cluster.x-k8s.io/cluster-name: \"alpha\"\n    environment: \"dev\"\n    topology.kubernetes.io/region: \"eu-west-1\"\n",
        1,
    );
    assert!(alpha.contains("environment: \"dev\""));
    m.ok(&["apply", "-f", "-"], Some(&alpha));
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("beta", 1, 0, "v1.31.0")),
    );
    wait_available(&m, "alpha", 120);
    wait_available(&m, "beta", 120);

    let kc = std::fs::read_to_string(m.workload_kubeconfig("alpha")).unwrap();
    let kc: Value = serde_saphyr::from_str(&kc).unwrap();
    let server = kc["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap()
        .to_string();
    let ca = kc["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .unwrap()
        .to_string();
    let endpoint = m.json(&["get", "cluster", "alpha"])["spec"]["controlPlaneEndpoint"].clone();
    assert_eq!(
        server,
        format!(
            "https://{}:{}",
            endpoint["host"].as_str().unwrap(),
            endpoint["port"]
        )
    );
    // Fleet tools key clusters by server URL: every simulated cluster has its own endpoint,
    // even where their servers share a port.
    let beta = m.json(&["get", "cluster", "beta"])["spec"]["controlPlaneEndpoint"].clone();
    assert_ne!(endpoint, beta, "alpha and beta have distinct endpoints");

    // ClusterProfile: Joined, ControlPlaneHealthy, version, labels, access provider.
    let profile = eventually(60, "alpha's ClusterProfile healthy", || {
        let p = m.json(&["get", "clusterprofile", "alpha"]);
        (cond_reason(&p, "ControlPlaneHealthy")
            .map(|c| c.0)
            .as_deref()
            == Some("True")
            && cond_reason(&p, "Joined").map(|c| c.0).as_deref() == Some("True")
            && p["status"]["version"]["kubernetes"] == "v1.31.0")
            .then_some(p.clone())
            .ok_or_else(|| format!("{:#}", p["status"]))
    });
    assert_eq!(profile["spec"]["clusterManager"]["name"], "slipway");
    let labels = &profile["metadata"]["labels"];
    assert_eq!(labels["x-k8s.io/cluster-manager"], "slipway");
    assert_eq!(labels["environment"], "dev");
    assert_eq!(labels["topology.kubernetes.io/region"], "eu-west-1");
    let access = &profile["status"]["accessProviders"][0];
    assert_eq!(access["name"], "kubeconfig-secretreader");
    assert_eq!(access["cluster"]["server"], server.as_str());
    assert_eq!(access["cluster"]["certificate-authority-data"], ca.as_str());
    assert_eq!(
        access["cluster"]["extensions"][0]["extension"]["name"],
        "alpha-kubeconfig"
    );
    let props: Vec<(String, String)> = profile["status"]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        props.contains(&("provider".into(), "in-memory".into())),
        "{props:?}"
    );
    assert!(
        props.contains(&("region".into(), "eu-west-1".into())),
        "{props:?}"
    );
    assert!(
        !serde_json::to_string(&profile)
            .unwrap()
            .contains("client-key-data"),
        "no secret material in the ClusterProfile"
    );

    // Argo CD cluster Secret.
    let argo = m.json(&["get", "secret", "-n", "argocd", "slipway-default-alpha"]);
    assert_eq!(
        argo["metadata"]["labels"]["argocd.argoproj.io/secret-type"],
        "cluster"
    );
    assert_eq!(argo["metadata"]["labels"]["environment"], "dev");
    assert_eq!(b64(argo["data"]["server"].as_str().unwrap()), server);
    assert_eq!(b64(argo["data"]["name"].as_str().unwrap()), "alpha");
    let config: Value =
        serde_json::from_str(&b64(argo["data"]["config"].as_str().unwrap())).unwrap();
    assert_eq!(config["tlsClientConfig"]["caData"], ca.as_str());
    assert!(config["tlsClientConfig"]["certData"].is_string());

    // KubeFedCluster with the endpoint and CA, and a token that really authenticates.
    let kfc = eventually(30, "KubeFedCluster Ready", || {
        let k = m.json(&[
            "get",
            "kubefedcluster",
            "-n",
            "kube-federation-system",
            "default-alpha",
        ]);
        (cond_reason(&k, "Ready").map(|c| c.0).as_deref() == Some("True"))
            .then_some(k.clone())
            .ok_or_else(|| format!("{:#}", k["status"]))
    });
    assert_eq!(kfc["spec"]["apiEndpoint"], server.as_str());
    assert_eq!(kfc["spec"]["caBundle"], ca.as_str());
    let secret_name = kfc["spec"]["secretRef"]["name"].as_str().unwrap();
    let token_secret = m.json(&["get", "secret", "-n", "kube-federation-system", secret_name]);
    let token = b64(token_secret["data"]["token"].as_str().unwrap());
    let ca_file = m.dir.join("alpha-ca.crt");
    std::fs::write(&ca_file, b64(&ca)).unwrap();
    let empty = m.dir.join("empty-kubeconfig");
    std::fs::write(&empty, "").unwrap();
    let out = m.kubectl_with(
        &empty,
        &[
            "--server",
            &server,
            "--certificate-authority",
            ca_file.to_str().unwrap(),
            "--token",
            &token,
            "get",
            "nodes",
            "-o",
            "name",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "{}",
        text(&out.stdout)
    );

    // An outage of alpha's API server is reported for alpha only.
    m.ok(
        &[
            "patch",
            "inmemorycluster",
            "alpha",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"simulation":{"apiServerStopped":true}}}"#,
        ],
        None,
    );
    let started = std::time::Instant::now();
    eventually(45, "alpha reported unreachable", || {
        let p = m.json(&["get", "clusterprofile", "alpha"]);
        (cond_reason(&p, "ControlPlaneHealthy") == Some(("False".into(), "Unreachable".into())))
            .then_some(())
            .ok_or_else(|| format!("{:#}", p["status"]["conditions"]))
    });
    assert!(
        started.elapsed().as_secs() <= 40,
        "took {:?}",
        started.elapsed()
    );
    let beta = m.json(&["get", "clusterprofile", "beta"]);
    assert_eq!(cond_reason(&beta, "ControlPlaneHealthy").unwrap().0, "True");
    let kfc = m.json(&[
        "get",
        "kubefedcluster",
        "-n",
        "kube-federation-system",
        "default-alpha",
    ]);
    assert_eq!(cond_reason(&kfc, "Offline").unwrap().0, "True");

    // Deletion deregisters before anything of the cluster is torn down.
    m.ok(&["delete", "cluster", "beta", "--wait=false"], None);
    eventually(90, "beta deleted", || {
        let registered = m
            .kubectl_with(&m.kubeconfig, &["get", "clusterprofile", "beta"], None)
            .status
            .success();
        let kcp = m.kubectl_with(
            &m.kubeconfig,
            &["get", "kcp", "beta-control-plane", "-o", "json"],
            None,
        );
        let kcp_touched = !kcp.status.success()
            || serde_json::from_slice::<Value>(&kcp.stdout).unwrap()["metadata"]["deletionTimestamp"]
                .is_string();
        assert!(
            !(registered && kcp_touched),
            "the control plane is being deleted while beta is still registered"
        );
        let gone = !m
            .kubectl_with(&m.kubeconfig, &["get", "cluster", "beta"], None)
            .status
            .success();
        gone.then_some(())
            .ok_or_else(|| "beta still exists".to_string())
    });
    let argo_left = m.ok(&["get", "secrets", "-n", "argocd", "-o", "name"], None);
    assert!(!argo_left.contains("beta"), "{argo_left}");
    let kfc_left = m.ok(&["get", "kubefedclusters", "-A", "-o", "name"], None);
    assert!(!kfc_left.contains("beta"), "{kfc_left}");
}
