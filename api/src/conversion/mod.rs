//! Conversion of Cluster API objects between v1beta1 (served) and v1beta2 (storage), on JSON.
//!
//! Each kind has a table of field mappings ([`tables`]); [`convert`] runs it forwards or
//! backwards and makes the round trip lossless with a residual record kept, as upstream does,
//! in the annotation [`ANNOTATION`] of the converted object ([`residual`]). The embedded plane
//! calls this in-process on every read and write at a version other than the stored one; the
//! controllers only ever see v1beta2.

pub mod derive;
pub mod duration;
pub mod ops;
pub mod residual;
pub mod review;
pub mod schema;
pub mod tables;

use serde_json::{Value, json};

pub use ops::VersionOf;
pub use tables::KINDS;

/// Annotation carrying the fields the other version has no place for.
pub const ANNOTATION: &str = "cluster.x-k8s.io/conversion-data";

/// The storage (hub) version.
pub const HUB: &str = "v1beta2";
/// The older version served beside it.
pub const SPOKE: &str = "v1beta1";

/// Why an object could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    /// The object has a value the target version cannot represent (a client error: 422).
    #[error("{field}: Invalid value: {detail}")]
    Invalid {
        /// The field, as a path in the source version (e.g. `spec.nodeDrainTimeout`).
        field: String,
        /// Why.
        detail: String,
    },
    /// The conversion itself failed (a server error: 500).
    #[error("{0}")]
    Failed(String),
}

impl ConversionError {
    /// A field the target version cannot hold.
    pub fn invalid(field: &str, detail: &str) -> Self {
        Self::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// A failure of the conversion itself.
    pub fn failed(detail: &str) -> Self {
        Self::Failed(detail.into())
    }

    /// Conversion is pure: trying again gives the same answer.
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// What conversion needs from its caller.
pub struct Context<'a> {
    /// The version a referenced `(group, kind)` is served at (for v1beta2 -> v1beta1 refs).
    pub version_of: VersionOf<'a>,
    /// Applied to the converted object before the residual is computed: the plane prunes it
    /// with the target version's schema, so what pruning drops is kept too.
    pub normalize: &'a dyn Fn(&str, &mut Value),
}

impl Default for Context<'_> {
    fn default() -> Self {
        Self {
            version_of: &|_, _| None,
            normalize: &|_, _| {},
        }
    }
}

/// A kind whose table lives outside this crate (a provider's kinds), converted here once
/// registered.
#[derive(Clone, Copy, Debug)]
pub struct Registered {
    /// API group.
    pub group: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Its table.
    pub table: fn() -> Vec<ops::Op>,
    /// Fields only its v1beta1 form has, as `(v1beta1 path, schema)` (see [`derive`]).
    pub spoke_only: fn() -> Vec<(String, Value)>,
}

// Why a process-wide list: the plane and the webhook convert by `(group, kind)` and must not
// name providers (dependencies point from providers to this crate), so providers add theirs.
static REGISTERED: std::sync::RwLock<Vec<Registered>> = std::sync::RwLock::new(Vec::new());

/// Adds provider kinds to the ones converted here (a kind already known is left as it is).
pub fn register(kinds: &[Registered]) {
    let mut list = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
    for k in kinds {
        if !handles_core(k.group, k.kind)
            && !list.iter().any(|r| r.group == k.group && r.kind == k.kind)
        {
            list.push(*k);
        }
    }
}

/// Every registered provider kind.
pub fn registered() -> Vec<Registered> {
    REGISTERED.read().unwrap_or_else(|e| e.into_inner()).clone()
}

fn handles_core(group: &str, kind: &str) -> bool {
    KINDS.iter().any(|(g, k)| *g == group && *k == kind)
}

/// Whether `(group, kind)` converts between v1beta1 and v1beta2 here.
pub fn handles(group: &str, kind: &str) -> bool {
    handles_core(group, kind)
        || registered()
            .iter()
            .any(|r| r.group == group && r.kind == kind)
}

/// The table of `(group, kind)`, core or registered.
pub fn table_of(group: &str, kind: &str) -> Option<Vec<ops::Op>> {
    tables::table(group, kind).or_else(|| {
        registered()
            .iter()
            .find(|r| r.group == group && r.kind == kind)
            .map(|r| (r.table)())
    })
}

/// The fields only the v1beta1 form of `(group, kind)` has, core or registered.
pub fn spoke_only_of(group: &str, kind: &str) -> Vec<(String, Value)> {
    if handles_core(group, kind) {
        return tables::spoke_only(group, kind);
    }
    registered()
        .iter()
        .find(|r| r.group == group && r.kind == kind)
        .map(|r| (r.spoke_only)())
        .unwrap_or_default()
}

/// Converts `obj` (at the version its apiVersion names) to `to_version` of the same group.
pub fn convert(obj: &Value, to_version: &str, ctx: &Context<'_>) -> Result<Value, ConversionError> {
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| ConversionError::failed("the object has no apiVersion"))?;
    let (group, from_version) = api_version
        .rsplit_once('/')
        .ok_or_else(|| ConversionError::failed("the object's apiVersion has no group"))?;
    if from_version == to_version {
        return Ok(obj.clone());
    }
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let table = table_of(group, kind)
        .ok_or_else(|| ConversionError::failed(&format!("no conversion for {kind}.{group}")))?;
    let dir = match (from_version, to_version) {
        (SPOKE, HUB) => ops::Dir::Up,
        (HUB, SPOKE) => ops::Dir::Down,
        _ => {
            return Err(ConversionError::failed(&format!(
                "{kind}.{group} converts between {SPOKE} and {HUB}, not from {from_version} to {to_version}"
            )));
        }
    };
    let back = match dir {
        ops::Dir::Up => ops::Dir::Down,
        ops::Dir::Down => ops::Dir::Up,
    };
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    let ns = namespace.as_deref();

    let mut source = obj.clone();
    let record = take_annotation(&mut source);
    let mut out = source.clone();
    ops::apply(&mut out, &table, dir, "", ns, ctx.version_of)?;
    out["apiVersion"] = json!(format!("{group}/{to_version}"));
    (ctx.normalize)(to_version, &mut out);
    if let Some(r) = record {
        residual::restore(&mut out, &residual::decode(to_version, &r));
    }

    let mut again = out.clone();
    ops::apply(&mut again, &table, back, "", ns, ctx.version_of)
        .map_err(|e| ConversionError::failed(&format!("mapping back: {e}")))?;
    // The source went through its own schema when it was written: compare like with like.
    (ctx.normalize)(from_version, &mut again);
    let mut lost = residual::diff(&source, &again);
    guard_refs(&mut lost, &table, from_version, &again);
    if !lost.is_empty() {
        let meta = out
            .as_object_mut()
            .expect("converted objects are objects")
            .entry("metadata")
            .or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            let ann = m.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = ann.as_object_mut() {
                a.insert(
                    ANNOTATION.into(),
                    json!(residual::encode(from_version, &lost)),
                );
            }
        }
    }
    Ok(out)
}

/// Ties what a reference lost (its `uid`, `namespace`, exact `apiVersion`) to the reference
/// as mapping back produced it, so a reference changed in the other version meanwhile gets
/// none of the old one's fields back.
fn guard_refs(lost: &mut [residual::Entry], table: &[ops::Op], from_version: &str, again: &Value) {
    let refs: Vec<Vec<String>> = table
        .iter()
        .filter_map(|op| match op {
            ops::Op::Ref(a, b) => Some(if from_version == SPOKE { a } else { b }),
            ops::Op::NodeRef(a) => Some(a),
            _ => None,
        })
        .map(|p| p.split('.').map(str::to_string).collect())
        .collect();
    for e in lost.iter_mut() {
        let Some(r) = refs
            .iter()
            .find(|r| e.path.len() > r.len() && e.path.starts_with(r))
        else {
            continue;
        };
        if let Some(v) = residual::at(again, r) {
            e.guard = Some((r.clone(), v.clone()));
        }
    }
}

/// Removes the residual annotation (and an annotations map it leaves empty); returns it.
fn take_annotation(obj: &mut Value) -> Option<String> {
    let meta = obj.get_mut("metadata")?.as_object_mut()?;
    let anns = meta.get_mut("annotations")?.as_object_mut()?;
    let v = anns.remove(ANNOTATION)?;
    if anns.is_empty() {
        meta.remove("annotations");
    }
    v.as_str().map(str::to_string)
}
