//! Authorization of `slipway up` end to end, through the real kubectl: the controller runs
//! under the least-privilege ServiceAccount `slipway init` grants (a rule it lacks shows up
//! here as a 403), a team bound to `edit` in its namespace works there and nowhere else,
//! RBAC writes cannot escalate, and service-account tokens from TokenRequest authenticate
//! until their account goes. Needs `kubectl` on PATH (`.ci/run` installs it).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use slipway_testsupport::*;

/// A kubeconfig like the admin's, authenticating with `token` instead.
fn token_kubeconfig(m: &Mgmt, token: &str, name: &str) -> PathBuf {
    let admin = std::fs::read_to_string(&m.kubeconfig).unwrap();
    let kc: String = admin
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("token: ") {
                format!("    token: {token}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(
        kc.trim(),
        admin.trim(),
        "the admin kubeconfig has a token line"
    );
    let path = m.dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, kc).unwrap();
    path
}

/// kubectl as the user of `kc`: (success, stdout, stderr).
fn as_user(m: &Mgmt, kc: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let out = m.kubectl_with(kc, args, stdin);
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn ok_as(m: &Mgmt, kc: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out, err) = as_user(m, kc, args, stdin);
    assert!(ok, "kubectl {args:?} failed: {out}{err}");
    out
}

fn forbidden_as(m: &Mgmt, kc: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out, err) = as_user(m, kc, args, stdin);
    assert!(!ok, "kubectl {args:?} should be refused: {out}");
    // `Error from server (Forbidden): ...`, or `error: failed to create ...: ... is forbidden`.
    assert!(
        err.contains("(Forbidden)") || err.contains(" is forbidden: "),
        "kubectl {args:?}: {err}"
    );
    err
}

/// A static token file with `lines`, beside (not inside) the data dir `slipway up` creates.
fn token_file(tag: &str, lines: &str) -> PathBuf {
    let dir = temp_dir(tag);
    let path = dir.join("tokens.csv");
    std::fs::write(&path, lines).unwrap();
    path
}

fn controller_log(m: &Mgmt) -> String {
    std::fs::read_to_string(m.dir.join("controller.log")).unwrap_or_default()
}

#[test]
fn controller_provisions_under_the_init_service_account() {
    let mut m = Mgmt::start("rbac-controller", true);
    let out = Command::new(slipway_bin())
        .arg("init")
        .env("KUBECONFIG", &m.kubeconfig)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = m.ok(
        &[
            "create",
            "token",
            "slipway-controller",
            "-n",
            "slipway-system",
            "--duration",
            "2h",
        ],
        None,
    );
    let kc = token_kubeconfig(&m, token.trim(), "controller");
    let me: Value =
        serde_json::from_str(&ok_as(&m, &kc, &["auth", "whoami", "-o", "json"], None)).unwrap();
    assert_eq!(
        me["status"]["userInfo"]["username"],
        "system:serviceaccount:slipway-system:slipway-controller"
    );
    // The account may do what the controller needs, and not more.
    forbidden_as(&m, &kc, &["get", "clusterroles"], None);
    forbidden_as(&m, &kc, &["create", "namespace", "x"], None);

    // With leader election, as the Deployment `slipway init` installs runs it.
    m.start_controller_with(
        &[("KUBECONFIG", kc.display().to_string())],
        &[
            "--leader-elect",
            "--leader-election-namespace",
            "slipway-system",
        ],
    );
    m.ok(
        &["apply", "-f", "-"],
        Some(&generate("least", 1, 1, "v1.31.0")),
    );
    eventually(
        150,
        "Cluster least Available under the init ServiceAccount",
        || {
            let log = controller_log(&m);
            assert!(
                !log.to_lowercase().contains("forbidden"),
                "the controller was refused a request; the ClusterRole of `slipway init` lacks a rule:\n{log}"
            );
            let c = m.json(&["get", "cluster", "least"]);
            (condition(&c, "Available").as_deref() == Some("True"))
                .then_some(())
                .ok_or_else(|| format!("{:#}\ncontroller log:\n{log}", c["status"]))
        },
    );
    let kc_workload = m.workload_kubeconfig("least");
    wait_shape(&m, "least", 1, 1, &kc_workload);
    let log = controller_log(&m);
    assert!(!log.to_lowercase().contains("forbidden"), "{log}");
    let lease = m.json(&["get", "lease", "slipway-controller", "-n", "slipway-system"]);
    assert!(lease["spec"]["holderIdentity"].is_string(), "{lease}");
}

#[test]
fn a_team_gets_its_namespace_only() {
    let tokens = token_file(
        "rbac-team-tokens",
        "alice-token,alice,alice-uid,\"team-a,developers\"\n",
    );
    let m = Mgmt::start_with(
        "rbac-team",
        true,
        &["--token-auth-file", tokens.to_str().unwrap()],
    );
    for ns in ["team-a", "team-b"] {
        m.ok(&["create", "namespace", ns], None);
    }
    m.ok(
        &[
            "create",
            "rolebinding",
            "team-a-edit",
            "--clusterrole=edit",
            "--group=team-a",
            "-n",
            "team-a",
        ],
        None,
    );
    let alice = token_kubeconfig(&m, "alice-token", "alice");
    let me: Value =
        serde_json::from_str(&ok_as(&m, &alice, &["auth", "whoami", "-o", "json"], None)).unwrap();
    assert_eq!(me["status"]["userInfo"]["username"], "alice");
    assert_eq!(me["status"]["userInfo"]["uid"], "alice-uid");
    let groups = me["status"]["userInfo"]["groups"].to_string();
    assert!(
        groups.contains("team-a") && groups.contains("system:authenticated"),
        "{groups}"
    );
    // `edit` is aggregated from the system:aggregate-to-edit roles by the controller.
    eventually(10, "edit aggregated", || {
        let (yes, out, err) = as_user(
            &m,
            &alice,
            &["auth", "can-i", "create", "configmaps", "-n", "team-a"],
            None,
        );
        yes.then_some(()).ok_or(format!("{out}{err}"))
    });
    ok_as(
        &m,
        &alice,
        &[
            "create",
            "configmap",
            "cfg",
            "-n",
            "team-a",
            "--from-literal=a=b",
        ],
        None,
    );
    ok_as(&m, &alice, &["get", "configmaps", "-n", "team-a"], None);
    ok_as(
        &m,
        &alice,
        &[
            "create",
            "secret",
            "generic",
            "s",
            "-n",
            "team-a",
            "--from-literal=k=v",
        ],
        None,
    );
    // Cluster API objects too: slipway aggregates its groups into edit.
    let out = Command::new(slipway_bin())
        .args([
            "generate",
            "cluster",
            "team-cluster",
            "--infrastructure",
            "in-memory",
        ])
        .args([
            "--target-namespace",
            "team-a",
            "--kubernetes-version",
            "v1.31.0",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let manifests = text(&out.stdout);
    ok_as(&m, &alice, &["apply", "-f", "-"], Some(&manifests));
    let err = forbidden_as(
        &m,
        &alice,
        &["apply", "-f", "-"],
        Some(&manifests.replace("namespace: \"team-a\"", "namespace: \"team-b\"")),
    );
    assert!(err.contains("in the namespace \"team-b\""), "{err}");
    let list = ok_as(
        &m,
        &alice,
        &["auth", "can-i", "--list", "-n", "team-a"],
        None,
    );
    assert!(
        list.contains("configmaps") && list.contains("*.cluster.x-k8s.io"),
        "{list}"
    );

    let err = forbidden_as(&m, &alice, &["get", "configmaps", "-n", "team-b"], None);
    assert!(
        err.contains(r#"configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "team-b""#),
        "{err}"
    );
    let err = forbidden_as(&m, &alice, &["get", "secret", "x", "-n", "team-b"], None);
    assert!(
        err.contains(r#"secrets "x" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "team-b""#),
        "{err}"
    );
    let err = forbidden_as(&m, &alice, &["get", "namespaces"], None);
    assert!(err.contains("at the cluster scope"), "{err}");
    forbidden_as(&m, &alice, &["get", "clusters", "-A"], None);
    let (yes, out, _) = as_user(
        &m,
        &alice,
        &["auth", "can-i", "delete", "configmaps", "-n", "team-b"],
        None,
    );
    assert!(!yes && out.trim() == "no", "{out}");
    // Unknown tokens are not users at all.
    let nobody = token_kubeconfig(&m, "not-a-token", "nobody");
    let (ok, _, err) = as_user(&m, &nobody, &["get", "configmaps", "-n", "team-a"], None);
    assert!(!ok && err.contains("Unauthorized"), "{err}");
    // The admin is a master, and says so.
    let (yes, _, _) = as_user(&m, &m.kubeconfig, &["auth", "can-i", "*", "*"], None);
    assert!(yes);
    let _ = std::fs::remove_dir_all(tokens.parent().unwrap());
}

#[test]
fn rbac_writes_cannot_escalate() {
    let tokens = token_file("rbac-esc-tokens", "bob-token,bob,bob-uid\n");
    let m = Mgmt::start_with(
        "rbac-esc",
        true,
        &["--token-auth-file", tokens.to_str().unwrap()],
    );
    m.ok(&["create", "namespace", "team-c"], None);
    m.ok(
        &[
            "create",
            "rolebinding",
            "bob-admin",
            "--clusterrole=admin",
            "--user=bob",
            "-n",
            "team-c",
        ],
        None,
    );
    let bob = token_kubeconfig(&m, "bob-token", "bob");
    eventually(10, "admin aggregated", || {
        let (yes, out, err) = as_user(
            &m,
            &bob,
            &["auth", "can-i", "create", "roles", "-n", "team-c"],
            None,
        );
        yes.then_some(()).ok_or(format!("{out}{err}"))
    });
    // What bob holds he may grant; what he does not, he may not.
    ok_as(
        &m,
        &bob,
        &[
            "create",
            "role",
            "cm-reader",
            "--verb=get",
            "--resource=configmaps",
            "-n",
            "team-c",
        ],
        None,
    );
    let err = forbidden_as(
        &m,
        &bob,
        &[
            "create",
            "role",
            "node-reader",
            "--verb=get",
            "--resource=nodes",
            "-n",
            "team-c",
        ],
        None,
    );
    assert!(
        err.contains(r#"roles.rbac.authorization.k8s.io "node-reader" is forbidden: user "bob" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held"#)
            && err.contains(r#"{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}"#),
        "{err}"
    );
    ok_as(
        &m,
        &bob,
        &[
            "create",
            "rolebinding",
            "view",
            "--clusterrole=view",
            "--user=carol",
            "-n",
            "team-c",
        ],
        None,
    );
    let err = forbidden_as(
        &m,
        &bob,
        &[
            "create",
            "rolebinding",
            "root",
            "--clusterrole=cluster-admin",
            "--user=bob",
            "-n",
            "team-c",
        ],
        None,
    );
    assert!(
        err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    // A patch is judged by its result.
    let (ok, _, err) = as_user(
        &m,
        &bob,
        &[
            "patch",
            "role",
            "cm-reader",
            "-n",
            "team-c",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["nodes"],"verbs":["list"]}}]"#,
        ],
        None,
    );
    assert!(!ok && err.contains("not currently held"), "{err}");
    // With `escalate` and `bind` granted, the same writes pass.
    m.ok(
        &[
            "create",
            "clusterrole",
            "escalator",
            "--verb=escalate,bind",
            "--resource=roles.rbac.authorization.k8s.io,clusterroles.rbac.authorization.k8s.io",
        ],
        None,
    );
    m.ok(
        &[
            "create",
            "rolebinding",
            "bob-escalates",
            "--clusterrole=escalator",
            "--user=bob",
            "-n",
            "team-c",
        ],
        None,
    );
    ok_as(
        &m,
        &bob,
        &[
            "create",
            "role",
            "node-reader",
            "--verb=get",
            "--resource=nodes",
            "-n",
            "team-c",
        ],
        None,
    );
    ok_as(
        &m,
        &bob,
        &[
            "create",
            "rolebinding",
            "root",
            "--clusterrole=cluster-admin",
            "--user=bob",
            "-n",
            "team-c",
        ],
        None,
    );
    let _ = std::fs::remove_dir_all(tokens.parent().unwrap());
}

#[test]
fn service_account_tokens_authenticate_until_the_account_goes() {
    let m = Mgmt::start("rbac-sa", true);
    m.ok(&["create", "namespace", "apps"], None);
    m.ok(&["create", "serviceaccount", "bot", "-n", "apps"], None);
    m.ok(
        &[
            "create",
            "rolebinding",
            "bot-view",
            "--clusterrole=view",
            "--serviceaccount=apps:bot",
            "-n",
            "apps",
        ],
        None,
    );
    let err = text(
        &m.kubectl_with(
            &m.kubeconfig,
            &["create", "token", "bot", "-n", "apps", "--duration", "1m"],
            None,
        )
        .stderr,
    );
    assert!(
        err.contains("may not specify a duration less than 10 minutes"),
        "{err}"
    );
    let missing = m.kubectl_with(
        &m.kubeconfig,
        &["create", "token", "nobody", "-n", "apps"],
        None,
    );
    assert!(
        text(&missing.stderr).contains(r#"serviceaccounts "nobody" not found"#),
        "{}",
        text(&missing.stderr)
    );
    let token = m.ok(&["create", "token", "bot", "-n", "apps"], None);
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT");
    let kc = token_kubeconfig(&m, token, "bot");
    let me: Value =
        serde_json::from_str(&ok_as(&m, &kc, &["auth", "whoami", "-o", "json"], None)).unwrap();
    let groups = me["status"]["userInfo"]["groups"].to_string();
    assert!(
        groups.contains("system:serviceaccounts:apps")
            && groups.contains("system:serviceaccounts\""),
        "{groups}"
    );
    eventually(10, "view aggregated", || {
        let (yes, out, err) = as_user(
            &m,
            &kc,
            &["auth", "can-i", "list", "configmaps", "-n", "apps"],
            None,
        );
        yes.then_some(()).ok_or(format!("{out}{err}"))
    });
    ok_as(&m, &kc, &["get", "configmaps", "-n", "apps"], None);
    let err = forbidden_as(&m, &kc, &["create", "configmap", "x", "-n", "apps"], None);
    assert!(
        err.contains(r#"User "system:serviceaccount:apps:bot" cannot create resource "configmaps" in API group "" in the namespace "apps""#),
        "{err}"
    );
    // view does not read Secrets.
    forbidden_as(&m, &kc, &["get", "secrets", "-n", "apps"], None);
    // A token outlives nothing: with its account gone (and even recreated) it is refused.
    m.ok(&["delete", "serviceaccount", "bot", "-n", "apps"], None);
    m.ok(&["create", "serviceaccount", "bot", "-n", "apps"], None);
    let (ok, _, err) = as_user(&m, &kc, &["get", "configmaps", "-n", "apps"], None);
    assert!(!ok && err.contains("Unauthorized"), "{err}");
    // The signing key is kept private in the data dir.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(m.dir.join("sa-signing.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn always_allow_mode_and_bad_flags() {
    let tokens = token_file("rbac-allow-tokens", "carol-token,carol,carol-uid\n");
    let m = Mgmt::start_with(
        "rbac-allow",
        true,
        &[
            "--authorization-mode",
            "AlwaysAllow",
            "--token-auth-file",
            tokens.to_str().unwrap(),
        ],
    );
    let carol = token_kubeconfig(&m, "carol-token", "carol");
    ok_as(&m, &carol, &["create", "namespace", "anything"], None);
    ok_as(&m, &carol, &["get", "clusterroles"], None);
    let list = ok_as(&m, &carol, &["auth", "can-i", "--list"], None);
    assert!(list.contains("*.*"), "{list}");

    // A malformed token file or an unknown mode stops `slipway up` with an error naming it,
    // and never quotes a token.
    let bad = token_file("rbac-bad-tokens", "secret-token-value,dave\n");
    let dir = temp_dir("rbac-bad-up");
    let out = Command::new(slipway_bin())
        .args(["up", "--port", "0", "--no-controller", "--data-dir"])
        .arg(&dir)
        .arg("--token-auth-file")
        .arg(&bad)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(bad.to_str().unwrap())
            && err.contains("line 1")
            && err.contains("at least 3 columns"),
        "{err}"
    );
    assert!(!err.contains("secret-token-value"), "{err}");
    let out = Command::new(slipway_bin())
        .args([
            "up",
            "--port",
            "0",
            "--authorization-mode",
            "Webhook",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("--authorization-mode")
            && err.contains("RBAC, AlwaysAllow"),
        "{err}"
    );
    for d in [tokens.parent().unwrap(), bad.parent().unwrap(), &dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}
