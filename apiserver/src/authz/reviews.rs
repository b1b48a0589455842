//! The authorization APIs a client asks about itself with: SelfSubjectAccessReview
//! (`kubectl auth can-i`), SelfSubjectRulesReview (`kubectl auth can-i --list`) and
//! SelfSubjectReview (`kubectl auth whoami`); the TokenRequest subresource
//! (`kubectl create token`); and their entries in discovery. Requests reach these only after
//! the authorizer allowed them (`create` on the review resource).

use http::Method;
use serde_json::{Value, json};

use super::{Attributes, Auth, Decision, Identity, Mode, rbac::Rule};
use crate::{api::Api, discovery, error::ApiError, meta};

const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTHENTICATION: &str = "authentication.k8s.io";

fn resource(name: &str, kind: &str) -> Value {
    json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": false, "kind": kind, "verbs": ["create"]})
}

/// The resources of a review group-version, for discovery.
fn review_resources(group: &str) -> Option<Vec<Value>> {
    match group {
        AUTHORIZATION => Some(vec![
            resource("selfsubjectaccessreviews", "SelfSubjectAccessReview"),
            resource("selfsubjectrulesreviews", "SelfSubjectRulesReview"),
        ]),
        AUTHENTICATION => Some(vec![resource("selfsubjectreviews", "SelfSubjectReview")]),
        _ => None,
    }
}

fn group_entry(group: &str) -> Value {
    let v = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [v], "preferredVersion": v})
}

fn body_of(body: &[u8]) -> Result<Value, ApiError> {
    super::body_json(body)
}

/// Answers the requests this module serves: `Some((status, body))`, or `None` for any other
/// request.
pub fn serve(
    auth: &Auth,
    api: &Api,
    who: &Identity,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Option<Result<(u16, Value), ApiError>> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    let out = match segs.as_slice() {
        ["apis"] if get => {
            let mut groups = discovery::api_groups(&api.catalog);
            if let Some(list) = groups["groups"].as_array_mut() {
                list.push(group_entry(AUTHENTICATION));
                list.push(group_entry(AUTHORIZATION));
            }
            Ok((200, groups))
        }
        ["apis", g @ (AUTHORIZATION | AUTHENTICATION)] if get => {
            let mut e = group_entry(g);
            e["kind"] = json!("APIGroup");
            e["apiVersion"] = json!("v1");
            Ok((200, e))
        }
        ["apis", g @ (AUTHORIZATION | AUTHENTICATION), "v1"] if get => Ok((
            200,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{g}/v1"),
                   "resources": review_resources(g).unwrap_or_default()}),
        )),
        ["api", "v1"] if get => {
            let mut list = discovery::resource_list(&api.catalog, "", "v1")?;
            if let Some(r) = list["resources"].as_array_mut() {
                r.push(json!({"name": "serviceaccounts/token", "singularName": "", "namespaced": true,
                              "group": AUTHENTICATION, "version": "v1", "kind": "TokenRequest", "verbs": ["create"]}));
            }
            Ok((200, list))
        }
        ["apis", AUTHORIZATION, "v1", "selfsubjectaccessreviews"] if post => {
            body_of(body).and_then(|b| access_review(auth, api, who, b))
        }
        ["apis", AUTHORIZATION, "v1", "selfsubjectrulesreviews"] if post => {
            body_of(body).map(|b| rules_review(auth, api, who, b))
        }
        ["apis", AUTHENTICATION, "v1", "selfsubjectreviews"] if post => Ok((201, whoami(who))),
        ["apis", AUTHORIZATION | AUTHENTICATION, "v1", r]
            if review_resources(segs[1])?.iter().any(|x| x["name"] == *r) =>
        {
            Err(ApiError::method_not_supported(method.as_str(), r))
        }
        [
            "api",
            "v1",
            "namespaces",
            ns,
            "serviceaccounts",
            name,
            "token",
        ] if post => {
            super::tokens::token_request(api, auth.signer(), ns, name, body).map(|v| (201, v))
        }
        ["api", "v1", "namespaces", _, "serviceaccounts", _, "token"] => Err(
            ApiError::method_not_supported(method.as_str(), "serviceaccounts/token"),
        ),
        _ => return None,
    };
    Some(out)
}

fn access_review(
    auth: &Auth,
    api: &Api,
    who: &Identity,
    review: Value,
) -> Result<(u16, Value), ApiError> {
    let spec = &review["spec"];
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let attrs = match (
        spec["resourceAttributes"].as_object(),
        spec["nonResourceAttributes"].as_object(),
    ) {
        (Some(_), None) => {
            let r = &spec["resourceAttributes"];
            Attributes {
                verb: s(r, "verb"),
                resource_request: true,
                group: s(r, "group"),
                version: s(r, "version"),
                resource: s(r, "resource"),
                subresource: s(r, "subresource"),
                namespace: s(r, "namespace"),
                name: s(r, "name"),
                ..Default::default()
            }
        }
        (None, Some(_)) => {
            let r = &spec["nonResourceAttributes"];
            Attributes {
                verb: s(r, "verb"),
                path: s(r, "path"),
                ..Default::default()
            }
        }
        _ => {
            return Err(ApiError::invalid(
                "SelfSubjectAccessReview",
                AUTHORIZATION,
                "",
                &[crate::schema::FieldError {
                    field: "spec.resourceAttributes".into(),
                    error_type: crate::schema::ErrorType::Invalid,
                    bad_value: Some(json!("null")),
                    detail: "exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
                }],
            ));
        }
    };
    let status = match auth.authorize(api, who, &attrs) {
        Decision::Allow(reason) => json!({"allowed": true, "reason": reason}),
        Decision::Deny(reason) => json!({"allowed": false, "reason": reason}),
    };
    Ok((
        201,
        json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
               "metadata": {"creationTimestamp": meta::now()}, "spec": spec, "status": status}),
    ))
}

fn rules_review(auth: &Auth, api: &Api, who: &Identity, review: Value) -> (u16, Value) {
    let ns = review["spec"]["namespace"].as_str().unwrap_or_default();
    let (rules, errors) = if auth.mode == Mode::AlwaysAllow {
        let all = Rule {
            verbs: vec!["*".into()],
            api_groups: vec!["*".into()],
            resources: vec!["*".into()],
            ..Default::default()
        };
        let urls = Rule {
            verbs: vec!["*".into()],
            non_resource_urls: vec!["*".into()],
            ..Default::default()
        };
        (vec![all, urls], vec![])
    } else {
        auth.snapshot(api).rules_for(who, ns)
    };
    let mut resource_rules: Vec<Value> = Vec::new();
    let mut non_resource_rules: Vec<Value> = Vec::new();
    for r in &rules {
        if !r.resources.is_empty() {
            let v = json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources,
                           "resourceNames": r.resource_names});
            if !resource_rules.contains(&v) {
                resource_rules.push(v);
            }
        }
        if !r.non_resource_urls.is_empty() {
            let v = json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls});
            if !non_resource_rules.contains(&v) {
                non_resource_rules.push(v);
            }
        }
    }
    let mut status = json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                            "incomplete": !errors.is_empty()});
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors.join(", "));
    }
    (
        201,
        json!({"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1",
               "metadata": {"creationTimestamp": meta::now()}, "spec": review["spec"], "status": status}),
    )
}

fn whoami(who: &Identity) -> Value {
    let mut user = json!({"username": who.user, "groups": who.groups});
    if !who.uid.is_empty() {
        user["uid"] = json!(who.uid);
    }
    if !who.extra.is_empty() {
        user["extra"] = json!(who.extra);
    }
    json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
           "metadata": {"creationTimestamp": meta::now()}, "status": {"userInfo": user}})
}
