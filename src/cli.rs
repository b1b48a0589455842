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
    Crds {
        /// Write one file per CRD into this directory instead (as committed under config/crd/).
        #[arg(long, value_name = "DIR")]
        output_dir: Option<std::path::PathBuf>,
    },
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { output_dir: None } => {
            print!("{}", slipway_api::crds::all_yaml());
            ExitCode::SUCCESS
        }
        Command::Crds {
            output_dir: Some(dir),
        } => match slipway_api::crds::write_dir(&dir) {
            Ok(n) => {
                eprintln!("wrote {n} CRDs to {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: writing CRDs to {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        },
    }
}
