//! End-to-end tests live in `tests/`: kube-rs clients (watcher, reflector) against an embedded
//! management plane. kubectl-driven tests of `slipway up` live beside the binary, in the root
//! package's `tests/`.
#![forbid(unsafe_code)]
