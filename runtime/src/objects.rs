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

/// The finalizers of the kinds this process reconciles, by `group/Kind`: an object slipway
/// clones from a template is created with its controller's finalizer already in place, so
/// that controller makes no metadata write of its own to add it. A kind reconciled elsewhere
/// (another process, an external provider) is not registered, and its controller adds its
/// finalizer itself as before.
static OWN_FINALIZERS: std::sync::LazyLock<std::sync::RwLock<BTreeMap<String, String>>> =
    std::sync::LazyLock::new(Default::default);

/// Records that this process reconciles `group`/`kind` under `finalizer`.
pub fn register_finalizer(group: &str, kind: &str, finalizer: &str) {
    OWN_FINALIZERS
        .write()
        .expect("finalizer registry")
        .insert(format!("{group}/{kind}"), finalizer.to_string());
}

/// The finalizer of `group`/`kind` when this process reconciles it.
pub fn own_finalizer(group: &str, kind: &str) -> Option<String> {
    OWN_FINALIZERS
        .read()
        .expect("finalizer registry")
        .get(&format!("{group}/{kind}"))
        .cloned()
}

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
        .ok_or_else(|| Error::NoUid {
            kind: K::kind(&()).to_string(),
            name: owner.name_any(),
        })?;
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
        Error::invalid(
            format!("{} {ns}/{}", template.kind, template.name),
            "not a template kind (its name must end in Template)",
        )
    })?;
    let tpl = ctx
        .resolver
        .get(ns, template)
        .await?
        .ok_or_else(|| Error::Missing {
            kind: template.kind.clone(),
            namespace: ns.to_string(),
            name: template.name.clone(),
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
    obj.metadata.finalizers = own_finalizer(&target.api_group, &target.kind).map(|f| vec![f]);
    obj.data = json!({ "spec": spec });
    create_once(&api, &obj).await?;
    Ok(target)
}

/// Whether `obj` is controlled by the object with `uid`.
pub fn controlled_by<K: Resource>(obj: &K, uid: &str) -> bool {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// A non-controller owner reference to the Cluster: what ties an object to its Cluster's
/// lifetime (garbage collection) without claiming control of it.
pub fn cluster_owner_ref(cluster: &slipway_api::Cluster) -> Result<OwnerReference, Error> {
    let mut owner = cluster
        .controller_owner_ref(&())
        .ok_or_else(|| Error::NoUid {
            kind: "Cluster".into(),
            name: cluster.name_any(),
        })?;
    owner.controller = None;
    Ok(owner)
}

/// Adds a (non-controller) owner reference to the Cluster on a referenced template, as
/// upstream does, so deleting the Cluster garbage-collects the templates it used. Templates
/// that do not exist yet are left for a later pass.
pub async fn ensure_template_owner(
    ctx: &Context,
    ns: &str,
    template: &ContractVersionedObjectReference,
    cluster: &slipway_api::Cluster,
) -> Result<(), Error> {
    let Some(obj) = ctx.resolver.get(ns, template).await? else {
        return Ok(());
    };
    let uid = cluster.uid().unwrap_or_default();
    let mut refs = obj.metadata.owner_references.clone().unwrap_or_default();
    if refs.iter().any(|o| o.uid == uid) {
        return Ok(());
    }
    refs.push(cluster_owner_ref(cluster)?);
    let (api, _) = ctx.resolver.api(ns, template).await?;
    let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": obj.metadata.resource_version}});
    api.patch(
        &template.name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Deletes what a crashed pass left behind: objects of `templates`' stamped kinds selected by
/// `selector`, still controlled by `owner_uid` (a Machine takes control of its objects when it
/// is reconciled) and named after no Machine in `machines`. Creation goes infrastructure,
/// bootstrap, then Machine, so such an object is one whose Machine was never created.
/// Callers run this at the start of a pass, when none of their creations are in flight.
pub async fn sweep_orphans(
    ctx: &Context,
    ns: &str,
    owner_uid: &str,
    selector: &str,
    templates: &[&ContractVersionedObjectReference],
    machines: &std::collections::BTreeSet<String>,
) -> Result<(), Error> {
    for t in templates {
        let kind = t.kind.strip_suffix("Template").unwrap_or(&t.kind);
        let r = ContractVersionedObjectReference {
            api_group: t.api_group.clone(),
            kind: kind.to_string(),
            name: String::new(),
        };
        let (api, _) = ctx.resolver.api(ns, &r).await?;
        let list = api
            .list(&kube::api::ListParams::default().labels(selector))
            .await?;
        for o in list.items.iter().filter(|o| {
            controlled_by(*o, owner_uid)
                && !machines.contains(&o.name_any())
                && o.metadata.deletion_timestamp.is_none()
        }) {
            tracing::info!(kind, name = %o.name_any(), "deleting an object whose Machine was never created");
            delete_if_exists(&api, &o.name_any()).await?;
        }
    }
    Ok(())
}

/// Creates `obj` unless an object of that name exists (a retried pass, a concurrent writer);
/// returns whether this call created it.
pub async fn create_once<K>(api: &kube::Api<K>, obj: &K) -> Result<bool, kube::Error>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes `name`; an object already gone is fine.
pub async fn delete_if_exists<K>(api: &kube::Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The cleanup of an owner of `children`: deletes those not already being deleted and keeps
/// the owner's finalizer (`Error::Waiting`, naming how many `what` remain) until none is left.
pub async fn delete_children<K>(
    api: &kube::Api<K>,
    children: &[K],
    what: &str,
) -> Result<kube::runtime::controller::Action, Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if children.is_empty() {
        return Ok(kube::runtime::controller::Action::await_change());
    }
    for c in children
        .iter()
        .filter(|c| c.meta().deletion_timestamp.is_none())
    {
        delete_if_exists(api, &c.name_any()).await?;
    }
    Err(Error::Waiting(format!(
        "waiting for {} {what} to be deleted",
        children.len()
    )))
}

/// The name of the core (`cluster.x-k8s.io`) object of `kind` owning `obj`, by owner reference.
pub fn core_owner_name<K: Resource>(obj: &K, kind: &str) -> Option<String> {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == kind && o.api_version.starts_with("cluster.x-k8s.io/"))
        .map(|o| o.name.clone())
}

/// The Cluster owning an object, by owner reference.
pub fn owner_cluster_name<K: Resource>(obj: &K) -> Option<String> {
    core_owner_name(obj, "Cluster")
}

/// The Machine owning an object, by owner reference.
pub fn owner_machine_name<K: Resource>(obj: &K) -> Option<String> {
    core_owner_name(obj, "Machine")
}
