//! Object storage: every object of every resource, one monotonic resourceVersion, and the
//! event history watches resume from.
//!
//! Contract:
//! - Writes are compare-and-set ([`Store::commit`]): the caller reads, computes the new object
//!   outside the lock, and commits with the resourceVersion it read; a concurrent writer makes
//!   the commit fail with [`StoreError::Conflict`].
//! - A commit is acknowledged only after SQLite (WAL, `synchronous=NORMAL`) has it, so a
//!   SIGKILL loses nothing acknowledged; objects come back with the same resourceVersions.
//! - Every commit appends one event; the last `history` events are kept (in memory and in
//!   SQLite) so a watch can resume from any resourceVersion still in that window, across
//!   restarts. Older ones get [`StoreError::Gone`] (HTTP 410).
//! - All objects are also held in memory (parsed), so reads never touch the disk.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    path::Path,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::broadcast;

/// Identity of a stored object: `group/plural` of its resource, namespace ("" for
/// cluster-scoped) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    /// `group/plural`, e.g. `/secrets` or `cluster.x-k8s.io/clusters`.
    pub gr: String,
    /// Namespace, "" when cluster-scoped.
    pub ns: String,
    /// Name.
    pub name: String,
}

impl ObjKey {
    /// Builds a key.
    pub fn new(gr: &str, ns: &str, name: &str) -> Self {
        Self {
            gr: gr.into(),
            ns: ns.into(),
            name: name.into(),
        }
    }
}

/// A stored object: its serialized JSON (shared, never re-serialized on reads) and the
/// metadata the server itself consults (selectors, garbage collection), so that neither needs
/// to parse the object.
#[derive(Clone, Debug)]
pub struct Entry {
    /// resourceVersion of the last write.
    pub rv: u64,
    /// The object as JSON, with `metadata.resourceVersion` set to `rv`.
    pub raw: Bytes,
    /// Metadata summary.
    pub meta: Arc<Meta>,
}

impl Entry {
    fn from_value(rv: u64, obj: &Value) -> Self {
        let raw = Bytes::from(serde_json::to_vec(obj).expect("a JSON value always serializes"));
        Self {
            rv,
            raw,
            meta: Arc::new(Meta::of(obj)),
        }
    }

    fn from_raw(rv: u64, raw: Vec<u8>) -> Result<Self, StoreError> {
        let obj: Value = serde_json::from_slice(&raw)?;
        Ok(Self {
            rv,
            raw: Bytes::from(raw),
            meta: Arc::new(Meta::of(&obj)),
        })
    }

    /// The object, parsed.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.raw).expect("stored objects are valid JSON")
    }
}

/// What the server reads from an object's metadata without parsing it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Name.
    pub name: String,
    /// Namespace ("" when cluster-scoped).
    pub namespace: String,
    /// UID.
    pub uid: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Owner references: (uid, blockOwnerDeletion).
    pub owners: Vec<(String, bool)>,
    /// deletionTimestamp is set.
    pub deleting: bool,
    /// Finalizers.
    pub finalizers: Vec<String>,
}

impl Meta {
    /// Extracts the summary from an object.
    pub fn of(obj: &Value) -> Self {
        let m = &obj["metadata"];
        let s = |k: &str| {
            m.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Self {
            name: s("name"),
            namespace: s("namespace"),
            uid: s("uid"),
            labels: crate::selector::labels_of(obj),
            owners: m
                .get("ownerReferences")
                .and_then(Value::as_array)
                .map(|refs| {
                    refs.iter()
                        .filter_map(|r| {
                            Some((
                                r["uid"].as_str()?.to_string(),
                                r["blockOwnerDeletion"].as_bool().unwrap_or(false),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            deleting: m.get("deletionTimestamp").is_some_and(|t| !t.is_null()),
            finalizers: m
                .get("finalizers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// Watch event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Deleted; the object is its last state.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }

    fn code(self) -> i64 {
        match self {
            Self::Added => 0,
            Self::Modified => 1,
            Self::Deleted => 2,
        }
    }

    fn from_code(c: i64) -> Self {
        match c {
            0 => Self::Added,
            1 => Self::Modified,
            _ => Self::Deleted,
        }
    }
}

/// One committed change.
#[derive(Clone, Debug)]
pub struct Event {
    /// resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// Which object.
    pub key: ObjKey,
    /// The object after the change (its last state, for deletions), with `rv` set.
    pub entry: Entry,
}

/// What a commit expects to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// The object must not exist.
    Absent,
    /// The object must exist at this resourceVersion.
    At(u64),
}

/// What a commit does.
#[derive(Clone, Debug)]
pub enum Change {
    /// Store this object.
    Put(Value),
    /// Remove the object.
    Delete,
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object changed (or appeared, or vanished) since it was read.
    #[error(
        "the object has been modified; please apply your changes to the latest version and try again"
    )]
    Conflict,
    /// The requested resourceVersion is older than the history window.
    #[error("too old resource version: {requested} ({oldest})")]
    Gone {
        /// Requested resourceVersion.
        requested: u64,
        /// Oldest resourceVersion a watch can start from.
        oldest: u64,
    },
    /// SQLite failed.
    #[error("storage: {0}")]
    Db(#[from] rusqlite::Error),
    /// A stored object does not parse.
    #[error("storage: corrupt object: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl StoreError {
    /// Whether retrying the same request may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Conflict)
    }
}

struct Inner {
    rv: u64,
    objects: BTreeMap<ObjKey, Entry>,
    /// Objects by their [`INDEXED_LABEL`] value: (`gr`, value) -> (namespace, name).
    by_label: HashMap<(String, String), BTreeSet<(String, String)>>,
    history: VecDeque<Arc<Event>>,
    /// Lowest resourceVersion from which a watch can resume.
    oldest: u64,
    db: Option<rusqlite::Connection>,
    writes_since_trim: u32,
}

/// Events a watch replays, and the receiver of every later one.
pub type Backlog = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
    history_cap: usize,
}

/// Default number of events kept for watch resumption.
pub const DEFAULT_HISTORY: usize = 10_000;

/// The label the store indexes, so that a LIST selecting one value of it reads only its
/// matches: Cluster API puts it on every object of a cluster, and its controllers list a
/// cluster's machines, sets and deployments by it (kube-apiserver's watch cache keeps
/// indexes of the same kind for the selectors its own controllers use).
pub const INDEXED_LABEL: &str = "cluster.x-k8s.io/cluster-name";

/// Events buffered for each watcher between its reads. Small on purpose: the buffer is
/// allocated whole for every store (a simulated workload cluster has one each), and a watcher
/// that falls further behind catches up from the history, which costs one binary search.
pub const DEFAULT_LIVE: usize = 256;

impl Store {
    /// A store held only in memory (tests, simulated workload clusters).
    pub fn in_memory() -> Self {
        Self::in_memory_sized(DEFAULT_HISTORY, DEFAULT_LIVE)
    }

    /// A persistent store in the SQLite file `path`, created if absent.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = rusqlite::Connection::open(path)?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS objects (gr TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
                 rv INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (gr, ns, name)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS events (rv INTEGER PRIMARY KEY, type INTEGER NOT NULL, gr TEXT NOT NULL,
                 ns TEXT NOT NULL, name TEXT NOT NULL, body BLOB NOT NULL);",
        )?;
        Self::with_db(Some(db), DEFAULT_HISTORY, DEFAULT_LIVE)
    }

    /// A store held only in memory that keeps `history` events for watch resumption and
    /// buffers `live` events for each watcher between its reads (defaults: [`DEFAULT_HISTORY`]
    /// and [`DEFAULT_LIVE`]).
    pub fn in_memory_sized(history: usize, live: usize) -> Self {
        Self::with_db(None, history, live).expect("an in-memory store cannot fail to open")
    }

    fn with_db(
        db: Option<rusqlite::Connection>,
        history_cap: usize,
        live: usize,
    ) -> Result<Self, StoreError> {
        let mut objects = BTreeMap::new();
        let mut history = VecDeque::new();
        let mut rv = 0;
        if let Some(db) = &db {
            let mut stmt = db.prepare("SELECT gr, ns, name, rv, body FROM objects")?;
            let rows = stmt.query_map([], |r| {
                let key = ObjKey {
                    gr: r.get(0)?,
                    ns: r.get(1)?,
                    name: r.get(2)?,
                };
                Ok((key, r.get::<_, i64>(3)?, r.get::<_, Vec<u8>>(4)?))
            })?;
            for row in rows {
                let (key, obj_rv, body) = row?;
                rv = rv.max(obj_rv as u64);
                objects.insert(key, Entry::from_raw(obj_rv as u64, body)?);
            }
            let mut stmt = db.prepare(
                "SELECT rv, type, gr, ns, name, body FROM events ORDER BY rv DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([history_cap as i64], |r| {
                let key = ObjKey {
                    gr: r.get(2)?,
                    ns: r.get(3)?,
                    name: r.get(4)?,
                };
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    key,
                    r.get::<_, Vec<u8>>(5)?,
                ))
            })?;
            for row in rows {
                let (ev_rv, ty, key, body) = row?;
                rv = rv.max(ev_rv as u64);
                let entry = Entry::from_raw(ev_rv as u64, body)?;
                history.push_front(Arc::new(Event {
                    rv: ev_rv as u64,
                    kind: EventType::from_code(ty),
                    key,
                    entry,
                }));
            }
        }
        // A watch may resume from the resourceVersion just before the oldest kept event; with no
        // history, only from now.
        let oldest = history.front().map_or(rv, |e| e.rv - 1);
        let (tx, _) = broadcast::channel(live.max(1));
        Ok(Self {
            inner: Mutex::new(Inner {
                rv,
                by_label: objects.iter().fold(HashMap::new(), |mut idx, (k, e)| {
                    index(&mut idx, k, e, true);
                    idx
                }),
                objects,
                history,
                oldest,
                db,
                writes_since_trim: 0,
            }),
            tx,
            history_cap,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (commits are all-or-nothing).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// One object.
    pub fn get(&self, key: &ObjKey) -> Option<Entry> {
        self.lock().objects.get(key).cloned()
    }

    /// Every object of one resource (in `ns`, or all namespaces), in key order, and the
    /// resourceVersion the snapshot is consistent with.
    pub fn list(&self, gr: &str, ns: Option<&str>) -> (u64, Vec<(ObjKey, Entry)>) {
        let inner = self.lock();
        let items = scan(&inner, gr, ns);
        (inner.rv, items)
    }

    /// Like [`Store::list`], keeping only the objects `keep` accepts; nothing else is copied,
    /// so a selective LIST over many objects allocates for its matches only.
    pub fn list_where(
        &self,
        gr: &str,
        ns: Option<&str>,
        keep: impl Fn(&ObjKey, &Entry) -> bool,
    ) -> (u64, Vec<(ObjKey, Entry)>) {
        let inner = self.lock();
        let start = ObjKey::new(gr, ns.unwrap_or(""), "");
        let items = inner
            .objects
            .range(start..)
            .take_while(|(k, _)| k.gr == gr && ns.is_none_or(|n| k.ns == n))
            .filter(|(k, e)| keep(k, e))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        (inner.rv, items)
    }

    /// Like [`Store::list_where`] for the objects whose [`INDEXED_LABEL`] is `value`, read
    /// through the index (nothing else is visited).
    pub fn list_labelled(
        &self,
        gr: &str,
        ns: Option<&str>,
        value: &str,
        keep: impl Fn(&ObjKey, &Entry) -> bool,
    ) -> (u64, Vec<(ObjKey, Entry)>) {
        let inner = self.lock();
        let Some(names) = inner.by_label.get(&(gr.to_string(), value.to_string())) else {
            return (inner.rv, Vec::new());
        };
        let items = names
            .iter()
            .filter(|(n, _)| ns.is_none_or(|want| want == n))
            .filter_map(|(n, name)| {
                let k = ObjKey::new(gr, n, name);
                let e = inner.objects.get(&k)?;
                keep(&k, e).then(|| (k, e.clone()))
            })
            .collect();
        (inner.rv, items)
    }

    /// Every object of every resource.
    pub fn all(&self) -> Vec<(ObjKey, Entry)> {
        self.lock()
            .objects
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// Number of objects of every resource.
    pub fn len(&self) -> usize {
        self.lock().objects.len()
    }

    /// Whether the store holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one change if the precondition holds; returns the stored entry (`None` for a
    /// deletion). `metadata.resourceVersion` of a stored object is set here.
    pub fn commit(
        &self,
        key: &ObjKey,
        pre: Precondition,
        change: Change,
    ) -> Result<Option<Entry>, StoreError> {
        let mut inner = self.lock();
        let current = inner.objects.get(key).map(|e| e.rv);
        match (pre, current) {
            (Precondition::Absent, None) => {}
            (Precondition::At(want), Some(have)) if want == have => {}
            _ => return Err(StoreError::Conflict),
        }
        let rv = inner.rv + 1;
        let (kind, mut obj) = match change {
            Change::Put(obj) => (
                if current.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                },
                obj,
            ),
            Change::Delete => (EventType::Deleted, inner.objects[key].value()),
        };
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let entry = Entry::from_value(rv, &obj);
        if let Some(db) = &inner.db {
            persist(db, key, rv, kind, &entry.raw)?;
        }
        inner.rv = rv;
        match kind {
            EventType::Deleted => {
                if let Some(old) = inner.objects.remove(key) {
                    index(&mut inner.by_label, key, &old, false);
                }
            }
            _ => {
                if let Some(old) = inner.objects.insert(key.clone(), entry.clone()) {
                    index(&mut inner.by_label, key, &old, false);
                }
                index(&mut inner.by_label, key, &entry, true);
            }
        }
        let event = Arc::new(Event {
            rv,
            kind,
            key: key.clone(),
            entry: entry.clone(),
        });
        inner.history.push_back(event.clone());
        while inner.history.len() > self.history_cap {
            if let Some(e) = inner.history.pop_front() {
                inner.oldest = e.rv;
            }
        }
        inner.writes_since_trim += 1;
        if inner.writes_since_trim >= 1000 {
            inner.writes_since_trim = 0;
            let keep_from = inner.oldest;
            if let Some(db) = &inner.db {
                db.execute("DELETE FROM events WHERE rv <= ?1", [keep_from as i64])?;
            }
        }
        // Sent under the lock, so subscribers see events in resourceVersion order with no gap.
        let _ = self.tx.send(event);
        Ok((kind != EventType::Deleted).then_some(entry))
    }

    /// Events after `since` still in the history, and a receiver for every later one.
    /// `since` older than the history window is [`StoreError::Gone`].
    pub fn watch_from(&self, since: u64) -> Result<Backlog, StoreError> {
        let inner = self.lock();
        if since < inner.oldest {
            return Err(StoreError::Gone {
                requested: since,
                oldest: inner.oldest,
            });
        }
        // The history is in resourceVersion order.
        let first = inner.history.partition_point(|e| e.rv <= since);
        let backlog = inner.history.range(first..).cloned().collect();
        Ok((backlog, self.tx.subscribe()))
    }

    /// A snapshot of one resource's objects plus a receiver for every later event: a watch
    /// that starts "now" with synthetic ADDED events.
    pub fn watch_now(
        &self,
        gr: &str,
        ns: Option<&str>,
    ) -> (u64, Vec<(ObjKey, Entry)>, broadcast::Receiver<Arc<Event>>) {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let items = scan(&inner, gr, ns);
        (inner.rv, items, rx)
    }
}

/// Adds (or removes) an object's entry in the label index.
fn index(
    idx: &mut HashMap<(String, String), BTreeSet<(String, String)>>,
    key: &ObjKey,
    e: &Entry,
    add: bool,
) {
    let Some(value) = e.meta.labels.get(INDEXED_LABEL) else {
        return;
    };
    let slot = (key.gr.clone(), value.clone());
    if add {
        idx.entry(slot)
            .or_default()
            .insert((key.ns.clone(), key.name.clone()));
    } else if let Some(set) = idx.get_mut(&slot) {
        set.remove(&(key.ns.clone(), key.name.clone()));
        if set.is_empty() {
            idx.remove(&slot);
        }
    }
}

/// The objects of one resource (in one namespace, or all), in key order.
fn scan(inner: &Inner, gr: &str, ns: Option<&str>) -> Vec<(ObjKey, Entry)> {
    let start = ObjKey::new(gr, ns.unwrap_or(""), "");
    inner
        .objects
        .range(start..)
        .take_while(|(k, _)| k.gr == gr && ns.is_none_or(|n| k.ns == n))
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect()
}

fn persist(
    db: &rusqlite::Connection,
    key: &ObjKey,
    rv: u64,
    kind: EventType,
    body: &[u8],
) -> Result<(), StoreError> {
    let tx = db.unchecked_transaction()?;
    match kind {
        EventType::Deleted => {
            tx.prepare_cached("DELETE FROM objects WHERE gr = ?1 AND ns = ?2 AND name = ?3")?
                .execute((&key.gr, &key.ns, &key.name))?;
        }
        _ => {
            tx.prepare_cached("INSERT OR REPLACE INTO objects (gr, ns, name, rv, body) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute((&key.gr, &key.ns, &key.name, rv as i64, body))?;
        }
    }
    tx.prepare_cached(
        "INSERT INTO events (rv, type, gr, ns, name, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute((rv as i64, kind.code(), &key.gr, &key.ns, &key.name, body))?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
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
            for i in 0..50 {
                let k = ObjKey::new("g/things", "ns", &format!("o{i}"));
                s.commit(
                    &k,
                    Precondition::Absent,
                    Change::Put(obj(&format!("o{i}"), i)),
                )
                .unwrap();
            }
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
}
