//! Operations beside the controllers: clusterctl-style commands ([`clusterctl`]), the
//! benchmark ([`bench`], counting requests with [`requests`]), leader election ([`leader`]), the metrics and health endpoint
//! ([`endpoint`]) and the process around the manager ([`process`]). None of it reconciles.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bench;
mod bench_plane;
pub mod clusterctl;
pub mod endpoint;
mod error;
pub mod fds;
pub mod leader;
pub mod mover;
pub mod process;
pub mod requests;
pub mod webhook;

pub use error::OpsError;
