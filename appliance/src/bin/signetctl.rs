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
    /// Certificates: list, show, revoke, unhold, issue, import (from an outside CA).
    Cert(cli::cert::Args),
    /// A certificate request (PKCS#10) for a key in the token, for an outside CA.
    Csr(cli::csr::Args),
    /// Keys in the token: list, show, generate.
    Key(cli::key::Args),
    /// PDF documents: sign through the API.
    Pdf(Box<cli::pdf::Args>),
    /// The config: check, seal to the TPM, unseal, reseal.
    #[command(subcommand)]
    Config(cli::config::Command),
    /// The audit log: tail, verify, export.
    Audit(cli::audit::Args),
    /// What the running appliance is doing.
    Status(cli::status::Args),
    /// CRLs: publish.
    Crl(cli::crl::Args),
    /// API clients: list, add, remove.
    Client(cli::client::Args),
    /// Re-read the client policy in the running daemon.
    Reload(cli::reload::Args),
    /// The HSM itself.
    #[command(subcommand)]
    Hsm(HsmCommand),
    /// Write the man pages and shell completions to DIR (packaging).
    #[command(hide = true)]
    GenerateDocs {
        /// Where `man/` and `completions/` go.
        dir: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum HsmCommand {
    /// Measure the raw signing rate of a key (the ceiling for every protocol).
    Bench(cli::hsm_bench::Args),
}

fn main() -> ExitCode {
    // Nothing Signet writes (keys, database, logs) is for other users.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let result = match Cli::parse().command {
        Command::Init(args) => cli::init::exec(args),
        Command::Cert(args) => cli::cert::exec(args),
        Command::Csr(args) => cli::csr::exec(args),
        Command::Key(args) => cli::key::exec(args),
        Command::Pdf(args) => cli::pdf::exec(*args),
        Command::Config(command) => cli::config::exec(command),
        Command::Audit(args) => cli::audit::exec(args),
        Command::Status(args) => cli::status::exec(args),
        Command::Crl(args) => cli::crl::exec(args),
        Command::Client(args) => cli::client::exec(args),
        Command::Reload(args) => cli::reload::exec(args),
        Command::Hsm(HsmCommand::Bench(args)) => cli::hsm_bench::exec(args),
        Command::GenerateDocs { dir } => signet::docs::write(
            <Cli as clap::CommandFactory>::command().name("signetctl"),
            &dir,
        )
        .map_err(|e| format!("{}: {e}", dir.display())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signetctl: {e}");
            ExitCode::FAILURE
        }
    }
}
