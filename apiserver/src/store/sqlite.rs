//! Persistence in SQLite: the schema, loading a store's objects and recent events when it is
//! opened, and writing each commit (object row and event row in one transaction).

use std::{
    collections::{BTreeMap, VecDeque},
    path::Path,
    sync::Arc,
};

use super::{Entry, Event, EventType, ObjKey, StoreError};

/// Opens (creating if absent) the SQLite file at `path` with the store's tables.
pub(super) fn open(path: &Path) -> Result<rusqlite::Connection, StoreError> {
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
    Ok(db)
}

/// What a reopened store starts from: the newest resourceVersion, every object, and the last
/// `history_cap` events, oldest first.
pub(super) type Loaded = (u64, BTreeMap<ObjKey, Entry>, VecDeque<Arc<Event>>);

/// Reads a store's objects and its most recent events.
pub(super) fn load(db: &rusqlite::Connection, history_cap: usize) -> Result<Loaded, StoreError> {
    let mut objects = BTreeMap::new();
    let mut history = VecDeque::new();
    let mut rv = 0;
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
    let mut stmt =
        db.prepare("SELECT rv, type, gr, ns, name, body FROM events ORDER BY rv DESC LIMIT ?1")?;
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
    Ok((rv, objects, history))
}

/// Writes one commit: the object row (or its removal) and the event row, in one transaction,
/// so a reopened store never has an object without the event that wrote it.
pub(super) fn persist(
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
