//! Kubernetes semantics of the verbs, through the API layer: optimistic concurrency,
//! generation, the status subresource split, paging, selectors, patches, watch resume and 410.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use slipway_apiserver::{
    api::{Api, Call, Part},
    request::{Query, Target},
    store::Store,
    watch,
};

const CRD: &str = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
 "metadata":{"name":"widgets.example.com"},
 "spec":{"group":"example.com","scope":"Namespaced","names":{"plural":"widgets","singular":"widget","kind":"Widget","listKind":"WidgetList"},
  "versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{}},
   "schema":{"openAPIV3Schema":{"type":"object","properties":{
     "spec":{"type":"object","properties":{"size":{"type":"integer","minimum":0,"default":1},"color":{"type":"string"}}},
     "status":{"type":"object","properties":{"ready":{"type":"boolean"}}}}}}}]}}"#;

fn setup() -> Api {
    setup_with(Store::in_memory())
}

fn setup_with(store: Store) -> Api {
    let api = Api::new(Arc::new(store));
    run(&api, "", "v1", "namespaces", None, "", |a, c| {
        a.create(c, json!({"metadata": {"name": "default"}}))
    })
    .unwrap();
    run(
        &api,
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        None,
        "",
        |a, c| a.create(c, serde_json::from_str(CRD).unwrap()),
    )
    .unwrap();
    api
}

fn run<T>(
    api: &Api,
    group: &str,
    version: &str,
    plural: &str,
    ns: Option<&str>,
    query: &str,
    f: impl FnOnce(&Api, &Call<'_>) -> T,
) -> T {
    let target = Target {
        group: group.into(),
        version: version.into(),
        namespace: ns.map(Into::into),
        plural: plural.into(),
        name: None,
        sub: None,
    };
    let q = Query::parse(Some(query));
    let call = Call {
        res: api.catalog.find(group, version, plural).expect("served"),
        target: &target,
        query: &q,
        default_manager: "test".into(),
    };
    f(api, &call)
}

fn widgets<T>(api: &Api, query: &str, f: impl FnOnce(&Api, &Call<'_>) -> T) -> T {
    run(
        api,
        "example.com",
        "v1",
        "widgets",
        Some("default"),
        query,
        f,
    )
}

fn widget(name: &str, size: i64, labels: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name, "labels": labels}, "spec": {"size": size}})
}

#[test]
fn updates_need_the_current_resource_version_and_generation_tracks_spec_only() {
    let api = setup();
    let w = widgets(&api, "", |a, c| a.create(c, widget("w", 1, json!({})))).unwrap();
    assert_eq!(w["metadata"]["generation"], 1);
    let mut stale = w.clone();
    stale["spec"]["size"] = json!(2);
    let mut updated =
        widgets(&api, "", |a, c| a.update(c, "w", stale.clone(), Part::Main)).unwrap();
    assert_eq!(updated["metadata"]["generation"], 2);
    let conflict = widgets(&api, "", |a, c| a.update(c, "w", stale, Part::Main)).unwrap_err();
    assert_eq!((conflict.code, conflict.reason), (409, "Conflict"));

    // Status writes neither bump generation nor change spec; main writes cannot change status.
    updated["status"] = json!({"ready": true});
    updated["spec"]["size"] = json!(9);
    let s = widgets(&api, "", |a, c| {
        a.update(c, "w", updated.clone(), Part::Status)
    })
    .unwrap();
    assert_eq!(
        (
            s["metadata"]["generation"].clone(),
            s["spec"]["size"].clone(),
            s["status"]["ready"].clone()
        ),
        (json!(2), json!(2), json!(true))
    );
    let mut main = s.clone();
    main["status"]["ready"] = json!(false);
    main["metadata"]["labels"] = json!({"x": "y"});
    let m = widgets(&api, "", |a, c| a.update(c, "w", main, Part::Main)).unwrap();
    assert_eq!(
        (
            m["status"]["ready"].clone(),
            m["metadata"]["generation"].clone()
        ),
        (json!(true), json!(2)),
        "metadata-only change keeps generation"
    );
    assert!(
        m["metadata"]["managedFields"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
}

#[test]
fn create_defaults_prunes_and_refuses_duplicates() {
    let api = setup();
    let mut w = widget("d", 1, json!({}));
    w["spec"] = json!({"color": "red", "unknown": 1});
    w["status"] = json!({"ready": true});
    let created = widgets(&api, "", |a, c| a.create(c, w.clone())).unwrap();
    assert_eq!(
        created["spec"],
        json!({"color": "red", "size": 1}),
        "defaulted and pruned"
    );
    assert!(
        created.get("status").is_none(),
        "status is not set on create when the subresource exists"
    );
    let dup = widgets(&api, "", |a, c| a.create(c, w)).unwrap_err();
    assert_eq!((dup.code, dup.reason), (409, "AlreadyExists"));
    let strict = widgets(&api, "fieldValidation=Strict", |a, c| {
        a.create(c, json!({"metadata": {"name": "s"}, "spec": {"bogus": 1}}))
    })
    .unwrap_err();
    assert!(
        strict.message.contains("unknown field \"spec.bogus\""),
        "{}",
        strict.message
    );
}

#[test]
fn list_pages_with_limit_and_continue_and_filters_by_selectors() {
    let api = setup();
    for i in 0..7 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        widgets(&api, "", |a, c| {
            a.create(c, widget(&format!("w{i}"), i, json!({"tier": tier})))
        })
        .unwrap();
    }
    let list = |q: &str| -> Value {
        serde_json::from_slice(&widgets(&api, q, |a, c| a.list(c, false)).unwrap()).unwrap()
    };
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let q = if token.is_empty() {
            "limit=3".to_string()
        } else {
            format!("limit=3&continue={token}")
        };
        let page = list(&q);
        assert_eq!(page["kind"], "WidgetList");
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(names, ["w0", "w1", "w2", "w3", "w4", "w5", "w6"]);
    assert_eq!(
        list("labelSelector=tier%3Deven")["items"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        list("labelSelector=tier+in+%28odd%29,tier%21%3Dx")["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        list("fieldSelector=metadata.name%3Dw3")["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let table: Value =
        serde_json::from_slice(&widgets(&api, "", |a, c| a.list(c, true)).unwrap()).unwrap();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["rows"].as_array().unwrap().len(), 7);
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[test]
fn patches_merge_json_and_refuse_strategic_for_custom_resources() {
    let api = setup();
    widgets(&api, "", |a, c| {
        a.create(c, widget("p", 1, json!({"a": "b"})))
    })
    .unwrap();
    let (_, m) = widgets(&api, "", |a, c| {
        a.patch(
            c,
            "p",
            "application/merge-patch+json",
            br#"{"spec":{"color":"blue"},"metadata":{"labels":{"a":null}}}"#,
            Part::Main,
        )
    })
    .unwrap();
    assert_eq!(
        (
            m["spec"]["color"].clone(),
            m["metadata"]["labels"].get("a").cloned()
        ),
        (json!("blue"), None)
    );
    let (_, j) = widgets(&api, "", |a, c| {
        a.patch(
            c,
            "p",
            "application/json-patch+json",
            br#"[{"op":"replace","path":"/spec/size","value":5}]"#,
            Part::Main,
        )
    })
    .unwrap();
    assert_eq!(j["spec"]["size"], 5);
    let bad = widgets(&api, "", |a, c| {
        a.patch(
            c,
            "p",
            "application/json-patch+json",
            br#"[{"op":"replace","path":"/spec/size","value":-5}]"#,
            Part::Main,
        )
    })
    .unwrap_err();
    assert_eq!(bad.code, 422);
    let smp = widgets(&api, "", |a, c| {
        a.patch(
            c,
            "p",
            "application/strategic-merge-patch+json",
            b"{}",
            Part::Main,
        )
    })
    .unwrap_err();
    assert_eq!(smp.code, 415);
    let missing = widgets(&api, "", |a, c| {
        a.patch(c, "nope", "application/merge-patch+json", b"{}", Part::Main)
    })
    .unwrap_err();
    assert_eq!(missing.code, 404);
    let stale = widgets(&api, "", |a, c| {
        a.patch(
            c,
            "p",
            "application/merge-patch+json",
            br#"{"metadata":{"resourceVersion":"1"}}"#,
            Part::Main,
        )
    })
    .unwrap_err();
    assert_eq!(
        stale.code, 409,
        "a patch carrying a stale resourceVersion conflicts"
    );
}

#[test]
fn delete_preconditions_and_watch_history() {
    let api = setup();
    let w = widgets(&api, "", |a, c| a.create(c, widget("d", 1, json!({})))).unwrap();
    let bad_uid = widgets(&api, "", |a, c| {
        a.delete(c, "d", &json!({"preconditions": {"uid": "other"}}))
    })
    .unwrap_err();
    assert_eq!(bad_uid.code, 409);
    let rv: u64 = w["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let status = widgets(&api, "", |a, c| {
        a.delete(
            c,
            "d",
            &json!({"preconditions": {"uid": w["metadata"]["uid"]}}),
        )
    })
    .unwrap();
    assert_eq!(status["status"], "Success");
    let (backlog, _) = api.store.watch_from(rv).unwrap();
    assert_eq!(
        backlog.len(),
        1,
        "the deletion is in the history after the create"
    );
    assert!(api.store.watch_from(0).is_ok());
}

/// The next line of a watch, parsed.
async fn next_event(
    w: &mut tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(10), w.recv())
        .await
        .expect("a watch event within 10s")
        .expect("the watch is open")
        .expect("a body chunk");
    serde_json::from_slice(&line).expect("a JSON line")
}

#[tokio::test]
async fn a_watcher_that_falls_behind_catches_up_from_history_and_only_past_it_gets_gone() {
    // 500 events of history; 64 buffered live between a watcher's reads.
    let api = Arc::new(setup_with(Store::in_memory_sized(500, 64)));
    let target = Target {
        group: "example.com".into(),
        version: "v1".into(),
        namespace: Some("default".into()),
        plural: "widgets".into(),
        name: None,
        sub: None,
    };
    let res = api.catalog.find("example.com", "v1", "widgets").unwrap();
    let start = || {
        watch::start(
            api.clone(),
            res.clone(),
            &target,
            &Query::parse(None),
            false,
        )
    };

    // 300 writes while the watcher reads nothing: far past the live buffer, inside the history.
    let mut slow = start().unwrap();
    for i in 0..300 {
        widgets(&api, "", |a, c| {
            a.create(c, widget(&format!("a{i}"), 1, json!({})))
        })
        .unwrap();
    }
    let mut seen = vec![];
    for _ in 0..300 {
        let e = next_event(&mut slow).await;
        assert_eq!(e["type"], "ADDED", "{e}");
        seen.push(
            e["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let want: Vec<String> = (0..300).map(|i| format!("a{i}")).collect();
    assert_eq!(seen, want, "every event once, in order, no gap");

    // 600 writes while another reads nothing: past the history too, so 410 Gone.
    let mut stale = start().unwrap();
    for i in 0..600 {
        widgets(&api, "", |a, c| {
            a.create(c, widget(&format!("b{i}"), 1, json!({})))
        })
        .unwrap();
    }
    loop {
        let e = next_event(&mut stale).await;
        if e["type"] == "ERROR" {
            assert_eq!(e["object"]["code"], 410, "{e}");
            break;
        }
        assert_eq!(e["type"], "ADDED", "{e}");
    }
}

#[test]
fn a_write_that_changes_nothing_keeps_the_resource_version_and_sends_no_event() {
    let api = setup();
    let w = widgets(&api, "", |a, c| {
        a.create(c, widget("w", 1, json!({"a": "b"})))
    })
    .unwrap();
    let rv = w["metadata"]["resourceVersion"].clone();
    let before = api.store.current_rv();

    let same = widgets(&api, "", |a, c| a.update(c, "w", w.clone(), Part::Main)).unwrap();
    assert_eq!(
        same["metadata"]["resourceVersion"], rv,
        "main write of the same object"
    );
    let mut status = w.clone();
    status["status"] = json!({"ready": true});
    let s = widgets(&api, "", |a, c| {
        a.update(c, "w", status.clone(), Part::Status)
    })
    .unwrap();
    let rv2 = s["metadata"]["resourceVersion"].clone();
    assert_ne!(rv2, rv, "a real status change is written");
    let again = widgets(&api, "", |a, c| a.update(c, "w", s.clone(), Part::Status)).unwrap();
    assert_eq!(
        again["metadata"]["resourceVersion"], rv2,
        "the same status again"
    );
    let merge = |body: &[u8]| {
        widgets(&api, "", |a, c| {
            a.patch(c, "w", "application/merge-patch+json", body, Part::Main)
        })
        .unwrap()
    };
    let patched = merge(br#"{"spec":{"size":1}}"#);
    assert_eq!(
        patched.1["metadata"]["resourceVersion"], rv2,
        "a patch to the same value"
    );
    assert_eq!(
        api.store.current_rv(),
        before + 1,
        "one commit: the status change"
    );

    let grown = merge(br#"{"spec":{"size":2}}"#);
    assert_ne!(grown.1["metadata"]["resourceVersion"], rv2, "a real change");
    assert_eq!(grown.1["metadata"]["generation"], 2);
}
