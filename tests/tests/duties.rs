//! Separation of duties on the admin socket: a plain admin (admin group only) is refused
//! what creates trust or widens grants (`cert issue` of tsa and ocsp-signer, `client add`,
//! `csr` with the root or audit key), a CA officer (also in the officer group) is let do
//! it, and the audit log holds both the user and the role of each attempt. The test makes
//! throwaway groups and users, runs signetctl as each, and removes them after.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use signet_e2e::{bin, run, run_ok, Appliance};

/// System accounts made for one test and removed when it ends, pass or fail.
#[derive(Default)]
struct Accounts {
    groups: Vec<String>,
    users: Vec<String>,
}

impl Accounts {
    fn group(&mut self, tag: &str) -> String {
        let group = format!("sgt{tag}{}", std::process::id());
        run_ok(Command::new("groupadd").arg(&group));
        self.groups.push(group.clone());
        group
    }

    fn user(&mut self, name: &str, groups: &[&str]) -> String {
        let name = format!("sgt{name}{}", std::process::id());
        run_ok(
            Command::new("useradd")
                .args(["-M", "-N", "-s", "/usr/sbin/nologin", "-G"])
                .arg(groups.join(","))
                .arg(&name),
        );
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

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// signetctl (a copy others may run) as `user`, on `socket`.
fn ctl_as(ctl: &Path, user: &str, socket: &Path, args: &[&str]) -> Output {
    run(Command::new("runuser")
        .args(["-u", user, "--"])
        .arg(ctl)
        .args(args)
        .arg("--socket")
        .arg(socket))
}

fn refused_for_want_of_the_officer(out: &Output, what: &str) {
    let t = text(out);
    assert!(!out.status.success(), "{what}: a plain admin got it: {t}");
    assert!(
        t.contains("permission denied") && t.contains("needs the CA officer role"),
        "{what}: {t}"
    );
}

fn ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", text(out));
}

#[test]
fn a_plain_admin_cannot_create_trust_or_widen_grants_and_an_officer_can() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test makes system accounts: run it as root (CI does)"
    );
    let mut accounts = Accounts::default();
    let admins = accounts.group("a");
    let officers = accounts.group("o");
    let admin = accounts.user("pa", &[&admins]);
    let officer = accounts.user("co", &[&admins, &officers]);

    // A directory every user can reach: the socket, a copy of signetctl, the requests.
    let shared = tempfile::Builder::new()
        .prefix("signet-duties-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ctl: PathBuf = shared.path().join("signetctl");
    std::fs::copy(bin("signetctl"), &ctl).unwrap();
    std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = shared.path().join("admin.sock");
    let (_, csr) = signet_e2e::p256_csr(shared.path(), "req", "/O=Signet/CN=duty");
    std::fs::set_permissions(&csr, std::fs::Permissions::from_mode(0o644)).unwrap();
    let csr = csr.to_string_lossy().into_owned();

    let sock = socket.to_string_lossy().into_owned();
    let (g, o) = (admins.clone(), officers.clone());
    let mut a = Appliance::init_with(|t| {
        let table = t["admin"].as_table_mut().unwrap();
        table.insert("socket".into(), toml::Value::String(sock));
        table.insert("group".into(), toml::Value::String(g));
        table.insert("officer_group".into(), toml::Value::String(o));
    });
    a.start();

    let issue = |profile: &'static str| -> Vec<&str> {
        vec!["cert", "issue", "--profile", profile, "--csr", &csr]
    };
    let add = [
        "client",
        "add",
        "stamper",
        "--subject",
        "CN=stamper,O=Signet",
        "--operations",
        "tsa",
    ];
    let csr_for = |key: &'static str| ["csr", "--key", key, "--subject", "CN=x"];

    // The plain admin: day-to-day work goes through...
    ok(
        &ctl_as(&ctl, &admin, &socket, &issue("document-signing")),
        "admin: document-signing",
    );
    ok(
        &ctl_as(&ctl, &admin, &socket, &csr_for("doc-ec")),
        "admin: csr for a signing key",
    );
    // ...what creates trust or widens grants does not.
    for profile in ["tsa", "ocsp-signer"] {
        refused_for_want_of_the_officer(&ctl_as(&ctl, &admin, &socket, &issue(profile)), profile);
    }
    refused_for_want_of_the_officer(&ctl_as(&ctl, &admin, &socket, &add), "client add");
    for key in ["root-ca", "audit"] {
        refused_for_want_of_the_officer(&ctl_as(&ctl, &admin, &socket, &csr_for(key)), key);
    }

    // The officer may.
    for profile in ["tsa", "ocsp-signer"] {
        ok(&ctl_as(&ctl, &officer, &socket, &issue(profile)), profile);
    }
    ok(
        &ctl_as(&ctl, &officer, &socket, &add),
        "officer: client add",
    );
    ok(
        &ctl_as(&ctl, &officer, &socket, &csr_for("root-ca")),
        "officer: csr for the root key",
    );
    // Removing a client narrows grants: a plain admin's job.
    ok(
        &ctl_as(&ctl, &admin, &socket, &["client", "remove", "stamper"]),
        "admin: client remove",
    );

    // Every attempt is on record with the user and the role it acted under.
    let out = a.ctl(&["audit", "tail", "-n", "100", "--json"]);
    ok(&out, "audit tail");
    let records: Value = serde_json::from_slice(&out.stdout).unwrap();
    let events: Vec<&Value> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["event"])
        .filter(|e| e["kind"] == "admin")
        .collect();
    let find = |user: &str, ok: bool, pick: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .find(|e| e["user"] == user && e["ok"] == ok && pick(&e["command"]))
            .copied()
            .unwrap_or_else(|| panic!("no record of {user} (ok: {ok}) in {events:#?}"))
    };
    let tsa = |c: &Value| c["command"] == "cert-issue" && c["profile"] == "tsa";
    let refusal = find(&admin, false, &tsa);
    assert_eq!(refusal["error"], "forbidden");
    assert_eq!(refusal["role"], "admin");
    assert_eq!(refusal["role_via"], format!("group {admins}").as_str());
    assert!(
        refusal["duty"]
            .as_str()
            .unwrap()
            .contains("needs the CA officer role"),
        "{refusal}"
    );
    let done = find(&officer, true, &tsa);
    assert_eq!(done["role"], "officer");
    assert_eq!(done["role_via"], format!("group {officers}").as_str());
    assert!(done["uid"].as_u64().is_some());
    assert!(done["duty"].as_str().unwrap().contains("tsa"), "{done}");
    let root_csr = |c: &Value| c["command"] == "csr" && c["label"] == "root-ca";
    assert_eq!(find(&admin, false, &root_csr)["error"], "forbidden");
    assert_eq!(
        find(&officer, true, &root_csr)["duty"],
        "a CSR for the infrastructure key keys.root_ca"
    );
    let add_client = |c: &Value| c["command"] == "client-add";
    assert_eq!(find(&admin, false, &add_client)["role"], "admin");
    assert_eq!(find(&officer, true, &add_client)["role"], "officer");
    let audit_csr = |c: &Value| c["command"] == "csr" && c["label"] == "audit";
    assert_eq!(find(&admin, false, &audit_csr)["error"], "forbidden");
    a.stop();
}

#[test]
fn an_infrastructure_key_is_never_a_signing_key() {
    let mut a = Appliance::init();
    for infra in ["audit", "root-ca", "tsa"] {
        a.edit_config(|t| {
            t["signing_keys"][1]["label"] = toml::Value::String(infra.into());
            t["clients"][0]["keys"] = toml::Value::Array(vec!["doc-rsa".into()]);
        });
        let log = a
            .try_start()
            .expect_err("signetd offered an infrastructure key for signing");
        assert!(
            log.contains(&format!("`{infra}` is the infrastructure key keys.")),
            "{log}"
        );
    }
}
