//! Following the HSM's readiness: every change goes to the service manager's status line
//! (`systemctl status` says the HSM is lost while the daemon stays alive and reconnects)
//! and into the audit log.

use std::future::Future;

use tokio::sync::watch;

use crate::audit::{AuditLog, Event};
use crate::hsm::Readiness;
use crate::systemd::Notifier;

/// The status line while the HSM is lost.
pub const LOST_STATUS: &str = "serving; HSM unavailable, reconnecting";
/// The status line while it answers.
pub const READY_STATUS: &str = "serving";

/// Report every change of `readiness` until `shutdown`.
pub async fn follow(
    mut readiness: watch::Receiver<Readiness>,
    notifier: Notifier,
    audit: AuditLog,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut reported = Readiness::Ready;
    loop {
        tokio::select! {
            changed = readiness.changed() => if changed.is_err() { return },
            () = &mut shutdown => return,
        }
        let now = *readiness.borrow_and_update();
        if now == reported {
            continue;
        }
        reported = now;
        notifier.status(match now {
            Readiness::Ready => READY_STATUS,
            Readiness::Lost => LOST_STATUS,
        });
        audit.record_detached(Event::Hsm {
            available: now == Readiness::Ready,
        });
    }
}
