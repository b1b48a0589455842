//! The stored things and the words of the store's contract: object identity, the stored
//! entry with its parsed metadata summary, watch events, commit preconditions and changes,
//! and storage errors.

use std::{collections::BTreeMap, sync::Arc};

use bytes::Bytes;
use serde_json::Value;

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
    pub(super) fn from_value(rv: u64, obj: &Value) -> Self {
        let raw = Bytes::from(serde_json::to_vec(obj).expect("a JSON value always serializes"));
        Self {
            rv,
            raw,
            meta: Arc::new(Meta::of(obj)),
        }
    }

    pub(super) fn from_raw(rv: u64, raw: Vec<u8>) -> Result<Self, StoreError> {
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
    /// Values of the kind-specific selectable fields the object has
    /// ([`crate::selector::INDEXED_FIELDS`]).
    pub fields: BTreeMap<&'static str, String>,
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
            fields: crate::selector::indexed_fields(obj),
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

    pub(super) fn code(self) -> i64 {
        match self {
            Self::Added => 0,
            Self::Modified => 1,
            Self::Deleted => 2,
        }
    }

    pub(super) fn from_code(c: i64) -> Self {
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
    /// The object is larger than an object may be (etcd's request limit, which
    /// kube-apiserver answers with 413).
    #[error("etcdserver: request is too large")]
    TooLarge,
    /// Stored data cannot be read or written with the configured encryption keys.
    #[error(transparent)]
    Encryption(#[from] crate::encryption::EncryptionError),
}

impl StoreError {
    /// Whether retrying the same request may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Conflict)
    }
}
