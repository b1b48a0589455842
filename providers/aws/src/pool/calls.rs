//! The EC2 launch template and Auto Scaling calls of an AWSMachinePool, in CAPA's shapes
//! (`pkg/cloud/services/ec2/launchtemplate.go`, `pkg/cloud/services/autoscaling`). User data is
//! sent base64 and never logged.

use std::collections::BTreeMap;

use aws_sdk_autoscaling::types as asg;
use aws_sdk_ec2::types as ec2;
use base64::Engine;

use super::plan::{Group, Instance, Template};
use crate::{ProviderError, api::AWSMachinePool, clients::Clients, error};

/// CAPA's `$Latest`: the group always launches from the newest template version.
pub const LATEST: &str = "$Latest";

/// A launch template's latest version, as slipway compares it.
#[derive(Clone, Debug)]
pub struct FoundTemplate {
    /// Template id.
    pub id: String,
    /// Latest version number.
    pub version: i64,
    /// Its data.
    pub data: Template,
}

/// The latest version of the launch template named `name`, if it exists.
pub async fn describe_template(
    c: &Clients,
    name: &str,
) -> Result<Option<FoundTemplate>, ProviderError> {
    let out = match c
        .ec2
        .describe_launch_template_versions()
        .launch_template_name(name)
        .versions(LATEST)
        .send()
        .await
    {
        Ok(o) => o,
        Err(e) if error::is_not_found(&e) => return Ok(None),
        Err(e) => return Err(error::map("DescribeLaunchTemplateVersions", e)),
    };
    let Some(v) = out.launch_template_versions().first() else {
        return Ok(None);
    };
    let d = v.launch_template_data();
    let user_data = match d.and_then(|d| d.user_data()) {
        Some(u) => base64::engine::general_purpose::STANDARD
            .decode(u)
            .map_err(|e| {
                ProviderError::terminal(format!(
                    "launch template {name}: its user data is not base64: {e}"
                ))
            })?,
        None => vec![],
    };
    let mut groups: Vec<String> = d
        .map(|d| d.security_group_ids().to_vec())
        .unwrap_or_default();
    groups.sort();
    Ok(Some(FoundTemplate {
        id: v.launch_template_id().unwrap_or_default().to_string(),
        version: v.version_number().unwrap_or_default(),
        data: Template {
            image: d.and_then(|d| d.image_id()).unwrap_or_default().into(),
            instance_type: d
                .and_then(|d| d.instance_type())
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            key: d.and_then(|d| d.key_name()).map(String::from),
            profile: d
                .and_then(|d| d.iam_instance_profile())
                .and_then(|p| p.name())
                .map(String::from),
            groups,
            spot: d
                .and_then(|d| d.instance_market_options())
                .filter(|m| m.market_type() == Some(&ec2::MarketType::Spot))
                .map(|m| {
                    m.spot_options()
                        .and_then(|s| s.max_price())
                        .unwrap_or_default()
                        .to_string()
                }),
            user_data,
        },
    }))
}

fn ec2_tags(tags: &BTreeMap<String, String>) -> Vec<ec2::Tag> {
    tags.iter()
        .map(|(k, v)| ec2::Tag::builder().key(k).value(v).build())
        .collect()
}

/// The launch template data: CAPA's `createLaunchTemplateData` (instance and volume tags,
/// metadata options, volumes).
async fn data(
    c: &Clients,
    pool: &AWSMachinePool,
    t: &Template,
    tags: &BTreeMap<String, String>,
) -> Result<ec2::RequestLaunchTemplateData, ProviderError> {
    let lt = &pool.spec.aws_launch_template;
    let mut b = ec2::RequestLaunchTemplateData::builder()
        .image_id(&t.image)
        .instance_type(ec2::InstanceType::from(t.instance_type.as_str()))
        .set_key_name(t.key.clone())
        .set_security_group_ids(Some(t.groups.clone()))
        .user_data(base64::engine::general_purpose::STANDARD.encode(&t.user_data));
    if let Some(p) = &t.profile {
        b = b.iam_instance_profile(
            ec2::LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .name(p)
                .build(),
        );
    }
    if let Some(price) = &t.spot {
        let mut spot = ec2::LaunchTemplateSpotMarketOptionsRequest::builder();
        if !price.is_empty() {
            spot = spot.max_price(price);
        }
        b = b.instance_market_options(
            ec2::LaunchTemplateInstanceMarketOptionsRequest::builder()
                .market_type(ec2::MarketType::Spot)
                .spot_options(spot.build())
                .build(),
        );
    }
    if let Some(m) = &lt.instance_metadata_options {
        let mut o = ec2::LaunchTemplateInstanceMetadataOptionsRequest::builder();
        if let Some(e) = &m.http_endpoint {
            o = o.http_endpoint(ec2::LaunchTemplateInstanceMetadataEndpointState::from(
                e.as_str(),
            ));
        }
        if let Some(t) = &m.http_tokens {
            o = o.http_tokens(ec2::LaunchTemplateHttpTokensState::from(t.as_str()));
        }
        if let Some(h) = m.http_put_response_hop_limit {
            o = o.http_put_response_hop_limit(h as i32);
        }
        if let Some(t) = &m.instance_metadata_tags {
            o = o.instance_metadata_tags(ec2::LaunchTemplateInstanceMetadataTagsState::from(
                t.as_str(),
            ));
        }
        b = b.metadata_options(o.build());
    }
    let mut volumes = Vec::new();
    if let Some(root) = &lt.root_volume {
        // The root device's name is the AMI's, as CAPA's checkRootVolume finds it.
        let img = error::retrying("DescribeImages", || {
            c.ec2.describe_images().image_ids(&t.image).send()
        })
        .await?;
        let device = img
            .images()
            .first()
            .and_then(|i| i.root_device_name())
            .ok_or_else(|| {
                ProviderError::terminal(format!(
                    "AMI {} has no root device name, so spec.awsLaunchTemplate.rootVolume \
                     cannot be applied",
                    t.image
                ))
            })?;
        volumes.push(volume(device, root));
    }
    for v in lt.non_root_volumes.iter().flatten() {
        let device = v.device_name.as_deref().ok_or_else(|| {
            ProviderError::terminal(
                "every spec.awsLaunchTemplate.nonRootVolumes entry needs a deviceName",
            )
        })?;
        volumes.push(volume(device, v));
    }
    if !volumes.is_empty() {
        b = b.set_block_device_mappings(Some(volumes));
    }
    let spec = |rt: ec2::ResourceType| {
        ec2::LaunchTemplateTagSpecificationRequest::builder()
            .resource_type(rt)
            .set_tags(Some(ec2_tags(tags)))
            .build()
    };
    Ok(b.tag_specifications(spec(ec2::ResourceType::Instance))
        .tag_specifications(spec(ec2::ResourceType::Volume))
        .build())
}

fn volume(device: &str, v: &crate::api::Volume) -> ec2::LaunchTemplateBlockDeviceMappingRequest {
    let mut ebs = ec2::LaunchTemplateEbsBlockDeviceRequest::builder()
        .delete_on_termination(true)
        .volume_size(v.size as i32)
        .set_encrypted(v.encrypted)
        .set_iops(v.iops.map(|i| i as i32))
        .set_throughput(v.throughput.map(|i| i as i32));
    if let Some(k) = &v.encryption_key {
        ebs = ebs.encrypted(true).kms_key_id(k);
    }
    if let Some(t) = &v.type_ {
        ebs = ebs.volume_type(ec2::VolumeType::from(t.as_str()));
    }
    ec2::LaunchTemplateBlockDeviceMappingRequest::builder()
        .device_name(device)
        .ebs(ebs.build())
        .build()
}

/// Creates the launch template (version 1), tagged in the create call; returns its id.
pub async fn create_template(
    c: &Clients,
    pool: &AWSMachinePool,
    name: &str,
    t: &Template,
    tags: &BTreeMap<String, String>,
) -> Result<String, ProviderError> {
    let d = data(c, pool, t, tags).await?;
    let out = c
        .ec2
        .create_launch_template()
        .launch_template_name(name)
        .launch_template_data(d)
        .tag_specifications(
            ec2::TagSpecification::builder()
                .resource_type(ec2::ResourceType::LaunchTemplate)
                .set_tags(Some(ec2_tags(tags)))
                .build(),
        )
        .send()
        .await
        .map_err(|e| error::map("CreateLaunchTemplate", e))?;
    let id = out
        .launch_template()
        .and_then(|l| l.launch_template_id())
        .unwrap_or_default()
        .to_string();
    tracing::info!(launch_template = %name, %id, template = %t, "created the launch template");
    Ok(id)
}

/// Adds a version to the launch template; returns its number.
pub async fn create_version(
    c: &Clients,
    pool: &AWSMachinePool,
    id: &str,
    t: &Template,
    tags: &BTreeMap<String, String>,
) -> Result<i64, ProviderError> {
    let d = data(c, pool, t, tags).await?;
    let out = c
        .ec2
        .create_launch_template_version()
        .launch_template_id(id)
        .launch_template_data(d)
        .send()
        .await
        .map_err(|e| error::map("CreateLaunchTemplateVersion", e))?;
    let v = out
        .launch_template_version()
        .and_then(|v| v.version_number())
        .unwrap_or_default();
    tracing::info!(launch_template = %id, version = v, template = %t, "created a launch template version");
    Ok(v)
}

/// CAPA's pruning rule, so versions do not grow without bound: before a new version, when
/// there are at least three, the oldest one after the first goes. Every version number is
/// listed (paginated) and sorted here rather than asking for a `MinVersion`..`$Latest` range.
pub async fn prune_versions(c: &Clients, id: &str) -> Result<(), ProviderError> {
    let mut versions = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = error::retrying("DescribeLaunchTemplateVersions", || {
            c.ec2
                .describe_launch_template_versions()
                .launch_template_id(id)
                .set_next_token(token.clone())
                .send()
        })
        .await?;
        versions.extend(
            out.launch_template_versions()
                .iter()
                .filter_map(|v| v.version_number()),
        );
        token = out.next_token().filter(|t| !t.is_empty()).map(String::from);
        if token.is_none() {
            break;
        }
    }
    let Some(old) = prune_candidate(versions) else {
        return Ok(());
    };
    c.ec2
        .delete_launch_template_versions()
        .launch_template_id(id)
        .versions(old.to_string())
        .send()
        .await
        .map_err(|e| error::map("DeleteLaunchTemplateVersions", e))?;
    tracing::info!(launch_template = %id, version = old, "pruned a launch template version");
    Ok(())
}

/// The version to prune: the oldest after the first, once there are three or more.
pub fn prune_candidate(mut versions: Vec<i64>) -> Option<i64> {
    versions.sort_unstable();
    versions.dedup();
    (versions.len() >= 3).then(|| versions[1])
}

/// The id and tags of the launch template named `name`, if it exists.
pub async fn template_tags(
    c: &Clients,
    name: &str,
) -> Result<Option<(String, BTreeMap<String, String>)>, ProviderError> {
    let out = match c
        .ec2
        .describe_launch_templates()
        .launch_template_names(name)
        .send()
        .await
    {
        Ok(o) => o,
        Err(e) if error::is_not_found(&e) => return Ok(None),
        Err(e) => return Err(error::map("DescribeLaunchTemplates", e)),
    };
    Ok(out.launch_templates().first().map(|t| {
        (
            t.launch_template_id().unwrap_or_default().to_string(),
            t.tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect(),
        )
    }))
}

/// Deletes the launch template (a missing one is success).
pub async fn delete_template(c: &Clients, id: &str) -> Result<(), ProviderError> {
    match c
        .ec2
        .delete_launch_template()
        .launch_template_id(id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if error::is_not_found(&e) => Ok(()),
        Err(e) => Err(error::map("DeleteLaunchTemplate", e)),
    }
}

/// An Auto Scaling group as slipway needs it.
#[derive(Clone, Debug, Default)]
pub struct FoundGroup {
    /// ARN.
    pub arn: String,
    /// Sizes, subnets, policy.
    pub group: Group,
    /// Its instances.
    pub instances: Vec<Instance>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// `Delete in progress` while deleting.
    pub status: Option<String>,
}

/// The Auto Scaling group named `name`, if it exists.
pub async fn describe_group(c: &Clients, name: &str) -> Result<Option<FoundGroup>, ProviderError> {
    let out = error::retrying("DescribeAutoScalingGroups", || {
        c.asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
    })
    .await?;
    let Some(g) = out
        .auto_scaling_groups()
        .iter()
        .find(|g| g.auto_scaling_group_name() == Some(name))
    else {
        return Ok(None);
    };
    let mut subnets: Vec<String> = g
        .vpc_zone_identifier()
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    subnets.sort();
    Ok(Some(FoundGroup {
        arn: g.auto_scaling_group_arn().unwrap_or_default().into(),
        group: Group {
            min: g.min_size().unwrap_or_default(),
            max: g.max_size().unwrap_or_default(),
            desired: g.desired_capacity().unwrap_or_default(),
            subnets,
            overrides: g
                .mixed_instances_policy()
                .and_then(|m| m.launch_template())
                .map(|l| {
                    l.overrides()
                        .iter()
                        .filter_map(|o| o.instance_type().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            capacity_rebalance: g.capacity_rebalance().unwrap_or(false),
        },
        instances: g
            .instances()
            .iter()
            .map(|i| Instance {
                id: i.instance_id().unwrap_or_default().into(),
                zone: i.availability_zone().unwrap_or_default().into(),
                version: i
                    .launch_template()
                    .and_then(|l| l.version())
                    .map(String::from),
                state: i
                    .lifecycle_state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            })
            .collect(),
        tags: g
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect(),
        status: g.status().map(String::from),
    }))
}

/// Seconds of a Go duration such as `300s`, `5m` or `1m30s` (CAPA's metav1.Duration fields).
pub fn seconds(field: &str, value: &str) -> Result<i32, ProviderError> {
    let bad = || {
        ProviderError::terminal(format!(
            "{field}={value:?} is not a duration such as 300s, 5m or 1m30s"
        ))
    };
    let (mut total, mut n) = (0i64, String::new());
    for ch in value.trim().chars() {
        if ch.is_ascii_digit() {
            n.push(ch);
            continue;
        }
        let k: i64 = n.parse().map_err(|_| bad())?;
        total += k * match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        n.clear();
    }
    if !n.is_empty() || value.trim().is_empty() {
        return Err(bad());
    }
    i32::try_from(total).map_err(|_| bad())
}

fn launch(
    pool: &AWSMachinePool,
    lt_id: &str,
) -> (
    Option<asg::LaunchTemplateSpecification>,
    Option<asg::MixedInstancesPolicy>,
) {
    let spec = asg::LaunchTemplateSpecification::builder()
        .launch_template_id(lt_id)
        .version(LATEST)
        .build();
    let Some(m) = &pool.spec.mixed_instances_policy else {
        return (Some(spec), None);
    };
    let mut t = asg::LaunchTemplate::builder().launch_template_specification(spec);
    for o in m.overrides.iter().flatten() {
        t = t.overrides(
            asg::LaunchTemplateOverrides::builder()
                .instance_type(&o.instance_type)
                .build(),
        );
    }
    let mut p = asg::MixedInstancesPolicy::builder().launch_template(t.build());
    if let Some(d) = &m.instances_distribution {
        p = p.instances_distribution(
            asg::InstancesDistribution::builder()
                .set_on_demand_allocation_strategy(d.on_demand_allocation_strategy.clone())
                .set_spot_allocation_strategy(d.spot_allocation_strategy.clone())
                .set_on_demand_base_capacity(d.on_demand_base_capacity.map(|n| n as i32))
                .set_on_demand_percentage_above_base_capacity(
                    d.on_demand_percentage_above_base_capacity.map(|n| n as i32),
                )
                .build(),
        );
    }
    (None, Some(p.build()))
}

/// Creates the group, tagged in the create call (tags not propagated: the launch template
/// tags the instances, as in CAPA).
pub async fn create_group(
    c: &Clients,
    pool: &AWSMachinePool,
    name: &str,
    lt_id: &str,
    want: &Group,
    tags: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    let (spec, mixed) = launch(pool, lt_id);
    let mut t = Vec::new();
    for (k, v) in tags {
        t.push(
            asg::Tag::builder()
                .key(k)
                .value(v)
                .propagate_at_launch(false)
                .resource_id(name)
                .resource_type("auto-scaling-group")
                .build(),
        );
    }
    let mut req = c
        .asg
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .min_size(want.min)
        .max_size(want.max)
        .desired_capacity(want.desired)
        .vpc_zone_identifier(want.subnets.join(","))
        .set_launch_template(spec)
        .set_mixed_instances_policy(mixed)
        .capacity_rebalance(want.capacity_rebalance)
        .set_tags(Some(t));
    if let Some(d) = &pool.spec.default_cool_down {
        req = req.default_cooldown(seconds("spec.defaultCoolDown", d)?);
    }
    if let Some(d) = &pool.spec.default_instance_warmup {
        req = req.default_instance_warmup(seconds("spec.defaultInstanceWarmup", d)?);
    }
    req.send()
        .await
        .map_err(|e| error::map("CreateAutoScalingGroup", e))?;
    tracing::info!(group = %name, desired = want.desired, "created the Auto Scaling group");
    Ok(())
}

/// Brings the group to `want` (sizes, subnets, template or mixed policy).
pub async fn update_group(
    c: &Clients,
    pool: &AWSMachinePool,
    name: &str,
    lt_id: &str,
    want: &Group,
) -> Result<(), ProviderError> {
    let (spec, mixed) = launch(pool, lt_id);
    error::retrying("UpdateAutoScalingGroup", || {
        c.asg
            .update_auto_scaling_group()
            .auto_scaling_group_name(name)
            .min_size(want.min)
            .max_size(want.max)
            .desired_capacity(want.desired)
            .vpc_zone_identifier(want.subnets.join(","))
            .set_launch_template(spec.clone())
            .set_mixed_instances_policy(mixed.clone())
            .capacity_rebalance(want.capacity_rebalance)
            .send()
    })
    .await?;
    tracing::info!(group = %name, desired = want.desired, "updated the Auto Scaling group");
    Ok(())
}

/// Deletes the group and its instances (ForceDelete, as CAPA).
pub async fn delete_group(c: &Clients, name: &str) -> Result<(), ProviderError> {
    c.asg
        .delete_auto_scaling_group()
        .auto_scaling_group_name(name)
        .force_delete(true)
        .send()
        .await
        .map_err(|e| error::map("DeleteAutoScalingGroup", e))?;
    tracing::info!(group = %name, "deleting the Auto Scaling group");
    Ok(())
}

/// The statuses of the group's instance refreshes.
pub async fn refreshes(c: &Clients, name: &str) -> Result<Vec<String>, ProviderError> {
    let out = c
        .asg
        .describe_instance_refreshes()
        .auto_scaling_group_name(name)
        .send()
        .await
        .map_err(|e| error::map("DescribeInstanceRefreshes", e))?;
    Ok(out
        .instance_refreshes()
        .iter()
        .filter_map(|r| r.status().map(|s| s.as_str().to_string()))
        .collect())
}

/// Starts a rolling replacement of the group's instances (CAPA's StartASGInstanceRefresh).
pub async fn start_refresh(
    c: &Clients,
    pool: &AWSMachinePool,
    name: &str,
) -> Result<(), ProviderError> {
    let p = pool.spec.refresh_preferences.clone().unwrap_or_default();
    let strategy = p.strategy.clone().unwrap_or_else(|| "Rolling".into());
    c.asg
        .start_instance_refresh()
        .auto_scaling_group_name(name)
        .strategy(asg::RefreshStrategy::from(strategy.as_str()))
        .preferences(
            asg::RefreshPreferences::builder()
                .set_instance_warmup(p.instance_warmup.map(|n| n as i32))
                .set_min_healthy_percentage(p.min_healthy_percentage.map(|n| n as i32))
                .set_max_healthy_percentage(p.max_healthy_percentage.map(|n| n as i32))
                .build(),
        )
        .send()
        .await
        .map_err(|e| error::map("StartInstanceRefresh", e))?;
    tracing::info!(group = %name, %strategy, "started an instance refresh");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_spare_version_is_pruned_once_there_are_three() {
        assert_eq!(prune_candidate(vec![]), None);
        assert_eq!(prune_candidate(vec![2, 1]), None);
        assert_eq!(prune_candidate(vec![3, 1, 2]), Some(2));
        assert_eq!(prune_candidate(vec![7, 1, 5, 6]), Some(5));
    }

    #[test]
    fn go_durations_become_seconds() {
        assert_eq!(seconds("f", "300s").unwrap(), 300);
        assert_eq!(seconds("f", "5m").unwrap(), 300);
        assert_eq!(seconds("f", "1h1m30s").unwrap(), 3690);
        for bad in ["", "300", "5d", "s"] {
            let e = seconds("spec.defaultCoolDown", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("spec.defaultCoolDown"), "{e}");
        }
    }
}
