//! Hostile and malformed input to the TSA: each gets the protocol's error (a TimeStampResp
//! with the right failInfo, or HTTP 400/413/415), and the daemon keeps serving.

use std::process::Command;
use std::sync::OnceLock;

use der::asn1::{Int, OctetString};
use der::Encode;
use spki::AlgorithmIdentifierOwned;
use x509_tsp::{MessageImprint, TimeStampReq, TspVersion};

use signet_e2e::{run, run_ok, tsp, Appliance};

fn app() -> &'static Appliance {
    static APP: OnceLock<Appliance> = OnceLock::new();
    APP.get_or_init(|| {
        let mut a = Appliance::init();
        a.start();
        a
    })
}

/// POST raw bytes; returns (HTTP status, body).
fn post(body: &[u8], content_type: &str) -> (u16, Vec<u8>) {
    let file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(file.path(), body).expect("write");
    app().post_tsa(file.path(), content_type)
}

const QUERY: &str = "application/timestamp-query";

fn request_with(hash: const_oid::ObjectIdentifier, imprint_len: usize, extension: bool) -> Vec<u8> {
    let extensions = extension.then(|| {
        vec![x509_cert::ext::Extension {
            extn_id: const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.32473.9.9"),
            critical: false,
            extn_value: OctetString::new(vec![5, 0]).expect("ext"),
        }]
    });
    TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: hash,
                parameters: None,
            },
            hashed_message: OctetString::new(vec![0xab; imprint_len]).expect("imprint"),
        },
        req_policy: None,
        nonce: Some(Int::new(&[1, 2, 3]).expect("nonce")),
        cert_req: false,
        extensions,
    }
    .to_der()
    .expect("encode")
}

fn assert_still_serving() {
    let (status, body) = post(&tsp::request(b"still alive", 7, false), QUERY);
    assert_eq!(status, 200);
    assert!(tsp::serial(&body) > 0);
}

#[test]
fn garbage_empty_and_truncated_requests_are_bad_requests() {
    let valid = tsp::request(b"x", 42, true);
    let mut bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        (0..=255u8).cycle().take(1000).collect(),
    ];
    // Every strict prefix of a valid request.
    bodies.extend((1..valid.len()).map(|n| valid[..n].to_vec()));
    // A valid request followed by trailing bytes.
    bodies.push([valid.clone(), vec![0]].concat());
    // A huge declared length, and deep nesting.
    bodies.push(vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01]);
    bodies.push([[0x30u8, 0x80].repeat(2000), vec![0; 4000]].concat());
    for body in &bodies {
        let (status, resp) = post(body, QUERY);
        assert_eq!(status, 200, "body of {} bytes", body.len());
        assert_eq!(
            tsp::fail_bits(&resp),
            vec![2],
            "badRequest for body of {} bytes",
            body.len()
        );
    }
    assert_still_serving();
}

#[test]
fn policy_errors_carry_their_own_fail_info() {
    use const_oid::db::rfc5912::{ID_MD_5, ID_SHA_1, ID_SHA_256};
    // SHA-1 is off unless configured; MD5 is never accepted.
    assert_eq!(
        tsp::fail_bits(&post(&request_with(ID_SHA_1, 20, false), QUERY).1),
        vec![0]
    );
    assert_eq!(
        tsp::fail_bits(&post(&request_with(ID_MD_5, 16, false), QUERY).1),
        vec![0]
    );
    // An imprint whose length does not fit its hash.
    assert_eq!(
        tsp::fail_bits(&post(&request_with(ID_SHA_256, 20, false), QUERY).1),
        vec![5]
    );
    // An extension the TSA does not know.
    assert_eq!(
        tsp::fail_bits(&post(&request_with(ID_SHA_256, 32, true), QUERY).1),
        vec![16]
    );
    assert_still_serving();
}

#[test]
fn wrong_content_type_is_415_with_a_timestamp_resp() {
    for ct in ["application/json", "text/plain", "application/ocsp-request"] {
        let (status, resp) = post(&tsp::request(b"x", 1, false), ct);
        assert_eq!(status, 415, "{ct}");
        assert_eq!(tsp::fail_bits(&resp), vec![2]);
    }
    // Parameters and case do not matter.
    let (status, _) = post(
        &tsp::request(b"x", 1, false),
        "Application/Timestamp-Query; charset=binary",
    );
    assert_eq!(status, 200);
    assert_still_serving();
}

#[test]
fn a_body_over_the_limit_is_413() {
    let big = vec![0x30u8; 70 * 1024]; // limit is 64 KiB in dev.toml
    let (status, resp) = post(&big, QUERY);
    assert_eq!(status, 413);
    assert_eq!(tsp::fail_bits(&resp), vec![2]);
    // Chunked, so no Content-Length warns the server in advance.
    let file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(file.path(), &big).expect("write");
    let out = run(app()
        .curl()
        .args([
            "-H",
            "Content-Type: application/timestamp-query",
            "-H",
            "Transfer-Encoding: chunked",
            "--http1.1",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", file.path().display()))
        .args(["-o", "/dev/null", "-w", "%{http_code}"])
        .arg(app().url("/v1/tsa")));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "413");
    assert_still_serving();
}

#[test]
fn other_methods_and_routes_get_http_errors() {
    let a = app();
    let code = |cmd: &mut Command| {
        run_ok(cmd.args(["-o", "/dev/null", "-w", "%{http_code}"]))
            .trim()
            .to_owned()
    };
    assert_eq!(code(a.curl().arg(a.url("/v1/tsa"))), "405");
    assert_eq!(code(a.curl().arg(a.url("/nope"))), "404");
    assert_eq!(code(a.curl().arg(a.url("/healthz"))), "200");
    // Both HTTP versions are served.
    for v in ["--http1.1", "--http2"] {
        let out = run_ok(
            a.curl()
                .arg(v)
                .args(["-o", "/dev/null", "-w", "%{http_version}"])
                .arg(a.url("/healthz")),
        );
        assert_eq!(out.trim(), if v == "--http2" { "2" } else { "1.1" });
    }
}
