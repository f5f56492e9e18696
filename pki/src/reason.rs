//! Why a certificate was revoked: the CRLReason codes that CRLs and OCSP share.
//!
//! ```text
//! CRLReason ::= ENUMERATED {
//!      unspecified             (0),
//!      keyCompromise           (1),
//!      cACompromise            (2),
//!      affiliationChanged      (3),
//!      superseded              (4),
//!      cessationOfOperation    (5),
//!      certificateHold         (6),
//!           -- value 7 is not used
//!      removeFromCRL           (8),
//!      privilegeWithdrawn      (9),
//!      aACompromise           (10) }                     -- RFC 5280 5.3.1
//! ```
//!
//! `removeFromCRL` is left out: it only has a meaning in delta CRLs, which Signet does not
//! issue.

use x509_cert::ext::pkix::CrlReason;

/// A CRLReason an operator can give when revoking a certificate (RFC 5280 5.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// unspecified (0): never written out, RFC 5280 5.3.1 says the reasonCode SHOULD then be
    /// absent; CRLs and OCSP responses leave it out.
    Unspecified,
    /// keyCompromise (1).
    KeyCompromise,
    /// cACompromise (2).
    CaCompromise,
    /// affiliationChanged (3).
    AffiliationChanged,
    /// superseded (4).
    Superseded,
    /// cessationOfOperation (5).
    CessationOfOperation,
    /// certificateHold (6).
    CertificateHold,
    /// privilegeWithdrawn (9).
    PrivilegeWithdrawn,
    /// aACompromise (10).
    AaCompromise,
}

const ALL: [RevocationReason; 9] = [
    RevocationReason::Unspecified,
    RevocationReason::KeyCompromise,
    RevocationReason::CaCompromise,
    RevocationReason::AffiliationChanged,
    RevocationReason::Superseded,
    RevocationReason::CessationOfOperation,
    RevocationReason::CertificateHold,
    RevocationReason::PrivilegeWithdrawn,
    RevocationReason::AaCompromise,
];

impl RevocationReason {
    /// Every reason, in code order.
    pub fn all() -> &'static [RevocationReason] {
        &ALL
    }

    /// The CRLReason code.
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::CaCompromise => 2,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::CertificateHold => 6,
            RevocationReason::PrivilegeWithdrawn => 9,
            RevocationReason::AaCompromise => 10,
        }
    }

    /// The reason with this CRLReason code, if it is one of these.
    pub fn from_code(code: u8) -> Option<Self> {
        ALL.into_iter().find(|r| r.code() == code)
    }

    /// The name as RFC 5280 spells it, which is also how the operator writes it:
    /// `keyCompromise`, `cACompromise`, ...
    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::CaCompromise => "cACompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
            RevocationReason::CertificateHold => "certificateHold",
            RevocationReason::PrivilegeWithdrawn => "privilegeWithdrawn",
            RevocationReason::AaCompromise => "aACompromise",
        }
    }

    /// The reason named `name`, spelt exactly as [`RevocationReason::name`] gives it.
    pub fn from_name(name: &str) -> Option<Self> {
        ALL.into_iter().find(|r| r.name() == name)
    }

    /// The reason to write into a reasonCode or revocationReason, `None` for unspecified.
    pub(crate) fn to_written(self) -> Option<CrlReason> {
        Some(match self {
            RevocationReason::Unspecified => return None,
            RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
            RevocationReason::CaCompromise => CrlReason::CaCompromise,
            RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
            RevocationReason::Superseded => CrlReason::Superseded,
            RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
            RevocationReason::CertificateHold => CrlReason::CertificateHold,
            RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
            RevocationReason::AaCompromise => CrlReason::AaCompromise,
        })
    }
}

impl std::fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for r in RevocationReason::all() {
            assert_eq!(RevocationReason::from_name(r.name()), Some(*r));
            assert_eq!(RevocationReason::from_code(r.code()), Some(*r));
        }
        assert_eq!(
            RevocationReason::from_name("cACompromise"),
            Some(RevocationReason::CaCompromise)
        );
        assert_eq!(RevocationReason::from_name("KeyCompromise"), None);
        assert_eq!(RevocationReason::from_name("removeFromCRL"), None);
        assert_eq!(RevocationReason::from_code(7), None);
        assert_eq!(RevocationReason::from_code(8), None);
    }

    #[test]
    fn written_codes_match_x509_cert() {
        for r in RevocationReason::all() {
            match r.to_written() {
                None => assert_eq!(*r, RevocationReason::Unspecified),
                Some(c) => assert_eq!(c as u8, r.code()),
            }
        }
    }
}
