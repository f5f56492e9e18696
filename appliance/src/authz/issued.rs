//! The OCSP responder's index as the client identity check's source of standing: the same
//! index that revocations update before they return.

use signet_services::ocsp::OcspService;
use signet_state::store::CertStatus;

use super::{IssuedStatus, Standing};

impl IssuedStatus for OcspService {
    fn standing(&self, ca: &str, serial: &[u8]) -> Standing {
        match self.status_in_index(ca, serial) {
            None => Standing::Unknown,
            Some(CertStatus::Good) => Standing::Good,
            Some(CertStatus::Hold { .. }) => Standing::Revoked {
                reason: "certificateHold".into(),
            },
            Some(CertStatus::Revoked { reason, .. }) => Standing::Revoked { reason },
        }
    }
}
