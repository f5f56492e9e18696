//! Which PKCS#11 mechanism signs a digest for each signature scheme, checked against what
//! the token reports rather than assumed.
//!
//! The digest is always computed in software and only the private-key operation runs in
//! the token, so only the bare mechanisms are needed: CKM_RSA_PKCS over a DigestInfo built
//! here (tokens differ in which CKM_SHAxxx_RSA_PKCS they offer), CKM_RSA_PKCS_PSS over the
//! digest, CKM_ECDSA over the digest (SoftHSM has no CKM_ECDSA_SHA256 at all).
//!
//! A mechanism is usable when the key does not restrict it away (CKA_ALLOWED_MECHANISMS,
//! empty meaning "no restriction") and either the token lists it (C_GetMechanismList) or
//! the key names it explicitly. The second case is real: tpm2-pkcs11 leaves
//! CKM_RSA_PKCS_PSS out of its mechanism list until a PSS signature has been made in the
//! process, yet puts it in every RSA key's CKA_ALLOWED_MECHANISMS and signs with it.

use cryptoki::mechanism::MechanismType;

use signet_pki::SignatureScheme;

/// The mechanism that signs a digest for `scheme`; `Err` names the one that is missing.
pub(super) fn for_scheme(
    scheme: SignatureScheme,
    token: &[MechanismType],
    key_allowed: &[MechanismType],
) -> Result<MechanismType, MechanismType> {
    let wanted = match scheme {
        SignatureScheme::RsaPkcs1v15(_) => MechanismType::RSA_PKCS,
        SignatureScheme::RsaPss(_) => MechanismType::RSA_PKCS_PSS,
        SignatureScheme::Ecdsa(_) => MechanismType::ECDSA,
    };
    let not_restricted = key_allowed.is_empty() || key_allowed.contains(&wanted);
    let offered = token.contains(&wanted) || key_allowed.contains(&wanted);
    if not_restricted && offered {
        Ok(wanted)
    } else {
        Err(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_pki::HashAlg;

    const PSS: SignatureScheme = SignatureScheme::RsaPss(HashAlg::Sha256);
    const PKCS1: SignatureScheme = SignatureScheme::RsaPkcs1v15(HashAlg::Sha384);
    const ECDSA: SignatureScheme = SignatureScheme::Ecdsa(HashAlg::Sha256);

    #[test]
    fn a_listed_mechanism_is_used_when_the_key_does_not_restrict() {
        let token = [MechanismType::RSA_PKCS, MechanismType::ECDSA];
        assert_eq!(for_scheme(PKCS1, &token, &[]), Ok(MechanismType::RSA_PKCS));
        assert_eq!(for_scheme(ECDSA, &token, &[]), Ok(MechanismType::ECDSA));
        assert_eq!(
            for_scheme(PSS, &token, &[]),
            Err(MechanismType::RSA_PKCS_PSS)
        );
    }

    #[test]
    fn a_key_that_names_a_mechanism_the_token_does_not_list_may_use_it() {
        // tpm2-pkcs11: PSS in the key's CKA_ALLOWED_MECHANISMS, not in the token's list.
        let token = [MechanismType::RSA_PKCS];
        let key = [MechanismType::RSA_PKCS, MechanismType::RSA_PKCS_PSS];
        assert_eq!(
            for_scheme(PSS, &token, &key),
            Ok(MechanismType::RSA_PKCS_PSS)
        );
    }

    #[test]
    fn a_key_restricted_to_other_mechanisms_is_refused() {
        let token = [MechanismType::RSA_PKCS, MechanismType::RSA_PKCS_PSS];
        let key = [MechanismType::SHA256_RSA_PKCS];
        assert_eq!(
            for_scheme(PKCS1, &token, &key),
            Err(MechanismType::RSA_PKCS)
        );
        assert_eq!(MechanismType::RSA_PKCS.to_string(), "CKM_RSA_PKCS");
    }
}
