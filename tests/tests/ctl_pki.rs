//! signetctl and an outside CA, and edits of the client policy, against a live signetd on
//! SoftHSM: `csr` (judged by `openssl req -verify`), `cert import` (a chain from a CA made
//! here with openssl; a CMS signature made afterwards verifies against that CA with
//! `openssl cms -verify`), `client add|remove` (curl with a client certificate is let in,
//! then out; the config's comments survive; bad edits leave the file alone; a sealed config
//! is refused), and progress drawn only on a terminal.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use signet_e2e::swtpm::Swtpm;
use signet_e2e::{bin, repo_root, run, run_ok, Appliance};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn json(a: &Appliance, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&ok(a.ctl(&all), &args.join(" "))).unwrap()
}

fn refused(out: Output, code: &str) -> String {
    let t = text(&out);
    assert!(!out.status.success(), "should be refused ({code}): {t}");
    assert!(t.contains(code), "refused with {code}: {t}");
    t
}

fn openssl(args: &[&str]) -> String {
    run_ok(Command::new("openssl").args(args))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A self-signed CA made with openssl: (certificate, key).
fn outside_ca(dir: &Path, name: &str, subject: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "30",
        "-subj",
        subject,
        "-keyout",
        s(&key),
        "-out",
        s(&cert),
    ]);
    (cert, key)
}

/// `csr` signed by the CA as openssl does for a document signer.
fn ca_signs(dir: &Path, ca: &(PathBuf, PathBuf), csr: &Path, out: &Path) {
    let ext = dir.join("leaf.ext");
    std::fs::write(
        &ext,
        "keyUsage = critical, digitalSignature, nonRepudiation\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        s(csr),
        "-CA",
        s(&ca.0),
        "-CAkey",
        s(&ca.1),
        "-set_serial",
        "0x5157",
        "-days",
        "10",
        "-extfile",
        s(&ext),
        "-out",
        s(out),
    ]);
}

fn cat(out: &Path, parts: &[&Path]) {
    let text: String = parts
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    std::fs::write(out, text).unwrap();
}

/// A detached CMS signature of `data` by `key`, from the API; returns the DER file.
fn cms_sign(a: &Appliance, key: &str, data: &Path, dir: &Path) -> PathBuf {
    let sig = dir.join(format!("{key}.p7s"));
    let code = run_ok(
        a.curl()
            .args([
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
            ])
            .arg(format!("@{}", data.display()))
            .arg("-o")
            .arg(&sig)
            .args(["-w", "%{http_code}"])
            .arg(a.url(&format!("/v1/cms/{key}"))),
    );
    assert_eq!(
        code,
        "200",
        "{}",
        String::from_utf8_lossy(&std::fs::read(&sig).unwrap_or_default())
    );
    sig
}

/// Whether `openssl cms -verify` accepts `sig` over `data` with `ca` as the only anchor.
fn cms_verifies(sig: &Path, data: &Path, ca: &Path) -> bool {
    let out = run(Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
        .arg(sig)
        .arg("-content")
        .arg(data)
        .arg("-CAfile")
        .arg(ca)
        .args(["-out", "/dev/null"]));
    String::from_utf8_lossy(&out.stderr).contains("Verification successful")
}

#[test]
fn csr_and_import_put_an_outside_chain_in_service() {
    let mut a = Appliance::init();
    a.start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();

    // csr, for an RSA key and a P-256 key: openssl verifies the request, and its subject
    // and public key are the ones asked for and the token's.
    for (key, subject) in [
        ("doc-rsa", "CN=Outside Signer RSA,O=Example"),
        ("doc-ec", "CN=Outside Signer EC,O=Example"),
    ] {
        let req = w.join(format!("{key}.csr"));
        let shown = ok(
            a.ctl(&[
                "csr",
                "--key",
                key,
                "--subject",
                subject,
                "--san-dns",
                "signer.example",
                "--out",
                s(&req),
            ]),
            "csr",
        );
        assert!(shown.contains(subject), "{shown}");
        let verified =
            run(Command::new("openssl").args(["req", "-verify", "-noout", "-in", s(&req)]));
        assert!(verified.status.success(), "{}", text(&verified));
        assert!(text(&verified).contains("verify OK"), "{}", text(&verified));
        let printed = openssl(&[
            "req",
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
            "-in",
            s(&req),
        ]);
        assert_eq!(printed.trim(), format!("subject={subject}"));
        let pubkey = openssl(&["req", "-noout", "-pubkey", "-in", s(&req)]);
        let token = json(&a, &["key", "show", key]);
        assert_eq!(token["public_key_pem"].as_str().unwrap(), pubkey);
        let asked = openssl(&["req", "-noout", "-text", "-in", s(&req)]);
        assert!(asked.contains("DNS:signer.example"), "{asked}");
    }
    // To standard output without --out; --json carries it too.
    let pem = ok(
        a.ctl(&["csr", "--key", "doc-ec", "--subject", "CN=x"]),
        "csr to stdout",
    );
    assert!(
        pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
        "{pem}"
    );
    let v = json(&a, &["csr", "--key", "doc-ec", "--subject", "CN=x"]);
    assert!(v["csr_pem"]
        .as_str()
        .unwrap()
        .contains("CERTIFICATE REQUEST"));
    refused(
        a.ctl(&["csr", "--key", "nope", "--subject", "CN=x"]),
        "not-found",
    );
    refused(
        a.ctl(&["csr", "--key", "doc-ec", "--subject", "no equals sign"]),
        "bad-request",
    );

    // The outside CA signs the EC request; the chain goes in.
    let ca = outside_ca(w, "outside-ca", "/O=Elsewhere/CN=Outside CA");
    let leaf = w.join("leaf.pem");
    ca_signs(w, &ca, &w.join("doc-ec.csr"), &leaf);
    let chain = w.join("chain.pem");
    cat(&chain, &[&leaf, &ca.0]);

    let data = w.join("data.bin");
    std::fs::write(&data, b"signed under an outside CA\n").unwrap();
    let before = cms_sign(&a, "doc-ec", &data, w);
    assert!(
        !cms_verifies(&before, &data, &ca.0),
        "not yet under the outside CA"
    );

    // Refused: a chain for another key; a chain whose CA did not sign the leaf.
    let other_csr = w.join("other.csr");
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=Someone Else",
        "-keyout",
        s(&w.join("other.key")),
        "-out",
        s(&other_csr),
    ]);
    let other_leaf = w.join("other-leaf.pem");
    ca_signs(w, &ca, &other_csr, &other_leaf);
    let other_chain = w.join("other-chain.pem");
    cat(&other_chain, &[&other_leaf, &ca.0]);
    let t = refused(
        a.ctl(&["cert", "import", "--key", "doc-ec", s(&other_chain)]),
        "key-mismatch",
    );
    assert!(t.contains("doc-ec"), "{t}");
    let impostor = outside_ca(w, "impostor", "/O=Elsewhere/CN=Outside CA");
    let broken = w.join("broken-chain.pem");
    cat(&broken, &[&leaf, &impostor.0]);
    let t = refused(
        a.ctl(&["cert", "import", "--key", "doc-ec", s(&broken)]),
        "bad-chain",
    );
    assert!(t.contains("does not verify"), "{t}");
    let garbage = w.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    refused(
        a.ctl(&["cert", "import", "--key", "doc-ec", s(&garbage)]),
        "bad-chain",
    );
    // Nothing changed: still the appliance's own chain.
    let root = a.path("pki/root-ca.pem");
    assert!(cms_verifies(
        &cms_sign(&a, "doc-ec", &data, w),
        &data,
        &root
    ));

    let imported = json(&a, &["cert", "import", "--key", "doc-ec", s(&chain)]);
    assert_eq!(imported["in_service"], true, "{imported}");
    assert_eq!(imported["serial"], "5157");
    assert_eq!(imported["issuer"], "CN=Outside CA,O=Elsewhere");

    // A CMS signature made from now on verifies against the outside CA alone.
    let after = cms_sign(&a, "doc-ec", &data, w);
    assert!(
        cms_verifies(&after, &data, &ca.0),
        "verifies under the outside CA"
    );
    assert!(!cms_verifies(&after, &data, &root));

    // key show and cert show show it; its revocation is not this appliance's.
    let shown = json(&a, &["key", "show", "doc-ec"]);
    assert_eq!(shown["certificate"]["issuer"], "CN=Outside CA,O=Elsewhere");
    assert_eq!(shown["certificate"]["serial"], "5157");
    assert_eq!(
        shown["certificate_chain_pem"].as_str().unwrap(),
        std::fs::read_to_string(&chain).unwrap()
    );
    assert!(ok(a.ctl(&["key", "show", "doc-ec"]), "key show").contains("CN=Outside CA"));
    let cert = json(&a, &["cert", "show", "5157"]);
    assert_eq!(cert["ca"], "external");
    assert_eq!(cert["profile"], "imported");
    assert_eq!(
        cert["pem"].as_str().unwrap(),
        std::fs::read_to_string(&leaf).unwrap()
    );
    refused(
        a.ctl(&["cert", "revoke", "5157", "--reason", "superseded"]),
        "not-ours",
    );
    let table = ok(
        a.ctl(&["cert", "import", "--key", "doc-ec", s(&chain)]),
        "import again",
    );
    assert!(table.contains("now, by the running signetd"), "{table}");

    // Every one of these was an audited admin command.
    let tail = json(&a, &["audit", "tail", "-n", "100"]);
    let commands: Vec<&str> = tail
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["event"]["command"]["command"].as_str())
        .collect();
    assert!(
        commands.contains(&"csr") && commands.contains(&"cert-import"),
        "{commands:?}"
    );

    // After a restart the imported chain is the one in use.
    a.stop();
    a.start();
    let restarted = cms_sign(&a, "doc-ec", &data, w);
    assert!(cms_verifies(&restarted, &data, &ca.0));
    a.stop();

    // Without the daemon, key show reads the stored chain.
    let offline = json(&a, &["key", "show", "doc-ec"]);
    assert_eq!(offline["certificate"]["serial"], "5157");
}

/// The dev config with its comments (the harness writes it back without them), pointed at
/// the appliance's state directory, plus comments of our own in odd places.
fn commented_config(a: &Appliance) -> String {
    let dev = std::fs::read_to_string(repo_root().join("firmware-config/dev.toml")).unwrap();
    let text = dev
        .replace(
            "state_dir = \".signet\"",
            &format!(
                "state_dir = {:?}   # a trailing comment\n\n# a comment of the operator's own",
                a.dir.path().display().to_string()
            ),
        )
        .replace("[[clients]]", "# clients, as edited by hand\n[[clients]]");
    assert!(text.contains("a trailing comment"));
    std::fs::write(&a.config, &text).unwrap();
    text
}

/// HTTP status of a raw-signature request as the client `cert`/`key`.
fn sign_as(a: &Appliance, cert: &Path, key: &Path) -> String {
    let digest = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    run_ok(
        a.curl_as(cert, key)
            .args(["-o", "/dev/null", "-w", "%{http_code}"])
            .args(["-H", "Content-Type: application/json", "--data"])
            .arg(format!(
                r#"{{"digest":"{digest}","digest_algorithm":"sha256","scheme":"ecdsa"}}"#
            ))
            .arg(a.url("/v1/sign/doc-ec")),
    )
}

#[test]
fn client_add_and_remove_edit_the_config_keeping_its_comments_and_take_effect() {
    let mut a = Appliance::init();
    let before = commented_config(&a);
    a.start();
    let (cert, key) = a.issue_client("partner");
    assert_eq!(sign_as(&a, &cert, &key), "403", "not a client yet");

    let add = [
        "client",
        "add",
        "partner",
        "--subject",
        "CN=partner,O=Signet",
        "--operations",
        "sign,cms",
        "--keys",
        "doc-ec",
    ];
    let said = ok(a.ctl(&add), "client add");
    assert!(
        said.contains("client partner added") && said.contains("2 clients"),
        "{said}"
    );
    assert_eq!(sign_as(&a, &cert, &key), "200", "let in at once");
    let after = std::fs::read_to_string(&a.config).unwrap();
    let block = "\n[[clients]]\nname = \"partner\"\nmatch = { subject = \"CN=partner,O=Signet\" }\noperations = [\"sign\", \"cms\"]\nkeys = [\"doc-ec\"]\n";
    assert!(after.contains(block), "{after}");
    assert_eq!(
        after.replacen(block, "", 1),
        before,
        "everything else is as it was"
    );
    let listed = json(&a, &["client", "list"]);
    assert_eq!(listed[1]["name"], "partner");
    assert_eq!(listed[1]["operations"], serde_json::json!(["sign", "cms"]));

    // Refused edits leave the file alone and the daemon serving.
    refused(a.ctl(&add), "client-exists");
    let mut bad_op = add.to_vec();
    bad_op[2] = "stamper";
    bad_op[6] = "teleport";
    let t = refused(a.ctl(&bad_op), "invalid-config");
    assert!(
        t.contains("teleport") && t.contains("file unchanged"),
        "{t}"
    );
    let mut bad_key = add.to_vec();
    bad_key[2] = "stamper";
    bad_key[8] = "no-such-key";
    refused(a.ctl(&bad_key), "invalid-config");
    refused(a.ctl(&["client", "remove", "nobody"]), "not-found");
    let no_match = a.ctl(&["client", "add", "loose", "--operations", "tsa"]);
    assert!(
        !no_match.status.success(),
        "a client must be matched by something"
    );
    assert_eq!(std::fs::read_to_string(&a.config).unwrap(), after);
    assert_eq!(sign_as(&a, &cert, &key), "200");

    let removed = json(&a, &["client", "remove", "partner"]);
    assert_eq!(removed["clients"], 1);
    assert_eq!(sign_as(&a, &cert, &key), "403", "shut out again");
    assert_eq!(std::fs::read_to_string(&a.config).unwrap(), before);

    // Both are on the audit record.
    let tail = json(&a, &["audit", "tail", "-n", "100"]);
    let commands: Vec<&str> = tail
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["event"]["command"]["command"].as_str())
        .collect();
    assert!(commands.contains(&"client-add") && commands.contains(&"client-remove"));
    a.stop();

    // With no daemon the file is edited the same way, for the next start.
    ok(a.ctl(&add), "client add offline");
    a.start();
    assert_eq!(sign_as(&a, &cert, &key), "200");
    a.stop();
}

#[test]
fn a_sealed_config_is_not_edited_in_place() {
    let tpm = Swtpm::start();
    let mut a = Appliance::init();
    let sealed = a.path("appliance.sealed");
    let o = run(Command::new(bin("signetctl"))
        .args(["config", "seal", "--in", s(&a.config), "--out", s(&sealed)])
        .args(["--pcrs", "sha256:0"])
        .env("SIGNET_TCTI", tpm.tcti()));
    assert!(o.status.success(), "seal: {}", text(&o));
    let tcti = tpm.tcti();
    a.try_start_from(
        format!("sealed:{}", sealed.display()).as_ref(),
        &[("SIGNET_TCTI", &tcti)],
    )
    .unwrap_or_else(|log| panic!("signetd from the sealed config: {log}"));
    let sealed_bytes = std::fs::read(&sealed).unwrap();
    let socket = a.path("admin.sock");
    let out = run(a
        .signetctl()
        .args([
            "client",
            "add",
            "x",
            "--subject",
            "CN=x",
            "--operations",
            "tsa",
            "--socket",
        ])
        .arg(&socket));
    let t = refused(out, "sealed-config");
    assert!(
        t.contains("edit its plaintext") && t.contains("seal it again"),
        "{t}"
    );
    assert_eq!(std::fs::read(&sealed).unwrap(), sealed_bytes);
    let listed = run_ok(
        a.signetctl()
            .args(["client", "list", "--json", "--socket"])
            .arg(&socket),
    );
    assert!(!listed.contains("\"x\""), "{listed}");
    a.stop();
}

#[test]
fn progress_is_drawn_on_a_terminal_only() {
    let mut a = Appliance::init();
    a.start();
    let ctl = bin("signetctl");
    let config = a.config.display().to_string();
    let softhsm = a.softhsm_conf();
    // `script` gives signetctl a terminal; what it drew is in the transcript.
    let on_tty = |args: &str| {
        let cmd = format!("{} {args} --config {config}", ctl.display());
        run_ok(
            Command::new("script")
                .args(["-qefc", &cmd, "/dev/null"])
                .env("SOFTHSM2_CONF", &softhsm),
        )
    };
    let drawn = on_tty("key generate --label spun --algorithm ec-p256");
    assert!(drawn.contains("generating ec-p256 key \"spun\""), "{drawn}");
    let plain = ok(
        a.ctl(&[
            "key",
            "generate",
            "--label",
            "plain",
            "--algorithm",
            "ec-p256",
        ]),
        "generate",
    );
    assert_eq!(plain, "label      plain\nalgorithm  ec-p256\n");
    let json_on_tty = on_tty("key generate --label quiet --algorithm ec-p256 --json");
    assert!(!json_on_tty.contains("generating"), "{json_on_tty}");
    // Verifying through the daemon: drawn from the progress lines it sends.
    let drawn = on_tty("audit verify");
    assert!(drawn.contains("verifying the audit log"), "{drawn}");
    assert!(drawn.contains("audit log verified"), "{drawn}");
    a.stop();

    // Verifying the log with no daemon: a bar over the records read here.
    let drawn = on_tty("audit verify");
    assert!(drawn.contains("verifying the audit log"), "{drawn}");
    assert!(drawn.contains("audit log verified"), "{drawn}");
    let plain = ok(a.ctl(&["audit", "verify"]), "audit verify");
    assert!(plain.starts_with("audit log verified"), "{plain}");
    assert!(!plain.contains('\x1b') && !plain.contains('\r'));
}
