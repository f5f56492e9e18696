//! The mTLS listener refuses, at the handshake: no client certificate, a certificate from
//! another CA, an expired certificate from the right CA, and a TLS 1.1-only client. Each
//! refusal has a positive control that is accepted, so the test can tell the difference.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use der::Decode;
use spki::SubjectPublicKeyInfoOwned;

use signet::ceremony::sign_certificate;
use signet::hsm::Hsm;
use signet_e2e::{run, run_ok, Appliance};
use signet_pki::x509::{self, CertificateParams, Issuer, Profile};

fn app() -> &'static Appliance {
    static APP: OnceLock<Appliance> = OnceLock::new();
    APP.get_or_init(|| {
        let mut a = Appliance::init();
        a.start();
        a
    })
}

/// GET /healthz with the given client credentials; Some(status) if an HTTP answer came.
fn healthz_with(cert: Option<(&Path, &Path)>) -> (Option<u16>, String) {
    let a = app();
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "10",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ])
    .arg("--cacert")
    .arg(a.path("pki/root-ca.pem"));
    if let Some((c, k)) = cert {
        cmd.arg("--cert").arg(c).arg("--key").arg(k);
    }
    let out = run(cmd.arg(a.url("/healthz")));
    let code: u16 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (
        (code != 0).then_some(code),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn refusals_logged() -> usize {
    app().log().matches("TLS handshake refused").count()
}

/// A fresh P-256 key made by openssl: (key file, SPKI).
fn software_key(dir: &Path, name: &str) -> (PathBuf, SubjectPublicKeyInfoOwned) {
    let key = dir.join(format!("{name}.key"));
    run_ok(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&key),
    );
    let spki = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&key))
    .stdout;
    (
        key,
        SubjectPublicKeyInfoOwned::from_der(&spki).expect("SPKI"),
    )
}

/// Sign a client certificate with the appliance's client CA key (in the HSM) with the given
/// validity, past the appliance's records.
fn issue_client_cert(
    dir: &Path,
    name: &str,
    not_before: SystemTime,
    lifetime: Duration,
) -> (PathBuf, PathBuf) {
    // One handle at a time, opened here and dropped before this returns: a handle kept in a
    // static left its reconnect thread calling into the module while the test binary exited,
    // and the binary died of SIGSEGV after every test had passed.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let a = app();
    // The module reads these when it is initialised.
    for (k, v) in a.token_env() {
        std::env::set_var(k, v);
    }
    let config = signet_config::Config::load(&a.config).expect("config");
    let hsm = &Hsm::open(&signet::settings::hsm(&config).expect("settings")).expect("HSM");
    let root_key = hsm.key_blocking("client-ca").expect("client CA key");
    let root = x509::certificate_from_pem(
        &std::fs::read_to_string(a.path("pki/client-ca.pem")).expect("client CA"),
    )
    .expect("pem");
    let issuer = Issuer::from_certificate(&root, root_key.algorithm.default_scheme());
    let (key, spki) = software_key(dir, name);
    let params = CertificateParams {
        profile: Profile::TlsClient(Vec::new()),
        subject: x509::parse_name(&format!("CN={name},O=Signet")).expect("name"),
        public_key: spki,
        serial: hsm.random_blocking(16).expect("random"),
        not_before,
        lifetime,
        revocation: Default::default(),
    };
    let cert = sign_certificate(hsm, &root_key, params, Some(&issuer)).expect("issue");
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, x509::certificate_to_pem(&cert).expect("pem")).expect("write");
    (path, key)
}

#[test]
fn the_demo_client_is_accepted() {
    let a = app();
    let (code, err) = healthz_with(Some((
        &a.path("demo/client.pem"),
        &a.path("demo/client.key"),
    )));
    assert_eq!(code, Some(200), "{err}");
}

#[test]
fn no_client_certificate_is_refused_at_the_handshake() {
    let before = refusals_logged();
    let (code, err) = healthz_with(None);
    assert_eq!(code, None, "answered without a client certificate: {err}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        refusals_logged() > before,
        "server did not log the refusal:\n{}",
        app().log()
    );
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
            ])
            .args([
                "-subj",
                "/CN=Other CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ])
            .arg("-keyout")
            .arg(d.join("ca.key"))
            .arg("-out")
            .arg(d.join("ca.pem")),
    );
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/O=Signet/CN=demo-app",
            ])
            .arg("-keyout")
            .arg(d.join("c.key"))
            .arg("-out")
            .arg(d.join("c.csr")),
    );
    std::fs::write(
        d.join("ext"),
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "30", "-CAcreateserial"])
            .arg("-in")
            .arg(d.join("c.csr"))
            .arg("-CA")
            .arg(d.join("ca.pem"))
            .arg("-CAkey")
            .arg(d.join("ca.key"))
            .arg("-extfile")
            .arg(d.join("ext"))
            .arg("-out")
            .arg(d.join("c.pem")),
    );
    let before = refusals_logged();
    let (code, err) = healthz_with(Some((&d.join("c.pem"), &d.join("c.key"))));
    assert_eq!(code, None, "answered a client of another CA: {err}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(refusals_logged() > before);
}

#[test]
fn an_expired_certificate_from_the_right_ca_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let day = Duration::from_secs(86_400);
    // Control: same CA, same profile, valid now, issued through the appliance.
    let (good, good_key) = app().issue_client("fresh-app");
    assert_eq!(healthz_with(Some((&good, &good_key))).0, Some(200));
    // Valid for one day, ten days ago.
    let (old, old_key) =
        issue_client_cert(dir.path(), "expired-app", SystemTime::now() - 10 * day, day);
    let before = refusals_logged();
    let (code, err) = healthz_with(Some((&old, &old_key)));
    assert_eq!(code, None, "answered an expired client: {err}");
    std::thread::sleep(Duration::from_millis(200));
    let log = app().log();
    assert!(log.matches("TLS handshake refused").count() > before);
    assert!(
        log.contains("certificate expired"),
        "the refusal should say why:\n{log}"
    );
}

/// openssl s_client limited to one protocol version, with the demo credentials.
fn s_client(version: &str) -> String {
    let a = app();
    let addr = a.addr.expect("running").to_string();
    let out = run(Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr,
            version,
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ])
        .arg("-cert")
        .arg(a.path("demo/client.pem"))
        .arg("-key")
        .arg(a.path("demo/client.key"))
        .arg("-CAfile")
        .arg(a.path("pki/root-ca.pem")));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn only_tls_1_2_and_1_3_are_spoken() {
    assert!(s_client("-tls1_2").contains("New, TLSv1.2,"));
    assert!(s_client("-tls1_3").contains("New, TLSv1.3,"));
    let before = refusals_logged();
    let text = s_client("-tls1_1");
    // The client did send a TLS 1.1 hello and the server answered with an alert.
    assert!(
        text.contains("alert") && text.contains("no peer certificate available"),
        "{text}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(refusals_logged() > before, "server did not log the refusal");
}
