//! Which PKCS#11 implementation holds the appliance's keys in a test run.
//!
//! `SIGNET_TEST_TOKEN=softhsm` (the default) gives each appliance a SoftHSM token in its
//! state directory. `SIGNET_TEST_TOKEN=tpm2` puts the keys in tpm2-pkcs11 instead, on a
//! swtpm started once per test binary; each appliance has its own token (its own
//! TPM2_PKCS11_STORE under its state directory) on that TPM.
//!
//! tpm2-pkcs11 needs a resource manager between it and the TPM: it keeps every key it has
//! used loaded, and swtpm, like the TPM 2.0 minimum, holds 3 transient objects, so the
//! second key generation of a ceremony already fails with "out of memory for object
//! contexts". A real TPM is reached through the kernel's resource manager (/dev/tpmrm0);
//! here tpm2-abrmd plays that part, on a D-Bus session bus of the test binary's own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::register_child;
use crate::swtpm::Swtpm;

/// tpm2-pkcs11's module as Debian installs it (libtpm2-pkcs11-1).
pub const TPM2_PKCS11_MODULE: &str = "/usr/lib/x86_64-linux-gnu/libtpm2_pkcs11.so.1";

/// A PKCS#11 implementation the e2e suites run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SoftHSM2, a token per appliance under its state directory.
    SoftHsm,
    /// tpm2-pkcs11 on swtpm (through tpm2-abrmd).
    Tpm2,
}

impl Backend {
    /// The backend this test run uses: `SIGNET_TEST_TOKEN`, SoftHSM when unset. An unknown
    /// value fails the test rather than quietly testing something else.
    pub fn current() -> Backend {
        match std::env::var("SIGNET_TEST_TOKEN").as_deref() {
            Err(_) | Ok("") | Ok("softhsm") => Backend::SoftHsm,
            Ok("tpm2") => Backend::Tpm2,
            Ok(other) => panic!("SIGNET_TEST_TOKEN={other:?}: expected softhsm or tpm2"),
        }
    }
}

/// Point a fresh appliance's config at the current backend (before `signetctl init`).
pub(crate) fn configure(table: &mut toml::Table) {
    if Backend::current() != Backend::Tpm2 {
        return;
    }
    let hsm = table
        .get_mut("hsm")
        .and_then(toml::Value::as_table_mut)
        .expect("[hsm] in dev.toml");
    hsm.insert("module".into(), TPM2_PKCS11_MODULE.into());
    hsm.remove("softhsm_dir");
}

/// The environment signetd and signetctl need to reach the appliance's token in `state_dir`.
pub(crate) fn env(state_dir: &Path) -> Vec<(String, String)> {
    match Backend::current() {
        Backend::SoftHsm => Vec::new(),
        Backend::Tpm2 => {
            let stack = tpm2_stack();
            let store = state_dir.join("tpm2-store");
            std::fs::create_dir_all(&store).expect("tpm2-pkcs11 store directory");
            vec![
                ("TPM2_PKCS11_TCTI".into(), stack.tcti()),
                (
                    "TPM2_PKCS11_STORE".into(),
                    store.to_string_lossy().into_owned(),
                ),
                ("DBUS_SESSION_BUS_ADDRESS".into(), stack.bus_address()),
                // ESAPI's warnings about expected TPM retries would fill the daemon's log.
                ("TSS2_LOG".into(), "all+none".into()),
            ]
        }
    }
}

/// Held while a token is made. tpm2-pkcs11's C_InitToken picks a free persistent handle for
/// its primary key and then claims it: two at once pick the same one, and the second fails
/// ("Esys_EvictControl: NV Index or persistent object already defined").
pub(crate) fn making_a_token() -> Option<std::sync::MutexGuard<'static, ()>> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    (Backend::current() == Backend::Tpm2).then(|| LOCK.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Held for the whole of a test whose assertions count on the signing capacity of the box
/// (latencies under load, rates of a budget): no other test of the same binary loads the
/// same token hardware (one swtpm per binary) or the two cores meanwhile.
pub fn measuring_alone() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// swtpm, a D-Bus session bus and tpm2-abrmd, started once per test binary.
pub struct Tpm2Stack {
    _swtpm: Swtpm,
    dir: tempfile::TempDir,
    _bus: Child,
    _abrmd: Child,
}

const ABRMD_NAME: &str = "com.intel.tss2.Tabrmd.signet";

impl Tpm2Stack {
    fn start() -> Tpm2Stack {
        let swtpm = Swtpm::start();
        let dir = tempfile::Builder::new()
            .prefix("signet-tpm2-")
            .tempdir()
            .expect("tempdir");
        let socket = dir.path().join("bus.sock");
        let bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dbus-daemon (install dbus): {e}"));
        register_child(bus.id());
        wait_for(|| socket.exists(), "the D-Bus session bus");
        let address = format!("unix:path={}", socket.display());
        let log = std::fs::File::create(dir.path().join("abrmd.log")).expect("log");
        let abrmd = Command::new(abrmd_path())
            .args(["--session", "--allow-root", "--flush-all"])
            .arg(format!("--dbus-name={ABRMD_NAME}"))
            .arg(format!("--tcti={}", swtpm.tcti()))
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tpm2-abrmd (install tpm2-abrmd): {e}"));
        register_child(abrmd.id());
        let stack = Tpm2Stack {
            _swtpm: swtpm,
            dir,
            _bus: bus,
            _abrmd: abrmd,
        };
        // Ready when a client gets an answer from the TPM through it.
        wait_for(
            || {
                Command::new("tpm2_getcap")
                    .arg("properties-fixed")
                    .env("TPM2TOOLS_TCTI", stack.tcti())
                    .env("DBUS_SESSION_BUS_ADDRESS", stack.bus_address())
                    .env("TSS2_LOG", "all+none")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            },
            "tpm2-abrmd",
        );
        stack
    }

    /// The TCTI of the resource manager, for tpm2-pkcs11 and tpm2-tools.
    pub fn tcti(&self) -> String {
        format!("tabrmd:bus_name={ABRMD_NAME},bus_type=session")
    }

    /// The session bus the resource manager is on.
    pub fn bus_address(&self) -> String {
        format!("unix:path={}", self.dir.path().join("bus.sock").display())
    }
}

/// The test binary's TPM stack, started on first use. Statics are never dropped: the
/// processes are killed when the test binary exits (see `register_child`).
pub fn tpm2_stack() -> &'static Tpm2Stack {
    static STACK: OnceLock<Tpm2Stack> = OnceLock::new();
    STACK.get_or_init(Tpm2Stack::start)
}

fn abrmd_path() -> PathBuf {
    // Debian installs the daemon in sbin, which a test's PATH may lack.
    ["/usr/sbin/tpm2-abrmd", "/usr/bin/tpm2-abrmd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("tpm2-abrmd"))
}

fn wait_for(mut ready: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not come up within 15 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
