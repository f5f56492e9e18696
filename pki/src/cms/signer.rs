//! One signer of CMS SignedData: its certificate, chain and scheme, and the two halves of
//! making a SignerInfo around the HSM's signature.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignerIdentifier, SignerInfo,
    SignerInfos,
};
use const_oid::db::rfc5911;
use const_oid::ObjectIdentifier;
use std::sync::Arc;

use der::asn1::{ContextSpecificRef, OctetString, SetOfVec};
use der::{Any, Encode, Tag, TagMode, TagNumber};
use x509_cert::attr::Attribute;
use x509_cert::Certificate;

use super::ess::SigningCertificateV2;
use super::{attribute, ID_AA_SIGNING_CERTIFICATE_V2};
use crate::alg::SignatureScheme;
use crate::error::Result;

/// A signing key's public side as CMS needs it, computed once and reused for every signature.
#[derive(Clone, Debug)]
pub struct SignerIdentity {
    cert: Certificate,
    chain: Vec<Certificate>,
    scheme: SignatureScheme,
    sid: SignerIdentifier,
    signing_certificate_v2: Attribute,
    /// SignedData's `certificates [0] IMPLICIT CertificateSet` of the certificate and its
    /// chain, encoded once: copying and sorting the certificates for every signature cost
    /// more than the rest of the SignedData.
    certificates_field: Arc<[u8]>,
}

impl SignerIdentity {
    /// `cert` is the signer's certificate, `chain` its issuers (root last), `scheme` how its key signs.
    pub fn new(
        cert: Certificate,
        chain: Vec<Certificate>,
        scheme: SignatureScheme,
    ) -> Result<Self> {
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        });
        let signing_certificate_v2 = attribute(
            ID_AA_SIGNING_CERTIFICATE_V2,
            &SigningCertificateV2::for_certificate(&cert)?,
        )?;
        let certificates_field = certificates_field(&cert, &chain)?;
        Ok(SignerIdentity {
            cert,
            chain,
            scheme,
            sid,
            signing_certificate_v2,
            certificates_field,
        })
    }

    /// The signer's certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The signer's issuers, root last.
    pub fn chain(&self) -> &[Certificate] {
        &self.chain
    }

    /// How the signer's key signs.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    /// Build the signed attributes over content of type `content_type` whose digest (with
    /// this signer's hash) is `content_digest`, plus `extra` attributes, and the digest the
    /// key must sign. `econtent` is the encapsulated content, or `None` for a detached signature.
    pub fn prepare(
        &self,
        content_type: ObjectIdentifier,
        econtent: Option<Vec<u8>>,
        content_digest: &[u8],
        extra: Vec<Attribute>,
        include_certificates: bool,
    ) -> Result<PreparedSignedData> {
        let mut attrs = vec![
            attribute(rfc5911::ID_CONTENT_TYPE, &content_type)?,
            attribute(
                rfc5911::ID_MESSAGE_DIGEST,
                &OctetString::new(content_digest)?,
            )?,
            self.signing_certificate_v2.clone(),
        ];
        attrs.extend(extra);
        // DER orders a SET OF by encoding; the signature covers this exact encoding.
        let signed_attrs: SignedAttributes = SetOfVec::try_from(attrs)?;
        let signed_bytes = signed_attrs.to_der()?;
        Ok(PreparedSignedData {
            identity: self.clone_public(include_certificates),
            content_type,
            econtent,
            signed_attrs,
            signed_bytes,
        })
    }

    fn clone_public(&self, include_certificates: bool) -> PublicParts {
        PublicParts {
            certificates_field: include_certificates.then(|| Arc::clone(&self.certificates_field)),
            scheme: self.scheme,
            sid: self.sid.clone(),
        }
    }
}

/// The DER of `certificates [0] IMPLICIT CertificateSet` holding `cert` and `chain`, as
/// SignedData's own encoding would write it (the SET OF sorted by encoding).
fn certificates_field(cert: &Certificate, chain: &[Certificate]) -> Result<Arc<[u8]>> {
    let choices: Vec<CertificateChoices> = std::iter::once(cert)
        .chain(chain)
        .cloned()
        .map(CertificateChoices::Certificate)
        .collect();
    let set = CertificateSet(SetOfVec::try_from(choices)?);
    let field = ContextSpecificRef {
        tag_number: TagNumber::N0,
        tag_mode: TagMode::Implicit,
        value: &set,
    };
    Ok(field.to_der()?.into())
}

#[derive(Clone, Debug)]
struct PublicParts {
    certificates_field: Option<Arc<[u8]>>,
    scheme: SignatureScheme,
    sid: SignerIdentifier,
}

/// SignedData waiting for the signature over its signed attributes.
#[derive(Clone, Debug)]
pub struct PreparedSignedData {
    identity: PublicParts,
    content_type: ObjectIdentifier,
    econtent: Option<Vec<u8>>,
    signed_attrs: SignedAttributes,
    signed_bytes: Vec<u8>,
}

impl PreparedSignedData {
    /// The DER signed attributes: the message the signature covers.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed_bytes
    }

    /// The digest of the signed attributes: what the HSM signs.
    pub fn digest(&self) -> Vec<u8> {
        self.identity.scheme.hash().digest(&self.signed_bytes)
    }

    /// The scheme the signature must be made with.
    pub fn scheme(&self) -> SignatureScheme {
        self.identity.scheme
    }

    /// Attach the signature (DER for ECDSA) and encode the ContentInfo.
    pub fn finish(self, signature: &[u8]) -> Result<ContentInfo> {
        let scheme = self.identity.scheme;
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: self.identity.sid,
            digest_alg: scheme.hash().algorithm_identifier(),
            signed_attrs: Some(self.signed_attrs),
            signature_algorithm: scheme.algorithm_identifier()?,
            signature: OctetString::new(signature)?,
            unsigned_attrs: None,
        };
        let mut digest_algorithms = SetOfVec::new();
        digest_algorithms.insert(scheme.hash().algorithm_identifier())?;
        // RFC 5652 5.1: version 3 when the content is not id-data.
        let version = if self.content_type == rfc5911::ID_DATA {
            CmsVersion::V1
        } else {
            CmsVersion::V3
        };
        let econtent = match self.econtent {
            Some(bytes) => Some(Any::new(Tag::OctetString, bytes)?),
            None => None,
        };
        // SignedData's fields in order, the certificates spliced in already encoded.
        let mut fields = Vec::with_capacity(1024);
        version.encode_to_vec(&mut fields)?;
        digest_algorithms.encode_to_vec(&mut fields)?;
        EncapsulatedContentInfo {
            econtent_type: self.content_type,
            econtent,
        }
        .encode_to_vec(&mut fields)?;
        if let Some(certificates) = &self.identity.certificates_field {
            fields.extend_from_slice(certificates);
        }
        SignerInfos::try_from(vec![signer_info])?.encode_to_vec(&mut fields)?;
        Ok(ContentInfo {
            content_type: rfc5911::ID_SIGNED_DATA,
            content: Any::new(Tag::Sequence, fields)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use cms::signed_data::SignedData;
    use der::{Decode, DecodePem};

    use super::*;
    use crate::alg::HashAlg;

    fn cert(name: &str) -> Certificate {
        let path = format!("{}/tests/data/ocsp/{name}", env!("CARGO_MANIFEST_DIR"));
        let pem = std::fs::read_to_string(&path).expect(&path);
        Certificate::from_pem(pem).expect(&path)
    }

    fn signed_data(include_certificates: bool) -> Vec<u8> {
        // The chain out of the SET OF's order, so that the field must sort it.
        let (leaf, leaf2, ca) = (cert("leaf.pem"), cert("leaf2.pem"), cert("ca.pem"));
        let scheme = SignatureScheme::Ecdsa(HashAlg::Sha256);
        let identity = SignerIdentity::new(leaf, vec![leaf2, ca], scheme).expect("identity");
        let prepared = identity
            .prepare(
                rfc5911::ID_DATA,
                Some(b"content".to_vec()),
                &[7; 32],
                Vec::new(),
                include_certificates,
            )
            .expect("prepare");
        let info = prepared.finish(&[0x30, 0x00]).expect("finish");
        assert_eq!(info.content_type, rfc5911::ID_SIGNED_DATA);
        info.content.to_der().expect("DER")
    }

    #[test]
    fn the_certificates_encoded_once_are_what_signed_datas_own_encoding_writes() {
        let spliced = signed_data(true);
        let decoded = SignedData::from_der(&spliced).expect("a SignedData");
        assert_eq!(decoded.to_der().expect("re-encoded"), spliced);
        let certificates = decoded.certificates.expect("certificates");
        assert_eq!(certificates.0.len(), 3);

        let without = signed_data(false);
        let decoded = SignedData::from_der(&without).expect("a SignedData");
        assert_eq!(decoded.to_der().expect("re-encoded"), without);
        assert!(decoded.certificates.is_none());
    }
}
