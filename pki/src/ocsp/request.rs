//! Decoding an OCSPRequest: the CertIDs asked about and the nonce to echo.
//!
//! ```text
//! OCSPRequest ::= SEQUENCE {
//!     tbsRequest                  TBSRequest,
//!     optionalSignature   [0]     EXPLICIT Signature OPTIONAL }
//! TBSRequest ::= SEQUENCE {
//!     version             [0]     EXPLICIT Version DEFAULT v1,
//!     requestorName       [1]     EXPLICIT GeneralName OPTIONAL,
//!     requestList                 SEQUENCE OF Request,
//!     requestExtensions   [2]     EXPLICIT Extensions OPTIONAL }
//! Request ::= SEQUENCE {
//!     reqCert                     CertID,
//!     singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
//! CertID ::= SEQUENCE {
//!     hashAlgorithm       AlgorithmIdentifier,
//!     issuerNameHash      OCTET STRING, -- Hash of issuer's DN
//!     issuerKeyHash       OCTET STRING, -- Hash of issuer's public key
//!     serialNumber        CertificateSerialNumber }                  -- RFC 6960 4.1.1
//! Nonce ::= OCTET STRING(SIZE(1..32))                                -- RFC 9654 2.1
//! ```
//!
//! The optional signature is ignored: this responder answers anyone (RFC 5019 2.1.2).

use const_oid::db::rfc6960::{
    ID_PKIX_OCSP_NONCE, ID_PKIX_OCSP_PREF_SIG_ALGS, ID_PKIX_OCSP_RESPONSE,
};
use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, OctetString, OctetStringRef};
use der::{Any, Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::Extension;
use x509_cert::Certificate;
use x509_ocsp::{CertId, OcspRequest};

use super::OcspError;
use crate::alg::HashAlg;

/// RFC 9654 2.1: a nonce is 1 to 32 octets.
pub const MAX_NONCE_LEN: usize = 32;

/// Request extensions this responder understands, so may carry the critical flag.
/// The acceptable-responses and preferred-signature-algorithms ones are understood and
/// ignored: every client takes id-pkix-ocsp-basic (RFC 6960 4.4.3), and the responder signs
/// with the one scheme of its key.
const UNDERSTOOD: [ObjectIdentifier; 3] = [
    ID_PKIX_OCSP_NONCE,
    ID_PKIX_OCSP_RESPONSE,
    ID_PKIX_OCSP_PREF_SIG_ALGS,
];

/// What a request asks: its certificates, in order, and its nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedRequest {
    /// The certificates asked about, at least one.
    pub cert_ids: Vec<RequestedCert>,
    /// The nonce to echo in the response, if the request has one.
    pub nonce: Option<Nonce>,
}

/// One certificate asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestedCert {
    /// The CertID exactly as received, echoed in the SingleResponse (RFC 6960 4.2.1 wants the
    /// same hash algorithm and hashes back).
    pub cert_id: CertId,
    /// The CertID's hash algorithm, or `None` for one this responder does not compute
    /// (anything but SHA-1/256/384/512, or with parameters other than absent or NULL). Such
    /// a CertID never matches an issuer ([`super::IssuerMatcher::matches`] is false), so the
    /// caller answers `unknown` for it; the rest of the request is still answered.
    pub hash: Option<HashAlg>,
    /// The serial number's INTEGER content octets, as they appear in the certificate
    /// (a leading 0x00 kept when the top bit is set).
    pub serial: Vec<u8>,
}

impl RequestedCert {
    /// Describe a received CertID.
    pub fn new(cert_id: CertId) -> Self {
        let alg = &cert_id.hash_algorithm;
        let params_ok = alg
            .parameters
            .as_ref()
            .is_none_or(|p| AnyRef::from(p) == AnyRef::NULL);
        let hash = HashAlg::from_oid(alg.oid).filter(|_| params_ok);
        let serial = cert_id.serial_number.as_bytes().to_vec();
        RequestedCert {
            cert_id,
            hash,
            serial,
        }
    }

    /// The CertID a client computes for `cert`, issued by `issuer`, with `hash`: the
    /// AlgorithmIdentifier with NULL parameters, as OpenSSL writes it (RFC 6960 4.1.1:
    /// issuerNameHash over the DER issuer name, issuerKeyHash over the key's bits).
    pub fn for_certificate(
        issuer: &Certificate,
        cert: &Certificate,
        hash: HashAlg,
    ) -> crate::error::Result<Self> {
        let ca = &issuer.tbs_certificate;
        let cert_id = CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: hash.oid(),
                parameters: Some(Any::null()),
            },
            issuer_name_hash: OctetString::new(hash.digest(&ca.subject.to_der()?))?,
            issuer_key_hash: OctetString::new(
                hash.digest(ca.subject_public_key_info.subject_public_key.raw_bytes()),
            )?,
            serial_number: cert.tbs_certificate.serial_number.clone(),
        };
        Ok(RequestedCert::new(cert_id))
    }
}

/// The nonce extension of a request, kept whole so that the response echoes it byte for
/// byte (RFC 6960 4.4.1, RFC 9654 2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nonce {
    extension: Extension,
    value: Vec<u8>,
}

impl Nonce {
    /// Read a nonce extension: extnValue holds the DER of `Nonce ::= OCTET STRING(SIZE(1..32))`.
    pub fn from_extension(extension: Extension) -> Result<Self, OcspError> {
        let value = OctetStringRef::from_der(extension.extn_value.as_bytes())
            .map_err(|e| OcspError::Malformed(format!("nonce is not an OCTET STRING: {e}")))?
            .as_bytes()
            .to_vec();
        if value.is_empty() {
            return Err(OcspError::Malformed("empty nonce".into()));
        }
        if value.len() > MAX_NONCE_LEN {
            return Err(OcspError::NonceTooLong(value.len()));
        }
        Ok(Nonce { extension, value })
    }

    /// The whole extension as received.
    pub fn extension(&self) -> &Extension {
        &self.extension
    }

    /// The nonce octets.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// How many nonce octets: 1 to 32.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Always false: an empty nonce is refused when parsing.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

/// Decode a DER OCSPRequest.
///
/// Refused as [`OcspError::Malformed`]: anything that is not DER, trailing bytes, an empty
/// requestList, a repeated extension, a critical extension other than those in
/// [`UNDERSTOOD`], a nonce that is not a non-empty OCTET STRING. A nonce of more than 32
/// octets is [`OcspError::NonceTooLong`]. The optional signature is not looked at.
pub fn parse_request(der: &[u8]) -> Result<ParsedRequest, OcspError> {
    let req = OcspRequest::from_der(der).map_err(|e| OcspError::Malformed(e.to_string()))?;
    let tbs = req.tbs_request;
    if tbs.request_list.is_empty() {
        return Err(OcspError::Malformed("no CertID in requestList".into()));
    }
    let mut nonce = None;
    if let Some(exts) = tbs.request_extensions {
        check_extensions(&exts)?;
        if let Some(ext) = exts.into_iter().find(|e| e.extn_id == ID_PKIX_OCSP_NONCE) {
            nonce = Some(Nonce::from_extension(ext)?);
        }
    }
    let mut cert_ids = Vec::with_capacity(tbs.request_list.len());
    for r in tbs.request_list {
        if let Some(exts) = &r.single_request_extensions {
            check_extensions(exts)?;
        }
        cert_ids.push(RequestedCert::new(r.req_cert));
    }
    Ok(ParsedRequest { cert_ids, nonce })
}

/// No extension twice (RFC 5280 4.2), and none critical that is not understood
/// (RFC 6960 4.4: unrecognized extensions are ignored unless critical).
fn check_extensions(exts: &[Extension]) -> Result<(), OcspError> {
    for (i, e) in exts.iter().enumerate() {
        if exts[..i].iter().any(|o| o.extn_id == e.extn_id) {
            return Err(OcspError::Malformed(format!(
                "extension {} appears twice",
                e.extn_id
            )));
        }
        if e.critical && !UNDERSTOOD.contains(&e.extn_id) {
            return Err(OcspError::Malformed(format!(
                "critical extension {} is not supported",
                e.extn_id
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::OctetString;
    use der::Encode;
    use spki::AlgorithmIdentifierOwned;
    use x509_cert::serial_number::SerialNumber;
    use x509_ocsp::{Request, TbsRequest};

    fn cert_id(alg: AlgorithmIdentifierOwned) -> CertId {
        CertId {
            hash_algorithm: alg,
            issuer_name_hash: OctetString::new(vec![1; 20]).expect("octets"),
            issuer_key_hash: OctetString::new(vec![2; 20]).expect("octets"),
            serial_number: SerialNumber::new(&[0x80, 1]).expect("serial"),
        }
    }

    fn request(ids: Vec<CertId>, exts: Option<Vec<Extension>>) -> Vec<u8> {
        OcspRequest {
            tbs_request: TbsRequest {
                request_list: ids
                    .into_iter()
                    .map(|req_cert| Request {
                        req_cert,
                        single_request_extensions: None,
                    })
                    .collect(),
                request_extensions: exts,
                ..Default::default()
            },
            optional_signature: None,
        }
        .to_der()
        .expect("encodes")
    }

    fn nonce_ext(inner: &[u8], critical: bool) -> Extension {
        Extension {
            extn_id: ID_PKIX_OCSP_NONCE,
            critical,
            extn_value: OctetString::new(
                OctetStringRef::new(inner)
                    .expect("octets")
                    .to_der()
                    .expect("der"),
            )
            .expect("octets"),
        }
    }

    fn sha1() -> AlgorithmIdentifierOwned {
        HashAlg::Sha1.algorithm_identifier()
    }

    #[test]
    fn nonce_lengths_1_to_32_are_accepted() {
        for len in [1, 16, 32] {
            let der = request(
                vec![cert_id(sha1())],
                Some(vec![nonce_ext(&vec![7; len], false)]),
            );
            let parsed = parse_request(&der).expect("parses");
            let nonce = parsed.nonce.expect("nonce");
            assert_eq!(nonce.len(), len);
            assert_eq!(nonce.value(), &vec![7; len][..]);
        }
    }

    #[test]
    fn long_and_empty_nonces_are_refused() {
        let der = request(
            vec![cert_id(sha1())],
            Some(vec![nonce_ext(&[7; 33], false)]),
        );
        assert_eq!(parse_request(&der), Err(OcspError::NonceTooLong(33)));
        let der = request(vec![cert_id(sha1())], Some(vec![nonce_ext(&[], false)]));
        assert!(matches!(parse_request(&der), Err(OcspError::Malformed(_))));
    }

    #[test]
    fn a_nonce_not_wrapped_in_an_octet_string_is_malformed() {
        let mut ext = nonce_ext(&[7; 16], false);
        ext.extn_value = OctetString::new(vec![7; 16]).expect("octets");
        let der = request(vec![cert_id(sha1())], Some(vec![ext]));
        assert!(matches!(parse_request(&der), Err(OcspError::Malformed(_))));
    }

    #[test]
    fn a_critical_nonce_is_understood_a_critical_unknown_extension_is_not() {
        let der = request(vec![cert_id(sha1())], Some(vec![nonce_ext(&[7; 8], true)]));
        assert!(parse_request(&der).expect("parses").nonce.is_some());
        let unknown = Extension {
            extn_id: ObjectIdentifier::new_unwrap("1.3.6.1.4.1.32473.9"),
            critical: true,
            extn_value: OctetString::new(vec![5, 0]).expect("octets"),
        };
        let der = request(vec![cert_id(sha1())], Some(vec![unknown.clone()]));
        assert!(matches!(parse_request(&der), Err(OcspError::Malformed(_))));
        let ignored = Extension {
            critical: false,
            ..unknown
        };
        let der = request(vec![cert_id(sha1())], Some(vec![ignored]));
        assert!(parse_request(&der).expect("parses").nonce.is_none());
    }

    #[test]
    fn a_repeated_nonce_is_malformed() {
        let der = request(
            vec![cert_id(sha1())],
            Some(vec![nonce_ext(&[1; 8], false), nonce_ext(&[2; 8], false)]),
        );
        assert!(matches!(parse_request(&der), Err(OcspError::Malformed(_))));
    }

    #[test]
    fn an_empty_request_list_is_malformed() {
        let der = request(vec![], None);
        assert!(matches!(parse_request(&der), Err(OcspError::Malformed(_))));
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let mut der = request(vec![cert_id(sha1())], None);
        assert!(parse_request(&der).is_ok());
        der.push(0);
        assert!(matches!(parse_request(&der), Err(OcspError::Malformed(_))));
        assert!(matches!(parse_request(&[]), Err(OcspError::Malformed(_))));
    }

    #[test]
    fn hash_parameters_must_be_absent_or_null() {
        let mut absent = sha1();
        absent.parameters = None;
        let mut null = sha1();
        null.parameters = Some(der::Any::from(AnyRef::NULL));
        let mut odd = sha1();
        odd.parameters = Some(der::Any::new(der::Tag::Boolean, vec![0xff]).expect("any"));
        let der = request(vec![cert_id(absent), cert_id(null), cert_id(odd)], None);
        let parsed = parse_request(&der).expect("parses");
        let hashes: Vec<_> = parsed.cert_ids.iter().map(|c| c.hash).collect();
        assert_eq!(hashes, vec![Some(HashAlg::Sha1), Some(HashAlg::Sha1), None]);
        assert_eq!(parsed.cert_ids[0].serial, vec![0x00, 0x80, 0x01]);
    }
}
