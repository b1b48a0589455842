//! slipway's embedded Kubernetes-compatible API server.
//!
//! Today this crate holds the piece every other part needs first: [`schema`], validation of
//! custom objects against CRD schemas exactly as kube-apiserver admits them. The HTTP server,
//! storage and watch come with the management-plane issue.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod schema;
