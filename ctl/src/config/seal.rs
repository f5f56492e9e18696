//! `signetctl config seal`: encrypt a config under a fresh data key and seal the key to
//! this box's TPM, bound to the current values of the chosen PCRs.

use std::path::PathBuf;

use signet_config::sealed::{self, PcrSelection, Tpm, DEFAULT_PCRS};
use signet_config::{Config, Origin};
use zeroize::Zeroizing;

use signet::config_source;

/// Seal a config.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The clear-text config (remove it once sealed: it holds the secrets).
    #[arg(long = "in")]
    pub input: PathBuf,
    /// The sealed file to write (owner-only permissions).
    #[arg(long)]
    pub out: PathBuf,
    /// The PCRs to bind to.
    #[arg(long, default_value = DEFAULT_PCRS)]
    pub pcrs: String,
    /// The TPM's TCTI [default: $SIGNET_TCTI, else device:/dev/tpmrm0].
    #[arg(long)]
    pub tcti: Option<String>,
    /// Replace `--out` if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Validate, seal, write, and check that the written file unseals.
pub fn exec(args: Args) -> Result<(), String> {
    let pcrs = PcrSelection::parse(&args.pcrs).map_err(|e| format!("--pcrs: {e}"))?;
    let text = std::fs::read_to_string(&args.input)
        .map(Zeroizing::new)
        .map_err(|e| format!("{}: {e}", args.input.display()))?;
    Config::parse_as(&args.input.display().to_string(), &text, Origin::Sealed)
        .map_err(|e| e.to_string())?;
    let mut tpm = Tpm::open(&config_source::tcti(args.tcti)).map_err(|e| e.to_string())?;
    let bytes = sealed::seal(&mut tpm, text.as_bytes(), &pcrs, None).map_err(|e| e.to_string())?;
    verify(&mut tpm, &bytes, &text)?;
    super::write_private(&args.out, &bytes, args.force)?;
    println!(
        "sealed {} to {}, bound to PCRs {pcrs}; remove the clear-text file now",
        args.input.display(),
        args.out.display()
    );
    Ok(())
}

/// Unseal what was just sealed: a file that would not open at the next start is not
/// written.
pub(crate) fn verify(tpm: &mut Tpm, bytes: &[u8], text: &str) -> Result<(), String> {
    let back =
        sealed::unseal(tpm, bytes).map_err(|e| format!("the new file does not unseal: {e}"))?;
    if back.as_slice() != text.as_bytes() {
        return Err("the new file unseals to other text".into());
    }
    Ok(())
}
