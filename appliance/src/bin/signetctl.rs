//! signetctl: the Signet operator CLI.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use signet::cli;

/// Operate a Signet signing appliance.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Key ceremony: make the keys in the token and the dev PKI.
    Init(cli::init::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Init(args) => cli::init::exec(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signetctl: {e}");
            ExitCode::FAILURE
        }
    }
}
