//! signetd as an appliance: the unit's sandbox as systemd scores it, the sd_notify protocol
//! spoken to a socket of the test's own, the process's own hardening (locked memory, not
//! dumpable, no core), and the Debian package installed into a throwaway root.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use signet_e2e::{bin, repo_root, run, run_ok, Appliance, Launch};

fn unit(name: &str) -> PathBuf {
    repo_root().join("systemd").join(name)
}

#[test]
fn unit_exposure_is_at_most_1_5_with_every_sandbox_setting() {
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(unit("signetd.service")));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for signetd.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{text}"));
    println!("systemd-analyze security: exposure {score}");
    assert!(score <= 1.5, "exposure {score} > 1.5:\n{text}");
    // The same bound on systemd's own 0-100 scale, without rounding.
    run_ok(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=15"])
            .arg(unit("signetd.service")),
    );

    let service = std::fs::read_to_string(unit("signetd.service")).unwrap();
    let settings: BTreeSet<&str> = service
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k.trim())
        .collect();
    for key in [
        "Type",
        "WatchdogSec",
        "Restart",
        "User",
        "StateDirectory",
        "RuntimeDirectory",
        "LogsDirectory",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "DeviceAllow",
        "NoNewPrivileges",
        "CapabilityBoundingSet",
        "RestrictAddressFamilies",
        "SystemCallFilter",
        "SystemCallArchitectures",
        "MemoryDenyWriteExecute",
        "LockPersonality",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectHostname",
        "ProtectProc",
        "UMask",
        "LimitCORE",
    ] {
        assert!(settings.contains(key), "signetd.service sets no {key}=");
    }
    for line in [
        "Type=notify",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "ProtectProc=invisible",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "SystemCallArchitectures=native",
        "UMask=0077",
        "LimitCORE=0",
        "DeviceAllow=/dev/tpmrm0 rw",
    ] {
        assert!(
            service.lines().any(|l| l == line),
            "signetd.service lacks `{line}`"
        );
    }
    // Devices: the TPM only (an HSM's node is added by a drop-in).
    let devices: Vec<&str> = service
        .lines()
        .filter_map(|l| l.strip_prefix("DeviceAllow="))
        .collect();
    assert_eq!(devices, ["/dev/tpmrm0 rw"]);
}

/// Datagrams received on the test's notify socket, each with when it came.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    socket: UnixDatagram,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket {
            _dir: dir,
            path,
            socket,
        }
    }

    /// The next datagram, or None after `timeout`.
    fn recv(&self, timeout: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Datagrams until one contains `line`; panics after `timeout`.
    fn until(&self, line: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self
                .recv(left.max(Duration::from_millis(1)))
                .unwrap_or_else(|| panic!("no {line} within {timeout:?}; got {seen:?}"));
            let done = msg.lines().any(|l| l == line);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }
}

#[test]
fn sd_notify_ready_only_once_the_tsa_answers_then_watchdog_and_stopping() {
    let notify = NotifySocket::new();
    let mut app = Appliance::init();
    let watchdog = Duration::from_secs(1);
    app.spawn(&Launch {
        env: vec![
            ("NOTIFY_SOCKET".into(), notify.path.clone().into()),
            (
                "WATCHDOG_USEC".into(),
                watchdog.as_micros().to_string().into(),
            ),
        ],
        ..Launch::default()
    });

    let before_ready = notify.until("READY=1", Duration::from_secs(60));
    // The TSA must answer the moment READY=1 is in: nothing is waited for.
    let log = app.log();
    assert!(
        log.contains("listening on https://") && log.contains("listening on http://"),
        "READY=1 before the listeners were bound:\n{log}"
    );
    app.wait_listening().expect("listening");
    let req = app.path("ready.tsq");
    std::fs::write(&req, signet_e2e::tsp::request(b"ready", 1, true)).unwrap();
    let (code, body) = app.post_tsa(&req, "application/timestamp-query");
    assert_eq!(code, 200);
    signet_e2e::tsp::tst_info(&body);

    let statuses: Vec<&str> = before_ready
        .iter()
        .flat_map(|m| m.lines())
        .filter_map(|l| l.strip_prefix("STATUS="))
        .collect();
    println!("STATUS lines before READY=1: {statuses:?}");
    for expected in ["opening the HSM token", "binding the listeners"] {
        assert!(
            statuses.contains(&expected),
            "no STATUS={expected}: {statuses:?}"
        );
    }

    // Keep-alives at half the interval: ~6 in 3 s, none late.
    let start = Instant::now();
    let mut beats = Vec::new();
    while start.elapsed() < Duration::from_secs(3) {
        if let Some(msg) = notify.recv(Duration::from_millis(100)) {
            if msg.lines().any(|l| l == "WATCHDOG=1") {
                beats.push(Instant::now());
            }
        }
    }
    let gaps: Vec<Duration> = beats.windows(2).map(|w| w[1] - w[0]).collect();
    println!("WATCHDOG=1 x{} in 3 s, gaps {gaps:?}", beats.len());
    assert!(
        (5..=8).contains(&beats.len()),
        "{} keep-alives",
        beats.len()
    );
    assert!(
        gaps.iter().all(|g| *g < watchdog),
        "a keep-alive came late: {gaps:?}"
    );
    assert!(
        gaps.iter().all(|g| *g > watchdog / 4),
        "keep-alives too close: {gaps:?}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(app.pid() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    notify.until("STOPPING=1", Duration::from_secs(20));
    let status = app.stop().expect("was running");
    assert!(status.success(), "{status}\n{}", app.log());
}

/// A field of /proc/PID/status in kB.
fn status_kb(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in\n{status}"))
}

const NOBODY: &str = "65534";

/// Run as nobody, allowed only to lock memory (like the unit's user with
/// LimitMEMLOCK=infinity), with core dumps enabled by the caller: anything that stops a
/// core is signetd's own doing.
fn as_nobody_with_cores(dir: &Path) -> Launch {
    let wrapper = [
        "prlimit",
        "--core=unlimited",
        "--",
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+ipc_lock",
        "--ambient-caps=+ipc_lock",
        "--",
    ];
    Launch {
        wrapper: wrapper.iter().map(OsString::from).collect(),
        current_dir: Some(dir.to_owned()),
        ..Launch::default()
    }
}

fn core_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("core"))
        })
        .collect()
}

#[test]
fn memory_is_locked_the_process_is_not_dumpable_and_segv_leaves_no_core() {
    // The control: the same launch leaves a core for a process that does nothing about it.
    let control_dir = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("chown")
            .arg(format!("{NOBODY}:{NOBODY}"))
            .arg(control_dir.path()),
    );
    let control = as_nobody_with_cores(control_dir.path());
    let mut sleeper = Command::new(&control.wrapper[0])
        .args(&control.wrapper[1..])
        .args(["sleep", "60"])
        .current_dir(control_dir.path())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let owner = std::fs::metadata(format!("/proc/{}/status", sleeper.id()))
        .unwrap()
        .uid();
    assert_eq!(owner.to_string(), NOBODY, "a plain process is dumpable");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sleeper.id() as i32),
        Signal::SIGSEGV,
    )
    .unwrap();
    let status = sleeper.wait().unwrap();
    assert!(
        status.core_dumped(),
        "this machine writes no core even for a plain process: {status}"
    );

    let mut app = Appliance::init();
    run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{NOBODY}:{NOBODY}"))
            .arg(app.dir.path()),
    );
    let cwd = app.dir.path().to_owned();
    app.spawn(&as_nobody_with_cores(&cwd));
    app.wait_listening().unwrap_or_else(|log| panic!("{log}"));
    // Some work first, so that the memory measured is that of a serving daemon.
    let req = app.path("m.tsq");
    std::fs::write(&req, signet_e2e::tsp::request(b"memory", 7, true)).unwrap();
    for _ in 0..20 {
        assert_eq!(app.post_tsa(&req, "application/timestamp-query").0, 200);
    }

    let pid = app.pid();
    let status_path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&status_path).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.contains(NOBODY), "{uid_line}");
    let (locked, rss) = (status_kb(&status, "VmLck:"), status_kb(&status, "VmRSS:"));
    println!("signetd VmLck {locked} kB, VmRSS {rss} kB");
    assert!(
        locked >= rss,
        "VmLck {locked} kB does not cover VmRSS {rss} kB"
    );
    // Not dumpable: /proc/PID belongs to root although the process runs as nobody.
    assert_eq!(
        std::fs::metadata(&status_path).unwrap().uid(),
        0,
        "signetd is dumpable"
    );
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().collect::<Vec<_>>()[4..6],
        ["0", "0"],
        "{core}"
    );

    // Rust's runtime catches the first SIGSEGV (its stack-overflow check), finds no
    // overflow and puts the default action back: a real fault then re-faults and ends the
    // process, a signal sent from outside needs sending twice.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGSEGV).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let status = app.kill_with(Signal::SIGSEGV);
    assert_eq!(status.signal(), Some(Signal::SIGSEGV as i32), "{status}");
    assert!(!status.core_dumped(), "signetd dumped core");
    assert_eq!(core_files(&cwd), Vec::<PathBuf>::new());
}

#[test]
fn started_as_root_it_drops_to_the_configured_user_after_binding() {
    let mut app = Appliance::init_with(|t| {
        let mut process = toml::Table::new();
        process.insert("user".into(), "nobody".into());
        t.insert("process".into(), process.into());
    });
    run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{NOBODY}:{NOBODY}"))
            .arg(app.dir.path()),
    );
    app.start();
    let pid = app.pid();
    // The listeners are announced before the drop: wait for the drop itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !app.log().contains("dropped root") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    for line in ["Uid:", "Gid:"] {
        let ids: Vec<&str> = status
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap()
            .split_whitespace()
            .skip(1)
            .collect();
        assert_eq!(ids, [NOBODY; 4], "{line} {ids:?}");
    }
    let caps = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert!(caps.ends_with("0000000000000000"), "{caps}");
    assert!(app.log().contains("dropped root"), "{}", app.log());
    // Serving as nobody: the listeners were bound and the token opened before the drop.
    let req = app.path("d.tsq");
    std::fs::write(&req, signet_e2e::tsp::request(b"dropped", 3, true)).unwrap();
    let (code, body) = app.post_tsa(&req, "application/timestamp-query");
    assert_eq!(code, 200);
    signet_e2e::tsp::tst_info(&body);
    // And it can still spool a PDF: the spool directory it made as root is the user's now.
    let pdf = app.path("d.pdf");
    std::fs::write(&pdf, signet_e2e::pdf::synthetic_pdf(20_000, "dropped")).unwrap();
    let out = run_ok(
        app.curl()
            .args(["-o", "/dev/null", "-w", "%{http_code}", "-H"])
            .arg("Content-Type: application/pdf")
            .arg("--data-binary")
            .arg(format!("@{}", pdf.display()))
            .arg(app.url("/v1/pdf/doc-rsa")),
    );
    assert_eq!(out.trim(), "200", "{}", app.log());
    assert!(app.stop().unwrap().success(), "{}", app.log());
}

#[test]
fn listeners_can_come_from_socket_activation() {
    let mut app = Appliance::init();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (api, public) = (free(), free());
    let wrapper = [
        "systemd-socket-activate".to_owned(),
        format!("--listen={api}"),
        format!("--listen={public}"),
        "--".to_owned(),
    ];
    app.spawn(&Launch {
        wrapper: wrapper.iter().map(OsString::from).collect(),
        ..Launch::default()
    });
    // systemd-socket-activate runs signetd on the first connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(api).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {api}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let addr = app.wait_listening().unwrap_or_else(|log| panic!("{log}"));
    assert_eq!(
        addr,
        api,
        "signetd bound a socket of its own:\n{}",
        app.log()
    );
    assert_eq!(app.public_addr, Some(public));
    assert!(app.log().contains("socket from the service manager"));
    let req = app.path("s.tsq");
    std::fs::write(&req, signet_e2e::tsp::request(b"socket", 5, true)).unwrap();
    assert_eq!(app.post_tsa(&req, "application/timestamp-query").0, 200);
    let crl = run_ok(
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(app.public_url("/crl/root.crl")),
    );
    assert_eq!(crl, "200");
    assert!(app.stop().unwrap().success(), "{}", app.log());
}

/// The package's own dependencies, marked installed in the throwaway root's dpkg database
/// (from the host's records), so that `dpkg -i` checks them for real.
fn seed_dpkg_database(root: &Path, deb: &Path) {
    let admin = root.join("var/lib/dpkg");
    for d in ["info", "updates"] {
        std::fs::create_dir_all(admin.join(d)).unwrap();
    }
    let depends = run_ok(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Depends"));
    let mut status = String::new();
    for dep in depends.split(',') {
        let name = dep.split_whitespace().next().expect("package name");
        status += &run_ok(Command::new("dpkg-query").args(["-s", name]));
        status += "\n";
    }
    std::fs::write(admin.join("status"), status).unwrap();
}

fn dpkg_in(root: &Path) -> Command {
    let mut cmd = Command::new("dpkg");
    cmd.arg(format!("--root={}", root.display()))
        .arg("--force-script-chrootless");
    cmd
}

#[test]
fn the_deb_installs_into_a_throwaway_root_with_every_file_and_a_user() {
    let out_dir = tempfile::tempdir().unwrap();
    let bins = bin("signetd").parent().unwrap().to_owned();
    let deb = PathBuf::from(
        run_ok(
            Command::new(repo_root().join("scripts/package-deb.sh"))
                .arg(out_dir.path())
                .env("SIGNET_BIN_DIR", &bins),
        )
        .trim(),
    );
    assert!(deb.exists(), "{}", deb.display());

    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    seed_dpkg_database(root, &deb);
    let install = run(dpkg_in(root).arg("-i").arg(&deb));
    let said = String::from_utf8_lossy(&install.stdout);
    assert!(
        install.status.success(),
        "dpkg -i: {said}\n{}",
        String::from_utf8_lossy(&install.stderr)
    );
    println!("{said}");
    assert!(said.contains("neither enabled nor started"), "{said}");

    let listed: BTreeSet<String> = run_ok(dpkg_in(root).args(["-L", "signet"]))
        .lines()
        .map(str::to_owned)
        .collect();
    let mut expected: Vec<String> = [
        "/usr/bin/signetd",
        "/usr/bin/signetctl",
        "/usr/lib/systemd/system/signetd.service",
        "/usr/lib/systemd/system/signetd.socket",
        "/usr/lib/sysusers.d/signet.conf",
        "/usr/lib/tmpfiles.d/signet.conf",
        "/etc/signet/appliance.toml",
        "/usr/share/man/man8/signetd.8.gz",
        "/usr/share/man/man8/signetctl.8.gz",
        "/usr/share/bash-completion/completions/signetd",
        "/usr/share/bash-completion/completions/signetctl",
        "/usr/share/zsh/vendor-completions/_signetd",
        "/usr/share/zsh/vendor-completions/_signetctl",
        "/usr/share/fish/vendor_completions.d/signetd.fish",
        "/usr/share/fish/vendor_completions.d/signetctl.fish",
    ]
    .map(String::from)
    .to_vec();
    // A man page for every subcommand the CLI has today.
    let docs = tempfile::tempdir().unwrap();
    run_ok(
        Command::new(bin("signetctl"))
            .arg("generate-docs")
            .arg(docs.path()),
    );
    for page in std::fs::read_dir(docs.path().join("man")).unwrap() {
        let name = page.unwrap().file_name().to_string_lossy().into_owned();
        expected.push(format!("/usr/share/man/man8/{name}.gz"));
    }
    assert!(expected.len() > 16, "{expected:?}");
    for file in &expected {
        assert!(listed.contains(file), "dpkg -L does not list {file}");
        assert!(
            root.join(file.trim_start_matches('/')).is_file(),
            "{file} not installed"
        );
    }
    let conffiles = run_ok(
        Command::new("dpkg-deb")
            .arg("-I")
            .arg(&deb)
            .arg("conffiles"),
    );
    assert_eq!(conffiles.trim(), "/etc/signet/appliance.toml");

    // The maintainer scripts made the user and its directories, and enabled nothing.
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let entry: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("signet:"))
        .unwrap_or_else(|| panic!("no signet user:\n{passwd}"))
        .split(':')
        .collect();
    assert_eq!(entry[6], "/usr/sbin/nologin");
    let uid: u32 = entry[2].parse().unwrap();
    for dir in ["var/lib/signet", "var/log/signet"] {
        let meta = std::fs::metadata(root.join(dir)).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (uid, 0o700), "{dir}");
    }
    assert!(
        !root
            .join("etc/systemd/system/multi-user.target.wants")
            .exists()
            && !root
                .join("etc/systemd/system/sockets.target.wants")
                .exists(),
        "the package enabled a unit"
    );
    let postinst = run_ok(Command::new("dpkg-deb").arg("-I").arg(&deb).arg("postinst"));
    for line in postinst.lines().map(str::trim_start) {
        assert!(
            !(line.starts_with("systemctl start")
                || line.starts_with("systemctl enable")
                || line.starts_with("systemctl restart")
                || line.starts_with("deb-systemd-invoke")),
            "postinst starts or enables a service: {line}"
        );
    }

    // systemd-analyze verify on the installed units, inside that root: the installed
    // binary for ExecStart=, the installed man page for Documentation=, and the host's
    // own units for the targets they name.
    run_ok(
        Command::new("cp")
            .args(["-rn", "/usr/lib/systemd/system/."])
            .arg(root.join("usr/lib/systemd/system")),
    );
    let verify = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(["signetd.service", "signetd.socket"])
        .env("MANPATH", root.join("usr/share/man")));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        verify.status.success() && said.trim().is_empty(),
        "verify: {said}"
    );

    // Removal keeps the config (a conffile) and the state.
    run_ok(dpkg_in(root).args(["-r", "signet"]));
    assert!(!root.join("usr/bin/signetd").exists());
    assert!(root.join("etc/signet/appliance.toml").exists());
    assert!(root.join("var/lib/signet").exists());
}
