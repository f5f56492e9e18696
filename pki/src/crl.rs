//! Certificate revocation lists (RFC 5280 section 5): full CRLs, v2, and the
//! prepare/finish split around the CA's signature.
//!
//! ```text
//! CertificateList ::= SEQUENCE {
//!      tbsCertList          TBSCertList,
//!      signatureAlgorithm   AlgorithmIdentifier,
//!      signatureValue       BIT STRING }
//! TBSCertList ::= SEQUENCE {
//!      version                 Version OPTIONAL, -- if present, MUST be v2
//!      signature               AlgorithmIdentifier,
//!      issuer                  Name,
//!      thisUpdate              Time,
//!      nextUpdate              Time OPTIONAL,
//!      revokedCertificates     SEQUENCE OF SEQUENCE {
//!           userCertificate         CertificateSerialNumber,
//!           revocationDate          Time,
//!           crlEntryExtensions      Extensions OPTIONAL } OPTIONAL,
//!      crlExtensions           [0] EXPLICIT Extensions OPTIONAL }    -- RFC 5280 5.1
//! CRLNumber ::= INTEGER (0..MAX)                                      -- RFC 5280 5.2.3
//! ```
//!
//! "When there are no revoked certificates, the revoked certificates list MUST be absent"
//! (5.1.2.6); conforming CRL issuers MUST include authorityKeyIdentifier (5.2.1) and
//! cRLNumber (5.2.3), and SHOULD include nextUpdate (5.1.2.5), which is required here.

use std::time::SystemTime;

use const_oid::db::rfc5280;
use der::asn1::{AnyRef, BitString, OctetString, Uint};
use der::{Decode, Encode, Tag};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber};
use x509_cert::serial_number::SerialNumber;
use x509_cert::Version;

pub use crate::reason::RevocationReason;

use crate::alg::SignatureScheme;
use crate::error::{Error, Result};
use crate::x509::Issuer;

/// One revoked certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The serial number's INTEGER content octets, as in the certificate.
    pub serial: Vec<u8>,
    /// When it was revoked; written in whole seconds.
    pub revoked_at: SystemTime,
    /// Why, written as a reasonCode entry extension unless `None` or unspecified.
    pub reason: Option<RevocationReason>,
}

/// What a CRL says.
#[derive(Clone, Debug)]
pub struct CrlParams {
    /// The CA: its name, key identifier (for authorityKeyIdentifier) and signature scheme.
    pub issuer: Issuer,
    /// The cRLNumber: monotonically increasing for this CA (5.2.3).
    pub number: u64,
    /// When this CRL was issued.
    pub this_update: SystemTime,
    /// When the next one will be issued at the latest.
    pub next_update: SystemTime,
    /// The revoked certificates, in the order to list them.
    pub revoked: Vec<RevokedEntry>,
}

/// A TBSCertList waiting for the CA's signature.
#[derive(Clone, Debug)]
pub struct PreparedCrl {
    tbs: TbsCertList,
    tbs_der: Vec<u8>,
    scheme: SignatureScheme,
}

/// Build the TBSCertList: v2, thisUpdate/nextUpdate as RFC 5280 Time (UTCTime through 2049),
/// authorityKeyIdentifier and cRLNumber, both non-critical.
pub fn prepare(params: &CrlParams) -> Result<PreparedCrl> {
    if params.next_update < params.this_update {
        return Err(Error::Invalid("nextUpdate is before thisUpdate"));
    }
    let revoked = params
        .revoked
        .iter()
        .map(revoked_cert)
        .collect::<Result<Vec<_>>>()?;
    let crl_extensions = vec![
        crate::x509::extension(
            rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(params.issuer.key_id.clone())?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?,
        crate::x509::extension(
            rfc5280::ID_CE_CRL_NUMBER,
            false,
            &CrlNumber(Uint::new(&params.number.to_be_bytes())?),
        )?,
    ];
    let scheme = params.issuer.scheme;
    let tbs = TbsCertList {
        version: Version::V2,
        signature: scheme.algorithm_identifier()?,
        issuer: params.issuer.name.clone(),
        this_update: crate::time::rfc5280(params.this_update)?,
        next_update: Some(crate::time::rfc5280(params.next_update)?),
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: Some(crl_extensions),
    };
    let tbs_der = tbs.to_der()?;
    Ok(PreparedCrl {
        tbs,
        tbs_der,
        scheme,
    })
}

/// One revokedCertificates entry, with a reasonCode (5.3.1) when there is a reason to give.
fn revoked_cert(entry: &RevokedEntry) -> Result<RevokedCert> {
    // The serial exactly as the certificate has it: encode its content octets and decode
    // them back, which refuses an empty or non-minimal INTEGER.
    let serial = SerialNumber::from_der(&AnyRef::new(Tag::Integer, &entry.serial)?.to_der()?)?;
    let crl_entry_extensions = match entry.reason.and_then(|r| r.to_written()) {
        Some(code) => Some(vec![crate::x509::extension(
            rfc5280::ID_CE_CRL_REASONS,
            false,
            &code,
        )?]),
        None => None,
    };
    Ok(RevokedCert {
        serial_number: serial,
        revocation_date: crate::time::rfc5280(entry.revoked_at)?,
        crl_entry_extensions,
    })
}

impl PreparedCrl {
    /// The DER TBSCertList: the message the CA's key signs.
    pub fn tbs_der(&self) -> &[u8] {
        &self.tbs_der
    }

    /// The scheme the CA must sign with.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    /// Attach the signature (DER for ECDSA, raw for RSA) and return the DER CertificateList.
    pub fn finish(self, signature: &[u8]) -> Result<Vec<u8>> {
        Ok(CertificateList {
            signature_algorithm: self.scheme.algorithm_identifier()?,
            tbs_cert_list: self.tbs,
            signature: BitString::from_bytes(signature)?,
        }
        .to_der()?)
    }
}

/// What a CRL from another CA says, once its signature verified with that CA's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCrl {
    /// thisUpdate.
    pub this_update: SystemTime,
    /// nextUpdate; `None` when the CRL gives none (then it is never fresh by itself).
    pub next_update: Option<SystemTime>,
    /// The serial numbers listed (INTEGER content octets, as in the certificates), with the
    /// reason when the entry names one.
    pub revoked: Vec<(Vec<u8>, Option<RevocationReason>)>,
}

/// Read a DER CRL issued by `issuer`: the issuer names must match, the signature must
/// verify with `issuer`'s public key, and no critical extension may be one this reader does
/// not understand (RFC 5280 5.2: a delta or partitioned CRL is refused, not half-read).
pub fn read_verified(der: &[u8], issuer: &x509_cert::Certificate) -> Result<VerifiedCrl> {
    use x509_cert::ext::pkix::CrlReason;
    let crl = CertificateList::from_der(der)?;
    let tbs = &crl.tbs_cert_list;
    if tbs.issuer != issuer.tbs_certificate.subject {
        return Err(Error::Invalid("CRL issuer is not the CA's subject"));
    }
    if tbs.signature != crl.signature_algorithm {
        return Err(Error::Invalid("CRL signature algorithms differ"));
    }
    let scheme = SignatureScheme::from_algorithm_identifier(&crl.signature_algorithm)?;
    let spki = issuer.tbs_certificate.subject_public_key_info.to_der()?;
    let signature = crl
        .signature
        .as_bytes()
        .ok_or(Error::Invalid("CRL signature has unused bits"))?;
    crate::verify::PublicKey::from_spki_der(&spki)?.verify_message(
        scheme,
        &tbs.to_der()?,
        signature,
    )?;
    let understood = [
        rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
        rfc5280::ID_CE_CRL_NUMBER,
    ];
    if tbs
        .crl_extensions
        .iter()
        .flatten()
        .any(|e| e.critical && !understood.contains(&e.extn_id))
    {
        return Err(Error::Invalid(
            "CRL has a critical extension not understood",
        ));
    }
    let mut revoked = Vec::new();
    for entry in tbs.revoked_certificates.iter().flatten() {
        let mut reason = None;
        for ext in entry.crl_entry_extensions.iter().flatten() {
            if ext.extn_id == rfc5280::ID_CE_CRL_REASONS {
                let code = CrlReason::from_der(ext.extn_value.as_bytes())?;
                reason = RevocationReason::from_code(code as u8);
            } else if ext.critical {
                // certificateIssuer (indirect CRLs) among them: not read here, so refused.
                return Err(Error::Invalid(
                    "CRL entry has a critical extension not understood",
                ));
            }
        }
        revoked.push((entry.serial_number.as_bytes().to_vec(), reason));
    }
    Ok(VerifiedCrl {
        this_update: tbs.this_update.to_system_time(),
        next_update: tbs.next_update.map(|t| t.to_system_time()),
        revoked,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use x509_cert::ext::pkix::CrlReason;
    use x509_cert::time::Time;

    use super::*;
    use crate::test_keys::{self, SoftKey};
    use crate::verify::PublicKey;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn params(key: &SoftKey, revoked: Vec<RevokedEntry>) -> (CrlParams, Vec<u8>) {
        let ca = test_keys::ca(key, "CN=CRL Unit CA");
        let spki = ca
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .expect("spki");
        (
            CrlParams {
                issuer: Issuer::from_certificate(&ca, key.scheme()),
                number: 0x0102_0304_0506,
                this_update: at(1_700_000_000) + Duration::from_millis(700),
                next_update: at(1_700_604_800),
                revoked,
            },
            spki,
        )
    }

    fn signed(key: &SoftKey, revoked: Vec<RevokedEntry>) -> CertificateList {
        let (params, spki) = params(key, revoked);
        let prepared = prepare(&params).expect("prepares");
        let sig = key.sign(prepared.tbs_der());
        let tbs_der = prepared.tbs_der().to_vec();
        let der = prepared.finish(&sig).expect("finishes");
        let crl = CertificateList::from_der(&der).expect("decodes");
        assert_eq!(crl.tbs_cert_list.to_der().expect("der"), tbs_der);
        let public = PublicKey::from_spki_der(&spki).expect("key");
        let sig = crl.signature.as_bytes().expect("octets");
        public
            .verify_message(key.scheme(), &tbs_der, sig)
            .expect("signature verifies");
        let mut tampered = tbs_der.clone();
        tampered[10] ^= 1;
        assert!(public.verify_message(key.scheme(), &tampered, sig).is_err());
        crl
    }

    fn entries() -> Vec<RevokedEntry> {
        vec![
            RevokedEntry {
                serial: vec![0x10, 0x01],
                revoked_at: at(1_650_000_000),
                reason: Some(RevocationReason::KeyCompromise),
            },
            RevokedEntry {
                serial: vec![0x00, 0xc0, 0xff, 0xee],
                revoked_at: at(1_660_000_000),
                reason: None,
            },
            RevokedEntry {
                serial: vec![0x42],
                revoked_at: at(1_670_000_000),
                reason: Some(RevocationReason::Unspecified),
            },
            RevokedEntry {
                serial: vec![0x43],
                revoked_at: at(1_670_000_001),
                reason: Some(RevocationReason::CertificateHold),
            },
        ]
    }

    fn check(key: &SoftKey) {
        let crl = signed(key, entries());
        let tbs = &crl.tbs_cert_list;
        assert_eq!(tbs.version, Version::V2);
        assert!(matches!(tbs.this_update, Time::UtcTime(_)));
        assert_eq!(tbs.this_update.to_unix_duration().as_secs(), 1_700_000_000);
        let exts = tbs.crl_extensions.as_ref().expect("extensions");
        assert_eq!(exts.len(), 2);
        assert!(exts.iter().all(|e| !e.critical));
        assert_eq!(exts[0].extn_id, rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER);
        let number = CrlNumber::from_der(exts[1].extn_value.as_bytes()).expect("number");
        assert_eq!(number.0.as_bytes(), [1, 2, 3, 4, 5, 6]);

        let revoked = tbs.revoked_certificates.as_ref().expect("revoked");
        let serials: Vec<&[u8]> = revoked.iter().map(|r| r.serial_number.as_bytes()).collect();
        assert_eq!(
            serials,
            vec![
                &[0x10, 0x01][..],
                &[0x00, 0xc0, 0xff, 0xee],
                &[0x42],
                &[0x43]
            ]
        );
        let reason = |i: usize| {
            revoked[i].crl_entry_extensions.as_ref().map(|exts| {
                assert_eq!(exts.len(), 1);
                assert_eq!(exts[0].extn_id, rfc5280::ID_CE_CRL_REASONS);
                assert!(!exts[0].critical);
                CrlReason::from_der(exts[0].extn_value.as_bytes()).expect("reason")
            })
        };
        assert_eq!(reason(0), Some(CrlReason::KeyCompromise));
        assert_eq!(reason(1), None);
        assert_eq!(reason(2), None);
        assert_eq!(reason(3), Some(CrlReason::CertificateHold));
        assert_eq!(
            revoked[0].revocation_date.to_unix_duration().as_secs(),
            1_650_000_000
        );
    }

    #[test]
    fn p256_crl_verifies_and_lists_its_entries() {
        check(&test_keys::p256(3));
    }

    #[test]
    fn rsa_crl_verifies_and_lists_its_entries() {
        check(&test_keys::rsa());
    }

    #[test]
    fn an_empty_crl_has_no_revoked_certificates_field() {
        let key = test_keys::p256(3);
        let crl = signed(&key, Vec::new());
        assert!(crl.tbs_cert_list.revoked_certificates.is_none());
        // Not even an empty SEQUENCE: after nextUpdate comes crlExtensions [0] directly.
        let der = crl.tbs_cert_list.to_der().expect("der");
        let next_update = crl
            .tbs_cert_list
            .next_update
            .expect("nextUpdate")
            .to_der()
            .expect("der");
        let at = der
            .windows(next_update.len())
            .position(|w| w == next_update.as_slice())
            .expect("nextUpdate in TBSCertList");
        assert_eq!(der[at + next_update.len()], 0xa0);
    }

    #[test]
    fn a_crl_is_read_back_only_with_its_issuers_key() {
        for key in [test_keys::p256(3), test_keys::rsa()] {
            let (params, _) = params(&key, entries());
            let prepared = prepare(&params).expect("prepares");
            let sig = key.sign(prepared.tbs_der());
            let der = prepared.finish(&sig).expect("finishes");
            let ca = test_keys::ca(&key, "CN=CRL Unit CA");
            let read = read_verified(&der, &ca).expect("verifies");
            assert_eq!(read.this_update, at(1_700_000_000));
            assert_eq!(read.next_update, Some(at(1_700_604_800)));
            assert_eq!(read.revoked.len(), 4);
            assert_eq!(
                read.revoked[0],
                (vec![0x10, 0x01], Some(RevocationReason::KeyCompromise))
            );
            assert_eq!(
                read.revoked[3],
                (vec![0x43], Some(RevocationReason::CertificateHold))
            );
            // Another key under the same name, a tampered CRL, another name: refused.
            let other = test_keys::p256(9);
            let impostor = test_keys::ca(&other, "CN=CRL Unit CA");
            assert!(read_verified(&der, &impostor).is_err());
            let mut tampered = der.clone();
            let at_serial = tampered
                .windows(2)
                .position(|w| w == [0x10, 0x01])
                .expect("serial in the CRL");
            tampered[at_serial] = 0x11;
            assert!(read_verified(&tampered, &ca).is_err());
            let renamed = test_keys::ca(&key, "CN=Another CA");
            assert!(read_verified(&der, &renamed).is_err());
            assert!(read_verified(&der[..der.len() - 3], &ca).is_err());
        }
    }

    #[test]
    fn a_crl_made_by_openssl_ca_is_read() {
        // `openssl ca -gencrl` over two revocations (tests/data/crl; thisUpdate 2026-12-03,
        // nextUpdate a century later).
        let ca =
            crate::x509::certificate_from_pem(include_str!("../tests/data/crl/openssl-ca.pem"))
                .expect("ca");
        let der = include_bytes!("../tests/data/crl/openssl.crl");
        let read = read_verified(der, &ca).expect("verifies");
        assert_eq!(
            read.revoked,
            vec![
                (vec![0x10, 0x01], Some(RevocationReason::KeyCompromise)),
                (vec![0x10, 0x02], Some(RevocationReason::CertificateHold)),
            ]
        );
        assert!(read.next_update.expect("nextUpdate") > read.this_update);
        let other = test_keys::ca(&test_keys::p256(4), "CN=Vector Client CA,O=Elsewhere");
        assert!(read_verified(der, &other).is_err());
    }

    #[test]
    fn bad_parameters_are_refused() {
        let key = test_keys::p256(3);
        let (mut p, _) = params(&key, Vec::new());
        p.next_update = at(1_600_000_000);
        assert!(prepare(&p).is_err());
        for serial in [vec![], vec![0x00, 0x01]] {
            let (p, _) = params(
                &key,
                vec![RevokedEntry {
                    serial,
                    revoked_at: at(1_650_000_000),
                    reason: None,
                }],
            );
            assert!(prepare(&p).is_err());
        }
    }
}
