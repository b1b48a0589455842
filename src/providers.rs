//! The infrastructure providers this binary carries. A new provider is a crate under
//! `providers/` implementing `slipway_providers::Plugin`, plus one line here.

use slipway_providers::Plugins;

/// Every provider, in the order `generate cluster --help` and the registry list them.
pub fn plugins() -> Plugins {
    Plugins::default()
        .with(slipway_aws::plugin())
        .with(slipway_kind::plugin())
        .with(slipway_inmemory::plugin())
}

/// Every CRD the binary serves: core kinds, then each provider's.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    let mut crds = slipway_api::crds::core();
    crds.extend(plugins().crds());
    crds
}
