//! Owner-reference garbage collection and namespace deletion, driven through the API layer.

use std::sync::Arc;

use serde_json::{Value, json};
use slipway_apiserver::{
    api::{Api, Call},
    gc::sweep,
    request::{Query, Target},
    store::Store,
};

fn api() -> Api {
    let api = Api::new(Arc::new(Store::in_memory()));
    for ns in ["default", "team"] {
        with(&api, "namespaces", None, None, |api, call| {
            api.create(call, json!({"metadata": {"name": ns}}))
        })
        .unwrap();
    }
    api
}

fn with<T>(
    api: &Api,
    plural: &str,
    ns: Option<&str>,
    query: Option<&str>,
    f: impl FnOnce(&Api, &Call<'_>) -> T,
) -> T {
    let target = Target {
        group: String::new(),
        version: "v1".into(),
        namespace: ns.map(str::to_string),
        plural: plural.into(),
        name: None,
        sub: None,
    };
    let query = Query::parse(query);
    let call = Call {
        res: api.catalog.find("", "v1", plural).unwrap(),
        target: &target,
        query: &query,
        default_manager: "test".into(),
    };
    f(api, &call)
}

fn cm(api: &Api, name: &str, owners: &[(&Value, bool)]) -> Value {
    let refs: Vec<Value> = owners
        .iter()
        .map(|(o, block)| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"], "uid": o["metadata"]["uid"], "blockOwnerDeletion": block}))
        .collect();
    with(api, "configmaps", Some("default"), None, |api, call| {
        api.create(
            call,
            json!({"metadata": {"name": name, "ownerReferences": refs}}),
        )
    })
    .unwrap()
}

fn exists(api: &Api, name: &str) -> bool {
    with(api, "configmaps", Some("default"), None, |api, call| {
        api.get(call, name)
    })
    .is_ok()
}

fn delete(api: &Api, name: &str, policy: &str) -> Value {
    with(api, "configmaps", Some("default"), None, |api, call| {
        api.delete(call, name, &json!({"propagationPolicy": policy}))
    })
    .unwrap()
}

fn settle(api: &Api) {
    for _ in 0..5 {
        sweep(api);
    }
}

#[test]
fn background_deletes_dependents_whose_owners_are_all_gone() {
    let api = api();
    let (a, b) = (cm(&api, "a", &[]), cm(&api, "b", &[]));
    cm(&api, "only-a", &[(&a, false)]);
    cm(&api, "a-and-b", &[(&a, false), (&b, false)]);
    delete(&api, "a", "Background");
    assert!(!exists(&api, "a"));
    settle(&api);
    assert!(!exists(&api, "only-a"), "its only owner is gone");
    assert!(exists(&api, "a-and-b"), "b still owns it");
    let kept = with(&api, "configmaps", Some("default"), None, |api, call| {
        api.get(call, "a-and-b")
    })
    .unwrap();
    assert_eq!(
        kept["metadata"]["ownerReferences"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the reference to a was dropped"
    );
}

#[test]
fn foreground_keeps_the_owner_until_blocking_dependents_are_gone() {
    let api = api();
    let owner = cm(&api, "owner", &[]);
    let dep = cm(&api, "dep", &[(&owner, true)]);
    with(&api, "configmaps", Some("default"), None, |api, call| {
        let mut d = dep.clone();
        d["metadata"]["finalizers"] = json!(["test/hold"]);
        api.update(call, "dep", d, slipway_apiserver::api::Part::Main)
    })
    .unwrap();
    let deleting = delete(&api, "owner", "Foreground");
    assert_eq!(
        deleting["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    settle(&api);
    assert!(
        exists(&api, "owner"),
        "the blocking dependent is still there"
    );
    let dep_now = with(&api, "configmaps", Some("default"), None, |api, call| {
        api.get(call, "dep")
    })
    .unwrap();
    assert!(
        dep_now["metadata"]["deletionTimestamp"].is_string(),
        "the dependent is being deleted"
    );
    with(&api, "configmaps", Some("default"), None, |api, call| {
        let mut d = dep_now.clone();
        d["metadata"]["finalizers"] = json!([]);
        api.update(call, "dep", d, slipway_apiserver::api::Part::Main)
    })
    .unwrap();
    settle(&api);
    assert!(!exists(&api, "dep") && !exists(&api, "owner"));
}

#[test]
fn orphan_removes_references_and_keeps_dependents() {
    let api = api();
    let owner = cm(&api, "owner", &[]);
    cm(&api, "dep", &[(&owner, false)]);
    delete(&api, "owner", "Orphan");
    settle(&api);
    assert!(!exists(&api, "owner"));
    let dep = with(&api, "configmaps", Some("default"), None, |api, call| {
        api.get(call, "dep")
    })
    .unwrap();
    assert!(
        dep["metadata"]
            .get("ownerReferences")
            .is_none_or(|r| r.as_array().unwrap().is_empty()),
        "{dep}"
    );
}

#[test]
fn deleting_a_namespace_removes_its_contents_then_itself() {
    let api = api();
    with(&api, "configmaps", Some("team"), None, |api, call| {
        api.create(call, json!({"metadata": {"name": "x"}}))
    })
    .unwrap();
    with(&api, "secrets", Some("team"), None, |api, call| {
        api.create(
            call,
            json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}),
        )
    })
    .unwrap();
    let ns = with(&api, "namespaces", None, None, |api, call| {
        api.delete(call, "team", &json!({}))
    })
    .unwrap();
    assert_eq!(ns["status"]["phase"], "Terminating");
    let refused = with(&api, "configmaps", Some("team"), None, |api, call| {
        api.create(call, json!({"metadata": {"name": "late"}}))
    })
    .unwrap_err();
    assert_eq!(refused.code, 403);
    settle(&api);
    assert!(
        with(&api, "namespaces", None, None, |api, call| api
            .get(call, "team"))
        .is_err()
    );
    assert_eq!(api.store.list("/configmaps", Some("team")).1.len(), 0);
    assert_eq!(api.store.list("/secrets", Some("team")).1.len(), 0);
    assert!(
        with(&api, "namespaces", None, None, |api, call| api
            .get(call, "default"))
        .is_ok()
    );
}

#[test]
fn secrets_fold_string_data_and_generate_name_and_dry_run_work() {
    let api = api();
    let s = with(&api, "secrets", Some("default"), None, |api, call| {
        api.create(
            call,
            json!({"metadata": {"generateName": "tok-"}, "stringData": {"token": "abc"}}),
        )
    })
    .unwrap();
    assert!(
        s["metadata"]["name"].as_str().unwrap().starts_with("tok-")
            && s["metadata"]["name"].as_str().unwrap().len() == 9
    );
    assert_eq!(s["data"]["token"], "YWJj");
    assert!(s.get("stringData").is_none());
    assert_eq!(s["type"], "Opaque");
    let dry = with(
        &api,
        "configmaps",
        Some("default"),
        Some("dryRun=All"),
        |api, call| api.create(call, json!({"metadata": {"name": "dry"}})),
    )
    .unwrap();
    assert_eq!(dry["metadata"]["name"], "dry");
    assert!(!exists(&api, "dry"), "dryRun=All stores nothing");
}

/// A delete that carries no precondition is retried when another writer commits between its
/// read and its commit (kube-apiserver's guaranteed update): racing label writers must never
/// turn it into a 409. Objects with and without finalizers take the two commit paths.
#[test]
fn deletes_racing_other_writers_never_conflict() {
    use slipway_apiserver::api::Part;
    let api = Arc::new(api());
    for round in 0..60 {
        let name = format!("race{round}");
        let fins = if round % 2 == 0 {
            json!([])
        } else {
            json!(["example.com/hold"])
        };
        with(&api, "configmaps", Some("default"), None, |api, call| {
            api.create(
                call,
                json!({"metadata": {"name": name, "finalizers": fins}}),
            )
        })
        .unwrap();
        let started = Arc::new(std::sync::Barrier::new(4));
        let writers: Vec<_> = (0..3)
            .map(|_| {
                let (api, name, started) = (api.clone(), name.clone(), started.clone());
                std::thread::spawn(move || {
                    started.wait();
                    for i in 0..200 {
                        let body =
                            json!({"metadata": {"labels": {"i": i.to_string()}}}).to_string();
                        let _ = with(&api, "configmaps", Some("default"), None, |api, call| {
                            api.patch(
                                call,
                                &name,
                                "application/merge-patch+json",
                                body.as_bytes(),
                                Part::Main,
                            )
                        });
                    }
                })
            })
            .collect();
        started.wait();
        std::thread::yield_now();
        let r = with(&api, "configmaps", Some("default"), None, |api, call| {
            api.delete(call, &name, &json!({}))
        });
        for w in writers {
            w.join().unwrap();
        }
        if let Err(e) = r {
            assert_ne!(e.code, 409, "round {round}: {e:?}");
            panic!("round {round}: {e:?}");
        }
    }
}
