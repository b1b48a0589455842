//! Escalation prevention, as kube-apiserver's RBAC storage does it: writing a Role or
//! ClusterRole needs the `escalate` verb on it or holding every rule it grants (an
//! `aggregationRule` needs full authority); writing a binding needs the `bind` verb on the
//! role it references or holding every rule of that role. Members of `system:masters` (and
//! any user under `--authorization-mode AlwaysAllow`) are not checked.
//!
//! The object judged is the one the write would store: the request is first run as a dry run,
//! so a patch is judged by its result. An update that leaves what grants permissions
//! unchanged (rules and aggregation rule; roleRef and subjects) is not checked.

use http::Method;
use serde_json::{Value, json};

use super::{
    Attributes, Auth, Decision, Identity, forbidden_error,
    rbac::{GROUP, Rule},
};
use crate::{
    api::{Api, Call, Part},
    error::ApiError,
};

fn atoms(r: &Rule) -> Vec<Rule> {
    let mut out = Vec::new();
    let one = |v: &str| vec![v.to_string()];
    for verb in &r.verbs {
        for g in &r.api_groups {
            for res in &r.resources {
                if r.resource_names.is_empty() {
                    out.push(Rule {
                        verbs: one(verb),
                        api_groups: one(g),
                        resources: one(res),
                        ..Default::default()
                    });
                }
                for n in &r.resource_names {
                    out.push(Rule {
                        verbs: one(verb),
                        api_groups: one(g),
                        resources: one(res),
                        resource_names: one(n),
                        ..Default::default()
                    });
                }
            }
        }
        for u in &r.non_resource_urls {
            out.push(Rule {
                verbs: one(verb),
                non_resource_urls: one(u),
                ..Default::default()
            });
        }
    }
    out
}

fn has(set: &[String], v: &str) -> bool {
    set.iter().any(|s| s == "*" || s == v)
}

/// Whether `owner` grants everything the single-valued rule `atom` does.
fn covers(owner: &Rule, atom: &Rule) -> bool {
    if !has(&owner.verbs, &atom.verbs[0]) {
        return false;
    }
    if let Some(url) = atom.non_resource_urls.first() {
        return owner.non_resource_urls.iter().any(|o| {
            o == url
                || o.strip_suffix('*')
                    .is_some_and(|prefix| url.starts_with(prefix))
        });
    }
    let (group, resource) = (&atom.api_groups[0], &atom.resources[0]);
    if !has(&owner.api_groups, group) {
        return false;
    }
    let resource_ok = has(&owner.resources, resource)
        || resource
            .split_once('/')
            .is_some_and(|(_, sub)| owner.resources.iter().any(|o| *o == format!("*/{sub}")));
    resource_ok
        && (owner.resource_names.is_empty()
            || atom
                .resource_names
                .first()
                .is_some_and(|n| owner.resource_names.contains(n)))
}

/// The parts of `wanted` that `held` does not grant, as kube-apiserver lists them: one line
/// per group, resource (or URL) and names, with the missing verbs together.
pub fn missing(held: &[Rule], wanted: &[Rule]) -> Vec<String> {
    let mut merged: Vec<Rule> = Vec::new();
    for a in wanted
        .iter()
        .flat_map(atoms)
        .filter(|a| !held.iter().any(|h| covers(h, a)))
    {
        let same = |r: &&mut Rule| {
            r.api_groups == a.api_groups
                && r.resources == a.resources
                && r.resource_names == a.resource_names
                && r.non_resource_urls == a.non_resource_urls
        };
        match merged.iter_mut().find(same) {
            Some(r) if !r.verbs.contains(&a.verbs[0]) => r.verbs.push(a.verbs[0].clone()),
            Some(_) => {}
            None => merged.push(a),
        }
    }
    let mut out: Vec<String> = merged.iter().map(Rule::compact).collect();
    out.sort();
    out
}

fn not_held(who: &Identity, missing: &[String]) -> String {
    let groups: Vec<String> = who.groups.iter().map(|g| format!("{g:?}")).collect();
    format!(
        "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        who.user,
        groups.join(" "),
        missing.join("\n")
    )
}

/// Refuses a write of a Role, ClusterRole or binding that would grant `who` more than it
/// holds (see the module doc). Other writes pass.
pub fn guard(
    auth: &Auth,
    api: &Api,
    who: &Identity,
    call: &Call<'_>,
    method: &Method,
    content_type: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    let plural = call.res.plural.as_str();
    if call.res.group != GROUP
        || call.target.sub.is_some()
        || !matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        || who.is_master()
        || auth.mode == super::Mode::AlwaysAllow
    {
        return Ok(());
    }
    let mut q = call.query.clone();
    q.0.insert("dryRun".into(), "All".into());
    let dry = Call {
        res: call.res.clone(),
        target: call.target,
        query: &q,
        default_manager: call.default_manager.clone(),
    };
    let name = call.target.name.clone().unwrap_or_default();
    let parse = || super::body_json(body);
    let old = if *method == Method::POST {
        None
    } else {
        api.get(call, &name).ok()
    };
    let new = match *method {
        Method::POST => api.create(&dry, parse()?)?,
        Method::PUT => api.update(&dry, &name, parse()?, Part::Main)?,
        _ => api.patch(&dry, &name, content_type, body, Part::Main)?.1,
    };
    let name = new["metadata"]["name"].as_str().unwrap_or_default();
    let ns = new["metadata"]["namespace"].as_str().unwrap_or_default();
    let allowed = |verb: &str, resource: &str, obj: &str| {
        let a = Attributes {
            verb: verb.into(),
            resource_request: true,
            group: GROUP.into(),
            version: "v1".into(),
            resource: resource.into(),
            namespace: ns.into(),
            name: obj.into(),
            ..Default::default()
        };
        matches!(auth.authorize(api, who, &a), Decision::Allow(_))
    };
    let snap = auth.snapshot(api);
    let (held, _) = snap.rules_for(who, ns);
    let refuse = |why: String| Err(forbidden_error(plural, GROUP, name, &why));
    match plural {
        "roles" | "clusterroles" => {
            let grants = |v: &Value| json!([v["rules"], v["aggregationRule"]]);
            if old.as_ref().is_some_and(|o| grants(o) == grants(&new))
                || allowed("escalate", plural, name)
            {
                return Ok(());
            }
            let m = missing(&held, &Rule::all_of(&new));
            if !m.is_empty() {
                return refuse(not_held(who, &m));
            }
            let aggregating = !new["aggregationRule"].is_null()
                || old
                    .as_ref()
                    .is_some_and(|o| !o["aggregationRule"].is_null());
            let full = Rule {
                verbs: vec!["*".into()],
                api_groups: vec!["*".into()],
                resources: vec!["*".into()],
                ..Default::default()
            };
            let full_urls = Rule {
                verbs: vec!["*".into()],
                non_resource_urls: vec!["*".into()],
                ..Default::default()
            };
            if aggregating && !missing(&held, &[full, full_urls]).is_empty() {
                return refuse(
                    "must have cluster-admin privileges to use the aggregationRule".into(),
                );
            }
            Ok(())
        }
        _ => {
            let grants = |v: &Value| json!([v["roleRef"], v["subjects"]]);
            if old.as_ref().is_some_and(|o| grants(o) == grants(&new)) {
                return Ok(());
            }
            let role = super::rbac::RoleRef {
                kind: new["roleRef"]["kind"].as_str().unwrap_or_default().into(),
                name: new["roleRef"]["name"].as_str().unwrap_or_default().into(),
            };
            let role_plural = if role.kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if allowed("bind", role_plural, &role.name) {
                return Ok(());
            }
            let rules = snap
                .role_rules(&role, ns)
                .map_err(|_| ApiError::not_found(role_plural, GROUP, &role.name))?;
            let m = missing(&held, rules);
            if m.is_empty() {
                Ok(())
            } else {
                refuse(not_held(who, &m))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Rule {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Rule {
            verbs: v(verbs),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: v(names),
            ..Default::default()
        }
    }

    #[test]
    fn held_rules_cover_what_they_grant_and_no_more() {
        let held = [
            r(&["get", "list"], &[""], &["secrets"], &[]),
            r(&["*"], &["apps"], &["*/scale"], &[]),
            r(&["get"], &[""], &["configmaps"], &["only"]),
        ];
        assert!(missing(&held, &[r(&["get"], &[""], &["secrets"], &["x"])]).is_empty());
        assert!(
            missing(
                &held,
                &[r(&["update"], &["apps"], &["deployments/scale"], &[])]
            )
            .is_empty()
        );
        assert!(missing(&held, &[r(&["get"], &[""], &["configmaps"], &["only"])]).is_empty());
        assert_eq!(
            missing(
                &held,
                &[r(
                    &["get", "delete"],
                    &[""],
                    &["secrets", "configmaps"],
                    &[]
                )]
            ),
            vec![
                r#"{APIGroups:[""], Resources:["configmaps"], Verbs:["get" "delete"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], Verbs:["delete"]}"#,
            ]
        );
        // A wildcard is held only by a wildcard.
        assert_eq!(
            missing(&held, &[r(&["*"], &[""], &["secrets"], &[])]).len(),
            1
        );
        assert_eq!(
            missing(&held, &[r(&["get"], &["*"], &["secrets"], &[])]).len(),
            1
        );
        let urls = Rule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/apis/*".into()],
            ..Default::default()
        };
        let want = Rule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/apis/x".into()],
            ..Default::default()
        };
        assert!(missing(std::slice::from_ref(&urls), std::slice::from_ref(&want)).is_empty());
        assert_eq!(missing(&[want], &[urls]).len(), 1);
    }
}
