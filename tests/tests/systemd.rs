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

/// The settings of a unit file: `(key, value)` in order, comments and sections left out.
fn unit_settings(name: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(unit(name))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The documented production config, as the package installs it.
fn production_config() -> toml::Table {
    let text = std::fs::read_to_string(repo_root().join("firmware-config/appliance.toml")).unwrap();
    text.parse().unwrap()
}

fn production_str<'a>(config: &'a toml::Table, section: &str, key: &str) -> &'a str {
    config[section][key]
        .as_str()
        .unwrap_or_else(|| panic!("production config: no {section}.{key}"))
}

#[test]
fn unit_exposure_is_at_most_1_7_with_every_sandbox_setting() {
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
    // 1.5 with PrivateUsers=yes, which the admin socket cannot live with (the unit says
    // why; private_users_would_lock_admins_out shows it): 1.7 without.
    assert!(score <= 1.7, "exposure {score} > 1.7:\n{text}");
    // The same bound on systemd's own 0-100 scale, without rounding.
    run_ok(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=17"])
            .arg(unit("signetd.service")),
    );
    // The bound is tight: the score is 1.7 and not less, so a lost setting shows.
    assert!(
        !run(Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=16"])
            .arg(unit("signetd.service")))
        .status
        .success(),
        "the exposure went down: lower the bound to match\n{text}"
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
        "LimitNOFILE",
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
    // No user namespace: the admin socket needs the admin group and real peer credentials.
    assert!(
        !settings.contains("PrivateUsers"),
        "PrivateUsers= locks admins out of the admin socket"
    );
    // No capability: the privileged ports come from signetd.socket, which the service
    // requires and starts after.
    for line in [
        "AmbientCapabilities=",
        "Requires=signetd.socket",
        "After=signetd.socket",
    ] {
        assert!(
            service.lines().any(|l| l == line),
            "signetd.service lacks `{line}`"
        );
    }
}

#[test]
fn the_sockets_ports_are_the_production_configs_listeners_in_signetds_order() {
    let config = production_config();
    // signetd takes the API first, then the public listener (ActivatedListeners).
    let ports: Vec<String> = ["api", "public"]
        .iter()
        .map(|section| {
            let listen: std::net::SocketAddr =
                production_str(&config, section, "listen").parse().unwrap();
            listen.port().to_string()
        })
        .collect();
    assert_eq!(ports, ["8443", "80"], "the production config moved a port");
    let streams: Vec<String> = unit_settings("signetd.socket")
        .into_iter()
        .filter(|(k, _)| k == "ListenStream")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(streams, ports, "signetd.socket vs the production config");
    // Ports alone bind every address, as the production config's 0.0.0.0 does.
    let socket = unit_settings("signetd.socket");
    assert!(socket.contains(&("BindIPv6Only".into(), "both".into())));
    assert!(socket.contains(&("Service".into(), "signetd.service".into())));
    // Nothing names the sockets: signetd goes by their order.
    assert!(!socket.iter().any(|(k, _)| k == "FileDescriptorName"));
}

#[test]
fn sysusers_creates_the_user_and_every_group_the_production_config_names() {
    let config = production_config();
    let user = production_str(&config, "process", "user");
    let admin = production_str(&config, "admin", "group");
    let officer = production_str(&config, "admin", "officer_group");
    let service = unit_settings("signetd.service");
    assert!(
        service.contains(&("User".into(), user.into())),
        "User= is not {user}"
    );

    // systemd-sysusers itself, on the shipped file, into a throwaway root.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    run_ok(
        Command::new("systemd-sysusers")
            .arg(format!("--root={}", root.path().display()))
            .arg(unit("signet.sysusers")),
    );
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with(&format!("{user}:"))),
        "no user {user}:\n{passwd}"
    );
    let group = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
    let members = |name: &str| -> Vec<String> {
        let line = group
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("sysusers makes no group {name}:\n{group}"));
        let list = line.rsplit(':').next().unwrap();
        list.split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect()
    };
    // signetd's user may give the admin socket to the admin group only as a member.
    assert_eq!(members(admin), [user], "{admin}");
    // Officers are site users: the group starts empty.
    assert_eq!(members(officer), Vec::<String>::new(), "{officer}");
    assert_eq!(members("tss"), [user], "tss");

    // The admin socket's directory is the unit's runtime directory, and others may pass
    // through it to the socket (0660 to the admin group; signetd checks SO_PEERCRED).
    let socket = production_str(&config, "admin", "socket");
    assert_eq!(socket, "/run/signet/admin.sock");
    assert!(service.contains(&("RuntimeDirectory".into(), "signet".into())));
    let mode = service
        .iter()
        .find(|(k, _)| k == "RuntimeDirectoryMode")
        .map(|(_, v)| u32::from_str_radix(v, 8).unwrap())
        .expect("RuntimeDirectoryMode=");
    assert_eq!(
        mode & 0o001,
        0o001,
        "admins cannot reach /run/signet: {mode:o}"
    );
    assert_eq!(
        mode & 0o006,
        0,
        "others may list or write /run/signet: {mode:o}"
    );
}

#[test]
fn the_open_files_limit_covers_both_listeners_connection_budgets() {
    let config = production_config();
    let connections: u64 = ["api", "public"]
        .iter()
        .map(|s| config[*s]["max_connections"].as_integer().unwrap() as u64)
        .sum();
    let limit: u64 = unit_settings("signetd.service")
        .into_iter()
        .find(|(k, _)| k == "LimitNOFILE")
        .map(|(_, v)| v.parse().expect("one number: soft and hard alike"))
        .expect("LimitNOFILE=");
    // What signetd itself asks for (FILES_BESIDES_CONNECTIONS), with room for a site that
    // raises max_connections.
    assert!(
        limit >= 4 * (connections + 256),
        "LimitNOFILE={limit} for {connections} connections"
    );

    // signetd raises the soft limit to the hard one: systemd's default soft 1024 would not
    // hold 2048 connections.
    let mut app = Appliance::init();
    app.spawn(&Launch {
        wrapper: ["prlimit", "--nofile=1024:8192", "--"]
            .iter()
            .map(OsString::from)
            .collect(),
        ..Launch::default()
    });
    app.wait_listening().unwrap_or_else(|log| panic!("{log}"));
    assert_eq!(open_files(app.pid()), ["8192", "8192"]);
    assert!(app.stop().unwrap().success(), "{}", app.log());

    // And says so when the hard limit is below the budgets.
    app.spawn(&Launch {
        wrapper: ["prlimit", "--nofile=512:1024", "--"]
            .iter()
            .map(OsString::from)
            .collect(),
        ..Launch::default()
    });
    app.wait_listening().unwrap_or_else(|log| panic!("{log}"));
    assert_eq!(open_files(app.pid()), ["1024", "1024"]);
    let log = app.log();
    assert!(
        log.contains("open files limit below what the connection budgets need"),
        "{log}"
    );
    assert!(app.stop().unwrap().success(), "{}", app.log());
}

/// The soft and hard `Max open files` of a process.
fn open_files(pid: u32) -> Vec<String> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace()
        .skip(3)
        .take(2)
        .map(str::to_owned)
        .collect()
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
        // An admin group other than the user's own (nogroup): the socket keeps it.
        t["admin"]
            .as_table_mut()
            .unwrap()
            .insert("group".into(), "daemon".into());
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
    // The admin socket is the user's now, and still the admin group's.
    let socket = std::fs::metadata(app.path("admin.sock")).unwrap();
    assert_eq!(
        (socket.uid(), socket.gid(), socket.mode() & 0o777),
        (65534, gid_of("daemon"), 0o660)
    );
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

/// Two free ports below 1024 on 127.0.0.1: ports only a process with
/// CAP_NET_BIND_SERVICE may bind (root finds them).
fn free_privileged_ports() -> (std::net::SocketAddr, std::net::SocketAddr) {
    let mut found = (700..1000).filter_map(|port| {
        std::net::TcpListener::bind(("127.0.0.1", port))
            .ok()
            .map(|l| l.local_addr().unwrap())
    });
    (found.next().unwrap(), found.next().unwrap())
}

/// Run as nobody with no capability at all (like the unit's user). Memory stays unlocked
/// (the unit's LimitMEMLOCK=infinity is not this sandbox's to give): the dev profile warns.
const AS_NOBODY: [&str; 6] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
    "--",
];

#[test]
fn activated_sockets_on_privileged_ports_serve_a_daemon_without_capabilities() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test binds privileged ports: run it as root (CI does)"
    );
    let mut app = Appliance::init();
    run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{NOBODY}:{NOBODY}"))
            .arg(app.dir.path()),
    );
    let (api, public) = free_privileged_ports();

    // The control: the same user cannot bind such a port itself.
    let out = run(Command::new(AS_NOBODY[0])
        .args(&AS_NOBODY[1..])
        .arg(bin("signetd"))
        .envs(app.token_env())
        .arg("--config")
        .arg(&app.config)
        .arg("--listen")
        .arg(api.to_string())
        .arg("--public-listen")
        .arg(public.to_string()));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nobody bound {api}: {said}");
    assert!(
        said.contains(&format!("listen on {api}")) && said.contains("Permission denied"),
        "{said}"
    );

    // systemd-socket-activate (root) binds them, as signetd.socket does, and hands them to
    // signetd started as nobody.
    let mut wrapper = vec![
        "systemd-socket-activate".to_owned(),
        format!("--listen={api}"),
        format!("--listen={public}"),
        "--".to_owned(),
    ];
    wrapper.extend(AS_NOBODY.iter().map(|a| (*a).to_owned()));
    app.spawn(&Launch {
        wrapper: wrapper.iter().map(OsString::from).collect(),
        ..Launch::default()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(public).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {public}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let addr = app.wait_listening().unwrap_or_else(|log| panic!("{log}"));
    assert_eq!(addr, api, "{}", app.log());
    assert_eq!(app.public_addr, Some(public));
    let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid())).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.contains(NOBODY), "{uid}");
    let caps = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert!(caps.ends_with("0000000000000000"), "{caps}");
    let health = run_ok(
        Command::new("curl")
            .args(["-sS", "-w", "%{http_code}"])
            .arg(format!("http://{public}/healthz")),
    );
    assert_eq!(health, "ok\n200");
    let req = app.path("p.tsq");
    std::fs::write(&req, signet_e2e::tsp::request(b"privileged", 9, true)).unwrap();
    assert_eq!(app.post_tsa(&req, "application/timestamp-query").0, 200);
    assert!(app.stop().unwrap().success(), "{}", app.log());
}

/// System accounts made for one test and removed when it ends, pass or fail: the unit's
/// user (with its own group), the admin and officer groups, and people.
struct Accounts {
    tag: String,
    users: Vec<String>,
    groups: Vec<String>,
}

impl Accounts {
    fn new(tag: &str) -> Accounts {
        Accounts {
            tag: format!("sgu{tag}{}", std::process::id()),
            users: Vec::new(),
            groups: Vec::new(),
        }
    }

    fn group(&mut self, suffix: &str) -> String {
        let name = format!("{}{suffix}", self.tag);
        run_ok(Command::new("groupadd").arg(&name));
        self.groups.push(name.clone());
        name
    }

    /// A user with a group of its own name, and in `groups` besides.
    fn user(&mut self, suffix: &str, groups: &[&str]) -> String {
        let name = format!("{}{suffix}", self.tag);
        let mut cmd = Command::new("useradd");
        cmd.args(["-M", "-U", "-s", "/usr/sbin/nologin"]);
        if !groups.is_empty() {
            cmd.arg("-G").arg(groups.join(","));
        }
        run_ok(cmd.arg(&name));
        self.users.push(name.clone());
        name
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = Command::new("userdel").arg(u).output();
        }
        for g in &self.groups {
            let _ = Command::new("groupdel").arg(g).output();
        }
    }
}

fn uid_gid(user: &str) -> (u32, u32) {
    let u = nix::unistd::User::from_name(user).unwrap().unwrap();
    (u.uid.as_raw(), u.gid.as_raw())
}

fn gid_of(group: &str) -> u32 {
    nix::unistd::Group::from_name(group)
        .unwrap()
        .unwrap()
        .gid
        .as_raw()
}

/// The unit's run: an appliance owned by the service user `svc`, its admin socket in a
/// directory like /run/signet (the service user's, 0711), signetctl where anyone may run it.
struct UnitRun {
    app: Appliance,
    _shared: tempfile::TempDir,
    ctl: PathBuf,
    socket: PathBuf,
}

impl UnitRun {
    fn new(svc: &str, admin: &str, officer: Option<&str>) -> UnitRun {
        use std::os::unix::fs::PermissionsExt;
        let shared = tempfile::Builder::new()
            .prefix("signet-unit-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ctl = shared.path().join("signetctl");
        std::fs::copy(bin("signetctl"), &ctl).unwrap();
        std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o755)).unwrap();
        let run_dir = shared.path().join("run");
        std::fs::create_dir(&run_dir).unwrap();
        std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        run_ok(Command::new("chown").arg(svc).arg(&run_dir));
        let socket = run_dir.join("admin.sock");
        let sock = socket.to_string_lossy().into_owned();
        let app = Appliance::init_with(|t| {
            let table = t["admin"].as_table_mut().unwrap();
            table.insert("socket".into(), sock.into());
            table.insert("group".into(), admin.into());
            if let Some(officer) = officer {
                table.insert("officer_group".into(), officer.into());
            }
        });
        run_ok(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{svc}:{svc}"))
                .arg(app.dir.path()),
        );
        UnitRun {
            app,
            _shared: shared,
            ctl,
            socket,
        }
    }

    /// signetctl as `user`.
    fn ctl_as(&self, user: &str, args: &[&str]) -> std::process::Output {
        run(Command::new("runuser")
            .args(["-u", user, "--"])
            .arg(&self.ctl)
            .args(args)
            .arg("--socket")
            .arg(&self.socket))
    }
}

/// As systemd starts the unit's process: its user and group, the supplementary groups
/// the group database gives it (initgroups), no capability (memory unlocked, see
/// [`AS_NOBODY`]); inside a user namespace
/// mapped as PrivateUsers=yes maps it when `private_users` (see [`map_like_private_users`]).
fn as_the_unit(svc: &str, private_users: Option<&Path>) -> Launch {
    let mut wrapper: Vec<String> = [
        "setpriv",
        &format!("--reuid={svc}"),
        &format!("--regid={svc}"),
        "--init-groups",
        "--inh-caps=-all",
        "--",
    ]
    .map(String::from)
    .to_vec();
    if let Some(go) = private_users {
        // The namespace is made by the service's own user, as systemd's child does; the
        // command waits on `go` until the test has written the maps.
        wrapper.extend(
            [
                "unshare",
                "--user",
                "--",
                "sh",
                "-c",
                r#"read go < "$0" && exec "$@""#,
                &go.to_string_lossy(),
            ]
            .map(String::from),
        );
    }
    Launch {
        wrapper: wrapper.iter().map(OsString::from).collect(),
        ..Launch::default()
    }
}

/// Map `pid`'s new user namespace as systemd's PrivateUsers=yes does for a system
/// service: root and the service's user and group to themselves, nothing else (every
/// other id is the overflow id, 65534), then let it go on.
fn map_like_private_users(pid: u32, svc: &str, go: &Path) {
    let (uid, gid) = uid_gid(svc);
    let own = std::fs::read_link("/proc/self/ns/user").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{pid}/ns/user")).ok() == Some(own.clone()) {
        assert!(
            Instant::now() < deadline,
            "no user namespace for {pid}: can this machine make one (`unshare --user true` \
             as a plain user)? systemd's PrivateUsers= needs the same"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(
        format!("/proc/{pid}/uid_map"),
        format!("0 0 1\n{uid} {uid} 1\n"),
    )
    .unwrap();
    std::fs::write(
        format!("/proc/{pid}/gid_map"),
        format!("0 0 1\n{gid} {gid} 1\n"),
    )
    .unwrap();
    let map = std::fs::read_to_string(format!("/proc/{pid}/gid_map")).unwrap();
    assert_eq!(map.lines().count(), 2, "{map}");
    // Without blocking: a command that died before it opened the FIFO has no reader.
    loop {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(go)
        {
            Ok(mut f) => {
                f.write_all(b"go\n").unwrap();
                return;
            }
            Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) => {
                assert!(
                    Instant::now() < deadline,
                    "{pid} never waited on {}",
                    go.display()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{}: {e}", go.display()),
        }
    }
}

/// Wait (30 s at most) for the admin socket after the listeners: it is made after them.
fn wait_admin_socket(app: &mut Appliance) {
    app.wait_listening().unwrap_or_else(|log| panic!("{log}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !app.log().contains("admin socket ready") {
        assert!(Instant::now() < deadline, "no admin socket:\n{}", app.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fifo(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    path
}

#[test]
fn as_the_unit_runs_it_admins_and_officers_use_signetctl() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test makes system accounts: run it as root (CI does)"
    );
    let mut accounts = Accounts::new("u");
    let admin_group = accounts.group("adm");
    let officer_group = accounts.group("off");
    // The service's user, in the admin group as signet.sysusers puts signet in signet-admin.
    let svc = accounts.user("svc", &[&admin_group]);
    let admin = accounts.user("a", &[&admin_group]);
    let officer = accounts.user("o", &[&admin_group, &officer_group]);
    let outsider = accounts.user("x", &[]);

    let mut unit = UnitRun::new(&svc, &admin_group, Some(&officer_group));
    unit.app.spawn(&as_the_unit(&svc, None));
    wait_admin_socket(&mut unit.app);
    let status = std::fs::read_to_string(format!("/proc/{}/status", unit.app.pid())).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.contains(&uid_gid(&svc).0.to_string()), "{uid}");

    // The socket went to the admin group: signetd (not root) could give it there.
    let meta = std::fs::metadata(&unit.socket).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (uid_gid(&svc).0, gid_of(&admin_group), 0o660)
    );

    for (user, role) in [(&admin, "admin"), (&officer, "officer")] {
        let out = unit.ctl_as(user, &["cert", "list"]);
        assert!(
            out.status.success(),
            "{role}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = unit.ctl_as(&outsider, &["cert", "list"]);
    assert!(!out.status.success());

    // Each is on record under its own name, in its own role.
    let out = unit.app.ctl(&[
        "audit",
        "tail",
        "-n",
        "20",
        "--json",
        "--socket",
        &unit.socket.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (user, role) in [(&admin, "admin"), (&officer, "officer")] {
        assert!(
            records.as_array().unwrap().iter().any(|r| {
                let e = &r["event"];
                e["kind"] == "admin" && e["user"] == user.as_str() && e["role"] == role
            }),
            "no {role} record for {user}: {records:#}"
        );
    }
    assert!(unit.app.stop().unwrap().success(), "{}", unit.app.log());
}

#[test]
fn private_users_would_lock_admins_out_of_the_admin_socket() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test makes system accounts and user namespaces: run it as root (CI does)"
    );
    let mut accounts = Accounts::new("p");
    let admin_group = accounts.group("adm");
    let svc = accounts.user("svc", &[&admin_group]);
    // A member of the service's own group: a group the namespace does map.
    let admin = accounts.user("a", &[&admin_group, &svc]);

    // The production shape (the admin group apart from the service's own) under
    // PrivateUsers=yes: the admin group is not mapped, so the socket cannot be given to it
    // and signetd does not start.
    let mut unit = UnitRun::new(&svc, &admin_group, None);
    let go = fifo(unit.app.dir.path(), "go1.fifo");
    unit.app.spawn(&as_the_unit(&svc, Some(&go)));
    map_like_private_users(unit.app.pid(), &svc, &go);
    // The TCP listeners come first: wait for the admin socket's verdict.
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = format!("admin socket {}: Invalid argument", unit.socket.display());
    loop {
        let log = unit.app.log();
        assert!(
            !log.contains("admin socket ready"),
            "signetd gave the socket to a group it cannot map:\n{log}"
        );
        if log.contains(&refused) {
            break;
        }
        assert!(Instant::now() < deadline, "no `{refused}` in:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = unit.app.stop().expect("was started");
    assert!(!status.success(), "{status}");

    // Even with the socket given to a group the namespace maps (the service's own), the
    // admin who connects is nobody to signetd: SO_PEERCRED has no id for it.
    unit.app.edit_config(|t| {
        t["admin"]
            .as_table_mut()
            .unwrap()
            .insert("group".into(), svc.clone().into());
    });
    let go2 = fifo(unit.app.dir.path(), "go2.fifo");
    unit.app.spawn(&as_the_unit(&svc, Some(&go2)));
    map_like_private_users(unit.app.pid(), &svc, &go2);
    wait_admin_socket(&mut unit.app);
    let out = unit.ctl_as(&admin, &["cert", "list"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("permission denied: nobody is neither root"),
        "{said}"
    );
    assert!(unit.app.stop().unwrap().success(), "{}", unit.app.log());

    // The control: the same config and the same admin, with no user namespace, get in.
    unit.app.spawn(&as_the_unit(&svc, None));
    wait_admin_socket(&mut unit.app);
    let out = unit.ctl_as(&admin, &["cert", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(unit.app.stop().unwrap().success(), "{}", unit.app.log());
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
    // And the production config's [admin] groups, signet a member of the admin group.
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    for (name, members) in [("signet-admin", "signet"), ("signet-officer", "")] {
        assert!(
            group.lines().any(
                |l| l.starts_with(&format!("{name}:")) && l.rsplit(':').next() == Some(members)
            ),
            "no {name}:...:{members} in\n{group}"
        );
    }
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
