//! slipway: the binary. CLI wiring only; the work lives in the workspace crates.
#![forbid(unsafe_code)]

mod cli;
mod clusterctl;

fn main() -> std::process::ExitCode {
    cli::run()
}
