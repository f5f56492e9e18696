//! `signetctl key generate`: a key pair made inside the token (sensitive, never
//! extractable), optionally certified by the root CA for document signing. Declare it in the
//! config's `[[signing_keys]]` (with the chain written by `--out`) and restart signetd to
//! offer it through the API.

use std::path::PathBuf;

use serde_json::Value;

use super::cert::{run, Common};
use crate::admin::Command;

/// Keys in the token.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Generate a key pair in the token.
    Generate {
        /// Its label (CKA_LABEL).
        #[arg(long)]
        label: String,
        /// Its algorithm.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384"]))]
        algorithm: String,
        /// Have this CA (`root`) issue a document-signing certificate for it.
        #[arg(long)]
        issue_from: Option<String>,
        /// Write the certificate chain (PEM) here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Run it and print what was made.
pub fn exec(args: Args) -> Result<(), String> {
    let Action::Generate {
        label,
        algorithm,
        issue_from,
        out,
    } = args.action;
    let result = run(
        &args.common,
        Command::KeyGenerate {
            label,
            algorithm,
            issue_from,
        },
    )?;
    let chain = result.get("certificate_chain_pem").and_then(Value::as_str);
    if let (Some(path), Some(pem)) = (&out, chain) {
        std::fs::write(path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if args.common.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?
        );
    } else {
        for key in ["label", "algorithm", "serial"] {
            if let Some(v) = result.get(key).and_then(Value::as_str) {
                println!("{key:<10} {v}");
            }
        }
        if let Some(path) = &out {
            println!("{:<10} {}", "chain", path.display());
        }
    }
    Ok(())
}
