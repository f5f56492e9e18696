//! The admin socket lets in root and members of the admin group only: the test makes a
//! throwaway group and two throwaway users (one in it, one not), runs signetctl as each,
//! and removes them after.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use signet_e2e::{bin, run, run_ok, Appliance};

/// System accounts made for one test and removed when it ends, pass or fail.
struct Accounts {
    group: String,
    users: Vec<String>,
}

impl Accounts {
    fn new(tag: &str) -> Accounts {
        let group = format!("sgt{tag}{}", std::process::id());
        run_ok(Command::new("groupadd").arg(&group));
        Accounts {
            group,
            users: Vec::new(),
        }
    }

    fn user(&mut self, suffix: &str, in_group: bool) -> String {
        let name = format!("{}{suffix}", self.group);
        let mut cmd = Command::new("useradd");
        cmd.args(["-M", "-N", "-s", "/usr/sbin/nologin"]);
        if in_group {
            cmd.args(["-G", &self.group]);
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
        let _ = Command::new("groupdel").arg(&self.group).output();
    }
}

/// signetctl (a copy others may run) as `user`, on the socket at `socket`.
fn ctl_as(ctl: &Path, user: &str, socket: &Path, args: &[&str]) -> Output {
    run(Command::new("runuser")
        .args(["-u", user, "--"])
        .arg(ctl)
        .args(args)
        .arg("--socket")
        .arg(socket))
}

#[test]
fn only_root_and_the_admin_group_may_use_the_admin_socket() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test makes system accounts: run it as root (CI does)"
    );
    let mut accounts = Accounts::new("a");
    let outsider = accounts.user("o", false);
    let member = accounts.user("m", true);

    // A directory every user can reach, for the socket and a copy of signetctl (the state
    // directory and the build tree may not be reachable for them).
    let shared = tempfile::Builder::new()
        .prefix("signet-admin-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ctl: PathBuf = shared.path().join("signetctl");
    std::fs::copy(bin("signetctl"), &ctl).unwrap();
    std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = shared.path().join("admin.sock");

    let group = accounts.group.clone();
    let sock = socket.to_string_lossy().into_owned();
    let mut a = Appliance::init_with(|t| {
        let admin = t["admin"].as_table_mut().unwrap();
        admin.insert("socket".into(), toml::Value::String(sock));
        admin.insert("group".into(), toml::Value::String(group));
    });
    a.start();

    // The socket belongs to the admin group, and to nobody else.
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660);
    let gid = nix::unistd::Group::from_name(&accounts.group)
        .unwrap()
        .unwrap()
        .gid;
    assert_eq!(meta.gid(), gid.as_raw());

    // A member lists certificates through the daemon.
    let out = ctl_as(&ctl, &member, &socket, &["cert", "list"]);
    assert!(
        out.status.success(),
        "member: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SERIAL"));

    // The outsider is stopped by the socket's mode...
    let out = ctl_as(&ctl, &outsider, &socket, &["cert", "list"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains("permission denied"), "{stderr}");

    // ...and, with the mode out of the way, by the daemon's own SO_PEERCRED check.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = ctl_as(&ctl, &outsider, &socket, &["cert", "list"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("permission denied")
            && stderr.contains("neither root nor in the admin group"),
        "{stderr}"
    );
    // Root gets in regardless.
    let out = a.ctl(&["cert", "list", "--socket", &socket.to_string_lossy()]);
    assert!(out.status.success());

    // Both are on record: the refusal and the member's command, by user name.
    let out = a.ctl(&["audit", "tail", "-n", "50", "--json"]);
    assert!(out.status.success());
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let events: Vec<&serde_json::Value> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["event"])
        .collect();
    assert!(events
        .iter()
        .any(|e| e["kind"] == "admin-refused" && e["user"] == outsider.as_str()));
    assert!(events.iter().any(|e| e["kind"] == "admin"
        && e["user"] == member.as_str()
        && e["command"]["command"] == "cert-list"
        && e["ok"] == true));
    a.stop();
}
