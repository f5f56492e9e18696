//! What signetd does to itself before it holds a secret: no core dumps, no ptrace by the
//! same user, memory locked so no page of a PIN or session reaches swap; and, started as
//! root outside systemd, the drop to its own user once the listeners and the token are held.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::mman::{mlockall, munlockall, MlockAllFlags};
use nix::sys::prctl;
use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
use nix::unistd::{self, Gid, Uid, User};

/// Why the process could not be hardened as asked.
#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: nix::Error,
    },
    /// The configured user does not exist.
    #[error("process.user {0:?}: no such user")]
    NoSuchUser(String),
    /// The configured user is root, which drops nothing.
    #[error("process.user {0:?} is root: name the appliance's own user")]
    RootUser(String),
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> HardeningError {
    move |source| HardeningError::Sys { what, source }
}

/// How far the memory lock got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryLock {
    /// Every page, now and future, is locked.
    Locked,
    /// Not locked: `RLIMIT_MEMLOCK` is finite and CAP_IPC_LOCK is missing, so locking the
    /// future mappings would make allocations fail once the limit is reached.
    LimitTooLow {
        /// The soft limit, in bytes.
        limit: u64,
    },
    /// `mlockall` failed.
    Failed(nix::Error),
}

/// Core dumps off (limit 0, soft and hard), not dumpable (so not ptrace-able nor readable
/// through /proc by the same user), and no gaining privileges through exec.
pub fn forbid_dumps() -> Result<(), HardeningError> {
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(sys("setrlimit(RLIMIT_CORE, 0)"))?;
    prctl::set_dumpable(false).map_err(sys("prctl(PR_SET_DUMPABLE, 0)"))?;
    prctl::set_no_new_privs().map_err(sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    Ok(())
}

/// Whether [`lock_memory`] locked the process's memory (and no drop unlocked it since).
static LOCKED: AtomicBool = AtomicBool::new(false);

/// Whether every page of the process is locked in memory.
pub fn memory_locked() -> bool {
    LOCKED.load(Ordering::SeqCst)
}

/// Lock every page now mapped and every page mapped later, when that cannot starve the
/// allocator: with CAP_IPC_LOCK, or with an unlimited `RLIMIT_MEMLOCK` (the unit's
/// `LimitMEMLOCK=infinity`).
pub fn lock_memory() -> MemoryLock {
    if !can_lock_without_limit() {
        let limit = getrlimit(Resource::RLIMIT_MEMLOCK).map_or(0, |(soft, _)| soft);
        return MemoryLock::LimitTooLow { limit };
    }
    match mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE) {
        Ok(()) => {
            LOCKED.store(true, Ordering::SeqCst);
            MemoryLock::Locked
        }
        Err(e) => MemoryLock::Failed(e),
    }
}

fn can_lock_without_limit() -> bool {
    matches!(getrlimit(Resource::RLIMIT_MEMLOCK), Ok((RLIM_INFINITY, _))) || has_cap_ipc_lock()
}

/// CAP_IPC_LOCK in the effective set, read from /proc/self/status.
fn has_cap_ipc_lock() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

/// Open files signetd needs besides its connections: the database, the audit log, the
/// token, spooled PDFs, admin connections, the runtime's own descriptors.
pub const FILES_BESIDES_CONNECTIONS: u64 = 256;

/// `RLIMIT_NOFILE` after [`raise_open_files`].
#[derive(Debug, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit (the most the soft one could be raised to).
    pub hard: u64,
}

/// Raise the soft limit on open files to the hard one: every connection is a descriptor,
/// and the soft default (1024) is below what two listeners of 1024 connections each need.
/// signetd never uses select(2), so a high limit costs nothing. The caller compares the
/// result with what its connection budgets need.
pub fn raise_open_files() -> Result<OpenFiles, HardeningError> {
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(sys("getrlimit(RLIMIT_NOFILE)"))?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(sys("setrlimit(RLIMIT_NOFILE)"))?;
    }
    Ok(OpenFiles {
        soft: soft.max(hard),
        hard,
    })
}

/// What [`drop_to_user`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Not root: nothing to drop.
    NotRoot,
    /// Now running as this uid and gid; memory still locked or not.
    To {
        /// The user's uid.
        uid: u32,
        /// Its primary group.
        gid: u32,
        /// Whether the memory lock survived the drop.
        still_locked: bool,
    },
}

/// When running as root, become `user` (its uid, primary group and supplementary groups).
/// Without root's CAP_IPC_LOCK the locked memory then counts against `RLIMIT_MEMLOCK`, so
/// the limit is lifted first; where that is refused (no CAP_SYS_RESOURCE) the memory is
/// unlocked rather than left to make allocations fail, and the caller decides.
pub fn drop_to_user(user: &str) -> Result<Dropped, HardeningError> {
    if !unistd::geteuid().is_root() {
        return Ok(Dropped::NotRoot);
    }
    let entry = User::from_name(user)
        .map_err(sys("getpwnam"))?
        .ok_or_else(|| HardeningError::NoSuchUser(user.to_owned()))?;
    if entry.uid.is_root() {
        return Err(HardeningError::RootUser(user.to_owned()));
    }
    let still_locked = memory_locked()
        && match setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY) {
            Ok(()) => true,
            Err(_) => {
                munlockall().map_err(sys("munlockall"))?;
                LOCKED.store(false, Ordering::SeqCst);
                false
            }
        };
    let name = std::ffi::CString::new(user).map_err(|_| HardeningError::NoSuchUser(user.into()))?;
    // glibc applies each of these to every thread of the process.
    unistd::initgroups(&name, entry.gid).map_err(sys("initgroups"))?;
    unistd::setresgid(entry.gid, entry.gid, entry.gid).map_err(sys("setresgid"))?;
    unistd::setresuid(entry.uid, entry.uid, entry.uid).map_err(sys("setresuid"))?;
    if unistd::setuid(Uid::from_raw(0)).is_ok() || unistd::setgid(Gid::from_raw(0)).is_ok() {
        return Err(HardeningError::Sys {
            what: "root could be regained after the drop",
            source: nix::Error::EPERM,
        });
    }
    // A change of credentials resets dumpability to fs.suid_dumpable: set it again.
    prctl::set_dumpable(false).map_err(sys("prctl(PR_SET_DUMPABLE, 0)"))?;
    Ok(Dropped::To {
        uid: entry.uid.as_raw(),
        gid: entry.gid.as_raw(),
        still_locked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_are_forbidden_in_this_process() {
        forbid_dumps().unwrap();
        assert_eq!(getrlimit(Resource::RLIMIT_CORE).unwrap(), (0, 0));
        assert!(!prctl::get_dumpable().unwrap());
    }
}
