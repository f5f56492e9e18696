//! `signetctl csr`: a PKCS#10 request (RFC 2986) for a key in the token, for an outside CA.
//! signetd signs it with the key inside the token; the request leaves as PEM. Put the
//! chain the CA sends back in service with `signetctl cert import`.

use std::path::PathBuf;

use serde_json::Value;

use crate::transport::{run, Common};
use signet::admin::Command;

/// Make a certificate request for a key in the token.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// The key's label (CKA_LABEL).
    #[arg(long)]
    key: String,
    /// The subject, RFC 4514: `CN=Signer,O=Example`.
    #[arg(long)]
    subject: String,
    /// A DNS name to ask for in the subjectAltName (repeatable).
    #[arg(long)]
    san_dns: Vec<String>,
    /// Write the request (PEM) here instead of to standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Run it.
pub fn exec(args: Args) -> Result<(), String> {
    let v = run(
        &args.common,
        Command::Csr {
            label: args.key,
            subject: args.subject,
            san_dns: args.san_dns,
        },
    )?;
    let pem = v
        .get("csr_pem")
        .and_then(Value::as_str)
        .ok_or("the daemon's answer holds no request")?;
    if let Some(path) = &args.out {
        std::fs::write(path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if args.common.json {
        return super::print_json(&v);
    }
    match &args.out {
        Some(path) => {
            for key in ["label", "algorithm", "subject"] {
                if let Some(s) = v.get(key).and_then(Value::as_str) {
                    println!("{key:<10} {s}");
                }
            }
            println!("{:<10} {}", "request", path.display());
        }
        None => print!("{pem}"),
    }
    Ok(())
}
