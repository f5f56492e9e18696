//! Building the TSTInfo and its SignedData around the HSM's signature.
//!
//! ```text
//! TSTInfo ::= SEQUENCE { version INTEGER { v1(1) }, policy TSAPolicyId,
//!     messageImprint MessageImprint, serialNumber INTEGER, genTime GeneralizedTime,
//!     accuracy Accuracy OPTIONAL, ordering BOOLEAN DEFAULT FALSE, nonce INTEGER OPTIONAL,
//!     tsa [0] GeneralName OPTIONAL, extensions [1] IMPLICIT Extensions OPTIONAL }  -- 2.4.2
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use cms::content_info::ContentInfo;
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
        TimeStampResp {
            status: StatusInfo {
                status: PkiStatus::Granted as u8,
                status_string: None,
                fail_info: None,
            },
            time_stamp_token: Some(self.token(signature)?),
        }
        .to_der()
        .map_err(|_| TspError::SystemFailure)
    }

    /// Attach the signature and encode the bare TimeStampToken (the ContentInfo that
    /// [`PreparedToken::finish`] wraps in a TimeStampResp): what an unsigned attribute
    /// such as a CAdES signature-time-stamp carries.
    pub fn finish_token(self, signature: &[u8]) -> Result<Vec<u8>, TspError> {
        self.token(signature)?
            .to_der()
            .map_err(|_| TspError::SystemFailure)
    }

    fn token(self, signature: &[u8]) -> Result<ContentInfo, TspError> {
        self.signed_data
            .finish(signature)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use der::Decode;

    use super::*;
    use crate::alg::HashAlg;
    use crate::cms::SignerIdentity;
    use crate::test_keys;
    use crate::tsp::{Accuracy, TsaPolicy};
    use crate::x509::Profile;

    fn tsa(allow_sha1: bool) -> (TimeStampAuthority, test_keys::SoftKey) {
        let root_key = test_keys::p256(0x61);
        let root = test_keys::ca(&root_key, "CN=TSP Test Root");
        let key = test_keys::p256(0x62);
        let cert = test_keys::issue(&root, &root_key, Profile::TimeStamping, "CN=TSP", &key);
        let signer = SignerIdentity::new(cert, vec![root], key.scheme()).expect("signer");
        let policy = TsaPolicy {
            default_policy: "1.3.6.1.4.1.32473.1.1".parse().expect("oid"),
            accepted_policies: Vec::new(),
            accuracy: Accuracy {
                seconds: 1,
                millis: 0,
                micros: 0,
            },
            allow_sha1,
        };
        (TimeStampAuthority::new(signer, policy), key)
    }

    #[test]
    fn accept_imprint_applies_the_request_checks() {
        let (strict, _) = tsa(false);
        let (legacy, _) = tsa(true);
        assert!(matches!(
            strict.accept_imprint(HashAlg::Sha1, &[0; 20]),
            Err(TspError::BadAlg(_))
        ));
        assert!(legacy.accept_imprint(HashAlg::Sha1, &[0; 20]).is_ok());
        assert_eq!(
            strict.accept_imprint(HashAlg::Sha256, &[0; 48]).err(),
            Some(TspError::BadDataFormat {
                expected: 32,
                got: 48
            })
        );
        let accepted = strict
            .accept_imprint(HashAlg::Sha384, &[7; 48])
            .expect("accepted");
        assert!(accepted.cert_req());
        assert!(accepted.nonce.is_none());
        assert_eq!(accepted.policy, strict.policy().default_policy);
        assert_eq!(accepted.imprint.hash_algorithm.oid, HashAlg::Sha384.oid());
        assert!(accepted.imprint.hash_algorithm.parameters.is_none());
        assert_eq!(accepted.imprint.hashed_message.as_bytes(), [7; 48]);
    }

    #[test]
    fn finish_token_is_the_token_of_the_response() {
        let (authority, key) = tsa(false);
        let accepted = authority
            .accept_imprint(HashAlg::Sha256, &HashAlg::Sha256.digest(b"x"))
            .expect("accepted");
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let prepared = authority.prepare(&accepted, at, 9).expect("prepare");
        let signature = key.sign(prepared.signed_bytes());
        let resp = prepared.finish(&signature).expect("response");
        let prepared = authority.prepare(&accepted, at, 9).expect("prepare");
        let token = prepared.finish_token(&signature).expect("token");
        let inner = TimeStampResp::from_der(&resp)
            .expect("TimeStampResp")
            .time_stamp_token
            .expect("granted")
            .to_der()
            .expect("der");
        assert_eq!(token, inner);
        let sd: cms::signed_data::SignedData = ContentInfo::from_der(&token)
            .expect("ContentInfo")
            .content
            .decode_as()
            .expect("SignedData");
        assert!(sd.certificates.is_some(), "certReq is true");
    }
}
