//! What the fault tests share: providers against an endpoint, scopes, and core's part of a
//! reconcile (the provider's status written back, the time moved on).
#![allow(dead_code)]

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use slipway_api::{Cluster, Machine, cluster::ClusterSpec, machine::MachineSpec, names::labels};
use slipway_aws::{
    Aws,
    api::{AWSCluster, AWSMachine, AmiReference, AwsClusterSpec, AwsMachineSpec},
    clients::Settings,
};
use slipway_providers::{
    BootstrapData, BootstrapFormat, ClusterOutcome, ClusterScope, Deletion, InfrastructureProvider,
    MachineOutcome, MachineScope,
};
use slipway_testsupport::moto::{CREDENTIALS, REGION};

/// A provider (a fresh "process": its own ledger) talking to `url`, with a consistency window.
pub fn provider(url: &str, window: Duration) -> Aws {
    Aws::with_settings(Settings {
        endpoint_url: Some(url.into()),
        region: Some(REGION.into()),
        credentials: Some((CREDENTIALS.0.into(), CREDENTIALS.1.into())),
    })
    .with_consistency_window(window)
}

/// The scope of cluster `name` in namespace `default`, with a UID.
pub fn cluster_scope(name: &str) -> ClusterScope<AWSCluster> {
    let mut cluster = Cluster::new(name, ClusterSpec::default());
    cluster.metadata.namespace = Some("default".into());
    let mut infra = AWSCluster::new(name, AwsClusterSpec::default());
    infra.metadata.namespace = Some("default".into());
    infra.metadata.uid = Some(format!("0000-uid-{name}"));
    infra.metadata.labels = Some(BTreeMap::from([(
        labels::CLUSTER_NAME.to_string(),
        name.to_string(),
    )]));
    ClusterScope {
        cluster: Arc::new(cluster),
        infra: Arc::new(infra),
        topology: None,
        now: jiff::Timestamp::now(),
    }
}

/// A control-plane machine `name` of the cluster in `s`.
pub fn machine_scope(
    s: &ClusterScope<AWSCluster>,
    name: &str,
) -> MachineScope<AWSCluster, AWSMachine> {
    let mut m = Machine::new(
        name,
        MachineSpec {
            cluster_name: s.cluster.metadata.name.clone().unwrap(),
            version: Some("v1.31.0".into()),
            ..Default::default()
        },
    );
    m.metadata.namespace = Some("default".into());
    m.metadata.labels = Some(BTreeMap::from([(
        labels::CONTROL_PLANE.to_string(),
        String::new(),
    )]));
    let mut am = AWSMachine::new(
        name,
        AwsMachineSpec {
            instance_type: "t3.medium".into(),
            ami: Some(AmiReference {
                id: Some("ami-760aaa0f".into()),
                eks_lookup_type: None,
            }),
            ssh_key_name: Some(String::new()),
            ..Default::default()
        },
    );
    am.metadata.namespace = Some("default".into());
    am.metadata.uid = Some(format!("0000-uid-{name}"));
    MachineScope {
        cluster: s.cluster.clone(),
        infra_cluster: s.infra.clone(),
        machine: Arc::new(m),
        infra: Arc::new(am),
        now: jiff::Timestamp::now(),
    }
}

/// Bootstrap data for tests.
pub fn bootstrap() -> BootstrapData {
    BootstrapData {
        value: b"#cloud-config\n".to_vec(),
        format: BootstrapFormat::CloudConfig,
    }
}

/// `obj` with `status`'s top-level fields merged into its status, as core does.
pub fn merged<K: serde::Serialize + serde::de::DeserializeOwned>(
    obj: &K,
    status: &serde_json::Value,
) -> K {
    let mut v = serde_json::to_value(obj).unwrap();
    if let Some(m) = status.as_object() {
        let st = v
            .as_object_mut()
            .unwrap()
            .entry("status")
            .or_insert_with(|| serde_json::json!({}));
        if st.is_null() {
            *st = serde_json::json!({});
        }
        for (k, x) in m {
            st[k] = x.clone();
        }
    }
    serde_json::from_value(v).unwrap()
}

/// What a pass came to.
#[derive(Debug, PartialEq)]
pub enum Pass {
    /// Ready (or Gone, for deletes).
    Done,
    /// More to do, after this long.
    Again(Duration),
    /// The provider failed (transient); core would retry.
    Failed(String),
    /// The "process" was killed mid-pass: nothing of the pass was written.
    Killed,
}

/// One cluster reconcile, killed after `kill` if given (the pass future dropped, its status
/// never written, as a SIGKILL leaves it).
pub async fn cluster_pass(
    p: &Aws,
    s: &mut ClusterScope<AWSCluster>,
    kill: Option<Duration>,
) -> Pass {
    s.now = jiff::Timestamp::now();
    let fut = p.reconcile_cluster(s);
    let out = match kill {
        Some(k) => match tokio::time::timeout(k, fut).await {
            Ok(o) => o,
            Err(_) => return Pass::Killed,
        },
        None => fut.await,
    };
    match out {
        Err(e) => {
            assert!(!e.is_terminal(), "terminal: {e}");
            Pass::Failed(e.to_string())
        }
        Ok(ClusterOutcome::Ready(r)) => {
            let mut infra = merged(s.infra.as_ref(), &r.status);
            infra
                .status
                .get_or_insert_with(Default::default)
                .initialization = Some(slipway_api::common::ProvisionedInitialization {
                provisioned: Some(true),
            });
            s.infra = Arc::new(infra);
            Pass::Done
        }
        Ok(ClusterOutcome::Provisioning(pr)) => {
            s.infra = Arc::new(merged(s.infra.as_ref(), &pr.status));
            Pass::Again(pr.requeue_after)
        }
    }
}

/// One machine reconcile, killed after `kill` if given.
pub async fn machine_pass(
    p: &Aws,
    ms: &mut MachineScope<AWSCluster, AWSMachine>,
    kill: Option<Duration>,
) -> Pass {
    ms.now = jiff::Timestamp::now();
    let data = bootstrap();
    let fut = p.reconcile_machine(ms, &data);
    let out = match kill {
        Some(k) => match tokio::time::timeout(k, fut).await {
            Ok(o) => o,
            Err(_) => return Pass::Killed,
        },
        None => fut.await,
    };
    match out {
        Err(e) => {
            assert!(!e.is_terminal(), "terminal: {e}");
            Pass::Failed(e.to_string())
        }
        Ok(MachineOutcome::Ready(r)) => {
            ms.infra = Arc::new(merged(ms.infra.as_ref(), &r.status));
            Pass::Done
        }
        Ok(MachineOutcome::Provisioning(pr)) => {
            ms.infra = Arc::new(merged(ms.infra.as_ref(), &pr.status));
            Pass::Again(pr.requeue_after)
        }
    }
}

/// One delete pass of a machine, killed after `kill` if given.
pub async fn machine_delete_pass(
    p: &Aws,
    ms: &mut MachineScope<AWSCluster, AWSMachine>,
    kill: Option<Duration>,
) -> Pass {
    ms.now = jiff::Timestamp::now();
    let fut = p.delete_machine(ms);
    let out = match kill {
        Some(k) => match tokio::time::timeout(k, fut).await {
            Ok(o) => o,
            Err(_) => return Pass::Killed,
        },
        None => fut.await,
    };
    match out {
        Err(e) => Pass::Failed(e.to_string()),
        Ok(Deletion::Gone) => Pass::Done,
        Ok(Deletion::InProgress(pr)) => Pass::Again(pr.requeue_after),
    }
}

/// One delete pass of a cluster, killed after `kill` if given.
pub async fn cluster_delete_pass(
    p: &Aws,
    s: &mut ClusterScope<AWSCluster>,
    kill: Option<Duration>,
) -> Pass {
    s.now = jiff::Timestamp::now();
    let fut = p.delete_cluster(s);
    let out = match kill {
        Some(k) => match tokio::time::timeout(k, fut).await {
            Ok(o) => o,
            Err(_) => return Pass::Killed,
        },
        None => fut.await,
    };
    match out {
        Err(e) => Pass::Failed(e.to_string()),
        Ok(Deletion::Gone) => Pass::Done,
        Ok(Deletion::InProgress(pr)) => Pass::Again(pr.requeue_after),
    }
}
