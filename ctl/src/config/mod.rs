//! `signetctl config`: check a config, seal it to the TPM, show it, move it to new PCRs.

pub mod check;
pub mod reseal;
pub mod seal;
pub mod unseal;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The config's subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate a config (clear or `sealed:PATH`) and print every problem at once.
    Check(check::Args),
    /// Encrypt a config and seal its key to this box's TPM and PCR values.
    Seal(seal::Args),
    /// Show a sealed config, secrets redacted.
    Unseal(unseal::Args),
    /// Seal a sealed config again, to new PCR values or another PCR selection.
    Reseal(reseal::Args),
}

/// Run a `config` subcommand.
pub fn exec(command: Command) -> Result<(), String> {
    match command {
        Command::Check(args) => check::exec(args),
        Command::Seal(args) => seal::exec(args),
        Command::Unseal(args) => unseal::exec(args),
        Command::Reseal(args) => reseal::exec(args),
    }
}

/// Write `bytes` to a new file readable by its owner only (replacing one with `force`).
pub(crate) fn write_private(path: &Path, bytes: &[u8], force: bool) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!("{} exists (--force replaces it)", path.display())
        } else {
            format!("{}: {e}", path.display())
        }
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}
