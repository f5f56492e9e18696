//! `signetctl key list|show|generate`. `generate` makes a key pair made inside the token (sensitive, never
//! extractable), optionally certified by the root CA for document signing. Declare it in the
//! config's `[[signing_keys]]` (with the chain written by `--out`) and restart signetd to
//! offer it through the API.

use std::path::PathBuf;

use serde_json::Value;

use super::progress::Progress;
use crate::transport::{run, run_watched, Common};
use signet::admin::Command;

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
    /// List the private keys in the token.
    List,
    /// Show one key: its algorithm and public key.
    Show {
        /// Its label (CKA_LABEL).
        label: String,
    },
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

/// Run it and print what was made or found.
pub fn exec(args: Args) -> Result<(), String> {
    let json = args.common.json;
    match args.action {
        Action::List => {
            let result = run(&args.common, Command::KeyList)?;
            match json {
                true => super::print_json(&result),
                false => {
                    print_list(&result);
                    Ok(())
                }
            }
        }
        Action::Show { label } => {
            let result = run(&args.common, Command::KeyShow { label })?;
            match json {
                true => super::print_json(&result),
                false => {
                    print_key(&result);
                    Ok(())
                }
            }
        }
        Action::Generate {
            label,
            algorithm,
            issue_from,
            out,
        } => {
            let what = format!("generating {algorithm} key {label:?} in the token");
            let progress = Progress::spinner(json, &what);
            let command = Command::KeyGenerate {
                label,
                algorithm,
                issue_from,
            };
            let result = run_watched(&args.common, command, &progress);
            progress.finish();
            let result = result?;
            let chain = result.get("certificate_chain_pem").and_then(Value::as_str);
            if let (Some(path), Some(pem)) = (&out, chain) {
                std::fs::write(path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if json {
                return super::print_json(&result);
            }
            for key in ["label", "algorithm", "serial"] {
                if let Some(v) = result.get(key).and_then(Value::as_str) {
                    println!("{key:<10} {v}");
                }
            }
            if let Some(path) = &out {
                println!("{:<10} {}", "chain", path.display());
            }
            Ok(())
        }
    }
}

fn print_list(result: &Value) {
    println!("{:<24} ALGORITHM", "LABEL");
    for k in result.as_array().into_iter().flatten() {
        let alg = k
            .get("algorithm")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| k.get("refused").map(|r| format!("refused: {r}")))
            .unwrap_or_default();
        println!(
            "{:<24} {alg}",
            k.get("label").and_then(Value::as_str).unwrap_or("")
        );
    }
}

fn print_key(result: &Value) {
    for key in ["label", "algorithm"] {
        if let Some(v) = result.get(key).and_then(Value::as_str) {
            println!("{key:<10} {v}");
        }
    }
    if let Some(v) = result.get("origin_detail").and_then(Value::as_str) {
        let marked = match result.get("marked_imported").and_then(Value::as_bool) {
            Some(true) => ", marked imported in [[signing_keys]]",
            _ => "",
        };
        println!("{:<10} {v}{marked}", "origin");
    }
    // Its certificate, when the appliance holds one for it.
    let cert = &result["certificate"];
    for key in ["subject", "issuer", "serial"] {
        if let Some(v) = cert.get(key).and_then(Value::as_str) {
            println!("{key:<10} {v}");
        }
    }
    if let Some(t) = cert.get("not_after").and_then(Value::as_u64) {
        println!(
            "{:<10} {}",
            "not after",
            httpdate::fmt_http_date(signet::store::certs::from_unix_secs(t))
        );
    }
    print!(
        "{}",
        result
            .get("public_key_pem")
            .and_then(Value::as_str)
            .unwrap_or("")
    );
}
