use serde_json::json;

use super::*;
use crate::authz::Identity;

fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
    Attributes {
        verb: verb.into(),
        resource_request: true,
        group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
        ..Default::default()
    }
}

fn url(verb: &str, path: &str) -> Attributes {
    Attributes {
        verb: verb.into(),
        path: path.into(),
        ..Default::default()
    }
}

#[test]
fn rules_match_verbs_groups_resources_subresources_and_names() {
    let r =
        Rule::of(&json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"]}));
    assert!(r.allows(&res("get", "", "secrets", "", "a", "x")));
    assert!(!r.allows(&res("delete", "", "secrets", "", "a", "x")));
    assert!(!r.allows(&res("get", "apps", "secrets", "", "a", "x")));
    assert!(!r.allows(&res("get", "", "configmaps", "", "a", "x")));
    assert!(
        !r.allows(&res("get", "", "secrets", "status", "a", "x")),
        "a resource does not grant its subresources"
    );
    let all = Rule::of(&json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
    assert!(all.allows(&res("patch", "x.io", "things", "status", "", "y")));
    let scale =
        Rule::of(&json!({"verbs": ["update"], "apiGroups": ["apps"], "resources": ["*/scale"]}));
    assert!(scale.allows(&res("update", "apps", "deployments", "scale", "a", "d")));
    assert!(!scale.allows(&res("update", "apps", "deployments", "", "a", "d")));
    let named = Rule::of(
        &json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["one"]}),
    );
    assert!(named.allows(&res("get", "", "configmaps", "", "a", "one")));
    assert!(!named.allows(&res("get", "", "configmaps", "", "a", "two")));
    assert!(
        !named.allows(&res("list", "", "configmaps", "", "a", "")),
        "resourceNames never allow an unnamed list"
    );
    let urls = Rule::of(&json!({"verbs": ["get"], "nonResourceURLs": ["/apis/*", "/version"]}));
    assert!(urls.allows(&url("get", "/apis/apps/v1")));
    assert!(urls.allows(&url("get", "/version")));
    assert!(!urls.allows(&url("get", "/version/x")));
    assert!(!urls.allows(&url("post", "/version")));
    assert!(
        !urls.allows(&res("get", "", "secrets", "", "", "")),
        "URL rules never allow resources"
    );
}

fn snapshot(objects: &[(&str, serde_json::Value)]) -> Snapshot {
    let store = crate::store::Store::in_memory();
    for (plural, obj) in objects {
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
        let name = obj["metadata"]["name"].as_str().unwrap();
        let mut o = obj.clone();
        o["metadata"]["uid"] = json!(name);
        store
            .commit(
                &crate::store::ObjKey::new(&format!("{GROUP}/{plural}"), ns, name),
                crate::store::Precondition::Absent,
                crate::store::Change::Put(o),
            )
            .unwrap();
    }
    Snapshot::load(&store)
}

#[test]
fn bindings_grant_by_user_group_and_service_account_in_their_scope() {
    let snap = snapshot(&[
        (
            "clusterroles",
            json!({"metadata": {"name": "reader"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]}),
        ),
        (
            "roles",
            json!({"metadata": {"name": "cm", "namespace": "a"}, "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["configmaps"]}]}),
        ),
        (
            "clusterrolebindings",
            json!({"metadata": {"name": "ops-read"}, "roleRef": {"kind": "ClusterRole", "name": "reader"},
                   "subjects": [{"kind": "Group", "name": "ops"}]}),
        ),
        (
            "rolebindings",
            json!({"metadata": {"name": "team", "namespace": "a"}, "roleRef": {"kind": "Role", "name": "cm"},
                   "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "bot"}]}),
        ),
        (
            "rolebindings",
            json!({"metadata": {"name": "read", "namespace": "b"}, "roleRef": {"kind": "ClusterRole", "name": "reader"},
                   "subjects": [{"kind": "User", "name": "alice"}]}),
        ),
        (
            "rolebindings",
            json!({"metadata": {"name": "dangling", "namespace": "b"}, "roleRef": {"kind": "Role", "name": "gone"},
                   "subjects": [{"kind": "User", "name": "alice"}]}),
        ),
    ]);
    let alice = Identity::new("alice", vec![]);
    let ops = Identity::new("bob", vec!["ops".into()]);
    let bot = Identity::new("system:serviceaccount:a:bot", vec![]);
    let list_cm = |ns: &str| res("list", "", "configmaps", "", ns, "");
    let get_secret = |ns: &str| res("get", "", "secrets", "", ns, "s");
    assert!(snap.authorize(&alice, &list_cm("a")).allowed.is_some());
    assert!(snap.authorize(&alice, &list_cm("b")).allowed.is_none());
    assert!(snap.authorize(&bot, &list_cm("a")).allowed.is_some());
    assert!(snap.authorize(&alice, &get_secret("b")).allowed.is_some());
    assert!(
        snap.authorize(&alice, &get_secret("a")).allowed.is_none(),
        "a RoleBinding to a ClusterRole grants in its namespace only"
    );
    let why = snap.authorize(&ops, &get_secret("z")).allowed.unwrap();
    assert_eq!(
        why,
        r#"RBAC: allowed by ClusterRoleBinding "ops-read" of ClusterRole "reader" to Group "ops""#
    );
    assert!(snap.authorize(&ops, &get_secret("")).allowed.is_some());
    let found = snap.authorize(&alice, &res("delete", "", "secrets", "", "b", "s"));
    assert_eq!(
        found.errors,
        vec![r#"role.rbac.authorization.k8s.io "gone" not found"#]
    );
    let (rules, _) = snap.rules_for(&alice, "b");
    assert_eq!(rules.len(), 1);
}
