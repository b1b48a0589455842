//! kubeadm configuration documents (ClusterConfiguration + InitConfiguration, or
//! JoinConfiguration) built from a KubeadmConfigSpec and its Cluster, in the kubeadm API
//! version the Kubernetes version needs: `kubeadm.k8s.io/v1beta3` below 1.31, `v1beta4` from 1.31.
//!
//! The differences handled: v1beta4 writes extra arguments as `[{name, value}]` lists (v1beta3 as
//! maps), and takes timeouts in `timeouts` (v1beta3 has only `apiServer.timeoutForControlPlane`).

use serde_json::{Map, Value, json};
use slipway_api::{
    bootstrap::{Arg, ControlPlaneComponent, KubeadmConfigSpec, NodeRegistrationOptions},
    common::ApiEndpoint,
};

use super::BootstrapError;

/// kubeadm API versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KubeadmApi {
    /// `kubeadm.k8s.io/v1beta3` (Kubernetes < 1.31).
    V1Beta3,
    /// `kubeadm.k8s.io/v1beta4` (Kubernetes >= 1.31).
    V1Beta4,
}

impl KubeadmApi {
    /// The API version for a Kubernetes version such as `v1.31.0`.
    pub fn for_version(version: &str) -> Result<Self, BootstrapError> {
        let v = version.trim_start_matches('v');
        let mut parts = v.split('.');
        let (major, minor) = (
            parts.next().and_then(|m| m.parse::<u32>().ok()),
            parts.next().and_then(|m| m.parse::<u32>().ok()),
        );
        match (major, minor) {
            (Some(1), Some(m)) if m < 31 => Ok(Self::V1Beta3),
            (Some(1), Some(_)) => Ok(Self::V1Beta4),
            _ => Err(BootstrapError::invalid(
                "version",
                format!("{version:?} is not a Kubernetes version such as v1.31.0"),
            )),
        }
    }

    /// The apiVersion string.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::V1Beta3 => "kubeadm.k8s.io/v1beta3",
            Self::V1Beta4 => "kubeadm.k8s.io/v1beta4",
        }
    }

    fn args(self, args: &[Arg]) -> Value {
        match self {
            Self::V1Beta3 => Value::Object(
                args.iter()
                    .map(|a| (a.name.clone(), json!(a.value)))
                    .collect(),
            ),
            Self::V1Beta4 => json!(
                args.iter()
                    .map(|a| json!({"name": a.name, "value": a.value}))
                    .collect::<Vec<_>>()
            ),
        }
    }
}

/// What the documents need from the Cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterInfo {
    /// Cluster name.
    pub name: String,
    /// Control-plane endpoint.
    pub endpoint: ApiEndpoint,
    /// Kubernetes version, e.g. `v1.31.0`.
    pub version: String,
    /// Pod CIDRs (comma-joined into podSubnet).
    pub pod_cidrs: Vec<String>,
    /// Service CIDRs (comma-joined into serviceSubnet).
    pub service_cidrs: Vec<String>,
    /// Service DNS domain.
    pub dns_domain: Option<String>,
}

fn insert(m: &mut Map<String, Value>, k: &str, v: Value) {
    let empty = v.is_null()
        || v.as_object().is_some_and(Map::is_empty)
        || v.as_array().is_some_and(Vec::is_empty)
        || v.as_str() == Some("");
    if !empty {
        m.insert(k.into(), v);
    }
}

fn component(
    api: KubeadmApi,
    c: Option<&ControlPlaneComponent>,
    cert_sans: Option<&Vec<String>>,
) -> Value {
    let mut m = Map::new();
    if let Some(c) = c {
        if let Some(a) = &c.extra_args {
            insert(&mut m, "extraArgs", api.args(a));
        }
        insert(
            &mut m,
            "extraVolumes",
            serde_json::to_value(&c.extra_volumes).unwrap_or(Value::Null),
        );
        if api == KubeadmApi::V1Beta4 {
            insert(
                &mut m,
                "extraEnvs",
                serde_json::to_value(&c.extra_envs).unwrap_or(Value::Null),
            );
        }
    }
    if let Some(s) = cert_sans {
        insert(&mut m, "certSANs", json!(s));
    }
    Value::Object(m)
}

/// `ClusterConfiguration`.
pub fn cluster_configuration(
    spec: &KubeadmConfigSpec,
    cluster: &ClusterInfo,
    api: KubeadmApi,
) -> Value {
    let cc = spec.cluster_configuration.clone().unwrap_or_default();
    let mut m = Map::new();
    m.insert("apiVersion".into(), json!(api.api_version()));
    m.insert("kind".into(), json!("ClusterConfiguration"));
    m.insert("clusterName".into(), json!(cluster.name));
    m.insert(
        "controlPlaneEndpoint".into(),
        json!(format!(
            "{}:{}",
            cluster.endpoint.host, cluster.endpoint.port
        )),
    );
    m.insert("kubernetesVersion".into(), json!(cluster.version));
    let mut net = Map::new();
    insert(&mut net, "dnsDomain", json!(cluster.dns_domain));
    insert(&mut net, "podSubnet", json!(cluster.pod_cidrs.join(",")));
    insert(
        &mut net,
        "serviceSubnet",
        json!(cluster.service_cidrs.join(",")),
    );
    insert(&mut m, "networking", Value::Object(net));
    let api_server = cc.api_server.as_ref().map(|a| ControlPlaneComponent {
        extra_args: a.extra_args.clone(),
        extra_volumes: a.extra_volumes.clone(),
        extra_envs: a.extra_envs.clone(),
    });
    insert(
        &mut m,
        "apiServer",
        component(
            api,
            api_server.as_ref(),
            cc.api_server.as_ref().and_then(|a| a.cert_sans.as_ref()),
        ),
    );
    insert(
        &mut m,
        "controllerManager",
        component(api, cc.controller_manager.as_ref(), None),
    );
    insert(
        &mut m,
        "scheduler",
        component(api, cc.scheduler.as_ref(), None),
    );
    if let Some(etcd) = &cc.etcd {
        let mut e = Map::new();
        if let Some(local) = &etcd.local {
            let mut l = Map::new();
            insert(&mut l, "imageRepository", json!(local.image_repository));
            insert(&mut l, "imageTag", json!(local.image_tag));
            insert(&mut l, "dataDir", json!(local.data_dir));
            if let Some(a) = &local.extra_args {
                insert(&mut l, "extraArgs", api.args(a));
            }
            insert(&mut l, "serverCertSANs", json!(local.server_cert_sans));
            insert(&mut l, "peerCertSANs", json!(local.peer_cert_sans));
            e.insert("local".into(), Value::Object(l));
        }
        if let Some(ext) = &etcd.external {
            e.insert("external".into(), json!({"endpoints": ext.endpoints, "caFile": ext.ca_file, "certFile": ext.cert_file, "keyFile": ext.key_file}));
        }
        insert(&mut m, "etcd", Value::Object(e));
    }
    insert(
        &mut m,
        "dns",
        serde_json::to_value(&cc.dns).unwrap_or(Value::Null),
    );
    insert(&mut m, "certificatesDir", json!(cc.certificates_dir));
    insert(&mut m, "imageRepository", json!(cc.image_repository));
    insert(&mut m, "featureGates", json!(cc.feature_gates));
    if api == KubeadmApi::V1Beta4 {
        insert(
            &mut m,
            "caCertificateValidityPeriod",
            json!(
                cc.ca_certificate_validity_period_days
                    .map(|d| format!("{}h0m0s", d * 24))
            ),
        );
        insert(
            &mut m,
            "certificateValidityPeriod",
            json!(
                cc.certificate_validity_period_days
                    .map(|d| format!("{}h0m0s", d * 24))
            ),
        );
        insert(
            &mut m,
            "encryptionAlgorithm",
            json!(cc.encryption_algorithm),
        );
    }
    Value::Object(m)
}

fn node_registration(api: KubeadmApi, n: Option<&NodeRegistrationOptions>) -> Value {
    let Some(n) = n else { return json!({}) };
    let mut m = Map::new();
    insert(&mut m, "name", json!(n.name));
    insert(&mut m, "criSocket", json!(n.cri_socket));
    if let Some(t) = &n.taints {
        // An explicit empty list means "no taints" and must reach kubeadm as [].
        m.insert(
            "taints".into(),
            serde_json::to_value(t).unwrap_or(json!([])),
        );
    }
    if let Some(a) = &n.kubelet_extra_args {
        insert(&mut m, "kubeletExtraArgs", api.args(a));
    }
    insert(
        &mut m,
        "ignorePreflightErrors",
        json!(n.ignore_preflight_errors),
    );
    insert(&mut m, "imagePullPolicy", json!(n.image_pull_policy));
    if api == KubeadmApi::V1Beta4 {
        insert(&mut m, "imagePullSerial", json!(n.image_pull_serial));
    }
    Value::Object(m)
}

fn duration(secs: Option<i32>) -> Value {
    secs.map_or(Value::Null, |s| json!(format!("{s}s")))
}

/// `InitConfiguration` for the first control-plane machine.
pub fn init_configuration(
    spec: &KubeadmConfigSpec,
    api: KubeadmApi,
    bootstrap_token: Option<&str>,
) -> Value {
    let ic = spec.init_configuration.clone().unwrap_or_default();
    let mut m = Map::new();
    m.insert("apiVersion".into(), json!(api.api_version()));
    m.insert("kind".into(), json!("InitConfiguration"));
    let mut tokens: Vec<Value> = ic.bootstrap_tokens.iter().flatten().map(|t| json!({"token": t.token, "ttl": duration(t.ttl_seconds), "usages": t.usages, "groups": t.groups, "description": t.description})).collect();
    tokens.iter_mut().for_each(crate::kubeadm::drop_nulls);
    if let Some(t) = bootstrap_token
        && tokens.is_empty()
    {
        tokens.push(json!({"token": t, "ttl": "15m0s", "usages": ["signing", "authentication"], "groups": ["system:bootstrappers:kubeadm:default-node-token"]}));
    }
    insert(&mut m, "bootstrapTokens", json!(tokens));
    m.insert(
        "nodeRegistration".into(),
        node_registration(api, ic.node_registration.as_ref()),
    );
    insert(
        &mut m,
        "localAPIEndpoint",
        serde_json::to_value(&ic.local_api_endpoint).unwrap_or(Value::Null),
    );
    insert(&mut m, "skipPhases", json!(ic.skip_phases));
    insert(
        &mut m,
        "patches",
        serde_json::to_value(&ic.patches).unwrap_or(Value::Null),
    );
    if api == KubeadmApi::V1Beta4
        && let Some(t) = &ic.timeouts
    {
        let mut tm = Map::new();
        insert(
            &mut tm,
            "controlPlaneComponentHealthCheck",
            duration(t.control_plane_component_health_check_seconds),
        );
        insert(
            &mut tm,
            "kubeletHealthCheck",
            duration(t.kubelet_health_check_seconds),
        );
        insert(
            &mut tm,
            "kubernetesAPICall",
            duration(t.kubernetes_api_call_seconds),
        );
        insert(&mut tm, "etcdAPICall", duration(t.etcd_api_call_seconds));
        insert(&mut tm, "tlsBootstrap", duration(t.tls_bootstrap_seconds));
        insert(&mut tm, "discovery", duration(t.discovery_seconds));
        insert(&mut m, "timeouts", Value::Object(tm));
    }
    Value::Object(m)
}

/// How a joining machine finds and trusts the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinDiscovery {
    /// Bootstrap token `abcdef.0123456789abcdef`.
    pub token: String,
    /// `host:port` of the API server.
    pub api_server_endpoint: String,
    /// `sha256:<hex>` of the CA public key.
    pub ca_cert_hashes: Vec<String>,
}

/// `JoinConfiguration` for a worker, or (with `control_plane`) a control-plane join.
pub fn join_configuration(
    spec: &KubeadmConfigSpec,
    api: KubeadmApi,
    discovery: &JoinDiscovery,
    control_plane: bool,
) -> Value {
    let jc = spec.join_configuration.clone().unwrap_or_default();
    let mut m = Map::new();
    m.insert("apiVersion".into(), json!(api.api_version()));
    m.insert("kind".into(), json!("JoinConfiguration"));
    m.insert(
        "nodeRegistration".into(),
        node_registration(api, jc.node_registration.as_ref()),
    );
    insert(&mut m, "caCertPath", json!(jc.ca_cert_path));
    // Discovery fields left empty in the spec are filled from the cluster, as CABPK does.
    let given = jc
        .discovery
        .as_ref()
        .and_then(|d| d.bootstrap_token.clone())
        .unwrap_or_default();
    let bt = json!({
        "token": given.token.unwrap_or_else(|| discovery.token.clone()),
        "apiServerEndpoint": given.api_server_endpoint.unwrap_or_else(|| discovery.api_server_endpoint.clone()),
        "caCertHashes": given.ca_cert_hashes.unwrap_or_else(|| discovery.ca_cert_hashes.clone()),
        "unsafeSkipCAVerification": given.unsafe_skip_ca_verification.unwrap_or(false),
    });
    m.insert("discovery".into(), json!({"bootstrapToken": bt}));
    if control_plane {
        let local = jc.control_plane.and_then(|c| c.local_api_endpoint);
        m.insert("controlPlane".into(), json!({"localAPIEndpoint": serde_json::to_value(local).ok().filter(|v| !v.is_null()).unwrap_or(json!({}))}));
    }
    insert(&mut m, "skipPhases", json!(jc.skip_phases));
    insert(
        &mut m,
        "patches",
        serde_json::to_value(&jc.patches).unwrap_or(Value::Null),
    );
    Value::Object(m)
}

pub(crate) fn drop_nulls(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|_, x| !x.is_null());
        m.values_mut().for_each(drop_nulls);
    }
}

/// Documents as one multi-document YAML stream.
pub fn to_yaml(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| {
            format!(
                "---\n{}",
                serde_saphyr::to_string(d).expect("JSON values serialize to YAML")
            )
        })
        .collect()
}
