//! A real PostgreSQL server of the test's own: Debian's binaries, `initdb` in a temporary
//! directory, run as an unprivileged user (PostgreSQL refuses root) on a free port of
//! 127.0.0.1, with TLS from a CA made for it. Stopped on drop, and killed when the test
//! binary exits if a static holds it.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{register_child, run, run_ok, unregister_child};

/// The role the appliance logs in as, and its password.
pub const USER: &str = "signet";
/// `USER`'s password.
pub const PASSWORD: &str = "test-only-db-password";

/// A running (or stopped) PostgreSQL server.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    tls: bool,
    child: Option<Child>,
}

impl Postgres {
    /// A server that offers TLS (and still accepts clear connections, so that a client's
    /// own `require` is what is tested).
    pub fn start() -> Postgres {
        Postgres::start_with(true)
    }

    /// A server without TLS.
    pub fn start_without_tls() -> Postgres {
        Postgres::start_with(false)
    }

    fn start_with(tls: bool) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("signet-pg-")
            .tempdir()
            .expect("tempdir");
        let bin = binaries();
        let data = dir.path().join("data");
        std::fs::write(dir.path().join("pw"), "superuser-of-the-test\n").expect("pwfile");
        if tls {
            make_tls(dir.path());
        }
        hand_over(dir.path());
        run_ok(
            as_db_user(&bin.join("initdb"))
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ])
                .args(["-E", "UTF8", "--no-instructions"])
                .arg(format!("--pwfile={}", dir.path().join("pw").display()))
                .arg("-D")
                .arg(&data),
        );
        let mut server = Postgres {
            dir,
            bin,
            port: 0,
            tls,
            child: None,
        };
        server.start_again();
        server.psql(
            "postgres",
            &format!("CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'"),
        );
        server
    }

    /// Start the server again on the same data (and, when free, the same port).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        for _ in 0..20 {
            if self.port == 0 || TcpListener::bind(("127.0.0.1", self.port)).is_err() {
                self.port = free_port();
            }
            let mut cmd = as_db_user(&self.bin.join("postgres"));
            cmd.arg("-D")
                .arg(self.dir.path().join("data"))
                .args(["-p", &self.port.to_string()])
                .args(["-c", "listen_addresses=127.0.0.1"])
                .arg("-c")
                .arg(format!(
                    "unix_socket_directories={}",
                    self.dir.path().display()
                ))
                .args(["-c", "max_connections=60", "-c", "log_min_messages=fatal"]);
            if self.tls {
                cmd.args(["-c", "ssl=on"])
                    .arg("-c")
                    .arg(format!(
                        "ssl_cert_file={}",
                        self.file("server.pem").display()
                    ))
                    .arg("-c")
                    .arg(format!(
                        "ssl_key_file={}",
                        self.file("server.key").display()
                    ));
            }
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start postgres (install postgresql): {e}"));
            register_child(child.id());
            if self.wait_ready(&mut child) {
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            unregister_child(child.id());
            self.port = 0;
        }
        panic!("postgres did not start on any free port");
    }

    /// Stop the server (fast shutdown: open connections are closed).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let _ = child.wait();
            unregister_child(child.id());
        }
    }

    /// The TCP port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection string for `database` as `USER`, without the password.
    pub fn url(&self, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={USER} dbname={database}",
            self.port
        )
    }

    /// The CA that signed the server's certificate (for `store.ca_file`).
    pub fn ca_file(&self) -> PathBuf {
        self.file("ca.pem")
    }

    /// A new empty database owned by `USER`; its name.
    pub fn create_database(&self) -> String {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let name = format!(
            "signet_{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name} OWNER {USER}"));
        name
    }

    /// Run `sql` as the superuser on `database` (over the private socket); its output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        run_ok(
            Command::new("psql")
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .arg("-h")
                .arg(self.dir.path())
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    database,
                ])
                .args(["-c", sql]),
        )
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn wait_ready(&self, child: &mut Child) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return false;
            }
            let probe = run(Command::new("pg_isready")
                .arg("-q")
                .arg("-h")
                .arg(self.dir.path())
                .args(["-p", &self.port.to_string()]));
            if probe.status.success() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The newest installed PostgreSQL's binaries (Debian keeps them per version).
fn binaries() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap_or_else(|e| panic!("no PostgreSQL installed (install postgresql): {e}"))
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().expect("no initdb under /usr/lib/postgresql")
}

/// `program` run as the unprivileged `nobody` when we are root, as ourselves otherwise.
fn as_db_user(program: &Path) -> Command {
    if nix::unistd::geteuid().is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// Give the server's directory to the user it runs as.
fn hand_over(dir: &Path) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let nobody = Some(nix::unistd::Uid::from_raw(65534));
    let nogroup = Some(nix::unistd::Gid::from_raw(65534));
    for entry in std::iter::once(dir.to_path_buf()).chain(
        std::fs::read_dir(dir)
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.path())),
    ) {
        nix::unistd::chown(&entry, nobody, nogroup).expect("chown");
    }
}

/// A CA and a server certificate for 127.0.0.1 and localhost, made with openssl.
fn make_tls(dir: &Path) {
    let at = |name: &str| dir.join(name);
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=Test PostgreSQL CA"])
            .arg("-keyout")
            .arg(at("ca.key"))
            .arg("-out")
            .arg(at("ca.pem")),
    );
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-subj", "/CN=localhost"])
            .arg("-keyout")
            .arg(at("server.key"))
            .arg("-out")
            .arg(at("server.csr")),
    );
    std::fs::write(
        at("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2"])
            .arg("-in")
            .arg(at("server.csr"))
            .arg("-CA")
            .arg(at("ca.pem"))
            .arg("-CAkey")
            .arg(at("ca.key"))
            .args(["-CAcreateserial", "-extfile"])
            .arg(at("ext.cnf"))
            .arg("-out")
            .arg(at("server.pem")),
    );
    std::fs::set_permissions(at("server.key"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod key");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
