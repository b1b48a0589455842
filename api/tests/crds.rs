//! The CRDs: committed copy equals the code, every kind is covered, and each CRD carries the
//! subresources, columns, names and labels `kubectl` and core rely on.

use std::{collections::BTreeSet, path::PathBuf};

use slipway_api::crds;

/// Every CRD the binary serves: core kinds and each provider's (as `slipway crds` lists them).
fn all_crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use slipway_providers::Plugin;
    let mut all = crds::core();
    all.extend(slipway_aws::plugin().crds());
    all.extend(slipway_kind::plugin().crds());
    all.extend(slipway_inmemory::plugin().crds());
    all
}

fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/crd")
}

#[test]
fn committed_crds_equal_the_generated_ones() {
    let mut expected = BTreeSet::new();
    for crd in all_crds() {
        let file = crds::file_name(&crd);
        let path = crd_dir().join(&file);
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{} missing ({e}); run `cargo run -- crds --output-dir config/crd`",
                path.display()
            )
        });
        assert!(
            committed == crds::to_yaml(&crd),
            "{file} drifted from the code; run `cargo run -- crds --output-dir config/crd` and commit"
        );
        expected.insert(file);
    }
    // That config/crd holds nothing else is checked against the binary's full list (core and
    // every plugin it carries) by e2e/tests/cli.rs, so a new provider crate needs no edit here.
    assert!(!expected.is_empty());
}

#[test]
fn every_kind_of_the_api_is_served() {
    let kinds: BTreeSet<(String, String, String)> = all_crds()
        .into_iter()
        .map(|c| {
            (
                c.spec.group.clone(),
                c.spec.versions[0].name.clone(),
                c.spec.names.kind.clone(),
            )
        })
        .collect();
    let want = [
        ("cluster.x-k8s.io", "v1beta2", "Cluster"),
        ("cluster.x-k8s.io", "v1beta2", "Machine"),
        ("cluster.x-k8s.io", "v1beta2", "MachineSet"),
        ("cluster.x-k8s.io", "v1beta2", "MachineDeployment"),
        ("cluster.x-k8s.io", "v1beta2", "MachineHealthCheck"),
        ("bootstrap.cluster.x-k8s.io", "v1beta2", "KubeadmConfig"),
        (
            "bootstrap.cluster.x-k8s.io",
            "v1beta2",
            "KubeadmConfigTemplate",
        ),
        (
            "controlplane.cluster.x-k8s.io",
            "v1beta2",
            "KubeadmControlPlane",
        ),
        (
            "controlplane.cluster.x-k8s.io",
            "v1beta2",
            "AWSManagedControlPlane",
        ),
        ("infrastructure.cluster.x-k8s.io", "v1beta2", "AWSCluster"),
        ("infrastructure.cluster.x-k8s.io", "v1beta2", "AWSMachine"),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1beta2",
            "AWSMachineTemplate",
        ),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1beta2",
            "AWSManagedCluster",
        ),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1beta2",
            "AWSManagedMachinePool",
        ),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1beta2",
            "AWSMachinePool",
        ),
        ("infrastructure.cluster.x-k8s.io", "v1alpha1", "KindCluster"),
        ("infrastructure.cluster.x-k8s.io", "v1alpha1", "KindMachine"),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1alpha1",
            "KindMachineTemplate",
        ),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1alpha1",
            "InMemoryCluster",
        ),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1alpha1",
            "InMemoryMachine",
        ),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1alpha1",
            "InMemoryMachineTemplate",
        ),
        ("multicluster.x-k8s.io", "v1alpha1", "ClusterProfile"),
        ("core.kubefed.io", "v1beta1", "KubeFedCluster"),
        // Later kinds: topologies, health, pools, addons, Cluster API's Dev provider.
        ("cluster.x-k8s.io", "v1beta2", "ClusterClass"),
        ("cluster.x-k8s.io", "v1beta2", "MachineDrainRule"),
        ("cluster.x-k8s.io", "v1beta2", "MachinePool"),
        (
            "controlplane.cluster.x-k8s.io",
            "v1beta2",
            "KubeadmControlPlaneTemplate",
        ),
        ("addons.cluster.x-k8s.io", "v1beta2", "ClusterResourceSet"),
        (
            "addons.cluster.x-k8s.io",
            "v1beta2",
            "ClusterResourceSetBinding",
        ),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1alpha1",
            "InMemoryClusterTemplate",
        ),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1alpha1",
            "InMemoryMachinePool",
        ),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1beta2",
            "AWSClusterTemplate",
        ),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1alpha1",
            "KindClusterTemplate",
        ),
        ("infrastructure.cluster.x-k8s.io", "v1beta2", "DevCluster"),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1beta2",
            "DevClusterTemplate",
        ),
        ("infrastructure.cluster.x-k8s.io", "v1beta2", "DevMachine"),
        (
            "infrastructure.cluster.x-k8s.io",
            "v1beta2",
            "DevMachineTemplate",
        ),
    ];
    let want: BTreeSet<(String, String, String)> = want
        .iter()
        .map(|(g, v, k)| (g.to_string(), v.to_string(), k.to_string()))
        .collect();
    assert_eq!(kinds, want);
}

#[test]
fn each_crd_has_status_subresource_short_names_and_the_cluster_api_category() {
    for crd in all_crds() {
        let kind = &crd.spec.names.kind;
        assert_eq!(crd.spec.scope, "Namespaced", "{kind}");
        let v = &crd.spec.versions[0];
        assert!(v.served && v.storage, "{kind} served and stored");
        // Upstream's MachineDrainRule and ClusterResourceSetBinding have no status, nor has
        // CAPA's AWSClusterTemplate.
        assert!(
            kind == "MachineDrainRule"
                || kind == "ClusterResourceSetBinding"
                || kind == "AWSClusterTemplate"
                || v.subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some(),
            "{kind} status subresource"
        );
        // Upstream defines these without short names; slipway keeps their names as upstream has them.
        let upstream_without_short_names = [
            "ClusterResourceSet",
            "ClusterResourceSetBinding",
            "MachineDrainRule",
            "DevCluster",
            "DevClusterTemplate",
            "DevMachine",
            "DevMachineTemplate",
        ];
        assert!(
            upstream_without_short_names.contains(&kind.as_str())
                || !crd
                    .spec
                    .names
                    .short_names
                    .clone()
                    .unwrap_or_default()
                    .is_empty(),
            "{kind} short names"
        );
        assert_eq!(
            crd.spec.names.categories.clone().unwrap_or_default(),
            vec!["cluster-api"],
            "{kind} category"
        );
        let columns: Vec<String> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect();
        assert!(
            columns.contains(&"Age".to_string()),
            "{kind} has an Age column: {columns:?}"
        );
    }
}

#[test]
fn provider_crds_carry_the_contract_label_with_their_versions() {
    for crd in all_crds() {
        let group = crd.spec.group.as_str();
        let kind = &crd.spec.names.kind;
        let label = crd
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("cluster.x-k8s.io/v1beta2"));
        let is_provider = matches!(
            group,
            "infrastructure.cluster.x-k8s.io"
                | "bootstrap.cluster.x-k8s.io"
                | "controlplane.cluster.x-k8s.io"
        );
        if is_provider {
            // v1beta1 versions implement the v1beta1 contract and are labelled for it alone.
            let versions: Vec<&str> = crd
                .spec
                .versions
                .iter()
                .map(|v| v.name.as_str())
                .filter(|v| *v != "v1beta1")
                .collect();
            assert_eq!(
                label.map(String::as_str),
                Some(versions.join("_").as_str()),
                "{kind}"
            );
            let v1beta1 = crd.spec.versions.iter().any(|v| v.name == "v1beta1");
            let old_label = crd
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("cluster.x-k8s.io/v1beta1"));
            assert_eq!(old_label.is_some(), v1beta1, "{kind}");
        } else {
            assert!(label.is_none(), "{kind} is not a provider kind");
        }
    }
}

fn columns_of(kind: &str) -> Vec<(String, String)> {
    let crd = all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.json_path.clone()))
        .collect()
}

#[test]
fn cluster_and_machine_printer_columns_are_upstreams() {
    let cluster = columns_of("Cluster");
    for (name, path) in [
        ("Phase", ".status.phase"),
        ("Age", ".metadata.creationTimestamp"),
        ("Version", ".status.controlPlane.versions[0].version"),
        (
            "Available",
            ".status.conditions[?(@.type==\"Available\")].status",
        ),
    ] {
        assert!(
            cluster.contains(&(name.into(), path.into())),
            "Cluster {name}: {cluster:?}"
        );
    }
    let machine = columns_of("Machine");
    for (name, path) in [
        ("Cluster", ".spec.clusterName"),
        ("Node Name", ".status.nodeRef.name"),
        ("Provider ID", ".spec.providerID"),
        ("Phase", ".status.phase"),
        ("Version", ".spec.version"),
    ] {
        assert!(
            machine.contains(&(name.into(), path.into())),
            "Machine {name}: {machine:?}"
        );
    }
}

#[test]
fn all_yaml_is_one_document_per_crd() {
    let all = crds::to_yaml_stream(&all_crds());
    assert_eq!(all.matches("---\n").count(), all_crds().len());
    assert_eq!(
        all.matches("kind: CustomResourceDefinition").count(),
        all_crds().len()
    );
}

/// Every node of a schema is typed and closed: an object lists its fields or types its map
/// values, never both, and nothing keeps unknown fields (but a topology's free-form parts,
/// open at v1beta2 too: variable values, and what slipway's topology does not implement).
fn closed_and_structural(s: &serde_json::Value, path: &str, errs: &mut Vec<String>) {
    let Some(m) = s.as_object() else {
        errs.push(format!("{path}: not a schema"));
        return;
    };
    if m.get("x-kubernetes-preserve-unknown-fields") == Some(&serde_json::json!(true)) {
        if !path.starts_with(".spec.topology.") {
            errs.push(format!("{path}: preserves unknown fields"));
        }
        return;
    }
    if m.get("type").is_none() && m.get("x-kubernetes-int-or-string").is_none() {
        errs.push(format!("{path}: no type"));
    }
    if m.contains_key("properties") && m.contains_key("additionalProperties") {
        errs.push(format!("{path}: properties and additionalProperties"));
    }
    if m.get("type") == Some(&serde_json::json!("object"))
        && !m.contains_key("properties")
        && !m.contains_key("additionalProperties")
        && path != ".metadata"
    {
        errs.push(format!("{path}: an object without fields"));
    }
    for (k, v) in m
        .get("properties")
        .and_then(|p| p.as_object())
        .into_iter()
        .flatten()
    {
        closed_and_structural(v, &format!("{path}.{k}"), errs);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(v) = m.get(key).filter(|v| v.is_object()) {
            closed_and_structural(v, &format!("{path}[]"), errs);
        }
    }
}

#[test]
fn v1beta1_schemas_are_closed_and_structural_with_upstreams_names() {
    let mut served = 0;
    for crd in all_crds() {
        let kind = crd.spec.names.kind.clone();
        let Some(v) = crd.spec.versions.iter().find(|v| v.name == "v1beta1") else {
            continue;
        };
        if !slipway_api::conversion::handles(&crd.spec.group, &kind) {
            continue;
        }
        served += 1;
        let s =
            serde_json::to_value(v.schema.as_ref().unwrap().open_api_v3_schema.as_ref()).unwrap();
        let mut errs = vec![];
        closed_and_structural(&s["properties"]["spec"], ".spec", &mut errs);
        // A v1beta1 schema can be no closer than the v1beta2 one it is derived from: what the
        // hub leaves open (arbitrary JSON values such as a patch's `value` or a variable's
        // schema, and ClusterClass fields slipway does not type yet) is not a v1beta1 fault.
        let hub = crd.spec.versions.iter().find(|v| v.storage).unwrap();
        let hub =
            serde_json::to_value(hub.schema.as_ref().unwrap().open_api_v3_schema.as_ref()).unwrap();
        let mut open_in_hub = vec![];
        closed_and_structural(&hub["properties"]["spec"], ".spec", &mut open_in_hub);
        errs.retain(|e| !open_in_hub.contains(e));
        assert!(errs.is_empty(), "{kind}: {errs:#?}");
        let at = |p: &str| slipway_api::conversion::derive::node(&s, p).cloned();
        // A sample of upstream's v1beta1 names per kind.
        let expect: &[&str] = match kind.as_str() {
            "Cluster" => &[
                "spec.controlPlaneRef.apiVersion",
                "spec.topology.class",
                "spec.topology.rolloutAfter",
                "status.infrastructureReady",
                "status.conditions",
                "status.failureDomains",
                "status.v1beta2.conditions",
            ],
            "MachineDeployment" => &[
                "spec.template.spec.nodeDrainTimeout",
                "spec.strategy.rollingUpdate.deletePolicy",
                "spec.revisionHistoryLimit",
                "status.unavailableReplicas",
            ],
            "KubeadmControlPlane" => &[
                "spec.machineTemplate.infrastructureRef.uid",
                "spec.machineTemplate.nodeDrainTimeout",
                "spec.remediationStrategy.retryPeriod",
                "spec.kubeadmConfigSpec.clusterConfiguration.apiServer.extraArgs",
                "spec.kubeadmConfigSpec.clusterConfiguration.apiServer.timeoutForControlPlane",
                "spec.kubeadmConfigSpec.useExperimentalRetryJoin",
                "status.initialized",
                "status.ready",
            ],
            "AWSCluster" => &["spec.region", "spec.sshKeyName", "status.ready"],
            "AWSManagedControlPlane" => &["spec.disableVPCCNI", "status.ready"],
            _ => &[],
        };
        for p in expect {
            assert!(at(p).is_some(), "{kind}: no {p} at v1beta1");
        }
        let v1beta2_only: &[&str] = match kind.as_str() {
            "Cluster" => &["spec.topology.classRef", "status.initialization"],
            "Machine" => &["spec.deletion", "spec.infrastructureRef.apiGroup"],
            "KubeadmControlPlane" => &["spec.rollout", "spec.remediation"],
            _ => &[],
        };
        for p in v1beta2_only {
            assert!(at(p).is_none(), "{kind}: {p} is not a v1beta1 field");
        }
        if kind == "KubeadmControlPlane" {
            assert_eq!(
                at("spec.kubeadmConfigSpec.clusterConfiguration.apiServer.extraArgs").unwrap()["additionalProperties"]
                    ["type"],
                "string"
            );
            assert_eq!(
                at("spec.machineTemplate.nodeDrainTimeout").unwrap()["type"],
                "string"
            );
        }
    }
    assert!(served >= 15, "only {served} kinds served at v1beta1");
}
