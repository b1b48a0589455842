//! AWSMachine instances: found by id or by the ownership and Name tags (which one is the
//! machine's, and which are duplicates to terminate: [`crate::instances`]), created with the machine's bootstrap data as base64 user
//! data (gzipped when over EC2's 16 KiB limit), placed by failure domain, grouped by role, and
//! registered with the API server target group while a control-plane machine lives.

use std::io::Write;

use aws_sdk_ec2::types::{
    Filter, IamInstanceProfileSpecification, InstanceType, ResourceType, Tag, TagSpecification,
};
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use base64::Engine;
use serde_json::{Value, json};
use slipway_api::common::{MachineAddress, MachineAddressType};

use crate::{
    ProviderError,
    api::{AWSCluster, AWSMachine, NetworkStatus},
    clients::Clients,
    error,
    network::model::tags,
};

/// EC2's limit on user data before base64.
pub const USER_DATA_LIMIT: usize = 16 * 1024;

/// The user data to send: the bootstrap data as is when it fits, gzipped when it does not (and
/// `uncompressedUserData` is not set); an error naming the size when even that is too big.
pub fn user_data(data: &[u8], uncompressed: bool) -> Result<Vec<u8>, ProviderError> {
    if data.len() <= USER_DATA_LIMIT {
        return Ok(data.to_vec());
    }
    if uncompressed {
        return Err(ProviderError::terminal(format!(
            "the bootstrap data is {} bytes, over EC2's {USER_DATA_LIMIT}-byte user-data limit, \
             and spec.uncompressedUserData forbids gzip",
            data.len()
        )));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data)
        .and_then(|()| gz.finish())
        .map_err(|e| ProviderError::transient(format!("gzip: {e}")))
        .and_then(|z| {
            if z.len() > USER_DATA_LIMIT {
                Err(ProviderError::terminal(format!(
                    "the bootstrap data is {} bytes, {} gzipped: over EC2's {USER_DATA_LIMIT}-byte \
                     user-data limit",
                    data.len(),
                    z.len()
                )))
            } else {
                Ok(z)
            }
        })
}

/// An instance as slipway needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Found {
    /// Id.
    pub id: String,
    /// State name.
    pub state: String,
    /// Zone.
    pub az: String,
    /// Addresses.
    pub addresses: Vec<MachineAddress>,
}

/// What slipway needs of an instance as EC2 describes it.
pub(crate) fn found(i: &aws_sdk_ec2::types::Instance) -> Found {
    let mut addresses = Vec::new();
    let mut add = |t: MachineAddressType, a: Option<&str>| {
        if let Some(a) = a.filter(|a| !a.is_empty()) {
            addresses.push(MachineAddress {
                type_: t,
                address: a.into(),
            });
        }
    };
    add(MachineAddressType::InternalIP, i.private_ip_address());
    add(MachineAddressType::InternalDNS, i.private_dns_name());
    add(MachineAddressType::ExternalIP, i.public_ip_address());
    add(MachineAddressType::ExternalDNS, i.public_dns_name());
    Found {
        id: i.instance_id().unwrap_or_default().into(),
        state: i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string())
            .unwrap_or_default(),
        az: i
            .placement()
            .and_then(|p| p.availability_zone())
            .unwrap_or_default()
            .into(),
        addresses,
    }
}

/// The instance id in an `aws:///<az>/<id>` provider id.
pub fn instance_id_of(provider_id: &str) -> Option<&str> {
    provider_id
        .strip_prefix("aws:///")?
        .rsplit('/')
        .next()
        .filter(|s| s.starts_with("i-"))
}

/// What RunInstances needs, resolved from the machine, its cluster's network and the Machine.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    /// AMI.
    pub image: String,
    /// Subnet.
    pub subnet: String,
    /// Security groups.
    pub groups: Vec<String>,
    /// SSH key, if any.
    pub key: Option<String>,
}

/// Subnet and security groups of a machine (pure): the subnet by the Machine's failure domain
/// (a private subnet of that zone), else the AWSMachine's subnet id, else the first private
/// subnet; groups by role (control plane: node, lb, controlplane; workers: node, lb) plus the
/// AWSMachine's additional groups.
pub fn placement(
    net: &NetworkStatus,
    m: &AWSMachine,
    failure_domain: Option<&str>,
    control_plane: bool,
) -> Result<(String, Vec<String>), ProviderError> {
    let subnets = net.subnets.clone().unwrap_or_default();
    let by_zone = |z: &str| {
        subnets
            .iter()
            .filter(|s| s.availability_zone == z)
            .min_by_key(|s| s.is_public)
            .map(|s| s.id.clone())
    };
    let subnet = match (
        failure_domain,
        m.spec.subnet.as_ref().and_then(|s| s.id.clone()),
    ) {
        (Some(fd), _) => by_zone(fd).ok_or_else(|| {
            ProviderError::terminal(format!(
                "failure domain {fd} has no subnet in the cluster's VPC"
            ))
        })?,
        (None, Some(id)) => id,
        (None, None) => subnets
            .iter()
            .find(|s| !s.is_public)
            .or(subnets.first())
            .map(|s| s.id.clone())
            .ok_or_else(|| ProviderError::transient("the cluster's network has no subnet yet"))?,
    };
    let sgs = net.security_groups.clone().unwrap_or_default();
    let roles: &[&str] = if control_plane {
        &["node", "lb", "controlplane"]
    } else {
        &["node", "lb"]
    };
    let mut groups = Vec::new();
    for r in roles {
        groups.push(
            sgs.get(*r).map(|g| g.id.clone()).ok_or_else(|| {
                ProviderError::transient(format!("security group {r} not made yet"))
            })?,
        );
    }
    groups.extend(
        m.spec
            .additional_security_groups
            .iter()
            .flatten()
            .filter_map(|g| g.id.clone()),
    );
    Ok((subnet, groups))
}

/// The AMI: `spec.ami.id`, else the newest image named by the lookup format of owner org.
pub async fn image(
    c: &Clients,
    cluster: &AWSCluster,
    m: &AWSMachine,
    version: Option<&str>,
) -> Result<String, ProviderError> {
    if let Some(id) = m.spec.ami.as_ref().and_then(|a| a.id.clone()) {
        return Ok(id);
    }
    let format = m
        .spec
        .image_lookup_format
        .clone()
        .or(cluster.spec.image_lookup_format.clone())
        .unwrap_or_else(|| "capa-ami-{{.BaseOS}}-?{{.K8sVersion}}-*".into());
    let org = m
        .spec
        .image_lookup_org
        .clone()
        .or(cluster.spec.image_lookup_org.clone())
        .unwrap_or_else(|| "819546954734".into());
    let base = m
        .spec
        .image_lookup_base_os
        .clone()
        .or(cluster.spec.image_lookup_base_os.clone())
        .unwrap_or_else(|| "ubuntu-24.04".into());
    let version = version.ok_or_else(|| {
        ProviderError::terminal("the Machine has no version to look an AMI up by; set spec.ami.id")
    })?;
    let name = format
        .replace("{{.BaseOS}}", &base)
        .replace("{{.K8sVersion}}", version.trim_start_matches('v'));
    let out = error::retrying("DescribeImages", || {
        c.ec2
            .describe_images()
            .owners(&org)
            .filters(Filter::builder().name("name").values(&name).build())
            .filters(Filter::builder().name("state").values("available").build())
            .send()
    })
    .await?;
    out.images()
        .iter()
        .filter(|i| i.image_id().is_some())
        .max_by_key(|i| i.creation_date().unwrap_or_default().to_string())
        .and_then(|i| i.image_id().map(String::from))
        .ok_or_else(|| {
            ProviderError::terminal(format!(
                "no available AMI named {name:?} owned by {org}; set spec.ami.id or \
                 spec.imageLookupFormat/imageLookupOrg"
            ))
        })
}

/// Launches the instance.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    c: &Clients,
    cluster: &str,
    infra_cluster: &AWSCluster,
    m: &AWSMachine,
    machine_name: &str,
    control_plane: bool,
    launch: &Launch,
    data: &[u8],
    token: &str,
) -> Result<Found, ProviderError> {
    let name = m.metadata.name.clone().unwrap_or_default();
    let role = if control_plane {
        "control-plane"
    } else {
        "node"
    };
    let mut extra = infra_cluster
        .spec
        .additional_tags
        .clone()
        .unwrap_or_default();
    extra.extend(m.spec.additional_tags.clone().unwrap_or_default());
    extra.insert(
        "MachineName".into(),
        format!(
            "{}/{machine_name}",
            m.metadata.namespace.as_deref().unwrap_or_default()
        ),
    );
    let t: Vec<Tag> = tags(cluster, &name, role, &extra)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    let spec = |rt: ResourceType| {
        TagSpecification::builder()
            .resource_type(rt)
            .set_tags(Some(t.clone()))
            .build()
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(user_data(
        data,
        m.spec.uncompressed_user_data.unwrap_or(false),
    )?);
    let mut req = c
        .ec2
        .run_instances()
        .image_id(&launch.image)
        .instance_type(InstanceType::from(m.spec.instance_type.as_str()))
        .min_count(1)
        .max_count(1)
        .client_token(token)
        .subnet_id(&launch.subnet)
        .set_security_group_ids(Some(launch.groups.clone()))
        .user_data(encoded)
        .tag_specifications(spec(ResourceType::Instance))
        .tag_specifications(spec(ResourceType::Volume));
    if let Some(k) = &launch.key {
        req = req.key_name(k);
    }
    if let Some(p) = m
        .spec
        .iam_instance_profile
        .as_ref()
        .filter(|p| !p.is_empty())
    {
        req = req.iam_instance_profile(IamInstanceProfileSpecification::builder().name(p).build());
    }
    // The ClientToken makes a resend (the SDK's after a lost answer, or the next pass's)
    // answer with the instance already launched; slipway adds no retry of its own.
    let out = req
        .send()
        .await
        .map_err(|e| error::map("RunInstances", e))?;
    let inst = out
        .instances()
        .first()
        .ok_or_else(|| ProviderError::transient("RunInstances answered without an instance"))?;
    tracing::info!(machine = %name, instance = ?inst.instance_id(), "launched an instance");
    Ok(found(inst))
}

/// The SSH key: the AWSMachine's, else the AWSCluster's, else `default`; empty means none.
pub fn ssh_key(cluster: &AWSCluster, m: &AWSMachine) -> Option<String> {
    m.spec
        .ssh_key_name
        .clone()
        .or(cluster.spec.ssh_key_name.clone())
        .or(Some("default".into()))
        .filter(|k| !k.is_empty())
}

/// Registers (or deregisters) a control-plane instance with the API server target group.
pub async fn target(
    c: &Clients,
    net: &NetworkStatus,
    instance: &str,
    register: bool,
) -> Result<(), ProviderError> {
    let Some(tg) = net.api_server_target_group_arn.as_deref() else {
        return Ok(());
    };
    let t = TargetDescription::builder().id(instance).port(6443).build();
    if register {
        error::retrying("RegisterTargets", || {
            c.elb
                .register_targets()
                .target_group_arn(tg)
                .targets(t.clone())
                .send()
        })
        .await
        .map(drop)
    } else {
        match error::retrying_coded("DeregisterTargets", || {
            c.elb
                .deregister_targets()
                .target_group_arn(tg)
                .targets(t.clone())
                .send()
        })
        .await
        {
            // Gone already: the target group, or the instance (AWS answers InvalidTarget for
            // a terminated instance).
            Err(e) if e.is_not_found() || e.code() == Some("InvalidTarget") => Ok(()),
            other => other.map(drop).map_err(ProviderError::from),
        }
    }
}

/// Status fields of an instance.
pub fn status(f: &Found) -> Value {
    json!({"instanceState": f.state, "addresses": f.addresses})
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::api::{AwsMachineSpec, AwsResourceReference, SecurityGroup, SubnetStatus};

    use super::*;

    #[test]
    fn user_data_is_gzipped_only_over_the_limit() {
        let small = b"#cloud-config\n".to_vec();
        assert_eq!(user_data(&small, false).unwrap(), small);
        let big: Vec<u8> = (0..40_000).map(|i| b"abcdefgh\n"[i % 9]).collect();
        let z = user_data(&big, false).unwrap();
        assert!(z.len() < USER_DATA_LIMIT && z.starts_with(&[0x1f, 0x8b]));
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&z[..]), &mut back).unwrap();
        assert_eq!(back, big);
        let e = user_data(&big, true).unwrap_err();
        assert!(
            e.is_terminal() && e.to_string().contains("uncompressedUserData"),
            "{e}"
        );
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..60_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let e = user_data(&noise, false).unwrap_err();
        assert!(e.to_string().contains("gzipped"), "{e}");
    }

    #[test]
    fn provider_ids_give_instance_ids() {
        assert_eq!(instance_id_of("aws:///us-east-1a/i-0123"), Some("i-0123"));
        assert_eq!(instance_id_of("kind://docker/c/n"), None);
        assert_eq!(instance_id_of("aws:///us-east-1a/"), None);
    }

    fn net() -> NetworkStatus {
        let sub = |id: &str, az: &str, public| SubnetStatus {
            id: id.into(),
            cidr_block: String::new(),
            availability_zone: az.into(),
            is_public: public,
        };
        NetworkStatus {
            subnets: Some(vec![
                sub("subnet-pub-a", "us-east-1a", true),
                sub("subnet-priv-a", "us-east-1a", false),
                sub("subnet-pub-b", "us-east-1b", true),
                sub("subnet-priv-b", "us-east-1b", false),
            ]),
            security_groups: Some(
                ["node", "lb", "controlplane", "apiserver-lb"]
                    .iter()
                    .map(|r| {
                        (
                            r.to_string(),
                            SecurityGroup {
                                id: format!("sg-{r}"),
                                name: r.to_string(),
                                tags: None,
                            },
                        )
                    })
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn placement_by_failure_domain_subnet_or_first_private_and_groups_by_role() {
        let m = AWSMachine::new("m", AwsMachineSpec::default());
        let (s, g) = placement(&net(), &m, Some("us-east-1b"), true).unwrap();
        assert_eq!(s, "subnet-priv-b");
        assert_eq!(g, ["sg-node", "sg-lb", "sg-controlplane"]);
        let (s, g) = placement(&net(), &m, None, false).unwrap();
        assert_eq!(s, "subnet-priv-a");
        assert_eq!(g, ["sg-node", "sg-lb"]);
        let mut m2 = m.clone();
        m2.spec.subnet = Some(AwsResourceReference {
            id: Some("subnet-mine".into()),
            filters: None,
        });
        m2.spec.additional_security_groups = Some(vec![AwsResourceReference {
            id: Some("sg-extra".into()),
            filters: None,
        }]);
        let (s, g) = placement(&net(), &m2, None, false).unwrap();
        assert_eq!(s, "subnet-mine");
        assert_eq!(g.last().unwrap(), "sg-extra");
        let e = placement(&net(), &m, Some("us-east-1z"), false).unwrap_err();
        assert!(e.is_terminal(), "{e}");
        let e = placement(&NetworkStatus::default(), &m, None, false).unwrap_err();
        assert!(e.is_transient(), "{e}");
    }
}
