//! `audit verify|tail|export`: on the running daemon's log (up to what is durable), or on
//! the files when no daemon runs.

use std::path::Path;

use serde_json::{json, Value};

use tokio::sync::mpsc;

use super::{AdminError, Advance, AuditCommand};
use crate::audit::{self, log::read_anchor, AuditLog, Scope};
use crate::layout::StateLayout;

/// Run `command` on the daemon's log. An export first has a checkpoint written, so that
/// the newest records are covered too. A verification reports how far it has got to
/// `progress`, about every percent.
pub async fn live(
    log: &AuditLog,
    layout: &StateLayout,
    command: AuditCommand,
    progress: Option<mpsc::Sender<Advance>>,
) -> Result<Value, AdminError> {
    let command = match command {
        AuditCommand::Tail { count } => return tail(log.durable_tail(count)),
        AuditCommand::Verify => WholeLog::Verify,
        AuditCommand::Export { from, to } => {
            log.checkpoint().await.map_err(internal)?;
            WholeLog::Export { from, to }
        }
    };
    // The anchor before the bytes: the bytes then reach at least its checkpoint.
    let anchor = read_anchor(log.anchor_path()).map_err(internal)?;
    let bytes = log.durable_bytes().map_err(internal)?;
    let cert = layout.audit_cert();
    tokio::task::spawn_blocking(move || {
        let mut reported = None;
        let mut report = |done: u64, total: u64| {
            let step = (total / 100).max(1);
            if reported.is_some_and(|r| done < total && done < r + step) {
                return;
            }
            reported = Some(done);
            // Progress is best effort: a full channel (a slow reader) skips a step.
            if let Some(tx) = &progress {
                let _ = tx.try_send(Advance { done, total });
            }
        };
        run_on_whole_log(&bytes, anchor, &cert, command, &mut report)
    })
    .await
    .map_err(internal)?
}

/// Run `command` on the files under `layout` (no daemon runs). A last line cut short by a
/// crash is left out, as the daemon does when it starts, and reported. A verification
/// reports `(bytes done, bytes in all)` to `progress` as it goes.
pub fn offline(
    layout: &StateLayout,
    command: AuditCommand,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Value, AdminError> {
    let path = layout.audit_log();
    let unreadable = |e: std::io::Error| internal(format!("{}: {e}", path.display()));
    let command = match command {
        AuditCommand::Tail { count } => {
            let len = std::fs::metadata(&path).map_err(unreadable)?.len();
            return tail(audit::log::tail_bytes(&path, len, count));
        }
        AuditCommand::Verify => WholeLog::Verify,
        AuditCommand::Export { from, to } => WholeLog::Export { from, to },
    };
    let anchor = read_anchor(&layout.audit_anchor()).map_err(internal)?;
    let mut bytes = std::fs::read(&path).map_err(unreadable)?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let torn = bytes.len() - complete;
    bytes.truncate(complete);
    let mut answer = run_on_whole_log(&bytes, anchor, &layout.audit_cert(), command, progress)?;
    if let (Value::Object(m), true) = (&mut answer, torn > 0) {
        m.insert("torn_bytes".into(), json!(torn));
    }
    Ok(answer)
}

/// The commands that read the whole log (`tail` reads only its end).
enum WholeLog {
    Verify,
    Export { from: u64, to: u64 },
}

fn run_on_whole_log(
    bytes: &[u8],
    anchor: Option<audit::Anchor>,
    cert: &Path,
    command: WholeLog,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Value, AdminError> {
    match command {
        WholeLog::Verify => {
            let key = audit::key_from_certificate(cert).map_err(internal)?;
            let total = bytes.len() as u64;
            progress(0, total);
            let verified = audit::verify::verify(bytes, &key, &Scope::Log(anchor), &mut |done| {
                progress(done, total)
            })
            .map_err(broken)?;
            serde_json::to_value(verified).map_err(internal)
        }
        WholeLog::Export { from, to } => {
            let text = audit::verify::export(bytes, from, to)
                .map_err(|e| AdminError::new("bad-range", e))?;
            Ok(json!({ "export": String::from_utf8_lossy(&text) }))
        }
    }
}

/// The last records, read backward from the end of the log (not the whole log).
fn tail(bytes: std::io::Result<Vec<u8>>) -> Result<Value, AdminError> {
    let records = audit::records(&bytes.map_err(internal)?).map_err(internal)?;
    serde_json::to_value(records).map_err(internal)
}

/// The refusal that names the first broken record.
pub fn broken(b: audit::Broken) -> AdminError {
    AdminError::new("audit-broken", b.to_string())
}

fn internal(e: impl std::fmt::Display) -> AdminError {
    AdminError::new("internal", e.to_string())
}
