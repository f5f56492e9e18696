//! `signetctl cert list|show|revoke|unhold`: through the running daemon's admin socket, or
//! straight on the database when no daemon runs (it publishes the change when it starts).

use std::path::PathBuf;

use serde_json::Value;

use signet::admin::ops::REASONS;
use signet::admin::Command;
use signet::issuance::{IssueRequest, PROFILES};

use crate::transport::{run, Common};

/// Issued certificates and their status.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// List every issued certificate with its status.
    List,
    /// Show one certificate (status and PEM).
    Show {
        /// Serial number, hex (colons allowed).
        serial: String,
    },
    /// Revoke a certificate; `certificateHold` suspends it instead. Durable and published
    /// (OCSP and CRL) when this returns.
    Revoke {
        /// Serial number, hex (colons allowed).
        serial: String,
        /// Why (RFC 5280 CRLReason).
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(REASONS))]
        reason: String,
    },
    /// Lift a hold.
    Unhold {
        /// Serial number, hex (colons allowed).
        serial: String,
    },
    /// Issue a certificate from a PKCS#10 request (PEM), signed by the root CA in the token.
    Issue {
        /// The request file.
        #[arg(long)]
        csr: PathBuf,
        /// The certificate profile.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(PROFILES))]
        profile: String,
        /// Lifetime in days (default: the config's `pki.leaf_days`).
        #[arg(long)]
        days: Option<u32>,
        /// A DNS name for the subjectAltName (repeatable).
        #[arg(long)]
        san_dns: Vec<String>,
        /// A URI for the subjectAltName (repeatable).
        #[arg(long)]
        san_uri: Vec<String>,
        /// Write the certificate (PEM) here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Put a chain from an outside CA in service for a key in the token: the first
    /// certificate must certify the key, each must be signed by the next and valid now.
    Import {
        /// The key's label (CKA_LABEL).
        #[arg(long)]
        key: String,
        /// The chain, PEM, the key's certificate first.
        file: PathBuf,
    },
}

/// Run the command and print its result.
pub fn exec(args: Args) -> Result<(), String> {
    let mut out_file = None;
    let command = match args.action {
        Action::List => Command::CertList,
        Action::Show { serial } => Command::CertShow { serial },
        Action::Revoke { serial, reason } => Command::CertRevoke { serial, reason },
        Action::Unhold { serial } => Command::CertUnhold { serial },
        Action::Issue {
            csr,
            profile,
            days,
            san_dns,
            san_uri,
            out,
        } => {
            out_file = out;
            let csr_pem =
                std::fs::read_to_string(&csr).map_err(|e| format!("{}: {e}", csr.display()))?;
            Command::CertIssue(IssueRequest {
                csr_pem,
                profile,
                days,
                san_dns,
                san_uri,
            })
        }
        Action::Import { key, file } => {
            let chain_pem =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            Command::CertImport {
                label: key,
                chain_pem,
            }
        }
    };
    let listing = command == Command::CertList;
    let importing = matches!(command, Command::CertImport { .. });
    let result = run(&args.common, command)?;
    if let (Some(path), Some(pem)) = (&out_file, result.get("pem").and_then(Value::as_str)) {
        std::fs::write(path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if args.common.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?
        );
    } else if listing {
        print_table(&result);
    } else if importing {
        print_imported(&result);
    } else {
        print_one(&result);
    }
    Ok(())
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get(name).and_then(Value::as_str).unwrap_or("")
}

fn print_table(list: &Value) {
    println!(
        "{:<34} {:<12} {:<9} {:<20} SUBJECT",
        "SERIAL", "PROFILE", "STATUS", "NOT AFTER"
    );
    for c in list.as_array().into_iter().flatten() {
        let not_after = c.get("not_after").and_then(Value::as_u64).unwrap_or(0);
        println!(
            "{:<34} {:<12} {:<9} {:<20} {}",
            field(c, "serial"),
            field(c, "profile"),
            field(c, "status"),
            httpdate::fmt_http_date(signet::store::certs::from_unix_secs(not_after))
                .get(5..16)
                .unwrap_or(""),
            field(c, "subject")
        );
    }
}

fn print_imported(v: &Value) {
    for key in ["label", "subject", "issuer", "serial"] {
        println!("{key:<10} {}", field(v, key));
    }
    println!(
        "{:<10} {}",
        "chain",
        v.get("chain_file").and_then(Value::as_str).unwrap_or("")
    );
    let in_service = v.get("in_service").and_then(Value::as_bool) == Some(true);
    println!(
        "{:<10} {}",
        "in use",
        if in_service {
            "now, by the running signetd"
        } else {
            "from the next start of signetd"
        }
    );
    if let Some(note) = v.get("note").and_then(Value::as_str) {
        println!("{note}");
    }
}

fn print_one(c: &Value) {
    for key in ["serial", "ca", "subject", "profile", "status", "reason"] {
        if let Some(v) = c.get(key).and_then(Value::as_str) {
            println!("{key:<8} {v}");
        }
    }
    if let Some(at) = c.get("at").and_then(Value::as_u64) {
        println!(
            "{:<8} {}",
            "since",
            httpdate::fmt_http_date(signet::store::certs::from_unix_secs(at))
        );
    }
    if let Some(pem) = c.get("pem").and_then(Value::as_str) {
        print!("{pem}");
    }
}
