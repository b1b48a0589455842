//! Shared object plumbing for the reconcilers that create machines: cloning infrastructure and
//! bootstrap templates (`FooTemplate.spec.template` -> `Foo`), owner references, random name
//! suffixes and stable spec hashes.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{
    Resource, ResourceExt,
    api::{DynamicObject, PostParams},
};
use rand::Rng;
use serde_json::{Value, json};
use slipway_api::common::ContractVersionedObjectReference;

use crate::{Context, Error};

/// Annotation recording the template an object was cloned from (upstream's name).
pub const CLONED_FROM_NAME: &str = "cluster.x-k8s.io/cloned-from-name";
/// Annotation recording the template kind an object was cloned from.
pub const CLONED_FROM_KIND: &str = "cluster.x-k8s.io/cloned-from-groupkind";

/// `<prefix>-<5 random lowercase alphanumerics>`, as generateName does.
pub fn random_name(prefix: &str) -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect();
    let prefix = &prefix[..prefix.len().min(57)];
    format!("{prefix}-{suffix}")
}

/// A stable short hash of a JSON value (FNV-1a over its canonical text; maps are sorted).
pub fn hash(v: &Value) -> String {
    let h = v
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    format!("{:x}", h & 0xff_ffff_ffff)
}

/// A controller owner reference to `owner`.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> Result<OwnerReference, Error> {
    let mut r = owner
        .controller_owner_ref(&())
        .ok_or_else(|| Error::Contract(format!("{} has no uid yet", owner.name_any())))?;
    r.block_owner_deletion = Some(true);
    Ok(r)
}

/// Creates the object a template reference stamps out: kind without `Template`, spec from
/// `spec.template.spec`, labels and annotations from `spec.template.metadata` plus `labels`,
/// owned by `owner`. Returns the reference to the new object. Already existing is fine (a
/// retried create after a crash).
pub async fn clone_template(
    ctx: &Context,
    ns: &str,
    template: &ContractVersionedObjectReference,
    name: &str,
    labels: &BTreeMap<String, String>,
    owner: OwnerReference,
    spec_override: Option<Value>,
) -> Result<ContractVersionedObjectReference, Error> {
    let kind = template.kind.strip_suffix("Template").ok_or_else(|| {
        Error::Contract(format!(
            "{} {} is not a template kind (its name must end in Template)",
            template.kind, template.name
        ))
    })?;
    let tpl = ctx.resolver.get(ns, template).await?.ok_or_else(|| {
        Error::Contract(format!(
            "{} {}/{} does not exist",
            template.kind, ns, template.name
        ))
    })?;
    let target = ContractVersionedObjectReference {
        api_group: template.api_group.clone(),
        kind: kind.to_string(),
        name: name.to_string(),
    };
    let (api, ar) = ctx.resolver.api(ns, &target).await?;
    let meta = tpl.data.pointer("/spec/template/metadata").cloned();
    let mut all_labels: BTreeMap<String, String> = meta
        .as_ref()
        .and_then(|m| m.get("labels"))
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    all_labels.extend(labels.clone());
    let mut annotations: BTreeMap<String, String> = meta
        .as_ref()
        .and_then(|m| m.get("annotations"))
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    annotations.insert(CLONED_FROM_NAME.into(), template.name.clone());
    annotations.insert(
        CLONED_FROM_KIND.into(),
        format!("{}.{}", template.kind, template.api_group),
    );
    let spec = spec_override.unwrap_or_else(|| {
        tpl.data
            .pointer("/spec/template/spec")
            .cloned()
            .unwrap_or_else(|| json!({}))
    });
    let mut obj = DynamicObject::new(name, &ar).within(ns);
    obj.metadata.labels = Some(all_labels);
    obj.metadata.annotations = Some(annotations);
    obj.metadata.owner_references = Some(vec![owner]);
    obj.data = json!({ "spec": spec });
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(target),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(target),
        Err(e) => Err(e.into()),
    }
}

/// Whether `obj` is controlled by the object with `uid`.
pub fn controlled_by<K: Resource>(obj: &K, uid: &str) -> bool {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}
