//! `signetctl client list|add|remove`: the API clients the config declares and what each
//! may do. `add` and `remove` edit the config file keeping its comments, check the result
//! as signetd would, write it atomically and reload the running daemon (see
//! `admin::client_edit`).

use serde_json::Value;

use crate::transport::{run, Common};
use signet::admin::client_edit::NewClient;
use signet::admin::Command;

/// API clients.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// List the configured clients.
    List,
    /// Add a client to the config and reload; its certificate is recognised by every
    /// match given.
    #[command(group(clap::ArgGroup::new("matches").required(true).multiple(true)))]
    Add {
        /// Its name (unique).
        name: String,
        /// The client CA that must have issued its certificate: `client-ca` (the appliance's
        /// own, the default) or a `[[client_cas]]` name.
        #[arg(long)]
        issuer: Option<String>,
        /// The subject DN its certificate must have, RFC 4514 (`CN=app,O=Example`).
        #[arg(long, group = "matches")]
        subject: Option<String>,
        /// A URI its certificate's subjectAltName must hold.
        #[arg(long, group = "matches")]
        san_uri: Option<String>,
        /// A DNS name its certificate's subjectAltName must hold.
        #[arg(long, group = "matches")]
        san_dns: Option<String>,
        /// SHA-256 of its certificate (DER), hex, colons allowed.
        #[arg(long, group = "matches")]
        fingerprint: Option<String>,
        /// What it may do: sign, cms, pdf, tsa, metrics (comma-separated or repeated).
        #[arg(long, value_delimiter = ',', required = true)]
        operations: Vec<String>,
        /// The signing keys it may use (comma-separated or repeated).
        #[arg(long, value_delimiter = ',')]
        keys: Vec<String>,
    },
    /// Remove a client from the config and reload.
    Remove {
        /// Its name.
        name: String,
    },
}

/// Run it.
pub fn exec(args: Args) -> Result<(), String> {
    let command = match args.action {
        Action::List => Command::ClientList,
        Action::Add {
            name,
            issuer,
            subject,
            san_uri,
            san_dns,
            fingerprint,
            operations,
            keys,
        } => Command::ClientAdd(NewClient {
            name,
            issuer,
            subject,
            san_uri,
            san_dns,
            fingerprint_sha256: fingerprint,
            operations,
            keys,
        }),
        Action::Remove { name } => Command::ClientRemove { name },
    };
    if command != Command::ClientList {
        let v = run(&args.common, command)?;
        if args.common.json {
            return super::print_json(&v);
        }
        let (what, name) = match (v.get("added"), v.get("removed")) {
            (Some(n), _) => ("added", n),
            (_, Some(n)) => ("removed", n),
            _ => ("changed", &Value::Null),
        };
        println!(
            "client {} {what} in {}; {} clients",
            name.as_str().unwrap_or(""),
            v.get("config").and_then(Value::as_str).unwrap_or(""),
            v.get("clients").and_then(Value::as_u64).unwrap_or(0)
        );
        return Ok(());
    }
    let v = run(&args.common, Command::ClientList)?;
    if args.common.json {
        return super::print_json(&v);
    }
    print_list(&v);
    Ok(())
}

fn print_list(v: &Value) {
    println!("{:<16} {:<24} {:<20} MATCHES", "NAME", "OPERATIONS", "KEYS");
    let list = |c: &Value, k: &str| -> String {
        c.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(",")
    };
    for c in v.as_array().into_iter().flatten() {
        let matches = [
            "issuer",
            "subject",
            "san_uri",
            "san_dns",
            "fingerprint_sha256",
        ]
        .iter()
        .filter_map(|k| {
            c.get(*k)
                .and_then(Value::as_str)
                .map(|v| format!("{k}={v}"))
        })
        .collect::<Vec<_>>()
        .join(" ");
        println!(
            "{:<16} {:<24} {:<20} {matches}",
            c.get("name").and_then(Value::as_str).unwrap_or(""),
            list(c, "operations"),
            list(c, "keys"),
        );
    }
}
