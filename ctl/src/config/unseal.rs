//! `signetctl config unseal`: show a sealed config; secrets redacted unless
//! `--reveal-secrets`, which says on stderr that it did.

use std::path::PathBuf;

use signet_config::sealed::redact;

use signet::config_source::{self, ConfigSource, SEALED_PREFIX};

/// Show a sealed config.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sealed file (`PATH` or `sealed:PATH`).
    pub file: PathBuf,
    /// Show the secrets (PINs) too; logged as such.
    #[arg(long)]
    pub reveal_secrets: bool,
    /// The TPM's TCTI [default: $SIGNET_TCTI, else device:/dev/tpmrm0].
    #[arg(long)]
    pub tcti: Option<String>,
}

/// Unseal and print.
pub fn exec(args: Args) -> Result<(), String> {
    let path = args.file.to_string_lossy();
    let path = path.strip_prefix(SEALED_PREFIX).unwrap_or(&path);
    let source = ConfigSource::Sealed {
        path: PathBuf::from(path),
        tcti: config_source::tcti(args.tcti),
    };
    let text = source.read_text()?;
    if args.reveal_secrets {
        eprintln!(
            "signetctl: --reveal-secrets: showing the secrets of {} in clear (uid {})",
            source.name(),
            nix::unistd::getuid()
        );
        print!("{}", text.as_str());
    } else {
        print!("{}", redact(&text)?);
    }
    Ok(())
}
