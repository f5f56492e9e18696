//! `signetctl reload`: have the running daemon re-read its client policy (as SIGHUP does);
//! a config that does not load is refused and the policy in force stays.

use crate::transport::{run, Common};
use signet::admin::Command;

/// Re-read the client policy.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
}

/// Run it.
pub fn exec(args: Args) -> Result<(), String> {
    let v = run(&args.common, Command::Reload)?;
    if args.common.json {
        return super::print_json(&v);
    }
    println!(
        "client policy reloaded: {} clients",
        v.get("clients")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    );
    Ok(())
}
