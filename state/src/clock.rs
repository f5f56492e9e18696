//! The system clock: is it synchronised (the kernel knows: adjtimex, read-only), and the
//! time now as the audit records carry it.

use std::time::SystemTime;

/// What the kernel says of the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockSync {
    /// An NTP/PTP daemon keeps the clock disciplined.
    Synchronised,
    /// The kernel flags the clock as unsynchronised (STA_UNSYNC / TIME_ERROR).
    Unsynchronised,
    /// The kernel could not be asked.
    Unknown,
}

/// Read the clock's sync status with `adjtimex(2)` (modes = 0: nothing is changed).
#[allow(unsafe_code)]
pub fn sync_status() -> ClockSync {
    // SAFETY: a zeroed `timex` with modes = 0 is a valid read-only query; the kernel only
    // writes into the struct we own for the duration of the call.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        ClockSync::Unknown
    } else if state == libc::TIME_ERROR || tx.status & libc::STA_UNSYNC != 0 {
        ClockSync::Unsynchronised
    } else {
        ClockSync::Synchronised
    }
}

/// Milliseconds since the Unix epoch (0 for a clock set before it).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kernel_answers() {
        assert_ne!(super::sync_status(), super::ClockSync::Unknown);
    }
}
