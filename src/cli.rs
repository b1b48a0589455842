//! Command-line interface: parses arguments and dispatches to the crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "slipway",
    version,
    about = "Cluster-API-style cluster lifecycle provisioner"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every CustomResourceDefinition slipway serves, as multi-document YAML.
    Crds,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => {
            print!("{}", slipway_api::crds::all_yaml());
            ExitCode::SUCCESS
        }
    }
}
