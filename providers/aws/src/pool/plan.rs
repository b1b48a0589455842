//! What an AWSMachinePool wants of its launch template and Auto Scaling group, and what to do
//! about what AWS shows: plain data and pure decisions, table-tested without I/O.

use std::collections::BTreeMap;

use crate::{ProviderError, api::AWSMachinePool};

/// The launch template data slipway compares and writes (CAPA's `LaunchTemplateNeedsUpdate`
/// fields, plus the AMI and the user data).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Template {
    /// AMI id.
    pub image: String,
    /// Instance type.
    pub instance_type: String,
    /// SSH key, if any.
    pub key: Option<String>,
    /// IAM instance profile name, if any.
    pub profile: Option<String>,
    /// Security group ids, sorted.
    pub groups: Vec<String>,
    /// Spot maximum price (`Some("")`: spot at the on-demand price).
    pub spot: Option<String>,
    /// User data, before base64 (never logged).
    pub user_data: Vec<u8>,
}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} groups {:?} ({} bytes of user data)",
            self.image,
            self.instance_type,
            self.groups,
            self.user_data.len()
        )
    }
}

/// How the launch template's latest version differs from what is wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing differs.
    None,
    /// Only the user data (a refreshed bootstrap token): a new version, and no rollout, as in
    /// CAPA (instances already joined do not need the new token).
    UserData,
    /// The instances themselves change: a new version and an instance refresh. Names the
    /// fields that differ.
    Instances(Vec<&'static str>),
}

/// Compares the wanted template with the latest version's.
pub fn change(want: &Template, have: &Template) -> Change {
    let mut fields = Vec::new();
    if want.image != have.image {
        fields.push("ami");
    }
    if want.instance_type != have.instance_type {
        fields.push("instanceType");
    }
    if want.key != have.key {
        fields.push("sshKeyName");
    }
    if want.profile != have.profile {
        fields.push("iamInstanceProfile");
    }
    if want.groups != have.groups {
        fields.push("securityGroups");
    }
    if want.spot != have.spot {
        fields.push("spotMarketOptions");
    }
    if !fields.is_empty() {
        Change::Instances(fields)
    } else if want.user_data != have.user_data {
        Change::UserData
    } else {
        Change::None
    }
}

/// The group's sizes: CAPA refuses a MachinePool size outside `[minSize, maxSize]`.
pub fn sizes(pool: &AWSMachinePool, replicas: i32) -> Result<(i32, i32, i32), ProviderError> {
    let (min, max) = (pool.spec.min_size, pool.spec.max_size);
    if replicas < min || replicas > max {
        return Err(ProviderError::terminal(format!(
            "the MachinePool's spec.replicas {replicas} is outside the AWSMachinePool's \
             spec.minSize {min} .. spec.maxSize {max}"
        )));
    }
    Ok((min, max, replicas))
}

/// The Auto Scaling group as slipway compares it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Group {
    /// Least instances.
    pub min: i32,
    /// Most instances.
    pub max: i32,
    /// Desired instances.
    pub desired: i32,
    /// Subnet ids, sorted.
    pub subnets: Vec<String>,
    /// Instance types of the mixed instances policy, in order (empty: none).
    pub overrides: Vec<String>,
    /// Capacity rebalancing.
    pub capacity_rebalance: bool,
}

/// What `UpdateAutoScalingGroup` must change (empty: nothing).
pub fn group_diff(want: &Group, have: &Group) -> Vec<&'static str> {
    let mut d = Vec::new();
    if (want.min, want.max) != (have.min, have.max) {
        d.push("size");
    }
    if want.desired != have.desired {
        d.push("desiredCapacity");
    }
    if want.subnets != have.subnets {
        d.push("subnets");
    }
    if want.overrides != have.overrides {
        d.push("mixedInstancesPolicy");
    }
    if want.capacity_rebalance != have.capacity_rebalance {
        d.push("capacityRebalance");
    }
    d
}

/// A subnet of the cluster's network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    /// Id.
    pub id: String,
    /// Zone.
    pub zone: String,
    /// Public.
    pub public: bool,
}

/// The group's subnets (CAPA's placement): the pool's explicit ones when it names any; else
/// the cluster's subnets of the pool's zones (`availabilityZones`, else the MachinePool's
/// failure domains, else every zone) of the subnet type asked (`private` by default).
pub fn subnets(
    explicit: &[String],
    zones: &[String],
    failure_domains: &[String],
    kind: Option<&str>,
    cluster: &[Subnet],
) -> Result<Vec<String>, ProviderError> {
    let mut out: Vec<String> = if !explicit.is_empty() {
        explicit.to_vec()
    } else {
        let zones = if zones.is_empty() {
            failure_domains
        } else {
            zones
        };
        let kind = kind.unwrap_or("private");
        cluster
            .iter()
            .filter(|s| zones.is_empty() || zones.contains(&s.zone))
            .filter(|s| match kind {
                "public" => s.public,
                "all" => true,
                _ => !s.public,
            })
            .map(|s| s.id.clone())
            .collect()
    };
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(ProviderError::terminal(format!(
            "no {} subnet of the cluster's network is in the zones {zones:?} \
             (spec.availabilityZones / the MachinePool's failureDomains)",
            kind.unwrap_or("private")
        )));
    }
    Ok(out)
}

/// One instance of the group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instance {
    /// EC2 id.
    pub id: String,
    /// Zone.
    pub zone: String,
    /// Launch template version it runs.
    pub version: Option<String>,
    /// Lifecycle state (`InService`, `Pending`, `Terminating`, ...).
    pub state: String,
}

/// The provider IDs of the group's instances that are not on their way out, sorted.
pub fn provider_ids(instances: &[Instance]) -> Vec<String> {
    let mut ids: Vec<String> = instances
        .iter()
        .filter(|i| !i.state.starts_with("Terminat") && !i.state.starts_with("Detach"))
        .map(|i| format!("aws:///{}/{}", i.zone, i.id))
        .collect();
    ids.sort();
    ids
}

/// What to do about an owed instance refresh, from the group's refreshes' statuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Start one now.
    Start,
    /// Another one is still running (its status): wait for it.
    Wait(String),
}

/// Only one refresh may be unfinished at a time (AWS refuses a second one).
pub fn refresh(statuses: &[String]) -> Refresh {
    match statuses
        .iter()
        .find(|s| matches!(s.as_str(), "Pending" | "InProgress" | "Cancelling"))
    {
        Some(s) => Refresh::Wait(s.clone()),
        None => Refresh::Start,
    }
}

/// The tags of the group, its template and instances: CAPA's (Name, role `node`, both
/// ownership tags) over the AWSCluster's and the pool's `additionalTags`.
pub fn tags(
    cluster: &str,
    name: &str,
    cluster_tags: &BTreeMap<String, String>,
    pool_tags: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut extra = cluster_tags.clone();
    extra.extend(pool_tags.clone());
    crate::network::model::tags(cluster, name, "node", &extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AwsMachinePoolSpec;

    fn template() -> Template {
        Template {
            image: "ami-1".into(),
            instance_type: "t3.large".into(),
            key: Some("k".into()),
            profile: Some("nodes".into()),
            groups: vec!["sg-1".into(), "sg-2".into()],
            spot: None,
            user_data: b"#cloud-config\n".to_vec(),
        }
    }

    #[test]
    fn a_template_change_rolls_and_a_user_data_change_does_not() {
        let have = template();
        assert_eq!(change(&have, &have), Change::None);
        let mut want = have.clone();
        want.user_data = b"#cloud-config\ntoken\n".to_vec();
        assert_eq!(change(&want, &have), Change::UserData);
        want.instance_type = "t3.xlarge".into();
        want.groups = vec!["sg-1".into()];
        assert_eq!(
            change(&want, &have),
            Change::Instances(vec!["instanceType", "securityGroups"])
        );
        let mut want = have.clone();
        want.image = "ami-2".into();
        want.key = None;
        want.profile = None;
        want.spot = Some(String::new());
        assert_eq!(
            change(&want, &have),
            Change::Instances(vec![
                "ami",
                "sshKeyName",
                "iamInstanceProfile",
                "spotMarketOptions"
            ])
        );
    }

    #[test]
    fn replicas_must_fit_the_pool_sizes() {
        let p = AWSMachinePool::new(
            "p",
            AwsMachinePoolSpec {
                min_size: 1,
                max_size: 5,
                ..Default::default()
            },
        );
        assert_eq!(sizes(&p, 3).unwrap(), (1, 5, 3));
        assert_eq!(sizes(&p, 5).unwrap(), (1, 5, 5));
        let e = sizes(&p, 0).unwrap_err().to_string();
        assert!(
            e.contains("spec.replicas 0") && e.contains("spec.minSize 1"),
            "{e}"
        );
        assert!(sizes(&p, 6).is_err());
    }

    #[test]
    fn the_group_is_updated_only_for_what_differs() {
        let have = Group {
            min: 1,
            max: 5,
            desired: 2,
            subnets: vec!["s1".into()],
            overrides: vec![],
            capacity_rebalance: false,
        };
        assert!(group_diff(&have, &have).is_empty());
        let mut want = have.clone();
        want.desired = 3;
        assert_eq!(group_diff(&want, &have), ["desiredCapacity"]);
        want.max = 10;
        want.subnets.push("s2".into());
        want.overrides = vec!["t3.large".into()];
        want.capacity_rebalance = true;
        assert_eq!(
            group_diff(&want, &have),
            [
                "size",
                "desiredCapacity",
                "subnets",
                "mixedInstancesPolicy",
                "capacityRebalance"
            ]
        );
    }

    #[test]
    fn subnets_follow_capas_placement() {
        let s = |id: &str, zone: &str, public: bool| Subnet {
            id: id.into(),
            zone: zone.into(),
            public,
        };
        let net = vec![
            s("pub-a", "a", true),
            s("priv-a", "a", false),
            s("pub-b", "b", true),
            s("priv-b", "b", false),
        ];
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Every private subnet by default.
        assert_eq!(
            subnets(&[], &[], &[], None, &net).unwrap(),
            ["priv-a", "priv-b"]
        );
        // The pool's zones win over the MachinePool's failure domains.
        assert_eq!(
            subnets(&[], &v(&["b"]), &v(&["a"]), None, &net).unwrap(),
            ["priv-b"]
        );
        assert_eq!(
            subnets(&[], &[], &v(&["a"]), Some("public"), &net).unwrap(),
            ["pub-a"]
        );
        assert_eq!(
            subnets(&[], &v(&["a"]), &[], Some("all"), &net).unwrap(),
            ["priv-a", "pub-a"]
        );
        // Explicit subnets are taken as they are.
        assert_eq!(
            subnets(&v(&["x", "x"]), &v(&["a"]), &[], None, &net).unwrap(),
            ["x"]
        );
        let e = subnets(&[], &v(&["z"]), &[], None, &net)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[\"z\"]") && e.contains("availabilityZones"),
            "{e}"
        );
    }

    #[test]
    fn provider_ids_leave_out_instances_on_their_way_out() {
        let i = |id: &str, state: &str| Instance {
            id: id.into(),
            zone: "us-east-1a".into(),
            version: Some("1".into()),
            state: state.into(),
        };
        assert_eq!(
            provider_ids(&[
                i("i-2", "InService"),
                i("i-1", "Pending"),
                i("i-3", "Terminating:Wait"),
                i("i-4", "Detaching"),
            ]),
            ["aws:///us-east-1a/i-1", "aws:///us-east-1a/i-2"]
        );
    }

    #[test]
    fn one_refresh_at_a_time() {
        let s = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(refresh(&[]), Refresh::Start);
        assert_eq!(refresh(&s(&["Successful", "Cancelled"])), Refresh::Start);
        assert_eq!(
            refresh(&s(&["Successful", "InProgress"])),
            Refresh::Wait("InProgress".into())
        );
        assert_eq!(refresh(&s(&["Pending"])), Refresh::Wait("Pending".into()));
    }

    #[test]
    fn additional_tags_never_replace_ownership() {
        let cluster = BTreeMap::from([("team".to_string(), "a".to_string())]);
        let pool = BTreeMap::from([
            ("team".to_string(), "b".to_string()),
            ("Name".to_string(), "mine".to_string()),
        ]);
        let t = tags("c1", "c1-mp-0", &cluster, &pool);
        assert_eq!(t["team"], "b");
        assert_eq!(t["Name"], "c1-mp-0");
        assert_eq!(
            t["sigs.k8s.io/cluster-api-provider-aws/cluster/c1"],
            "owned"
        );
        assert_eq!(t["kubernetes.io/cluster/c1"], "owned");
        assert_eq!(t["sigs.k8s.io/cluster-api-provider-aws/role"], "node");
    }
}
