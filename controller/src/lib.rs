//! slipway's controllers, and the generator of cluster manifests (`slipway generate cluster`).
//!
//! The reconcilers arrive with the provisioning issue; today the crate owns the templates.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod generate;
