//! Machine health end to end, driven by the real kubectl against `slipway up` with the
//! in-memory provider: a worker whose Node is made NotReady from outside (a status patch the
//! simulation leaves alone) is replaced by its MachineSet once remediation is allowed, and a
//! MachineHealthCheck's `unhealthyLessThanOrEqualTo` holds remediation back and says so; a
//! three-machine control plane never remediates a machine when that would lose etcd quorum,
//! and remediates it once it would not; with two unhealthy, the second waits until the first's
//! replacement has joined; a remediated machine's etcd member is removed; a scale-down waits for its pre-drain hook, cordons and
//! drains the Node through the Eviction API (a PodDisruptionBudget holds one Pod until
//! `nodeDrainTimeoutSeconds`; the eviction's Event and the budget's status show in the
//! workload cluster), then waits for its pre-terminate hook.
//! Needs `kubectl` on PATH (`.ci/run` installs it).

use std::{path::Path, time::SystemTime};

use serde_json::{Value, json};
use slipway_testsupport::*;

/// RFC 3339 of the current time (UTC, whole seconds).
fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Sets a workload Node's Ready condition from outside, as a test or a person would.
fn set_ready(m: &Mgmt, kc: &Path, node: &str, status: &str) {
    let patch = json!({"status": {"conditions": [{
        "type": "Ready", "status": status,
        "reason": if status == "True" { "KubeletReady" } else { "KubeletStopped" },
        "message": "set from outside by the test",
        "lastHeartbeatTime": now_rfc3339(), "lastTransitionTime": now_rfc3339()}]}});
    let out = m.kubectl_with(
        kc,
        &[
            "patch",
            "node",
            node,
            "--subresource",
            "status",
            "--type",
            "merge",
            "-p",
            &patch.to_string(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn cond_of(obj: &Value, type_: &str) -> Option<Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

fn name(o: &Value) -> String {
    o["metadata"]["name"].as_str().unwrap().to_string()
}

fn workers(m: &Mgmt, cluster: &str) -> Vec<Value> {
    machines(m, cluster)
        .into_iter()
        .filter(|x| {
            x["metadata"]["labels"]
                .get("cluster.x-k8s.io/control-plane")
                .is_none()
        })
        .collect()
}

fn control_plane(m: &Mgmt, cluster: &str) -> Vec<Value> {
    machines(m, cluster)
        .into_iter()
        .filter(|x| {
            x["metadata"]["labels"]
                .get("cluster.x-k8s.io/control-plane")
                .is_some()
        })
        .collect()
}

fn mhc(name: &str, cluster: &str, selector: Value, trigger: Value) -> String {
    json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineHealthCheck",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterName": cluster, "selector": {"matchLabels": selector},
                 "checks": {"nodeStartupTimeoutSeconds": 120, "unhealthyNodeConditions": [
                     {"type": "Ready", "status": "False", "timeoutSeconds": 3},
                     {"type": "Ready", "status": "Unknown", "timeoutSeconds": 3}]},
                 "remediation": {"triggerIf": trigger}}
    })
    .to_string()
}

#[test]
fn a_notready_worker_is_replaced_once_remediation_is_allowed() {
    let m = Mgmt::start("mhc-workers", false);
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("hw", 1, 2, "v1.31.0")),
    );
    wait_available(&m, "hw", 120);
    let kc = m.workload_kubeconfig("hw");
    wait_shape(&m, "hw", 1, 2, &kc);
    // The generated flavor carries upstream's usual checks (5 minutes); this test uses its own.
    let generated = m.items(&["get", "mhc"]);
    assert_eq!(generated.len(), 2, "control plane and workers checks");
    m.ok(&["delete", "mhc", "--all"], None);
    m.ok(
        &["apply", "-f", "-"],
        Some(&mhc(
            "hw-workers",
            "hw",
            json!({"cluster.x-k8s.io/deployment-name": "hw-md-0"}),
            json!({"unhealthyLessThanOrEqualTo": 0}),
        )),
    );
    eventually(30, "the check counts its machines", || {
        let h = m.json(&["get", "mhc", "hw-workers"]);
        (h["status"]["expectedMachines"] == 2 && h["status"]["currentHealthy"] == 2)
            .then_some(())
            .ok_or_else(|| format!("{:#}", h["status"]))
    });
    let victim = workers(&m, "hw")[0].clone();
    let victim_name = name(&victim);
    let node = victim["status"]["nodeRef"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    set_ready(&m, &kc, &node, "False");

    // Gated: the machine is reported unhealthy, nothing is remediated, and the check says why.
    eventually(
        30,
        "remediation held back by unhealthyLessThanOrEqualTo",
        || {
            let h = m.json(&["get", "mhc", "hw-workers"]);
            let allowed = cond_of(&h, "RemediationAllowed").ok_or("no RemediationAllowed")?;
            let mach = m.json(&["get", "machine", &victim_name]);
            let hc = cond_of(&mach, "HealthCheckSucceeded").ok_or("no HealthCheckSucceeded")?;
            (allowed["status"] == "False"
                && allowed["reason"] == "TooManyUnhealthy"
                && hc["status"] == "False"
                && hc["reason"] == "UnhealthyNode"
                && h["status"]["currentHealthy"] == 1
                && h["status"]["remediationsAllowed"] == 0)
                .then_some(())
                .ok_or_else(|| format!("{allowed} {hc} {:#}", h["status"]))
        },
    );
    let h = m.json(&["get", "mhc", "hw-workers"]);
    let msg = cond_of(&h, "RemediationAllowed").unwrap()["message"].clone();
    assert_eq!(
        msg,
        "Remediation is not allowed, the number of not started or unhealthy machines exceeds maxUnhealthy (total: 2, unhealthy: 1, maxUnhealthy: 0)"
    );
    std::thread::sleep(std::time::Duration::from_secs(6));
    let mach = m.json(&["get", "machine", &victim_name]);
    assert!(
        mach["metadata"]["deletionTimestamp"].is_null(),
        "a gated machine is not deleted"
    );
    assert!(cond_of(&mach, "OwnerRemediated").is_none(), "{mach:#}");
    let tree = std::process::Command::new(slipway_bin())
        .args(["describe", "cluster", "hw"])
        .env("KUBECONFIG", &m.kubeconfig)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let tree = text(&tree.stdout) + &text(&tree.stderr);
    assert!(
        tree.contains(&format!("Machine/{victim_name} (unhealthy)"))
            && tree.contains("UnhealthyNode")
            && tree.contains("Condition Ready on Node is reporting status False"),
        "{tree}"
    );

    // Allowed: the MachineSet deletes the machine and a replacement comes up.
    m.ok(
        &[
            "patch",
            "mhc",
            "hw-workers",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"remediation":{"triggerIf":{"unhealthyLessThanOrEqualTo":"100%"}}}}"#,
        ],
        None,
    );
    eventually(60, "the unhealthy worker replaced", || {
        let ws = workers(&m, "hw");
        let names: Vec<String> = ws.iter().map(name).collect();
        let running = ws
            .iter()
            .filter(|x| x["status"]["phase"] == "Running")
            .count();
        (!names.contains(&victim_name) && ws.len() == 2 && running == 2)
            .then_some(())
            .ok_or_else(|| format!("{names:?}, {running} running"))
    });
    eventually(30, "the check sees two healthy machines", || {
        let h = m.json(&["get", "mhc", "hw-workers"]);
        (h["status"]["currentHealthy"] == 2
            && cond_of(&h, "RemediationAllowed").is_some_and(|c| c["status"] == "True"))
        .then_some(())
        .ok_or_else(|| format!("{:#}", h["status"]))
    });
    let nodes = m.nodes(&kc).unwrap();
    assert!(
        !nodes.iter().any(|n| n.0 == node),
        "the old Node is gone: {nodes:?}"
    );
}

#[test]
fn the_control_plane_keeps_etcd_quorum_while_remediating() {
    let m = Mgmt::start("mhc-cp", false);
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("hc", 3, 0, "v1.31.0")),
    );
    wait_available(&m, "hc", 150);
    let kc = m.workload_kubeconfig("hc");
    wait_shape(&m, "hc", 3, 0, &kc);
    m.ok(&["delete", "mhc", "--all"], None);
    m.ok(
        &["apply", "-f", "-"],
        Some(&mhc(
            "hc-cp",
            "hc",
            json!({"cluster.x-k8s.io/control-plane": ""}),
            json!({}),
        )),
    );
    let cps = control_plane(&m, "hc");
    let node_of = |x: &Value| x["status"]["nodeRef"]["name"].as_str().unwrap().to_string();
    let (a, b) = (cps[0].clone(), cps[1].clone());
    set_ready(&m, &kc, &node_of(&a), "False");
    set_ready(&m, &kc, &node_of(&b), "False");

    // Two of three etcd members unhealthy: removing either would lose quorum, so both wait.
    let held = eventually(40, "remediation refused for quorum", || {
        for x in [&a, &b] {
            let mach = m.json(&["get", "machine", &name(x)]);
            if let Some(c) = cond_of(&mach, "OwnerRemediated")
                && c["reason"] == "CannotBeRemediated"
            {
                return Ok((
                    name(x),
                    c["message"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        Err(format!(
            "{:?}",
            control_plane(&m, "hc")
                .iter()
                .map(|x| cond_of(x, "OwnerRemediated"))
                .collect::<Vec<_>>()
        ))
    });
    assert!(held.1.contains("etcd quorum loss"), "{}", held.1);
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(
        control_plane(&m, "hc").len(),
        3,
        "nothing deleted while quorum is at stake"
    );
    for x in control_plane(&m, "hc") {
        assert!(x["metadata"]["deletionTimestamp"].is_null(), "{}", name(&x));
    }

    // The other one recovers: the held machine is remediated now, and replaced.
    let other = if held.0 == name(&a) { &b } else { &a };
    set_ready(&m, &kc, &node_of(other), "True");
    eventually(90, "the held machine remediated and replaced", || {
        let cps = control_plane(&m, "hc");
        let names: Vec<String> = cps.iter().map(name).collect();
        let running = cps
            .iter()
            .filter(|x| {
                x["status"]["phase"] == "Running" && x["metadata"]["deletionTimestamp"].is_null()
            })
            .count();
        (!names.contains(&held.0) && running == 3)
            .then_some(())
            .ok_or_else(|| format!("{names:?}, {running} running"))
    });
    let kcp = m.json(&["get", "kcp", "hc-control-plane"]);
    assert_eq!(kcp["status"]["lastRemediation"]["machine"], held.0.as_str());
    assert_eq!(kcp["status"]["lastRemediation"]["retryCount"], 0);
    // The replacement carries what it replaces, so a failing replacement counts as a retry.
    eventually(30, "the replacement records the remediation", || {
        control_plane(&m, "hc")
            .iter()
            .find(|x| {
                x["metadata"]["annotations"]["controlplane.cluster.x-k8s.io/remediation-for"]
                    .as_str()
                    .is_some_and(|v| v.contains(&held.0))
            })
            .map(|_| ())
            .ok_or_else(|| "no machine has remediation-for".to_string())
    });
    // The remediated machine's etcd member went with it: the member list is the Nodes of the
    // current machines, and the control plane reads etcd as healthy.
    assert_members_match_machines(&m, &kc, "hc");

    // Sequential: one unhealthy machine is remediated while a second unhealthy one waits for
    // the first's replacement. Replacements boot slowly from now on (the template's
    // vmStartupSeconds; running machines keep their own copy), so the wait is observable.
    let template = m.json(&["get", "kcp", "hc-control-plane"])["spec"]["machineTemplate"]["spec"]
        ["infrastructureRef"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    m.ok(
        &[
            "patch",
            "inmemorymachinetemplate",
            &template,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"template":{"spec":{"simulation":{"vmStartupSeconds":30}}}}}"#,
        ],
        None,
    );
    let cps = control_plane(&m, "hc");
    let (x, y) = (name(&cps[0]), name(&cps[1]));
    set_ready(&m, &kc, &node_of(&cps[0]), "False");
    let x2 = eventually(
        60,
        "the first remediated and its replacement created",
        || {
            let cps = control_plane(&m, "hc");
            let names: Vec<String> = cps.iter().map(name).collect();
            cps.iter()
                .find(|c| {
                    c["metadata"]["annotations"]["controlplane.cluster.x-k8s.io/remediation-for"]
                        .as_str()
                        .is_some_and(|v| v.contains(&x))
                })
                .filter(|_| !names.contains(&x))
                .map(name)
                .ok_or_else(|| format!("{names:?}"))
        },
    );
    set_ready(&m, &kc, &node_of(&cps[1]), "False");
    let deferred = eventually(25, "the second waits for the replacement", || {
        let mach = m.json(&["get", "machine", &y]);
        let repl = m.json(&["get", "machine", &x2]);
        let c = cond_of(&mach, "OwnerRemediated").ok_or("no OwnerRemediated yet")?;
        if !repl["status"]["nodeRef"].is_null() {
            return Err(format!(
                "the replacement {x2} joined before {y} was seen waiting: {c}"
            ));
        }
        (c["reason"] == "RemediationDeferred")
            .then(|| c["message"].as_str().unwrap_or_default().to_string())
            .ok_or_else(|| format!("{c}"))
    });
    assert!(
        deferred.contains("waiting for control plane Machine provisioning to complete"),
        "{deferred}"
    );
    assert!(
        m.json(&["get", "machine", &y])["metadata"]["deletionTimestamp"].is_null(),
        "the second is not deleted while the replacement provisions"
    );
    let y2 = eventually(
        120,
        "the second remediated once the replacement joined",
        || {
            let cps = control_plane(&m, "hc");
            let names: Vec<String> = cps.iter().map(name).collect();
            cps.iter()
                .find(|c| {
                    c["metadata"]["annotations"]["controlplane.cluster.x-k8s.io/remediation-for"]
                        .as_str()
                        .is_some_and(|v| v.contains(&y))
                })
                .filter(|_| !names.contains(&y))
                .map(name)
                .ok_or_else(|| format!("{names:?}"))
        },
    );
    // Recorded history, not timing: the second was remediated no earlier than the first's
    // replacement reported its Node Ready.
    let kcp = m.json(&["get", "kcp", "hc-control-plane"]);
    assert_eq!(kcp["status"]["lastRemediation"]["machine"], y.as_str());
    let remediated_at = kcp["status"]["lastRemediation"]["time"]
        .as_str()
        .unwrap()
        .to_string();
    let joined_at = cond_of(&m.json(&["get", "machine", &x2]), "NodeReady")
        .filter(|c| c["status"] == "True")
        .map(|c| c["lastTransitionTime"].as_str().unwrap().to_string())
        .expect("the first replacement is NodeReady");
    assert!(
        joined_at <= remediated_at,
        "{y} remediated at {remediated_at}, before {x2} joined at {joined_at}"
    );
    eventually(120, "both replacements running", || {
        let cps = control_plane(&m, "hc");
        let running = cps
            .iter()
            .filter(|x| {
                x["status"]["phase"] == "Running" && x["metadata"]["deletionTimestamp"].is_null()
            })
            .count();
        let names: Vec<String> = cps.iter().map(name).collect();
        (running == 3 && names.contains(&y2) && names.contains(&x2))
            .then_some(())
            .ok_or_else(|| format!("{names:?}, {running} running"))
    });
    assert_members_match_machines(&m, &kc, "hc");
}

/// The workload cluster's etcd members are exactly the Nodes of the control-plane machines,
/// and the control plane reports etcd healthy.
fn assert_members_match_machines(m: &Mgmt, kc: &Path, cluster: &str) {
    eventually(60, "etcd members match the machines", || {
        let mut nodes: Vec<String> = control_plane(m, cluster)
            .iter()
            .filter_map(|x| x["status"]["nodeRef"]["name"].as_str().map(String::from))
            .collect();
        nodes.sort();
        let out = m.kubectl_with(
            kc,
            &[
                "get",
                "configmap",
                "-n",
                "kube-system",
                "slipway-etcd-members",
                "-o",
                "json",
            ],
            None,
        );
        let cm: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        let mut members: Vec<String> = cm["data"]
            .as_object()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default();
        members.sort();
        let kcp = m.json(&["get", "kcp", &format!("{cluster}-control-plane")]);
        let etcd = cond_of(&kcp, "EtcdClusterHealthy").unwrap_or_default();
        (members == nodes && etcd["status"] == "True")
            .then_some(())
            .ok_or_else(|| format!("members {members:?}, machine nodes {nodes:?}, {etcd}"))
    });
}

fn pod(name: &str, node: &str, labels: Value, mirror: bool) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}});
    if mirror {
        // What a kubelet puts on the API copy of a static Pod.
        p["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "0123abcd"});
    }
    p
}

#[test]
fn a_scale_down_waits_for_hooks_and_drains_the_node() {
    let m = Mgmt::start("drain", false);
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("dr", 1, 2, "v1.31.0")),
    );
    wait_available(&m, "dr", 120);
    let kc = m.workload_kubeconfig("dr");
    wait_shape(&m, "dr", 1, 2, &kc);
    let ws = workers(&m, "dr");
    let (victim, keeper) = (name(&ws[0]), &ws[1]);
    let node = ws[0]["status"]["nodeRef"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let other_node = keeper["status"]["nodeRef"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let wk = |args: &[&str], stdin: Option<&str>| {
        let out = m.kubectl_with(&kc, args, stdin);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    for p in [
        pod("web-1", &node, json!({"app": "web"}), false),
        pod("web-2", &other_node, json!({"app": "web"}), false),
        pod("batch", &node, json!({"app": "batch"}), false),
        pod("agent", &node, json!({"app": "agent"}), true),
    ] {
        wk(&["apply", "-f", "-"], Some(&p.to_string()));
        let status = json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}});
        wk(
            &[
                "patch",
                "pod",
                p["metadata"]["name"].as_str().unwrap(),
                "--subresource",
                "status",
                "--type",
                "merge",
                "-p",
                &status.to_string(),
            ],
            None,
        );
    }
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}});
    wk(&["apply", "-f", "-"], Some(&pdb.to_string()));

    // The scale-down takes the marked machine; its hooks and a short drain timeout are set
    // on it, as a person or a lifecycle controller would.
    let hooks = json!({"metadata": {"annotations": {
            "cluster.x-k8s.io/delete-machine": "yes",
            "pre-drain.delete.hook.machine.cluster.x-k8s.io/backup": "test",
            "pre-terminate.delete.hook.machine.cluster.x-k8s.io/lb": "test"}},
        "spec": {"deletion": {"nodeDrainTimeoutSeconds": 15}}});
    m.ok(
        &[
            "patch",
            "machine",
            &victim,
            "--type",
            "merge",
            "-p",
            &hooks.to_string(),
        ],
        None,
    );
    m.ok(
        &["scale", "machinedeployment", "dr-md-0", "--replicas", "1"],
        None,
    );
    let deleting = |reason: &str| {
        let mach = m.json(&["get", "machine", &victim]);
        let c = cond_of(&mach, "Deleting").ok_or_else(|| format!("{:#}", mach["status"]))?;
        (c["reason"] == reason)
            .then(|| {
                (
                    mach.clone(),
                    c["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .ok_or_else(|| format!("{c}"))
    };
    let (mach, msg) = eventually(30, "held by the pre-drain hook", || {
        deleting("WaitingForPreDrainHook")
    });
    assert!(
        msg.contains("pre-drain.delete.hook.machine.cluster.x-k8s.io/backup"),
        "{msg}"
    );
    assert!(mach["status"]["deletion"]["waitForPreDrainHookStartTime"].is_string());
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(deleting("WaitingForPreDrainHook").is_ok(), "still held");
    assert_eq!(
        wk(&["get", "pod", "batch", "-o", "name"], None).trim(),
        "pod/batch"
    );

    m.ok(
        &[
            "annotate",
            "machine",
            &victim,
            "pre-drain.delete.hook.machine.cluster.x-k8s.io/backup-",
        ],
        None,
    );
    // Drain: cordoned, the free Pod evicted, the mirror Pod left, the budgeted Pod held.
    let (mach, msg) = eventually(30, "draining, held by the budget", || {
        let (mach, msg) = deleting("DrainingNode")?;
        msg.contains("disruption budget")
            .then_some((mach, msg.clone()))
            .ok_or(msg)
    });
    assert!(msg.contains("default/web-1"), "{msg}");
    assert!(mach["status"]["deletion"]["nodeDrainStartTime"].is_string());
    let n: Value = serde_json::from_str(&wk(&["get", "node", &node, "-o", "json"], None)).unwrap();
    assert_eq!(n["spec"]["unschedulable"], true, "cordoned");
    let left = wk(&["get", "pods", "-o", "name"], None);
    assert!(!left.contains("pod/batch"), "evicted: {left}");
    assert!(
        left.contains("pod/web-1") && left.contains("pod/agent"),
        "{left}"
    );
    // The eviction is visible in the workload cluster as on a real one: the kubelet's Event
    // for the stopped container, and the budget's status (kept by the disruption controller).
    let events: Value = serde_json::from_str(&wk(&["get", "events", "-o", "json"], None)).unwrap();
    let killing = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["involvedObject"]["name"] == "batch" && e["reason"] == "Killing")
        .unwrap_or_else(|| panic!("no Killing event for the evicted Pod: {events:#}"));
    assert_eq!(killing["message"], "Stopping container c");
    assert_eq!(killing["source"]["host"], node.as_str());
    assert!(wk(&["get", "events"], None).contains("Stopping container c"));
    let budget = eventually(10, "the budget's status", || {
        let p: Value = serde_json::from_str(&wk(&["get", "pdb", "web", "-o", "json"], None))
            .map_err(|e| e.to_string())?;
        (p["status"]["expectedPods"] == 2)
            .then_some(p["status"].clone())
            .ok_or_else(|| format!("{:#}", p["status"]))
    });
    assert_eq!(
        (
            &budget["currentHealthy"],
            &budget["desiredHealthy"],
            &budget["disruptionsAllowed"]
        ),
        (&json!(2), &json!(2), &json!(0)),
        "{budget:#}"
    );
    let table = wk(&["get", "pdb", "web"], None);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert!(
        table.contains("ALLOWED DISRUPTIONS") && row[..4] == ["web", "2", "N/A", "0"],
        "{table}"
    );

    // The drain timeout passes: deletion proceeds to the pre-terminate hook.
    let (_, msg) = eventually(40, "past the drain timeout, held by pre-terminate", || {
        deleting("WaitingForPreTerminateHook")
    });
    assert!(
        msg.contains("pre-terminate.delete.hook.machine.cluster.x-k8s.io/lb"),
        "{msg}"
    );
    assert!(wk(&["get", "pods", "-o", "name"], None).contains("pod/web-1"));
    m.ok(
        &[
            "annotate",
            "machine",
            &victim,
            "pre-terminate.delete.hook.machine.cluster.x-k8s.io/lb-",
        ],
        None,
    );
    eventually(40, "the machine gone", || {
        let names: Vec<String> = machines(&m, "dr").iter().map(name).collect();
        (!names.contains(&victim))
            .then_some(())
            .ok_or_else(|| format!("{names:?}"))
    });
}
