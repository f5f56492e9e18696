//! OCSP responses and CRLs signed with software keys, checked by the `openssl` command line
//! tool. These tests fail, not skip, when openssl is not installed.

// The whole file is test code: expect is fine here (clippy.toml allows it in #[test] fns only).
#![allow(clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use der::Decode;
use p256::pkcs8::EncodePublicKey;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

use signet_pki::crl::{self, CrlParams, RevokedEntry};
use signet_pki::ocsp::{
    parse_request, CertStatus, IssuerMatcher, ParsedRequest, Responder, SingleAnswer,
};
use signet_pki::x509::{self, CertificateParams, Issuer, Profile, Revocation};
use signet_pki::{HashAlg, RevocationReason, SignatureScheme};

const OCSP_URL: &str = "http://signet.example/ocsp";
const CRL_URL: &str = "http://signet.example/crl/ca.crl";

/// A key that signs in software: DER signatures for ECDSA, raw for RSA.
enum Key {
    P256(p256::ecdsa::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

impl Key {
    fn p256(seed: u8) -> Self {
        Key::P256(p256::ecdsa::SigningKey::from_slice(&[seed; 32]).expect("key"))
    }

    fn rsa() -> Self {
        use rsa::pkcs8::DecodePrivateKey;
        let der = std::fs::read(format!(
            "{}/tests/data/keys/rsa2048.pk8.der",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("RSA test key");
        Key::Rsa(Box::new(
            rsa::RsaPrivateKey::from_pkcs8_der(&der).expect("key"),
        ))
    }

    fn scheme(&self) -> SignatureScheme {
        match self {
            Key::P256(_) => SignatureScheme::Ecdsa(HashAlg::Sha256),
            Key::Rsa(_) => SignatureScheme::RsaPkcs1v15(HashAlg::Sha256),
        }
    }

    fn spki(&self) -> SubjectPublicKeyInfoOwned {
        let der = match self {
            Key::P256(k) => k.verifying_key().to_public_key_der(),
            Key::Rsa(k) => k.to_public_key().to_public_key_der(),
        }
        .expect("spki");
        SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).expect("spki")
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let digest = HashAlg::Sha256.digest(message);
        match self {
            Key::P256(k) => {
                use p256::ecdsa::signature::hazmat::PrehashSigner;
                let sig: p256::ecdsa::Signature = k.sign_prehash(&digest).expect("sign");
                sig.to_der().as_bytes().to_vec()
            }
            Key::Rsa(k) => k
                .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest)
                .expect("sign"),
        }
    }
}

/// A throwaway PKI: a root, a delegated OCSP signer, and two leaves with the URLs.
struct Pki {
    ca: Certificate,
    ca_key: Key,
    signer: Certificate,
    signer_key: Key,
    leaf: Certificate,
    leaf2: Certificate,
}

fn params(profile: Profile, dn: &str, key: &Key, serial: &[u8]) -> CertificateParams {
    CertificateParams {
        profile,
        subject: x509::parse_name(dn).expect("dn"),
        public_key: key.spki(),
        serial: serial.to_vec(),
        not_before: SystemTime::now() - Duration::from_secs(3600),
        lifetime: Duration::from_secs(30 * 86_400),
        revocation: Revocation {
            ocsp_url: Some(OCSP_URL.into()),
            crl_url: Some(CRL_URL.into()),
        },
    }
}

impl Pki {
    fn new(signer_key: Key) -> Self {
        let ca_key = Key::p256(0x31);
        let tbs = x509::prepare(
            &params(
                Profile::Ca { path_len: None },
                "CN=Signet OCSP Test CA,O=Example",
                &ca_key,
                &[0x01; 16],
            ),
            None,
            ca_key.scheme(),
        )
        .expect("tbs");
        let sig = ca_key.sign(tbs.tbs_der());
        let ca = tbs.finish(&sig).expect("ca");
        let issuer = Issuer::from_certificate(&ca, ca_key.scheme());
        let issue = |profile, dn: &str, key: &Key, serial: &[u8]| {
            let tbs = x509::prepare(
                &params(profile, dn, key, serial),
                Some(&issuer),
                ca_key.scheme(),
            )
            .expect("tbs");
            let sig = ca_key.sign(tbs.tbs_der());
            tbs.finish(&sig).expect("cert")
        };
        let signer = issue(
            Profile::OcspSigning,
            "CN=Signet OCSP Signer",
            &signer_key,
            &[0x02; 16],
        );
        let leaf = issue(
            Profile::TlsClient(vec![]),
            "CN=Leaf One",
            &Key::p256(0x33),
            &[0x10, 0x01],
        );
        // A serial whose INTEGER needs a leading zero octet.
        let leaf2 = issue(
            Profile::TlsClient(vec![]),
            "CN=Leaf Two",
            &Key::p256(0x34),
            &[0x00, 0xc0, 0xff, 0xee],
        );
        Pki {
            ca,
            ca_key,
            signer,
            signer_key,
            leaf,
            leaf2,
        }
    }

    fn write(&self, dir: &Path) {
        for (name, cert) in [
            ("ca.pem", &self.ca),
            ("signer.pem", &self.signer),
            ("leaf.pem", &self.leaf),
            ("leaf2.pem", &self.leaf2),
        ] {
            let pem = x509::certificate_to_pem(cert).expect("pem");
            std::fs::write(dir.join(name), pem).expect("write");
        }
    }

    fn responder(&self) -> Responder {
        Responder::new(self.signer.clone(), self.signer_key.scheme())
    }
}

/// Run openssl in `dir`; its exit status and everything it printed. Panics when openssl
/// cannot be run, so that a missing openssl fails the test.
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed to run these tests");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn serial(cert: &Certificate) -> Vec<u8> {
    cert.tbs_certificate.serial_number.as_bytes().to_vec()
}

/// Answer `req`: leaf2 revoked for keyCompromise, every other serial of the CA good,
/// other issuers unknown. Returns the DER OCSPResponse.
fn respond(pki: &Pki, req: &ParsedRequest, nonce: bool) -> Vec<u8> {
    sign_and_finish(pki, req, nonce, false)
}

/// As [`respond`]; with `corrupt`, the signature is made over the bytes with one flipped.
fn sign_and_finish(pki: &Pki, req: &ParsedRequest, nonce: bool, corrupt: bool) -> Vec<u8> {
    let matcher = IssuerMatcher::new(&pki.ca).expect("matcher");
    let now = SystemTime::now();
    let answers: Vec<SingleAnswer> = req
        .cert_ids
        .iter()
        .map(|c| SingleAnswer {
            cert: c.clone(),
            status: if !matcher.matches(c) {
                CertStatus::Unknown
            } else if c.serial == serial(&pki.leaf2) {
                CertStatus::Revoked {
                    time: now - Duration::from_secs(600),
                    reason: Some(RevocationReason::KeyCompromise),
                }
            } else {
                CertStatus::Good
            },
        })
        .collect();
    let prepared = pki
        .responder()
        .prepare(
            &answers,
            now,
            now - Duration::from_secs(60),
            Some(now + Duration::from_secs(3600)),
            if nonce { req.nonce.as_ref() } else { None },
        )
        .expect("prepare");
    let mut message = prepared.signed_bytes().to_vec();
    if corrupt {
        message[20] ^= 1;
    }
    let sig = pki.signer_key.sign(&message);
    prepared.finish(&sig).expect("finish")
}

fn ocsp_round_trip(signer_key: Key) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let pki = Pki::new(signer_key);
    pki.write(d);

    // openssl makes the request (SHA-1 CertIDs, a nonce), Signet answers it.
    let (ok, text) = openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf.pem",
            "-cert",
            "leaf2.pem",
            "-reqout",
            "req.der",
        ],
    );
    assert!(ok, "{text}");
    let req = parse_request(&std::fs::read(d.join("req.der")).expect("req")).expect("parses");
    assert_eq!(req.cert_ids.len(), 2);
    assert!(req.nonce.is_some());
    std::fs::write(d.join("resp.der"), respond(&pki, &req, true)).expect("write");

    let (ok, text) = openssl(
        d,
        &[
            "ocsp",
            "-respin",
            "resp.der",
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf.pem",
            "-cert",
            "leaf2.pem",
            "-CAfile",
            "ca.pem",
            "-no_nonce",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains("leaf.pem: good"), "{text}");
    assert!(text.contains("leaf2.pem: revoked"), "{text}");
    assert!(text.contains("Reason: keyCompromise"), "{text}");

    // With the request given, openssl checks that the nonce came back.
    let (ok, text) = openssl(
        d,
        &[
            "ocsp", "-reqin", "req.der", "-respin", "resp.der", "-CAfile", "ca.pem",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(!text.contains("Nonce Verify error"), "{text}");
    assert!(!text.contains("no nonce in response"), "{text}");

    // Another request's nonce does not match this response's.
    let (ok, text) = openssl(
        d,
        &[
            "ocsp", "-issuer", "ca.pem", "-cert", "leaf.pem", "-reqout", "req2.der",
        ],
    );
    assert!(ok, "{text}");
    let (ok, text) = openssl(
        d,
        &[
            "ocsp", "-reqin", "req2.der", "-respin", "resp.der", "-CAfile", "ca.pem",
        ],
    );
    assert!(!ok, "{text}");
    assert!(text.contains("Nonce Verify error"), "{text}");

    // Without the nonce echoed, the same check notices.
    std::fs::write(d.join("resp-no-nonce.der"), respond(&pki, &req, false)).expect("write");
    let (ok, text) = openssl(
        d,
        &[
            "ocsp",
            "-reqin",
            "req.der",
            "-respin",
            "resp-no-nonce.der",
            "-CAfile",
            "ca.pem",
        ],
    );
    assert!(ok, "openssl only warns: {text}");
    assert!(text.contains("no nonce in response"), "{text}");

    // A response whose signature is over other bytes does not verify.
    let bad = sign_and_finish(&pki, &req, true, true);
    std::fs::write(d.join("resp-bad.der"), bad).expect("write");
    let (_, text) = openssl(
        d,
        &[
            "ocsp",
            "-respin",
            "resp-bad.der",
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf.pem",
            "-CAfile",
            "ca.pem",
            "-no_nonce",
        ],
    );
    assert!(!text.contains("Response verify OK"), "{text}");
    assert!(text.contains("Response Verify Failure"), "{text}");
}

#[test]
fn openssl_verifies_a_p256_signed_ocsp_response() {
    ocsp_round_trip(Key::p256(0x32));
}

#[test]
fn openssl_verifies_an_rsa_signed_ocsp_response() {
    ocsp_round_trip(Key::rsa());
}

#[test]
fn openssl_reads_a_sha256_request_and_its_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let pki = Pki::new(Key::p256(0x32));
    pki.write(d);
    let (ok, text) = openssl(
        d,
        &[
            "ocsp",
            "-sha256",
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf2.pem",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],
    );
    assert!(ok, "{text}");
    let req = parse_request(&std::fs::read(d.join("req.der")).expect("req")).expect("parses");
    assert_eq!(req.cert_ids[0].hash, Some(HashAlg::Sha256));
    assert_eq!(req.cert_ids[0].serial, [0x00, 0xc0, 0xff, 0xee]);
    std::fs::write(d.join("resp.der"), respond(&pki, &req, false)).expect("write");
    let (ok, text) = openssl(
        d,
        &[
            "ocsp",
            "-sha256",
            "-respin",
            "resp.der",
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf2.pem",
            "-CAfile",
            "ca.pem",
            "-no_nonce",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains("leaf2.pem: revoked"), "{text}");
    assert!(text.contains("Reason: keyCompromise"), "{text}");
}

#[test]
fn openssl_shows_the_new_certificate_extensions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let pki = Pki::new(Key::p256(0x32));
    pki.write(d);
    let (ok, text) = openssl(d, &["x509", "-in", "signer.pem", "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("OCSP Signing"), "{text}");
    assert!(text.contains("OCSP No Check"), "{text}");
    let (ok, text) = openssl(d, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("OCSP - URI:{OCSP_URL}")), "{text}");
    assert!(text.contains(&format!("URI:{CRL_URL}")), "{text}");
    assert!(text.contains("CRL Distribution Points"), "{text}");
    let (ok, text) = openssl(d, &["x509", "-in", "ca.pem", "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(
        !text.contains("OCSP - URI"),
        "a root carries no AIA: {text}"
    );
    let (ok, text) = openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "-purpose",
            "ocsphelper",
            "signer.pem",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("signer.pem: OK"), "{text}");
}

#[test]
fn openssl_verifies_the_crl_and_lists_the_revoked_serial() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let pki = Pki::new(Key::p256(0x32));
    pki.write(d);
    let now = SystemTime::now();
    let params = CrlParams {
        issuer: Issuer::from_certificate(&pki.ca, pki.ca_key.scheme()),
        number: 42,
        this_update: now - Duration::from_secs(60),
        next_update: now + Duration::from_secs(7 * 86_400),
        revoked: vec![RevokedEntry {
            serial: serial(&pki.leaf2),
            revoked_at: now - Duration::from_secs(600),
            reason: Some(RevocationReason::KeyCompromise),
        }],
    };
    let prepared = crl::prepare(&params).expect("prepare");
    let sig = pki.ca_key.sign(prepared.tbs_der());
    std::fs::write(d.join("crl.der"), prepared.finish(&sig).expect("finish")).expect("write");

    let (ok, text) = openssl(
        d,
        &[
            "crl", "-in", "crl.der", "-inform", "DER", "-CAfile", "ca.pem", "-noout", "-verify",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("verify OK"), "{text}");
    let (ok, text) = openssl(
        d,
        &["crl", "-in", "crl.der", "-inform", "DER", "-noout", "-text"],
    );
    assert!(ok, "{text}");
    assert!(text.contains("Version 2"), "{text}");
    assert!(text.contains("Serial Number: C0FFEE"), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(text.contains("X509v3 CRL Number"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    assert!(!text.contains("Serial Number: 1001"), "{text}");

    // The whole path: openssl refuses the revoked leaf and accepts the other.
    let (ok, text) = openssl(
        d,
        &[
            "crl", "-in", "crl.der", "-inform", "DER", "-out", "crl.pem", "-outform", "PEM",
        ],
    );
    assert!(ok, "{text}");
    let (ok, text) = openssl(
        d,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "ca.pem",
            "-CRLfile",
            "crl.pem",
            "leaf2.pem",
        ],
    );
    assert!(!ok, "{text}");
    assert!(text.contains("certificate revoked"), "{text}");
    let (ok, text) = openssl(
        d,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "ca.pem",
            "-CRLfile",
            "crl.pem",
            "leaf.pem",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("leaf.pem: OK"), "{text}");
}

#[test]
fn openssl_accepts_an_empty_crl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let pki = Pki::new(Key::p256(0x32));
    pki.write(d);
    let now = SystemTime::now();
    let params = CrlParams {
        issuer: Issuer::from_certificate(&pki.ca, pki.ca_key.scheme()),
        number: 1,
        this_update: now - Duration::from_secs(60),
        next_update: now + Duration::from_secs(86_400),
        revoked: Vec::new(),
    };
    let prepared = crl::prepare(&params).expect("prepare");
    let sig = pki.ca_key.sign(prepared.tbs_der());
    std::fs::write(d.join("crl.der"), prepared.finish(&sig).expect("finish")).expect("write");
    let (ok, text) = openssl(
        d,
        &[
            "crl", "-in", "crl.der", "-inform", "DER", "-CAfile", "ca.pem", "-noout", "-verify",
            "-text",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("verify OK"), "{text}");
    assert!(text.contains("No Revoked Certificates"), "{text}");
}
