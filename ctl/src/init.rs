//! `signetctl init`: the key ceremony.

use std::path::PathBuf;

use signet::ceremony;

/// Generate the root CA, TSA and TLS keys in the token and issue their certificates and
/// the demo client's.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The appliance config.
    #[arg(long, default_value = "/etc/signet/appliance.toml")]
    pub config: PathBuf,
    /// The state directory (overrides the config's `state_dir`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Replace an existing PKI and its keys.
    #[arg(long)]
    pub force: bool,
    /// Print what was made as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the ceremony and report.
pub fn exec(args: Args) -> Result<(), String> {
    let config = super::load_config(&args.config, args.state_dir)?;
    signet::settings::prepare_softhsm(&config);
    let report = ceremony::init(&config, args.force).map_err(|e| e.to_string())?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        println!("initialised {}", report.state_dir.display());
        println!("  token         {}", report.token_label);
        println!("  root CA       {}", report.root_ca.display());
        println!("  TSA           {}", report.tsa_certificate.display());
        println!("  TLS server    {}", report.tls_certificate.display());
        println!(
            "  demo client   {} (key {})",
            report.client_certificate.display(),
            report.client_key.display()
        );
    }
    Ok(())
}
