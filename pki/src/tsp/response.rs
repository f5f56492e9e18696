//! Building the TSTInfo and its SignedData around the HSM's signature.
//!
//! ```text
//! TSTInfo ::= SEQUENCE { version INTEGER { v1(1) }, policy TSAPolicyId,
//!     messageImprint MessageImprint, serialNumber INTEGER, genTime GeneralizedTime,
//!     accuracy Accuracy OPTIONAL, ordering BOOLEAN DEFAULT FALSE, nonce INTEGER OPTIONAL,
//!     tsa [0] GeneralName OPTIONAL, extensions [1] IMPLICIT Extensions OPTIONAL }  -- 2.4.2
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use der::asn1::{GeneralizedTime, Int};
use der::Encode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_tsp::{TspVersion, TstInfo};

use super::status::{PkiStatus, StatusInfo, TimeStampResp};
use super::{AcceptedRequest, TimeStampAuthority, TspError};
use crate::alg::SignatureScheme;
use crate::cms::{PreparedSignedData, ID_CT_TST_INFO};

/// A token waiting for the TSA key's signature.
#[derive(Debug)]
pub struct PreparedToken {
    signed_data: PreparedSignedData,
}

impl TimeStampAuthority {
    /// Build the TSTInfo at `gen_time` with `serial`, and the digest to sign.
    /// genTime is truncated to whole seconds; the stated accuracy covers the rest.
    pub fn prepare(
        &self,
        req: &AcceptedRequest,
        gen_time: SystemTime,
        serial: u64,
    ) -> Result<PreparedToken, TspError> {
        let since_epoch = gen_time
            .duration_since(UNIX_EPOCH)
            .map_err(|_| TspError::TimeNotAvailable)?;
        let gen_time = GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(
            since_epoch.as_secs(),
        ))
        .map_err(|_| TspError::TimeNotAvailable)?;
        let accuracy = self.policy.accuracy;
        let tst_info = TstInfo {
            version: TspVersion::V1,
            policy: req.policy,
            message_imprint: req.imprint.clone(),
            serial_number: serial_int(serial)?,
            gen_time,
            accuracy: Some(x509_tsp::Accuracy {
                seconds: (accuracy.seconds > 0).then_some(accuracy.seconds),
                millis: (accuracy.millis > 0).then_some(accuracy.millis as i16),
                micros: (accuracy.micros > 0).then_some(accuracy.micros as i16),
            }),
            ordering: false,
            nonce: req.nonce.clone(),
            tsa: Some(GeneralName::DirectoryName(
                self.signer.certificate().tbs_certificate.subject.clone(),
            )),
            extensions: None,
        };
        let tst_der = tst_info.to_der().map_err(|_| TspError::SystemFailure)?;
        let content_digest = self.signer.scheme().hash().digest(&tst_der);
        let signed_data = self
            .signer
            .prepare(
                ID_CT_TST_INFO,
                Some(tst_der),
                &content_digest,
                Vec::new(),
                req.cert_req,
            )
            .map_err(|_| TspError::SystemFailure)?;
        Ok(PreparedToken { signed_data })
    }
}

impl PreparedToken {
    /// The message the TSA key signs (the DER signed attributes).
    pub fn signed_bytes(&self) -> &[u8] {
        self.signed_data.signed_bytes()
    }

    /// The scheme the TSA key signs with.
    pub fn scheme(&self) -> SignatureScheme {
        self.signed_data.scheme()
    }

    /// Attach the signature and encode the granted TimeStampResp.
    pub fn finish(self, signature: &[u8]) -> Result<Vec<u8>, TspError> {
        let token = self
            .signed_data
            .finish(signature)
            .map_err(|_| TspError::SystemFailure)?;
        TimeStampResp {
            status: StatusInfo {
                status: PkiStatus::Granted as u8,
                status_string: None,
                fail_info: None,
            },
            time_stamp_token: Some(token),
        }
        .to_der()
        .map_err(|_| TspError::SystemFailure)
    }
}

/// A serial number as a positive DER INTEGER.
fn serial_int(serial: u64) -> Result<Int, TspError> {
    let bytes = serial.to_be_bytes();
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    let mut minimal = Vec::with_capacity(9);
    if bytes[first] & 0x80 != 0 {
        minimal.push(0);
    }
    minimal.extend_from_slice(&bytes[first..]);
    Int::new(&minimal).map_err(|_| TspError::SystemFailure)
}
