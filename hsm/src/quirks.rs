//! What some PKCS#11 implementations need beyond the standard, found by running the
//! end-to-end suite against them. Each quirk names the token that needs it.

use cryptoki::context::Pkcs11;

/// tpm2-pkcs11's C_GetInfo manufacturer.
const TPM2_PKCS11: &str = "tpm2-software.github.io";

/// The quirks of the loaded module.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Quirks {
    /// tpm2-pkcs11 makes raw RSA (CKM_RSA_PKCS over a DigestInfo, CKM_RSA_X_509) out of
    /// TPM2_RSA_Decrypt, so an RSA key that signs digests computed elsewhere must be
    /// decrypt-capable: without CKA_DECRYPT, C_Sign fails ("Esys_RSA_Decrypt: inconsistent
    /// attributes", CKR_GENERAL_ERROR). Signet never offers decryption with any key.
    pub rsa_sign_needs_decrypt: bool,
}

impl Quirks {
    /// The quirks of the module behind `ctx`, by its C_GetInfo manufacturer.
    pub(super) fn of(ctx: &Pkcs11) -> Quirks {
        let manufacturer = ctx
            .get_library_info()
            .map(|i| i.manufacturer_id().trim_end().to_owned())
            .unwrap_or_default();
        Quirks::for_manufacturer(&manufacturer)
    }

    fn for_manufacturer(manufacturer: &str) -> Quirks {
        Quirks {
            rsa_sign_needs_decrypt: manufacturer == TPM2_PKCS11,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tpm2_pkcs11_gets_decrypt_capable_rsa_keys() {
        assert!(Quirks::for_manufacturer("tpm2-software.github.io").rsa_sign_needs_decrypt);
        assert_eq!(Quirks::for_manufacturer("SoftHSM"), Quirks::default());
        assert_eq!(Quirks::for_manufacturer(""), Quirks::default());
    }
}
