//! `signetctl hsm bench`: the raw C_Sign rate of a key in the token — the ceiling every
//! protocol on the appliance is measured against.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use signet::hsm::Hsm;

/// Sign in a tight loop with one session per thread (no queue, no verification).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The appliance config.
    #[arg(long, default_value = "/etc/signet/appliance.toml")]
    pub config: PathBuf,
    /// The state directory (overrides the config's `state_dir`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Label of the key to sign with.
    #[arg(long)]
    pub label: String,
    /// Signing threads, one session each (default: the configured worker count).
    #[arg(long)]
    pub threads: Option<usize>,
    /// How long to sign, in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    label: &'a str,
    algorithm: String,
    threads: usize,
    seconds: f64,
    signatures_per_second: f64,
}

/// Measure and print.
pub fn exec(args: Args) -> Result<(), String> {
    let config = super::load_config(&args.config, args.state_dir)?;
    signet::settings::prepare_softhsm(&config);
    let settings = signet::settings::hsm(&config)?;
    let threads = args.threads.unwrap_or(settings.workers).max(1);
    let hsm = Hsm::open(&settings).map_err(|e| e.to_string())?;
    let key = hsm.key_blocking(&args.label).map_err(|e| e.to_string())?;
    let scheme = key.algorithm.default_scheme();
    let seconds = args.seconds.clamp(0.1, 600.0);
    let rate = hsm
        .raw_sign_rate(&key, scheme, threads, Duration::from_secs_f64(seconds))
        .map_err(|e| e.to_string())?;
    let report = Report {
        label: &args.label,
        algorithm: format!("{:?}", key.algorithm),
        threads,
        seconds,
        signatures_per_second: rate,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        println!(
            "{} ({}): {:.0} signatures/s with {} thread(s) over {:.1} s",
            report.label, report.algorithm, rate, threads, seconds
        );
    }
    Ok(())
}
