//! Keys never leave the token: every private key the ceremony made is sensitive and never
//! extractable, and signetd refuses to use one that is not.

use signet_e2e::token::Backend;
use signet_e2e::{run_ok, Appliance};

#[test]
fn every_private_key_is_sensitive_and_never_extractable() {
    let a = Appliance::init();
    let out = run_ok(
        a.pkcs11_tool()
            .args(["--list-objects", "--type", "privkey"]),
    );
    let keys: Vec<&str> = out.split("Private Key Object").skip(1).collect();
    let mut labels: Vec<&str> = keys
        .iter()
        .filter_map(|k| k.lines().find_map(|l| l.trim().strip_prefix("label:")))
        .map(str::trim)
        .collect();
    labels.sort_unstable();
    assert_eq!(
        labels,
        [
            "audit",
            "client-ca",
            "doc-ec",
            "doc-rsa",
            "ocsp-signer",
            "root-ca",
            "tls-server",
            "tsa"
        ],
        "the ceremony's keys and the dev document signers:\n{out}"
    );
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
    let made = signet_e2e::run(a.pkcs11_tool().args([
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
    let stderr = String::from_utf8_lossy(&made.stderr);
    if Backend::current() == Backend::Tpm2 {
        // tpm2-pkcs11 will not even make such a key: the refusal happens one step earlier.
        assert!(
            !made.status.success() && stderr.contains("both extractable AND sensitive"),
            "tpm2-pkcs11 made an extractable key:\n{stderr}"
        );
        return;
    }
    assert!(made.status.success(), "pkcs11-tool: {stderr}");
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

#[test]
fn init_refuses_to_overwrite_without_force() {
    let a = Appliance::init();
    let root_before = std::fs::read(a.path("pki/root-ca.pem")).expect("root");
    let again = signet_e2e::run(a.signetctl().args(["init", "--config"]).arg(&a.config));
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("initialised already") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(a.path("pki/root-ca.pem")).expect("root"),
        root_before,
        "untouched"
    );

    let out = run_ok(
        a.signetctl()
            .args(["init", "--force", "--json", "--config"])
            .arg(&a.config),
    );
    let report: serde_json::Value = serde_json::from_str(&out).expect("--json prints JSON");
    for key in [
        "root_ca",
        "tsa_certificate",
        "tls_certificate",
        "audit_certificate",
        "client_certificate",
        "client_key",
    ] {
        let path = report[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} in {out}"));
        assert!(std::path::Path::new(path).exists(), "{key}: {path}");
    }
    assert_ne!(
        std::fs::read(a.path("pki/root-ca.pem")).expect("root"),
        root_before,
        "a new root"
    );
    // Still exactly eight keys: --force replaced them rather than adding more.
    let listed = run_ok(
        a.pkcs11_tool()
            .args(["--list-objects", "--type", "privkey"]),
    );
    assert_eq!(listed.matches("Private Key Object").count(), 8, "{listed}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(a.path("demo/client.key"))
            .expect("key")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn an_rsa_size_the_token_cannot_make_is_refused_by_name() {
    let a = Appliance::init();
    let out = a.ctl(&[
        "key",
        "generate",
        "--label",
        "big",
        "--algorithm",
        "rsa-4096",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match Backend::current() {
        // SoftHSM makes RSA keys up to 16384 bits.
        Backend::SoftHsm => assert!(out.status.success(), "{stderr}"),
        // swtpm's TPM stops at 3072: the token's own bounds are quoted, not a bare CK_RV.
        Backend::Tpm2 => assert!(
            !out.status.success()
                && stderr.contains("the token generates RSA keys of 1024 to 3072 bits, not 4096"),
            "{stderr}"
        ),
    }
}

/// `key show --json` of `label` on the stopped appliance (straight on the token).
fn key_show(a: &Appliance, label: &str) -> serde_json::Value {
    let out = run_ok(
        a.signetctl()
            .args(["key", "show", label, "--json", "--config"])
            .arg(&a.config),
    );
    serde_json::from_str(&out).expect("--json prints JSON")
}

#[test]
fn an_imported_key_is_refused_for_signing_unless_marked_and_shown_as_such() {
    let mut a = Appliance::init();
    // Keys the token generated say so, on every backend (tpm2-pkcs11 included): both
    // CKA_NEVER_EXTRACTABLE and CKA_ALWAYS_SENSITIVE are reported true.
    for label in ["doc-ec", "doc-rsa", "root-ca", "tsa"] {
        let shown = key_show(&a, label);
        assert_eq!(shown["origin"], "generated", "{label}: {shown}");
        assert_eq!(shown["origin_detail"], "generated in the token", "{shown}");
    }
    if Backend::current() == Backend::Tpm2 {
        // tpm2-pkcs11 takes no private key from outside (C_CreateObject of a private key).
        return;
    }

    // A software key written into the token: sensitive and not extractable now, but it
    // existed outside (CKA_NEVER_EXTRACTABLE and CKA_ALWAYS_SENSITIVE false).
    let work = tempfile::tempdir().expect("tempdir");
    a.write_software_key(work.path(), "imported-ec", "494d50", &["--sensitive"]);
    let shown = key_show(&a, "imported-ec");
    assert_eq!(shown["origin"], "imported", "{shown}");
    assert!(
        shown["origin_detail"]
            .as_str()
            .unwrap_or_default()
            .contains("CKA_NEVER_EXTRACTABLE false"),
        "{shown}"
    );

    // Certify it (csr from the token, issued by the root) and offer it for signing.
    let req = work.path().join("imp.csr");
    let chain = a.path("pki/imported-ec-chain.pem");
    run_ok(
        a.signetctl()
            .args([
                "csr",
                "--key",
                "imported-ec",
                "--subject",
                "CN=Imported,O=Signet",
                "--out",
            ])
            .arg(&req)
            .arg("--config")
            .arg(&a.config),
    );
    let leaf = work.path().join("imp.pem");
    run_ok(
        a.signetctl()
            .args(["cert", "issue", "--profile", "document-signing", "--csr"])
            .arg(&req)
            .arg("--out")
            .arg(&leaf)
            .arg("--config")
            .arg(&a.config),
    );
    let mut text = std::fs::read_to_string(&leaf).expect("leaf");
    text.push_str(&std::fs::read_to_string(a.path("pki/root-ca.pem")).expect("root"));
    std::fs::write(&chain, text).expect("chain");
    let declare = |marked: bool| {
        move |t: &mut toml::Table| {
            let mut k = toml::Table::new();
            k.insert("label".into(), "imported-ec".into());
            k.insert("algorithm".into(), "ec-p256".into());
            k.insert(
                "certificate_chain".into(),
                "pki/imported-ec-chain.pem".into(),
            );
            if marked {
                k.insert("imported".into(), true.into());
            }
            let keys = t["signing_keys"].as_array_mut().expect("signing_keys");
            keys.retain(|e| e["label"].as_str() != Some("imported-ec"));
            keys.push(toml::Value::Table(k));
        }
    };

    // Not marked: refused, saying why and what to do.
    a.edit_config(declare(false));
    let log = a
        .try_start()
        .expect_err("signetd offered an unmarked imported key");
    assert!(
        log.contains("signing key \"imported-ec\" is imported (CKA_NEVER_EXTRACTABLE false")
            && log.contains("mark it `imported = true`"),
        "{log}"
    );

    // Marked: the dev profile accepts it with a warning (production needs
    // hsm.allow_imported_keys too: the config check refuses the mark without it), and it
    // signs.
    a.edit_config(declare(true));
    a.edit_config(|t| {
        let keys = t["clients"][0]["keys"].as_array_mut().expect("keys");
        keys.push("imported-ec".into());
    });
    a.start();
    let body = format!(
        r#"{{"digest":"{}","digest_algorithm":"sha256","scheme":"ecdsa"}}"#,
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    );
    let out = run_ok(
        a.curl()
            .args([
                "-f",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
            ])
            .arg(&body)
            .arg(a.url("/v1/sign/imported-ec")),
    );
    assert!(out.contains("signature"), "{out}");
    assert!(
        a.log().contains("accepted because it is marked imported"),
        "{}",
        a.log()
    );
    let out = a.ctl(&["key", "show", "imported-ec"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("origin     imported (CKA_NEVER_EXTRACTABLE false")
            && shown.contains("marked imported"),
        "{shown}"
    );
    a.stop();

    // An extractable key: refused unmarked (as the infrastructure keys always are), taken
    // when marked imported, and shown for what it is. Its software copy makes its request.
    let leaky = a.write_software_key(work.path(), "leaky-ec", "4c45", &["--extractable"]);
    a.document_chain_for(work.path(), "leaky-ec", &leaky);
    let shown = key_show(&a, "leaky-ec");
    assert!(
        shown["origin_detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("imported (CKA_EXTRACTABLE true"),
        "{shown}"
    );
    a.edit_config(|t| {
        for k in t["signing_keys"].as_array_mut().expect("signing_keys") {
            if k["label"].as_str() == Some("imported-ec") {
                k["label"] = "leaky-ec".into();
                k["certificate_chain"] = "pki/leaky-ec-chain.pem".into();
                k.as_table_mut().expect("table").remove("imported");
            }
        }
        let keys = t["clients"][0]["keys"].as_array_mut().expect("keys");
        keys.retain(|k| k.as_str() != Some("imported-ec"));
    });
    let log = a
        .try_start()
        .expect_err("signetd offered an unmarked extractable key");
    assert!(log.contains("CKA_EXTRACTABLE is true"), "{log}");
    a.edit_config(|t| {
        for k in t["signing_keys"].as_array_mut().expect("signing_keys") {
            if k["label"].as_str() == Some("leaky-ec") {
                k.as_table_mut()
                    .expect("table")
                    .insert("imported".into(), true.into());
            }
        }
    });
    a.start();
    assert!(
        a.log()
            .contains("signing key \"leaky-ec\" is imported (CKA_EXTRACTABLE true"),
        "{}",
        a.log()
    );
    a.stop();
}
