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

use aws_sdk_ec2::types::InstanceAttributeName;
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

    /// An Auto Scaling client.
    pub async fn asg(&self) -> aws_sdk_autoscaling::Client {
        aws_sdk_autoscaling::Client::new(&self.sdk_config().await)
    }

    /// Names of the launch templates and Auto Scaling groups tagged `owner_tag: owned`
    /// (AWSMachinePools), by kind; checked client-side as [`Moto::owned_ids`] does.
    pub async fn pool_ids(
        &self,
        owner_tag: &str,
    ) -> BTreeMap<&'static str, std::collections::BTreeSet<String>> {
        let mut out = BTreeMap::new();
        let lts = self
            .ec2()
            .await
            .describe_launch_templates()
            .send()
            .await
            .unwrap();
        out.insert(
            "launch_templates",
            lts.launch_templates()
                .iter()
                .filter(|t| {
                    t.tags()
                        .iter()
                        .any(|t| t.key() == Some(owner_tag) && t.value() == Some("owned"))
                })
                .filter_map(|t| t.launch_template_name().map(String::from))
                .collect(),
        );
        let groups = self
            .asg()
            .await
            .describe_auto_scaling_groups()
            .send()
            .await
            .unwrap();
        out.insert(
            "auto_scaling_groups",
            groups
                .auto_scaling_groups()
                .iter()
                .filter(|g| {
                    g.tags()
                        .iter()
                        .any(|t| t.key() == Some(owner_tag) && t.value() == Some("owned"))
                })
                .filter_map(|g| g.auto_scaling_group_name().map(String::from))
                .collect(),
        );
        out
    }

    /// Versions of the launch template `name`: number, instance type and decoded user data.
    pub async fn launch_template_versions(&self, name: &str) -> Vec<(i64, String, Vec<u8>)> {
        let out = self
            .ec2()
            .await
            .describe_launch_template_versions()
            .launch_template_name(name)
            .send()
            .await
            .unwrap();
        out.launch_template_versions()
            .iter()
            .map(|v| {
                let d = v.launch_template_data();
                (
                    v.version_number().unwrap_or_default(),
                    d.and_then(|d| d.instance_type())
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default(),
                    base64::engine::general_purpose::STANDARD
                        .decode(d.and_then(|d| d.user_data()).unwrap_or_default())
                        .unwrap(),
                )
            })
            .collect()
    }

    /// The Auto Scaling group `name`: (min, max, desired) and its instances' ids.
    pub async fn group(&self, name: &str) -> Option<((i32, i32, i32), Vec<String>)> {
        let out = self
            .asg()
            .await
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .unwrap();
        out.auto_scaling_groups().first().map(|g| {
            (
                (
                    g.min_size().unwrap_or_default(),
                    g.max_size().unwrap_or_default(),
                    g.desired_capacity().unwrap_or_default(),
                ),
                g.instances()
                    .iter()
                    .filter_map(|i| i.instance_id().map(String::from))
                    .collect(),
            )
        })
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
    /// NAT gateways not deleted, instances not terminated), by [`Moto::owned_ids`].
    pub async fn inventory(&self, owner_tag: &str) -> BTreeMap<&'static str, usize> {
        self.owned_ids(owner_tag)
            .await
            .into_iter()
            .map(|(k, v)| (k, v.len()))
            .collect()
    }

    /// Ids of everything tagged `owner_tag: owned`, by kind. Every object is listed unfiltered
    /// and its tags checked here, client-side: moto ignores tag filters on some calls
    /// (DescribeNatGateways returns every NAT gateway whatever the filter), so a count by a
    /// server-side filter could not tell one cluster's resources from another's.
    pub async fn owned_ids(
        &self,
        owner_tag: &str,
    ) -> BTreeMap<&'static str, std::collections::BTreeSet<String>> {
        fn owned(tags: &[aws_sdk_ec2::types::Tag], key: &str) -> bool {
            tags.iter()
                .any(|t| t.key() == Some(key) && t.value() == Some("owned"))
        }
        let c = self.ec2().await;
        let mut out: BTreeMap<&'static str, std::collections::BTreeSet<String>> = BTreeMap::new();
        let mut put = |k: &'static str, ids: Vec<String>| {
            out.insert(k, ids.into_iter().collect());
        };
        let vpcs = c.describe_vpcs().send().await.unwrap();
        put(
            "vpcs",
            vpcs.vpcs()
                .iter()
                .filter(|v| owned(v.tags(), owner_tag))
                .filter_map(|v| v.vpc_id().map(String::from))
                .collect(),
        );
        let subnets = c.describe_subnets().send().await.unwrap();
        put(
            "subnets",
            subnets
                .subnets()
                .iter()
                .filter(|v| owned(v.tags(), owner_tag))
                .filter_map(|v| v.subnet_id().map(String::from))
                .collect(),
        );
        let igws = c.describe_internet_gateways().send().await.unwrap();
        put(
            "internet_gateways",
            igws.internet_gateways()
                .iter()
                .filter(|v| owned(v.tags(), owner_tag))
                .filter_map(|v| v.internet_gateway_id().map(String::from))
                .collect(),
        );
        let nats = c.describe_nat_gateways().send().await.unwrap();
        put(
            "nat_gateways",
            nats.nat_gateways()
                .iter()
                .filter(|v| owned(v.tags(), owner_tag))
                .filter(|g| g.state().is_some_and(|s| s.as_str() != "deleted"))
                .filter_map(|v| v.nat_gateway_id().map(String::from))
                .collect(),
        );
        let eips = c.describe_addresses().send().await.unwrap();
        put(
            "elastic_ips",
            eips.addresses()
                .iter()
                .filter(|v| owned(v.tags(), owner_tag))
                .filter_map(|v| v.allocation_id().map(String::from))
                .collect(),
        );
        let rts = c.describe_route_tables().send().await.unwrap();
        put(
            "route_tables",
            rts.route_tables()
                .iter()
                .filter(|v| owned(v.tags(), owner_tag))
                .filter_map(|v| v.route_table_id().map(String::from))
                .collect(),
        );
        let sgs = c.describe_security_groups().send().await.unwrap();
        put(
            "security_groups",
            sgs.security_groups()
                .iter()
                .filter(|v| owned(v.tags(), owner_tag))
                .filter_map(|v| v.group_id().map(String::from))
                .collect(),
        );
        put(
            "instances",
            self.instances(owner_tag)
                .await
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
        );
        let elb = self.elb().await;
        let lbs: Vec<String> = elb
            .describe_load_balancers()
            .send()
            .await
            .unwrap()
            .load_balancers()
            .iter()
            .filter_map(|l| l.load_balancer_arn().map(String::from))
            .collect();
        let tgs: Vec<String> = elb
            .describe_target_groups()
            .send()
            .await
            .unwrap()
            .target_groups()
            .iter()
            .filter_map(|l| l.target_group_arn().map(String::from))
            .collect();
        let mut owned_arns = std::collections::BTreeSet::new();
        for chunk in lbs
            .iter()
            .chain(&tgs)
            .cloned()
            .collect::<Vec<_>>()
            .chunks(20)
        {
            let t = elb
                .describe_tags()
                .set_resource_arns(Some(chunk.to_vec()))
                .send()
                .await
                .unwrap();
            for d in t.tag_descriptions() {
                if d.tags()
                    .iter()
                    .any(|t| t.key() == Some(owner_tag) && t.value() == Some("owned"))
                {
                    owned_arns.extend(d.resource_arn().map(String::from));
                }
            }
        }
        put(
            "load_balancers",
            lbs.into_iter().filter(|a| owned_arns.contains(a)).collect(),
        );
        put(
            "target_groups",
            tgs.into_iter().filter(|a| owned_arns.contains(a)).collect(),
        );
        out
    }

    /// Ids of the instances tagged `owner_tag: owned` that are not terminated, with their
    /// `Name` tag.
    pub async fn instances(&self, owner_tag: &str) -> Vec<(String, String)> {
        let c = self.ec2().await;
        c.describe_instances()
            .send()
            .await
            .unwrap()
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| {
                i.tags()
                    .iter()
                    .any(|t| t.key() == Some(owner_tag) && t.value() == Some("owned"))
            })
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

/// The instance profiles CAPA's templates name (`iamInstanceProfile`), which
/// `clusterawsadm bootstrap iam` creates in an account: moto refuses `RunInstances` naming a
/// profile it does not have.
pub const CAPA_INSTANCE_PROFILES: &[&str] = &[
    "control-plane.cluster-api-provider-aws.sigs.k8s.io",
    "nodes.cluster-api-provider-aws.sigs.k8s.io",
    "controllers.cluster-api-provider-aws.sigs.k8s.io",
];

const EC2_TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

impl Moto {
    /// Creates [`CAPA_INSTANCE_PROFILES`] as `clusterawsadm bootstrap iam` would: for each, a
    /// role EC2 may assume and an instance profile of the same name holding it.
    pub fn create_capa_instance_profiles(&self) {
        for name in CAPA_INSTANCE_PROFILES {
            self.iam(&[
                ("Action", "CreateRole"),
                ("RoleName", name),
                ("AssumeRolePolicyDocument", EC2_TRUST_POLICY),
            ]);
            self.iam(&[
                ("Action", "CreateInstanceProfile"),
                ("InstanceProfileName", name),
            ]);
            self.iam(&[
                ("Action", "AddRoleToInstanceProfile"),
                ("InstanceProfileName", name),
                ("RoleName", name),
            ]);
        }
    }

    /// One IAM Query API call (a SigV4-signed form POST, as the SDK sends it); panics with
    /// moto's answer unless it is a 200. Returns the response body.
    pub fn iam(&self, params: &[(&str, &str)]) -> String {
        use std::io::{Read, Write};

        let mut all = params.to_vec();
        all.push(("Version", "2010-05-08"));
        let body = all
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let host = self.url.trim_start_matches("http://").to_string();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let auth = sign_iam(&format!("{}/", self.url), &host, content_type, &body);
        let mut req = format!(
            "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in auth {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        let mut stream = std::net::TcpStream::connect(&host).expect("moto is listening");
        stream
            .write_all(req.as_bytes())
            .expect("request sent to moto");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .expect("moto answers the request");
        let status = answer.split_whitespace().nth(1).unwrap_or_default();
        assert_eq!(status, "200", "IAM {params:?} failed at moto: {answer}");
        answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }
}

/// `application/x-www-form-urlencoded` of one key or value (unreserved characters kept).
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The headers signing an IAM POST of `body` to `url` with [`CREDENTIALS`] (IAM signs in
/// us-east-1).
fn sign_iam(url: &str, host: &str, content_type: &str, body: &str) -> Vec<(String, String)> {
    use aws_sigv4::{
        http_request::{SignableBody, SignableRequest, SigningSettings, sign},
        sign::v4,
    };
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(CREDENTIALS.0, CREDENTIALS.1, None, None, "test")
            .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("iam")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing parameters")
        .into();
    let headers = [("host", host), ("content-type", content_type)];
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .expect("a signable request");
    let (instructions, _) = sign(signable, &params)
        .expect("the request signs")
        .into_parts();
    instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
