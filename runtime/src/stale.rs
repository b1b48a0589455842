//! Versions this process has superseded with its own writes, so a reconcile of a copy the
//! informer has not refreshed yet is skipped instead of run.
//!
//! An informer's cache trails the API server: right after a reconcile writes an object, the
//! next trigger may still hand it the version it read before that write. Running on it does
//! the same work again and, since status writes are guarded by resourceVersion, ends in a 409
//! that is retried; under load (a thousand clusters being created at once on two cores) the
//! cache trails by seconds and those retries became most of the work. Every successful write
//! of an object records the version it was computed from; [`is_superseded`] says whether a
//! copy is one of those. Such a pass is skipped: the watch delivers the written version (or a
//! later one) and that triggers the next reconcile, which the runner backs up with a short
//! requeue in case the trigger was lost.
//!
//! Keyed by uid, not name, so objects of two planes in one process (tests) never mix, and a
//! re-created object never inherits its predecessor's entries. Versions are opaque strings
//! and never compared for order: a copy is stale only when its version is one this process
//! wrote over. The first copy seen with any other version clears the object's entry (that
//! version is the write itself or newer), so the map holds only objects in flight.

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// At most this many superseded versions are kept per object (one pass writes an object at
/// most a few times: finalizer, spec, status).
const PER_OBJECT: usize = 4;

static SUPERSEDED: LazyLock<Mutex<HashMap<String, Vec<String>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Records that a write computed from the version in `before` succeeded and produced
/// `after` (the object the server returned): `before`'s version is now stale. A write the
/// server found to change nothing keeps the version (a merge patch of values already there,
/// fields the schema prunes): then nothing is recorded, since no newer version will come and
/// the object's next passes must run, not wait for it.
pub fn superseded(before: &ObjectMeta, after: &ObjectMeta) {
    let (Some(uid), Some(rv)) = (&before.uid, &before.resource_version) else {
        return;
    };
    if after.resource_version.as_deref().is_none_or(|a| a == rv) {
        return;
    }
    let mut m = SUPERSEDED.lock().expect("superseded versions");
    let versions = m.entry(uid.clone()).or_default();
    if !versions.contains(rv) {
        if versions.len() == PER_OBJECT {
            versions.remove(0);
        }
        versions.push(rv.clone());
    }
}

/// Whether `meta` is a version this process already wrote over. A copy of any other version
/// forgets the object's superseded versions.
pub fn is_superseded(meta: &ObjectMeta) -> bool {
    let (Some(uid), Some(rv)) = (&meta.uid, &meta.resource_version) else {
        return false;
    };
    let mut m = SUPERSEDED.lock().expect("superseded versions");
    match m.get(uid) {
        Some(versions) if versions.contains(rv) => true,
        Some(_) => {
            m.remove(uid);
            false
        }
        None => false,
    }
}

/// Forgets an object (it is gone).
pub fn forget(meta: &ObjectMeta) {
    if let Some(uid) = &meta.uid {
        SUPERSEDED.lock().expect("superseded versions").remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records a write of `uid` from version `from` that the server answered with `to`.
    fn wrote(uid: &str, from: &str, to: &str) {
        superseded(&meta(uid, from), &meta(uid, to));
    }

    fn meta(uid: &str, rv: &str) -> ObjectMeta {
        ObjectMeta {
            uid: Some(uid.into()),
            resource_version: Some(rv.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_written_over_version_is_stale_until_a_newer_copy_is_seen() {
        let uid = "stale-test-1";
        assert!(!is_superseded(&meta(uid, "10")), "nothing written yet");
        wrote(uid, "10", "11");
        assert!(is_superseded(&meta(uid, "10")));
        assert!(
            is_superseded(&meta(uid, "10")),
            "still stale on a second look"
        );
        // The write (or a later one) arrives: the entry goes, and "10" is no longer known.
        assert!(!is_superseded(&meta(uid, "11")));
        assert!(!is_superseded(&meta(uid, "10")));
    }

    #[test]
    fn several_writes_of_one_pass_are_all_stale_and_objects_never_mix() {
        let (a, b) = ("stale-test-2a", "stale-test-2b");
        wrote(a, "5", "6");
        wrote(a, "6", "7");
        assert!(is_superseded(&meta(a, "5")) && is_superseded(&meta(a, "6")));
        assert!(
            !is_superseded(&meta(b, "5")),
            "another object (uid) at the same version"
        );
        forget(&meta(a, ""));
        assert!(!is_superseded(&meta(a, "5")));
    }

    #[test]
    fn versions_kept_per_object_are_bounded() {
        let uid = "stale-test-3";
        for rv in 1..=10 {
            wrote(uid, &rv.to_string(), &(rv + 1).to_string());
        }
        let n = SUPERSEDED.lock().unwrap().get(uid).map_or(0, Vec::len);
        assert_eq!(n, PER_OBJECT);
        assert!(is_superseded(&meta(uid, "10")), "the newest are kept");
    }

    #[test]
    fn metadata_without_uid_or_version_is_never_stale() {
        superseded(&ObjectMeta::default(), &meta("x", "2"));
        assert!(!is_superseded(&ObjectMeta::default()));
    }

    #[test]
    fn a_write_that_changed_nothing_leaves_the_version_current() {
        // The server kept version 7 (nothing changed): no newer copy will ever arrive, so
        // a copy at 7 must still be reconciled.
        let uid = "stale-test-4";
        wrote(uid, "7", "7");
        assert!(!is_superseded(&meta(uid, "7")));
        superseded(&meta(uid, "7"), &ObjectMeta::default());
        assert!(!is_superseded(&meta(uid, "7")), "no version returned");
    }
}
