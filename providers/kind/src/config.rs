//! The kind cluster config (`kind.x-k8s.io/v1alpha4` `Cluster`) for a Cluster, and the node
//! layout kind will give it: pure functions, no I/O.
//!
//! Nodes come in a fixed order (control planes, then each MachineDeployment's workers, pools
//! sorted by name), and kind names them by role and ordinal (`<name>-control-plane`,
//! `<name>-control-plane2`, `<name>-worker`, ...), so the layout says which pool each node
//! container belongs to before it exists.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use slipway_api::{Cluster, common::ApiEndpoint};

use slipway_providers::{Pool, ProviderError, Topology};

use crate::api::KindClusterSpec;

/// kind's node roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A control-plane node.
    ControlPlane,
    /// A worker node.
    Worker,
}

impl Role {
    /// The role as kind spells it in node names and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ControlPlane => "control-plane",
            Self::Worker => "worker",
        }
    }
}

/// One node of the layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSlot {
    /// Container (and Node) name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Control plane or MachineDeployment the node was made for.
    pub pool: String,
    /// Node image.
    pub image: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KindConfig<'a> {
    kind: &'static str,
    api_version: &'static str,
    name: &'a str,
    nodes: Vec<KindNode>,
    networking: Networking,
}

#[derive(Serialize)]
struct KindNode {
    role: Role,
    image: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Networking {
    #[serde(skip_serializing_if = "Option::is_none")]
    api_server_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_server_port: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod_subnet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_subnet: Option<String>,
    #[serde(rename = "disableDefaultCNI", skip_serializing_if = "Option::is_none")]
    disable_default_cni: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kube_proxy_mode: Option<String>,
}

/// The name of the kind cluster of a KindCluster.
pub fn cluster_name(spec: &KindClusterSpec, object_name: &str) -> String {
    spec.kind_cluster_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| object_name.to_string())
}

/// The kind config (YAML) and the layout of its nodes.
pub fn render(
    name: &str,
    spec: &KindClusterSpec,
    cluster: &Cluster,
    topology: &Topology,
) -> Result<(String, Vec<NodeSlot>), ProviderError> {
    if topology.control_plane.replicas == 0 {
        return Err(ProviderError::terminal(format!(
            "control plane {:?} asks for 0 replicas; a kind cluster needs at least one \
             control-plane node",
            topology.control_plane.name
        )));
    }
    let layout = layout(name, spec, topology)?;
    let nodes = layout
        .iter()
        .map(|slot| {
            let pool = match slot.role {
                Role::ControlPlane => Some(&topology.control_plane),
                Role::Worker => topology.workers.iter().find(|p| p.name == slot.pool),
            };
            KindNode {
                role: slot.role,
                image: slot.image.clone(),
                labels: pool.map(node_labels).unwrap_or_default(),
            }
        })
        .collect();
    let net = spec.networking.clone().unwrap_or_default();
    let cn = cluster.spec.cluster_network.as_ref();
    let first = |r: Option<&slipway_api::cluster::NetworkRanges>| {
        r.and_then(|r| r.cidr_blocks.first().cloned())
    };
    let config = KindConfig {
        kind: "Cluster",
        api_version: "kind.x-k8s.io/v1alpha4",
        name,
        nodes,
        networking: Networking {
            api_server_address: net.api_server_address,
            api_server_port: net.api_server_port.filter(|p| *p != 0),
            pod_subnet: first(cn.and_then(|c| c.pods.as_ref())),
            service_subnet: first(cn.and_then(|c| c.services.as_ref())),
            disable_default_cni: net.disable_default_cni,
            kube_proxy_mode: net.kube_proxy_mode,
        },
    };
    let yaml = serde_saphyr::to_string(&config)
        .map_err(|e| ProviderError::terminal(format!("rendering the kind config: {e}")))?;
    Ok((yaml, layout))
}

/// The nodes kind will make, in config order, with kind's names.
pub fn layout(
    name: &str,
    spec: &KindClusterSpec,
    topology: &Topology,
) -> Result<Vec<NodeSlot>, ProviderError> {
    let mut out = Vec::new();
    let mut pools: Vec<(&Pool, Role)> = vec![(&topology.control_plane, Role::ControlPlane)];
    let mut workers: Vec<&Pool> = topology.workers.iter().collect();
    workers.sort_by(|a, b| a.name.cmp(&b.name));
    pools.extend(workers.into_iter().map(|p| (p, Role::Worker)));
    let mut counts: BTreeMap<Role, u32> = BTreeMap::new();
    for (pool, role) in pools {
        let image = image(spec, pool, &topology.control_plane)?;
        for _ in 0..pool.replicas {
            let n = counts.entry(role).or_default();
            *n += 1;
            out.push(NodeSlot {
                name: node_name(name, role, *n),
                role,
                pool: pool.name.clone(),
                image: image.clone(),
            });
        }
    }
    Ok(out)
}

/// kind's container name of the `ordinal`th (from 1) node of `role`.
pub fn node_name(cluster: &str, role: Role, ordinal: u32) -> String {
    if ordinal <= 1 {
        format!("{cluster}-{}", role.as_str())
    } else {
        format!("{cluster}-{}{ordinal}", role.as_str())
    }
}

/// Role and ordinal of a kind node container name, if it is one of `cluster`'s.
pub fn parse_node_name(cluster: &str, node: &str) -> Option<(Role, u32)> {
    let rest = node.strip_prefix(cluster)?.strip_prefix('-')?;
    for role in [Role::ControlPlane, Role::Worker] {
        if let Some(n) = rest.strip_prefix(role.as_str()) {
            if n.is_empty() {
                return Some((role, 1));
            }
            if let Ok(k) = n.parse::<u32>()
                && k >= 2
                && !n.starts_with('0')
            {
                return Some((role, k));
            }
        }
    }
    None
}

/// The node image of a pool: the KindCluster's `nodeImage`, else `kindest/node:<version>`.
pub fn image(
    spec: &KindClusterSpec,
    pool: &Pool,
    control_plane: &Pool,
) -> Result<String, ProviderError> {
    if let Some(i) = spec.node_image.as_ref().filter(|i| !i.is_empty()) {
        return Ok(i.clone());
    }
    let version = pool
        .version
        .as_ref()
        .or(control_plane.version.as_ref())
        .ok_or_else(|| {
            ProviderError::terminal(format!(
                "{:?} sets no Kubernetes version and the KindCluster no nodeImage, so there is \
                 no kindest/node image to use",
                pool.name
            ))
        })?;
    if !is_version(version) {
        return Err(ProviderError::terminal(format!(
            "version {version:?} of {:?} is not of the form v1.MINOR.PATCH, which \
             kindest/node images are tagged with",
            pool.name
        )));
    }
    Ok(format!("kindest/node:{version}"))
}

fn is_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let parts: Vec<&str> = rest.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// The Kubernetes version of a kindest/node image, if its tag says it.
pub fn image_version(image: &str) -> Option<&str> {
    let name = image.split('@').next()?;
    let tag = name.rsplit_once(':')?.1;
    (!tag.contains('/') && is_version(tag)).then_some(tag)
}

fn node_labels(pool: &Pool) -> BTreeMap<String, String> {
    pool.machine_template
        .get("nodeLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The `https://host:port` server of a kubeconfig's first cluster.
pub fn endpoint_of(kubeconfig: &str) -> Option<ApiEndpoint> {
    let v: Value = serde_saphyr::from_str(kubeconfig).ok()?;
    let server = v["clusters"][0]["cluster"]["server"].as_str()?;
    let hostport = server.strip_prefix("https://")?.trim_end_matches('/');
    let (host, port) = hostport.rsplit_once(':')?;
    Some(ApiEndpoint {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port: port.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use slipway_api::cluster::{ClusterNetwork, ClusterSpec, NetworkRanges};

    use super::*;

    fn pool(name: &str, replicas: u32, version: Option<&str>) -> Pool {
        Pool {
            name: name.into(),
            replicas,
            version: version.map(Into::into),
            machine_template: Value::Null,
        }
    }

    fn topo(cp: u32, workers: &[(&str, u32)]) -> Topology {
        Topology {
            control_plane: pool("c1-control-plane", cp, Some("v1.31.0")),
            workers: workers
                .iter()
                .map(|(n, r)| pool(n, *r, Some("v1.31.0")))
                .collect(),
        }
    }

    fn parsed(yaml: &str) -> Value {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn one_control_plane_and_no_workers() {
        let cluster = Cluster::new("c1", ClusterSpec::default());
        let (yaml, layout) =
            render("c1", &KindClusterSpec::default(), &cluster, &topo(1, &[])).unwrap();
        let v = parsed(&yaml);
        assert_eq!(v["kind"], "Cluster");
        assert_eq!(v["apiVersion"], "kind.x-k8s.io/v1alpha4");
        assert_eq!(v["name"], "c1");
        assert_eq!(
            v["nodes"],
            json!([{"role": "control-plane", "image": "kindest/node:v1.31.0"}])
        );
        assert_eq!(v["networking"], json!({}));
        assert_eq!(layout.len(), 1);
        assert_eq!(layout[0].name, "c1-control-plane");
    }

    #[test]
    fn three_control_planes_and_two_pools_with_subnets_labels_and_versions() {
        let spec = ClusterSpec {
            cluster_network: Some(ClusterNetwork {
                pods: Some(NetworkRanges {
                    cidr_blocks: vec!["192.168.0.0/16".into()],
                }),
                services: Some(NetworkRanges {
                    cidr_blocks: vec!["10.128.0.0/12".into()],
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let cluster = Cluster::new("c1", spec);
        let mut t = topo(3, &[("md-b", 1), ("md-a", 2)]);
        t.workers[0].version = Some("v1.30.4".into());
        t.workers[1].machine_template = json!({"nodeLabels": {"pool": "a"}});
        let kspec = KindClusterSpec {
            networking: Some(crate::api::KindNetworking {
                api_server_address: Some("127.0.0.1".into()),
                api_server_port: Some(0),
                kube_proxy_mode: Some("ipvs".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (yaml, layout) = render("c1", &kspec, &cluster, &t).unwrap();
        let v = parsed(&yaml);
        let roles: Vec<&str> = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["role"].as_str().unwrap())
            .collect();
        assert_eq!(
            roles,
            [
                "control-plane",
                "control-plane",
                "control-plane",
                "worker",
                "worker",
                "worker"
            ]
        );
        // Pools sorted by name: md-a (labelled, v1.31.0) before md-b (v1.30.4).
        assert_eq!(v["nodes"][3]["labels"], json!({"pool": "a"}));
        assert_eq!(v["nodes"][4]["image"], "kindest/node:v1.31.0");
        assert_eq!(v["nodes"][5]["image"], "kindest/node:v1.30.4");
        assert_eq!(v["nodes"][5].get("labels"), None);
        assert_eq!(
            v["networking"],
            json!({"apiServerAddress": "127.0.0.1", "podSubnet": "192.168.0.0/16",
                   "serviceSubnet": "10.128.0.0/12", "kubeProxyMode": "ipvs"})
        );
        let names: Vec<(&str, &str)> = layout
            .iter()
            .map(|s| (s.name.as_str(), s.pool.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("c1-control-plane", "c1-control-plane"),
                ("c1-control-plane2", "c1-control-plane"),
                ("c1-control-plane3", "c1-control-plane"),
                ("c1-worker", "md-a"),
                ("c1-worker2", "md-a"),
                ("c1-worker3", "md-b"),
            ]
        );
    }

    #[test]
    fn a_node_image_overrides_every_version() {
        let cluster = Cluster::new("c1", ClusterSpec::default());
        let spec = KindClusterSpec {
            node_image: Some("registry.local/node:v1.32.1@sha256:abc".into()),
            ..Default::default()
        };
        let mut t = topo(1, &[("md-0", 1)]);
        t.control_plane.version = None;
        let (yaml, _) = render("c1", &spec, &cluster, &t).unwrap();
        let v = parsed(&yaml);
        assert_eq!(
            v["nodes"][0]["image"],
            "registry.local/node:v1.32.1@sha256:abc"
        );
        assert_eq!(
            image_version("registry.local/node:v1.32.1@sha256:abc"),
            Some("v1.32.1")
        );
        assert_eq!(image_version("kindest/node:latest"), None);
        assert_eq!(image_version("localhost:5000/node"), None);
    }

    #[test]
    fn bad_shapes_and_versions_are_terminal_and_say_why() {
        let cluster = Cluster::new("c1", ClusterSpec::default());
        let e = render("c1", &KindClusterSpec::default(), &cluster, &topo(0, &[])).unwrap_err();
        assert!(
            e.is_terminal() && e.to_string().contains("0 replicas"),
            "{e}"
        );
        let mut t = topo(1, &[]);
        t.control_plane.version = Some("1.31".into());
        let e = render("c1", &KindClusterSpec::default(), &cluster, &t).unwrap_err();
        assert!(e.is_terminal() && e.to_string().contains("\"1.31\""), "{e}");
        t.control_plane.version = None;
        let e = render("c1", &KindClusterSpec::default(), &cluster, &t).unwrap_err();
        assert!(e.to_string().contains("no Kubernetes version"), "{e}");
    }

    #[test]
    fn node_names_round_trip() {
        for (role, n, name) in [
            (Role::ControlPlane, 1, "c1-control-plane"),
            (Role::ControlPlane, 2, "c1-control-plane2"),
            (Role::Worker, 1, "c1-worker"),
            (Role::Worker, 12, "c1-worker12"),
        ] {
            assert_eq!(node_name("c1", role, n), name);
            assert_eq!(parse_node_name("c1", name), Some((role, n)));
        }
        assert_eq!(parse_node_name("c1", "c1-external-load-balancer"), None);
        assert_eq!(parse_node_name("c1", "c10-worker"), None);
        assert_eq!(parse_node_name("c1", "c1-worker1"), None);
        assert_eq!(parse_node_name("c1", "c1-worker02"), None);
    }

    #[test]
    fn the_endpoint_comes_from_the_kubeconfig_server() {
        let kc = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: AA==\n    server: https://127.0.0.1:40123\n  name: kind-c1\n";
        assert_eq!(
            endpoint_of(kc),
            Some(ApiEndpoint {
                host: "127.0.0.1".into(),
                port: 40123
            })
        );
        let internal = kc.replace("127.0.0.1:40123", "c1-control-plane:6443");
        assert_eq!(endpoint_of(&internal).unwrap().host, "c1-control-plane");
        let v6 = kc.replace("127.0.0.1:40123", "[::1]:5000");
        assert_eq!(endpoint_of(&v6).unwrap().host, "::1");
        assert_eq!(endpoint_of("clusters: []"), None);
    }
}
