//! `signetctl config reseal`: the explicit operator step that moves a sealed config to new
//! PCR values (those a firmware or boot-chain update will produce) or another PCR
//! selection. It needs the TPM to unseal the file now, so it runs before the change takes
//! effect; nothing reads a clear-text config.

use std::path::PathBuf;

use signet_config::sealed::{self, PcrSelection, SealedFile, Tpm, PCR_VALUE_LEN};
use signet_config::{Config, Origin};

use signet::config_source;

/// Seal a sealed config again.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sealed config, unsealable now.
    #[arg(long = "in")]
    pub input: PathBuf,
    /// The new sealed file.
    #[arg(long)]
    pub out: PathBuf,
    /// The PCRs to bind to [default: those of `--in`].
    #[arg(long)]
    pub pcrs: Option<String>,
    /// `N=HEX`: the SHA-256 value PCR N will hold (repeatable); other PCRs are bound to
    /// their current values.
    #[arg(long = "pcr-value")]
    pub pcr_values: Vec<String>,
    /// The TPM's TCTI [default: $SIGNET_TCTI, else device:/dev/tpmrm0].
    #[arg(long)]
    pub tcti: Option<String>,
    /// Replace `--out` if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Unseal, seal to the new values, check, write.
pub fn exec(args: Args) -> Result<(), String> {
    let name = args.input.display().to_string();
    let bytes = std::fs::read(&args.input).map_err(|e| format!("{name}: {e}"))?;
    let old = SealedFile::decode(&bytes).map_err(|e| format!("{name}: {e}"))?;
    let pcrs = match &args.pcrs {
        Some(s) => PcrSelection::parse(s).map_err(|e| format!("--pcrs: {e}"))?,
        None => old.pcrs.clone(),
    };
    let wanted = parse_values(&args.pcr_values, &pcrs)?;
    let mut tpm = Tpm::open(&config_source::tcti(args.tcti)).map_err(|e| e.to_string())?;
    let text = sealed::unseal(&mut tpm, &bytes).map_err(|e| format!("{name}: {e}"))?;
    let text = std::str::from_utf8(&text).map_err(|_| format!("{name}: not UTF-8 text"))?;
    Config::parse_as(&name, text, Origin::Sealed).map_err(|e| e.to_string())?;
    let mut values = tpm.read_pcrs(&pcrs).map_err(|e| e.to_string())?;
    for (i, v) in pcrs.indices().iter().zip(values.iter_mut()) {
        if let Some((_, w)) = wanted.iter().find(|(n, _)| n == i) {
            *v = *w;
        }
    }
    let predicted = !wanted.is_empty();
    let new =
        sealed::seal(&mut tpm, text.as_bytes(), &pcrs, Some(values)).map_err(|e| e.to_string())?;
    if !predicted {
        super::seal::verify(&mut tpm, &new, text)?;
    }
    super::write_private(&args.out, &new, args.force)?;
    println!(
        "resealed {name} to {}, bound to PCRs {pcrs}{}",
        args.out.display(),
        if predicted {
            " with the given values (it unseals once the PCRs hold them)"
        } else {
            ""
        }
    );
    Ok(())
}

fn parse_values(
    args: &[String],
    pcrs: &PcrSelection,
) -> Result<Vec<(u8, [u8; PCR_VALUE_LEN])>, String> {
    args.iter()
        .map(|a| {
            let bad =
                || format!("--pcr-value `{a}`: allowed: N=HEX, N a selected PCR, HEX 64 digits");
            let (n, hex) = a.split_once('=').ok_or_else(bad)?;
            let n: u8 = n.trim().parse().map_err(|_| bad())?;
            if !pcrs.indices().contains(&n) {
                return Err(format!("--pcr-value: PCR {n} is not in {pcrs}"));
            }
            let bytes = hex::decode(hex.trim()).map_err(|_| bad())?;
            let value: [u8; PCR_VALUE_LEN] = bytes.try_into().map_err(|_| bad())?;
            Ok((n, value))
        })
        .collect()
}
