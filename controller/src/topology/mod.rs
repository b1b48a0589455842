//! Managed topologies: a Cluster with `spec.topology` is built from its ClusterClass.
//!
//! [`reconcile`] (called by the Cluster reconciler, so the Cluster's status is still written
//! once) reads the class and its templates, resolves the variables ([`variables`]), applies the
//! inline patches ([`patches`]), computes the desired objects ([`desired`]) and only then
//! writes: new templates first, then the infrastructure cluster, control plane,
//! MachineDeployments and MachineHealthChecks (created, or merge-patched where they differ),
//! then the Cluster's references; MachineDeployments dropped from the topology are deleted.
//! Any error before the writes leaves every object as it was and is reported in the
//! TopologyReconciled condition. [`class_status`] computes a ClusterClass's status.

pub mod desired;
pub mod gotmpl;
pub mod patches;
pub mod variables;

use std::collections::BTreeMap;

use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use slipway_api::{
    Cluster, ClusterClass,
    clusterclass::ClusterClassTemplateReference,
    common::ContractVersionedObjectReference,
    names::{conditions as ct, labels},
};
use slipway_runtime::{
    Context, Error,
    conditions::{Desired as DesiredCondition, Status, desired as condition},
};

use desired::{Current, CurrentControlPlane, CurrentMachineDeployment, Templates};
use patches::{Target, Use};

/// What a topology pass ended with.
pub struct Outcome {
    /// The TopologyReconciled condition.
    pub condition: DesiredCondition,
    /// Whether to look again soon (an upgrade in progress).
    pub requeue: bool,
}

fn failed(reason: &str, message: String) -> Outcome {
    Outcome {
        condition: condition(ct::TOPOLOGY_RECONCILED, Status::False, reason, message),
        requeue: false,
    }
}

/// Reconciles the topology of `cluster`; API errors are returned, everything a user can fix
/// becomes the condition.
pub async fn reconcile(cluster: &Cluster, ctx: &Context) -> Result<Outcome, Error> {
    let topo = cluster.spec.topology.clone().unwrap_or_default();
    let ns = cluster.namespace().unwrap_or_default();
    let class_ns = topo
        .class_ref
        .namespace
        .clone()
        .unwrap_or_else(|| ns.clone());
    let classes: Api<ClusterClass> = Api::namespaced(ctx.client.clone(), &class_ns);
    let Some(class) = classes.get_opt(&topo.class_ref.name).await? else {
        return Ok(failed(
            desired::reasons::RECONCILE_FAILED,
            format!(
                "ClusterClass {class_ns}/{} named by spec.topology.classRef does not exist",
                topo.class_ref.name
            ),
        ));
    };
    let templates = match read_templates(cluster, &class, &class_ns, ctx).await? {
        Ok(t) => t,
        Err(why) => {
            return Ok(failed(desired::reasons::CLUSTER_CLASS_NOT_RECONCILED, why));
        }
    };
    let current = read_current(cluster, &ns, ctx).await?;
    let desired = match plan(cluster, &class, &class_ns, templates, &current) {
        Ok(d) => d,
        Err(why) => return Ok(failed(desired::reasons::RECONCILE_FAILED, why)),
    };
    write(cluster, &ns, &desired, ctx).await?;
    Ok(match desired.waiting {
        Some(w) => Outcome {
            condition: condition(ct::TOPOLOGY_RECONCILED, Status::False, w.reason, w.message),
            requeue: true,
        },
        None => Outcome {
            condition: condition(
                ct::TOPOLOGY_RECONCILED,
                Status::True,
                desired::reasons::RECONCILE_SUCCEEDED,
                "",
            ),
            requeue: false,
        },
    })
}

/// Variables, patches and desired state: everything before any write, without I/O.
pub fn plan(
    cluster: &Cluster,
    class: &ClusterClass,
    class_ns: &str,
    templates: Templates,
    current: &Current,
) -> Result<desired::Desired, String> {
    let topo = cluster.spec.topology.clone().unwrap_or_default();
    let defs = class.spec.variables.clone().unwrap_or_default();
    variables::check_definitions(&defs)
        .map_err(|e| format!("ClusterClass {}: {e}", class.name_any()))?;
    let given = topo.variables.clone().unwrap_or_default();
    let global = variables::resolve(&defs, &given, &[], "spec.topology.variables")?;
    let builtin_cluster = variables::builtin_cluster(cluster, class_ns);
    let global_data = variables::data(&global, json!({"cluster": builtin_cluster}));
    let cp_topo = topo.control_plane.clone().unwrap_or_default();
    let cp_values = variables::resolve(
        &defs,
        &given,
        &cp_topo
            .variables
            .and_then(|v| v.overrides)
            .unwrap_or_default(),
        "spec.topology.controlPlane.variables",
    )?;
    let cp_builtin = json!({
        "cluster": builtin_cluster,
        "controlPlane": {"version": topo.version, "replicas": cp_topo.replicas,
            "name": current.control_plane.as_ref().map(|c| c.name.clone())},
    });
    let cp_data = variables::data(&cp_values, cp_builtin);
    let mut targets = vec![
        Target {
            used_as: Use::InfrastructureCluster,
            template: templates.infrastructure_cluster.clone(),
            data: global_data.clone(),
        },
        Target {
            used_as: Use::ControlPlane,
            template: templates.control_plane.clone(),
            data: cp_data.clone(),
        },
    ];
    if let Some(t) = &templates.control_plane_machine {
        targets.push(Target {
            used_as: Use::ControlPlaneMachineInfrastructure,
            template: t.clone(),
            data: cp_data,
        });
    }
    let mds = topo
        .workers
        .as_ref()
        .and_then(|w| w.machine_deployments.clone())
        .unwrap_or_default();
    for md in &mds {
        let (boot, infra) = templates
            .machine_deployments
            .get(&md.name)
            .cloned()
            .ok_or_else(|| format!("no templates for MachineDeployment {:?}", md.name))?;
        let values = variables::resolve(
            &defs,
            &given,
            &md.variables
                .clone()
                .and_then(|v| v.overrides)
                .unwrap_or_default(),
            &format!(
                "spec.topology.workers.machineDeployments[{}].variables",
                md.name
            ),
        )?;
        let data = variables::data(
            &values,
            json!({"cluster": builtin_cluster, "machineDeployment": {
                "version": topo.version, "class": md.class, "topologyName": md.name,
                "replicas": md.replicas,
                "name": current.machine_deployments.get(&md.name).map(|m| m.name.clone())}}),
        );
        targets.push(Target {
            used_as: Use::MachineDeploymentBootstrap(md.class.clone()),
            template: boot,
            data: data.clone(),
        });
        targets.push(Target {
            used_as: Use::MachineDeploymentInfrastructure(md.class.clone()),
            template: infra,
            data,
        });
    }
    patches::apply(
        class.spec.patches.as_deref().unwrap_or_default(),
        &global_data,
        &mut targets,
    )?;
    let mut patched = Templates::default();
    let mut it = targets.into_iter();
    patched.infrastructure_cluster = it.next().map(|t| t.template).unwrap_or_default();
    patched.control_plane = it.next().map(|t| t.template).unwrap_or_default();
    if templates.control_plane_machine.is_some() {
        patched.control_plane_machine = it.next().map(|t| t.template);
    }
    for md in &mds {
        let boot = it.next().map(|t| t.template).unwrap_or_default();
        let infra = it.next().map(|t| t.template).unwrap_or_default();
        patched
            .machine_deployments
            .insert(md.name.clone(), (boot, infra));
    }
    desired::compute(cluster, &class.spec, &patched, current)
}

async fn read_template(
    ctx: &Context,
    ns: &str,
    r: &ClusterClassTemplateReference,
    field: &str,
) -> Result<Result<Value, String>, Error> {
    let cref = ContractVersionedObjectReference::new(r.group(), &r.kind, &r.name);
    match ctx.resolver.get(ns, &cref).await {
        Ok(Some(o)) => Ok(Ok(serde_json::to_value(&o).unwrap_or_default())),
        Ok(None) => Ok(Err(format!(
            "ClusterClass {field} names {} {ns}/{}, which does not exist",
            r.kind, r.name
        ))),
        Err(Error::UnservedKind { .. }) => Ok(Err(format!(
            "ClusterClass {field} names kind {} of {}, which no CustomResourceDefinition serves",
            r.kind, r.api_version
        ))),
        Err(e) => Err(e),
    }
}

/// Reads every template the Cluster's topology uses; Ok(Err) names a missing one.
async fn read_templates(
    cluster: &Cluster,
    class: &ClusterClass,
    ns: &str,
    ctx: &Context,
) -> Result<Result<Templates, String>, Error> {
    macro_rules! read {
        ($r:expr, $field:expr) => {
            match read_template(ctx, ns, $r, $field).await? {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            }
        };
    }
    let spec = &class.spec;
    let Some(infra) = spec.infrastructure.as_ref() else {
        return Ok(Err("ClusterClass has no spec.infrastructure".into()));
    };
    let Some(cp) = spec.control_plane.as_ref() else {
        return Ok(Err("ClusterClass has no spec.controlPlane".into()));
    };
    let mut t = Templates {
        infrastructure_cluster: read!(&infra.template_ref, "spec.infrastructure.templateRef"),
        control_plane: read!(&cp.template_ref, "spec.controlPlane.templateRef"),
        ..Default::default()
    };
    if let Some(m) = &cp.machine_infrastructure {
        t.control_plane_machine = Some(read!(
            &m.template_ref,
            "spec.controlPlane.machineInfrastructure.templateRef"
        ));
    }
    let classes = spec
        .workers
        .as_ref()
        .and_then(|w| w.machine_deployments.clone())
        .unwrap_or_default();
    let topo = cluster.spec.topology.clone().unwrap_or_default();
    for md in topo
        .workers
        .and_then(|w| w.machine_deployments)
        .unwrap_or_default()
    {
        let Some(c) = classes.iter().find(|c| c.class == md.class) else {
            return Ok(Err(format!(
                "spec.topology.workers.machineDeployments[{}].class {:?} is not a MachineDeployment class of ClusterClass {}",
                md.name,
                md.class,
                class.name_any()
            )));
        };
        let field = format!("spec.workers.machineDeployments[{}]", c.class);
        let boot = read!(
            &c.bootstrap.template_ref,
            &format!("{field}.bootstrap.templateRef")
        );
        let infra = read!(
            &c.infrastructure.template_ref,
            &format!("{field}.infrastructure.templateRef")
        );
        t.machine_deployments.insert(md.name.clone(), (boot, infra));
    }
    Ok(Ok(t))
}

fn int(v: &Value, path: &str) -> i32 {
    v.pointer(path)
        .and_then(Value::as_i64)
        .and_then(|i| i32::try_from(i).ok())
        .unwrap_or(0)
}

async fn read_current(cluster: &Cluster, ns: &str, ctx: &Context) -> Result<Current, Error> {
    let mut current = Current {
        infrastructure_cluster: cluster
            .spec
            .infrastructure_ref
            .as_ref()
            .map(|r| r.name.clone()),
        ..Default::default()
    };
    if let Some(r) = &cluster.spec.control_plane_ref
        && let Some(o) = ctx.resolver.get(ns, r).await?
    {
        let v = serde_json::to_value(&o).unwrap_or_default();
        let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
        current.control_plane = Some(CurrentControlPlane {
            name: r.name.clone(),
            version: s("/spec/version").unwrap_or_default(),
            replicas: v
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1) as i32,
            status_version: s("/status/version"),
            status_replicas: int(&v, "/status/replicas"),
            up_to_date: int(&v, "/status/upToDateReplicas"),
        });
    }
    let name = cluster.name_any();
    let mds: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &md_resource());
    let lp = ListParams::default().labels(&format!(
        "{}={name},{}",
        labels::CLUSTER_NAME,
        desired::OWNED
    ));
    for md in mds.list(&lp).await?.items {
        let Some(topology_name) = md.labels().get(desired::DEPLOYMENT_NAME).cloned() else {
            continue;
        };
        let v = serde_json::to_value(&md).unwrap_or_default();
        current.machine_deployments.insert(
            topology_name,
            CurrentMachineDeployment {
                name: md.name_any(),
                version: v
                    .pointer("/spec/template/spec/version")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                replicas: v
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1) as i32,
                status_replicas: int(&v, "/status/replicas"),
                up_to_date: int(&v, "/status/upToDateReplicas"),
            },
        );
    }
    Ok(current)
}

fn md_resource() -> kube::api::ApiResource {
    kube::api::ApiResource::erase::<slipway_api::MachineDeployment>(&())
}

fn mhc_resource() -> kube::api::ApiResource {
    kube::api::ApiResource::erase::<slipway_api::MachineHealthCheck>(&())
}

/// Whether every field of `want` is in `have` with the same value (fields others fill in, such
/// as defaults or a provider's endpoint, do not count as drift).
pub fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| contains(hv, wv)) || wv.is_null()),
        (h, w) => h == w,
    }
}

/// Creates `obj` or merge-patches its labels and spec where they drifted; templates
/// (`create_only`) are never patched.
async fn ensure(
    cluster: &Cluster,
    api: &Api<DynamicObject>,
    mut obj: Value,
    create_only: bool,
) -> Result<(), Error> {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match api.get_opt(&name).await? {
        None => {
            if let Some(owner) = cluster.controller_owner_ref(&()) {
                obj["metadata"]["ownerReferences"] = json!([owner]);
            }
            let o: DynamicObject = serde_json::from_value(obj)
                .map_err(|e| Error::invalid(name.clone(), e.to_string()))?;
            api.create(&PostParams::default(), &o).await?;
            tracing::info!(kind = %o.types.as_ref().map(|t| t.kind.as_str()).unwrap_or(""), name = %name, "topology: created");
        }
        Some(_) if create_only => {}
        Some(have) => {
            let have = serde_json::to_value(&have).unwrap_or_default();
            let want =
                json!({"metadata": {"labels": obj["metadata"]["labels"]}, "spec": obj["spec"]});
            if !contains(&have, &want) {
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&want))
                    .await?;
                tracing::info!(name = %name, "topology: updated");
            }
        }
    }
    Ok(())
}

async fn api_for(ctx: &Context, ns: &str, obj: &Value) -> Result<Api<DynamicObject>, Error> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let ar = ctx
        .resolver
        .resolve(group, obj["kind"].as_str().unwrap_or_default())
        .await?;
    Ok(Api::namespaced_with(ctx.client.clone(), ns, &ar))
}

async fn write(
    cluster: &Cluster,
    ns: &str,
    d: &desired::Desired,
    ctx: &Context,
) -> Result<(), Error> {
    // Templates first: nothing may point at a template that does not exist.
    let mut templates: Vec<&Value> = d.control_plane_machine.iter().collect();
    for md in &d.machine_deployments {
        templates.push(&md.bootstrap);
        templates.push(&md.infrastructure);
    }
    for t in templates {
        let api = api_for(ctx, ns, t).await?;
        ensure(cluster, &api, t.clone(), true).await?;
    }
    for o in [&d.infrastructure_cluster, &d.control_plane] {
        let api = api_for(ctx, ns, o).await?;
        ensure(cluster, &api, o.clone(), false).await?;
    }
    let refs = |o: &Value| {
        let av = o["apiVersion"].as_str().unwrap_or_default();
        json!({"apiGroup": av.rsplit_once('/').map(|(g, _)| g).unwrap_or(""),
            "kind": o["kind"], "name": o["metadata"]["name"]})
    };
    let want = json!({"spec": {
        "infrastructureRef": refs(&d.infrastructure_cluster),
        "controlPlaneRef": refs(&d.control_plane),
    }});
    if !contains(&serde_json::to_value(cluster).unwrap_or_default(), &want) {
        let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), ns);
        api.patch(
            &cluster.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&want),
        )
        .await?;
    }
    let mds: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &md_resource());
    for md in &d.machine_deployments {
        ensure(cluster, &mds, md.object.clone(), false).await?;
    }
    let mhcs: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &mhc_resource());
    for hc in &d.health_checks {
        ensure(cluster, &mhcs, hc.clone(), false).await?;
    }
    // What the topology no longer has goes.
    let lp = ListParams::default().labels(&format!(
        "{}={},{}",
        labels::CLUSTER_NAME,
        cluster.name_any(),
        desired::OWNED
    ));
    let keep_md: Vec<&str> = d
        .machine_deployments
        .iter()
        .filter_map(|m| m.object["metadata"]["name"].as_str())
        .collect();
    for md in mds.list(&lp).await?.items {
        if !keep_md.contains(&md.name_any().as_str()) && md.metadata.deletion_timestamp.is_none() {
            mds.delete(&md.name_any(), &DeleteParams::default()).await?;
            tracing::info!(name = %md.name_any(), "topology: deleted MachineDeployment");
        }
    }
    let keep_hc: Vec<&str> = d
        .health_checks
        .iter()
        .filter_map(|m| m["metadata"]["name"].as_str())
        .collect();
    for hc in mhcs.list(&lp).await?.items {
        if !keep_hc.contains(&hc.name_any().as_str()) && hc.metadata.deletion_timestamp.is_none() {
            mhcs.delete(&hc.name_any(), &DeleteParams::default())
                .await?;
        }
    }
    Ok(())
}

/// The status conditions of a ClusterClass: VariablesReady (definitions usable, no external
/// variable discovery) and RefVersionsUpToDate (every referenced template exists).
pub fn class_conditions(class: &ClusterClass, missing: &[String]) -> Vec<DesiredCondition> {
    let defs = class.spec.variables.clone().unwrap_or_default();
    let external = class
        .spec
        .patches
        .iter()
        .flatten()
        .find(|p| p.external.is_some());
    let vars = match (variables::check_definitions(&defs), external) {
        (Err(e), _) => condition(ct::VARIABLES_READY, Status::False, "VariablesNotReady", e),
        (Ok(()), Some(p)) => condition(
            ct::VARIABLES_READY,
            Status::False,
            "VariableDiscoveryFailed",
            format!(
                "patch {:?} uses an external patch (runtime extension), which slipway does not support",
                p.name
            ),
        ),
        _ => condition(ct::VARIABLES_READY, Status::True, "VariablesReady", ""),
    };
    let refs = if missing.is_empty() {
        condition(
            ct::REF_VERSIONS_UP_TO_DATE,
            Status::True,
            "RefVersionsUpToDate",
            "",
        )
    } else {
        condition(
            ct::REF_VERSIONS_UP_TO_DATE,
            Status::False,
            "RefVersionsNotUpToDate",
            missing.join("; "),
        )
    };
    vec![vars, refs]
}

/// Every template reference of a class, with the field naming it.
pub fn class_refs(class: &ClusterClass) -> Vec<(String, ClusterClassTemplateReference)> {
    let s = &class.spec;
    let mut out = BTreeMap::new();
    if let Some(i) = &s.infrastructure {
        out.insert(
            "spec.infrastructure.templateRef".to_string(),
            i.template_ref.clone(),
        );
    }
    if let Some(c) = &s.control_plane {
        out.insert(
            "spec.controlPlane.templateRef".into(),
            c.template_ref.clone(),
        );
        if let Some(m) = &c.machine_infrastructure {
            out.insert(
                "spec.controlPlane.machineInfrastructure.templateRef".into(),
                m.template_ref.clone(),
            );
        }
    }
    for md in s
        .workers
        .iter()
        .flat_map(|w| w.machine_deployments.iter().flatten())
    {
        out.insert(
            format!(
                "spec.workers.machineDeployments[{}].bootstrap.templateRef",
                md.class
            ),
            md.bootstrap.template_ref.clone(),
        );
        out.insert(
            format!(
                "spec.workers.machineDeployments[{}].infrastructure.templateRef",
                md.class
            ),
            md.infrastructure.template_ref.clone(),
        );
    }
    out.into_iter().collect()
}

/// Reconciles a ClusterClass's status (conditions and `status.variables`).
pub async fn reconcile_class(
    class: std::sync::Arc<ClusterClass>,
    ctx: std::sync::Arc<Context>,
) -> Result<kube::runtime::controller::Action, Error> {
    let ns = class.namespace().unwrap_or_default();
    let mut missing = Vec::new();
    for (field, r) in class_refs(&class) {
        if let Err(why) = read_template(&ctx, &ns, &r, &field).await? {
            missing.push(why);
        }
    }
    let old = class.status.clone().unwrap_or_default();
    let mut new = old.clone();
    let mut conds = new.conditions.take().unwrap_or_default();
    for d in class_conditions(&class, &missing) {
        slipway_runtime::conditions::set(&mut conds, d, class.metadata.generation, ctx.now());
    }
    new.conditions = Some(conds);
    new.observed_generation = class.metadata.generation;
    new.variables = Some(
        class
            .spec
            .variables
            .iter()
            .flatten()
            .map(|v| slipway_api::clusterclass::ClusterClassStatusVariable {
                name: v.name.clone(),
                definitions_conflict: Some(false),
                definitions: vec![
                    slipway_api::clusterclass::ClusterClassStatusVariableDefinition {
                        from: "inline".into(),
                        required: v.required,
                        schema: v.schema.clone(),
                    },
                ],
            })
            .collect(),
    );
    let api: Api<ClusterClass> = Api::namespaced(ctx.client.clone(), &ns);
    slipway_runtime::reconcile::write_status(&api, &class.metadata, Some(&old), &new).await?;
    Ok(if missing.is_empty() {
        kube::runtime::controller::Action::await_change()
    } else {
        // A template may be created after its class.
        kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(10))
    })
}
