//! The desired state of a topology Cluster, computed without I/O from the Cluster, its
//! ClusterClass, the (patched) templates and what exists now: the infrastructure cluster, the
//! control plane and its machine template, one MachineDeployment (with bootstrap and
//! infrastructure templates) per `workers.machineDeployments[]`, and the MachineHealthChecks.
//!
//! Names are derived as upstream does (`{cluster}-{random}`, `{cluster}-{md}-{random}`, naming
//! templates honoured), with the "random" part a hash: of the Cluster's uid for objects (kept
//! once created), of the content for templates. A template whose content changes so gets a new
//! name, and the object pointing at it is moved to it: templates are never edited in place.
//!
//! Upgrades: `topology.version` reaches the control plane first; MachineDeployments follow one
//! at a time once the control plane runs the new version on every machine.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use slipway_api::{Cluster, clusterclass::ClusterClassSpec, names::labels};

use super::gotmpl;

/// Label on every object the topology controller manages.
pub const OWNED: &str = "topology.cluster.x-k8s.io/owned";
/// Label naming a MachineDeployment's topology name.
pub const DEPLOYMENT_NAME: &str = "topology.cluster.x-k8s.io/deployment-name";
/// Annotation naming the template an object was cloned from.
pub const CLONED_FROM_NAME: &str = "cluster.x-k8s.io/cloned-from-name";
/// Annotation naming the group/kind of that template.
pub const CLONED_FROM_GROUP_KIND: &str = "cluster.x-k8s.io/cloned-from-groupkind";

/// The templates of the class after patches, by use.
#[derive(Clone, Debug, Default)]
pub struct Templates {
    /// The infrastructure cluster template.
    pub infrastructure_cluster: Value,
    /// The control plane template.
    pub control_plane: Value,
    /// The control plane's machine infrastructure template, when the class has one.
    pub control_plane_machine: Option<Value>,
    /// Per MachineDeployment topology name: (bootstrap template, infrastructure template).
    pub machine_deployments: BTreeMap<String, (Value, Value)>,
}

/// What exists of a control plane.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CurrentControlPlane {
    /// Its name.
    pub name: String,
    /// `spec.version`.
    pub version: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.version` (lowest version of its machines).
    pub status_version: Option<String>,
    /// `status.replicas`.
    pub status_replicas: i32,
    /// `status.upToDateReplicas`.
    pub up_to_date: i32,
}

impl CurrentControlPlane {
    /// Whether every control-plane machine runs `version` and nothing rolls out.
    pub fn stable_at(&self, version: &str) -> bool {
        self.version == version
            && self.status_version.as_deref() == Some(version)
            && self.status_replicas == self.replicas
            && self.up_to_date == self.replicas
    }
}

/// What exists of a MachineDeployment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CurrentMachineDeployment {
    /// Its name.
    pub name: String,
    /// `spec.template.spec.version`.
    pub version: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.replicas`.
    pub status_replicas: i32,
    /// `status.upToDateReplicas`.
    pub up_to_date: i32,
}

impl CurrentMachineDeployment {
    fn rolling(&self) -> bool {
        self.status_replicas != self.replicas || self.up_to_date != self.replicas
    }
}

/// What exists now.
#[derive(Clone, Debug, Default)]
pub struct Current {
    /// Name of the infrastructure cluster (from `spec.infrastructureRef`).
    pub infrastructure_cluster: Option<String>,
    /// The control plane (from `spec.controlPlaneRef`).
    pub control_plane: Option<CurrentControlPlane>,
    /// MachineDeployments by topology name.
    pub machine_deployments: BTreeMap<String, CurrentMachineDeployment>,
}

/// One MachineDeployment with its templates.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredMachineDeployment {
    /// Topology name.
    pub topology_name: String,
    /// The MachineDeployment.
    pub object: Value,
    /// Its bootstrap template.
    pub bootstrap: Value,
    /// Its infrastructure template.
    pub infrastructure: Value,
}

/// Why the topology is not (yet) at rest: reason and message for TopologyReconciled.
#[derive(Clone, Debug, PartialEq)]
pub struct Waiting {
    /// Upstream reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

/// Everything the topology controller makes.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// The infrastructure cluster.
    pub infrastructure_cluster: Value,
    /// The control plane's machine infrastructure template.
    pub control_plane_machine: Option<Value>,
    /// The control plane.
    pub control_plane: Value,
    /// MachineDeployments.
    pub machine_deployments: Vec<DesiredMachineDeployment>,
    /// MachineHealthChecks.
    pub health_checks: Vec<Value>,
    /// `None` when at rest, else what it waits for.
    pub waiting: Option<Waiting>,
}

/// Stable 64-bit FNV-1a (names must not change with the toolchain).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// Five lower-case alphanumerics from `seed`, as upstream's random suffix looks.
pub fn suffix(seed: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = fnv(seed);
    (0..5)
        .map(|_| {
            let c = ALPHABET[(h % ALPHABET.len() as u64) as usize] as char;
            h /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Renders a naming template (`{{ .cluster.name }}`, `{{ .random }}`, ...) as upstream, and
/// cuts names over 63 characters to 58 plus the suffix.
pub fn name_from(
    template: &str,
    cluster: &str,
    random: &str,
    extra: Value,
) -> Result<String, String> {
    let mut data = json!({"cluster": {"name": cluster}, "random": random});
    if let (Some(d), Value::Object(m)) = (data.as_object_mut(), extra) {
        d.extend(m);
    }
    let name = gotmpl::render(template, &data)
        .map_err(|e| format!("naming template {template:?}: {e}"))?;
    Ok(if name.len() > 63 {
        format!("{}{}", &name[..58], random)
    } else {
        name
    })
}

fn template_name(prefix: &str, spec: &Value) -> String {
    let base: String = prefix.chars().take(58).collect();
    format!("{base}{}", suffix(&spec.to_string()))
}

/// Group of an apiVersion (`""` for the core group).
fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn common_labels(cluster: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert(labels::CLUSTER_NAME.into(), json!(cluster));
    m.insert(OWNED.into(), json!(""));
    m
}

fn cloned_annotations(template: &Value) -> Value {
    let kind = str_of(template, "kind");
    json!({
        CLONED_FROM_NAME: str_of(&template["metadata"], "name"),
        CLONED_FROM_GROUP_KIND: format!("{kind}.{}", group(str_of(template, "apiVersion"))),
    })
}

/// A copy of a template (the template kind itself), named by its content.
fn clone_template(template: &Value, prefix: &str, ns: &str, cluster: &str) -> Value {
    let spec = template.get("spec").cloned().unwrap_or(json!({}));
    json!({
        "apiVersion": template["apiVersion"],
        "kind": template["kind"],
        "metadata": {
            "name": template_name(prefix, &spec),
            "namespace": ns,
            "labels": common_labels(cluster),
            "annotations": cloned_annotations(template),
        },
        "spec": spec,
    })
}

/// An object stamped out of a template: `kind` without `Template`, the template's
/// `spec.template.spec`, its `spec.template.metadata` merged with ours.
fn from_template(
    template: &Value,
    name: &str,
    ns: &str,
    cluster: &str,
    extra_labels: &Value,
) -> Value {
    let kind = str_of(template, "kind")
        .trim_end_matches("Template")
        .to_string();
    let mut lbl = common_labels(cluster);
    if let Some(m) = template
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
    {
        lbl.extend(m.clone());
    }
    if let Some(m) = extra_labels.as_object() {
        lbl.extend(m.clone());
    }
    let mut ann = template
        .pointer("/spec/template/metadata/annotations")
        .cloned()
        .unwrap_or(json!({}));
    if let (Some(a), Value::Object(c)) = (ann.as_object_mut(), cloned_annotations(template)) {
        a.extend(c);
    }
    json!({
        "apiVersion": template["apiVersion"],
        "kind": kind,
        "metadata": {"name": name, "namespace": ns, "labels": lbl, "annotations": ann},
        "spec": template.pointer("/spec/template/spec").cloned().unwrap_or(json!({})),
    })
}

fn contract_ref(obj: &Value) -> Value {
    json!({
        "apiGroup": group(str_of(obj, "apiVersion")),
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
    })
}

fn meta_labels(m: Option<&slipway_api::common::ObjectMeta>) -> serde_json::Map<String, Value> {
    m.and_then(|m| m.labels.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect()
}

/// Computes the desired state. Err names what is wrong (a missing class part, an unknown
/// MachineDeployment class, a naming template that does not render).
pub fn compute(
    cluster: &Cluster,
    class: &ClusterClassSpec,
    templates: &Templates,
    current: &Current,
) -> Result<Desired, String> {
    let topo = cluster
        .spec
        .topology
        .clone()
        .ok_or("the Cluster has no spec.topology")?;
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let ns = cluster.metadata.namespace.clone().unwrap_or_default();
    let uid = cluster.metadata.uid.clone().unwrap_or_default();
    let cp_class = class
        .control_plane
        .as_ref()
        .ok_or("the ClusterClass has no spec.controlPlane")?;
    let mut waiting = None;

    // Infrastructure cluster.
    let infra_name = match &current.infrastructure_cluster {
        Some(n) => n.clone(),
        None => {
            let tpl = class
                .infrastructure
                .as_ref()
                .and_then(|i| i.naming.as_ref())
                .and_then(|n| n.template.clone())
                .unwrap_or_else(|| "{{ .cluster.name }}-{{ .random }}".into());
            name_from(
                &tpl,
                &name,
                &suffix(&format!("{uid}/infrastructure")),
                json!({}),
            )?
        }
    };
    let infrastructure_cluster = from_template(
        &templates.infrastructure_cluster,
        &infra_name,
        &ns,
        &name,
        &json!({}),
    );

    // Control plane machine template and control plane.
    let control_plane_machine = templates
        .control_plane_machine
        .as_ref()
        .map(|t| clone_template(t, &format!("{name}-"), &ns, &name));
    let cp_name = match &current.control_plane {
        Some(c) => c.name.clone(),
        None => {
            let tpl = cp_class
                .naming
                .as_ref()
                .and_then(|n| n.template.clone())
                .unwrap_or_else(|| "{{ .cluster.name }}-{{ .random }}".into());
            name_from(
                &tpl,
                &name,
                &suffix(&format!("{uid}/controlPlane")),
                json!({}),
            )?
        }
    };
    let cp_topo = topo.control_plane.clone().unwrap_or_default();
    let mut cp_labels = meta_labels(cp_class.metadata.as_ref());
    cp_labels.extend(meta_labels(cp_topo.metadata.as_ref()));
    let mut control_plane = from_template(
        &templates.control_plane,
        &cp_name,
        &ns,
        &name,
        &Value::Object(cp_labels.clone()),
    );
    // Version: a change waits while the control plane still rolls out the previous one.
    let cp_version = match &current.control_plane {
        Some(c) if c.version != topo.version && !c.stable_at(&c.version) => {
            waiting = Some(Waiting {
                reason: reasons::CONTROL_PLANE_UPGRADE_PENDING,
                message: format!(
                    "Control plane upgrade to {} on hold: {} {} is still rolling out {}",
                    topo.version, "KubeadmControlPlane", c.name, c.version
                ),
            });
            c.version.clone()
        }
        _ => topo.version.clone(),
    };
    let spec = control_plane["spec"]
        .as_object_mut()
        .ok_or("control plane template spec.template.spec is not an object")?;
    spec.insert("version".into(), json!(cp_version));
    if let Some(r) = cp_topo.replicas {
        spec.insert("replicas".into(), json!(r));
    }
    let mt = spec.entry("machineTemplate").or_insert(json!({}));
    if let Some(m) = &control_plane_machine {
        mt["spec"] = {
            let mut s = mt.get("spec").cloned().unwrap_or(json!({}));
            s["infrastructureRef"] = contract_ref(m);
            s
        };
    }
    let mut mt_labels = mt
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    mt_labels.extend(common_labels(&name));
    mt_labels.extend(cp_labels);
    mt["metadata"] = json!({"labels": mt_labels});
    for (k, v) in [
        (
            "readinessGates",
            json!(cp_topo.readiness_gates.or(cp_class.readiness_gates.clone())),
        ),
        ("taints", json!(cp_topo.taints.or(cp_class.taints.clone()))),
        (
            "deletion",
            json!(cp_topo.deletion.or(cp_class.deletion.clone())),
        ),
    ] {
        if !v.is_null() {
            mt["spec"][k] = v;
        }
    }
    // The control plane is at rest on the target version: workers may follow.
    let cp_done = current
        .control_plane
        .as_ref()
        .is_none_or(|c| c.stable_at(&topo.version));
    let cp_upgrading = current
        .control_plane
        .as_ref()
        .is_some_and(|c| c.version != topo.version || !c.stable_at(&topo.version))
        && current
            .control_plane
            .as_ref()
            .is_some_and(|c| c.status_version.is_some());

    // MachineDeployments.
    let md_classes = class
        .workers
        .as_ref()
        .and_then(|w| w.machine_deployments.clone())
        .unwrap_or_default();
    let mut mds = Vec::new();
    let mut upgrading_one = current
        .machine_deployments
        .values()
        .any(|m| m.version == topo.version && m.rolling());
    let mut pending = Vec::new();
    for md in topo
        .workers
        .as_ref()
        .and_then(|w| w.machine_deployments.clone())
        .unwrap_or_default()
    {
        let mdc = md_classes
            .iter()
            .find(|c| c.class == md.class)
            .ok_or_else(|| {
                format!(
                    "topology.workers.machineDeployments[{}].class {:?} is not a MachineDeployment class of the ClusterClass",
                    md.name, md.class
                )
            })?;
        let (boot_t, infra_t) = templates
            .machine_deployments
            .get(&md.name)
            .ok_or_else(|| format!("no templates for MachineDeployment {:?}", md.name))?;
        let cur = current.machine_deployments.get(&md.name);
        let md_name = match cur {
            Some(c) => c.name.clone(),
            None => {
                let tpl = mdc
                    .naming
                    .as_ref()
                    .and_then(|n| n.template.clone())
                    .unwrap_or_else(|| {
                        "{{ .cluster.name }}-{{ .machineDeployment.topologyName }}-{{ .random }}"
                            .into()
                    });
                name_from(
                    &tpl,
                    &name,
                    &suffix(&format!("{uid}/md/{}", md.name)),
                    json!({"machineDeployment": {"topologyName": md.name}}),
                )?
            }
        };
        let prefix = format!("{name}-{}-", md.name);
        let bootstrap = clone_template(boot_t, &prefix, &ns, &name);
        let infrastructure = clone_template(infra_t, &prefix, &ns, &name);
        let version = match cur {
            None if cp_upgrading => {
                pending.push(format!("{} (create)", md.name));
                continue;
            }
            None => topo.version.clone(),
            Some(c) if c.version == topo.version => c.version.clone(),
            Some(_) if cp_done && !upgrading_one => {
                upgrading_one = true;
                topo.version.clone()
            }
            Some(c) => {
                pending.push(md.name.clone());
                c.version.clone()
            }
        };
        let mut lbl = common_labels(&name);
        lbl.insert(DEPLOYMENT_NAME.into(), json!(md.name));
        let mut all_labels = lbl.clone();
        all_labels.extend(meta_labels(mdc.metadata.as_ref()));
        all_labels.extend(meta_labels(md.metadata.as_ref()));
        let mut mspec = json!({
            "clusterName": name,
            "version": version,
            "bootstrap": {"configRef": contract_ref(&bootstrap)},
            "infrastructureRef": contract_ref(&infrastructure),
        });
        for (k, v) in [
            (
                "failureDomain",
                json!(md.failure_domain.clone().or(mdc.failure_domain.clone())),
            ),
            (
                "minReadySeconds",
                json!(md.min_ready_seconds.or(mdc.min_ready_seconds)),
            ),
            (
                "readinessGates",
                json!(md.readiness_gates.clone().or(mdc.readiness_gates.clone())),
            ),
            ("taints", json!(md.taints.clone().or(mdc.taints.clone()))),
        ] {
            if !v.is_null() {
                mspec[k] = v;
            }
        }
        let mut object = json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2",
            "kind": "MachineDeployment",
            "metadata": {"name": md_name, "namespace": ns, "labels": all_labels},
            "spec": {
                "clusterName": name,
                "selector": {"matchLabels": lbl},
                "template": {"metadata": {"labels": all_labels}, "spec": mspec},
            },
        });
        if let Some(r) = md.replicas {
            object["spec"]["replicas"] = json!(r);
        }
        if let Some(s) = md.rollout.as_ref().and_then(|r| r.strategy.clone()) {
            object["spec"]["rollout"] = json!({"strategy": s});
        }
        mds.push(DesiredMachineDeployment {
            topology_name: md.name.clone(),
            object,
            bootstrap,
            infrastructure,
        });
    }
    if waiting.is_none() {
        if cp_upgrading {
            waiting = Some(Waiting {
                reason: reasons::CLUSTER_UPGRADING,
                message: if pending.is_empty() {
                    format!("Control plane {cp_name} is upgrading to {}", topo.version)
                } else {
                    format!(
                        "Control plane {cp_name} is upgrading to {}; MachineDeployments {} wait for it",
                        topo.version,
                        pending.join(", ")
                    )
                },
            });
        } else if !pending.is_empty() {
            waiting = Some(Waiting {
                reason: reasons::MACHINE_DEPLOYMENTS_UPGRADE_PENDING,
                message: format!(
                    "MachineDeployments {} wait to be upgraded to {} (one at a time)",
                    pending.join(", "),
                    topo.version
                ),
            });
        }
    }

    // MachineHealthChecks.
    let mut health_checks = Vec::new();
    let cp_hc = cp_topo.health_check.clone().unwrap_or_default();
    if let Some(hc) = health_check(
        &name,
        &ns,
        &cp_name,
        cp_class.health_check.as_ref(),
        &cp_hc,
        json!({labels::CLUSTER_NAME: name, labels::CONTROL_PLANE: ""}),
    ) {
        health_checks.push(hc);
    }
    for (md, d) in topo
        .workers
        .iter()
        .flat_map(|w| w.machine_deployments.iter().flatten())
        .zip(&mds)
    {
        let class_hc = md_classes
            .iter()
            .find(|c| c.class == md.class)
            .and_then(|c| c.health_check.as_ref());
        if let Some(hc) = health_check(
            &name,
            &ns,
            str_of(&d.object["metadata"], "name"),
            class_hc,
            &md.health_check.clone().unwrap_or_default(),
            d.object["spec"]["selector"]["matchLabels"].clone(),
        ) {
            health_checks.push(hc);
        }
    }

    Ok(Desired {
        infrastructure_cluster,
        control_plane_machine,
        control_plane,
        machine_deployments: mds,
        health_checks,
        waiting,
    })
}

fn health_check(
    cluster: &str,
    ns: &str,
    name: &str,
    class: Option<&slipway_api::clusterclass::HealthCheckClass>,
    topo: &slipway_api::cluster::TopologyHealthCheck,
    match_labels: Value,
) -> Option<Value> {
    let checks = topo.checks.clone().or(class.and_then(|c| c.checks.clone()));
    let remediation = topo
        .remediation
        .clone()
        .or(class.and_then(|c| c.remediation.clone()));
    let defined = checks.is_some() || remediation.is_some();
    if !topo.enabled.unwrap_or(defined) || !defined {
        return None;
    }
    let mut spec = json!({"clusterName": cluster, "selector": {"matchLabels": match_labels}});
    if let Some(c) = checks {
        spec["checks"] = json!(c);
    }
    if let Some(r) = remediation {
        let mut r = json!(r);
        if let Some(m) = r.as_object_mut() {
            m.remove("maxInFlight");
        }
        spec["remediation"] = r;
    }
    let mut lbl = common_labels(cluster);
    lbl.insert(labels::CLUSTER_NAME.into(), json!(cluster));
    Some(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "MachineHealthCheck",
        "metadata": {"name": name, "namespace": ns, "labels": lbl},
        "spec": spec,
    }))
}

/// Upstream reasons of TopologyReconciled used here.
pub mod reasons {
    /// At rest.
    pub const RECONCILE_SUCCEEDED: &str = "ReconcileSucceeded";
    /// An error.
    pub const RECONCILE_FAILED: &str = "ReconcileFailed";
    /// The class is not ready (missing template, bad variable definitions).
    pub const CLUSTER_CLASS_NOT_RECONCILED: &str = "ClusterClassNotReconciled";
    /// The control plane version change waits.
    pub const CONTROL_PLANE_UPGRADE_PENDING: &str = "ControlPlaneUpgradePending";
    /// Control plane upgrading.
    pub const CLUSTER_UPGRADING: &str = "ClusterUpgrading";
    /// MachineDeployments wait for their turn.
    pub const MACHINE_DEPLOYMENTS_UPGRADE_PENDING: &str = "MachineDeploymentsUpgradePending";
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
