//! signetctl's operator subcommands against a live signetd on SoftHSM: status, key
//! list/show, crl publish, client list, reload, audit tail/verify; tables for people and
//! `--json` for machines; and what works without the daemon.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::{Command, Output};

use serde_json::Value;
use signet_e2e::{run, run_ok, Appliance};

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(a: &Appliance, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&ok(a.ctl(&all), &args.join(" "))).unwrap()
}

#[test]
fn operator_subcommands_work_against_a_live_daemon() {
    let mut a = Appliance::init();
    a.start();

    // status
    let s = json(&a, &["status"]);
    assert_eq!(s["token"], "signet-dev");
    assert_eq!(s["sessions"], 2);
    let keys: Vec<&str> = s["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "audit",
            "client-ca",
            "doc-ec",
            "doc-rsa",
            "ocsp-signer",
            "root-ca",
            "tls-server",
            "tsa"
        ]
    );
    assert!(["synchronised", "unsynchronised"].contains(&s["clock"].as_str().unwrap()));
    assert!(s["certificates"].as_u64().unwrap() >= 7, "{s}");
    assert_eq!(s["expiring_within_30_days"], Value::Array(vec![]));
    assert!(s["audit_head"].as_u64().unwrap() >= 1, "{s}");
    // The store this run asked for (SIGNET_TEST_STORE) is the one the daemon uses.
    let store = signet_e2e::store::Backend::of_this_run().name();
    assert_eq!(s["store"], store, "{s}");
    let table = ok(a.ctl(&["status"]), "status");
    assert!(table.contains("signet-dev") && table.contains("audit records"));
    assert!(
        table.contains(&format!("store                        {store}")),
        "{table}"
    );

    // key list / key show
    let listed = json(&a, &["key", "list"]);
    let audit = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == "audit")
        .expect("the audit key is listed");
    assert_eq!(audit["algorithm"], "ec-p256");
    assert!(ok(a.ctl(&["key", "list"]), "key list").contains("root-ca"));
    let shown = json(&a, &["key", "show", "audit"]);
    let from_cert = run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-pubkey", "-in"])
            .arg(a.path("pki/audit.pem")),
    );
    assert_eq!(shown["public_key_pem"].as_str().unwrap(), from_cert);
    let missing = a.ctl(&["key", "show", "nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not-found"));

    // crl publish: a freshly signed CRL is served
    let fetch = || run(Command::new("curl").args(["-sS", &a.public_url("/crl/root.crl")])).stdout;
    let before = fetch();
    let published = json(&a, &["crl", "publish"]);
    assert_eq!(
        published["published"],
        serde_json::json!(["root", "client-ca"])
    );
    let after = fetch();
    assert!(!after.is_empty());
    assert_ne!(before, after, "the CRL was signed afresh");

    // client list, then reload after adding one
    let clients = json(&a, &["client", "list"]);
    assert_eq!(clients.as_array().unwrap().len(), 1);
    assert_eq!(clients[0]["name"], "demo-app");
    assert_eq!(clients[0]["subject"], "CN=demo-app,O=Signet");
    a.edit_config(|t| {
        let mut extra = toml::Table::new();
        extra.insert("name".into(), "stamper".into());
        let mut m = toml::Table::new();
        m.insert("subject".into(), "CN=stamper,O=Signet".into());
        extra.insert("match".into(), toml::Value::Table(m));
        extra.insert("operations".into(), toml::Value::Array(vec!["tsa".into()]));
        extra.insert("keys".into(), toml::Value::Array(vec![]));
        t["clients"]
            .as_array_mut()
            .unwrap()
            .push(toml::Value::Table(extra));
    });
    let reloaded = json(&a, &["reload"]);
    assert_eq!(reloaded["clients"], 2);
    assert!(ok(a.ctl(&["client", "list"]), "client list").contains("stamper"));
    // A config that does not load is refused; the daemon keeps serving.
    let good = std::fs::read_to_string(&a.config).unwrap();
    std::fs::write(&a.config, good.replace("[[clients]]", "[[clientz]]")).unwrap();
    let refused = a.ctl(&["reload"]);
    std::fs::write(&a.config, &good).unwrap();
    assert!(!refused.status.success());

    // audit tail and verify, through the daemon
    let tail = json(&a, &["audit", "tail", "-n", "200"]);
    let commands: Vec<&str> = tail
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"]["kind"] == "admin")
        .filter_map(|r| r["event"]["command"]["command"].as_str())
        .collect();
    for c in [
        "status",
        "key-list",
        "key-show",
        "crl-publish",
        "client-list",
        "reload",
    ] {
        assert!(commands.contains(&c), "{c} is on record: {commands:?}");
    }
    assert!(ok(a.ctl(&["audit", "tail"]), "audit tail").contains("admin"));
    let verified = ok(a.ctl(&["audit", "verify"]), "audit verify");
    assert!(verified.contains("audit log verified"), "{verified}");
    a.stop();

    // Without the daemon: the token and config are read directly; daemon-only commands say so.
    let listed = json(&a, &["key", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 8);
    assert_eq!(json(&a, &["client", "list"]).as_array().unwrap().len(), 2);
    let s = a.ctl(&["status"]);
    assert!(!s.status.success());
    assert!(String::from_utf8_lossy(&s.stderr).contains("not running"));
    let v = json(&a, &["audit", "verify"]);
    assert!(v["checkpoints"].as_u64().unwrap() >= 1, "{v}");
}
