//! Signing a digest in the token. Every mechanism takes a digest computed in software, so
//! the same code works on tokens without combined hash-and-sign mechanisms (SoftHSM has no
//! CKM_ECDSA_SHA256); which mechanism is checked against the token in [`super::mechanism`].

use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};

use signet_pki::{ecdsa_sig, HashAlg, SignatureScheme};

use super::error::HsmError;
use super::mechanism;
use super::session::WorkerSession;

/// Sign `digest` with the private key labelled `label`; ECDSA signatures come back as DER.
pub(super) fn sign_digest(
    worker: &mut WorkerSession,
    label: &str,
    scheme: SignatureScheme,
    digest: &[u8],
) -> Result<Vec<u8>, HsmError> {
    let (mechanism, data) = match scheme {
        SignatureScheme::RsaPkcs1v15(h) => {
            // CKM_RSA_PKCS signs a DER DigestInfo (PKCS#11 2.40 section 2.1.6).
            let mut info = h.digest_info_prefix().to_vec();
            info.extend_from_slice(digest);
            (Mechanism::RsaPkcs, info)
        }
        SignatureScheme::RsaPss(h) => (Mechanism::RsaPkcsPss(pss_params(h)), digest.to_vec()),
        SignatureScheme::Ecdsa(_) => (Mechanism::Ecdsa, digest.to_vec()),
    };
    let started = std::time::Instant::now();
    let raw = worker.with_retry(|w| {
        let key = w.signing_key(label)?;
        let offered = w.token_mechanisms()?;
        mechanism::for_scheme(scheme, &offered, &key.allowed).map_err(|missing| {
            HsmError::UnsupportedKey {
                label: label.to_owned(),
                reason: format!("the token offers no {missing} for this key ({scheme:?})"),
            }
        })?;
        Ok(w.session()?.sign(&mechanism, key.handle, &data)?)
    })?;
    super::metrics::observe("sign", mechanism_name(scheme), started.elapsed());
    match scheme {
        SignatureScheme::Ecdsa(_) => Ok(ecdsa_sig::raw_to_der(&raw)?),
        _ => Ok(raw),
    }
}

/// The PKCS#11 name of the mechanism `scheme` signs with (a metrics label).
fn mechanism_name(scheme: SignatureScheme) -> &'static str {
    match scheme {
        SignatureScheme::RsaPkcs1v15(_) => "CKM_RSA_PKCS",
        SignatureScheme::RsaPss(_) => "CKM_RSA_PKCS_PSS",
        SignatureScheme::Ecdsa(_) => "CKM_ECDSA",
    }
}

fn pss_params(hash: HashAlg) -> PkcsPssParams {
    let (hash_alg, mgf) = match hash {
        HashAlg::Sha1 => (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1),
        HashAlg::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
        HashAlg::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
        HashAlg::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
    };
    PkcsPssParams {
        hash_alg,
        mgf,
        s_len: (hash.output_len() as u64).into(),
    }
}
