//! The end-to-end harness: a real `signetd` on 127.0.0.1 with a port it picked itself, a
//! token of its own (SoftHSM, or tpm2-pkcs11 with `SIGNET_TEST_TOKEN=tpm2`: see [`token`])
//! in a temporary state directory, and the outside judges
//! (openssl, curl, rfc3161ng) run as they would be by a user.
//!
//! The binaries are those of the same build profile as the test (`cargo build --bins`
//! first; `scripts/test.sh` does). A missing binary or judge fails the test: nothing skips.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_owned()
}

/// A binary of this workspace, from the same profile directory as the running test, or
/// from the directory `SIGNET_BIN_DIR` names.
pub fn bin(name: &str) -> PathBuf {
    // Another build's binaries, to compare two versions with the same benchmark.
    if let Some(dir) = std::env::var_os("SIGNET_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> (tests) or target/<profile>/<bench> (benches)
    let mut dir = exe.parent().expect("exe dir").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries of this profile first (`cargo build --bins`, as scripts/test.sh does)",
        path.display()
    );
    path
}

/// The Python of the judges' venv (made by scripts/install-deps.sh).
pub fn judges_python() -> PathBuf {
    let py = repo_root().join(".venv/judges/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/install-deps.sh",
        py.display()
    );
    py
}

/// Run a command to completion, panicking with its output if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Run a command that must succeed; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh P-256 key and a PKCS#10 request for `subject` (openssl's `/O=Signet/CN=x` form),
/// made by openssl in `dir` as `{stem}.key` and `{stem}.csr`: (key, request).
pub fn p256_csr(dir: &Path, stem: &str, subject: &str) -> (PathBuf, PathBuf) {
    let (key, csr) = (
        dir.join(format!("{stem}.key")),
        dir.join(format!("{stem}.csr")),
    );
    run_ok(
        Command::new("openssl")
            .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
            .args([
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                subject,
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    (key, csr)
}

/// SoftHSM's PKCS#11 module as Debian installs it.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Children to kill when the test binary exits, even if a test panicked holding them
/// (shared fixtures live in statics, whose Drop never runs).
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Remember a child's pid so that it is killed when the test binary exits.
#[allow(unsafe_code)]
pub(crate) fn register_child(pid: u32) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    extern "C" fn kill_children() {
        if let Ok(pids) = CHILDREN.lock() {
            for pid in pids.iter() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    // SAFETY: registering a plain extern "C" function with atexit has no preconditions.
    ONCE.call_once(|| unsafe {
        libc_atexit(kill_children);
    });
    CHILDREN.lock().unwrap().push(pid);
}

extern "C" {
    #[link_name = "atexit"]
    fn libc_atexit(f: extern "C" fn()) -> i32;
}

/// Forget a child that has been reaped.
pub(crate) fn unregister_child(pid: u32) {
    CHILDREN.lock().unwrap().retain(|p| *p != pid);
}

/// How to start signetd: a command that runs it (`setpriv ...`, `prlimit ...`) and extra
/// environment. The default runs it as is.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// Program and arguments put before signetd's path.
    pub wrapper: Vec<std::ffi::OsString>,
    /// Environment variables added.
    pub env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    /// Its working directory (default: the test's).
    pub current_dir: Option<PathBuf>,
    /// `--config` (default: the appliance's config file), e.g. `sealed:PATH`.
    pub config: Option<std::ffi::OsString>,
}

/// One appliance: its state directory (with token, PKI and database), its config, and
/// maybe a running signetd.
pub struct Appliance {
    /// The temporary state directory; removed on drop.
    pub dir: tempfile::TempDir,
    /// The config file written for it.
    pub config: PathBuf,
    child: Option<Child>,
    /// Where the running daemon listens (mutual TLS).
    pub addr: Option<SocketAddr>,
    /// Where the running daemon's plain-HTTP public listener is.
    pub public_addr: Option<SocketAddr>,
    /// Where to put the public listener at start: port 0 by default; a fixed port when the
    /// certificates' AIA and CDP must reach it (set `public.listen` to the same at init).
    pub public_listen: String,
    /// Where to put the API listener at start: port 0 by default (see [`Appliance::pin_ports`]).
    pub api_listen: String,
    /// Environment given to every signetd and signetctl of this appliance (e.g. where a
    /// token served by `p11-kit server` is).
    pub env: Vec<(String, String)>,
    log: PathBuf,
    starts: usize,
}

impl Appliance {
    /// A fresh appliance from `dev.toml` with `edit` applied to the TOML, initialised with
    /// `signetctl init`.
    pub fn init_with(edit: impl FnOnce(&mut toml::Table)) -> Appliance {
        let dir = tempfile::Builder::new()
            .prefix("signet-e2e-")
            .tempdir()
            .expect("tempdir");
        let text = std::fs::read_to_string(repo_root().join("firmware-config/dev.toml"))
            .expect("dev.toml");
        let mut table: toml::Table = text.parse().expect("dev.toml parses");
        table.insert(
            "state_dir".into(),
            toml::Value::String(dir.path().to_string_lossy().into_owned()),
        );
        token::configure(&mut table);
        store::configure(&mut table);
        // Tests run side by side: each daemon's metrics on a port of its own (see
        // `Appliance::metrics_addr`).
        let mut metrics = toml::Table::new();
        metrics.insert("listen".into(), toml::Value::String("127.0.0.1:0".into()));
        table.insert("metrics".into(), toml::Value::Table(metrics));
        edit(&mut table);
        let config = dir.path().join("appliance.toml");
        std::fs::write(&config, toml::to_string(&table).expect("toml")).expect("write config");
        let log = dir.path().join("signetd.log");
        let appliance = Appliance {
            dir,
            config,
            child: None,
            addr: None,
            public_addr: None,
            public_listen: "127.0.0.1:0".to_owned(),
            api_listen: "127.0.0.1:0".to_owned(),
            env: Vec::new(),
            log,
            starts: 0,
        };
        let _one_at_a_time = token::making_a_token();
        run_ok(
            Command::new(bin("signetctl"))
                .envs(token::env(appliance.dir.path()))
                .arg("init")
                .arg("--config")
                .arg(&appliance.config),
        );
        appliance
    }

    /// Like `init_with`, but the public listener's port is picked now and written into the
    /// config before `init`, so the OCSP and CRL URLs of the certificates it issues reach this
    /// appliance's daemon: relying parties that follow them (pyHanko) get their answers.
    pub fn init_reachable(edit: impl FnOnce(&mut toml::Table)) -> Appliance {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut app = Appliance::init_with(|t| {
            let mut public = toml::Table::new();
            public.insert("listen".into(), toml::Value::String(listen.clone()));
            t.insert("public".into(), toml::Value::Table(public));
            edit(t);
        });
        app.public_listen = listen;
        app
    }

    /// Listen on ports picked now, the same at every start: what a load balancer in front
    /// of the box is configured with.
    pub fn pin_ports(&mut self) {
        self.api_listen = format!("127.0.0.1:{}", free_port());
        self.public_listen = format!("127.0.0.1:{}", free_port());
    }

    /// A fresh appliance from the unchanged `dev.toml`.
    pub fn init() -> Appliance {
        Appliance::init_with(|_| {})
    }

    /// Rewrite the config file with `edit` applied (takes effect at the next start).
    pub fn edit_config(&self, edit: impl FnOnce(&mut toml::Table)) {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let mut table: toml::Table = text.parse().expect("config parses");
        edit(&mut table);
        std::fs::write(&self.config, toml::to_string(&table).expect("toml")).expect("write config");
    }

    /// `pkcs11-tool` on this appliance's token, logged in, whichever the backend.
    pub fn pkcs11_tool(&self) -> Command {
        let module = match token::Backend::current() {
            token::Backend::SoftHsm => SOFTHSM_MODULE,
            token::Backend::Tpm2 => token::TPM2_PKCS11_MODULE,
        };
        let mut cmd = Command::new("pkcs11-tool");
        cmd.envs(self.token_env()).args([
            "--module",
            module,
            "--token-label",
            "signet-dev",
            "--login",
            "--pin",
            "1234",
        ]);
        cmd
    }

    /// Where the running daemon serves `/metrics`, from its log.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        let log = self.log();
        let (_, rest) = log.rsplit_once("metrics at http")?;
        let rest = rest.trim_start_matches('s').strip_prefix("://")?;
        rest.split('/').next()?.trim().parse().ok()
    }

    /// A second box of this appliance: a copy of its state directory (the token's files
    /// stand for the keys an HSM cluster replicates; the PKI files are the same) with an
    /// audit log, lock and logs of its own, and the same config, so the same store.
    /// SoftHSM only.
    pub fn replica(&self) -> Appliance {
        let dir = tempfile::Builder::new()
            .prefix("signet-e2e-")
            .tempdir()
            .expect("tempdir");
        run_ok(
            Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", self.dir.path().display()))
                .arg(dir.path()),
        );
        for own in ["audit", "signet.lock", "admin.sock"] {
            let path = dir.path().join(own);
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
        let (from, to) = (
            self.dir.path().to_string_lossy().into_owned(),
            dir.path().to_string_lossy().into_owned(),
        );
        let config = dir.path().join("appliance.toml");
        for file in [config.clone(), dir.path().join("softhsm/softhsm2.conf")] {
            if let Ok(text) = std::fs::read_to_string(&file) {
                std::fs::write(&file, text.replace(&from, &to)).expect("rewrite");
            }
        }
        let log = dir.path().join("signetd.log");
        Appliance {
            dir,
            config,
            child: None,
            addr: None,
            public_addr: None,
            public_listen: "127.0.0.1:0".to_owned(),
            api_listen: "127.0.0.1:0".to_owned(),
            env: Vec::new(),
            log,
            starts: 0,
        }
    }

    /// The appliance's store (SQLite or PostgreSQL, as its config says), opened beside
    /// its daemon.
    pub fn store(&self) -> signet::store::Store {
        store::open(&self.config, self.dir.path())
    }

    /// A path under the state directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The environment that points a PKCS#11 client (signetctl, a test opening the HSM in
    /// its own process) at this appliance's token, whichever the backend.
    pub fn token_env(&self) -> Vec<(String, String)> {
        let mut env = token::env(self.dir.path());
        env.push((
            "SOFTHSM2_CONF".into(),
            self.softhsm_conf().to_string_lossy().into_owned(),
        ));
        env
    }

    /// The environment that points SoftHSM tools (pkcs11-tool) at this appliance's token.
    pub fn softhsm_conf(&self) -> PathBuf {
        self.path("softhsm/softhsm2.conf")
    }

    /// A P-256 key made by openssl and written into the token under `label` with `flags`
    /// (`--sensitive`, `--extractable`): a key that existed outside the token. Returns the
    /// software copy's PEM file, in `dir`.
    pub fn write_software_key(&self, dir: &Path, label: &str, id: &str, flags: &[&str]) -> PathBuf {
        let (pem, der, pub_der) = (
            dir.join(format!("{label}.pem")),
            dir.join(format!("{label}.der")),
            dir.join(format!("{label}.pub.der")),
        );
        run_ok(
            Command::new("openssl")
                .args([
                    "ecparam",
                    "-genkey",
                    "-name",
                    "prime256v1",
                    "-noout",
                    "-out",
                ])
                .arg(&pem),
        );
        run_ok(
            Command::new("openssl")
                .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
                .arg(&pem)
                .arg("-out")
                .arg(&der),
        );
        run_ok(
            Command::new("openssl")
                .args(["ec", "-pubout", "-outform", "DER", "-in"])
                .arg(&pem)
                .arg("-out")
                .arg(&pub_der),
        );
        for (file, kind) in [(&der, "privkey"), (&pub_der, "pubkey")] {
            run_ok(
                self.pkcs11_tool()
                    .arg("--write-object")
                    .arg(file)
                    .args(["--type", kind, "--label", label, "--id", id])
                    .args(["--usage-sign", "--private"])
                    .args(flags),
            );
        }
        pem
    }

    /// A document-signing certificate from the root for the software key `key_pem` (its
    /// request made by openssl), written with the root as `pki/{label}-chain.pem`, the path
    /// a `[[signing_keys]]` entry names (returned).
    pub fn document_chain_for(&self, dir: &Path, label: &str, key_pem: &Path) -> String {
        let (csr, leaf) = (
            dir.join(format!("{label}.csr")),
            dir.join(format!("{label}.leaf.pem")),
        );
        run_ok(
            Command::new("openssl")
                .args(["req", "-new", "-subj"])
                .arg(format!("/O=Signet/CN={label}"))
                .arg("-key")
                .arg(key_pem)
                .arg("-out")
                .arg(&csr),
        );
        run_ok(
            self.signetctl()
                .args(["cert", "issue", "--profile", "document-signing", "--csr"])
                .arg(&csr)
                .arg("--out")
                .arg(&leaf)
                .arg("--config")
                .arg(&self.config),
        );
        let mut text = std::fs::read_to_string(&leaf).expect("leaf");
        text.push_str(&std::fs::read_to_string(self.path("pki/root-ca.pem")).expect("root"));
        let rel = format!("pki/{label}-chain.pem");
        std::fs::write(self.path(&rel), text).expect("chain");
        rel
    }

    /// Start signetd on 127.0.0.1:0 and wait until it says where it listens.
    pub fn start(&mut self) -> SocketAddr {
        match self.try_start() {
            Ok(addr) => addr,
            Err(log) => panic!("signetd did not start:\n{log}"),
        }
    }

    /// Start signetd; on failure return everything it logged.
    pub fn try_start(&mut self) -> Result<SocketAddr, String> {
        self.spawn(&Launch::default());
        self.wait_listening()
    }

    /// Start signetd with `--config CONFIG` (e.g. `sealed:PATH`) and `env` added.
    pub fn try_start_from(
        &mut self,
        config: &std::ffi::OsStr,
        env: &[(&str, &str)],
    ) -> Result<SocketAddr, String> {
        self.spawn(&Launch {
            config: Some(config.to_owned()),
            env: env
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            ..Launch::default()
        });
        self.wait_listening()
    }

    /// Start signetd as `launch` says and return at once (see [`Appliance::wait_listening`]).
    pub fn spawn(&mut self, launch: &Launch) {
        assert!(self.child.is_none(), "already running");
        self.starts += 1;
        let log_path = self.log.with_extension(format!("{}.log", self.starts));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut cmd = match launch.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin("signetd"));
                c
            }
            None => Command::new(bin("signetd")),
        };
        if let Some(dir) = &launch.current_dir {
            cmd.current_dir(dir);
        }
        let child = cmd
            .envs(token::env(self.dir.path()))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .arg("--config")
            .arg(launch.config.as_deref().unwrap_or(self.config.as_os_str()))
            .arg("--listen")
            .arg(&self.api_listen)
            .arg("--public-listen")
            .arg(&self.public_listen)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn signetd");
        register_child(child.id());
        self.child = Some(child);
    }

    /// Wait until the signetd just spawned says where it listens; on failure (it exited,
    /// or 30 s passed) return everything it logged.
    pub fn wait_listening(&mut self) -> Result<SocketAddr, String> {
        let log_path = self.log.with_extension(format!("{}.log", self.starts));
        let mut child = self.child.take().expect("spawned");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let (Some(addr), Some(public)) = (
                listening_addr(&text, "https://"),
                listening_addr(&text, "http://"),
            ) {
                self.child = Some(child);
                self.addr = Some(addr);
                self.public_addr = Some(public);
                return Ok(addr);
            }
            if let Ok(Some(status)) = child.try_wait() {
                unregister_child(child.id());
                return Err(format!("exited with {status}:\n{text}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                unregister_child(child.id());
                return Err(format!("no `listening on` within 30 s:\n{text}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Everything the current (or last) daemon logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.with_extension(format!("{}.log", self.starts)))
            .unwrap_or_default()
    }

    /// Kill the daemon with SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
            unregister_child(child.id());
        }
        self.addr = None;
        self.public_addr = None;
    }

    /// Send `signal` to the daemon and wait for it to end.
    pub fn kill_with(&mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
            .expect("signal");
        let status = child.wait().expect("reap");
        unregister_child(child.id());
        self.addr = None;
        self.public_addr = None;
        status
    }

    /// Stop the daemon with SIGTERM and return its exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Ok(Some(s)) = child.try_wait() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break child.wait().expect("reap");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        unregister_child(child.id());
        self.addr = None;
        self.public_addr = None;
        assert_not_crashed(status, &self.log());
        Some(status)
    }

    /// A URL on the plain-HTTP public listener.
    pub fn public_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public_addr.expect("running"))
    }

    /// `signetctl` with this appliance's config.
    pub fn signetctl(&self) -> Command {
        let mut cmd = Command::new(bin("signetctl"));
        cmd.env("SOFTHSM2_CONF", self.softhsm_conf())
            .envs(token::env(self.dir.path()))
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Run `signetctl ARGS --config <this appliance's config>`; returns its output.
    pub fn ctl(&self, args: &[&str]) -> Output {
        run(self
            .signetctl()
            .args(args)
            .arg("--config")
            .arg(&self.config))
    }

    /// A client certificate `CN=<cn>,O=Signet` issued by the appliance's client CA through
    /// `signetctl cert issue` (from a CSR made with openssl); returns (cert, key) paths.
    pub fn issue_client(&self, cn: &str) -> (PathBuf, PathBuf) {
        let dir = self.path("clients");
        std::fs::create_dir_all(&dir).expect("dir");
        let (key, csr) = p256_csr(&dir, cn, &format!("/O=Signet/CN={cn}"));
        let cert = dir.join(format!("{cn}.pem"));
        let out = self.ctl(&[
            "cert",
            "issue",
            "--profile",
            "tls-client",
            "--csr",
            &csr.to_string_lossy(),
            "--out",
            &cert.to_string_lossy(),
        ]);
        assert!(
            out.status.success(),
            "cert issue: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (cert, key)
    }

    /// curl as the client whose certificate and key are given, trusting the root.
    pub fn curl_as(&self, cert: &Path, key: &Path) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "30"])
            .arg("--cacert")
            .arg(self.path("pki/root-ca.pem"))
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key);
        cmd
    }

    /// The API's base URL.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr.expect("running"))
    }

    /// curl with the demo client's certificate, trusting the appliance's root.
    pub fn curl(&self) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "30"])
            .arg("--cacert")
            .arg(self.path("pki/root-ca.pem"))
            .arg("--cert")
            .arg(self.path("demo/client.pem"))
            .arg("--key")
            .arg(self.path("demo/client.key"));
        cmd
    }

    /// POST `body` to the TSA with `content_type`; returns (HTTP status, body).
    pub fn post_tsa(&self, body: &Path, content_type: &str) -> (u16, Vec<u8>) {
        let out_file = tempfile::NamedTempFile::new().expect("tmp");
        let out = run(self
            .curl()
            .arg("-H")
            .arg(format!("Content-Type: {content_type}"))
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .arg("-o")
            .arg(out_file.path())
            .arg("-w")
            .arg("%{http_code}")
            .arg(self.url("/v1/tsa")));
        let code: u16 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(
            code != 0,
            "no HTTP answer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (code, std::fs::read(out_file.path()).expect("response"))
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            unregister_child(child.id());
        }
    }
}

/// Fail the test if signetd, asked to stop, died of a crash (a segfault, an abort) instead:
/// such a death at exit costs no answer, so no other assertion would see it.
fn assert_not_crashed(status: std::process::ExitStatus, log: &str) {
    use nix::sys::signal::Signal;
    use std::os::unix::process::ExitStatusExt;
    let crash = [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGABRT,
        Signal::SIGILL,
        Signal::SIGFPE,
    ];
    let signal = status.signal().and_then(|s| Signal::try_from(s).ok());
    if let Some(signal) = signal.filter(|s| crash.contains(s)) {
        if !std::thread::panicking() {
            panic!("signetd died of {signal} when asked to stop ({status}); its log:\n{log}");
        }
    }
}

fn listening_addr(log: &str, scheme: &str) -> Option<SocketAddr> {
    let rest = log.split(&format!("listening on {scheme}")).nth(1)?;
    let addr: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '\x1b')
        .collect();
    addr.parse().ok()
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Read lines of a child's output until one contains `needle` (or the stream ends).
pub fn wait_for_line(reader: impl std::io::Read, needle: &str) -> Option<String> {
    BufReader::new(reader)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains(needle))
}

/// CPU time (user + system) a process has used so far, from /proc/PID/stat.
pub fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // The command name may hold spaces: count fields after its closing parenthesis.
    let after = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest)
        .expect("stat format");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// Resident memory of a process in KiB (VmRSS), or `None` once it is gone.
pub fn process_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub mod ab;
pub mod bare;
pub mod client;
pub mod cluster;
pub mod cost;
pub mod haproxy;
pub mod load;
pub mod ocsp;
pub mod ocsp_peers;
pub mod p11kit;
pub mod pdf;
pub mod postgres;
pub mod stamp_load;
pub mod store;
pub mod swtpm;
pub mod token;
pub mod tsp;

#[cfg(test)]
mod tests {
    use super::assert_not_crashed;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    #[test]
    #[should_panic(expected = "died of SIGSEGV")]
    fn a_segfault_when_asked_to_stop_fails_the_test() {
        // A wait status of 11: killed by signal 11.
        assert_not_crashed(ExitStatus::from_raw(11), "");
    }

    #[test]
    fn an_exit_or_the_stop_signal_itself_passes() {
        for raw in [0, 1 << 8, 15, 9] {
            assert_not_crashed(ExitStatus::from_raw(raw), "");
        }
    }
}
