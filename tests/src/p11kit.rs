//! A token in another process, as a network HSM is: `p11-kit server` exports a SoftHSM
//! token over a Unix socket, and signetd loads p11-kit's client module instead of SoftHSM.
//!
//! The server forks one `p11-kit-remote` per client connection; killing the server alone
//! leaves connected clients working. The server is therefore started in a process group of
//! its own, and "the HSM is lost" kills the whole group.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{register_child, unregister_child, SOFTHSM_MODULE};

/// p11-kit's client module (package p11-kit-modules), found by asking dpkg where it put it.
/// Missing p11-kit is a failure, not a skip: `scripts/install-deps.sh` installs it.
pub fn client_module() -> PathBuf {
    let out = Command::new("dpkg")
        .args(["-L", "p11-kit-modules"])
        .output()
        .expect("run dpkg");
    let listing = String::from_utf8_lossy(&out.stdout);
    let path = listing
        .lines()
        .find(|l| l.ends_with("/pkcs11/p11-kit-client.so"))
        .unwrap_or_else(|| {
            panic!("p11-kit-client.so not installed (p11-kit-modules; run scripts/install-deps.sh)")
        });
    let path = PathBuf::from(path);
    assert!(path.exists(), "{} listed but missing", path.display());
    path
}

/// A running `p11-kit server` exporting one SoftHSM token.
pub struct P11KitServer {
    child: Option<Child>,
    socket: PathBuf,
    softhsm_conf: PathBuf,
    token: String,
    log: PathBuf,
    starts: usize,
}

impl P11KitServer {
    /// Export the token labelled `token` of the SoftHSM configured by `softhsm_conf` on
    /// `socket`, and wait until the socket accepts connections.
    pub fn start(socket: &Path, softhsm_conf: &Path, token: &str) -> P11KitServer {
        let mut server = P11KitServer {
            child: None,
            socket: socket.to_owned(),
            softhsm_conf: softhsm_conf.to_owned(),
            token: token.to_owned(),
            log: socket.with_extension("log"),
            starts: 0,
        };
        server.restart();
        server
    }

    /// What the client module needs in its environment.
    pub fn client_env(&self) -> (String, String) {
        (
            "P11_KIT_SERVER_ADDRESS".into(),
            format!("unix:path={}", self.socket.display()),
        )
    }

    /// Start the server again (after [`P11KitServer::kill9`]) and wait until it accepts.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "p11-kit server already running");
        self.starts += 1;
        let log = std::fs::File::create(self.log.with_extension(format!("{}.log", self.starts)))
            .expect("p11-kit log");
        let child = Command::new("p11-kit")
            .arg("server")
            .arg("--provider")
            .arg(SOFTHSM_MODULE)
            .arg("-f")
            .arg("-n")
            .arg(&self.socket)
            .arg(format!("pkcs11:token={}", self.token))
            .env("SOFTHSM2_CONF", &self.softhsm_conf)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("p11-kit not installed (run scripts/install-deps.sh)");
        register_child(child.id());
        self.child = Some(child);
        // A socket file left by a killed server exists but refuses: wait for a listener.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("p11-kit server exited with {status}");
                }
            }
            assert!(
                Instant::now() < deadline,
                "p11-kit server not accepting on {} within 10 s",
                self.socket.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send `signal` to the server and every `p11-kit-remote` it forked (SIGSTOP: the token
    /// stops answering without closing anything, as behind a network that drops packets).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let child = self.child.as_ref().expect("p11-kit server running");
        let group = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::killpg(group, signal).expect("signal the p11-kit server");
    }

    /// SIGKILL the server and every `p11-kit-remote` it forked: the token is gone.
    pub fn kill9(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        // A stopped group dies of SIGKILL too; SIGCONT is not needed.
        let _ = child.wait();
        unregister_child(child.id());
    }
}

impl Drop for P11KitServer {
    fn drop(&mut self) {
        self.kill9();
    }
}
