//! `signetctl crl publish`: have the running daemon sign every CRL (and its OCSP cache)
//! afresh now, instead of at the next refresh.

use crate::transport::{run, Common};
use signet::admin::Command;

/// CRLs.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Sign and serve every CRL now.
    Publish,
}

/// Run it.
pub fn exec(args: Args) -> Result<(), String> {
    let Action::Publish = args.action;
    let v = run(&args.common, Command::CrlPublish)?;
    if args.common.json {
        return super::print_json(&v);
    }
    for name in v
        .get("published")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        println!("published /crl/{}.crl", name.as_str().unwrap_or("?"));
    }
    Ok(())
}
