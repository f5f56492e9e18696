//! Only who should get in gets in, against a live signetd on the test token:
//! - the demo client, held and then revoked while it holds an HTTP/2 connection: its next
//!   request on that connection and every new handshake are refused; unhold restores access;
//!   OCSP and the client CA's CRL say the same; each refusal is in the audit log with why;
//! - certificates that are not client certificates (document signing, TSA), from a CA that
//!   is not a client CA, or without id-kp-clientAuth are refused at the handshake, whatever
//!   subject they copy; a `[[clients]]` entry bound to one CA does not match the same subject
//!   from another; an outside client CA's CRL (made by `openssl ca`) is enforced.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;

use signet_e2e::client::client_config;
use signet_e2e::{run, run_ok, Appliance};

/// One HTTP/2 connection with the given credentials, held open by the test.
struct H2 {
    sender: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    host: String,
}

impl H2 {
    async fn connect(app: &Appliance, cert: &Path, key: &Path) -> H2 {
        let mut config = (*client_config(app, cert, key)).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let addr = app.addr.expect("running");
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .expect("h2");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        H2 {
            sender,
            host: format!("localhost:{}", addr.port()),
        }
    }

    async fn get(&mut self, path: &str) -> (u16, String) {
        let req = hyper::Request::get(format!("https://{}{path}", self.host))
            .body(Empty::new())
            .expect("request");
        let resp = self.sender.send_request(req).await.expect("answer");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// GET `path` with curl and these credentials: the HTTP status, or `None` when the
/// handshake was refused.
fn curl_status(app: &Appliance, cert: &Path, key: &Path, path: &str) -> Option<u16> {
    let out = run(app
        .curl_as(cert, key)
        .args(["-o", "/dev/null", "-w", "%{http_code}"])
        .arg(app.url(path)));
    let code: u16 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (code != 0).then_some(code)
}

fn serial_of(cert: &Path) -> String {
    let out = run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(cert),
    );
    out.trim().trim_start_matches("serial=").to_lowercase()
}

fn ctl_ok(app: &Appliance, args: &[&str]) {
    let out = app.ctl(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The audit log's lines, once one of them contains every one of `needles` (waits up to 5 s:
/// handshake refusals are recorded without holding anyone up).
fn audit_line_with(app: &Appliance, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(app.path("audit/audit.log")).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no audit record with {needles:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ocsp_status_of_demo(app: &Appliance) -> String {
    let out = run(Command::new("openssl")
        .arg("ocsp")
        .arg("-issuer")
        .arg(app.path("pki/client-ca.pem"))
        .arg("-cert")
        .arg(app.path("demo/client.pem"))
        .arg("-CAfile")
        .arg(app.path("pki/root-ca.pem"))
        .args(["-url", &app.public_url("/ocsp")]));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_client_is_refused_on_its_open_connection_and_at_every_handshake() {
    let mut app = Appliance::init();
    app.start();
    let (cert, key) = (app.path("demo/client.pem"), app.path("demo/client.key"));
    let serial = serial_of(&cert);
    let mut held = H2::connect(&app, &cert, &key).await;
    assert_eq!(held.get("/v1/keys").await.0, 200);
    assert_eq!(curl_status(&app, &cert, &key, "/v1/keys"), Some(200));
    let out = ocsp_status_of_demo(&app);
    assert!(
        out.contains("Response verify OK") && out.contains("client.pem: good"),
        "{out}"
    );

    // On hold: refused on the connection it holds, and at every new handshake.
    ctl_ok(
        &app,
        &["cert", "revoke", &serial, "--reason", "certificateHold"],
    );
    let (status, body) = held.get("/v1/keys").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("client-refused") && body.contains("certificateHold"),
        "{body}"
    );
    assert_eq!(curl_status(&app, &cert, &key, "/v1/keys"), None);
    let out = ocsp_status_of_demo(&app);
    assert!(
        out.contains("Response verify OK") && out.contains("client.pem: revoked"),
        "{out}"
    );
    audit_line_with(&app, &["\"request\"", "\"refused\"", "certificateHold"]);
    audit_line_with(&app, &["handshake-refused", "revoked (certificateHold)"]);

    // Lifted: the same connection and new ones are served again.
    ctl_ok(&app, &["cert", "unhold", &serial]);
    assert_eq!(held.get("/v1/keys").await.0, 200);
    assert_eq!(curl_status(&app, &cert, &key, "/v1/keys"), Some(200));

    // Revoked for good.
    ctl_ok(
        &app,
        &["cert", "revoke", &serial, "--reason", "keyCompromise"],
    );
    assert_eq!(held.get("/v1/keys").await.0, 403);
    assert_eq!(curl_status(&app, &cert, &key, "/v1/keys"), None);
    audit_line_with(&app, &["handshake-refused", "revoked (keyCompromise)"]);

    // The client CA's CRL lists it, and verifies under the client CA.
    let crl = app.path("client-ca.crl");
    run_ok(
        Command::new("curl")
            .args(["-sS", "-o"])
            .arg(&crl)
            .arg(app.public_url("/crl/client-ca.crl")),
    );
    let text = run_ok(
        Command::new("openssl")
            .args(["crl", "-inform", "DER", "-noout", "-text", "-verify", "-in"])
            .arg(&crl)
            .arg("-CAfile")
            .arg(app.path("pki/client-ca.pem")),
    );
    assert!(
        text.to_lowercase().contains(&serial) && text.contains("Key Compromise"),
        "{text}"
    );
    app.stop();
}

/// An outside CA made with openssl: its certificate, key and an `openssl ca` setup that
/// revokes and issues CRLs.
struct OutsideCa {
    dir: PathBuf,
}

impl OutsideCa {
    fn new(dir: PathBuf, name: &str) -> OutsideCa {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = d\n[d]\ndatabase = {db}\ncrlnumber = {num}\n\
                 default_md = sha256\ndefault_crl_days = 7\n",
                db = dir.join("index.txt").display(),
                num = dir.join("crlnumber").display()
            ),
        )
        .unwrap();
        run_ok(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj"])
                .arg(format!("/O=Elsewhere/CN={name}"))
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
                .arg("-keyout")
                .arg(dir.join("ca.key"))
                .arg("-out")
                .arg(dir.join("ca.pem")),
        );
        OutsideCa { dir }
    }

    /// A certificate for `/O=Signet/CN=<cn>` with serial `serial` and these extensions.
    fn issue(&self, cn: &str, serial: &str, extensions: &str) -> (PathBuf, PathBuf) {
        let d = &self.dir;
        let stem = format!("{cn}-{serial}");
        let (cert, ext) = (d.join(format!("{stem}.pem")), d.join(format!("{stem}.ext")));
        std::fs::write(
            &ext,
            format!(
                "[v3]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 authorityKeyIdentifier=keyid\n{extensions}\n"
            ),
        )
        .unwrap();
        let (key, csr) = signet_e2e::p256_csr(d, &stem, &format!("/O=Signet/CN={cn}"));
        run_ok(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "1", "-set_serial", serial, "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(d.join("ca.pem"))
                .arg("-CAkey")
                .arg(d.join("ca.key"))
                .arg("-extfile")
                .arg(&ext)
                .args(["-extensions", "v3", "-out"])
                .arg(&cert),
        );
        (cert, key)
    }

    /// Revoke `cert` and write the CA's CRL (PEM) to `crl.pem`.
    fn revoke_and_publish(&self, cert: &Path) {
        let d = &self.dir;
        let ca = |args: &[&str]| {
            run_ok(
                Command::new("openssl")
                    .args(["ca", "-config"])
                    .arg(d.join("ca.cnf"))
                    .arg("-keyfile")
                    .arg(d.join("ca.key"))
                    .arg("-cert")
                    .arg(d.join("ca.pem"))
                    .args(args),
            )
        };
        ca(&[
            "-revoke",
            cert.to_str().unwrap(),
            "-crl_reason",
            "keyCompromise",
        ]);
        ca(&["-gencrl", "-out", d.join("crl.pem").to_str().unwrap()]);
    }
}

#[test]
fn only_client_certificates_from_the_clients_own_ca_authenticate() {
    let mut app = Appliance::init();
    let partner = OutsideCa::new(app.path("partner"), "Partner Client CA");
    let stranger = OutsideCa::new(app.path("stranger"), "Stranger CA");
    let client_auth = "extendedKeyUsage=clientAuth";
    let partner_app = partner.issue("partner-app", "0x1001", client_auth);
    let partner_revoked = partner.issue("partner-app", "0x1002", client_auth);
    let partner_copy = partner.issue("demo-app", "0x1003", client_auth);
    let partner_no_eku = partner.issue("partner-app", "0x1004", "");
    let stranger_copy = stranger.issue("demo-app", "0x2001", client_auth);
    partner.revoke_and_publish(&partner_revoked.0);
    app.edit_config(|t| {
        let extra: toml::Table = r#"
            [[client_cas]]
            name = "partner"
            certificate = "partner/ca.pem"
            crl = "partner/crl.pem"
            crl_refresh_secs = 10
            revocation = "fail-closed"

            [[clients]]
            name = "partner-app"
            match = { issuer = "partner", subject = "CN=partner-app,O=Signet" }
            operations = ["tsa"]
        "#
        .parse()
        .unwrap();
        t.insert("client_cas".into(), extra["client_cas"].clone());
        let clients = t
            .get_mut("clients")
            .and_then(|c| c.as_array_mut())
            .expect("clients");
        clients.extend(extra["clients"].as_array().unwrap().iter().cloned());
    });
    app.start();

    // Certificates the appliance issued for other purposes, copying the demo client's subject.
    let dir = tempfile::tempdir().unwrap();
    let mut issued = Vec::new();
    for profile in ["document-signing", "tsa"] {
        let (key, csr) = signet_e2e::p256_csr(dir.path(), profile, "/O=Signet/CN=demo-app");
        let cert = dir.path().join(format!("{profile}.pem"));
        ctl_ok(
            &app,
            &[
                "cert",
                "issue",
                "--profile",
                profile,
                "--csr",
                csr.to_str().unwrap(),
                "--out",
                cert.to_str().unwrap(),
            ],
        );
        issued.push((profile, cert, key));
    }

    // Controls: the demo client and the partner's own client get in.
    let demo = (app.path("demo/client.pem"), app.path("demo/client.key"));
    assert_eq!(curl_status(&app, &demo.0, &demo.1, "/v1/keys"), Some(200));
    assert_eq!(
        curl_status(&app, &partner_app.0, &partner_app.1, "/v1/keys"),
        Some(200)
    );

    // Not client certificates, or not from a client CA: refused at the handshake.
    for (profile, cert, key) in &issued {
        assert_eq!(
            curl_status(&app, cert, key, "/v1/keys"),
            None,
            "a {profile} certificate authenticated"
        );
    }
    assert_eq!(
        curl_status(&app, &stranger_copy.0, &stranger_copy.1, "/v1/keys"),
        None
    );
    // From a client CA, but without id-kp-clientAuth.
    assert_eq!(
        curl_status(&app, &partner_no_eku.0, &partner_no_eku.1, "/v1/keys"),
        None
    );
    audit_line_with(&app, &["handshake-refused", "id-kp-clientAuth"]);
    // Listed in the partner's CRL.
    assert_eq!(
        curl_status(&app, &partner_revoked.0, &partner_revoked.1, "/v1/keys"),
        None
    );
    audit_line_with(
        &app,
        &[
            "handshake-refused",
            "of CA partner is revoked (keyCompromise)",
        ],
    );
    // The demo client's subject from the partner CA: authenticated, but nobody: the demo
    // client's entry is bound to the appliance's client CA.
    let out = run(app
        .curl_as(&partner_copy.0, &partner_copy.1)
        .arg(app.url("/v1/keys")));
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("unknown-client"), "{body}");
    app.stop();
}
