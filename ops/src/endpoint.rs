//! The operations endpoint: `/metrics` (Prometheus text, [`slipway_runtime::metrics`]), `/healthz`
//! (the process serves) and `/readyz` (the manager has started: leading, or standing by as a
//! replica ready to take over).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::OpsError;
use axum::{Router, extract::State, http::StatusCode, routing::get};

/// Readiness shared with the manager.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the process ready.
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Binds `addr` and serves until the task is aborted. Binding fails with a message naming
/// the address, so a port in use is a clear startup error.
pub async fn serve(
    addr: SocketAddr,
    ready: Readiness,
) -> Result<tokio::task::JoinHandle<()>, OpsError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| OpsError::Bind {
            flag: "--metrics-address",
            addr,
            source,
        })?;
    let app = Router::new()
        .route(
            "/metrics",
            get(|| async { slipway_runtime::metrics::render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(r): State<Readiness>| async move {
                if r.0.load(Ordering::SeqCst) {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        )
        .with_state(ready);
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }))
}
