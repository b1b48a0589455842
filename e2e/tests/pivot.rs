//! `slipway move` end to end between two embedded planes: plane A (`slipway up` with its
//! controllers in-process) hands ten in-memory clusters over to plane B (`slipway up
//! --no-controller` plus a `slipway controller` that shares A's in-memory data dir, as a real
//! management cluster shares the cloud). The clusters stay Available with the same machines
//! (providerIDs and boot records unchanged); a move interrupted twice and run again finishes
//! with no duplicates; once A stops, B serves the workload API servers itself. A ClusterClass
//! of another namespace, a cluster-scoped object of a move-hierarchy CRD and a ConfigMap
//! labelled move go along, as clusterctl moves them (the shared ones stay in A too). An AWS
//! cluster made against moto_server by A's controller is adopted by B's with not one EC2
//! resource created or deleted.
//! Needs `kubectl` on PATH (`.ci/run` installs it).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::{Child, Command, Output, Stdio},
};

use slipway_testsupport::*;

const CLUSTERS: usize = 10;

/// Kinds compared before and after (everything a cluster is made of).
const KINDS: &str = "clusters,machines,machinesets,machinedeployments,kubeadmcontrolplanes,\
kubeadmconfigs,kubeadmconfigtemplates,inmemoryclusters,inmemorymachines,\
inmemorymachinetemplates,clusterprofiles,machinehealthchecks,secrets";

/// What the upstream in-memory ClusterClass fixture is made of.
const CLASS_KINDS: &str = "clusterclasses,devclustertemplates,devmachinetemplates,\
kubeadmcontrolplanetemplates,kubeadmconfigtemplates";

const TOPOLOGY_CLUSTER: &str = r#"
apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata: {name: topo, namespace: default}
spec:
  paused: true
  topology:
    classRef: {name: in-memory, namespace: classes}
    version: v1.31.0
"#;

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
  labels: {clusterctl.cluster.x-k8s.io/move-hierarchy: ""}
spec:
  group: example.com
  scope: Cluster
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

const WIDGET: &str = r#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3}
"#;

fn slipway_move(source: &Mgmt, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(slipway_bin());
    cmd.arg("move")
        .args(args)
        .env("KUBECONFIG", &source.kubeconfig)
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `slipway controller` against `plane`, keeping in-memory machines under `data_dir`.
fn controller(plane: &Mgmt, data_dir: &Path, extra: &[&str]) -> Child {
    let log = std::fs::File::create(plane.dir.join("controller.log")).unwrap();
    Command::new(slipway_bin())
        .args(["controller", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("KUBECONFIG", &plane.kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// `kind/name` of every object of KINDS in `default`, with its count of copies.
fn inventory(m: &Mgmt) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for o in m.items(&["get", KINDS, "-n", "default"]) {
        let name = o["metadata"]["name"].as_str().unwrap();
        if o["kind"] == "Secret"
            && o["metadata"]["labels"]["cluster.x-k8s.io/cluster-name"].is_null()
            && o["metadata"]["ownerReferences"].is_null()
        {
            continue;
        }
        *out.entry(format!("{}/{name}", o["kind"].as_str().unwrap()))
            .or_default() += 1;
    }
    out
}

/// Per Machine: its providerID and the modification time of its boot record (the sentinel
/// kubeadm leaves) in the in-memory provider's data dir.
fn machines_and_boots(
    m: &Mgmt,
    data_dir: &Path,
) -> BTreeMap<String, (String, std::time::SystemTime)> {
    m.items(&["get", "machines", "-n", "default"])
        .iter()
        .map(|x| {
            let name = x["metadata"]["name"].as_str().unwrap().to_string();
            let cluster = x["spec"]["clusterName"].as_str().unwrap();
            let sentinel = data_dir
                .join("in-memory/default")
                .join(cluster)
                .join("machines")
                .join(&name)
                .join("rootfs/run/cluster-api/bootstrap-success.complete");
            let booted = std::fs::metadata(&sentinel)
                .and_then(|m| m.modified())
                .unwrap_or_else(|e| panic!("{}: {e}", sentinel.display()));
            let pid = x["spec"]["providerID"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (name, (pid, booted))
        })
        .collect()
}

fn all_available(m: &Mgmt, names: &[String], secs: u64) {
    for n in names {
        wait_available(m, n, secs);
    }
}

#[test]
fn ten_clusters_move_between_planes_and_keep_their_machines() {
    let t0 = std::time::Instant::now();
    let phase = |what: &str| eprintln!("[pivot] {what}: {:.1}s", t0.elapsed().as_secs_f64());
    let mut a = Mgmt::start("pivot-a", false);
    let b = Mgmt::start("pivot-b", true);
    let shared = a.dir.clone();
    let names: Vec<String> = (0..CLUSTERS).map(|i| format!("c{i}")).collect();
    let manifests: String = names
        .iter()
        .map(|n| generate(n, 1, 0, "v1.31.0"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    a.ok(&["apply", "-f", "-"], Some(&manifests));
    all_available(&a, &names, 120);
    // Let every machine boot and report Running.
    eventually(60, "every machine booted", || {
        let ms = a.items(&["get", "machines"]);
        (ms.len() == CLUSTERS && ms.iter().all(|m| m["status"]["phase"] == "Running"))
            .then_some(())
            .ok_or_else(|| format!("{} machines", ms.len()))
    });
    phase("10 clusters Available in A");
    // Beyond the namespace, as clusterctl moves them: a ClusterClass of another namespace that
    // a Cluster here names (with its templates), a cluster-scoped object of a CRD labelled
    // move-hierarchy, and a ConfigMap labelled move. The topology Cluster is paused by its
    // user, so it stays paused and nothing is built from it.
    let class =
        std::fs::read_to_string(fixture("capi-upstream/clusterclass-in-memory.yaml")).unwrap();
    a.ok(&["create", "namespace", "classes"], None);
    a.ok(&["apply", "-n", "classes", "-f", "-"], Some(&class));
    let class_objects = a.items(&["get", CLASS_KINDS, "-n", "classes"]).len();
    assert!(class_objects >= 4, "{class_objects}");
    a.ok(&["apply", "-f", "-"], Some(TOPOLOGY_CLUSTER));
    for plane in [&a, &b] {
        plane.ok(&["apply", "-f", "-"], Some(WIDGET_CRD));
    }
    eventually(30, "the Widget kind served", || {
        let out = a.kubectl_with(&a.kubeconfig, &["apply", "-f", "-"], Some(WIDGET));
        out.status
            .success()
            .then_some(())
            .ok_or_else(|| text(&out.stderr))
    });
    a.ok(
        &[
            "create",
            "configmap",
            "settings",
            "-n",
            "default",
            "--from-literal=k=v",
        ],
        None,
    );
    a.ok(
        &[
            "label",
            "configmap",
            "settings",
            "-n",
            "default",
            "clusterctl.cluster.x-k8s.io/move=",
        ],
        None,
    );
    let before = inventory(&a);
    let boots = machines_and_boots(&a, &shared);
    assert_eq!(boots.len(), CLUSTERS);

    let target = b.kubeconfig.to_str().unwrap().to_string();
    let to = ["--to-kubeconfig", target.as_str(), "-n", "default"];

    // B runs no controller yet: refused, naming what is missing, nothing changed.
    let out = slipway_move(&a, &to, &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("runs no slipway controller") && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(b.items(&["get", "clusters"]).is_empty());
    let mut bc = controller(&b, &shared, &["--leader-elect"]);
    eventually(30, "B's controller holds its Lease", || {
        let out = b.kubectl_with(
            &b.kubeconfig,
            &["get", "lease", "-n", "kube-system", "slipway-controller"],
            None,
        );
        out.status
            .success()
            .then_some(())
            .ok_or_else(|| text(&out.stderr))
    });

    // A clashing object in B (not made by a move) is refused by name.
    b.ok(
        &[
            "create",
            "secret",
            "generic",
            "c3-kubeconfig",
            "-n",
            "default",
        ],
        None,
    );
    let out = slipway_move(&a, &to, &[]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("Secret default/c3-kubeconfig already exists in the target (not created by slipway move)"), "{err}");
    assert!(
        a.items(&["get", "clusters"])
            .iter()
            .all(|c| c["spec"]["paused"] != true || c["metadata"]["name"] == "topo"),
        "nothing paused (but the Cluster its user paused)"
    );
    b.ok(
        &["delete", "secret", "c3-kubeconfig", "-n", "default"],
        None,
    );

    // --dry-run lists every object, changes nothing.
    let out = slipway_move(&a, &[&to[..], &["--dry-run"]].concat(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    for key in before.keys() {
        let (kind, name) = key.split_once('/').unwrap();
        assert!(
            listed.contains(&format!(" {kind} default/{name}\n")),
            "{key} not listed:\n{listed}"
        );
    }
    assert!(b.items(&["get", "clusters"]).is_empty());

    phase("checks done");
    // Interrupted mid-creation, then mid-deletion, then finished.
    let out = slipway_move(&a, &to, &[("SLIPWAY_MOVE_STOP_AFTER", "80")]);
    assert!(!out.status.success(), "stops: {}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("stopped after 80 writes"),
        "{}",
        text(&out.stderr)
    );
    let partial = inventory(&b);
    assert!(
        !partial.is_empty() && partial.len() < before.len(),
        "{partial:?}"
    );
    let out = slipway_move(&a, &to, &[("SLIPWAY_MOVE_STOP_AFTER", "330")]);
    assert!(!out.status.success(), "stops again: {}", text(&out.stdout));
    let out = slipway_move(&a, &to, &[]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("move of namespace default is complete"));

    phase("move finished (3 runs)");
    // Everything is in B exactly once; nothing of it is left in A.
    assert_eq!(inventory(&b), before, "same objects, no duplicates");
    assert!(
        a.items(&["get", "clusters,machines,inmemorymachines,kubeadmconfigs"])
            .is_empty()
    );
    let moved_from: BTreeSet<String> = b
        .items(&["get", KINDS, "-n", "default"])
        .iter()
        .filter_map(|o| {
            o["metadata"]["annotations"]["slipway.dev/moved-from-uid"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(
        moved_from.len(),
        before.values().sum::<usize>(),
        "one copy per source object"
    );

    // B reconciles them: Available, unpaused, the same machines, none booted again.
    all_available(&b, &names, 90);
    for c in b.items(&["get", "clusters"]) {
        assert_eq!(
            c["spec"]["paused"] == true,
            c["metadata"]["name"] == "topo",
            "{} unpaused unless its user paused it",
            c["metadata"]["name"]
        );
        assert!(c["metadata"]["annotations"]["slipway.dev/paused-by-move"].is_null());
    }
    // The shared objects are in B, made by the move, and still in A for what stays there.
    let moved_shared = |m: &Mgmt, args: &[&str]| {
        m.items(args)
            .iter()
            .filter(|o| !o["metadata"]["annotations"]["slipway.dev/moved-from-uid"].is_null())
            .count()
    };
    assert_eq!(
        moved_shared(&b, &["get", CLASS_KINDS, "-n", "classes"]),
        class_objects
    );
    assert_eq!(
        a.items(&["get", CLASS_KINDS, "-n", "classes"]).len(),
        class_objects
    );
    assert_eq!(moved_shared(&b, &["get", "widgets"]), 1);
    assert_eq!(
        a.items(&["get", "widgets"]).len(),
        1,
        "a cluster-scoped object stays"
    );
    let cm = b.json(&["get", "configmap", "settings", "-n", "default"]);
    assert_eq!(cm["data"]["k"], "v");
    assert!(cm["metadata"]["annotations"]["slipway.dev/moved-from-uid"].is_string());
    let out = a.kubectl_with(
        &a.kubeconfig,
        &["get", "configmap", "settings", "-n", "default"],
        None,
    );
    assert!(
        !out.status.success(),
        "a force-moved object of the namespace leaves A"
    );
    assert_eq!(
        machines_and_boots(&b, &shared),
        boots,
        "no machine re-created or re-booted"
    );

    phase("Available in B");
    // A stops: B serves the workload API servers itself and the clusters stay reachable.
    a.up.kill().unwrap();
    a.up.wait().unwrap();
    for n in &names[..3] {
        let kc = b.workload_kubeconfig(n);
        eventually(90, &format!("{n}'s workload API served by B"), || {
            let nodes = b.nodes(&kc)?;
            (nodes.len() == 1)
                .then_some(())
                .ok_or_else(|| format!("{nodes:?}"))
        });
    }
    all_available(&b, &names, 90);
    assert_eq!(machines_and_boots(&b, &shared), boots);
    phase("B took over");
    let _ = bc.kill();
    let _ = bc.wait();
}

#[test]
fn a_backup_restores_into_another_plane() {
    let a = Mgmt::start("backup-a", false);
    let b = Mgmt::start("backup-b", true);
    a.ok(
        &["apply", "-f", "-"],
        Some(&generate("keep", 1, 0, "v1.31.0")),
    );
    wait_available(&a, "keep", 90);
    let before = inventory(&a);
    let dir = a.dir.join("backup");
    let d = dir.to_str().unwrap();
    let out = slipway_move(&a, &["--to-directory", d], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        files,
        before.values().sum::<usize>(),
        "{}",
        text(&out.stdout)
    );
    // The source keeps running, unpaused.
    let c = a.json(&["get", "cluster", "keep"]);
    assert!(
        c["spec"]["paused"] != true
            && c["metadata"]["annotations"]["slipway.dev/paused-by-move"].is_null()
    );

    // The source is lost (its process stops; the machines live on in the shared data dir).
    let mut a = a;
    a.up.kill().unwrap();
    a.up.wait().unwrap();
    let mut bc = controller(&b, &a.dir, &["--leader-elect"]);
    eventually(30, "B's controller holds its Lease", || {
        let out = b.kubectl_with(
            &b.kubeconfig,
            &["get", "lease", "-n", "kube-system", "slipway-controller"],
            None,
        );
        out.status
            .success()
            .then_some(())
            .ok_or_else(|| text(&out.stderr))
    });
    let mut cmd = Command::new(slipway_bin());
    let out = cmd
        .args(["move", "--from-directory", d])
        .env("KUBECONFIG", &b.kubeconfig)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(inventory(&b), before);
    // Restoring again is a no-op, not a clash.
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("created 0 objects"),
        "{}",
        text(&out.stdout)
    );
    wait_available(&b, "keep", 90);
    let _ = bc.kill();
    let _ = bc.wait();
}

/// Registers a Ready Node for every AWSMachine of `m` that has a providerID, as its kubelet
/// would (moto runs no instance).
fn register_aws_nodes(m: &Mgmt, workload: &Mgmt) {
    for am in m.items(&["get", "awsmachines"]) {
        if let Some(pid) = am["spec"]["providerID"].as_str() {
            register_node(
                workload,
                am["metadata"]["name"].as_str().unwrap(),
                pid,
                "v1.31.0",
            );
        }
    }
}

#[test]
fn an_aws_cluster_moves_without_creating_or_deleting_ec2_resources() {
    use slipway_aws::network::model::owner_tag;
    let Some(aws) = moto::moto(&[]) else { return };
    let t0 = std::time::Instant::now();
    let phase = |what: &str| eprintln!("[aws-pivot] {what}: {:.1}s", t0.elapsed().as_secs_f64());
    let workload = Mgmt::start("aws-pivot-workload", true);
    let mut a = Mgmt::start("aws-pivot-a", true);
    let mut b = Mgmt::start("aws-pivot-b", true);
    let mut env = aws.env();
    // A short drift resync: B looks at every resource soon after it adopts them.
    env.push(("SLIPWAY_AWS_RESYNC_SECONDS", "3".into()));
    a.start_controller_env(&env);
    a.stand_in_kubeconfig("aw", &workload);
    a.ok(
        &["apply", "-f", "-"],
        Some(&generate_for_moto("aw", "aws", 1)),
    );
    eventually(
        150,
        "2 Running machines and an Available cluster in A",
        || {
            register_aws_nodes(&a, &workload);
            let ms = machines(&a, "aw");
            let running = ms
                .iter()
                .filter(|x| x["status"]["phase"] == "Running")
                .count();
            let c = a.json(&["get", "cluster", "aw"]);
            (ms.len() == 2 && running == 2 && condition(&c, "Available").as_deref() == Some("True"))
                .then_some(())
                .ok_or_else(|| format!("{running}/{} running", ms.len()))
        },
    );
    phase("Available in A");
    let r = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let before = r.block_on(aws.owned_ids(&owner_tag("aw")));
    assert_eq!(before["instances"].len(), 2, "{before:?}");
    assert_eq!(before["vpcs"].len(), 1);
    assert_eq!(before["load_balancers"].len(), 1);
    let provider_ids: BTreeSet<String> = a
        .items(&["get", "awsmachines"])
        .iter()
        .filter_map(|m| m["spec"]["providerID"].as_str().map(String::from))
        .collect();

    b.start_controller_with(&env, &["--leader-elect"]);
    eventually(30, "B's controller holds its Lease", || {
        let out = b.kubectl_with(
            &b.kubeconfig,
            &["get", "lease", "-n", "kube-system", "slipway-controller"],
            None,
        );
        out.status
            .success()
            .then_some(())
            .ok_or_else(|| text(&out.stderr))
    });
    let target = b.kubeconfig.to_str().unwrap().to_string();
    let out = slipway_move(&a, &["--to-kubeconfig", &target, "-n", "default"], &[]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    phase("moved");
    assert!(
        a.items(&["get", "clusters,awsclusters,awsmachines"])
            .is_empty()
    );

    // B adopts what A made: Available, the same instances, and after several resyncs of
    // B's AWS reconcilers moto holds exactly what it held before.
    eventually(90, "Available in B", || {
        let c = b.json(&["get", "cluster", "aw"]);
        let ms = machines(&b, "aw");
        (condition(&c, "Available").as_deref() == Some("True")
            && ms.len() == 2
            && ms.iter().all(|x| x["status"]["phase"] == "Running"))
        .then_some(())
        .ok_or_else(|| format!("{:#}", c["status"]["conditions"]))
    });
    let moved_ids: BTreeSet<String> = b
        .items(&["get", "awsmachines"])
        .iter()
        .filter_map(|m| m["spec"]["providerID"].as_str().map(String::from))
        .collect();
    assert_eq!(moved_ids, provider_ids);
    eventually(30, "B's AWSCluster reconciled since the move", || {
        let ac = b.json(&["get", "awscluster", "aw"]);
        (condition(&ac, "Ready").as_deref() == Some("True")
            && ac["status"]["observedGeneration"].is_number())
        .then_some(())
        .ok_or_else(|| format!("{:#}", ac["status"]))
    });
    // Several resync periods (3 s) of B's reconcilers pass; nothing is made or removed.
    std::thread::sleep(std::time::Duration::from_secs(10));
    assert_eq!(r.block_on(aws.owned_ids(&owner_tag("aw"))), before);
    phase("B holds it, moto unchanged");
    a.kill_controller();
    b.kill_controller();
}
