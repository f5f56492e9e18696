//! Certificate profiles: the extensions each kind of certificate carries (RFC 5280 4.2).

use std::net::IpAddr;

use const_oid::db::rfc5280;
use const_oid::db::rfc5912;
use der::asn1::{Ia5String, OctetString};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName as SanExt, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;

use super::extension;
use crate::error::Result;

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
    /// A TLS server.
    TlsServer(Vec<SubjectAltName>),
    /// A TLS client (an application calling the API).
    TlsClient(Vec<SubjectAltName>),
}

impl Profile {
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
        let usage = if ca {
            KeyUsages::KeyCertSign | KeyUsages::CRLSign
        } else {
            KeyUsages::DigitalSignature.into()
        };
        exts.push(extension(rfc5280::ID_CE_KEY_USAGE, true, &KeyUsage(usage))?);
        match self {
            Profile::Ca { .. } => {}
            Profile::TimeStamping => exts.push(extension(
                rfc5280::ID_CE_EXT_KEY_USAGE,
                true,
                &ExtendedKeyUsage(vec![rfc5912::ID_KP_TIME_STAMPING]),
            )?),
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

fn push_san(exts: &mut Vec<Extension>, names: &[SubjectAltName]) -> Result<()> {
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
