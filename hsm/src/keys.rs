//! Key pairs in the token: lookup by label, the attribute check that refuses keys which
//! could leave the HSM, public key extraction, and generation.

use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use der::asn1::{BitString, ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use signet_pki::verify::PublicKey;
use signet_pki::KeyAlgorithm;

use super::error::HsmError;
use super::quirks::Quirks;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// The public side of a key pair in the token, read once and cached.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// CKA_LABEL.
    pub label: String,
    /// Kind and size.
    pub algorithm: KeyAlgorithm,
    /// The DER SubjectPublicKeyInfo.
    pub spki: SubjectPublicKeyInfoOwned,
    /// The key that verifies every signature before it leaves.
    pub public: PublicKey,
    /// Whether the private key was generated in the token.
    pub origin: KeyOrigin,
}

/// Where a private key comes from, as its attributes tell: generated in the token and never
/// out of it, or not (imported, or extractable or readable once, or still now).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// CKA_NEVER_EXTRACTABLE and CKA_ALWAYS_SENSITIVE are true: the key was generated in
    /// the token and never existed outside it.
    Generated,
    /// Either is false, or the token does not report it (read as false: what cannot be
    /// shown is not assumed): the key was imported, or was extractable or readable once.
    Imported {
        /// CKA_NEVER_EXTRACTABLE, if the token reports it.
        never_extractable: Option<bool>,
        /// CKA_ALWAYS_SENSITIVE, if the token reports it.
        always_sensitive: Option<bool>,
        /// Why the key could leave the token now (CKA_EXTRACTABLE true or CKA_SENSITIVE
        /// false), if it could: only a signing key the operator marks imported is used so.
        exposed: Option<&'static str>,
    },
}

impl KeyOrigin {
    /// The origin from the two attributes.
    pub fn from_attributes(
        never_extractable: Option<bool>,
        always_sensitive: Option<bool>,
    ) -> Self {
        match (never_extractable, always_sensitive) {
            (Some(true), Some(true)) => KeyOrigin::Generated,
            _ => KeyOrigin::Imported {
                never_extractable,
                always_sensitive,
                exposed: None,
            },
        }
    }

    /// Why the key could leave the token now, if it could.
    pub fn exposed(&self) -> Option<&'static str> {
        match self {
            KeyOrigin::Generated => None,
            KeyOrigin::Imported { exposed, .. } => *exposed,
        }
    }

    /// `generated` or `imported`.
    pub fn name(&self) -> &'static str {
        match self {
            KeyOrigin::Generated => "generated",
            KeyOrigin::Imported { .. } => "imported",
        }
    }

    /// For people: `generated in the token`, `imported (CKA_NEVER_EXTRACTABLE false)`.
    pub fn describe(&self) -> String {
        match self {
            KeyOrigin::Generated => "generated in the token".into(),
            KeyOrigin::Imported {
                never_extractable,
                always_sensitive,
                exposed,
            } => {
                let shown = |name: &str, v: &Option<bool>| match v {
                    Some(true) => None,
                    Some(false) => Some(format!("{name} false")),
                    None => Some(format!("{name} not reported")),
                };
                let why: Vec<String> = [
                    exposed.map(|e| e.to_owned()),
                    shown("CKA_NEVER_EXTRACTABLE", never_extractable),
                    shown("CKA_ALWAYS_SENSITIVE", always_sensitive),
                ]
                .into_iter()
                .flatten()
                .collect();
                format!("imported ({})", why.join(", "))
            }
        }
    }
}

/// Find the private key labelled `label`, check that it cannot leave the token now, and
/// tell where it comes from.
pub(super) fn find_private_key(
    session: &Session,
    label: &str,
) -> Result<(ObjectHandle, KeyOrigin), HsmError> {
    let found = session.find_objects(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Label(label.as_bytes().to_vec()),
    ])?;
    let handle = match found.as_slice() {
        [h] => *h,
        [] => return Err(HsmError::KeyNotFound(label.to_owned())),
        _ => {
            return Err(HsmError::UnsafeKey {
                label: label.to_owned(),
                reason: "more than one private key carries this label",
            })
        }
    };
    let origin = check_never_leaves(session, handle, label)?;
    Ok((handle, origin))
}

/// The mechanisms the key allows (CKA_ALLOWED_MECHANISMS); empty when the token does not
/// say, which PKCS#11 reads as "any".
pub(super) fn allowed_mechanisms(
    session: &Session,
    key: ObjectHandle,
) -> Result<Vec<MechanismType>, HsmError> {
    let attrs = session.get_attributes(key, &[AttributeType::AllowedMechanisms])?;
    Ok(attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::AllowedMechanisms(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default())
}

/// Where the key comes from ([`KeyOrigin`]): a key extractable or not sensitive now is
/// `Imported` with `exposed` saying so ([`super::Hsm::key_blocking`] refuses it; only a
/// signing key the operator marks imported is taken that way). A token that does not
/// report CKA_EXTRACTABLE and CKA_SENSITIVE is refused: nothing can be said of its keys.
fn check_never_leaves(
    session: &Session,
    key: ObjectHandle,
    label: &str,
) -> Result<KeyOrigin, HsmError> {
    let attrs = session.get_attributes(
        key,
        &[
            AttributeType::Extractable,
            AttributeType::Sensitive,
            AttributeType::NeverExtractable,
            AttributeType::AlwaysSensitive,
        ],
    )?;
    let mut extractable = None;
    let mut sensitive = None;
    let mut never_extractable = None;
    let mut always_sensitive = None;
    for a in attrs {
        match a {
            Attribute::Extractable(v) => extractable = Some(v),
            Attribute::Sensitive(v) => sensitive = Some(v),
            Attribute::NeverExtractable(v) => never_extractable = Some(v),
            Attribute::AlwaysSensitive(v) => always_sensitive = Some(v),
            _ => {}
        }
    }
    let unsafe_key = |reason| HsmError::UnsafeKey {
        label: label.to_owned(),
        reason,
    };
    let exposed = match (extractable, sensitive) {
        (Some(false), Some(true)) => {
            return Ok(KeyOrigin::from_attributes(
                never_extractable,
                always_sensitive,
            ))
        }
        (Some(true), _) => EXTRACTABLE,
        (_, Some(false)) => NOT_SENSITIVE,
        _ => {
            return Err(unsafe_key(
                "the token does not report CKA_EXTRACTABLE and CKA_SENSITIVE",
            ))
        }
    };
    Ok(KeyOrigin::Imported {
        never_extractable,
        always_sensitive,
        exposed: Some(exposed),
    })
}

/// Why an extractable key is refused (and how it is described).
const EXTRACTABLE: &str = "CKA_EXTRACTABLE true";
/// Why a key that is not sensitive is refused (and how it is described).
const NOT_SENSITIVE: &str = "CKA_SENSITIVE false";

/// The refusal of a key that could leave the token now.
pub(super) fn refuse_exposed(label: &str, origin: KeyOrigin) -> Result<(), HsmError> {
    let reason = match origin.exposed() {
        None => return Ok(()),
        Some(EXTRACTABLE) => {
            "CKA_EXTRACTABLE is true: the key could leave the HSM; generate a new key inside \
             the token (or, for a signing key, mark it `imported = true`)"
        }
        Some(_) => {
            "CKA_SENSITIVE is false: the key could be read out in clear; generate a new key \
             inside the token (or, for a signing key, mark it `imported = true`)"
        }
    };
    Err(HsmError::UnsafeKey {
        label: label.to_owned(),
        reason,
    })
}

/// Read the public key labelled `label`, whose private key has `origin`.
pub(super) fn read_public_key(
    session: &Session,
    label: &str,
    origin: KeyOrigin,
) -> Result<KeyInfo, HsmError> {
    let spki = read_spki(session, label)?;
    // The token's keys check every signature they make: worth a table each.
    let public = PublicKey::from_spki_der(&spki.to_der().map_err(signet_pki::Error::from)?)?
        .for_many_checks()?;
    Ok(KeyInfo {
        label: label.to_owned(),
        algorithm: public.algorithm(),
        spki,
        public,
        origin,
    })
}

/// The SubjectPublicKeyInfo of the public key labelled `label`, from its attributes.
fn read_spki(session: &Session, label: &str) -> Result<SubjectPublicKeyInfoOwned, HsmError> {
    let found = session.find_objects(&[
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Label(label.as_bytes().to_vec()),
    ])?;
    let handle = *found
        .first()
        .ok_or_else(|| HsmError::KeyNotFound(label.to_owned()))?;
    let attrs = session.get_attributes(
        handle,
        &[
            AttributeType::KeyType,
            AttributeType::Modulus,
            AttributeType::PublicExponent,
            AttributeType::EcParams,
            AttributeType::EcPoint,
        ],
    )?;
    let (mut key_type, mut modulus, mut exponent, mut params, mut point) =
        (None, None, None, None, None);
    for a in attrs {
        match a {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::Modulus(v) => modulus = Some(v),
            Attribute::PublicExponent(v) => exponent = Some(v),
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            _ => {}
        }
    }
    let unsupported = |reason: &str| HsmError::UnsupportedKey {
        label: label.to_owned(),
        reason: reason.to_owned(),
    };
    match key_type {
        Some(KeyType::RSA) => {
            let (n, e) = modulus
                .zip(exponent)
                .ok_or_else(|| unsupported("RSA key without modulus"))?;
            rsa_spki(&n, &e)
        }
        Some(KeyType::EC) => {
            let (params, point) = params
                .zip(point)
                .ok_or_else(|| unsupported("EC key without point"))?;
            ec_spki(&params, &point).map_err(|_| unsupported("EC parameters or point"))
        }
        _ => Err(unsupported("only RSA and EC keys are used")),
    }
}

/// After a reconnect: the private key under `key`'s label is still fit to use, and the
/// public key under it is the one read (and checked against its certificate) before.
pub(super) fn check_same_key(session: &Session, key: &KeyInfo) -> Result<(), HsmError> {
    find_private_key(session, &key.label)?;
    // The SPKI alone: a verification table (tens of milliseconds) is not needed to compare.
    if read_spki(session, &key.label)? == key.spki {
        Ok(())
    } else {
        Err(HsmError::KeyChanged(key.label.clone()))
    }
}

#[derive(der::Sequence)]
struct RsaPublicKeyDer<'a> {
    modulus: der::asn1::UintRef<'a>,
    public_exponent: der::asn1::UintRef<'a>,
}

fn rsa_spki(n: &[u8], e: &[u8]) -> Result<SubjectPublicKeyInfoOwned, HsmError> {
    let key = RsaPublicKeyDer {
        modulus: der::asn1::UintRef::new(n).map_err(signet_pki::Error::from)?,
        public_exponent: der::asn1::UintRef::new(e).map_err(signet_pki::Error::from)?,
    }
    .to_der()
    .map_err(signet_pki::Error::from)?;
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        subject_public_key: BitString::from_bytes(&key).map_err(signet_pki::Error::from)?,
    })
}

fn ec_spki(params: &[u8], point: &[u8]) -> der::Result<SubjectPublicKeyInfoOwned> {
    // CKA_EC_POINT is the DER OCTET STRING around the SEC1 point (PKCS#11 2.40 section 2.3.3);
    // some tokens hand out the bare point.
    let raw = match OctetString::from_der(point) {
        Ok(os) => os.as_bytes().to_vec(),
        Err(_) => point.to_vec(),
    };
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: EC_PUBLIC_KEY,
            parameters: Some(Any::from_der(params)?),
        },
        subject_public_key: BitString::from_bytes(&raw)?,
    })
}

/// Generate a key pair inside the token: private key sensitive, never extractable.
pub(super) fn generate(
    session: &Session,
    label: &str,
    algorithm: KeyAlgorithm,
    id: &[u8],
    quirks: Quirks,
) -> Result<(), HsmError> {
    let exists = !session
        .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])?
        .is_empty();
    if exists {
        return Err(HsmError::KeyExists(label.to_owned()));
    }
    let common = |private: bool| {
        vec![
            Attribute::Token(true),
            Attribute::Private(private),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ]
    };
    // No CKA_VERIFY on the public key: Signet verifies in software, and tpm2-pkcs11 refuses
    // a template that sets it ("User specified and TPM specified attr mismatch: 0x10a").
    let mut public = common(false);
    let mut private = common(true);
    let rsa = matches!(algorithm, KeyAlgorithm::Rsa(_));
    private.extend([
        Attribute::Sign(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Decrypt(rsa && quirks.rsa_sign_needs_decrypt),
        Attribute::Derive(false),
    ]);
    let mechanism = match algorithm {
        KeyAlgorithm::Rsa(bits) => {
            public.push(Attribute::ModulusBits((bits as u64).into()));
            public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            Mechanism::RsaPkcsKeyPairGen
        }
        KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
            let curve = if algorithm == KeyAlgorithm::EcP256 {
                SECP256R1
            } else {
                SECP384R1
            };
            public.push(Attribute::EcParams(
                curve.to_der().map_err(signet_pki::Error::from)?,
            ));
            Mechanism::EccKeyPairGen
        }
    };
    session.generate_key_pair(&mechanism, &public, &private)?;
    Ok(())
}

/// Labels of every private key in the token, sorted.
pub(super) fn private_key_labels(session: &Session) -> Result<Vec<String>, HsmError> {
    let found = session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])?;
    let mut labels = Vec::new();
    for h in found {
        for a in session.get_attributes(h, &[AttributeType::Label])? {
            if let Attribute::Label(l) = a {
                labels.push(String::from_utf8_lossy(&l).into_owned());
            }
        }
    }
    labels.sort();
    Ok(labels)
}

/// Destroy every object labelled `label` (key ceremonies with `--force`).
pub(super) fn destroy(session: &Session, label: &str) -> Result<usize, HsmError> {
    let found = session.find_objects(&[Attribute::Label(label.as_bytes().to_vec())])?;
    for h in &found {
        session.destroy_object(*h)?;
    }
    Ok(found.len())
}
