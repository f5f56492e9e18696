//! `signetctl audit tail|verify|export`: the audit log, through the daemon when it runs
//! (it reads up to what is durable), from the files when not; `verify --file --cert`
//! checks an export offline with the audit certificate alone.

use std::path::PathBuf;

use serde_json::Value;

use super::progress::Progress;
use crate::transport::{run, run_watched, Common};
use signet::admin::{AuditCommand, Command};
use signet::audit::{self, Record, Scope};

/// The audit log.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// The last records.
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        count: usize,
    },
    /// Check the hash chain and every checkpoint signature; name the first broken record.
    Verify {
        /// An export to check instead of the appliance's log (needs --cert).
        #[arg(long, requires = "cert")]
        file: Option<PathBuf>,
        /// The audit certificate (PEM) that the export's checkpoints must verify with.
        #[arg(long, requires = "file")]
        cert: Option<PathBuf>,
    },
    /// Write records FROM..=TO and the checkpoint that covers them, for offline checking.
    Export {
        /// First sequence number.
        #[arg(long)]
        from: u64,
        /// Last sequence number.
        #[arg(long)]
        to: u64,
        /// Where to write the export.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Run it; a broken log is an error naming the first broken record.
pub fn exec(args: Args) -> Result<(), String> {
    let json = args.common.json;
    match args.action {
        Action::Verify {
            file: Some(file),
            cert: Some(cert),
        } => {
            let key = audit::key_from_certificate(&cert)?;
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let bar = Progress::bar(json, bytes.len() as u64, "verifying the export");
            let verified =
                audit::verify::verify(&bytes, &key, &Scope::Export, &mut |done| bar.set(done));
            bar.finish();
            let verified = verified.map_err(|b| b.to_string())?;
            print_verified(
                json,
                &serde_json::to_value(verified).map_err(|e| e.to_string())?,
            )
        }
        Action::Verify { .. } => {
            // A spinner until the length is known, then a bar (signetd reports its progress).
            let progress = Progress::spinner(json, "verifying the audit log");
            let v = run_watched(
                &args.common,
                Command::Audit(AuditCommand::Verify),
                &progress,
            );
            progress.finish();
            print_verified(json, &v?)
        }
        Action::Tail { count } => {
            let v = run(&args.common, Command::Audit(AuditCommand::Tail { count }))?;
            if json {
                return print_json(&v);
            }
            let records: Vec<Record> = serde_json::from_value(v).map_err(|e| e.to_string())?;
            println!("{:>8} {:<24} {:<18} DETAIL", "SEQ", "TIME", "KIND");
            for r in &records {
                let time = httpdate::fmt_http_date(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.time_ms),
                );
                println!(
                    "{:>8} {:<24} {:<18} {}",
                    r.seq,
                    time.get(5..).unwrap_or(""),
                    r.event.kind(),
                    detail(&r.event)
                );
            }
            Ok(())
        }
        Action::Export { from, to, out } => {
            let v = run(
                &args.common,
                Command::Audit(AuditCommand::Export { from, to }),
            )?;
            let text = v
                .get("export")
                .and_then(Value::as_str)
                .ok_or("the daemon's answer holds no export")?;
            std::fs::write(&out, text).map_err(|e| format!("{}: {e}", out.display()))?;
            let lines = text.lines().count();
            if json {
                print_json(&serde_json::json!({ "file": out, "records": lines }))
            } else {
                println!("{lines} records written to {}", out.display());
                Ok(())
            }
        }
    }
}

fn detail(e: &audit::Event) -> String {
    use audit::Event;
    match e {
        Event::Start {
            version,
            torn_bytes,
        } => format!("signetd {version} (torn {torn_bytes} B)"),
        Event::Request {
            client,
            operation,
            key,
            status,
            refused,
            items,
            peer,
            ..
        } => format!(
            "{status} {operation}{}{} {}{}",
            key.as_deref().map(|k| format!("/{k}")).unwrap_or_default(),
            items.map(|n| format!(" x{n}")).unwrap_or_default(),
            client.as_deref().or(peer.as_deref()).unwrap_or("-"),
            refused
                .as_deref()
                .map(|r| format!(" (refused: {r})"))
                .unwrap_or_default()
        ),
        Event::HandshakeRefused { peer, reason } => format!("{peer}: {reason}"),
        Event::Admin {
            uid,
            user,
            command,
            ok,
            role,
            ..
        } => format!(
            "{}{} {} {}",
            user.clone().unwrap_or_else(|| uid.to_string()),
            role.as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            command
                .get("command")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            if *ok { "ok" } else { "failed" }
        ),
        Event::AdminRefused { reason, .. } => reason.clone(),
        Event::Hsm { available: true } => "HSM available".into(),
        Event::Hsm { available: false } => "HSM lost: signing refused".into(),
        Event::WritesResumed {
            error,
            refused,
            failed_ms,
        } => format!(
            "audit writes resumed after {:.1} s ({refused} records refused with their requests): {error}",
            *failed_ms as f64 / 1000.0
        ),
        Event::PublicSummary {
            requests, counts, ..
        } => format!(
            "{requests} public requests answered under disk pressure, counted: {}",
            counts
                .iter()
                .map(|(k, n)| format!("{k} x{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Event::Checkpoint { algorithm, .. } => format!("signed ({algorithm})"),
    }
}

fn print_verified(json: bool, v: &Value) -> Result<(), String> {
    if json {
        return print_json(v);
    }
    let n = |k: &str| v.get(k).and_then(Value::as_u64);
    println!(
        "audit log verified: {} records, {} checkpoints, last checkpoint at {}",
        n("records").unwrap_or(0),
        n("checkpoints").unwrap_or(0),
        n("last_checkpoint").map_or("-".into(), |s| s.to_string())
    );
    match (v.get("anchor"), v.get("rollback_check")) {
        (Some(a), Some(r)) if !r.is_null() => println!(
            "rollback check: the TPM counter (NV index {}) is at {}, the signed anchor at {}",
            r.get("tpm_counter_index")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            r.get("tpm_counter")
                .and_then(Value::as_u64)
                .map_or("none".into(), |c| c.to_string()),
            a.get("tpm_counter")
                .and_then(Value::as_u64)
                .map_or("none".into(), |c| c.to_string()),
        ),
        (Some(a), _) if !a.is_null() => println!(
            "the anchor is signed; no TPM counter is kept, so an older log and anchor put back \
             together would not be detected"
        ),
        _ => {}
    }
    if let Some(t) = n("torn_bytes") {
        println!("an incomplete last line of {t} bytes (a crash) is not counted");
    }
    Ok(())
}

fn print_json(v: &Value) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}
