//! Keys never leave the token: every private key the ceremony made is sensitive and never
//! extractable, and signetd refuses to use one that is not.

use signet_e2e::{run_ok, Appliance};

#[test]
fn every_private_key_is_sensitive_and_never_extractable() {
    let a = Appliance::init();
    let out = run_ok(
        a.pkcs11_tool()
            .args(["--list-objects", "--type", "privkey"]),
    );
    let keys: Vec<&str> = out.split("Private Key Object").skip(1).collect();
    assert_eq!(keys.len(), 3, "root CA, TSA and TLS keys:\n{out}");
    for key in keys {
        let access = key
            .lines()
            .find(|l| l.trim_start().starts_with("Access:"))
            .unwrap_or_default();
        assert!(
            access.contains("never extractable") && access.contains("sensitive"),
            "a private key could leave the token:\n{key}"
        );
    }
}

#[test]
fn signetd_refuses_an_extractable_key_with_a_clear_message() {
    let mut a = Appliance::init();
    run_ok(a.pkcs11_tool().args([
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--label",
        "leaky",
        "--id",
        "4c45414b59",
        "--usage-sign",
        "--extractable",
    ]));
    // Control: the untouched config starts.
    a.start();
    a.stop();
    a.edit_config(|t| {
        t["keys"]["tsa"]["label"] = toml::Value::String("leaky".into());
    });
    let log = a
        .try_start()
        .expect_err("signetd started with an extractable key");
    assert!(
        log.contains("refusing key \"leaky\": CKA_EXTRACTABLE is true"),
        "the refusal should name the key and the attribute:\n{log}"
    );
}
