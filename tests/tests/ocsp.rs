//! The OCSP responder and CRLs judged by openssl and GnuTLS: good, revoked with its reason,
//! unknown for a serial never issued, unauthorized for another CA; several CertIDs, nonce
//! echo and the RFC 9654 limit; the GET form with RFC 5019 caching; mTLS; CRLs; hold.

use std::process::Command;

use x509_ocsp::OcspResponseStatus;

use signet_e2e::ocsp::{self, echoed_nonce, openssl_ask, pki_cert, statuses};
use signet_e2e::{run, run_ok, Appliance};

fn serial_of(app: &Appliance, file: &str) -> String {
    let out = run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(app.path(&format!("pki/{file}"))),
    );
    out.trim().trim_start_matches("serial=").to_owned()
}

fn revoke(app: &Appliance, serial: &str, reason: &str) {
    let out = app.ctl(&["cert", "revoke", serial, "--reason", reason]);
    assert!(
        out.status.success(),
        "revoke: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// POST a DER request to the public listener; (HTTP status, body).
fn post(app: &Appliance, body: &[u8]) -> (u16, Vec<u8>) {
    curl_post(
        Command::new("curl"),
        &app.public_url("/ocsp"),
        body,
        "application/ocsp-request",
    )
}

fn curl_post(mut curl: Command, url: &str, body: &[u8], content_type: &str) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tmp");
    let (req, resp) = (dir.path().join("req"), dir.path().join("resp"));
    std::fs::write(&req, body).expect("write");
    let out = run(curl
        .args(["-sS", "--max-time", "30", "-o"])
        .arg(&resp)
        .args(["-w", "%{http_code}", "-H"])
        .arg(format!("Content-Type: {content_type}"))
        .arg("--data-binary")
        .arg(format!("@{}", req.display()))
        .arg(url));
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (code, std::fs::read(&resp).unwrap_or_default())
}

/// GET a path on the public listener with extra curl arguments; (status, headers, body).
fn get(app: &Appliance, path: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tmp");
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let out = run(Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(extra)
        .arg(app.public_url(path)));
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (
        code,
        std::fs::read_to_string(&head)
            .unwrap_or_default()
            .to_ascii_lowercase(),
        std::fs::read(&body).unwrap_or_default(),
    )
}

#[test]
fn openssl_and_gnutls_see_good_then_revoked_unknown_and_unauthorized() {
    let mut app = Appliance::init();
    app.start();
    let url = app.public_url("/ocsp");
    let tsa = app.path("pki/tsa.pem");
    // The client CA: a CA certificate the root issued.
    let client = app.path("pki/client-ca.pem");

    // Two certificates, openssl's default nonce: both good, signature and nonce checked.
    let out = openssl_ask(&app, &url, &[&tsa, &client], &[]);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(
        out.contains("tsa.pem: good") && out.contains("client-ca.pem: good"),
        "{out}"
    );
    assert!(!out.contains("WARNING"), "{out}");

    // SHA-256 CertIDs too.
    let out = openssl_ask(&app, &url, &[&tsa], &["-sha256"]);
    assert!(
        out.contains("Response verify OK") && out.contains("tsa.pem: good"),
        "{out}"
    );

    // A serial this CA never issued is unknown, not good.
    let out = openssl_ask(&app, &url, &[], &["-serial", "0x5151", "-no_nonce"]);
    assert!(out.contains("0x5151: unknown"), "{out}");

    // A CA this appliance does not serve: unauthorized.
    let other = tempfile::tempdir().expect("tmp");
    let other_ca = other.path().join("other-ca.pem");
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
            ])
            .args(["-subj", "/CN=Someone Else", "-days", "1", "-keyout"])
            .arg(other.path().join("k.pem"))
            .arg("-out")
            .arg(&other_ca),
    );
    let out = run(Command::new("openssl")
        .arg("ocsp")
        .arg("-issuer")
        .arg(&other_ca)
        .args(["-serial", "1", "-url", &url]));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("unauthorized"), "{text}");

    // GnuTLS agrees before the revocation...
    let gnutls = |cert: &std::path::Path| {
        let out = run(Command::new("ocsptool")
            .arg(format!("--ask={url}"))
            .arg(format!(
                "--load-issuer={}",
                app.path("pki/root-ca.pem").display()
            ))
            .arg(format!("--load-cert={}", cert.display()))
            .arg(format!(
                "--load-trust={}",
                app.path("pki/root-ca.pem").display()
            ))
            .arg("--nonce"));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let out = gnutls(&tsa);
    assert!(out.contains("Verifying OCSP Response: Success."), "{out}");
    assert!(out.contains("Certificate Status: good"), "{out}");

    // ...and after it, as openssl does, with the reason.
    revoke(&app, &serial_of(&app, "tsa.pem"), "keyCompromise");
    let out = openssl_ask(&app, &url, &[&tsa], &[]);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(
        out.contains("tsa.pem: revoked") && out.contains("Reason: keyCompromise"),
        "{out}"
    );
    let out = openssl_ask(&app, &url, &[&tsa], &["-no_nonce"]);
    assert!(
        out.contains("tsa.pem: revoked"),
        "the pre-signed answer was re-signed: {out}"
    );
    let out = gnutls(&tsa);
    assert!(out.contains("Certificate Status: revoked"), "{out}");

    // The CRL lists it with its reason, and verifies under the root.
    let (code, _, crl) = get(&app, "/crl/root.crl", &[]);
    assert_eq!(code, 200);
    let crl_file = other.path().join("root.crl");
    std::fs::write(&crl_file, crl).expect("write");
    let out = run(Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-text", "-verify", "-in"])
        .arg(&crl_file)
        .arg("-CAfile")
        .arg(app.path("pki/root-ca.pem")));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("verify OK"), "{text}");
    assert!(
        text.contains(&serial_of(&app, "tsa.pem")) && text.contains("Key Compromise"),
        "{text}"
    );
    assert!(
        !text.contains(&serial_of(&app, "tls-server-chain.pem")),
        "{text}"
    );

    // Over mutual TLS too.
    let root = pki_cert(&app, "root-ca.pem");
    let req = ocsp::request(&root, &[&pki_cert(&app, "tsa.pem")], 0);
    let (code, body) = curl_post(
        app.curl(),
        &app.url("/ocsp"),
        &req,
        "application/ocsp-request",
    );
    assert_eq!(code, 200);
    assert_eq!(statuses(&body), ["revoked"]);
    app.stop();
}

#[test]
fn get_form_caching_several_cert_ids_and_nonces() {
    use base64::Engine;
    let mut app = Appliance::init();
    app.start();
    let root = pki_cert(&app, "root-ca.pem");
    let (tsa, tls) = (
        pki_cert(&app, "tsa.pem"),
        pki_cert(&app, "tls-server-chain.pem"),
    );

    // Two CertIDs: two SingleResponses, in order; the nonce echoed.
    let (code, body) = post(&app, &ocsp::request(&root, &[&tsa, &tls], 16));
    assert_eq!(code, 200);
    assert_eq!(statuses(&body), ["good", "good"]);
    assert_eq!(echoed_nonce(&body), Some(vec![0x5a; 16]));

    // 32 octets is the most RFC 9654 allows; 33 is malformed.
    let (_, body) = post(&app, &ocsp::request(&root, &[&tsa], 32));
    assert_eq!(echoed_nonce(&body), Some(vec![0x5a; 32]));
    let (code, body) = post(&app, &ocsp::request(&root, &[&tsa], 33));
    assert_eq!(
        (code, ocsp::status(&body)),
        (200, OcspResponseStatus::MalformedRequest)
    );

    // GET, standard base64 percent-encoded, and URL-safe: the pre-signed answer with
    // RFC 5019 caching headers.
    let req = ocsp::request(&root, &[&tsa], 0);
    let standard = base64::engine::general_purpose::STANDARD.encode(&req);
    let encoded: String = standard
        .chars()
        .map(|c| match c {
            '+' => "%2B".to_owned(),
            '/' => "%2F".to_owned(),
            '=' => "%3D".to_owned(),
            c => c.to_string(),
        })
        .collect();
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&req);
    let (code, head, first) = get(&app, &format!("/ocsp/{encoded}"), &[]);
    assert_eq!(code, 200, "{head}");
    assert_eq!(statuses(&first), ["good"]);
    for h in [
        "cache-control: max-age=",
        "public",
        "last-modified:",
        "expires:",
        "etag:",
    ] {
        assert!(head.contains(h), "{h} missing in {head}");
    }
    let (code, _, second) = get(&app, &format!("/ocsp/{url_safe}"), &[]);
    assert_eq!(code, 200);
    assert_eq!(
        first, second,
        "both forms are answered from the same cache entry"
    );
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("etag")
        .trim()
        .to_owned();
    let (code, _, body) = get(
        &app,
        &format!("/ocsp/{url_safe}"),
        &["-H", &format!("If-None-Match: {etag}")],
    );
    assert_eq!(
        (code, body.len()),
        (304, 0),
        "a conditional GET is not modified"
    );

    // Hold, then release: revoked (certificateHold), then good again.
    let serial = hex::encode_upper(tsa.tbs_certificate.serial_number.as_bytes());
    assert!(app
        .ctl(&["cert", "revoke", &serial, "--reason", "certificateHold"])
        .status
        .success());
    let (_, _, held) = get(&app, &format!("/ocsp/{url_safe}"), &[]);
    assert_eq!(statuses(&held), ["revoked"]);
    let out = openssl_ask(
        &app,
        &app.public_url("/ocsp"),
        &[&app.path("pki/tsa.pem")],
        &[],
    );
    assert!(out.contains("Reason: certificateHold"), "{out}");
    assert!(app.ctl(&["cert", "unhold", &serial]).status.success());
    let (_, _, released) = get(&app, &format!("/ocsp/{url_safe}"), &[]);
    assert_eq!(statuses(&released), ["good"]);
    // A revocation is final.
    assert!(app
        .ctl(&["cert", "revoke", &serial, "--reason", "superseded"])
        .status
        .success());
    let out = app.ctl(&["cert", "unhold", &serial]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already revoked"));
    app.stop();
}

#[test]
fn bad_input_gets_malformed_request_or_a_4xx_and_never_a_5xx() {
    let mut app = Appliance::init();
    app.start();
    let root = pki_cert(&app, "root-ca.pem");
    let good = ocsp::request(&root, &[&pki_cert(&app, "tsa.pem")], 16);
    let mut bodies: Vec<Vec<u8>> = vec![Vec::new(), b"garbage".to_vec(), vec![0x30; 100]];
    bodies.extend((1..good.len()).step_by(7).map(|n| good[..n].to_vec()));
    let mut trailing = good.clone();
    trailing.push(0);
    bodies.push(trailing);
    for body in &bodies {
        let (code, resp) = post(&app, body);
        assert_eq!(code, 200, "{body:?}");
        assert_eq!(
            ocsp::status(&resp),
            OcspResponseStatus::MalformedRequest,
            "{body:?}"
        );
    }
    // Wrong media type, and a body over the limit.
    let (code, resp) = curl_post(
        Command::new("curl"),
        &app.public_url("/ocsp"),
        &good,
        "text/plain",
    );
    assert_eq!(code, 415);
    assert_eq!(ocsp::status(&resp), OcspResponseStatus::MalformedRequest);
    let (code, _) = post(&app, &vec![0x30; 70_000]);
    assert_eq!(code, 413);
    // GET paths that are not base64 of a request.
    for path in [
        "/ocsp/%%%",
        "/ocsp/!!!!",
        "/ocsp/",
        "/ocsp/AAAA",
        "/ocsp/%ZZ",
    ] {
        let (code, _, body) = get(&app, path, &[]);
        assert!(code < 500, "{path}: {code}");
        if code == 200 {
            assert_eq!(
                ocsp::status(&body),
                OcspResponseStatus::MalformedRequest,
                "{path}"
            );
        }
    }
    let (code, _, _) = get(&app, &format!("/ocsp/{}", "A".repeat(10_000)), &[]);
    assert!(
        (400..500).contains(&code) || code == 200,
        "long path: {code}"
    );
    // Still serving.
    let (code, body) = post(&app, &good);
    assert_eq!(code, 200);
    assert_eq!(statuses(&body), ["good"]);
    let stopped = app.stop().expect("was running");
    assert!(stopped.success(), "{stopped:?}\n{}", app.log());
}

#[test]
fn cached_answers_follow_the_configured_validity_and_are_re_signed_before_next_update() {
    let mut app = Appliance::init_with(|t| {
        let mut ocsp = toml::Table::new();
        ocsp.insert("validity_secs".into(), toml::Value::Integer(60));
        ocsp.insert("refresh_before_secs".into(), toml::Value::Integer(57));
        t.insert("ocsp".into(), toml::Value::Table(ocsp));
    });
    app.start();
    // Issued certificates point relying parties at the public listener (AIA and CRL DP).
    let text = run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(app.path("pki/tsa.pem")),
    );
    assert!(
        text.contains("OCSP - URI:http://127.0.0.1:8080/ocsp"),
        "{text}"
    );
    assert!(
        text.contains("URI:http://127.0.0.1:8080/crl/root.crl"),
        "{text}"
    );

    let root = pki_cert(&app, "root-ca.pem");
    let req = ocsp::request(&root, &[&pki_cert(&app, "tsa.pem")], 0);
    let (_, first) = post(&app, &req);
    let (this_update, next_update) = ocsp::update_times(&first);
    let next_update = next_update.expect("nextUpdate (RFC 5019)");
    assert_eq!(
        next_update.duration_since(this_update).ok(),
        Some(std::time::Duration::from_secs(60))
    );
    // Due for refresh 3 s after signing; the refresher looks every 6 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let (_, now) = post(&app, &req);
        if ocsp::update_times(&now).0 > this_update {
            assert_eq!(statuses(&now), ["good"]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cached answer was never re-signed"
        );
    }
    app.stop();
}

#[test]
fn the_nonce_policy_can_ignore_or_reject_nonces() {
    let mut app = Appliance::init_with(|t| {
        let mut ocsp = toml::Table::new();
        ocsp.insert("nonce".into(), toml::Value::String("reject".into()));
        t.insert("ocsp".into(), toml::Value::Table(ocsp));
    });
    app.start();
    let root = pki_cert(&app, "root-ca.pem");
    let tsa = pki_cert(&app, "tsa.pem");
    let (code, body) = post(&app, &ocsp::request(&root, &[&tsa], 16));
    assert_eq!(
        (code, ocsp::status(&body)),
        (200, OcspResponseStatus::MalformedRequest)
    );
    let (_, body) = post(&app, &ocsp::request(&root, &[&tsa], 0));
    assert_eq!(statuses(&body), ["good"]);
    app.stop();

    app.edit_config(|t| {
        t["ocsp"]["nonce"] = toml::Value::String("ignore".into());
    });
    app.start();
    let (_, with_nonce) = post(&app, &ocsp::request(&root, &[&tsa], 16));
    let (_, without) = post(&app, &ocsp::request(&root, &[&tsa], 0));
    assert_eq!(echoed_nonce(&with_nonce), None);
    assert_eq!(
        with_nonce, without,
        "both answered from the pre-signed cache"
    );
    app.stop();
}
