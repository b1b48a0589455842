//! A real `moto_server` on 127.0.0.1 and SDK clients against it, and an inventory of what is
//! tagged for a cluster. Used by slipway-aws's tests and the end-to-end tests of the binary.
//! This crate does not depend on slipway-aws (which dev-depends on it): callers build the
//! provider's `Settings` from [`Moto::url`] and [`REGION`] / [`CREDENTIALS`], and pass the
//! provider's owner tag key (`slipway_aws::network::model::owner_tag`).

use std::{
    collections::BTreeMap,
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use aws_sdk_ec2::types::{Filter, InstanceAttributeName};
use base64::Engine;

/// The region every client of the server uses.
pub const REGION: &str = "us-east-1";
/// The access key id and secret moto accepts.
pub const CREDENTIALS: (&str, &str) = ("testing", "testing");

/// A moto server, killed on drop.
pub struct Moto {
    child: Child,
    log: std::path::PathBuf,
    /// Its endpoint, `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("SLIPWAY_KEEP_MOTO_LOG").is_none() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Starts a fresh moto server with extra environment, or returns `None` with the reason
/// printed where `moto_server` is not installed (a failure when `SLIPWAY_REQUIRE_MOTO` is set,
/// as `.ci/run` does).
pub fn moto(env: &[(&str, &str)]) -> Option<Moto> {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port();
    let mut cmd = Command::new("moto_server");
    // Its request log goes to a temp file (kept with SLIPWAY_KEEP_MOTO_LOG set, to debug).
    let log = std::env::temp_dir().join(format!("slipway-moto-{port}.log"));
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).map_or_else(|_| Stdio::null(), Stdio::from));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("SLIPWAY_REQUIRE_MOTO").is_none(),
                "moto_server must be installed (pip install 'moto[server]'): {e}"
            );
            println!("skipped: moto_server is not on PATH ({e}); pip install 'moto[server]'");
            return None;
        }
    };
    let m = Moto {
        child,
        log,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(m)
}

impl Moto {
    /// The environment a process needs to reach this server through the standard chain.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url.clone()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", CREDENTIALS.0.into()),
            ("AWS_SECRET_ACCESS_KEY", CREDENTIALS.1.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// SDK configuration for this server.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_credential_types::Credentials::new(
                CREDENTIALS.0,
                CREDENTIALS.1,
                None,
                None,
                "test",
            ))
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
            .load()
            .await
    }

    /// An EC2 client.
    pub async fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk_config().await)
    }

    /// An ELBv2 client.
    pub async fn elb(&self) -> aws_sdk_elasticloadbalancingv2::Client {
        aws_sdk_elasticloadbalancingv2::Client::new(&self.sdk_config().await)
    }

    /// EKS clusters, with their status and tags.
    pub async fn eks_clusters(&self) -> Vec<(String, String, BTreeMap<String, String>)> {
        let eks = aws_sdk_eks::Client::new(&self.sdk_config().await);
        let names = eks
            .list_clusters()
            .send()
            .await
            .unwrap()
            .clusters()
            .to_vec();
        let mut out = Vec::new();
        for n in names {
            let c = eks.describe_cluster().name(&n).send().await.unwrap();
            let c = c.cluster().unwrap();
            out.push((
                n,
                c.status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                c.tags().cloned().unwrap_or_default().into_iter().collect(),
            ));
        }
        out
    }

    /// Node groups of an EKS cluster, with their status and desired size.
    pub async fn eks_nodegroups(&self, cluster: &str) -> Vec<(String, String, Option<i32>)> {
        let eks = aws_sdk_eks::Client::new(&self.sdk_config().await);
        let names = match eks.list_nodegroups().cluster_name(cluster).send().await {
            Ok(o) => o.nodegroups().to_vec(),
            Err(_) => return vec![],
        };
        let mut out = Vec::new();
        for n in names {
            let g = eks
                .describe_nodegroup()
                .cluster_name(cluster)
                .nodegroup_name(&n)
                .send()
                .await
                .unwrap();
            let g = g.nodegroup().unwrap();
            out.push((
                n,
                g.status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                g.scaling_config().and_then(|s| s.desired_size()),
            ));
        }
        out
    }

    /// Counts of what is tagged `owner_tag: owned` (the provider's owner tag key of a cluster;
    /// NAT gateways not deleted, instances not terminated), plus all load balancers and target
    /// groups.
    pub async fn inventory(&self, owner_tag: &str) -> BTreeMap<&'static str, usize> {
        let c = self.ec2().await;
        let owned = || {
            Filter::builder()
                .name(format!("tag:{owner_tag}"))
                .values("owned")
                .build()
        };
        let mut out = BTreeMap::new();
        let n = |v: usize| v;
        out.insert(
            "vpcs",
            n(c.describe_vpcs()
                .filters(owned())
                .send()
                .await
                .unwrap()
                .vpcs()
                .len()),
        );
        out.insert(
            "subnets",
            c.describe_subnets()
                .filters(owned())
                .send()
                .await
                .unwrap()
                .subnets()
                .len(),
        );
        out.insert(
            "internet_gateways",
            c.describe_internet_gateways()
                .filters(owned())
                .send()
                .await
                .unwrap()
                .internet_gateways()
                .len(),
        );
        out.insert(
            "nat_gateways",
            c.describe_nat_gateways()
                .filter(owned())
                .send()
                .await
                .unwrap()
                .nat_gateways()
                .iter()
                .filter(|g| g.state().is_some_and(|s| s.as_str() != "deleted"))
                .count(),
        );
        out.insert(
            "elastic_ips",
            c.describe_addresses()
                .filters(owned())
                .send()
                .await
                .unwrap()
                .addresses()
                .len(),
        );
        out.insert(
            "route_tables",
            c.describe_route_tables()
                .filters(owned())
                .send()
                .await
                .unwrap()
                .route_tables()
                .len(),
        );
        out.insert(
            "security_groups",
            c.describe_security_groups()
                .filters(owned())
                .send()
                .await
                .unwrap()
                .security_groups()
                .len(),
        );
        out.insert("instances", self.instances(owner_tag).await.len());
        let elb = self.elb().await;
        out.insert(
            "load_balancers",
            elb.describe_load_balancers()
                .send()
                .await
                .unwrap()
                .load_balancers()
                .len(),
        );
        out.insert(
            "target_groups",
            elb.describe_target_groups()
                .send()
                .await
                .unwrap()
                .target_groups()
                .len(),
        );
        out
    }

    /// Ids of the instances tagged `owner_tag: owned` that are not terminated, with their
    /// `Name` tag.
    pub async fn instances(&self, owner_tag: &str) -> Vec<(String, String)> {
        let c = self.ec2().await;
        c.describe_instances()
            .filters(
                Filter::builder()
                    .name(format!("tag:{owner_tag}"))
                    .values("owned")
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| {
                i.state()
                    .and_then(|s| s.name())
                    .is_some_and(|n| n.as_str() != "terminated")
            })
            .map(|i| {
                let name = i
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some("Name"))
                    .and_then(|t| t.value())
                    .unwrap_or_default();
                (
                    i.instance_id().unwrap_or_default().to_string(),
                    name.to_string(),
                )
            })
            .collect()
    }

    /// The user data of an instance, decoded.
    pub async fn user_data(&self, instance: &str) -> Vec<u8> {
        let out = self
            .ec2()
            .await
            .describe_instance_attribute()
            .instance_id(instance)
            .attribute(InstanceAttributeName::UserData)
            .send()
            .await
            .unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(out.user_data().and_then(|u| u.value()).unwrap_or_default())
            .unwrap()
    }
}
