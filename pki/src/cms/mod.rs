//! CMS SignedData (RFC 5652) as Signet signs it: signed attributes, the ESS
//! signing-certificate-v2 (RFC 5035), and the prepare/finish split around the signature;
//! detached CAdES / PAdES signatures in [`cades`].

pub mod cades;
pub mod ess;
mod signer;

pub use signer::{PreparedSignedData, SignerIdentity};

use const_oid::ObjectIdentifier;
use der::asn1::SetOfVec;
use der::{Any, Decode, Encode};
use x509_cert::attr::Attribute;

use crate::error::Result;

/// id-aa-signingCertificateV2 (RFC 5035 section 3).
pub const ID_AA_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// id-ct-TSTInfo (RFC 3161 section 2.4.2).
pub const ID_CT_TST_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// An attribute with a single value.
pub fn attribute(oid: ObjectIdentifier, value: &impl Encode) -> Result<Attribute> {
    let mut values = SetOfVec::new();
    values.insert(Any::from_der(&value.to_der()?)?)?;
    Ok(Attribute { oid, values })
}
