//! slipway's embedded Kubernetes-compatible API server.
//!
//! Served to the real `kubectl` and kube-rs unmodified: HTTPS with bearer-token and client-
//! certificate auth, discovery, CRUD with Kubernetes semantics, watch, tables, CRDs with
//! structural-schema validation and CEL rules. Storage is SQLite (or memory for tests).
//! Wherever a client behaves differently against it than against kube-apiserver, that is a bug
//! here.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod authz;
pub mod body;
pub mod catalog;
pub mod conversion;
pub mod conversion_webhook;
pub mod discovery;
pub mod disruption;
pub mod encryption;
pub mod error;
pub mod eviction;
pub mod fields;
pub mod gc;
pub mod listener;
pub mod meta;
pub mod patch;
pub mod plane;
pub mod proto;
pub mod request;
pub mod schema;
pub mod selector;
pub mod server;
pub mod store;
pub mod table;
pub use slipway_pki as tls;
pub mod warnings;
pub mod watch;
