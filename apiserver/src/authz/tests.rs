use http::Method;

use super::*;

#[test]
fn request_attributes_follow_kube_apiservers_request_info() {
    let q = |s: &str| Query::parse(Some(s));
    let a = Attributes::of_request(&Method::GET, "/api/v1/namespaces/a/secrets", &q(""));
    assert_eq!(
        (
            a.verb.as_str(),
            a.resource.as_str(),
            a.namespace.as_str(),
            a.name.as_str()
        ),
        ("list", "secrets", "a", "")
    );
    let a = Attributes::of_request(&Method::GET, "/api/v1/secrets", &q("watch=true"));
    assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("watch", ""));
    let a = Attributes::of_request(
        &Method::GET,
        "/api/v1/namespaces/a/secrets",
        &q("fieldSelector=metadata.name%3Dx"),
    );
    assert_eq!((a.verb.as_str(), a.name.as_str()), ("list", "x"));
    let a = Attributes::of_request(
        &Method::DELETE,
        "/apis/apps/v1/namespaces/a/deployments",
        &q(""),
    );
    assert_eq!(a.verb, "deletecollection");
    let a = Attributes::of_request(
        &Method::PUT,
        "/apis/x.io/v1/namespaces/a/things/t/status",
        &q(""),
    );
    assert_eq!(
        (
            a.verb.as_str(),
            a.group.as_str(),
            a.subresource.as_str(),
            a.name.as_str()
        ),
        ("update", "x.io", "status", "t")
    );
    let a = Attributes::of_request(&Method::GET, "/api/v1/namespaces/team", &q(""));
    assert_eq!(
        (a.verb.as_str(), a.namespace.as_str(), a.name.as_str()),
        ("get", "team", "team"),
        "a Namespace is in its own namespace"
    );
    let a = Attributes::of_request(&Method::GET, "/apis/apps/v1", &q(""));
    assert!(!a.resource_request);
    assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", "/apis/apps/v1"));
}

#[test]
fn forbidden_messages_are_kube_apiservers() {
    let who = Identity::new("alice", vec![]);
    let q = Query::default();
    let a = Attributes::of_request(&Method::GET, "/api/v1/namespaces/b/secrets/s", &q);
    assert_eq!(
        forbidden(&who, &a, "").message,
        r#"secrets "s" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "b""#
    );
    let a = Attributes::of_request(&Method::GET, "/apis/cluster.x-k8s.io/v1beta2/clusters", &q);
    assert_eq!(
        forbidden(&who, &a, "").message,
        r#"clusters.cluster.x-k8s.io is forbidden: User "alice" cannot list resource "clusters" in API group "cluster.x-k8s.io" at the cluster scope"#
    );
    let a = Attributes::of_request(&Method::PATCH, "/apis/x.io/v1/namespaces/a/t/n/status", &q);
    let e = forbidden(
        &who,
        &a,
        "RBAC: role.rbac.authorization.k8s.io \"r\" not found",
    );
    assert_eq!(
        e.message,
        r#"t.x.io "n" is forbidden: User "alice" cannot patch resource "t/status" in API group "x.io" in the namespace "a": RBAC: role.rbac.authorization.k8s.io "r" not found"#
    );
    assert_eq!((e.code, e.reason), (403, "Forbidden"));
    let a = Attributes::of_request(&Method::GET, "/metrics", &q);
    assert_eq!(
        forbidden(&who, &a, "").message,
        r#"forbidden: User "alice" cannot get path "/metrics""#
    );
}
