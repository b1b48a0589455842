//! What every slipway reconciler shares, core and provider alike: the [`Context`] with its
//! injectable [`Clock`], the typed [`Error`] with [`Error::is_transient`], conditions
//! ([`conditions`]), contract references ([`refs`]), object helpers ([`objects`]), clients of
//! workload clusters ([`remote`]), the one reconcile skeleton ([`reconcile`]) and the runner
//! that turns a reconcile function into a watched controller ([`runner`]).
//!
//! Nothing here knows a provider or a core kind's reconciler: providers and the controller
//! crate both build on it, so the dependency arrows point one way
//! (`api` <- `runtime` <- `providers/*` <- `controller` <- binary).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod conditions;
mod error;
pub mod events;
pub mod hold;
pub mod merge;
pub mod metrics;
pub mod objects;
pub mod reconcile;
pub mod refs;
pub mod remote;
pub mod runner;
pub mod stale;

use std::sync::Arc;

pub use error::Error;
use jiff::Timestamp;
use kube::Client;

/// The time source of reconcilers: the system clock in production, a fixed or stepped clock
/// in tests, so conditions and renewal deadlines compare exactly.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(Timestamp::now)
}

/// What every reconciler shares.
pub struct Context {
    /// Client of the management cluster.
    pub client: Client,
    /// Resolver of contract references.
    pub resolver: refs::Resolver,
    /// The clock (injected so tests compare exact times).
    pub clock: Clock,
    /// Clients of workload clusters.
    pub remote: remote::Remote,
    /// Events on the management cluster.
    pub events: events::Recorder,
}

impl Context {
    /// A context with the system clock.
    pub fn new(client: Client) -> Self {
        Self::with_clock(client, system_clock())
    }

    /// A context with the given clock.
    pub fn with_clock(client: Client, clock: Clock) -> Self {
        Self {
            resolver: refs::Resolver::new(client.clone()),
            events: events::Recorder::new(client.clone(), "slipway-controller"),
            client,
            clock,
            remote: remote::Remote::default(),
        }
    }

    /// The current time by this context's clock.
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }
}
