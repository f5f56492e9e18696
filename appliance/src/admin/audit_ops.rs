//! `audit verify|tail|export`: on the running daemon's log (up to what is durable), or on
//! the files when no daemon runs.

use std::path::Path;

use serde_json::{json, Value};

use tokio::sync::mpsc;

use signet_config::sealed::CounterState;

use super::{AdminError, Advance, AuditCommand};
use crate::audit::{self, anchor::check_rollback, log::read_anchor, AuditLog, Scope, TpmCounter};
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
    // The anchor (and the TPM counter with it) before the bytes: the bytes then reach at
    // least its checkpoint.
    let (anchor, counter) = match &command {
        WholeLog::Verify => {
            let log = log.clone();
            tokio::task::spawn_blocking(move || log.anchor_and_counter())
                .await
                .map_err(internal)?
                .map_err(internal)?
        }
        WholeLog::Export { .. } => (read_anchor(log.anchor_path()).map_err(internal)?, None),
    };
    let counter = counter.zip(log.counter().map(|c| c.index));
    let bytes = log.durable_bytes().map_err(internal)?;
    let cert = layout.audit_cert();
    tokio::task::spawn_blocking(move || {
        let mut report = reporter(progress);
        run_on_whole_log(&bytes, anchor, counter, &cert, command, &mut report)
    })
    .await
    .map_err(internal)?
}

/// A callback for `(bytes done, bytes in all)` that passes about every percent on to
/// `progress`, and the end always.
pub fn reporter(progress: Option<mpsc::Sender<Advance>>) -> impl FnMut(u64, u64) {
    let mut reported = None;
    move |done: u64, total: u64| {
        let step = (total / 100).max(1);
        if reported.is_some_and(|r| done < total && done < r + step) {
            return;
        }
        reported = Some(done);
        // Progress is best effort: a full channel (a slow reader) skips a step.
        if let Some(tx) = &progress {
            let _ = tx.try_send(Advance { done, total });
        }
    }
}

/// Run `command` on the files under `layout` (no daemon runs), with the TPM `counter` the
/// appliance keeps, if any. A last line cut short by a crash is left out, as the daemon
/// does when it starts, and reported. A verification reports `(bytes done, bytes in all)`
/// to `progress` as it goes.
pub fn offline(
    layout: &StateLayout,
    counter: Option<&TpmCounter>,
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
    let counter = match (&command, counter) {
        (WholeLog::Verify, Some(c)) => Some((
            c.state()
                .map_err(|e| internal(format!("the audit TPM counter: {e}")))?,
            c.index,
        )),
        _ => None,
    };
    let anchor = read_anchor(&layout.audit_anchor()).map_err(internal)?;
    let mut bytes = std::fs::read(&path).map_err(unreadable)?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let torn = bytes.len() - complete;
    bytes.truncate(complete);
    let mut answer = run_on_whole_log(
        &bytes,
        anchor,
        counter,
        &layout.audit_cert(),
        command,
        progress,
    )?;
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

/// `counter`: what the TPM counter holds and its NV index, when the appliance keeps one.
fn run_on_whole_log(
    bytes: &[u8],
    anchor: Option<audit::Anchor>,
    counter: Option<(CounterState, u32)>,
    cert: &Path,
    command: WholeLog,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Value, AdminError> {
    match command {
        WholeLog::Verify => {
            let key = audit::key_from_certificate(cert).map_err(internal)?;
            // The anchor first: signed by the audit key, and not older than the TPM says.
            if let Some(a) = &anchor {
                a.check_signature(&key).map_err(anchor_failed)?;
            }
            if let Some((state, _)) = counter {
                check_rollback(anchor.as_ref(), state).map_err(anchor_failed)?;
            }
            let total = bytes.len() as u64;
            progress(0, total);
            let verified =
                audit::verify::verify(bytes, &key, &Scope::Log(anchor.clone()), &mut |done| {
                    progress(done, total)
                })
                .map_err(broken)?;
            let mut v = serde_json::to_value(verified).map_err(internal)?;
            v["anchor"] = match &anchor {
                Some(a) => json!({ "seq": a.seq, "tpm_counter": a.tpm_counter }),
                None => Value::Null,
            };
            v["rollback_check"] = match counter {
                Some((state, index)) => json!({
                    "tpm_counter_index": format!("{index:#010x}"),
                    "tpm_counter": match state {
                        CounterState::Value(n) => json!(n),
                        _ => Value::Null,
                    },
                }),
                None => Value::Null,
            };
            Ok(v)
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

/// The refusal that names what is wrong with the anchor: `audit-rolled-back` when the TPM
/// counter says an older anchor was put back, `audit-anchor` otherwise.
pub fn anchor_failed(e: audit::AnchorError) -> AdminError {
    use audit::AnchorError as E;
    let code = match e {
        E::RolledBack { .. } | E::WithoutCounter { .. } | E::Missing { .. } => "audit-rolled-back",
        E::Unsigned { .. } | E::BadSignature { .. } | E::Behind { .. } => "audit-anchor",
    };
    AdminError::new(code, e.to_string())
}

/// The refusal that names the first broken record.
pub fn broken(b: audit::Broken) -> AdminError {
    AdminError::new("audit-broken", b.to_string())
}

fn internal(e: impl std::fmt::Display) -> AdminError {
    AdminError::new("internal", e.to_string())
}
