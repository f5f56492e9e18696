//! One function per parser of outside bytes. Each feeds the bytes to the parser exactly as the
//! appliance does and checks what must hold whatever the input: no panic, and where the format
//! allows it, that what was accepted encodes back to the same bytes. The libFuzzer binaries in
//! `fuzz_targets/` and the replay tests in `tests/` call these.

use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use signet_config::sealed::SealedFile;
use signet_config::{Config, Origin};
use signet_pki::alg::Hasher;
use signet_pki::pades::{Document, SignatureKind, SignatureOptions};
use signet_pki::HashAlg;

/// A fuzz target: takes any bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// Every target, by name, as `fuzz_targets/` and `seed.sh` name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("tsa_request", tsa_request),
    ("ocsp_request", ocsp_request),
    ("ocsp_get_path", ocsp_get_path),
    ("api_json", api_json),
    ("api_query", api_query),
    ("pdf_reader", pdf_reader),
    ("config_text", config_text),
    ("sealed_file", sealed_file),
    ("admin_request", admin_request),
    ("client_crl", client_crl),
];

/// A TimeStampReq as `POST /v1/tsa` receives it.
pub fn tsa_request(data: &[u8]) {
    let _ = signet_pki::tsp::parse_request(data);
}

/// An OCSPRequest as `POST /ocsp` receives it.
pub fn ocsp_request(data: &[u8]) {
    let _ = signet_pki::ocsp::parse_request(data);
}

/// An outside client CA's CRL, read against that CA (what the CRL refresher takes in).
pub fn client_crl(data: &[u8]) {
    let pem = include_str!("../../pki/tests/data/crl/openssl-ca.pem");
    if let Ok(ca) = signet_pki::x509::certificate_from_pem(pem) {
        let _ = signet_pki::crl::read_verified(data, &ca);
    }
}

/// The path after `/ocsp/` of a GET request, then the request it decodes to.
pub fn ocsp_get_path(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(der) = signet_pki::ocsp::decode_get_path(path) {
        let _ = signet_pki::ocsp::parse_request(&der);
    }
}

/// The JSON bodies of `/v1/sign/{key}`, `/v1/sign/{key}/batch` and `/v1/cms/{key}`.
pub fn api_json(data: &[u8]) {
    use signet::api::fuzzing;
    let _ = fuzzing::sign_body(data);
    let _ = fuzzing::batch_body(data);
    let _ = fuzzing::cms_digest_body(data);
}

/// The query strings of `/v1/cms/{key}` and `/v1/pdf/{key}`.
pub fn api_query(data: &[u8]) {
    use signet::api::fuzzing;
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let _ = fuzzing::cms_query(query);
    let _ = fuzzing::pdf_query(query);
}

/// A PDF as `POST /v1/pdf/{key}` receives it: opened, laid out for both kinds of signature,
/// into a new field and into one named as a client may name it, then hashed and filled.
pub fn pdf_reader(data: &[u8]) {
    let Ok(doc) = Document::open(data.to_vec()) else {
        return;
    };
    let mut hashed = Hasher::new(HashAlg::Sha256);
    hashed.update(data);
    for kind in [SignatureKind::Cades, SignatureKind::DocTimeStamp] {
        for field in [None, Some("Signature1".to_owned())] {
            let options = SignatureOptions {
                kind,
                field,
                name: Some("fuzz".into()),
                reason: None,
                location: None,
                contact_info: None,
                signing_time: UNIX_EPOCH,
                contents_len: 64,
            };
            if let Ok(pending) = doc.prepare_signature(&options) {
                let _ = pending.byte_range();
                let _ = pending.digest(&hashed);
                let _ = pending.fill(&[0x30, 0x00]);
            }
        }
    }
}

/// Config text, clear or sealed, through every check `signetd` and `signetctl config check` run.
pub fn config_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for origin in [Origin::Clear, Origin::Sealed] {
        let _ = Config::check(text, origin, |_| Vec::new());
    }
}

/// A sealed config file, as read and as it would be with a right checksum (so the fuzzer gets
/// past it): whatever decodes must encode back to the very same bytes.
pub fn sealed_file(data: &[u8]) {
    let mut summed = data.to_vec();
    summed.extend_from_slice(&Sha256::digest(data));
    for bytes in [data, &summed[..]] {
        if let Ok(file) = SealedFile::decode(bytes) {
            let again = file.encode();
            assert!(
                again.as_deref() == Ok(bytes),
                "a sealed file decodes but does not encode back to itself: {again:?}"
            );
        }
    }
}

/// One request line of the admin socket.
pub fn admin_request(data: &[u8]) {
    let _ = signet::admin::parse_request(data);
}
