//! SDK clients per region, built from the standard AWS chain (environment, profiles, instance
//! roles; `AWS_ENDPOINT_URL` and the per-service `AWS_ENDPOINT_URL_*` variables are honoured by
//! aws-config itself, so moto needs no code path of its own), one TLS stack (rustls + ring),
//! and a counter of every API call by operation.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_runtime_api::{
    box_error::BoxError,
    client::{
        interceptors::{Intercept, context::BeforeSerializationInterceptorContextRef},
        orchestrator::Metadata,
        runtime_components::RuntimeComponents,
    },
};
use aws_smithy_types::config_bag::ConfigBag;

use crate::ProviderError;

/// Counts API calls by `service:Operation`.
#[derive(Clone, Debug, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl CallCounter {
    /// The counts so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().expect("counter lock").clone()
    }

    /// Forgets the counts.
    pub fn reset(&self) {
        self.0.lock().expect("counter lock").clear();
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "slipway-call-counter"
    }

    // The operation's metadata is in the bag from serialization on (not yet before execution).
    fn read_before_serialization(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            *self
                .0
                .lock()
                .expect("counter lock")
                .entry(format!("{}:{}", m.service(), m.name()))
                .or_default() += 1;
        }
        Ok(())
    }
}

/// The clients of one region.
#[derive(Clone, Debug)]
pub struct Clients {
    /// EC2.
    pub ec2: aws_sdk_ec2::Client,
    /// Elastic Load Balancing v2.
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    /// EKS.
    pub eks: aws_sdk_eks::Client,
    /// Auto Scaling (AWSMachinePools).
    pub asg: aws_sdk_autoscaling::Client,
    /// STS (the account id, for role ARNs).
    pub sts: aws_sdk_sts::Client,
    /// Where credentials come from (EKS tokens are signed with them).
    pub credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    /// The region.
    pub region: String,
}

/// Explicit settings over the standard chain (all `None` in the controller, which relies on
/// the chain alone; tests and tools set them).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Endpoint of every service.
    pub endpoint_url: Option<String>,
    /// Region when the AWSCluster names none.
    pub region: Option<String>,
    /// Static access key id and secret.
    pub credentials: Option<(String, String)>,
}

/// Builds and caches [`Clients`] per region.
#[derive(Debug, Default)]
pub struct ClientCache {
    clients: Mutex<HashMap<String, Clients>>,
    counter: CallCounter,
    settings: Settings,
}

impl ClientCache {
    /// A cache whose clients use `settings` over the chain.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            ..Default::default()
        }
    }

    /// The call counter shared by every client.
    pub fn counter(&self) -> &CallCounter {
        &self.counter
    }

    /// Clients of `region` (the chain's region when `None`), with credentials checked: a
    /// missing region or credentials is `Unavailable`, naming what to set.
    pub async fn get(&self, region: Option<&str>) -> Result<Clients, ProviderError> {
        // Keyed by the region asked for ("" for the chain's), so each reconcile reuses them.
        let key = region.unwrap_or_default().to_string();
        if let Some(c) = self.clients.lock().expect("clients lock").get(&key) {
            return Ok(c.clone());
        }
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
        if let Some(r) = region.or(self.settings.region.as_deref()) {
            loader = loader.region(Region::new(r.to_string()));
        }
        if let Some(url) = &self.settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some((id, secret)) = &self.settings.credentials {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                id,
                secret,
                None,
                None,
                "slipway-settings",
            ));
        }
        let conf = loader.load().await;
        let region = conf.region().map(|r| r.to_string()).ok_or_else(|| {
            ProviderError::unavailable(
                "the AWS region",
                "none is configured: set spec.region on the AWSCluster, or AWS_REGION (or a \
                 profile's region) for the controller",
            )
        })?;
        check_credentials(&conf).await?;
        let ec2 = aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&conf)
                .interceptor(self.counter.clone())
                .build(),
        );
        let elb = aws_sdk_elasticloadbalancingv2::Client::from_conf(
            aws_sdk_elasticloadbalancingv2::config::Builder::from(&conf)
                .interceptor(self.counter.clone())
                .build(),
        );
        let eks = aws_sdk_eks::Client::from_conf(
            aws_sdk_eks::config::Builder::from(&conf)
                .interceptor(self.counter.clone())
                .build(),
        );
        let asg = aws_sdk_autoscaling::Client::from_conf(
            aws_sdk_autoscaling::config::Builder::from(&conf)
                .interceptor(self.counter.clone())
                .build(),
        );
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&conf)
                .interceptor(self.counter.clone())
                .build(),
        );
        let c = Clients {
            ec2,
            elb,
            eks,
            asg,
            sts,
            credentials: conf.credentials_provider(),
            region,
        };
        self.clients
            .lock()
            .expect("clients lock")
            .insert(key, c.clone());
        Ok(c)
    }
}

async fn check_credentials(conf: &SdkConfig) -> Result<(), ProviderError> {
    let Some(provider) = conf.credentials_provider() else {
        return Err(missing_credentials("no credentials provider is configured"));
    };
    provider
        .provide_credentials()
        .await
        .map(|_| ())
        .map_err(|e| {
            missing_credentials(
                &aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            )
        })
}

fn missing_credentials(why: &str) -> ProviderError {
    ProviderError::unavailable(
        "AWS credentials",
        format!(
            "{why}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an \
             instance role"
        ),
    )
}
