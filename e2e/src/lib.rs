//! End-to-end tests, all under `e2e/`:
//!
//! - `tests/kube_client.rs` (this package): kube-rs clients (watcher, reflector) against an
//!   embedded management plane;
//! - `tests/{aws,cli,clusterctl,kind,operability,provisioning,registry,up}.rs`: the `slipway`
//!   binary as a user runs it, driven by kubectl. They are test targets of the root package,
//!   the only one cargo builds the binary for (`CARGO_BIN_EXE_slipway`); `tests/fixtures/`
//!   holds their fake `kind` and `docker`;
//! - `benches/apiserver.rs`: the embedded API server benchmark;
//! - `support/` (crate `slipway-testsupport`): the helpers every test tree shares.
#![forbid(unsafe_code)]
