//! The store's contract: compare-and-set commits, one resourceVersion, the label index,
//! watch resumption and persistence across reopening.

use serde_json::json;

use super::*;

fn obj(name: &str, v: i64) -> Value {
    json!({"metadata": {"name": name}, "spec": {"v": v}})
}

fn labelled(name: &str, ns: &str, cluster: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": ns, "labels": {INDEXED_LABEL: cluster, "x": "y"}}})
}

fn names(items: &[(ObjKey, Entry)]) -> Vec<String> {
    items
        .iter()
        .map(|(k, _)| format!("{}/{}", k.ns, k.name))
        .collect()
}

#[test]
fn the_label_index_follows_puts_relabels_and_deletes() {
    let s = Store::in_memory();
    let put = |gr: &str, ns: &str, name: &str, cluster: &str| {
        let k = ObjKey::new(gr, ns, name);
        let pre = s
            .get(&k)
            .map_or(Precondition::Absent, |e| Precondition::At(e.rv));
        s.commit(&k, pre, Change::Put(labelled(name, ns, cluster)))
            .unwrap();
    };
    put("g/machines", "b", "m2", "c1");
    put("g/machines", "a", "m1", "c1");
    put("g/machines", "a", "m3", "c2");
    put("g/sets", "a", "s1", "c1");
    let all = |ns| s.list_labelled("g/machines", ns, "c1", |_, _| true).1;
    assert_eq!(
        names(&all(None)),
        ["a/m1", "b/m2"],
        "key order, this resource only"
    );
    assert_eq!(names(&all(Some("a"))), ["a/m1"]);
    put("g/machines", "a", "m1", "c2");
    assert_eq!(names(&all(None)), ["b/m2"], "relabelled away");
    let c2 = s.list_labelled("g/machines", None, "c2", |_, _| true).1;
    assert_eq!(names(&c2), ["a/m1", "a/m3"]);
    let k = ObjKey::new("g/machines", "b", "m2");
    let rv = s.get(&k).unwrap().rv;
    s.commit(&k, Precondition::At(rv), Change::Delete).unwrap();
    assert!(all(None).is_empty(), "deleted");
    let keep = s
        .list_labelled("g/machines", None, "c2", |k, _| k.name == "m3")
        .1;
    assert_eq!(names(&keep), ["a/m3"], "the filter still applies");
    assert!(
        s.list_labelled("g/machines", None, "none", |_, _| true)
            .1
            .is_empty()
    );
}

#[test]
fn commits_are_compare_and_set_with_one_monotonic_resource_version() {
    let s = Store::in_memory();
    let k = ObjKey::new("/configmaps", "default", "a");
    let e1 = s
        .commit(&k, Precondition::Absent, Change::Put(obj("a", 1)))
        .unwrap()
        .unwrap();
    assert_eq!(e1.rv, 1);
    assert_eq!(e1.value()["metadata"]["resourceVersion"], "1");
    assert!(matches!(
        s.commit(&k, Precondition::Absent, Change::Put(obj("a", 2))),
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.commit(&k, Precondition::At(7), Change::Put(obj("a", 2))),
        Err(StoreError::Conflict)
    ));
    let e2 = s
        .commit(&k, Precondition::At(1), Change::Put(obj("a", 2)))
        .unwrap()
        .unwrap();
    assert_eq!(e2.rv, 2);
    let k2 = ObjKey::new("/configmaps", "other", "b");
    s.commit(&k2, Precondition::Absent, Change::Put(obj("b", 1)))
        .unwrap();
    assert_eq!(s.list("/configmaps", Some("default")).1.len(), 1);
    assert_eq!(s.list("/configmaps", None).1.len(), 2);
    assert_eq!(s.list("/secrets", None).1.len(), 0);
    assert!(
        s.commit(&k, Precondition::At(2), Change::Delete)
            .unwrap()
            .is_none()
    );
    assert!(s.get(&k).is_none());
    assert_eq!(s.current_rv(), 4);
}

#[test]
fn watch_resumes_from_history_and_older_versions_are_gone() {
    let s = Store {
        history_cap: 3,
        ..Store::in_memory()
    };
    let k = ObjKey::new("/configmaps", "default", "a");
    s.commit(&k, Precondition::Absent, Change::Put(obj("a", 1)))
        .unwrap();
    for rv in 1..5 {
        s.commit(
            &k,
            Precondition::At(rv),
            Change::Put(obj("a", rv as i64 + 1)),
        )
        .unwrap();
    }
    // History holds rv 3, 4, 5: resumable from 2 onwards.
    let (backlog, _) = s.watch_from(2).unwrap();
    assert_eq!(
        backlog.iter().map(|e| e.rv).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert!(matches!(
        s.watch_from(1),
        Err(StoreError::Gone {
            requested: 1,
            oldest: 2
        })
    ));
    let (backlog, mut rx) = s.watch_from(5).unwrap();
    assert!(backlog.is_empty());
    s.commit(&k, Precondition::At(5), Change::Delete).unwrap();
    let ev = rx.try_recv().unwrap();
    assert_eq!((ev.rv, ev.kind), (6, EventType::Deleted));
    assert_eq!(
        ev.entry.value()["spec"]["v"],
        5,
        "a DELETED event carries the last state"
    );
}

#[test]
fn a_reopened_file_has_every_object_with_its_resource_version_and_the_history() {
    let dir = std::env::temp_dir().join(format!(
        "slipway-store-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("db.sqlite");
    let _ = std::fs::remove_file(&path);
    {
        let s = Store::open(&path).unwrap();
        put_things(&s, 0..50);
        let k = ObjKey::new("g/things", "ns", "o0");
        s.commit(&k, Precondition::At(1), Change::Delete).unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.current_rv(), 51);
    assert_eq!(s.len(), 49);
    let e = s.get(&ObjKey::new("g/things", "ns", "o7")).unwrap();
    assert_eq!(
        (
            e.rv,
            e.value()["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string)
        ),
        (8, Some("8".to_string()))
    );
    let (backlog, _) = s.watch_from(49).unwrap();
    assert_eq!(
        backlog.iter().map(|e| (e.rv, e.kind)).collect::<Vec<_>>(),
        vec![(50, EventType::Added), (51, EventType::Deleted)]
    );
    let k = ObjKey::new("g/things", "ns", "new");
    assert_eq!(
        s.commit(&k, Precondition::Absent, Change::Put(obj("new", 0)))
            .unwrap()
            .unwrap()
            .rv,
        52
    );
}

/// Creates `g/things` objects `o<i>` in namespace `ns` for every `i` of `range`.
fn put_things(s: &Store, range: std::ops::Range<i64>) {
    for i in range {
        let k = ObjKey::new("g/things", "ns", &format!("o{i}"));
        s.commit(
            &k,
            Precondition::Absent,
            Change::Put(obj(&format!("o{i}"), i)),
        )
        .unwrap();
    }
}

/// Descriptors of this process open on files under `dir`.
fn fds_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|l| l.starts_with(dir))
        .count()
}

#[test]
fn a_one_file_store_holds_one_descriptor_at_rest_and_keeps_a_wal_stores_data() {
    let dir = std::env::temp_dir().join(format!(
        "slipway-store-onefile-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("db.sqlite");
    {
        let s = Store::open(&path).unwrap();
        put_things(&s, 0..20);
        assert_eq!(fds_under(&dir), 3, "WAL: database, -wal and -shm");
    }
    let s = Store::open_with(&path, None, Journal::OneFile).unwrap();
    assert_eq!(s.len(), 20, "what the WAL store committed is there");
    put_things(&s, 20..40);
    assert_eq!(
        fds_under(&dir),
        1,
        "one file at rest: the journal is closed"
    );
    drop(s);
    let s = Store::open_with(&path, None, Journal::OneFile).unwrap();
    assert_eq!(s.len(), 40, "every commit survives reopening");
    assert_eq!(s.current_rv(), 40);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
