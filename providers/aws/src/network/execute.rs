//! Executes planned [`Action`]s: one AWS call each (two for the compound deletes), tags always
//! inside the create call (TagSpecifications), throttling and NotFound-after-create races
//! retried in place. Deletes treat "already gone" as done.

use aws_sdk_ec2::types::{
    AttributeBooleanValue, DomainType, IpPermission, IpRange, ResourceType, Tag, TagSpecification,
    UserIdGroupPair,
};
use aws_sdk_elasticloadbalancingv2::types as elbt;
use aws_smithy_types::retry::RetryConfig;

use super::{
    model::{Desired, Rule, Source, tags},
    plan::Action,
};
use crate::{
    ProviderError,
    clients::Clients,
    error::{self, AwsError},
};

fn spec(rt: ResourceType, d: &Desired, name: &str, role: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(rt)
        .set_tags(Some(
            tags(&d.cluster, name, role, &d.extra_tags)
                .into_iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

fn elb_tags(d: &Desired, name: &str, role: &str) -> Vec<elbt::Tag> {
    tags(&d.cluster, name, role, &d.extra_tags)
        .into_iter()
        .map(|(k, v)| elbt::Tag::builder().key(k).value(v).build())
        .collect()
}

/// EC2 permissions for rules, one permission per rule.
pub fn permissions(rules: &[Rule]) -> Vec<IpPermission> {
    rules
        .iter()
        .map(|r| {
            let b = IpPermission::builder()
                .ip_protocol(&r.protocol)
                .from_port(r.from)
                .to_port(r.to);
            match &r.source {
                Source::Cidr(c) => b.ip_ranges(IpRange::builder().cidr_ip(c).build()),
                Source::Group(g) => {
                    b.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build())
                }
            }
            .build()
        })
        .collect()
}

/// Whether a delete failed only because the resource is gone already (AWS's NotFound codes).
fn gone<T>(r: Result<T, AwsError>) -> Result<(), ProviderError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Runs one action.
///
/// `vpc` is the observed VPC: the planner plans the steps that create inside it only once it
/// exists.
///
/// `token` is the ClientToken of a create AWS takes one for (CreateNatGateway). Creates without
/// one go out once: the SDK's retries are off for them, and only throttling is retried.
pub async fn execute(
    c: &Clients,
    d: &Desired,
    vpc: Option<&str>,
    a: &Action,
    token: Option<&str>,
) -> Result<(), ProviderError> {
    let once = || aws_sdk_ec2::config::Builder::default().retry_config(RetryConfig::disabled());
    let in_vpc = || {
        vpc.map(String::from)
            .ok_or_else(|| ProviderError::transient("no VPC exists for this step yet"))
    };
    let ec2 = &c.ec2;
    let elb = &c.elb;
    let cl = &d.cluster;
    match a {
        Action::Wait { .. } => Ok(()),
        Action::CreateVpc { cidr } => {
            let name = format!("{cl}-vpc");
            let out = error::retrying_create("CreateVpc", || {
                ec2.create_vpc()
                    .cidr_block(cidr)
                    .tag_specifications(spec(ResourceType::Vpc, d, &name, "common"))
                    .customize()
                    .config_override(once())
                    .send()
            })
            .await?;
            tracing::info!(cluster = %cl, vpc = ?out.vpc().and_then(|v| v.vpc_id()), "created the VPC");
            Ok(())
        }
        Action::EnableDnsHostnames { vpc } => error::retrying("ModifyVpcAttribute", || {
            ec2.modify_vpc_attribute()
                .vpc_id(vpc)
                .enable_dns_hostnames(AttributeBooleanValue::builder().value(true).build())
                .send()
        })
        .await
        .map(drop),
        Action::CreateSubnet(s) => {
            let role = if s.public { "public" } else { "private" };
            let mut ts = spec(ResourceType::Subnet, d, &s.name, role);
            let elb_role = if s.public {
                "kubernetes.io/role/elb"
            } else {
                "kubernetes.io/role/internal-elb"
            };
            ts = TagSpecification::builder()
                .resource_type(ResourceType::Subnet)
                .set_tags(Some(
                    ts.tags()
                        .iter()
                        .cloned()
                        .chain([Tag::builder().key(elb_role).value("1").build()])
                        .collect(),
                ))
                .build();
            let vpc = in_vpc()?;
            match error::retrying_create("CreateSubnet", || {
                ec2.create_subnet()
                    .vpc_id(&vpc)
                    .cidr_block(&s.cidr)
                    .availability_zone(&s.az)
                    .tag_specifications(ts.clone())
                    .customize()
                    .config_override(once())
                    .send()
            })
            .await
            {
                // The CIDR is taken: an earlier attempt made it (found by CIDR next pass).
                Err(e) if e.code() == Some("InvalidSubnet.Conflict") => Ok(()),
                other => other.map(drop).map_err(ProviderError::from),
            }
        }
        Action::MapPublicIp { subnet } => error::retrying("ModifySubnetAttribute", || {
            ec2.modify_subnet_attribute()
                .subnet_id(subnet)
                .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
                .send()
        })
        .await
        .map(drop),
        Action::CreateIgw => error::retrying_create("CreateInternetGateway", || {
            ec2.create_internet_gateway()
                .tag_specifications(spec(
                    ResourceType::InternetGateway,
                    d,
                    &format!("{cl}-igw"),
                    "common",
                ))
                .customize()
                .config_override(once())
                .send()
        })
        .await
        .map(drop)
        .map_err(ProviderError::from),
        Action::AttachIgw { igw, vpc } => error::retrying("AttachInternetGateway", || {
            ec2.attach_internet_gateway()
                .internet_gateway_id(igw)
                .vpc_id(vpc)
                .send()
        })
        .await
        .map(drop),
        Action::AllocateEip { name } => error::retrying_create("AllocateAddress", || {
            ec2.allocate_address()
                .domain(DomainType::Vpc)
                .tag_specifications(spec(ResourceType::ElasticIp, d, name, "common"))
                .customize()
                .config_override(once())
                .send()
        })
        .await
        .map(drop)
        .map_err(ProviderError::from),
        Action::CreateNat {
            name,
            subnet,
            allocation,
        } => error::retrying("CreateNatGateway", || {
            // With the attempt's token a resend (here, or by the SDK, or after a crash) is
            // answered with the NAT gateway the first call made.
            ec2.create_nat_gateway()
                .subnet_id(subnet)
                .allocation_id(allocation)
                .set_client_token(token.map(String::from))
                .tag_specifications(spec(ResourceType::Natgateway, d, name, "common"))
                .send()
        })
        .await
        .map(drop),
        Action::DisassociateEip { association } => gone(
            error::retrying_coded("DisassociateAddress", || {
                ec2.disassociate_address()
                    .association_id(association)
                    .send()
            })
            .await,
        ),
        Action::CreateRouteTable { name, public } => {
            let vpc = in_vpc()?;
            let role = if *public { "public" } else { "private" };
            error::retrying_create("CreateRouteTable", || {
                ec2.create_route_table()
                    .vpc_id(&vpc)
                    .tag_specifications(spec(ResourceType::RouteTable, d, name, role))
                    .customize()
                    .config_override(once())
                    .send()
            })
            .await
            .map(drop)
            .map_err(ProviderError::from)
        }
        Action::CreateDefaultRoute {
            table,
            target,
            replace: false,
        } => error::retrying("CreateRoute", || {
            let req = ec2
                .create_route()
                .route_table_id(table)
                .destination_cidr_block("0.0.0.0/0");
            if target.starts_with("nat-") {
                req.nat_gateway_id(target).send()
            } else {
                req.gateway_id(target).send()
            }
        })
        .await
        .map(drop),
        Action::CreateDefaultRoute {
            table,
            target,
            replace: true,
        } => error::retrying("ReplaceRoute", || {
            let req = ec2
                .replace_route()
                .route_table_id(table)
                .destination_cidr_block("0.0.0.0/0");
            if target.starts_with("nat-") {
                req.nat_gateway_id(target).send()
            } else {
                req.gateway_id(target).send()
            }
        })
        .await
        .map(drop),
        Action::RegisterTargets { tg, ids } => error::retrying("RegisterTargets", || {
            elb.register_targets()
                .target_group_arn(tg)
                .set_targets(Some(
                    ids.iter()
                        .map(|id| elbt::TargetDescription::builder().id(id).port(6443).build())
                        .collect(),
                ))
                .send()
        })
        .await
        .map(drop),
        Action::Associate { table, subnet } => error::retrying("AssociateRouteTable", || {
            ec2.associate_route_table()
                .route_table_id(table)
                .subnet_id(subnet)
                .send()
        })
        .await
        .map(drop),
        Action::CreateSecurityGroup { role, name } => {
            let vpc = in_vpc()?;
            match error::retrying_create("CreateSecurityGroup", || {
                ec2.create_security_group()
                    .group_name(name)
                    .description(format!("Kubernetes cluster {cl}: {role}"))
                    .vpc_id(&vpc)
                    .tag_specifications(spec(ResourceType::SecurityGroup, d, name, role))
                    .customize()
                    .config_override(once())
                    .send()
            })
            .await
            {
                // The name is taken in the VPC: an earlier attempt made it.
                Err(e) if e.code() == Some("InvalidGroup.Duplicate") => Ok(()),
                other => other.map(drop).map_err(ProviderError::from),
            }
        }
        Action::Authorize { group, rules } => {
            let r = error::retrying_coded("AuthorizeSecurityGroupIngress", || {
                ec2.authorize_security_group_ingress()
                    .group_id(group)
                    .set_ip_permissions(Some(permissions(rules)))
                    .send()
            })
            .await;
            match r {
                Err(e) if e.code() == Some("InvalidPermission.Duplicate") => Ok(()),
                other => other.map(drop).map_err(ProviderError::from),
            }
        }
        Action::CreateLoadBalancer {
            subnets,
            security_groups,
        } => {
            let scheme = if d.lb_scheme == "internal" {
                elbt::LoadBalancerSchemeEnum::Internal
            } else {
                elbt::LoadBalancerSchemeEnum::InternetFacing
            };
            let t = elb_tags(d, &d.lb_name, "apiserver");
            error::retrying("CreateLoadBalancer", || {
                elb.create_load_balancer()
                    .name(&d.lb_name)
                    .r#type(elbt::LoadBalancerTypeEnum::Network)
                    .scheme(scheme.clone())
                    .set_subnets(Some(subnets.clone()))
                    .set_security_groups(Some(security_groups.clone()))
                    .set_tags(Some(t.clone()))
                    .send()
            })
            .await
            .map(drop)
        }
        Action::CreateTargetGroup { vpc } => {
            let t = elb_tags(d, &d.tg_name, "apiserver");
            error::retrying("CreateTargetGroup", || {
                elb.create_target_group()
                    .name(&d.tg_name)
                    .protocol(elbt::ProtocolEnum::Tcp)
                    .port(6443)
                    .vpc_id(vpc)
                    .target_type(elbt::TargetTypeEnum::Instance)
                    .health_check_protocol(elbt::ProtocolEnum::Tcp)
                    .health_check_interval_seconds(10)
                    .health_check_timeout_seconds(10)
                    .healthy_threshold_count(5)
                    .unhealthy_threshold_count(3)
                    .set_tags(Some(t.clone()))
                    .send()
            })
            .await
            .map(drop)
        }
        Action::CreateListener { lb, tg } => {
            let forward = elbt::Action::builder()
                .r#type(elbt::ActionTypeEnum::Forward)
                .target_group_arn(tg)
                .build();
            let t = elb_tags(d, &format!("{}-listener", d.lb_name), "apiserver");
            error::retrying("CreateListener", || {
                elb.create_listener()
                    .load_balancer_arn(lb)
                    .protocol(elbt::ProtocolEnum::Tcp)
                    .port(6443)
                    .default_actions(forward.clone())
                    .set_tags(Some(t.clone()))
                    .send()
            })
            .await
            .map(drop)
        }
        Action::TerminateInstances { ids } => error::retrying("TerminateInstances", || {
            ec2.terminate_instances()
                .set_instance_ids(Some(ids.clone()))
                .send()
        })
        .await
        .map(drop),
        Action::DeleteListener { arn } => gone(
            error::retrying_coded("DeleteListener", || {
                elb.delete_listener().listener_arn(arn).send()
            })
            .await,
        ),
        Action::DeleteTargetGroup { arn } => gone(
            error::retrying_coded("DeleteTargetGroup", || {
                elb.delete_target_group().target_group_arn(arn).send()
            })
            .await,
        ),
        Action::DeleteLoadBalancer { arn } => gone(
            error::retrying_coded("DeleteLoadBalancer", || {
                elb.delete_load_balancer().load_balancer_arn(arn).send()
            })
            .await,
        ),
        Action::RevokeAll { group, rules } => gone(
            error::retrying_coded("RevokeSecurityGroupIngress", || {
                ec2.revoke_security_group_ingress()
                    .group_id(group)
                    .set_ip_permissions(Some(permissions(rules)))
                    .send()
            })
            .await,
        ),
        Action::DeleteSecurityGroup { group } => gone(
            error::retrying_coded("DeleteSecurityGroup", || {
                ec2.delete_security_group().group_id(group).send()
            })
            .await,
        ),
        Action::DeleteNat { id } => gone(
            error::retrying_coded("DeleteNatGateway", || {
                ec2.delete_nat_gateway().nat_gateway_id(id).send()
            })
            .await,
        ),
        Action::ReleaseEip {
            allocation,
            association,
        } => {
            if let Some(assoc) = association {
                // moto keeps a stale association after the NAT gateway is gone; AWS answers
                // NotFound or InvalidAssociationID: either way it is not associated any more.
                let r = ec2
                    .disassociate_address()
                    .association_id(assoc)
                    .send()
                    .await;
                if let Err(e) = r
                    && !error::is_not_found(&e)
                    && error::code(&e) != Some("InvalidAssociationID.NotFound")
                {
                    tracing::debug!(error = %aws_smithy_types::error::display::DisplayErrorContext(&e), "DisassociateAddress");
                }
            }
            gone(
                error::retrying_coded("ReleaseAddress", || {
                    ec2.release_address().allocation_id(allocation).send()
                })
                .await,
            )
        }
        Action::DeleteIgw { id, vpcs } => {
            for vpc in vpcs {
                gone(
                    error::retrying_coded("DetachInternetGateway", || {
                        ec2.detach_internet_gateway()
                            .internet_gateway_id(id)
                            .vpc_id(vpc)
                            .send()
                    })
                    .await,
                )?;
            }
            gone(
                error::retrying_coded("DeleteInternetGateway", || {
                    ec2.delete_internet_gateway().internet_gateway_id(id).send()
                })
                .await,
            )
        }
        Action::DeleteRouteTable { id, associations } => {
            for assoc in associations {
                gone(
                    error::retrying_coded("DisassociateRouteTable", || {
                        ec2.disassociate_route_table().association_id(assoc).send()
                    })
                    .await,
                )?;
            }
            gone(
                error::retrying_coded("DeleteRouteTable", || {
                    ec2.delete_route_table().route_table_id(id).send()
                })
                .await,
            )
        }
        Action::DeleteSubnet { id } => gone(
            error::retrying_coded("DeleteSubnet", || ec2.delete_subnet().subnet_id(id).send())
                .await,
        ),
        Action::DeleteVpc { id } => {
            gone(error::retrying_coded("DeleteVpc", || ec2.delete_vpc().vpc_id(id).send()).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_not_found_code_counts_as_gone() {
        let err = |code: Option<&str>, msg: &str| {
            Err::<(), _>(AwsError::with_code(code, ProviderError::transient(msg)))
        };
        assert!(gone(Ok::<_, AwsError>(())).is_ok());
        assert!(gone(err(Some("InvalidVpcID.NotFound"), "DeleteVpc: gone")).is_ok());
        assert!(gone(err(Some("TargetGroupNotFound"), "DeleteTargetGroup: gone")).is_ok());
        let e = gone(err(
            Some("DependencyViolation"),
            "DeleteVpc: DependencyViolation: NotFound in the message only",
        ))
        .unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(gone(err(None, "DeleteVpc: dispatch failure: NotFound")).is_err());
    }
}
