//! Software keys and a throwaway CA for the unit tests.

use std::time::{Duration, SystemTime};

use der::asn1::{OctetString, OctetStringRef};
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;
use x509_ocsp::{CertId, OcspRequest, Request, TbsRequest};

use crate::alg::{HashAlg, SignatureScheme};
use crate::x509::{self, CertificateParams, Issuer, Profile};

/// A key that signs in software.
pub(crate) enum SoftKey {
    P256(p256::ecdsa::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

/// A P-256 key whose scalar is `seed` repeated.
pub(crate) fn p256(seed: u8) -> SoftKey {
    SoftKey::P256(p256::ecdsa::SigningKey::from_slice(&[seed; 32]).expect("key"))
}

/// The fixed RSA-2048 key of tests/data/keys.
pub(crate) fn rsa() -> SoftKey {
    use rsa::pkcs8::DecodePrivateKey;
    let der = include_bytes!("../tests/data/keys/rsa2048.pk8.der");
    SoftKey::Rsa(Box::new(
        rsa::RsaPrivateKey::from_pkcs8_der(der).expect("key"),
    ))
}

impl SoftKey {
    pub(crate) fn scheme(&self) -> SignatureScheme {
        match self {
            SoftKey::P256(_) => SignatureScheme::Ecdsa(HashAlg::Sha256),
            SoftKey::Rsa(_) => SignatureScheme::RsaPkcs1v15(HashAlg::Sha256),
        }
    }

    pub(crate) fn spki(&self) -> SubjectPublicKeyInfoOwned {
        use p256::pkcs8::EncodePublicKey;
        let der = match self {
            SoftKey::P256(k) => k.verifying_key().to_public_key_der(),
            SoftKey::Rsa(k) => k.to_public_key().to_public_key_der(),
        }
        .expect("spki");
        SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).expect("spki")
    }

    /// Sign `message` with SHA-256: DER for ECDSA, raw for RSA.
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        let digest = HashAlg::Sha256.digest(message);
        match self {
            SoftKey::P256(k) => {
                use p256::ecdsa::signature::hazmat::PrehashSigner;
                let sig: p256::ecdsa::Signature = k.sign_prehash(&digest).expect("sign");
                sig.to_der().as_bytes().to_vec()
            }
            SoftKey::Rsa(k) => k
                .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest)
                .expect("sign"),
        }
    }
}

fn params(profile: Profile, dn: &str, key: &SoftKey, serial: u8) -> CertificateParams {
    CertificateParams {
        profile,
        subject: x509::parse_name(dn).expect("dn"),
        public_key: key.spki(),
        serial: vec![serial; 16],
        not_before: SystemTime::now() - Duration::from_secs(3600),
        lifetime: Duration::from_secs(86_400),
        revocation: Default::default(),
    }
}

/// A self-signed root.
pub(crate) fn ca(key: &SoftKey, dn: &str) -> Certificate {
    let tbs = x509::prepare(
        &params(Profile::Ca { path_len: None }, dn, key, 0x11),
        None,
        key.scheme(),
    )
    .expect("tbs");
    let sig = key.sign(tbs.tbs_der());
    tbs.finish(&sig).expect("ca")
}

/// A certificate issued by `ca`.
pub(crate) fn issue(
    ca: &Certificate,
    ca_key: &SoftKey,
    profile: Profile,
    dn: &str,
    key: &SoftKey,
) -> Certificate {
    let issuer = Issuer::from_certificate(ca, ca_key.scheme());
    let tbs = x509::prepare(
        &params(profile, dn, key, 0x22),
        Some(&issuer),
        ca_key.scheme(),
    )
    .expect("tbs");
    let sig = ca_key.sign(tbs.tbs_der());
    tbs.finish(&sig).expect("cert")
}

/// A DER OCSPRequest with SHA-1 CertIDs for `serials` (INTEGER content octets) under `ca`,
/// and a nonce of `nonce_len` octets unless 0.
pub(crate) fn ocsp_request(ca: &Certificate, serials: &[&[u8]], nonce_len: usize) -> Vec<u8> {
    let tbs = &ca.tbs_certificate;
    let name = tbs.subject.to_der().expect("name");
    let key = tbs.subject_public_key_info.subject_public_key.raw_bytes();
    let request_list = serials
        .iter()
        .map(|s| Request {
            req_cert: CertId {
                hash_algorithm: HashAlg::Sha1.algorithm_identifier(),
                issuer_name_hash: OctetString::new(HashAlg::Sha1.digest(&name)).expect("hash"),
                issuer_key_hash: OctetString::new(HashAlg::Sha1.digest(key)).expect("hash"),
                serial_number: SerialNumber::new(s).expect("serial"),
            },
            single_request_extensions: None,
        })
        .collect();
    let request_extensions = (nonce_len > 0).then(|| {
        let inner = vec![0x5a; nonce_len];
        let value = OctetStringRef::new(&inner)
            .and_then(|o| o.to_der())
            .expect("nonce");
        vec![Extension {
            extn_id: const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(value).expect("nonce"),
        }]
    });
    OcspRequest {
        tbs_request: TbsRequest {
            request_list,
            request_extensions,
            ..Default::default()
        },
        optional_signature: None,
    }
    .to_der()
    .expect("request")
}
