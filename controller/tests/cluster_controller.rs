//! The Cluster reconciler against an embedded management plane: owner references, contract
//! fields, endpoint copy, pause, no hot loop, and ordered deletion.

use std::{sync::Arc, time::Duration};

use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
    discovery::ApiResource,
};
use serde_json::{Value, json};
use slipway_api::{Cluster, crds};
use slipway_apiserver::plane::Plane;
use slipway_testsupport::{client, eventually_async, plane_with, temp_dir};

async fn plane() -> Plane {
    let mut crds = crds::core();
    crds.extend(plugins().crds());
    let crds = crds
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    plane_with(None, 0, crds).await
}

fn dynamic(
    client: &Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Api::namespaced_with(client.clone(), "default", &ar)
}

struct Objects {
    infra: Api<DynamicObject>,
    kcp: Api<DynamicObject>,
    clusters: Api<Cluster>,
}

/// Creates `<name>`: an InMemoryCluster with `infra_spec`, a KubeadmControlPlane `<name>-cp`,
/// and the Cluster referencing both.
async fn create_cluster(c: &Client, name: &str, infra_spec: Value) -> Objects {
    let infra = dynamic(
        c,
        "infrastructure.cluster.x-k8s.io",
        "v1alpha1",
        "InMemoryCluster",
        "inmemoryclusters",
    );
    let kcp = dynamic(
        c,
        "controlplane.cluster.x-k8s.io",
        "v1beta2",
        "KubeadmControlPlane",
        "kubeadmcontrolplanes",
    );
    let clusters: Api<Cluster> = Api::namespaced(c.clone(), "default");
    let obj = |v: Value| serde_json::from_value::<DynamicObject>(v).unwrap();
    let cp = format!("{name}-cp");
    infra.create(&PostParams::default(), &obj(json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "InMemoryCluster", "metadata": {"name": name}, "spec": infra_spec}))).await.unwrap();
    kcp.create(&PostParams::default(), &obj(json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta2", "kind": "KubeadmControlPlane", "metadata": {"name": cp},
        "spec": {"replicas": 1, "version": "v1.31.0", "kubeadmConfigSpec": {},
                 "machineTemplate": {"spec": {"infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "InMemoryMachineTemplate", "name": "t"}}}}}))).await.unwrap();
    let cluster: Cluster = serde_json::from_value(json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster", "metadata": {"name": name},
        "spec": {"infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "InMemoryCluster", "name": name},
                 "controlPlaneRef": {"apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": cp}}})).unwrap();
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
    Objects {
        infra,
        kcp,
        clusters,
    }
}

fn condition(c: &Cluster, type_: &str) -> Option<(String, String)> {
    c.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|x| x.type_ == type_)
        .map(|x| (x.status.clone(), x.reason.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_follows_its_infrastructure_and_control_plane_and_deletes_in_order() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let p = plane().await;
    let c = client(&p).await;
    let manager = tokio::spawn(slipway_controller::manager::run(
        c.clone(),
        manager_options(),
        plugins(),
    ));

    // A simulated provisioning delay makes the Provisioning phase observable.
    let Objects {
        infra,
        kcp,
        clusters,
    } = create_cluster(
        &c,
        "c",
        json!({"simulation": {"provisioningDelaySeconds": 2}}),
    )
    .await;

    // Finalizer, owner references, Provisioning while the simulated delay runs.
    let uid = eventually_async(20, "the finalizer and Provisioning phase", async || {
        let got = clusters.get("c").await.ok()?;
        (got.metadata
            .finalizers
            .as_ref()?
            .contains(&"cluster.cluster.x-k8s.io".to_string())
            && got.status.as_ref()?.phase.as_deref() == Some("Provisioning"))
        .then(|| got.metadata.uid.clone().unwrap())
    })
    .await;
    for (api, name) in [(&infra, "c"), (&kcp, "c-cp")] {
        eventually_async(20, "an owner reference", async || {
            let o = api.get(name).await.ok()?;
            o.metadata
                .owner_references?
                .iter()
                .any(|r| r.uid == uid && r.kind == "Cluster" && r.controller == Some(true))
                .then_some(())
        })
        .await;
    }
    let waiting = eventually_async(
        20,
        "InfrastructureReady mirrored while provisioning",
        async || {
            let got = clusters.get("c").await.ok()?;
            let c = condition(&got, "InfrastructureReady")?;
            (c.1 == "SimulatedProvisioning").then_some(c)
        },
    )
    .await;
    assert_eq!(waiting.0, "False");

    // The in-memory provider provisions the infrastructure cluster after its delay.
    let provisioned_infra =
        eventually_async(20, "the in-memory provider to provision", async || {
            let o = infra.get("c").await.ok()?;
            (o.data.pointer("/status/initialization/provisioned") == Some(&json!(true)))
                .then_some(o)
        })
        .await;
    assert!(
        provisioned_infra
            .metadata
            .finalizers
            .as_ref()
            .unwrap()
            .contains(&"inmemorycluster.infrastructure.cluster.x-k8s.io".to_string())
    );
    // Each simulated cluster listens on its own loopback address (127.a.b.c).
    let host = provisioned_infra
        .data
        .pointer("/spec/controlPlaneEndpoint/host")
        .and_then(Value::as_str)
        .unwrap();
    assert!(
        host.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback()),
        "{host}"
    );
    let port = provisioned_infra
        .data
        .pointer("/spec/controlPlaneEndpoint/port")
        .and_then(Value::as_i64)
        .unwrap();
    assert!(port > 0);

    // The control plane (no reconciler yet) reports initialized by hand.
    kcp.patch_status(
        "c-cp",
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"initialization": {"controlPlaneInitialized": true}}})),
    )
    .await
    .unwrap();
    let provisioned = eventually_async(20, "Provisioned", async || {
        let got = clusters.get("c").await.ok()?;
        (got.status.as_ref()?.phase.as_deref() == Some("Provisioned")
            && condition(&got, "ControlPlaneInitialized")?.0 == "True")
            .then_some(got)
    })
    .await;
    assert_eq!(
        i64::from(
            provisioned
                .spec
                .control_plane_endpoint
                .as_ref()
                .unwrap()
                .port
        ),
        port,
        "endpoint copied from the infrastructure cluster"
    );
    assert_eq!(
        condition(&provisioned, "InfrastructureReady"),
        Some(("True".into(), "Provisioned".into())),
        "mirrored from the provider's Ready"
    );
    let init = provisioned
        .status
        .as_ref()
        .unwrap()
        .initialization
        .clone()
        .unwrap();
    assert_eq!(
        (
            init.infrastructure_provisioned,
            init.control_plane_initialized
        ),
        (Some(true), Some(true))
    );

    // No hot loop: once the last legitimate transition has landed (under load a condition
    // may still be on its way, e.g. the remote probe giving up on the absent workload
    // server), a 3-second window passes without a write. A hot loop writes in every window.
    let mut changes = Vec::new();
    let mut quiet = false;
    for _ in 0..5 {
        let before = clusters.get("c").await.unwrap();
        let infra_before = infra.get("c").await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = clusters.get("c").await.unwrap();
        let infra_after = infra.get("c").await.unwrap();
        if after.metadata.resource_version == before.metadata.resource_version
            && infra_after.metadata.resource_version == infra_before.metadata.resource_version
        {
            quiet = true;
            break;
        }
        // Whatever was written must have changed something.
        if after.metadata.resource_version != before.metadata.resource_version {
            assert!(
                after.status != before.status
                    || after.spec != before.spec
                    || after.metadata.labels != before.metadata.labels
                    || after.metadata.annotations != before.metadata.annotations
                    || after.metadata.finalizers != before.metadata.finalizers,
                "the Cluster was rewritten with nothing changed"
            );
        }
        if infra_after.metadata.resource_version != infra_before.metadata.resource_version {
            assert!(
                infra_after.data != infra_before.data
                    || infra_after.metadata.labels != infra_before.metadata.labels
                    || infra_after.metadata.annotations != infra_before.metadata.annotations
                    || infra_after.metadata.finalizers != infra_before.metadata.finalizers,
                "the InMemoryCluster was rewritten with nothing changed"
            );
        }
        changes.push(format!(
            "cluster status {} -> {}; infra status {} -> {}",
            serde_json::to_string(&before.status).unwrap(),
            serde_json::to_string(&after.status).unwrap(),
            infra_before.data["status"],
            infra_after.data["status"]
        ));
    }
    assert!(
        quiet,
        "the Cluster or InMemoryCluster was rewritten in every 3-second window: {changes:#?}"
    );

    // Pause.
    clusters
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"cluster.x-k8s.io/paused": ""}}})),
        )
        .await
        .unwrap();
    eventually_async(20, "Paused", async || {
        (condition(&clusters.get("c").await.ok()?, "Paused")?.0 == "True").then_some(())
    })
    .await;
    clusters
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"cluster.x-k8s.io/paused": null}}})),
        )
        .await
        .unwrap();
    eventually_async(20, "unpaused", async || {
        (condition(&clusters.get("c").await.ok()?, "Paused")?.0 == "False").then_some(())
    })
    .await;

    // Deletion: control plane, then infrastructure, then the Cluster. A finalizer on the control
    // plane holds everything behind it.
    kcp.patch(
        "c-cp",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": ["test.slipway.dev/hold"]}})),
    )
    .await
    .unwrap();
    clusters.delete("c", &Default::default()).await.unwrap();
    eventually_async(
        20,
        "the Cluster to wait for its control plane",
        async || {
            let got = clusters.get("c").await.ok()?;
            (condition(&got, "Deleting")?
                == ("True".into(), "WaitingForControlPlaneDeletion".into()))
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        clusters.get_opt("c").await.unwrap().is_some(),
        "the Cluster keeps its finalizer while the control plane exists"
    );
    assert!(
        infra
            .get_opt("c")
            .await
            .unwrap()
            .is_some_and(|o| o.metadata.deletion_timestamp.is_none()),
        "the infrastructure waits for the control plane"
    );
    kcp.patch(
        "c-cp",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually_async(20, "the Cluster to be gone", async || {
        clusters.get_opt("c").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(kcp.get_opt("c-cp").await.unwrap().is_none());
    assert!(
        infra.get_opt("c").await.unwrap().is_none(),
        "the infrastructure finalizer was released by its reconciler"
    );
    manager.abort();
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_certificates_and_kubeconfig_are_created_once() {
    use base64::Engine;
    use k8s_openapi::api::core::v1::Secret;
    let p = plane().await;
    let c = client(&p).await;
    let manager = tokio::spawn(slipway_controller::manager::run(
        c.clone(),
        manager_options(),
        plugins(),
    ));
    let Objects {
        infra: _,
        kcp,
        clusters,
    } = create_cluster(&c, "pki", json!({})).await;

    let secrets: Api<Secret> = Api::namespaced(c.clone(), "default");
    let kubeconfig = eventually_async(20, "the kubeconfig Secret", async || {
        secrets.get_opt("pki-kubeconfig").await.ok()?
    })
    .await;
    let kcp_uid = kcp.get("pki-cp").await.unwrap().metadata.uid.unwrap();
    let mut versions = Vec::new();
    for name in [
        "pki-ca",
        "pki-etcd",
        "pki-proxy",
        "pki-sa",
        "pki-kubeconfig",
    ] {
        let s = secrets.get(name).await.unwrap();
        assert_eq!(
            s.type_.as_deref(),
            Some("cluster.x-k8s.io/secret"),
            "{name}"
        );
        assert_eq!(
            s.metadata.labels.as_ref().unwrap()["cluster.x-k8s.io/cluster-name"],
            "pki",
            "{name}"
        );
        assert!(
            s.metadata
                .owner_references
                .as_ref()
                .unwrap()
                .iter()
                .any(|o| o.uid == kcp_uid && o.controller == Some(true)),
            "{name}"
        );
        versions.push(s.metadata.resource_version.clone());
    }
    let ca_pem = String::from_utf8(
        secrets.get("pki-ca").await.unwrap().data.unwrap()["tls.crt"]
            .0
            .clone(),
    )
    .unwrap();
    let kc: Value = serde_saphyr::from_slice(&kubeconfig.data.unwrap()["value"].0).unwrap();
    let endpoint = clusters
        .get("pki")
        .await
        .unwrap()
        .spec
        .control_plane_endpoint
        .unwrap();
    assert_eq!(
        kc["clusters"][0]["cluster"]["server"],
        format!("https://{}:{}", endpoint.host, endpoint.port)
    );
    let decode = |v: &Value| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        decode(&kc["clusters"][0]["cluster"]["certificate-authority-data"]),
        ca_pem,
        "the kubeconfig trusts the stored CA"
    );
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok()
    {
        let dir = temp_dir("kcp");
        std::fs::write(dir.join("ca.crt"), &ca_pem).unwrap();
        std::fs::write(
            dir.join("admin.crt"),
            decode(&kc["users"][0]["user"]["client-certificate-data"]),
        )
        .unwrap();
        let out = std::process::Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(dir.join("ca.crt"))
            .arg(dir.join("admin.crt"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the admin certificate chains to the cluster CA: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let status = kcp.get("pki-cp").await.unwrap();
    let certs = status
        .data
        .pointer("/status/conditions")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "CertificatesAvailable")
        .unwrap()
        .clone();
    assert_eq!(certs["status"], "True");

    // Never regenerated: nothing changes across reconciles, and a lost Secret is recreated alone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (name, rv) in [
        "pki-ca",
        "pki-etcd",
        "pki-proxy",
        "pki-sa",
        "pki-kubeconfig",
    ]
    .iter()
    .zip(&versions)
    {
        assert_eq!(
            &secrets.get(name).await.unwrap().metadata.resource_version,
            rv,
            "{name} was rewritten"
        );
    }
    secrets
        .delete("pki-etcd", &Default::default())
        .await
        .unwrap();
    kcp.patch(
        "pki-cp",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": {"nudge": "1"}}})),
    )
    .await
    .unwrap();
    eventually_async(20, "the etcd CA to come back", async || {
        secrets.get_opt("pki-etcd").await.ok()?
    })
    .await;
    let ca_after = String::from_utf8(
        secrets.get("pki-ca").await.unwrap().data.unwrap()["tls.crt"]
            .0
            .clone(),
    )
    .unwrap();
    assert_eq!(ca_after, ca_pem, "the cluster CA is untouched");

    // The Secrets go with the control plane.
    clusters.delete("pki", &Default::default()).await.unwrap();
    eventually_async(20, "the Secrets to be collected", async || {
        secrets
            .get_opt("pki-ca")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    manager.abort();
    p.shutdown().await;
}

/// The admin kubeconfig is renewed when its client certificate nears expiry by the
/// controller's clock, not the wall clock: with a stepped clock the renewal happens at once,
/// with no sleeping for months, and not before it is due.
#[tokio::test]
async fn the_admin_kubeconfig_is_renewed_when_the_injected_clock_says_it_is_due() {
    use std::sync::atomic::{AtomicI64, Ordering};

    use k8s_openapi::api::core::v1::Secret;
    let p = plane().await;
    let c = client(&p).await;
    let offset_days = Arc::new(AtomicI64::new(0));
    let clock: slipway_runtime::Clock = {
        let offset_days = offset_days.clone();
        Arc::new(move || {
            jiff::Timestamp::now()
                + jiff::SignedDuration::from_hours(24 * offset_days.load(Ordering::SeqCst))
        })
    };
    let ctx = Arc::new(slipway_runtime::Context::with_clock(c.clone(), clock));
    let manager = tokio::spawn(slipway_controller::manager::run_with(
        ctx,
        manager_options(),
        plugins(),
    ));
    let Objects { kcp, .. } = create_cluster(&c, "clock", json!({})).await;
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "default");
    let value = |s: &Secret| s.data.as_ref().unwrap()["value"].0.clone();
    let first = eventually_async(20, "the kubeconfig Secret", async || {
        secrets.get_opt("clock-kubeconfig").await.ok()?
    })
    .await;
    let nudge = async |n: &str| {
        kcp.patch(
            "clock-cp",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"nudge": n}}})),
        )
        .await
        .unwrap();
    };

    // A day later by the clock: a one-year certificate is not due, nothing is rewritten.
    offset_days.store(1, Ordering::SeqCst);
    nudge("1").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let same = secrets.get("clock-kubeconfig").await.unwrap();
    assert_eq!(
        same.metadata.resource_version,
        first.metadata.resource_version
    );

    // 340 days on: under 30 days left, so the next reconcile issues a new client certificate.
    offset_days.store(340, Ordering::SeqCst);
    nudge("2").await;
    let renewed = eventually_async(20, "the kubeconfig to be renewed", async || {
        let s = secrets.get("clock-kubeconfig").await.ok()?;
        (value(&s) != value(&first)).then_some(s)
    })
    .await;
    let kc: Value = serde_saphyr::from_slice(&value(&renewed)).unwrap();
    let old: Value = serde_saphyr::from_slice(&value(&first)).unwrap();
    assert_ne!(
        kc["users"][0]["user"]["client-certificate-data"],
        old["users"][0]["user"]["client-certificate-data"],
        "a new client certificate"
    );
    assert_eq!(
        kc["clusters"][0]["cluster"]["certificate-authority-data"],
        old["clusters"][0]["cluster"]["certificate-authority-data"],
        "the same cluster CA"
    );
    manager.abort();
    p.shutdown().await;
}

/// The in-memory provider is all these tests need.
fn plugins() -> slipway_providers::Plugins {
    slipway_providers::Plugins::default().with(slipway_inmemory::plugin())
}

fn manager_options() -> slipway_controller::manager::Options {
    slipway_controller::manager::Options {
        data_dir: temp_dir("controller-test"),
        ..Default::default()
    }
}
