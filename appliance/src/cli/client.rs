//! `signetctl client list`: the API clients the config declares and what each may do.

use serde_json::Value;

use super::cert::{run, Common};
use crate::admin::Command;

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
}

/// Run it.
pub fn exec(args: Args) -> Result<(), String> {
    let Action::List = args.action;
    let v = run(&args.common, Command::ClientList)?;
    if args.common.json {
        return super::print_json(&v);
    }
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
        let matches = ["subject", "san_uri", "san_dns", "fingerprint_sha256"]
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
    Ok(())
}
