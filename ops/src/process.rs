//! The process around the manager: the rate-limited client of the management cluster, the
//! operations endpoint, leader election (standing by until elected; an error when leadership
//! is lost, so the process exits and restarts clean) and graceful shutdown.

use std::time::Duration;

use kube::Client;
use slipway_controller::manager::{self, Options};
use slipway_providers::Plugins;

use crate::{OpsError, endpoint, leader};

/// How the process around the manager behaves.
#[derive(Clone, Debug, Default)]
pub struct Process {
    /// Where to serve /metrics, /healthz and /readyz (`None`: not served).
    pub metrics_address: Option<std::net::SocketAddr>,
    /// Leader election (`None`: this process always reconciles).
    pub leader: Option<leader::Config>,
}

/// A client of the management cluster whose requests are rate-limited to `qps` on average,
/// with bursts of up to `burst` (`qps` 0 turns the limit off).
pub fn client(config: kube::Config, qps: f64, burst: u32) -> Result<Client, kube::Error> {
    let builder = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&slipway_runtime::metrics::RestLayer);
    if qps <= 0.0 {
        return Ok(builder.build());
    }
    let burst = burst.max(1);
    let per = Duration::from_secs_f64(f64::from(burst) / qps);
    Ok(builder
        .with_layer(&tower::limit::RateLimitLayer::new(u64::from(burst), per))
        .build())
}

/// Runs the manager inside the process concerns: `shutdown` resolving stops the controllers
/// and releases the Lease.
pub async fn run(
    client: Client,
    opts: Options,
    plugins: Plugins,
    process: Process,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), OpsError> {
    let ready = endpoint::Readiness::default();
    let ops = match process.metrics_address {
        Some(addr) => Some(endpoint::serve(addr, ready.clone()).await?),
        None => None,
    };
    ready.set();
    let result = {
        let work = async {
            if let Some(cfg) = &process.leader {
                leader::acquire(&client, cfg).await;
                tokio::select! {
                    _ = manager::run(client.clone(), opts, plugins) => Ok(()),
                    why = leader::keep(&client, cfg) => Err(OpsError::LostLeadership(why.to_string())),
                }
            } else {
                manager::run(client.clone(), opts, plugins).await;
                Ok(())
            }
        };
        tokio::select! {
            r = work => r,
            _ = shutdown => Ok(()),
        }
    };
    if let Some(cfg) = &process.leader {
        leader::release(&client, cfg).await;
    }
    if let Some(ops) = ops {
        ops.abort();
    }
    result
}
