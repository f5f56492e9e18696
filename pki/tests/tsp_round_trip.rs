//! The sans-I/O TSA with a software key: OpenSSL-made requests (tests/data/tsp) are checked
//! against the policy, stamped, and the token's structure and signature are verified.
// Test code: a failed unwrap or expect is how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use der::{Decode, Encode};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use spki::SubjectPublicKeyInfoOwned;

use signet_pki::cms::SignerIdentity;
use signet_pki::tsp::status::TimeStampResp;
use signet_pki::tsp::{parse_request, Accuracy, TimeStampAuthority, TsaPolicy, TspError};
use signet_pki::verify::PublicKey;
use signet_pki::x509::{self, CertificateParams, Issuer, Profile};
use signet_pki::{HashAlg, SignatureScheme};

const SCHEME: SignatureScheme = SignatureScheme::Ecdsa(HashAlg::Sha256);

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/tsp/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect(name)
}

fn sign(key: &SigningKey, message: &[u8]) -> Vec<u8> {
    let sig: p256::ecdsa::Signature = key
        .sign_prehash(&HashAlg::Sha256.digest(message))
        .expect("sign");
    let der: DerSignature = sig.to_der();
    der.as_bytes().to_vec()
}

fn spki(key: &SigningKey) -> SubjectPublicKeyInfoOwned {
    let der = key.verifying_key().to_public_key_der().expect("spki");
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).expect("spki")
}

/// A root and a TSA certificate, both keys in software.
fn tsa(allow_sha1: bool) -> (TimeStampAuthority, SigningKey) {
    let root_key = SigningKey::from_slice(&[0x11; 32]).expect("key");
    let tsa_key = SigningKey::from_slice(&[0x22; 32]).expect("key");
    let params = |profile, dn: &str, key: &SigningKey| CertificateParams {
        profile,
        subject: x509::parse_name(dn).expect("dn"),
        public_key: spki(key),
        serial: vec![0x42; 16],
        not_before: SystemTime::now(),
        lifetime: Duration::from_secs(86_400),
        revocation: Default::default(),
    };
    let root_tbs = x509::prepare(
        &params(Profile::Ca { path_len: None }, "CN=Test Root", &root_key),
        None,
        SCHEME,
    )
    .expect("tbs");
    let root = root_tbs
        .clone()
        .finish(&sign(&root_key, root_tbs.tbs_der()))
        .expect("root");
    let issuer = Issuer::from_certificate(&root, SCHEME);
    let tsa_tbs = x509::prepare(
        &params(Profile::TimeStamping, "CN=Test TSA", &tsa_key),
        Some(&issuer),
        SCHEME,
    )
    .expect("tbs");
    let tsa_cert = tsa_tbs
        .clone()
        .finish(&sign(&root_key, tsa_tbs.tbs_der()))
        .expect("tsa");
    let policy = TsaPolicy {
        default_policy: "1.3.6.1.4.1.32473.1.1".parse().expect("oid"),
        accepted_policies: vec!["1.3.6.1.4.1.32473.1.2".parse().expect("oid")],
        accuracy: Accuracy {
            seconds: 1,
            millis: 500,
            micros: 0,
        },
        allow_sha1,
    };
    let signer = SignerIdentity::new(tsa_cert, vec![root], SCHEME).expect("signer");
    (TimeStampAuthority::new(signer, policy), tsa_key)
}

#[test]
fn openssl_requests_are_stamped_and_the_signature_verifies() {
    let (authority, key) = tsa(false);
    let public = PublicKey::from_spki_der(&spki(&key).to_der().expect("der")).expect("public key");
    for (name, serial) in [
        ("sha256-nonce-certreq.tsq", 1u64),
        ("sha384-no-nonce.tsq", 0x80),
        ("sha512.tsq", u64::MAX),
    ] {
        let req = parse_request(&vector(name)).expect(name);
        let accepted = authority.check(&req).expect(name);
        let prepared = authority
            .prepare(&accepted, SystemTime::now(), serial)
            .expect("prepare");
        let signed = prepared.signed_bytes().to_vec();
        let signature = sign(&key, &signed);
        public
            .verify_message(SCHEME, &signed, &signature)
            .expect("signature over the signed attributes");
        let der = prepared.finish(&signature).expect("finish");

        let resp = TimeStampResp::from_der(&der).expect("TimeStampResp");
        assert_eq!(resp.status.status, 0, "{name}: granted");
        let token = resp.time_stamp_token.expect("token");
        let sd = cms::signed_data::SignedData::from_der(&token.content.to_der().expect("der"))
            .expect("SignedData");
        assert_eq!(
            sd.certificates.is_some(),
            req.cert_req,
            "{name}: certificates only when asked"
        );
        let tst =
            x509_tsp::TstInfo::from_der(sd.encap_content_info.econtent.expect("eContent").value())
                .expect("TSTInfo");
        assert_eq!(
            tst.message_imprint, req.message_imprint,
            "{name}: imprint echoed"
        );
        assert_eq!(tst.nonce, req.nonce, "{name}: nonce echoed");
        assert!(!tst.ordering);
        assert_eq!(tst.policy.to_string(), "1.3.6.1.4.1.32473.1.1");
        let serial_bytes = tst.serial_number.as_bytes();
        assert!(serial_bytes[0] & 0x80 == 0, "{name}: serial is positive");
        assert_eq!(
            serial_bytes
                .iter()
                .fold(0u128, |a, b| (a << 8) | u128::from(*b)),
            u128::from(serial)
        );
        let accuracy = tst.accuracy.expect("accuracy");
        assert_eq!(
            (accuracy.seconds, accuracy.millis, accuracy.micros),
            (Some(1), Some(500), None)
        );
    }
}

#[test]
fn the_policy_decides_per_request() {
    let (strict, _) = tsa(false);
    let (legacy, _) = tsa(true);
    let sha1 = parse_request(&vector("sha1.tsq")).expect("parses");
    assert!(matches!(strict.check(&sha1), Err(TspError::BadAlg(_))));
    assert!(
        legacy.check(&sha1).is_ok(),
        "SHA-1 when the config allows it"
    );
    let md5 = parse_request(&vector("md5.tsq")).expect("parses");
    assert!(
        matches!(legacy.check(&md5), Err(TspError::BadAlg(_))),
        "MD5 never"
    );
    let policy = parse_request(&vector("policy-1.2.3.4.tsq")).expect("parses");
    assert!(matches!(
        strict.check(&policy),
        Err(TspError::UnacceptedPolicy(_))
    ));
}

#[test]
fn every_truncation_of_a_request_is_refused_without_panic() {
    let valid = vector("sha256-nonce-certreq.tsq");
    for n in 0..valid.len() {
        assert!(
            matches!(parse_request(&valid[..n]), Err(TspError::Malformed(_))),
            "prefix of {n}"
        );
    }
    let mut trailing = valid.clone();
    trailing.push(0);
    assert!(parse_request(&trailing).is_err(), "trailing data");
}
