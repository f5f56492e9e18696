//! A real swtpm of the test's own: fresh state in a temporary directory, on two
//! consecutive free ports of 127.0.0.1 (the swtpm TCTI takes the control channel on
//! port + 1), killed on drop.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{register_child, run_ok, unregister_child};

/// A running swtpm.
pub struct Swtpm {
    child: Child,
    port: u16,
    _state: tempfile::TempDir,
}

impl Swtpm {
    /// Start a swtpm with a fresh TPM (all PCRs zero, empty owner auth).
    pub fn start() -> Swtpm {
        for _ in 0..20 {
            let port = two_free_ports();
            let state = tempfile::Builder::new()
                .prefix("signet-swtpm-")
                .tempdir()
                .expect("tempdir");
            let mut child = Command::new("swtpm")
                .args(["socket", "--tpm2"])
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .arg("--tpmstate")
                .arg(format!("dir={}", state.path().display()))
                .args(["--flags", "not-need-init,startup-clear"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start swtpm (install swtpm): {e}"));
            register_child(child.id());
            if wait_listening(&mut child, port) {
                return Swtpm {
                    child,
                    port,
                    _state: state,
                };
            }
            // Another process took a port between the probe and the bind: try others.
            let _ = child.kill();
            let _ = child.wait();
            unregister_child(child.id());
        }
        panic!("swtpm did not start on any pair of free ports");
    }

    /// The TCTI string for tss-esapi, tpm2-tools and signet (`--tcti`, SIGNET_TCTI).
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// A tpm2-tools command (`tpm2_pcrextend`, ...) pointed at this TPM.
    pub fn tool(&self, name: &str) -> Command {
        let mut cmd = Command::new(name);
        cmd.env("TPM2TOOLS_TCTI", self.tcti());
        cmd
    }

    /// Extend SHA-256 PCR `pcr` with the SHA-256 of `data` (tpm2_pcrextend).
    pub fn extend(&self, pcr: u8, data: &[u8]) {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(data));
        run_ok(
            self.tool("tpm2_pcrextend")
                .arg(format!("{pcr}:sha256={digest}")),
        );
    }

    /// The current SHA-256 value of PCR `pcr`, hex (tpm2_pcrread).
    pub fn read(&self, pcr: u8, dir: &Path) -> String {
        let out = dir.join(format!("pcr{pcr}.bin"));
        run_ok(
            self.tool("tpm2_pcrread")
                .arg("-Q")
                .arg("-o")
                .arg(&out)
                .arg(format!("sha256:{pcr}")),
        );
        hex::encode(std::fs::read(&out).expect("pcr value"))
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        unregister_child(self.child.id());
    }
}

/// A port P such that P and P + 1 were both free a moment ago.
fn two_free_ports() -> u16 {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = a.local_addr().expect("addr").port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// Wait until swtpm accepts connections on `port` (false if it exited).
fn wait_listening(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port + 1)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
