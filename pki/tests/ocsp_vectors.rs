//! OCSPRequests made by OpenSSL and GnuTLS (tests/data/ocsp, see its README) are parsed:
//! CertID hash, serial, issuer match and nonce.

// The whole file is test code: expect is fine here (clippy.toml allows it in #[test] fns only).
#![allow(clippy::expect_used)]

use signet_pki::ocsp::{decode_get_path, parse_request, IssuerMatcher, OcspError, ParsedRequest};
use signet_pki::x509;
use signet_pki::HashAlg;
use x509_cert::Certificate;

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/ocsp/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect(name)
}

fn cert(name: &str) -> Certificate {
    let pem = String::from_utf8(vector(name)).expect("utf-8");
    x509::certificate_from_pem(&pem).expect(name)
}

fn serial_of(name: &str) -> Vec<u8> {
    cert(name).tbs_certificate.serial_number.as_bytes().to_vec()
}

fn parse(name: &str) -> ParsedRequest {
    parse_request(&vector(name)).expect(name)
}

/// Each vector: file, hash, leaf files in order, nonce length (0: none).
const VECTORS: [(&str, Option<HashAlg>, &[&str], usize); 9] = [
    ("sha1-nonce.der", Some(HashAlg::Sha1), &["leaf.pem"], 16),
    ("sha1-no-nonce.der", Some(HashAlg::Sha1), &["leaf.pem"], 0),
    (
        "two-certs.der",
        Some(HashAlg::Sha1),
        &["leaf.pem", "leaf2.pem"],
        16,
    ),
    ("sha256-nonce.der", Some(HashAlg::Sha256), &["leaf.pem"], 16),
    (
        "sha384-no-nonce.der",
        Some(HashAlg::Sha384),
        &["leaf.pem"],
        0,
    ),
    (
        "sha512-nonce.der",
        Some(HashAlg::Sha512),
        &["leaf2.pem"],
        16,
    ),
    ("md5-no-nonce.der", None, &["leaf.pem"], 0),
    ("signed.der", Some(HashAlg::Sha1), &["leaf.pem"], 16),
    ("gnutls.der", Some(HashAlg::Sha1), &["leaf2.pem"], 0),
];

#[test]
fn every_vector_names_its_certificates_hash_and_nonce() {
    let matcher = IssuerMatcher::new(&cert("ca.pem")).expect("matcher");
    for (file, hash, leaves, nonce_len) in VECTORS {
        let parsed = parse(file);
        assert_eq!(parsed.cert_ids.len(), leaves.len(), "{file}");
        for (asked, leaf) in parsed.cert_ids.iter().zip(leaves) {
            assert_eq!(asked.hash, hash, "{file}");
            assert_eq!(asked.serial, serial_of(leaf), "{file}");
            // An unsupported hash never matches: the caller answers "unknown" for it.
            assert_eq!(matcher.matches(asked), hash.is_some(), "{file}");
        }
        assert_eq!(
            parsed.nonce.as_ref().map(|n| n.len()).unwrap_or(0),
            nonce_len,
            "{file}"
        );
    }
}

#[test]
fn serials_are_the_certificates_content_octets() {
    assert_eq!(parse("sha1-no-nonce.der").cert_ids[0].serial, [0x10, 0x01]);
    // 0xC0FFEE has its top bit set: the INTEGER carries a leading zero octet.
    assert_eq!(
        parse("gnutls.der").cert_ids[0].serial,
        [0x00, 0xc0, 0xff, 0xee]
    );
}

#[test]
fn the_nonce_is_kept_byte_for_byte() {
    let der = vector("sha1-nonce.der");
    let nonce = parse("sha1-nonce.der").nonce.expect("nonce");
    // extnValue is OCTET STRING { OCTET STRING (16 octets) }: the inner value sits at the end
    // of the extension, which is the end of the request.
    assert_eq!(nonce.value(), &der[der.len() - 16..]);
    assert_eq!(nonce.extension().extn_value.as_bytes()[..2], [0x04, 0x10]);
    assert!(!nonce.extension().critical);
}

#[test]
fn another_ca_is_not_matched() {
    let other = IssuerMatcher::new(&cert("leaf.pem")).expect("matcher");
    for (file, ..) in VECTORS {
        assert!(
            parse(file).cert_ids.iter().all(|c| !other.matches(c)),
            "{file}"
        );
    }
}

#[test]
fn truncated_and_padded_vectors_are_malformed() {
    let der = vector("sha256-nonce.der");
    for bad in [&der[..der.len() - 1], &[der.as_slice(), &[0]].concat()[..]] {
        assert!(matches!(parse_request(bad), Err(OcspError::Malformed(_))));
    }
}

#[test]
fn get_path_of_a_vector_decodes_to_it() {
    use base64::Engine as _;
    for (file, ..) in VECTORS {
        let der = vector(file);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let escaped = b64
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        assert_eq!(decode_get_path(&escaped).as_ref(), Ok(&der), "{file}");
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der);
        assert_eq!(decode_get_path(&url_safe).as_ref(), Ok(&der), "{file}");
        assert!(parse_request(&decode_get_path(&b64).expect(file)).is_ok());
    }
}

#[test]
fn every_truncation_of_a_request_is_malformed_without_panic() {
    for (file, ..) in VECTORS {
        let der = vector(file);
        for n in 0..der.len() {
            assert!(
                matches!(parse_request(&der[..n]), Err(OcspError::Malformed(_))),
                "{file}: prefix of {n}"
            );
        }
    }
}

#[test]
fn the_cert_id_computed_for_a_certificate_is_the_one_openssl_and_gnutls_send() {
    use der::Encode;
    use signet_pki::ocsp::RequestedCert;
    let ca = cert("ca.pem");
    for (file, hash, leaf) in [
        ("sha1-no-nonce.der", HashAlg::Sha1, "leaf.pem"),
        ("sha256-nonce.der", HashAlg::Sha256, "leaf.pem"),
        ("gnutls.der", HashAlg::Sha1, "leaf2.pem"),
    ] {
        let sent = &parse(file).cert_ids[0];
        let ours = RequestedCert::for_certificate(&ca, &cert(leaf), hash).expect("cert id");
        assert_eq!(
            ours.cert_id.to_der().expect("der"),
            sent.cert_id.to_der().expect("der"),
            "{file}"
        );
    }
}
