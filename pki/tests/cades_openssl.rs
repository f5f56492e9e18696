//! Detached CAdES signatures (B-B and B-T) made with software keys, checked by the `openssl`
//! command line tool. These tests fail, not skip, when openssl is not installed.

// The whole file is test code: expect is fine here (clippy.toml allows it in #[test] fns only).
#![allow(clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use der::{Decode, Encode};
use p256::pkcs8::EncodePublicKey;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

use signet_pki::cms::cades::{
    add_signature_timestamp, prepare_detached, signature_value, CadesProfile,
    ID_AA_SIGNATURE_TIME_STAMP_TOKEN,
};
use signet_pki::cms::SignerIdentity;
use signet_pki::tsp::{Accuracy, TimeStampAuthority, TsaPolicy};
use signet_pki::x509::{self, CertificateParams, Issuer, Profile};
use signet_pki::{HashAlg, SignatureScheme};

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

/// A throwaway PKI: a root, a document signer and a TSA, all keys in software. The signer's
/// certificate has the TLS-client profile: its EKU is clientAuth, not emailProtection, so
/// `openssl cms -verify` needs `-purpose any` (the default, smimesign, refuses it with
/// "unsuitable certificate purpose").
struct Pki {
    ca: Certificate,
    signer: SignerIdentity,
    signer_key: Key,
    tsa: TimeStampAuthority,
    tsa_key: Key,
}

fn params(profile: Profile, dn: &str, key: &Key, serial: &[u8]) -> CertificateParams {
    CertificateParams {
        profile,
        subject: x509::parse_name(dn).expect("dn"),
        public_key: key.spki(),
        serial: serial.to_vec(),
        not_before: SystemTime::now() - Duration::from_secs(3600),
        lifetime: Duration::from_secs(30 * 86_400),
        revocation: Default::default(),
    }
}

impl Pki {
    fn new(signer_key: Key) -> Self {
        let ca_key = Key::p256(0x41);
        let tbs = x509::prepare(
            &params(
                Profile::Ca { path_len: None },
                "CN=Signet CAdES Test CA,O=Example",
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
        let signer_cert = issue(
            Profile::TlsClient(vec![]),
            "CN=Signet Document Signer,O=Example",
            &signer_key,
            &[0x02; 16],
        );
        let signer = SignerIdentity::new(signer_cert, vec![ca.clone()], signer_key.scheme())
            .expect("signer");
        let tsa_key = Key::p256(0x43);
        let tsa_cert = issue(
            Profile::TimeStamping,
            "CN=Signet Test TSA,O=Example",
            &tsa_key,
            &[0x03; 16],
        );
        let tsa = TimeStampAuthority::new(
            SignerIdentity::new(tsa_cert, vec![ca.clone()], tsa_key.scheme()).expect("tsa"),
            TsaPolicy {
                default_policy: "1.3.6.1.4.1.32473.1.1".parse().expect("oid"),
                accepted_policies: Vec::new(),
                accuracy: Accuracy {
                    seconds: 1,
                    millis: 0,
                    micros: 0,
                },
                allow_sha1: false,
            },
        );
        Pki {
            ca,
            signer,
            signer_key,
            tsa,
            tsa_key,
        }
    }

    /// A detached B-B signature over `data`, DER.
    fn sign(&self, data: &[u8], profile: CadesProfile) -> Vec<u8> {
        let digest = self.signer.scheme().hash().digest(data);
        let prepared =
            prepare_detached(&self.signer, &digest, SystemTime::now(), profile).expect("prepare");
        let signature = self.signer_key.sign(prepared.signed_bytes());
        prepared
            .finish(&signature)
            .expect("finish")
            .to_der()
            .expect("der")
    }

    /// A bare TimeStampToken over `digest` (SHA-256).
    fn stamp(&self, digest: &[u8], serial: u64) -> Vec<u8> {
        let accepted = self
            .tsa
            .accept_imprint(HashAlg::Sha256, digest)
            .expect("accept");
        let prepared = self
            .tsa
            .prepare(&accepted, SystemTime::now(), serial)
            .expect("prepare");
        let signature = self.tsa_key.sign(prepared.signed_bytes());
        prepared.finish_token(&signature).expect("token")
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

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write");
}

/// `openssl cms -verify` of the detached signature sig.der over `content`, trusting ca.pem.
fn cms_verify(dir: &Path, content: &str) -> (bool, String) {
    openssl(
        dir,
        &[
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            "sig.der",
            "-content",
            content,
            "-CAfile",
            "ca.pem",
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
    )
}

fn cms_print(dir: &Path) -> String {
    let (ok, text) = openssl(
        dir,
        &[
            "cms", "-cmsout", "-print", "-inform", "DER", "-in", "sig.der",
        ],
    );
    assert!(ok, "cms -cmsout -print: {text}");
    text
}

/// The signedAttrs section of `openssl cms -cmsout -print` output.
fn signed_attrs(printed: &str) -> &str {
    let rest = printed
        .split_once("signedAttrs:")
        .map(|(_, rest)| rest)
        .expect("signedAttrs present");
    rest.split_once("signatureAlgorithm:")
        .map_or(rest, |(attrs, _)| attrs)
}

const DATA: &[u8] = b"%PDF-1.7 pretend this is a contract\n\x00\x01\x02\xff binary too\n";

fn b_b(signer_key: Key, profile: CadesProfile) {
    let pki = Pki::new(signer_key);
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(
        dir,
        "ca.pem",
        x509::certificate_to_pem(&pki.ca).expect("pem").as_bytes(),
    );
    write(dir, "data.bin", DATA);
    let mut tampered = DATA.to_vec();
    tampered[0] ^= 1;
    write(dir, "tampered.bin", &tampered);
    write(dir, "sig.der", &pki.sign(DATA, profile));

    let (ok, text) = cms_verify(dir, "data.bin");
    assert!(
        ok && text.contains("Verification successful"),
        "cms -verify: {text}"
    );
    let (ok, text) = cms_verify(dir, "tampered.bin");
    assert!(
        !ok && !text.contains("Verification successful"),
        "tampered data must not verify: {text}"
    );

    let printed = cms_print(dir);
    let signed = signed_attrs(&printed);
    assert!(
        signed.contains("signingCertificateV2") || signed.contains("1.2.840.113549.1.9.16.2.47"),
        "signing-certificate-v2 attribute: {printed}"
    );
    assert!(signed.contains("messageDigest"), "{printed}");
    assert!(signed.contains("contentType"), "{printed}");
    assert!(
        printed.contains("eContent: <ABSENT>"),
        "detached: {printed}"
    );
    assert_eq!(
        signed.contains("signingTime"),
        profile == CadesProfile::Cades,
        "signingTime only for CAdES: {printed}"
    );
    assert!(
        printed.contains("Signet Document Signer") && printed.contains("Signet CAdES Test CA"),
        "signer certificate and its issuer carried: {printed}"
    );
}

#[test]
fn openssl_verifies_a_p256_cades_b_b_signature() {
    b_b(Key::p256(0x42), CadesProfile::Cades);
}

#[test]
fn openssl_verifies_an_rsa_cades_b_b_signature() {
    b_b(Key::rsa(), CadesProfile::Cades);
}

#[test]
fn openssl_verifies_a_p256_pades_cms_without_signing_time() {
    b_b(Key::p256(0x42), CadesProfile::Pades);
}

#[test]
fn openssl_verifies_an_rsa_pades_cms_without_signing_time() {
    b_b(Key::rsa(), CadesProfile::Pades);
}

fn b_t(signer_key: Key, profile: CadesProfile) {
    let pki = Pki::new(signer_key);
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(
        dir,
        "ca.pem",
        x509::certificate_to_pem(&pki.ca).expect("pem").as_bytes(),
    );
    write(dir, "data.bin", DATA);
    let mut tampered = DATA.to_vec();
    tampered[DATA.len() - 1] ^= 1;
    write(dir, "tampered.bin", &tampered);

    let bb = pki.sign(DATA, profile);
    let signature = signature_value(&bb).expect("signature value");
    let imprint = HashAlg::Sha256.digest(&signature);
    let bt = add_signature_timestamp(&bb, &pki.stamp(&imprint, 0x5151)).expect("B-T");
    write(dir, "sig.der", &bt);

    let (ok, text) = cms_verify(dir, "data.bin");
    assert!(
        ok && text.contains("Verification successful"),
        "cms -verify of B-T: {text}"
    );
    let (ok, text) = cms_verify(dir, "tampered.bin");
    assert!(
        !ok && !text.contains("Verification successful"),
        "tampered data must not verify: {text}"
    );
    let printed = cms_print(dir);
    assert_eq!(
        signed_attrs(&printed).contains("signingTime"),
        profile == CadesProfile::Cades,
        "signingTime only for CAdES: {printed}"
    );
    let unsigned = printed
        .split_once("unsignedAttrs:")
        .map(|(_, rest)| rest)
        .expect("unsignedAttrs present");
    assert!(
        unsigned.contains("id-smime-aa-timeStampToken"),
        "signature-time-stamp under unsignedAttrs: {printed}"
    );

    // The token as it sits in the signature, not as the TSA handed it over.
    let signed_data: cms::signed_data::SignedData = cms::content_info::ContentInfo::from_der(&bt)
        .expect("ContentInfo")
        .content
        .decode_as()
        .expect("SignedData");
    let signer_info = signed_data.signer_infos.0.get(0).expect("SignerInfo");
    let attr = signer_info
        .unsigned_attrs
        .as_ref()
        .and_then(|attrs| {
            attrs
                .iter()
                .find(|a| a.oid == ID_AA_SIGNATURE_TIME_STAMP_TOKEN)
        })
        .expect("signature-time-stamp attribute");
    let token = attr.values.get(0).expect("token").to_der().expect("der");
    write(dir, "token.der", &token);

    let ts_verify = |digest: &str| {
        openssl(
            dir,
            &[
                "ts",
                "-verify",
                "-digest",
                digest,
                "-in",
                "token.der",
                "-token_in",
                "-CAfile",
                "ca.pem",
            ],
        )
    };
    let (ok, text) = ts_verify(&hex::encode(&imprint));
    assert!(
        ok && text.contains("Verification: OK"),
        "ts -verify of the token over the signature value: {text}"
    );
    let (ok, text) = ts_verify(&hex::encode(HashAlg::Sha256.digest(DATA)));
    assert!(
        !ok && !text.contains("Verification: OK"),
        "the token is over the signature value, not the data: {text}"
    );
}

#[test]
fn openssl_verifies_a_p256_cades_b_t_signature_and_its_token() {
    b_t(Key::p256(0x42), CadesProfile::Cades);
}

#[test]
fn openssl_verifies_an_rsa_cades_b_t_signature_and_its_token() {
    b_t(Key::rsa(), CadesProfile::Cades);
}

#[test]
fn openssl_verifies_a_pades_b_t_cms_and_its_token() {
    b_t(Key::p256(0x42), CadesProfile::Pades);
}
