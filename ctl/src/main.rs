//! signetctl: the Signet operator CLI. One module per subcommand, each a clap `Args` and a
//! thin `exec`; `transport` sends a command to the running daemon, or runs it on the
//! appliance at rest when none runs.

mod audit;
mod cert;
mod client;
mod config;
mod crl;
mod csr;
mod hsm_bench;
mod init;
mod key;
mod pdf;
mod progress;
mod reload;
mod status;
mod store;
mod transport;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use signet::config_source::ConfigSource;
use signet_config::Config;

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
    Init(init::Args),
    /// Certificates: list, show, revoke, unhold, issue, import (from an outside CA).
    Cert(cert::Args),
    /// A certificate request (PKCS#10) for a key in the token, for an outside CA.
    Csr(csr::Args),
    /// Keys in the token: list, show, generate.
    Key(key::Args),
    /// PDF documents: sign through the API.
    Pdf(Box<pdf::Args>),
    /// The config: check, seal to the TPM, unseal, reseal.
    #[command(subcommand)]
    Config(config::Command),
    /// The audit log: tail, verify, export.
    Audit(audit::Args),
    /// What the running appliance is doing.
    Status(status::Args),
    /// CRLs: publish.
    Crl(crl::Args),
    /// API clients: list, add, remove.
    Client(client::Args),
    /// Re-read the client policy in the running daemon.
    Reload(reload::Args),
    /// The store: move a one-box appliance's state into PostgreSQL.
    Store(store::Args),
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
    Bench(hsm_bench::Args),
}

fn main() -> ExitCode {
    // Nothing Signet writes (keys, database, logs) is for other users.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let result = match Cli::parse().command {
        Command::Init(args) => init::exec(args),
        Command::Cert(args) => cert::exec(args),
        Command::Csr(args) => csr::exec(args),
        Command::Key(args) => key::exec(args),
        Command::Pdf(args) => pdf::exec(*args),
        Command::Config(command) => config::exec(command),
        Command::Audit(args) => audit::exec(args),
        Command::Status(args) => status::exec(args),
        Command::Crl(args) => crl::exec(args),
        Command::Client(args) => client::exec(args),
        Command::Reload(args) => reload::exec(args),
        Command::Store(args) => store::exec(args),
        Command::Hsm(HsmCommand::Bench(args)) => hsm_bench::exec(args),
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

/// Load the config at `path` (or `sealed:PATH`, unsealed through `$SIGNET_TCTI`), with
/// `--state-dir` taking precedence over the file.
pub fn load_config(path: &Path, state_dir: Option<PathBuf>) -> Result<Config, String> {
    let source = ConfigSource::new(path, signet::config_source::tcti(None));
    let mut config = source.load()?;
    if let Some(dir) = state_dir {
        config.state_dir = dir;
    }
    Ok(config)
}

/// Print `v` as pretty JSON (for `--json`).
pub fn print_json(v: &serde_json::Value) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}
