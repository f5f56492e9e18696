//! The config sealed by a real swtpm: signetd starts from it and serves the TSA; the PIN
//! is nowhere on disk; a changed PCR, a damaged, truncated, unknown or foreign file each
//! stop it with a clear message; reseal moves a config to new PCR values; `config check`
//! prints every problem at once, with key labels looked up in the token.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::Digest;
use signet_config::sealed::SealedFile;
use signet_e2e::swtpm::Swtpm;
use signet_e2e::{bin, run, run_ok, Appliance};

/// A PIN no other byte sequence in the state directory would match by chance.
const PIN: &str = "pin-5e1f0c93b7a2d4";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn signetctl(tpm: &Swtpm, args: &[&str]) -> Output {
    run(Command::new(bin("signetctl"))
        .args(["config"])
        .args(args)
        .env("SIGNET_TCTI", tpm.tcti()))
}

fn seal(tpm: &Swtpm, input: &Path, out: &Path, pcrs: &str) {
    let o = signetctl(
        tpm,
        &[
            "seal",
            "--in",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--pcrs",
            pcrs,
        ],
    );
    assert!(o.status.success(), "seal: {}", text(&o));
}

fn unseal(tpm: &Swtpm, sealed: &Path) -> Output {
    signetctl(tpm, &["unseal", sealed.to_str().unwrap()])
}

/// signetd from `sealed:PATH`, expected to refuse to start: its exit status and output.
fn signetd_refuses(tpm: &Swtpm, sealed: &Path) -> String {
    let out = run(Command::new(bin("signetd"))
        .arg("--config")
        .arg(format!("sealed:{}", sealed.display()))
        .args(["--tcti", &tpm.tcti()])
        .args(["--listen", "127.0.0.1:0", "--public-listen", "127.0.0.1:0"]));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "signetd must exit 1: {t}");
    assert!(!t.contains("panicked"), "{t}");
    t
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path);
                }
            }
        }
    }
    found
}

/// A dev config (the shipped dev.toml) in a directory of its own.
fn dev_config(dir: &Path) -> PathBuf {
    let p = dir.join("dev.toml");
    std::fs::write(&p, signet_config::DEV_TOML).unwrap();
    p
}

#[test]
fn signetd_runs_the_tsa_from_the_sealed_config_and_the_pin_is_nowhere_on_disk() {
    let tpm = Swtpm::start();
    let mut a = Appliance::init_with(|t| {
        t["hsm"]
            .as_table_mut()
            .unwrap()
            .insert("user_pin".into(), PIN.into());
    });

    // From the clear file (dev): it starts, and says at every start that the TPM is unused.
    a.start();
    assert!(a.log().contains("without the TPM"), "{}", a.log());
    a.stop();

    let sealed = a.path("appliance.sealed");
    seal(&tpm, &a.config, &sealed, "sha256:0,2,4,7");
    // The operator removes the clear file, as `seal` says to.
    std::fs::remove_file(&a.config).unwrap();

    let config_arg = format!("sealed:{}", sealed.display());
    let tcti = tpm.tcti();
    a.try_start_from(config_arg.as_ref(), &[("SIGNET_TCTI", &tcti)])
        .unwrap_or_else(|log| panic!("signetd from the sealed config: {log}"));
    assert!(!a.log().contains("without the TPM"), "{}", a.log());
    // A sealed config means a TPM: the audit anchor carries its counter.
    assert!(
        a.log().contains("audit rollback protection: TPM counter"),
        "{}",
        a.log()
    );

    // The TSA works.
    let work = tempfile::tempdir().unwrap();
    let query = work.path().join("req.tsq");
    std::fs::write(work.path().join("data.bin"), b"sealed and stamped\n").unwrap();
    run_ok(
        Command::new("openssl")
            .args(["ts", "-query", "-sha256", "-cert", "-data"])
            .arg(work.path().join("data.bin"))
            .arg("-out")
            .arg(&query),
    );
    let (status, body) = a.post_tsa(&query, "application/timestamp-query");
    assert_eq!(status, 200);
    let resp = work.path().join("resp.tsr");
    std::fs::write(&resp, body).unwrap();
    let verify = run(Command::new("openssl")
        .args(["ts", "-verify", "-queryfile"])
        .arg(&query)
        .arg("-in")
        .arg(&resp)
        .arg("-CAfile")
        .arg(a.path("pki/root-ca.pem")));
    assert!(
        verify.status.success() && text(&verify).contains("Verification: OK"),
        "{}",
        text(&verify)
    );

    // SIGHUP re-reads (and unseals) the config; the daemon keeps serving.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(a.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !a.log().contains("client policy reloaded") {
        assert!(std::time::Instant::now() < deadline, "{}", a.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(a.post_tsa(&query, "application/timestamp-query").0, 200);
    assert_eq!(a.stop().and_then(|s| s.code()), Some(0));

    // The PIN: not in the state directory (database, token, logs, certificates), not in the
    // sealed file; the canary proves the search finds what is there.
    std::fs::write(a.path("canary"), PIN).unwrap();
    assert_eq!(
        files_containing(a.dir.path(), PIN.as_bytes()),
        vec![a.path("canary")]
    );
    std::fs::remove_file(a.path("canary")).unwrap();
    let sealed_bytes = std::fs::read(&sealed).unwrap();
    assert!(!sealed_bytes.windows(PIN.len()).any(|w| w == PIN.as_bytes()));

    // unseal shows the config with the PIN redacted; --reveal-secrets shows it and says so.
    let shown = unseal(&tpm, &sealed);
    assert!(shown.status.success(), "{}", text(&shown));
    let shown = text(&shown);
    assert!(shown.contains("user_pin = \"<redacted>\""), "{shown}");
    assert!(!shown.contains(PIN), "{shown}");
    let revealed = signetctl(
        &tpm,
        &["unseal", "--reveal-secrets", sealed.to_str().unwrap()],
    );
    assert!(revealed.status.success());
    assert!(String::from_utf8_lossy(&revealed.stdout).contains(PIN));
    assert!(
        String::from_utf8_lossy(&revealed.stderr).contains("--reveal-secrets: showing the secrets"),
        "{}",
        text(&revealed)
    );
}

#[test]
fn a_changed_pcr_refuses_unseal_and_signetd_exits_naming_the_pcrs() {
    let tpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let sealed = dir.path().join("dev.sealed");
    seal(&tpm, &dev_config(dir.path()), &sealed, "sha256:0,2,4,7");
    assert!(unseal(&tpm, &sealed).status.success());

    tpm.extend(7, b"a new boot loader");
    let out = unseal(&tpm, &sealed);
    assert!(!out.status.success());
    let expected =
        "unseal refused: the sealed config is bound to PCRs sha256:0,2,4,7, and PCR 7 changed";
    assert!(text(&out).contains(expected), "{}", text(&out));
    let log = signetd_refuses(&tpm, &sealed);
    assert!(log.contains(expected), "{log}");

    // The TPM enforces it, not only signet's comparison: a file whose recorded values are
    // made to match the PCRs again is still refused, by the TPM's policy check.
    let mut file = SealedFile::decode(&std::fs::read(&sealed).unwrap()).unwrap();
    file.pcr_values[3] = hex::decode(tpm.read(7, dir.path()))
        .unwrap()
        .try_into()
        .unwrap();
    let doctored = dir.path().join("doctored.sealed");
    std::fs::write(&doctored, file.encode().unwrap()).unwrap();
    let log = signetd_refuses(&tpm, &doctored);
    assert!(
        log.contains("bound to PCRs sha256:0,2,4,7") && log.contains("the TPM's policy check"),
        "{log}"
    );
}

#[test]
fn damaged_truncated_unknown_and_foreign_files_are_each_a_clear_error() {
    let tpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let sealed = dir.path().join("dev.sealed");
    seal(&tpm, &dev_config(dir.path()), &sealed, "sha256:7");
    let good = std::fs::read(&sealed).unwrap();
    let case = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let out = unseal(&tpm, &p);
        assert!(!out.status.success(), "{name} unsealed");
        let t = text(&out);
        assert!(!t.contains("panicked"), "{t}");
        (t, signetd_refuses(&tpm, &p))
    };

    // A flipped byte, wherever it is.
    for at in [20, good.len() / 2, good.len() - 40, good.len() - 1] {
        let mut b = good.clone();
        b[at] ^= 0x40;
        let (ctl, daemon) = case("flipped.sealed", &b);
        for t in [ctl, daemon] {
            assert!(t.contains("the sealed config is damaged"), "byte {at}: {t}");
        }
    }
    let mut b = good.clone();
    b[0] ^= 0x01;
    assert!(case("magic.sealed", &b)
        .1
        .contains("not a sealed Signet config"));

    // Truncated.
    for len in [0, 9, 100, good.len() - 1] {
        let (ctl, daemon) = case("truncated.sealed", &good[..len]);
        for t in [ctl, daemon] {
            assert!(
                t.contains("truncated") || (len < 8 && t.contains("not a sealed Signet config")),
                "{len}: {t}"
            );
        }
    }

    // An unknown version.
    let mut b = good.clone();
    b[8..10].copy_from_slice(&7u16.to_be_bytes());
    let (_, daemon) = case("v7.sealed", &b);
    assert!(
        daemon.contains("sealed config version 7 is unknown: this build reads version 1"),
        "{daemon}"
    );

    // A changed ciphertext under an intact checksum: the AEAD refuses it.
    let mut file = SealedFile::decode(&good).unwrap();
    file.ciphertext[0] ^= 1;
    let (_, daemon) = case("forged.sealed", &file.encode().unwrap());
    assert!(
        daemon.contains("its ciphertext does not authenticate"),
        "{daemon}"
    );

    // Sealed by another TPM (same PCR values: both fresh).
    let other = Swtpm::start();
    let out = unseal(&other, &sealed);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("sealed by another TPM"), "{t}");
    let log = signetd_refuses(&other, &sealed);
    assert!(log.contains("sealed by another TPM"), "{log}");
    // The file itself is fine: its own TPM still opens it.
    assert!(unseal(&tpm, &sealed).status.success());
}

#[test]
fn reseal_moves_a_config_to_the_pcr_values_of_an_update() {
    let tpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.sealed");
    seal(&tpm, &dev_config(dir.path()), &old, "sha256:0,7");

    // The value PCR 7 will hold once the update is measured: extend = H(old || H(event)).
    let event = b"firmware 2.0";
    let mut h = sha2::Sha256::new();
    h.update(hex::decode(tpm.read(7, dir.path())).unwrap());
    h.update(sha2::Sha256::digest(event));
    let predicted = hex::encode(h.finalize());

    let new = dir.path().join("new.sealed");
    let out = signetctl(
        &tpm,
        &[
            "reseal",
            "--in",
            old.to_str().unwrap(),
            "--out",
            new.to_str().unwrap(),
            "--pcr-value",
            &format!("7={predicted}"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(unseal(&tpm, &old).status.success());
    assert!(!unseal(&tpm, &new).status.success());

    tpm.extend(7, event);
    let out = unseal(&tpm, &new);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("profile = \"dev\""));
    assert!(text(&unseal(&tpm, &old)).contains("PCR 7 changed"));

    // And to another selection, at the current values.
    let wider = dir.path().join("wider.sealed");
    let out = signetctl(
        &tpm,
        &[
            "reseal",
            "--in",
            new.to_str().unwrap(),
            "--out",
            wider.to_str().unwrap(),
            "--pcrs",
            "sha256:0,2,7",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(unseal(&tpm, &wider).status.success());
    tpm.extend(2, b"option rom");
    assert!(text(&unseal(&tpm, &wider)).contains("bound to PCRs sha256:0,2,7, and PCR 2 changed"));
    assert!(unseal(&tpm, &new).status.success());
}

#[test]
fn config_check_prints_every_problem_with_its_position_and_checks_the_token() {
    let a = Appliance::init();
    // Every class at once: unknown key, wrong type, port out of range, a key label not on
    // the token, a missing certificate file.
    a.edit_config(|t| {
        let keys = t["keys"].as_table_mut().unwrap();
        keys["tsa"]
            .as_table_mut()
            .unwrap()
            .insert("label".into(), "tsa-typo".into());
        let hsm = t["hsm"].as_table_mut().unwrap();
        hsm.insert("workers".into(), "two".into());
        let api = t["api"].as_table_mut().unwrap();
        api.insert("listen".into(), "127.0.0.1:70000".into());
        api.insert("max_bdy_bytes".into(), 10.into());
        let sk = t["signing_keys"].as_array_mut().unwrap()[1]
            .as_table_mut()
            .unwrap();
        sk.insert("certificate_chain".into(), "pki/gone.pem".into());
    });
    let file = std::fs::read_to_string(&a.config).unwrap();
    let at = |needle: &str| {
        let i = file
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} in {file}"));
        let (line, col) = signet_config::line_column(&file, i);
        format!("{}:{line}:{col}: ", a.config.display())
    };
    let out = run(a.signetctl().args(["config", "check"]).arg(&a.config));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let expected = [
        format!(
            "{}hsm.workers: invalid type: string \"two\", expected usize",
            at("\"two\"")
        ),
        format!(
            "{}api.listen: port 70000 is out of range; allowed: IP:PORT or [IPv6]:PORT",
            at("\"127.0.0.1:70000\"")
        ),
        format!(
            "{}api.max_bdy_bytes: unknown key `max_bdy_bytes`; did you mean `max_body_bytes`?",
            at("max_bdy_bytes")
        ),
        format!(
            "{}keys.tsa.label: no key pair labelled `tsa-typo` on token `signet-dev`",
            at("\"tsa-typo\"")
        ),
        format!(
            "{}signing_keys[1].certificate_chain: certificate file {} does not exist",
            at("\"pki/gone.pem\""),
            a.path("pki/gone.pem").display()
        ),
    ];
    for e in &expected {
        assert!(
            stdout.lines().any(|l| l.starts_with(e.as_str())),
            "missing `{e}` in:\n{stdout}"
        );
    }
    assert_eq!(stdout.lines().count(), expected.len(), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("5 problems in"),
        "{}",
        text(&out)
    );
}

#[test]
fn config_check_passes_a_sealed_config_and_the_production_example_to_be_sealed() {
    let tpm = Swtpm::start();
    let a = Appliance::init();
    let sealed = a.path("appliance.sealed");
    seal(&tpm, &a.config, &sealed, "sha256:7");
    let out = run(a
        .signetctl()
        .env("SIGNET_TCTI", tpm.tcti())
        .args(["config", "check"])
        .arg(format!("sealed:{}", sealed.display())));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": OK"),
        "{}",
        text(&out)
    );

    // The production example: valid once sealed; in clear its PIN is refused, at the PIN.
    let example = signet_e2e::repo_root().join("firmware-config/appliance.toml");
    let e = example.to_str().unwrap();
    let out =
        run(Command::new(bin("signetctl")).args(["config", "check", "--offline", "--to-seal", e]));
    let t = text(&out);
    // Its certificate files exist only on a configured box: those are the only problems.
    assert!(
        t.contains("client_cas[0].certificate: certificate file"),
        "{t}"
    );
    assert!(!t.contains("user_pin"), "{t}");
    let out = run(Command::new(bin("signetctl")).args(["config", "check", "--offline", e]));
    let t = text(&out);
    assert!(
        t.contains("hsm.user_pin: a clear-text PIN is refused in the production profile"),
        "{t}"
    );
}

/// The production profile, from a sealed config, with a signing key that was not generated
/// in the token (a software key written into it, extractable): refused unmarked, refused
/// marked without `hsm.allow_imported_keys`, taken with both, and shown for what it is.
#[test]
fn production_takes_an_imported_extractable_signing_key_only_marked_and_allowed() {
    let tpm = Swtpm::start();
    // The dev PIN, sealed with the rest: pkcs11-tool writes the key with it.
    let mut a = Appliance::init();
    let work = tempfile::tempdir().unwrap();
    let leaky = a.write_software_key(work.path(), "leaky-ec", "4c45", &["--extractable"]);
    let chain = a.document_chain_for(work.path(), "leaky-ec", &leaky);
    let production = |imported: bool, allowed: bool| {
        let chain = chain.clone();
        move |t: &mut toml::Table| {
            t.insert("profile".into(), "production".into());
            let hsm = t["hsm"].as_table_mut().unwrap();
            // Production points at the token through the environment, not a dev directory.
            hsm.remove("softhsm_dir");
            hsm.remove("so_pin");
            hsm.insert("allow_imported_keys".into(), allowed.into());
            let keys = t["signing_keys"].as_array_mut().unwrap();
            keys.retain(|k| k["label"].as_str() != Some("leaky-ec"));
            let mut k = toml::Table::new();
            k.insert("label".into(), "leaky-ec".into());
            k.insert("algorithm".into(), "ec-p256".into());
            k.insert("certificate_chain".into(), chain.clone().into());
            k.insert("imported".into(), imported.into());
            keys.push(toml::Value::Table(k));
            let granted = t["clients"][0]["keys"].as_array_mut().unwrap();
            if !granted.iter().any(|g| g.as_str() == Some("leaky-ec")) {
                granted.push("leaky-ec".into());
            }
        }
    };
    let sealed = a.path("appliance.sealed");
    let conf = a.softhsm_conf();
    let env = [
        ("SIGNET_TCTI", tpm.tcti()),
        ("SOFTHSM2_CONF", conf.to_string_lossy().into_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config_arg = format!("sealed:{}", sealed.display());
    let start = |a: &mut Appliance, imported: bool, allowed: bool| {
        a.edit_config(production(imported, allowed));
        let _ = std::fs::remove_file(&sealed);
        seal(&tpm, &a.config, &sealed, "sha256:7");
        a.try_start_from(config_arg.as_ref(), &env)
    };

    let log = start(&mut a, false, false).expect_err("an unmarked extractable key was taken");
    assert!(
        log.contains("refusing key \"leaky-ec\": CKA_EXTRACTABLE is true"),
        "{log}"
    );
    // Marked, without the allowance: the config itself is refused, so it is never sealed.
    a.edit_config(production(true, false));
    let out = signetctl(
        &tpm,
        &[
            "seal",
            "--in",
            a.config.to_str().unwrap(),
            "--out",
            a.path("refused.sealed").to_str().unwrap(),
            "--pcrs",
            "sha256:7",
        ],
    );
    assert!(
        !out.status.success(),
        "sealed a production config with an imported key"
    );
    assert!(
        text(&out).contains("refuses unless hsm.allow_imported_keys = true"),
        "{}",
        text(&out)
    );
    start(&mut a, true, true).unwrap_or_else(|log| panic!("marked and allowed: {log}"));
    assert!(
        a.log()
            .contains("signing key \"leaky-ec\" is imported (CKA_EXTRACTABLE true"),
        "{}",
        a.log()
    );
    let body = r#"{"digest":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","digest_algorithm":"sha256","scheme":"ecdsa"}"#;
    let out = run_ok(
        a.curl()
            .args([
                "-f",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
            ])
            .arg(body)
            .arg(a.url("/v1/sign/leaky-ec")),
    );
    assert!(out.contains("signature"), "{out}");
    let shown = run(a.signetctl().env("SIGNET_TCTI", tpm.tcti()).args([
        "key",
        "show",
        "leaky-ec",
        "--json",
        "--config",
        &config_arg,
    ]));
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("key show");
    assert!(
        shown["origin_detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("imported (CKA_EXTRACTABLE true")
            && shown["marked_imported"] == true,
        "{shown}"
    );
    a.stop();
}
