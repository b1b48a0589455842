//! Garbage collection by ownerReferences, and namespace deletion.
//!
//! A sweep looks at every object and converges, so missed or repeated triggers are harmless:
//! - background: an object whose owners are all gone is deleted; references to owners that are
//!   gone are dropped while another owner remains;
//! - foreground: an owner being deleted with the `foregroundDeletion` finalizer gets its
//!   dependents deleted, and the finalizer goes once no dependent with `blockOwnerDeletion`
//!   is left;
//! - orphan: an owner being deleted with the `orphan` finalizer has its references removed from
//!   its dependents, then the finalizer goes;
//! - a namespace being deleted has every object in it deleted, then its `kubernetes` finalizer
//!   goes and the namespace with it.
//!
//! Sweeps run after any deletion-related event (debounced) and every [`SWEEP_INTERVAL`]; the
//! periodic one is skipped while the store has not changed since the last sweep began (a sweep
//! depends on the store's contents only), so an idle plane does not walk every object every
//! ten seconds.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use serde_json::{Value, json};

use crate::{
    api::{Api, Call, Part},
    meta::{finalizers, set_finalizers},
    request::{Query, Target},
    store::{Change, Entry, EventType, ObjKey, Precondition},
};

/// Period of the safety-net sweep.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Runs the collector until the task is aborted.
pub fn spawn(api: Arc<Api>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok((_, mut rx)) = api.store.watch_from(api.store.current_rv()) else {
            return;
        };
        let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
        let mut swept_at: Option<u64> = None;
        let sweep_now = |api: &Api, swept_at: &mut Option<u64>| {
            *swept_at = Some(api.store.current_rv());
            sweep(api);
        };
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if due(swept_at, api.store.current_rv()) {
                        sweep_now(&api, &mut swept_at);
                    }
                }
                ev = rx.recv() => match ev {
                    Ok(e) if e.kind == EventType::Deleted || e.entry.meta.deleting => {
                        // Let a burst of deletions settle into one sweep.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        while rx.try_recv().is_ok() {}
                        sweep_now(&api, &mut swept_at);
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => sweep_now(&api, &mut swept_at),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    })
}

/// Whether the periodic sweep has work to look at: never swept, or the store changed since the
/// last sweep began (its own writes included, so a sweep that changed something is followed by
/// one that converges).
fn due(swept_at: Option<u64>, current_rv: u64) -> bool {
    swept_at != Some(current_rv)
}

/// One pass over every object.
pub fn sweep(api: &Api) {
    let all = api.store.all();
    let by_uid: HashMap<&str, &(ObjKey, Entry)> =
        all.iter().map(|o| (o.1.meta.uid.as_str(), o)).collect();
    let mut dependents: HashMap<&str, Vec<&(ObjKey, Entry)>> = HashMap::new();
    for o in &all {
        for (uid, _) in &o.1.meta.owners {
            if let Some((owner_uid, _)) = by_uid.get_key_value(uid.as_str()) {
                dependents.entry(owner_uid).or_default().push(o);
            }
        }
    }

    for (key, entry) in &all {
        let meta = &entry.meta;
        if !meta.owners.is_empty() && !meta.deleting {
            let gone: HashSet<&str> = meta
                .owners
                .iter()
                .map(|(u, _)| u.as_str())
                .filter(|u| !by_uid.contains_key(u))
                .collect();
            if gone.len() == meta.owners.len() {
                delete(api, key, "Background");
                continue;
            } else if !gone.is_empty() {
                edit(api, key, |o| drop_owner_refs(o, &gone));
            }
        }
        if !meta.deleting {
            continue;
        }
        let uid = meta.uid.as_str();
        let deps = dependents.get(uid).cloned().unwrap_or_default();
        if meta.finalizers.iter().any(|f| f == "orphan") {
            for (dk, _) in &deps {
                edit(api, dk, |o| drop_owner_refs(o, &HashSet::from([uid])));
            }
            edit(api, key, |o| remove_finalizer(o, "orphan"));
        } else if meta.finalizers.iter().any(|f| f == "foregroundDeletion") {
            for (dk, de) in &deps {
                if !de.meta.deleting {
                    delete(api, dk, "Foreground");
                }
            }
            let blocking = deps
                .iter()
                .any(|(_, de)| de.meta.owners.iter().any(|(u, b)| u == uid && *b));
            if !blocking {
                edit(api, key, |o| remove_finalizer(o, "foregroundDeletion"));
            }
        }
        if key.gr == "/namespaces" {
            let name = &key.name;
            let contents: Vec<&(ObjKey, Entry)> =
                all.iter().filter(|(k, _)| &k.ns == name).collect();
            for (ck, ce) in &contents {
                if !ce.meta.deleting {
                    delete(api, ck, "Background");
                }
            }
            if contents.is_empty() {
                // Clearing spec.finalizers lets the write path remove the namespace; one that
                // already has none (and no metadata finalizers) is removed here.
                let spec_empty = entry.value()["spec"]["finalizers"]
                    .as_array()
                    .is_none_or(Vec::is_empty);
                if spec_empty && meta.finalizers.is_empty() {
                    let _ = api
                        .store
                        .commit(key, Precondition::At(entry.rv), Change::Delete);
                } else {
                    edit(api, key, |o| {
                        o["spec"]["finalizers"] = json!([]);
                    });
                }
            }
        }
    }
}

fn drop_owner_refs(obj: &mut Value, uids: &HashSet<&str>) {
    if let Some(refs) = obj
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    {
        refs.retain(|r| r["uid"].as_str().is_none_or(|u| !uids.contains(u)));
    }
}

fn remove_finalizer(obj: &mut Value, name: &str) {
    let f: Vec<String> = finalizers(obj).into_iter().filter(|f| f != name).collect();
    set_finalizers(obj, &f);
}

fn call_for<'a>(
    api: &Api,
    key: &ObjKey,
    target: &'a mut Option<Target>,
    query: &'a Query,
) -> Option<Call<'a>> {
    let (group, plural) = key.gr.split_once('/')?;
    let res = api
        .catalog
        .all()
        .into_iter()
        .find(|r| r.group == group && r.plural == plural && r.version == r.storage_version)?;
    *target = Some(Target {
        group: group.into(),
        version: res.version.clone(),
        namespace: (!key.ns.is_empty()).then(|| key.ns.clone()),
        plural: plural.into(),
        name: Some(key.name.clone()),
        sub: None,
    });
    Some(Call {
        res,
        target: target.as_ref().expect("set above"),
        query,
        default_manager: "garbage-collector".into(),
    })
}

fn delete(api: &Api, key: &ObjKey, policy: &str) {
    let query = Query::default();
    let mut target = None;
    if let Some(call) = call_for(api, key, &mut target, &query)
        && let Err(e) = api.delete(&call, &key.name, &json!({"propagationPolicy": policy}))
        && e.code != 404
    {
        tracing::debug!(name = %key.name, error = %e.message, "garbage collector: delete failed; the next sweep retries");
    }
}

fn edit(api: &Api, key: &ObjKey, f: impl FnOnce(&mut Value)) {
    let Some(entry) = api.store.get(key) else {
        return;
    };
    let original = entry.value();
    let mut obj = original.clone();
    f(&mut obj);
    if obj == original {
        return;
    }
    let query = Query::default();
    let mut target = None;
    if let Some(call) = call_for(api, key, &mut target, &query) {
        // Namespace finalizers live in spec; a status-less write of the main resource carries them.
        if let Err(e) = api.update(&call, &key.name, obj, Part::Main)
            && e.code != 404
        {
            tracing::debug!(name = %key.name, error = %e.message, "garbage collector: update failed; the next sweep retries");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_periodic_sweep_runs_only_after_a_change() {
        assert!(due(None, 7), "the first tick sweeps");
        assert!(!due(Some(7), 7), "nothing changed since: skipped");
        assert!(due(Some(7), 8), "a write since: swept");
    }
}
