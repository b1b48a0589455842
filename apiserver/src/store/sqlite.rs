//! Persistence in SQLite: the schema, loading a store's objects and recent events when it is
//! opened, and writing each commit (object row and event row in one transaction).

use std::{
    collections::{BTreeMap, VecDeque},
    path::Path,
    sync::Arc,
};

use super::{Entry, Event, EventType, Journal, ObjKey, StoreError};
use crate::encryption::{self, Keys};

/// The resource whose objects are encrypted at rest when keys are configured.
pub(super) const ENCRYPTED_GR: &str = "/secrets";

fn aad(key: &ObjKey) -> Vec<u8> {
    format!("{}/{}/{}", key.gr, key.ns, key.name).into_bytes()
}

/// A row's body as stored: encrypted with the newest key for encrypted resources.
fn seal<'a>(
    keys: Option<&Keys>,
    key: &ObjKey,
    body: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, StoreError> {
    match keys {
        Some(k) if key.gr == ENCRYPTED_GR => Ok(k.encrypt(body, &aad(key))?.into()),
        _ => Ok(body.into()),
    }
}

/// Opens (creating if absent) the SQLite file at `path` with the store's tables, in the
/// journal mode `journal` (an existing file is switched to it).
pub(super) fn open(path: &Path, journal: Journal) -> Result<rusqlite::Connection, StoreError> {
    let db = rusqlite::Connection::open(path)?;
    db.execute_batch(match journal {
        Journal::Wal => "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        Journal::OneFile => "PRAGMA journal_mode=TRUNCATE; PRAGMA synchronous=OFF;",
    })?;
    db.execute_batch(
        "PRAGMA busy_timeout=5000;
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

/// Reads a store's objects and its most recent events, decrypting what is encrypted (an
/// encrypted row whose key is not in `keys` fails the load, naming the key).
pub(super) fn load(
    db: &rusqlite::Connection,
    history_cap: usize,
    keys: Option<&Keys>,
) -> Result<Loaded, StoreError> {
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
        let body = encryption::decrypt(keys, &body, &aad(&key))?;
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
        let body = encryption::decrypt(keys, &body, &aad(&key))?;
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
    keys: Option<&Keys>,
) -> Result<(), StoreError> {
    let body: &[u8] = &seal(keys, key, body)?;
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

/// Rewrites every row of the encrypted resource that is not encrypted with the newest key
/// (plain, or an older key) with the newest key, then compacts the file and checkpoints the
/// WAL so that no old copy lingers in either. Returns how many rows were rewritten.
pub(super) fn rotate(db: &rusqlite::Connection, keys: &Keys) -> Result<usize, StoreError> {
    let newest = keys.newest();
    // Freed pages are zeroed, so the plain or old-key bodies rewritten here (and every later
    // overwritten Secret) leave nothing readable in the file.
    db.execute_batch("PRAGMA secure_delete=ON;")?;
    let tx = db.unchecked_transaction()?;
    let mut count = 0;
    for (table, id) in [("objects", "name"), ("events", "rv")] {
        let rows: Vec<(ObjKey, rusqlite::types::Value, Vec<u8>)> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT gr, ns, name, {id}, body FROM {table} WHERE gr = ?1"
            ))?;
            stmt.query_map([ENCRYPTED_GR], |r| {
                Ok((
                    ObjKey {
                        gr: r.get(0)?,
                        ns: r.get(1)?,
                        name: r.get(2)?,
                    },
                    r.get(3)?,
                    r.get(4)?,
                ))
            })?
            .collect::<Result<_, _>>()?
        };
        for (key, row_id, body) in rows {
            if encryption::key_name(&body) == Some(newest) {
                continue;
            }
            let plain = encryption::decrypt(Some(keys), &body, &aad(&key))?;
            let sealed = keys.encrypt(&plain, &aad(&key))?;
            let sql = if table == "objects" {
                "UPDATE objects SET body = ?1 WHERE gr = ?2 AND ns = ?3 AND name = ?4"
            } else {
                "UPDATE events SET body = ?1 WHERE gr = ?2 AND ns = ?3 AND rv = ?4"
            };
            tx.execute(sql, (&sealed, &key.gr, &key.ns, &row_id))?;
            count += 1;
        }
    }
    tx.commit()?;
    if count > 0 {
        // Pages freed before encryption was on were not zeroed: rewrite the file whole.
        db.execute_batch(
            "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
        )?;
    }
    Ok(count)
}
