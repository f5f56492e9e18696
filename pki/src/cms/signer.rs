//! One signer of CMS SignedData: its certificate, chain and scheme, and the two halves of
//! making a SignerInfo around the HSM's signature.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier,
    SignerInfo, SignerInfos,
};
use const_oid::db::rfc5911;
use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Encode, Tag};
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
        Ok(SignerIdentity {
            cert,
            chain,
            scheme,
            sid,
            signing_certificate_v2,
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
            certificates: include_certificates.then(|| {
                std::iter::once(&self.cert)
                    .chain(&self.chain)
                    .cloned()
                    .collect()
            }),
            scheme: self.scheme,
            sid: self.sid.clone(),
        }
    }
}

#[derive(Clone, Debug)]
struct PublicParts {
    certificates: Option<Vec<Certificate>>,
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
        let certificates = match self.identity.certificates {
            Some(certs) => {
                let choices: Vec<CertificateChoices> = certs
                    .into_iter()
                    .map(CertificateChoices::Certificate)
                    .collect();
                Some(CertificateSet(SetOfVec::try_from(choices)?))
            }
            None => None,
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
        let signed_data = SignedData {
            version,
            digest_algorithms,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: self.content_type,
                econtent,
            },
            certificates,
            crls: None,
            signer_infos: SignerInfos::try_from(vec![signer_info])?,
        };
        Ok(ContentInfo {
            content_type: rfc5911::ID_SIGNED_DATA,
            content: Any::encode_from(&signed_data)?,
        })
    }
}
