//! Inline ClusterClass patches: `enabledIf`, `definitions[].selector` and `jsonPatches[]`
//! (`value`, `valueFrom.variable`, `valueFrom.template`) applied to the templates a Cluster's
//! objects are built from. All patches are applied to copies; an error (naming the patch, the
//! operation, its path and the template) leaves nothing half-applied.

use serde_json::Value;
use slipway_api::clusterclass::{ClusterClassPatch, JsonPatch, PatchSelector};

use super::{gotmpl, variables};

/// Which use of a template a patch target is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Use {
    /// The infrastructure cluster template.
    InfrastructureCluster,
    /// The control plane template.
    ControlPlane,
    /// The control plane's machine infrastructure template.
    ControlPlaneMachineInfrastructure,
    /// A MachineDeployment's bootstrap template (its class).
    MachineDeploymentBootstrap(String),
    /// A MachineDeployment's infrastructure template (its class).
    MachineDeploymentInfrastructure(String),
}

/// One template to patch, with the data its patches see (variables with the overrides of its
/// control plane or MachineDeployment, and `builtin`).
#[derive(Clone, Debug)]
pub struct Target {
    /// Its use.
    pub used_as: Use,
    /// The template object (apiVersion, kind, metadata, spec).
    pub template: Value,
    /// Template data.
    pub data: Value,
}

fn name_matches(names: &[String], class: &str) -> bool {
    names.iter().any(|n| {
        n == "*"
            || n == class
            || n.strip_suffix('*').is_some_and(|p| class.starts_with(p))
            || n.strip_prefix('*').is_some_and(|s| class.ends_with(s))
    })
}

/// Whether a selector matches a target.
pub fn selects(sel: &PatchSelector, t: &Target) -> bool {
    let s = |k: &str| t.template.get(k).and_then(Value::as_str).unwrap_or("");
    if sel.api_version != s("apiVersion") || sel.kind != s("kind") {
        return false;
    }
    let m = &sel.match_resources;
    match &t.used_as {
        Use::InfrastructureCluster => m.infrastructure_cluster.unwrap_or(false),
        Use::ControlPlane | Use::ControlPlaneMachineInfrastructure => {
            m.control_plane.unwrap_or(false)
        }
        Use::MachineDeploymentBootstrap(c) | Use::MachineDeploymentInfrastructure(c) => m
            .machine_deployment_class
            .as_ref()
            .and_then(|n| n.names.as_deref())
            .is_some_and(|names| name_matches(names, c)),
    }
}

/// Whether a patch is enabled: no `enabledIf`, or it renders to `true`.
pub fn enabled(p: &ClusterClassPatch, global: &Value) -> Result<bool, String> {
    let Some(cond) = &p.enabled_if else {
        return Ok(true);
    };
    let out =
        gotmpl::render(cond, global).map_err(|e| format!("patch {:?}: enabledIf: {e}", p.name))?;
    Ok(out.trim() == "true")
}

/// The value of one operation for a target.
fn value_of(op: &JsonPatch, data: &Value) -> Result<Option<Value>, String> {
    if let Some(from) = &op.value_from {
        if let Some(var) = &from.variable {
            return variables::lookup(data, var).map(Some);
        }
        if let Some(tpl) = &from.template {
            let text = gotmpl::render(tpl, data)?;
            let v: Value = serde_saphyr::from_str(&text).map_err(|e| {
                format!("valueFrom.template rendered {text:?}, which is not YAML: {e}")
            })?;
            return Ok(Some(v));
        }
        return Err("valueFrom needs variable or template".into());
    }
    Ok(op.value.clone())
}

/// Applies every enabled patch to every target it selects, in order. `global` is the data
/// `enabledIf` sees (Cluster-level variables and `builtin.cluster`).
pub fn apply(
    patches: &[ClusterClassPatch],
    global: &Value,
    targets: &mut [Target],
) -> Result<(), String> {
    let mut out: Vec<Target> = targets.to_vec();
    for p in patches {
        if p.external.is_some() {
            return Err(format!(
                "patch {:?} is an external patch (runtime extension), which slipway does not support",
                p.name
            ));
        }
        if !enabled(p, global)? {
            continue;
        }
        for (di, def) in p.definitions.iter().flatten().enumerate() {
            for t in out.iter_mut().filter(|t| selects(&def.selector, t)) {
                let tname = t
                    .template
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                for (ji, op) in def.json_patches.iter().enumerate() {
                    let at = || {
                        format!(
                            "patch {:?}: definitions[{di}].jsonPatches[{ji}] ({} {}) on {} {}",
                            p.name, op.op, op.path, def.selector.kind, tname
                        )
                    };
                    let value = value_of(op, &t.data).map_err(|e| format!("{}: {e}", at()))?;
                    let mut one = serde_json::json!({"op": op.op, "path": op.path});
                    if op.op != "remove" {
                        one["value"] = value.ok_or_else(|| format!("{}: no value", at()))?;
                    }
                    let patch: json_patch::Patch = serde_json::from_value(Value::Array(vec![one]))
                        .map_err(|e| format!("{}: {e}", at()))?;
                    json_patch::patch(&mut t.template, &patch)
                        .map_err(|e| format!("{}: {e}", at()))?;
                }
            }
        }
    }
    targets.clone_from_slice(&out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn targets() -> Vec<Target> {
        let data = json!({"imageRepository": "repo.example", "lbImage": {"tag": "1.2"},
            "builtin": {"cluster": {"name": "c1"}, "controlPlane": {"version": "v1.31.0"}}});
        let md_data = json!({"imageRepository": "md.example",
            "builtin": {"cluster": {"name": "c1"}, "machineDeployment": {"version": "v1.30.0", "class": "default-worker"}}});
        vec![
            Target {
                used_as: Use::ControlPlane,
                template: json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta2", "kind": "KubeadmControlPlaneTemplate",
                    "metadata": {"name": "cp"},
                    "spec": {"template": {"spec": {"kubeadmConfigSpec": {"clusterConfiguration": {}}}}}}),
                data: data.clone(),
            },
            Target {
                used_as: Use::MachineDeploymentBootstrap("default-worker".into()),
                template: json!({"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfigTemplate",
                    "metadata": {"name": "boot"}, "spec": {"template": {"spec": {}}}}),
                data: md_data,
            },
            Target {
                used_as: Use::InfrastructureCluster,
                template: json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "InMemoryClusterTemplate",
                    "metadata": {"name": "infra"}, "spec": {"template": {"spec": {}}}}),
                data,
            },
        ]
    }

    fn patches(yaml: &str) -> Vec<ClusterClassPatch> {
        serde_saphyr::from_str(yaml).unwrap()
    }

    const PATCHES: &str = r#"
- name: imageRepository
  enabledIf: '{{ ne .imageRepository "" }}'
  definitions:
    - selector:
        apiVersion: controlplane.cluster.x-k8s.io/v1beta2
        kind: KubeadmControlPlaneTemplate
        matchResources: {controlPlane: true}
      jsonPatches:
        - op: add
          path: /spec/template/spec/kubeadmConfigSpec/clusterConfiguration/imageRepository
          valueFrom: {variable: imageRepository}
    - selector:
        apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
        kind: KubeadmConfigTemplate
        matchResources: {machineDeploymentClass: {names: ["default-*"]}}
      jsonPatches:
        - op: add
          path: /spec/template/spec/files
          valueFrom:
            template: |
              - path: /etc/version
                content: {{ .builtin.machineDeployment.version | replace "." "_" }}
- name: disabled
  enabledIf: '{{ if semverCompare "< v1.25" .builtin.cluster.version }}true{{ end }}'
  definitions:
    - selector:
        apiVersion: controlplane.cluster.x-k8s.io/v1beta2
        kind: KubeadmControlPlaneTemplate
        matchResources: {controlPlane: true}
      jsonPatches:
        - {op: add, path: /spec/template/spec/never, value: 1}
- name: literal
  definitions:
    - selector:
        apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1
        kind: InMemoryClusterTemplate
        matchResources: {infrastructureCluster: true}
      jsonPatches:
        - {op: add, path: /spec/template/spec/simulation, value: {provisioningSeconds: 2}}
        - {op: add, path: /spec/template/spec/tag, valueFrom: {variable: lbImage.tag}}
"#;

    #[test]
    fn applies_selected_enabled_patches_with_values_variables_and_templates() {
        let mut t = targets();
        let global = json!({"imageRepository": "repo.example", "builtin": {"cluster": {"name": "c1", "version": "v1.31.0"}}});
        apply(&patches(PATCHES), &global, &mut t).unwrap();
        assert_eq!(
            t[0].template.pointer(
                "/spec/template/spec/kubeadmConfigSpec/clusterConfiguration/imageRepository"
            ),
            Some(&json!("repo.example"))
        );
        assert!(t[0].template.pointer("/spec/template/spec/never").is_none());
        assert_eq!(
            t[1].template.pointer("/spec/template/spec/files"),
            Some(&json!([{"path": "/etc/version", "content": "v1_30_0"}]))
        );
        assert_eq!(
            t[2].template.pointer("/spec/template/spec"),
            Some(&json!({"simulation": {"provisioningSeconds": 2}, "tag": "1.2"}))
        );
    }

    #[test]
    fn failures_name_patch_path_and_variable_and_apply_nothing() {
        let global = json!({"builtin": {"cluster": {"version": "v1.31.0"}}});
        let cases = [
            (
                r#"
- name: first
  definitions:
    - selector: {apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1, kind: InMemoryClusterTemplate, matchResources: {infrastructureCluster: true}}
      jsonPatches: [{op: add, path: /spec/template/spec/ok, value: 1}]
- name: broken
  definitions:
    - selector: {apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1, kind: InMemoryClusterTemplate, matchResources: {infrastructureCluster: true}}
      jsonPatches: [{op: replace, path: /spec/template/spec/missing/deep, value: 1}]
"#,
                vec!["\"broken\"", "/spec/template/spec/missing/deep", "infra"],
            ),
            (
                r#"
- name: novar
  definitions:
    - selector: {apiVersion: controlplane.cluster.x-k8s.io/v1beta2, kind: KubeadmControlPlaneTemplate, matchResources: {controlPlane: true}}
      jsonPatches: [{op: add, path: /spec/template/spec/x, valueFrom: {variable: notSet}}]
"#,
                vec!["\"novar\"", "/spec/template/spec/x", "\"notSet\""],
            ),
            (
                r#"
- name: ext
  external: {generatePatchesExtension: gen}
"#,
                vec!["\"ext\"", "external patch"],
            ),
        ];
        for (yaml, wants) in cases {
            let mut t = targets();
            let before: Vec<Value> = t.iter().map(|t| t.template.clone()).collect();
            let e = apply(&patches(yaml), &global, &mut t).unwrap_err();
            for w in wants {
                assert!(e.contains(w), "{e} lacks {w}");
            }
            let after: Vec<Value> = t.iter().map(|t| t.template.clone()).collect();
            assert_eq!(before, after, "nothing half-applied");
        }
    }

    #[test]
    fn class_name_matching() {
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(name_matches(&n(&["*"]), "a"));
        assert!(name_matches(&n(&["def*"]), "default-worker"));
        assert!(name_matches(&n(&["*-worker"]), "default-worker"));
        assert!(!name_matches(&n(&["other"]), "default-worker"));
    }
}
