//! `signetctl cert issue` for each profile and `cert show`, against a live signetd on SoftHSM:
//! each certificate verifies with openssl against the root for its own purpose (and for no
//! purpose it was not issued for), carries the profile's extended key usage, and `cert show`
//! returns the same certificate with its status; bad requests are refused with a reason.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use signet_e2e::{run, run_ok, Appliance};

/// A P-256 key and a CSR for `CN=<cn>,O=Signet` in `dir`; returns the CSR's path.
fn csr(dir: &Path, cn: &str) -> PathBuf {
    signet_e2e::p256_csr(dir, cn, &format!("/O=Signet/CN={cn}")).1
}

/// `openssl verify -purpose P` of `cert` against the appliance's root (client certificates
/// through the client CA): did it pass?
fn verifies_for(a: &Appliance, cert: &Path, purpose: &str) -> bool {
    run(Command::new("openssl")
        .args(["verify", "-purpose", purpose, "-CAfile"])
        .arg(a.path("pki/root-ca.pem"))
        .arg("-untrusted")
        .arg(a.path("pki/client-ca.pem"))
        .arg(cert))
    .status
    .success()
}

fn text_of(cert: &Path) -> String {
    run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(cert),
    )
}

#[test]
fn each_profile_is_issued_for_its_purpose_and_shown() {
    let mut a = Appliance::init();
    a.start();
    let dir = tempfile::tempdir().unwrap();
    // (profile, openssl purpose it must pass, one it must fail, EKU text)
    let cases = [
        (
            "tls-client",
            "sslclient",
            "sslserver",
            "TLS Web Client Authentication",
        ),
        (
            "document-signing",
            "smimesign",
            "crlsign",
            "Digital Signature, Non Repudiation",
        ),
        ("tsa", "timestampsign", "sslclient", "Time Stamping"),
        ("ocsp-signer", "ocsphelper", "sslclient", "OCSP Signing"),
    ];
    for (profile, good, bad, eku) in cases {
        let request = csr(dir.path(), profile);
        let cert = dir.path().join(format!("{profile}.pem"));
        let out = a.ctl(&[
            "cert",
            "issue",
            "--profile",
            profile,
            "--csr",
            request.to_str().unwrap(),
            "--out",
            cert.to_str().unwrap(),
            "--json",
        ]);
        assert!(
            out.status.success(),
            "issue {profile}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let issued: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(verifies_for(&a, &cert, good), "{profile} fails {good}");
        assert!(!verifies_for(&a, &cert, bad), "{profile} passes {bad}");
        let text = text_of(&cert);
        assert!(text.contains(eku), "{profile}: no {eku:?} in\n{text}");
        assert!(text.contains(&format!("CN = {profile}")), "{text}");
        if profile == "ocsp-signer" {
            assert!(text.contains("OCSP No Check"), "{text}");
        }

        // `cert show` by serial: the same certificate, good.
        let serial = issued["serial"].as_str().expect("serial").to_owned();
        let shown = a.ctl(&["cert", "show", &serial, "--json"]);
        assert!(shown.status.success());
        let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
        assert_eq!(shown["status"], "good");
        assert_eq!(shown["profile"], profile);
        assert_eq!(
            shown["pem"].as_str().unwrap(),
            std::fs::read_to_string(&cert).unwrap()
        );
        // And the table for people names the same serial and profile.
        let table = String::from_utf8(a.ctl(&["cert", "show", &serial]).stdout).unwrap();
        assert!(
            table.contains(&serial) && table.contains(profile),
            "{table}"
        );
    }

    // Refusals, each with its reason.
    let request = csr(dir.path(), "refused");
    let refused = |args: &[&str], needle: &str| {
        let out = a.ctl(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    };
    let csr_path = request.to_str().unwrap();
    refused(
        &["cert", "issue", "--profile", "root", "--csr", csr_path],
        "profile",
    );
    let tampered = dir.path().join("tampered.csr");
    {
        // Change one character of the signed request's subject: its signature breaks.
        let mut bytes = run(Command::new("openssl")
            .args(["req", "-outform", "DER", "-in"])
            .arg(&request))
        .stdout;
        let at = bytes
            .windows(7)
            .position(|w| w == b"refused")
            .expect("subject in the request");
        bytes[at] = b'R';
        let der_path = dir.path().join("tampered.der");
        std::fs::write(&der_path, &bytes).unwrap();
        run_ok(
            Command::new("openssl")
                .args(["req", "-inform", "DER", "-in"])
                .arg(&der_path)
                .arg("-out")
                .arg(&tampered),
        );
    }
    refused(
        &[
            "cert",
            "issue",
            "--profile",
            "tls-client",
            "--csr",
            tampered.to_str().unwrap(),
        ],
        "signature",
    );
    refused(&["cert", "show", "0bad"], "no certificate");

    // The request's signature algorithm is read as a certificate's is: SHA-1 is refused,
    // RSASSA-PSS with the usual parameters is taken.
    let signed_with = |name: &str, opts: &[&str]| {
        let path = dir.path().join(format!("{name}.csr"));
        run_ok(
            Command::new("openssl")
                .args(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj"])
                .arg(format!("/O=Signet/CN={name}"))
                .args(opts)
                .arg("-keyout")
                .arg(dir.path().join(format!("{name}.key")))
                .arg("-out")
                .arg(&path),
        );
        path.to_str().unwrap().to_owned()
    };
    let sha1 = signed_with("sha1", &["-sha1"]);
    refused(
        &["cert", "issue", "--profile", "tls-client", "--csr", &sha1],
        "unsupported",
    );
    let pss = signed_with(
        "pss",
        &[
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:digest",
        ],
    );
    let out = a.ctl(&[
        "cert",
        "issue",
        "--profile",
        "tls-client",
        "--csr",
        &pss,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    a.stop();
}
