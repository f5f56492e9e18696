//! RFC 3161 end to end: openssl and rfc3161ng against a live signetd over mutual TLS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use signet_e2e::{judges_python, run, run_ok, tsp, Appliance};

/// One appliance for this test binary: SoftHSM token, PKI and daemon made once.
fn app() -> &'static Appliance {
    static APP: OnceLock<Appliance> = OnceLock::new();
    APP.get_or_init(|| {
        let mut a = Appliance::init();
        a.start();
        a
    })
}

fn work_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}

/// `openssl ts -query` with `args`, posted; returns the response file.
fn stamp_with_openssl(dir: &Path, data: &Path, args: &[&str]) -> (PathBuf, PathBuf) {
    let query = dir.join("req.tsq");
    run_ok(
        Command::new("openssl")
            .args(["ts", "-query", "-data"])
            .arg(data)
            .args(args)
            .arg("-out")
            .arg(&query),
    );
    let (status, body) = app().post_tsa(&query, "application/timestamp-query");
    assert_eq!(status, 200);
    (query, write(dir, "resp.tsr", &body))
}

fn openssl_verify(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = run(Command::new("openssl").args(["ts", "-verify"]).args(args));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("Verification: OK"),
        text,
    )
}

#[test]
fn openssl_verifies_tokens_for_every_hash_with_and_without_nonce() {
    let dir = work_dir();
    let data = write(dir.path(), "data.bin", b"the document to stamp\n");
    let root = app().path("pki/root-ca.pem");
    for hash in ["-sha256", "-sha384", "-sha512"] {
        for nonce in [true, false] {
            let mut args = vec![hash, "-cert"];
            if !nonce {
                args.push("-no_nonce");
            }
            let (query, resp) = stamp_with_openssl(dir.path(), &data, &args);
            let (ok, text) = openssl_verify(&[
                "-data".as_ref(),
                data.as_os_str(),
                "-in".as_ref(),
                resp.as_os_str(),
                "-CAfile".as_ref(),
                root.as_os_str(),
            ]);
            assert!(ok, "{hash} nonce={nonce}: {text}");
            // Against the query too: imprint, nonce and policy must all match.
            let (ok, text) = openssl_verify(&[
                "-queryfile".as_ref(),
                query.as_os_str(),
                "-in".as_ref(),
                resp.as_os_str(),
                "-CAfile".as_ref(),
                root.as_os_str(),
            ]);
            assert!(ok, "{hash} nonce={nonce} (queryfile): {text}");
        }
    }
}

#[test]
fn a_token_for_other_data_fails_verification() {
    let dir = work_dir();
    let data = write(dir.path(), "data.bin", b"original");
    let other = write(dir.path(), "other.bin", b"tampered");
    let (_, resp) = stamp_with_openssl(dir.path(), &data, &["-sha256", "-cert"]);
    let root = app().path("pki/root-ca.pem");
    let (ok, text) = openssl_verify(&[
        "-data".as_ref(),
        other.as_os_str(),
        "-in".as_ref(),
        resp.as_os_str(),
        "-CAfile".as_ref(),
        root.as_os_str(),
    ]);
    assert!(!ok && text.contains("message imprint mismatch"), "{text}");
}

#[test]
fn certificates_are_included_only_when_asked() {
    let dir = work_dir();
    let data = write(dir.path(), "data.bin", b"cert req");
    let count_certs = |resp: &Path| {
        let token = dir.path().join("token.der");
        run_ok(
            Command::new("openssl")
                .args(["ts", "-reply", "-in"])
                .arg(resp)
                .args(["-token_out", "-out"])
                .arg(&token),
        );
        let out = run_ok(
            Command::new("openssl")
                .args(["pkcs7", "-inform", "DER", "-print_certs", "-noout", "-in"])
                .arg(&token),
        );
        out.matches("subject=").count()
    };
    let (_, with) = stamp_with_openssl(dir.path(), &data, &["-sha256", "-cert"]);
    assert_eq!(count_certs(&with), 2, "TSA certificate and root");
    let (_, without) = stamp_with_openssl(dir.path(), &data, &["-sha256"]);
    assert_eq!(count_certs(&without), 0);
    // Without certificates in the token, the verifier must be given the TSA certificate.
    let root = app().path("pki/root-ca.pem");
    let tsa = app().path("pki/tsa.pem");
    let (ok, text) = openssl_verify(&[
        "-data".as_ref(),
        data.as_os_str(),
        "-in".as_ref(),
        without.as_os_str(),
        "-CAfile".as_ref(),
        root.as_os_str(),
        "-untrusted".as_ref(),
        tsa.as_os_str(),
    ]);
    assert!(ok, "{text}");
}

#[test]
fn token_states_policy_accuracy_and_tsa_name() {
    let dir = work_dir();
    let data = write(dir.path(), "data.bin", b"policy");
    let (_, resp) = stamp_with_openssl(dir.path(), &data, &["-sha256", "-cert"]);
    let text = run_ok(
        Command::new("openssl")
            .args(["ts", "-reply", "-text", "-in"])
            .arg(&resp),
    );
    assert!(text.contains("Status: Granted."), "{text}");
    assert!(text.contains("Policy OID: 1.3.6.1.4.1.32473.1.1"), "{text}");
    assert!(text.contains("Accuracy: 0x01 seconds"), "{text}");
    assert!(text.contains("Ordering: no"), "{text}");
    assert!(
        text.contains("TSA: DirName:/O=Signet/CN=Signet Dev TSA"),
        "{text}"
    );

    // An accepted alternative policy is stamped as asked.
    let (_, resp) = stamp_with_openssl(
        dir.path(),
        &data,
        &["-sha256", "-tspolicy", "1.3.6.1.4.1.32473.1.2"],
    );
    let text = run_ok(
        Command::new("openssl")
            .args(["ts", "-reply", "-text", "-in"])
            .arg(&resp),
    );
    assert!(text.contains("Policy OID: 1.3.6.1.4.1.32473.1.2"), "{text}");

    // Any other policy is refused with unacceptedPolicy.
    let (_, resp) = stamp_with_openssl(dir.path(), &data, &["-sha256", "-tspolicy", "1.2.3.4"]);
    assert_eq!(
        tsp::fail_bits(&std::fs::read(&resp).expect("resp")),
        vec![15]
    );
    let text = run_ok(
        Command::new("openssl")
            .args(["ts", "-reply", "-text", "-in"])
            .arg(&resp),
    );
    assert!(
        text.contains("Status: Rejected.")
            && text.contains("requested TSA policy is not supported"),
        "{text}"
    );
}

#[test]
fn rfc3161ng_obtains_and_checks_a_token() {
    let dir = work_dir();
    let token = dir.path().join("token.der");
    let script = r#"
import functools, sys, requests, rfc3161ng, rfc3161ng.api as api
url, tsa_pem, cert, key, root, out = sys.argv[1:]
# rfc3161ng has no client-certificate option: give its HTTP call our mTLS credentials.
api.requests.post = functools.partial(requests.post, cert=(cert, key), verify=root)
stamper = rfc3161ng.RemoteTimestamper(url, certificate=open(tsa_pem, 'rb').read(),
                                      hashname='sha256', include_tsa_certificate=True)
tst = stamper(data=b'stamped by rfc3161ng', return_tsr=False)
open(out, 'wb').write(tst)
print('rfc3161ng OK', len(tst))
"#;
    let a = app();
    let out = run_ok(
        Command::new(judges_python())
            .arg("-c")
            .arg(script)
            .arg(a.url("/v1/tsa"))
            .arg(a.path("pki/tsa.pem"))
            .arg(a.path("demo/client.pem"))
            .arg(a.path("demo/client.key"))
            .arg(a.path("pki/root-ca.pem"))
            .arg(&token),
    );
    assert!(out.contains("rfc3161ng OK"), "{out}");
    // The token it accepted also verifies with openssl.
    let data = write(dir.path(), "data.bin", b"stamped by rfc3161ng");
    let root = a.path("pki/root-ca.pem");
    let (ok, text) = openssl_verify(&[
        "-data".as_ref(),
        data.as_os_str(),
        "-in".as_ref(),
        token.as_os_str(),
        "-token_in".as_ref(),
        "-CAfile".as_ref(),
        root.as_os_str(),
    ]);
    assert!(ok, "{text}");
}
