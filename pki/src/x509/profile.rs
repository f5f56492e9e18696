//! Certificate profiles: the extensions each kind of certificate carries (RFC 5280 4.2).

use std::net::IpAddr;

use const_oid::db::rfc5280;
use const_oid::db::rfc5912;
use const_oid::db::rfc6960::ID_PKIX_OCSP_NOCHECK;
use der::asn1::{Ia5String, Null, OctetString};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName as SanExt,
    SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;

use super::extension;
use crate::error::Result;

/// id-kp-documentSigning (RFC 9336): { id-kp 36 }.
pub const ID_KP_DOCUMENT_SIGNING: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.36");

/// One entry of a subjectAltName.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectAltName {
    /// A DNS name.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
    /// A URI.
    Uri(String),
}

/// The kinds of certificate Signet issues.
#[derive(Clone, Debug)]
pub enum Profile {
    /// A root or intermediate CA: keyCertSign and cRLSign.
    Ca {
        /// pathLenConstraint, if any.
        path_len: Option<u8>,
    },
    /// A time-stamping unit: the only EKU is id-kp-timeStamping, critical (RFC 3161 2.3).
    TimeStamping,
    /// A delegated OCSP signer (RFC 6960 4.2.2.2): id-kp-OCSPSigning, and id-pkix-ocsp-nocheck
    /// so that clients do not ask about the signer itself (4.2.2.2.1).
    OcspSigning,
    /// A TLS server.
    TlsServer(Vec<SubjectAltName>),
    /// A TLS client (an application calling the API).
    TlsClient(Vec<SubjectAltName>),
    /// A document signer (CMS, CAdES, PAdES): digitalSignature and nonRepudiation
    /// (contentCommitment); EKU id-kp-documentSigning (RFC 9336) and id-kp-emailProtection,
    /// non-critical. The first is the purpose RFC 9336 defines for it; the second is what NSS
    /// (poppler's pdfsig) checks for a signing certificate and Adobe accepts. Neither is
    /// id-kp-clientAuth: a document signer never authenticates as an API client.
    DocumentSigning,
}

impl Profile {
    // Long: the whole extension set of every profile in one place, so that what each kind
    // of certificate carries (RFC 5280 4.2) is read side by side.
    pub(super) fn extensions(
        &self,
        subject_key_id: &[u8],
        authority_key_id: Option<&[u8]>,
    ) -> Result<Vec<Extension>> {
        let mut exts = Vec::new();
        let ca = matches!(self, Profile::Ca { .. });
        let path_len = match self {
            Profile::Ca { path_len } => *path_len,
            _ => None,
        };
        exts.push(extension(
            rfc5280::ID_CE_BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca,
                path_len_constraint: path_len,
            },
        )?);
        let usage = match self {
            Profile::Ca { .. } => KeyUsages::KeyCertSign | KeyUsages::CRLSign,
            Profile::DocumentSigning => KeyUsages::DigitalSignature | KeyUsages::NonRepudiation,
            _ => KeyUsages::DigitalSignature.into(),
        };
        exts.push(extension(rfc5280::ID_CE_KEY_USAGE, true, &KeyUsage(usage))?);
        match self {
            Profile::Ca { .. } => {}
            Profile::DocumentSigning => exts.push(extension(
                rfc5280::ID_CE_EXT_KEY_USAGE,
                false,
                &ExtendedKeyUsage(vec![
                    ID_KP_DOCUMENT_SIGNING,
                    rfc5912::ID_KP_EMAIL_PROTECTION,
                ]),
            )?),
            Profile::TimeStamping => exts.push(extension(
                rfc5280::ID_CE_EXT_KEY_USAGE,
                true,
                &ExtendedKeyUsage(vec![rfc5912::ID_KP_TIME_STAMPING]),
            )?),
            Profile::OcspSigning => {
                exts.push(extension(
                    rfc5280::ID_CE_EXT_KEY_USAGE,
                    false,
                    &ExtendedKeyUsage(vec![rfc5912::ID_KP_OCSP_SIGNING]),
                )?);
                // id-pkix-ocsp-nocheck: extnValue NULL, non-critical.
                exts.push(extension(ID_PKIX_OCSP_NOCHECK, false, &Null)?);
            }
            Profile::TlsServer(names) => {
                exts.push(extension(
                    rfc5280::ID_CE_EXT_KEY_USAGE,
                    false,
                    &ExtendedKeyUsage(vec![rfc5912::ID_KP_SERVER_AUTH]),
                )?);
                push_san(&mut exts, names)?;
            }
            Profile::TlsClient(names) => {
                exts.push(extension(
                    rfc5280::ID_CE_EXT_KEY_USAGE,
                    false,
                    &ExtendedKeyUsage(vec![rfc5912::ID_KP_CLIENT_AUTH]),
                )?);
                push_san(&mut exts, names)?;
            }
        }
        exts.push(extension(
            rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
            false,
            &SubjectKeyIdentifier(OctetString::new(subject_key_id)?),
        )?);
        if let Some(akid) = authority_key_id {
            exts.push(extension(
                rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
                false,
                &AuthorityKeyIdentifier {
                    key_identifier: Some(OctetString::new(akid)?),
                    authority_cert_issuer: None,
                    authority_cert_serial_number: None,
                },
            )?);
        }
        Ok(exts)
    }
}

/// Where relying parties learn whether a certificate was revoked. Carried by every
/// certificate a CA issues (not by a self-signed root, which nobody can revoke).
///
/// ```text
/// AuthorityInfoAccessSyntax ::= SEQUENCE SIZE (1..MAX) OF AccessDescription
/// AccessDescription ::= SEQUENCE { accessMethod OBJECT IDENTIFIER,
///                                  accessLocation GeneralName }         -- RFC 5280 4.2.2.1
/// CRLDistributionPoints ::= SEQUENCE SIZE (1..MAX) OF DistributionPoint
/// DistributionPoint ::= SEQUENCE {
///      distributionPoint       [0]     DistributionPointName OPTIONAL,
///      reasons                 [1]     ReasonFlags OPTIONAL,
///      cRLIssuer               [2]     GeneralNames OPTIONAL }          -- RFC 5280 4.2.1.13
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revocation {
    /// The OCSP responder's URL, written as an authorityInfoAccess id-ad-ocsp entry.
    pub ocsp_url: Option<String>,
    /// The CRL's URL, written as a cRLDistributionPoints fullName URI.
    pub crl_url: Option<String>,
}

impl Revocation {
    /// The extensions for these URLs, none if neither is set; both non-critical.
    pub(super) fn extensions(&self) -> Result<Vec<Extension>> {
        let mut exts = Vec::new();
        if let Some(url) = &self.ocsp_url {
            exts.push(extension(
                rfc5280::ID_PE_AUTHORITY_INFO_ACCESS,
                false,
                &AuthorityInfoAccessSyntax(vec![AccessDescription {
                    access_method: rfc5280::ID_AD_OCSP,
                    access_location: GeneralName::UniformResourceIdentifier(Ia5String::new(url)?),
                }]),
            )?);
        }
        if let Some(url) = &self.crl_url {
            exts.push(extension(
                rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS,
                false,
                &CrlDistributionPoints(vec![DistributionPoint {
                    distribution_point: Some(DistributionPointName::FullName(vec![
                        GeneralName::UniformResourceIdentifier(Ia5String::new(url)?),
                    ])),
                    reasons: None,
                    crl_issuer: None,
                }]),
            )?);
        }
        Ok(exts)
    }
}

/// Append a subjectAltName extension for `names` (none when empty).
pub(super) fn push_san(exts: &mut Vec<Extension>, names: &[SubjectAltName]) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let mut general = Vec::with_capacity(names.len());
    for n in names {
        general.push(match n {
            SubjectAltName::Dns(d) => GeneralName::DnsName(Ia5String::new(d)?),
            SubjectAltName::Uri(u) => GeneralName::UniformResourceIdentifier(Ia5String::new(u)?),
            SubjectAltName::Ip(IpAddr::V4(a)) => {
                GeneralName::IpAddress(OctetString::new(a.octets())?)
            }
            SubjectAltName::Ip(IpAddr::V6(a)) => {
                GeneralName::IpAddress(OctetString::new(a.octets())?)
            }
        });
    }
    exts.push(extension(
        rfc5280::ID_CE_SUBJECT_ALT_NAME,
        false,
        &SanExt(general),
    )?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use const_oid::ObjectIdentifier;
    use der::Decode;
    use x509_cert::Certificate;

    use super::*;
    use crate::test_keys;
    use crate::x509::{self, CertificateParams, Issuer};

    fn cert(profile: Profile, revocation: Revocation, self_signed: bool) -> Certificate {
        let ca_key = test_keys::p256(1);
        let ca = test_keys::ca(&ca_key, "CN=Profile CA");
        let key = test_keys::p256(2);
        let params = CertificateParams {
            profile,
            subject: x509::parse_name("CN=Subject").expect("dn"),
            public_key: key.spki(),
            serial: vec![0x33; 16],
            not_before: SystemTime::now(),
            lifetime: Duration::from_secs(3600),
            revocation,
        };
        let issuer = Issuer::from_certificate(&ca, ca_key.scheme());
        let tbs =
            x509::prepare(&params, (!self_signed).then_some(&issuer), key.scheme()).expect("tbs");
        let sig = if self_signed { &key } else { &ca_key }.sign(tbs.tbs_der());
        tbs.finish(&sig).expect("cert")
    }

    fn ext(cert: &Certificate, oid: ObjectIdentifier) -> Option<&Extension> {
        cert.tbs_certificate
            .extensions
            .as_ref()
            .and_then(|e| e.iter().find(|e| e.extn_id == oid))
    }

    fn urls() -> Revocation {
        Revocation {
            ocsp_url: Some("http://signet.example/ocsp".into()),
            crl_url: Some("http://signet.example/crl/ca.crl".into()),
        }
    }

    #[test]
    fn ocsp_signing_has_its_eku_and_nocheck() {
        let cert = cert(Profile::OcspSigning, Revocation::default(), false);
        let ku = ext(&cert, rfc5280::ID_CE_KEY_USAGE).expect("keyUsage");
        assert!(ku.critical);
        let ku = KeyUsage::from_der(ku.extn_value.as_bytes()).expect("ku");
        assert!(ku.digital_signature());
        assert!(!ku.key_cert_sign());
        let eku = ext(&cert, rfc5280::ID_CE_EXT_KEY_USAGE).expect("EKU");
        assert_eq!(
            ExtendedKeyUsage::from_der(eku.extn_value.as_bytes())
                .expect("eku")
                .0,
            vec![rfc5912::ID_KP_OCSP_SIGNING]
        );
        let nocheck = ext(&cert, ID_PKIX_OCSP_NOCHECK).expect("nocheck");
        assert!(!nocheck.critical);
        assert_eq!(nocheck.extn_value.as_bytes(), [0x05, 0x00]);
        assert!(ext(&cert, rfc5280::ID_PE_AUTHORITY_INFO_ACCESS).is_none());
        assert!(ext(&cert, rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS).is_none());
    }

    fn ekus(cert: &Certificate) -> Vec<ObjectIdentifier> {
        ext(cert, rfc5280::ID_CE_EXT_KEY_USAGE)
            .map(|e| {
                ExtendedKeyUsage::from_der(e.extn_value.as_bytes())
                    .expect("eku")
                    .0
            })
            .unwrap_or_default()
    }

    #[test]
    fn only_the_client_profile_carries_client_auth() {
        let client = cert(Profile::TlsClient(vec![]), Revocation::default(), false);
        assert_eq!(ekus(&client), vec![rfc5912::ID_KP_CLIENT_AUTH]);
        let doc = cert(Profile::DocumentSigning, Revocation::default(), false);
        assert_eq!(
            ekus(&doc),
            vec![ID_KP_DOCUMENT_SIGNING, rfc5912::ID_KP_EMAIL_PROTECTION]
        );
        assert!(
            !ext(&doc, rfc5280::ID_CE_EXT_KEY_USAGE)
                .expect("eku")
                .critical
        );
        for other in [
            Profile::TimeStamping,
            Profile::OcspSigning,
            Profile::TlsServer(vec![]),
            Profile::Ca { path_len: Some(0) },
        ] {
            let c = cert(other, Revocation::default(), false);
            assert!(!ekus(&c).contains(&rfc5912::ID_KP_CLIENT_AUTH));
        }
    }

    #[test]
    fn issued_certificates_carry_the_revocation_urls() {
        let client = cert(Profile::TlsClient(vec![]), urls(), false);
        let aia = ext(&client, rfc5280::ID_PE_AUTHORITY_INFO_ACCESS).expect("AIA");
        assert!(!aia.critical);
        let aia = AuthorityInfoAccessSyntax::from_der(aia.extn_value.as_bytes()).expect("aia");
        assert_eq!(aia.0.len(), 1);
        assert_eq!(aia.0[0].access_method, rfc5280::ID_AD_OCSP);
        assert_eq!(
            aia.0[0].access_location,
            GeneralName::UniformResourceIdentifier(
                Ia5String::new("http://signet.example/ocsp").expect("uri")
            )
        );
        let dp = ext(&client, rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS).expect("CRL DP");
        assert!(!dp.critical);
        let dp = CrlDistributionPoints::from_der(dp.extn_value.as_bytes()).expect("dp");
        assert_eq!(
            dp.0[0].distribution_point,
            Some(DistributionPointName::FullName(vec![
                GeneralName::UniformResourceIdentifier(
                    Ia5String::new("http://signet.example/crl/ca.crl").expect("uri")
                )
            ]))
        );
        let only_ocsp = Revocation {
            crl_url: None,
            ..urls()
        };
        let tsu = cert(Profile::TimeStamping, only_ocsp, false);
        assert!(ext(&tsu, rfc5280::ID_PE_AUTHORITY_INFO_ACCESS).is_some());
        assert!(ext(&tsu, rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS).is_none());
    }

    #[test]
    fn a_self_signed_root_carries_no_revocation_urls() {
        let cert = cert(Profile::Ca { path_len: None }, urls(), true);
        assert!(ext(&cert, rfc5280::ID_PE_AUTHORITY_INFO_ACCESS).is_none());
        assert!(ext(&cert, rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS).is_none());
    }
}
