//! `signetctl status`: the token, its sessions and keys, certificates expiring soon, clock
//! sync, the store and the other boxes on it, the TSA serial counter, the OCSP cache's age
//! and the audit log's head.

use serde_json::Value;

use crate::transport::{run, Common};
use signet::admin::Command;

/// What the running appliance is doing.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
}

/// Ask the daemon and print its answer.
pub fn exec(args: Args) -> Result<(), String> {
    let v = run(&args.common, Command::Status)?;
    if args.common.json {
        return super::print_json(&v);
    }
    let text = |k: &str| match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    };
    println!("{:<28} {}", "token", text("token"));
    println!("{:<28} {}", "sessions", text("sessions"));
    let keys: Vec<&str> = v
        .get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    println!("{:<28} {}", "keys", keys.join(", "));
    println!("{:<28} {}", "certificates", text("certificates"));
    let expiring = v
        .get("expiring_within_30_days")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    println!("{:<28} {expiring}", "expiring within 30 days");
    for c in v
        .get("own_certificates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = c.get("certificate").and_then(Value::as_str).unwrap_or("");
        let days = c.get("days_left").and_then(Value::as_u64).unwrap_or(0);
        let flag = match c.get("expiring").and_then(Value::as_bool) {
            Some(true) => "  RENEW",
            _ => "",
        };
        println!("{:<28} {days} days left{flag}", format!("  {name}"));
    }
    println!("{:<28} {}", "clock", text("clock"));
    let reachable = match v.get("store_reachable") {
        Some(Value::Bool(false)) => format!(", UNREACHABLE: {}", text("store_error")),
        _ => String::new(),
    };
    println!("{:<28} {}{reachable}", "store", text("store"));
    println!("{:<28} {}", "node", text("node"));
    for n in v
        .get("other_nodes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = n.get("node").and_then(Value::as_str).unwrap_or("");
        let ago = n
            .get("last_seen_secs_ago")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let version = n.get("version").and_then(Value::as_str).unwrap_or("");
        println!(
            "{:<28} seen {ago} s ago, version {version}",
            format!("  other node {name}")
        );
    }
    println!(
        "{:<28} {}",
        "TSA serials reserved up to",
        text("tsa_serial_reserved_up_to")
    );
    println!(
        "{:<28} {}",
        "oldest OCSP answer (s)",
        text("ocsp_oldest_response_age_secs")
    );
    println!("{:<28} {}", "audit records", text("audit_head"));
    Ok(())
}
