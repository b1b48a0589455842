//! Node containers of a kind cluster as observed through `docker inspect`, and the binding of
//! Machines to them: pure functions, no I/O.
//!
//! kind makes every node when the cluster is created and cannot add one later, so a Machine is
//! never created here: it is bound to a node container of its role (and, for workers, of its
//! MachineDeployment's slots in the layout) that no other Machine holds, lowest ordinal first.
//! A Machine with nothing to bind to is told why, never Ready.

use std::collections::BTreeMap;

use serde_json::Value;
use slipway_api::{
    common::{MachineAddress, MachineAddressType},
    names::reasons::{NODE_NOT_FOUND, RECREATE_REQUIRED, UNSUPPORTED_SCALING},
};

use super::config::{NodeSlot, Role, image_version, parse_node_name};

/// A node container as `docker inspect` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedNode {
    /// Container name.
    pub name: String,
    /// Role, from the name.
    pub role: Role,
    /// Ordinal among the nodes of its role, from 1.
    pub ordinal: u32,
    /// Image the container runs.
    pub image: String,
    /// Whether it is running.
    pub running: bool,
    /// Its addresses on Docker networks, and its hostname.
    pub addresses: Vec<MachineAddress>,
}

/// Why `docker inspect` output cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Not JSON.
    #[error("`docker inspect` output: {0}")]
    Json(#[source] serde_json::Error),
    /// JSON, but not an array of containers.
    #[error("`docker inspect` output is not a list")]
    NotAList,
}

/// Parses `docker inspect` output (a JSON array) into the nodes of `cluster`, by ordinal; other
/// containers (the external load balancer) are skipped.
pub fn parse_inspect(cluster: &str, json: &str) -> Result<Vec<ObservedNode>, InspectError> {
    let v: Value = serde_json::from_str(json).map_err(InspectError::Json)?;
    let mut out = Vec::new();
    for c in v.as_array().ok_or(InspectError::NotAList)? {
        let name = c["Name"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('/');
        let Some((role, ordinal)) = parse_node_name(cluster, name) else {
            continue;
        };
        let mut addresses = Vec::new();
        if let Some(nets) = c["NetworkSettings"]["Networks"].as_object() {
            for net in nets.values() {
                for key in ["IPAddress", "GlobalIPv6Address"] {
                    if let Some(a) = net[key].as_str().filter(|a| !a.is_empty()) {
                        addresses.push(MachineAddress {
                            type_: MachineAddressType::InternalIP,
                            address: a.to_string(),
                        });
                    }
                }
            }
        }
        addresses.push(MachineAddress {
            type_: MachineAddressType::Hostname,
            address: name.to_string(),
        });
        out.push(ObservedNode {
            name: name.to_string(),
            role,
            ordinal,
            image: c["Config"]["Image"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            running: c["State"]["Running"].as_bool().unwrap_or(false),
            addresses,
        });
    }
    out.sort_by_key(|n| (n.role, n.ordinal));
    Ok(out)
}

/// What a Machine asks of a node.
#[derive(Clone, Debug)]
pub struct Want<'a> {
    /// `namespace/name` of the Machine.
    pub machine: &'a str,
    /// Its role.
    pub role: Role,
    /// Its control plane or MachineDeployment.
    pub pool: Option<&'a str>,
    /// Its Kubernetes version.
    pub version: Option<&'a str>,
}

/// Why a Machine has no node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unbound {
    /// Condition reason.
    pub reason: &'static str,
    /// What happened and what to do.
    pub message: String,
}

/// The node for a Machine, given which nodes exist, the layout they were made from and the
/// bindings so far (node name -> Machine).
pub fn bind<'n>(
    want: &Want<'_>,
    kind_cluster: &str,
    nodes: &'n [ObservedNode],
    layout: &[NodeSlot],
    bindings: &BTreeMap<String, String>,
) -> Result<&'n ObservedNode, Unbound> {
    if let Some((node, _)) = bindings.iter().find(|(_, m)| *m == want.machine) {
        return nodes
            .iter()
            .find(|n| &n.name == node)
            .ok_or_else(|| Unbound {
                reason: NODE_NOT_FOUND,
                message: format!(
                    "node container {node} of kind cluster {kind_cluster} no longer exists; \
                 delete this Machine or recreate the kind cluster"
                ),
            });
    }
    let in_pool = |n: &ObservedNode| match (want.pool, n.role) {
        (Some(pool), Role::Worker) if !layout.is_empty() => {
            layout.iter().any(|s| s.name == n.name && s.pool == pool)
        }
        _ => true,
    };
    let free: Vec<&ObservedNode> = nodes
        .iter()
        .filter(|n| n.role == want.role && in_pool(n) && !bindings.contains_key(&n.name))
        .collect();
    let fits = |n: &&&ObservedNode| match (want.version, image_version(&n.image)) {
        (Some(w), Some(have)) => w == have,
        _ => true,
    };
    if let Some(n) = free.iter().find(fits) {
        return Ok(n);
    }
    let what = match (want.role, want.pool) {
        (Role::Worker, Some(p)) => format!("worker node of {p}"),
        (role, _) => format!("{} node", role.as_str()),
    };
    if let Some(n) = free.first() {
        return Err(Unbound {
            reason: RECREATE_REQUIRED,
            message: format!(
                "the Machine wants Kubernetes {} but the free {what} {} runs {}; kind cannot \
                 change a node's version in place: set spec.recreatePolicy: Recreate on the \
                 KindCluster, or delete and recreate the Cluster",
                want.version.unwrap_or_default(),
                n.name,
                n.image
            ),
        });
    }
    let total = nodes
        .iter()
        .filter(|n| n.role == want.role && in_pool(n))
        .count();
    Err(Unbound {
        reason: UNSUPPORTED_SCALING,
        message: format!(
            "kind cluster {kind_cluster} has no free {what} ({total} made at creation, all \
             bound); kind cannot add nodes to an existing cluster: set \
             spec.recreatePolicy: Recreate on the KindCluster, or delete and recreate the \
             Cluster"
        ),
    })
}

/// How the observed nodes differ from the layout, by role counts and images; `None` if alike.
pub fn drift(layout: &[NodeSlot], observed: &[ObservedNode]) -> Option<String> {
    let count = |role: Role| {
        (
            layout.iter().filter(|s| s.role == role).count(),
            observed.iter().filter(|n| n.role == role).count(),
        )
    };
    let mut out = Vec::new();
    for role in [Role::ControlPlane, Role::Worker] {
        let (want, have) = count(role);
        if want != have {
            out.push(format!(
                "{want} {} nodes wanted, {have} exist",
                role.as_str()
            ));
        }
    }
    for slot in layout {
        if let Some(n) = observed.iter().find(|n| n.name == slot.name)
            && n.image != slot.image
        {
            out.push(format!(
                "{} runs {}, {} wanted",
                n.name, n.image, slot.image
            ));
        }
    }
    (!out.is_empty()).then(|| out.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node_name;

    const INSPECT: &str = r#"[
      {"Name": "/c1-control-plane", "Config": {"Image": "kindest/node:v1.31.0",
        "Labels": {"io.x-k8s.kind.role": "control-plane"}}, "State": {"Running": true},
        "NetworkSettings": {"Networks": {"kind": {"IPAddress": "172.18.0.3",
          "GlobalIPv6Address": "fc00:f853:ccd:e793::3"}}}},
      {"Name": "/c1-worker2", "Config": {"Image": "kindest/node:v1.31.0"},
        "State": {"Running": true},
        "NetworkSettings": {"Networks": {"kind": {"IPAddress": "172.18.0.5", "GlobalIPv6Address": ""}}}},
      {"Name": "/c1-worker", "Config": {"Image": "kindest/node:v1.31.0"},
        "State": {"Running": false},
        "NetworkSettings": {"Networks": {"kind": {"IPAddress": "172.18.0.4"}}}},
      {"Name": "/c1-external-load-balancer", "Config": {"Image": "kindest/haproxy"},
        "State": {"Running": true}, "NetworkSettings": {"Networks": {}}}
    ]"#;

    fn slot(name: &str, role: Role, pool: &str) -> NodeSlot {
        NodeSlot {
            name: name.into(),
            role,
            pool: pool.into(),
            image: "kindest/node:v1.31.0".into(),
        }
    }

    #[test]
    fn inspect_output_gives_roles_ordinals_images_and_addresses() {
        let nodes = parse_inspect("c1", INSPECT).unwrap();
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["c1-control-plane", "c1-worker", "c1-worker2"]);
        let cp = &nodes[0];
        assert_eq!(
            (cp.role, cp.ordinal, cp.running),
            (Role::ControlPlane, 1, true)
        );
        let addrs: Vec<(String, &str)> = cp
            .addresses
            .iter()
            .map(|a| (format!("{:?}", a.type_), a.address.as_str()))
            .collect();
        assert_eq!(
            addrs,
            [
                ("InternalIP".to_string(), "172.18.0.3"),
                ("InternalIP".to_string(), "fc00:f853:ccd:e793::3"),
                ("Hostname".to_string(), "c1-control-plane")
            ]
        );
        assert!(!nodes[1].running);
        let e = parse_inspect("c1", "{").unwrap_err();
        assert!(matches!(e, InspectError::Json(_)), "{e:?}");
        assert!(e.to_string().contains("docker inspect"), "{e}");
        assert!(matches!(
            parse_inspect("c1", "{}"),
            Err(InspectError::NotAList)
        ));
    }

    #[test]
    fn machines_bind_by_role_pool_and_order_and_keep_their_node() {
        let nodes = parse_inspect("c1", INSPECT).unwrap();
        let layout = [
            slot("c1-control-plane", Role::ControlPlane, "cp"),
            slot("c1-worker", Role::Worker, "md-a"),
            slot("c1-worker2", Role::Worker, "md-b"),
        ];
        let mut bindings = BTreeMap::new();
        let cp = Want {
            machine: "ns/cp-1",
            role: Role::ControlPlane,
            pool: Some("cp"),
            version: Some("v1.31.0"),
        };
        let n = bind(&cp, "c1", &nodes, &layout, &bindings).unwrap();
        assert_eq!(n.name, "c1-control-plane");
        bindings.insert(n.name.clone(), cp.machine.to_string());
        // The same Machine again: the same node.
        assert_eq!(
            bind(&cp, "c1", &nodes, &layout, &bindings).unwrap().name,
            n.name
        );
        // md-b's machine gets md-b's slot, not the lower-ordinal md-a one.
        let b = Want {
            machine: "ns/md-b-1",
            role: Role::Worker,
            pool: Some("md-b"),
            version: Some("v1.31.0"),
        };
        assert_eq!(
            bind(&b, "c1", &nodes, &layout, &bindings).unwrap().name,
            "c1-worker2"
        );
        // Without a layout (adopted cluster), any free worker, lowest ordinal first.
        assert_eq!(
            bind(&b, "c1", &nodes, &[], &bindings).unwrap().name,
            "c1-worker"
        );
    }

    #[test]
    fn no_free_node_is_unsupported_scaling_and_another_version_needs_a_recreate() {
        let nodes = parse_inspect("c1", INSPECT).unwrap();
        let mut bindings = BTreeMap::new();
        bindings.insert(
            node_name("c1", Role::ControlPlane, 1),
            "ns/cp-1".to_string(),
        );
        let cp2 = Want {
            machine: "ns/cp-2",
            role: Role::ControlPlane,
            pool: Some("cp"),
            version: Some("v1.31.0"),
        };
        let e = bind(&cp2, "c1", &nodes, &[], &bindings).unwrap_err();
        assert_eq!(e.reason, UNSUPPORTED_SCALING);
        assert!(
            e.message.contains("no free control-plane node (1 made"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("recreatePolicy: Recreate"),
            "{}",
            e.message
        );
        let upgraded = Want {
            machine: "ns/md-1",
            role: Role::Worker,
            pool: None,
            version: Some("v1.32.0"),
        };
        let e = bind(&upgraded, "c1", &nodes, &[], &bindings).unwrap_err();
        assert_eq!(e.reason, RECREATE_REQUIRED);
        assert!(e.message.contains("v1.32.0") && e.message.contains("kindest/node:v1.31.0"));
        // A bound node that disappeared is reported, not silently replaced.
        bindings.insert("c1-worker9".into(), "ns/md-9".into());
        let gone = Want {
            machine: "ns/md-9",
            role: Role::Worker,
            pool: None,
            version: None,
        };
        let e = bind(&gone, "c1", &nodes, &[], &bindings).unwrap_err();
        assert_eq!(e.reason, NODE_NOT_FOUND);
    }

    #[test]
    fn drift_compares_role_counts_and_images() {
        let slot = |name: &str, role, image: &str| NodeSlot {
            name: name.into(),
            role,
            pool: "p".into(),
            image: image.into(),
        };
        let node = |name: &str, role, ordinal, image: &str| ObservedNode {
            name: name.into(),
            role,
            ordinal,
            image: image.into(),
            running: true,
            addresses: vec![],
        };
        let layout = [
            slot(
                "c-control-plane",
                Role::ControlPlane,
                "kindest/node:v1.31.0",
            ),
            slot("c-worker", Role::Worker, "kindest/node:v1.31.0"),
        ];
        let same = [
            node(
                "c-control-plane",
                Role::ControlPlane,
                1,
                "kindest/node:v1.31.0",
            ),
            node("c-worker", Role::Worker, 1, "kindest/node:v1.31.0"),
        ];
        assert_eq!(drift(&layout, &same), None);
        assert_eq!(
            drift(&layout, &same[..1]).unwrap(),
            "1 worker nodes wanted, 0 exist"
        );
        let older = [
            node(
                "c-control-plane",
                Role::ControlPlane,
                1,
                "kindest/node:v1.30.0",
            ),
            same[1].clone(),
        ];
        assert_eq!(
            drift(&layout, &older).unwrap(),
            "c-control-plane runs kindest/node:v1.30.0, kindest/node:v1.31.0 wanted"
        );
    }
}
