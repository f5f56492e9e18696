//! Building the ResponseData the delegated signer signs, and the OCSPResponse around it.
//!
//! ```text
//! ResponseData ::= SEQUENCE {
//!     version             [0] EXPLICIT Version DEFAULT v1,
//!     responderID             ResponderID,
//!     producedAt              GeneralizedTime,
//!     responses               SEQUENCE OF SingleResponse,
//!     responseExtensions  [1] EXPLICIT Extensions OPTIONAL }
//! ResponderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash }
//! SingleResponse ::= SEQUENCE {
//!     certID                  CertID,
//!     certStatus              CertStatus,
//!     thisUpdate              GeneralizedTime,
//!     nextUpdate          [0] EXPLICIT GeneralizedTime OPTIONAL,
//!     singleExtensions    [1] EXPLICIT Extensions OPTIONAL }
//! CertStatus ::= CHOICE {
//!     good                [0] IMPLICIT NULL,
//!     revoked             [1] IMPLICIT RevokedInfo,
//!     unknown             [2] IMPLICIT UnknownInfo }
//! RevokedInfo ::= SEQUENCE {
//!     revocationTime          GeneralizedTime,
//!     revocationReason    [0] EXPLICIT CRLReason OPTIONAL }            -- RFC 6960 4.2.1
//! ```

use std::time::SystemTime;

use der::asn1::{BitString, OctetString};
use der::Encode;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, OcspGeneralizedTime, OcspResponse, ResponderId, ResponseData, RevokedInfo,
    SingleResponse, Version,
};

use super::{CertStatus, Nonce, OcspError, Responder, SingleAnswer};
use crate::alg::SignatureScheme;

/// A BasicOCSPResponse waiting for the delegated signer's signature.
#[derive(Clone, Debug)]
pub struct PreparedResponse {
    data: ResponseData,
    data_der: Vec<u8>,
    signature_algorithm: AlgorithmIdentifierOwned,
    scheme: SignatureScheme,
    cert: Certificate,
}

fn internal(what: &str) -> impl FnOnce(der::Error) -> OcspError + '_ {
    move |e| OcspError::InternalError(format!("{what}: {e}"))
}

fn time(t: SystemTime, what: &str) -> Result<OcspGeneralizedTime, OcspError> {
    crate::time::generalized(t)
        .map(OcspGeneralizedTime)
        .map_err(internal(what))
}

fn cert_status(status: CertStatus) -> Result<x509_ocsp::CertStatus, OcspError> {
    Ok(match status {
        CertStatus::Good => x509_ocsp::CertStatus::good(),
        CertStatus::Unknown => x509_ocsp::CertStatus::unknown(),
        CertStatus::Revoked { time: at, reason } => x509_ocsp::CertStatus::revoked(RevokedInfo {
            revocation_time: time(at, "revocationTime")?,
            revocation_reason: reason.and_then(|r| r.to_written()),
        }),
    })
}

impl Responder {
    /// Build the ResponseData: version v1 (left out, it is the default), responderID byKey,
    /// `produced_at`, one SingleResponse per answer in order with the CertID echoed as
    /// received and `this_update`/`next_update`, and the request's nonce extension echoed in
    /// responseExtensions. Times are written in whole seconds.
    ///
    /// RFC 5019 2.2.4 asks for nextUpdate; it is optional here for a caller that cannot
    /// promise one. Fails with [`OcspError::InternalError`] on no answers, a nextUpdate before
    /// thisUpdate, a time before 1970 or a scheme that cannot sign (SHA-1).
    pub fn prepare(
        &self,
        answers: &[SingleAnswer],
        produced_at: SystemTime,
        this_update: SystemTime,
        next_update: Option<SystemTime>,
        nonce: Option<&Nonce>,
    ) -> Result<PreparedResponse, OcspError> {
        if answers.is_empty() {
            return Err(OcspError::InternalError(
                "no certificate to answer for".into(),
            ));
        }
        if next_update.is_some_and(|n| n < this_update) {
            return Err(OcspError::InternalError(
                "nextUpdate is before thisUpdate".into(),
            ));
        }
        let signature_algorithm = self
            .scheme
            .algorithm_identifier()
            .map_err(|e| OcspError::InternalError(e.to_string()))?;
        let this_update = time(this_update, "thisUpdate")?;
        let next_update = next_update.map(|t| time(t, "nextUpdate")).transpose()?;
        let responses = answers
            .iter()
            .map(|a| {
                Ok(SingleResponse {
                    cert_id: a.cert.cert_id.clone(),
                    cert_status: cert_status(a.status)?,
                    this_update,
                    next_update,
                    single_extensions: None,
                })
            })
            .collect::<Result<Vec<_>, OcspError>>()?;
        let data = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(
                OctetString::new(self.key_hash.clone()).map_err(internal("responderID"))?,
            ),
            produced_at: time(produced_at, "producedAt")?,
            responses,
            response_extensions: nonce.map(|n| vec![n.extension().clone()]),
        };
        let data_der = data.to_der().map_err(internal("ResponseData"))?;
        Ok(PreparedResponse {
            data,
            data_der,
            signature_algorithm,
            scheme: self.scheme,
            cert: self.cert.clone(),
        })
    }
}

impl PreparedResponse {
    /// The DER ResponseData: the message the signer's key signs.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.data_der
    }

    /// The scheme the signer's key signs with.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    /// Attach the signature (DER for ECDSA, raw for RSA) and encode the OCSPResponse:
    /// successful, id-pkix-ocsp-basic, with the signer's certificate in `certs`.
    pub fn finish(self, signature: &[u8]) -> Result<Vec<u8>, OcspError> {
        let basic = BasicOcspResponse {
            tbs_response_data: self.data,
            signature_algorithm: self.signature_algorithm,
            signature: BitString::from_bytes(signature).map_err(internal("signature"))?,
            certs: Some(vec![self.cert]),
        };
        OcspResponse::successful(basic)
            .and_then(|r| r.to_der())
            .map_err(internal("OCSPResponse"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use const_oid::db::rfc6960::ID_PKIX_OCSP_BASIC;
    use der::Decode;
    use x509_cert::ext::pkix::CrlReason;
    use x509_ocsp::OcspResponseStatus;

    use super::*;
    use crate::ocsp::{parse_request, IssuerMatcher, RevocationReason};
    use crate::test_keys::{self, SoftKey};
    use crate::verify::PublicKey;
    use crate::x509::Profile;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// A CA, a delegated signer, and a request (with a nonce) for two of the CA's serials.
    fn setup(signer_key: &SoftKey) -> (Responder, crate::ocsp::ParsedRequest, IssuerMatcher) {
        let ca_key = test_keys::p256(1);
        let ca = test_keys::ca(&ca_key, "CN=Unit CA");
        let signer = test_keys::issue(
            &ca,
            &ca_key,
            Profile::OcspSigning,
            "CN=Unit OCSP",
            signer_key,
        );
        let responder = Responder::new(signer, signer_key.scheme());
        let der = test_keys::ocsp_request(&ca, &[&[0x10, 0x01], &[0x00, 0xc0, 0xff, 0xee]], 16);
        let parsed = parse_request(&der).expect("parses");
        (responder, parsed, IssuerMatcher::new(&ca).expect("matcher"))
    }

    fn signed(key: &SoftKey) -> (Vec<u8>, PreparedResponse, crate::ocsp::ParsedRequest) {
        let (responder, parsed, matcher) = setup(key);
        assert!(parsed.cert_ids.iter().all(|c| matcher.matches(c)));
        let answers = [
            SingleAnswer {
                cert: parsed.cert_ids[0].clone(),
                status: CertStatus::Good,
            },
            SingleAnswer {
                cert: parsed.cert_ids[1].clone(),
                status: CertStatus::Revoked {
                    time: at(1_600_000_000) + Duration::from_millis(999),
                    reason: Some(RevocationReason::KeyCompromise),
                },
            },
        ];
        let prepared = responder
            .prepare(
                &answers,
                at(1_700_000_000) + Duration::from_millis(250),
                at(1_699_999_000),
                Some(at(1_700_086_400)),
                parsed.nonce.as_ref(),
            )
            .expect("prepares");
        let sig = key.sign(prepared.signed_bytes());
        (
            prepared.clone().finish(&sig).expect("finishes"),
            prepared,
            parsed,
        )
    }

    fn basic(der: &[u8]) -> BasicOcspResponse {
        let resp = OcspResponse::from_der(der).expect("OCSPResponse");
        assert_eq!(resp.response_status, OcspResponseStatus::Successful);
        let bytes = resp.response_bytes.expect("responseBytes");
        assert_eq!(bytes.response_type, ID_PKIX_OCSP_BASIC);
        BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("BasicOCSPResponse")
    }

    fn check_signed_response(key: &SoftKey) {
        let (der, prepared, parsed) = signed(key);
        let basic = basic(&der);
        let data_der = basic.tbs_response_data.to_der().expect("encodes");
        assert_eq!(data_der, prepared.signed_bytes());
        let signer = basic.certs.as_ref().and_then(|c| c.first()).expect("cert");
        let spki = signer
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .expect("spki");
        let public = PublicKey::from_spki_der(&spki).expect("key");
        let sig = basic.signature.as_bytes().expect("octets");
        public
            .verify_message(key.scheme(), &data_der, sig)
            .expect("signature verifies");
        let mut tampered = data_der.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(public.verify_message(key.scheme(), &tampered, sig).is_err());
        assert_eq!(
            basic.signature_algorithm,
            key.scheme().algorithm_identifier().expect("alg")
        );

        let data = &basic.tbs_response_data;
        assert_eq!(
            data.responder_id,
            ResponderId::ByKey(
                OctetString::new(crate::x509::key_identifier(
                    &signer.tbs_certificate.subject_public_key_info
                ))
                .expect("octets")
            )
        );
        assert_eq!(
            data.produced_at.0.to_unix_duration().as_secs(),
            1_700_000_000
        );
        assert_eq!(data.responses.len(), 2);
        for (single, asked) in data.responses.iter().zip(&parsed.cert_ids) {
            assert_eq!(single.cert_id, asked.cert_id);
            assert_eq!(
                single.this_update.0.to_unix_duration().as_secs(),
                1_699_999_000
            );
            assert_eq!(
                single.next_update.map(|t| t.0.to_unix_duration().as_secs()),
                Some(1_700_086_400)
            );
        }
        assert_eq!(data.responses[0].cert_status, x509_ocsp::CertStatus::good());
        match data.responses[1].cert_status {
            x509_ocsp::CertStatus::Revoked(info) => {
                assert_eq!(
                    info.revocation_time.0.to_unix_duration().as_secs(),
                    1_600_000_000
                );
                assert_eq!(info.revocation_reason, Some(CrlReason::KeyCompromise));
            }
            other => panic!("not revoked: {other:?}"),
        }
        let echoed = data
            .response_extensions
            .as_ref()
            .and_then(|e| e.first())
            .expect("nonce echoed");
        let asked = parsed.nonce.as_ref().expect("nonce").extension();
        assert_eq!(echoed.to_der().expect("der"), asked.to_der().expect("der"));
    }

    #[test]
    fn p256_signed_response_verifies_and_says_what_was_asked() {
        check_signed_response(&test_keys::p256(2));
    }

    #[test]
    fn rsa_signed_response_verifies_and_says_what_was_asked() {
        check_signed_response(&test_keys::rsa());
    }

    #[test]
    fn no_nonce_no_extensions_unspecified_reason_left_out() {
        let key = test_keys::p256(2);
        let (responder, parsed, _) = setup(&key);
        let answers = [
            SingleAnswer {
                cert: parsed.cert_ids[0].clone(),
                status: CertStatus::Revoked {
                    time: at(1_600_000_000),
                    reason: Some(RevocationReason::Unspecified),
                },
            },
            SingleAnswer {
                cert: parsed.cert_ids[1].clone(),
                status: CertStatus::Unknown,
            },
        ];
        let prepared = responder
            .prepare(&answers, at(1_700_000_000), at(1_700_000_000), None, None)
            .expect("prepares");
        let der = prepared.finish(&[0x30, 0x00]).expect("finishes");
        let data = basic(&der).tbs_response_data;
        assert!(data.response_extensions.is_none());
        assert!(data.responses[0].next_update.is_none());
        match data.responses[0].cert_status {
            x509_ocsp::CertStatus::Revoked(info) => assert!(info.revocation_reason.is_none()),
            other => panic!("not revoked: {other:?}"),
        }
        assert_eq!(
            data.responses[1].cert_status,
            x509_ocsp::CertStatus::unknown()
        );
    }

    #[test]
    fn caller_mistakes_are_internal_errors() {
        let key = test_keys::p256(2);
        let (responder, parsed, _) = setup(&key);
        let good = [SingleAnswer {
            cert: parsed.cert_ids[0].clone(),
            status: CertStatus::Good,
        }];
        let t = at(1_700_000_000);
        let internal =
            |r: Result<PreparedResponse, OcspError>| matches!(r, Err(OcspError::InternalError(_)));
        assert!(internal(responder.prepare(&[], t, t, None, None)));
        assert!(internal(responder.prepare(
            &good,
            t,
            t,
            Some(at(1_600_000_000)),
            None
        )));
        assert!(internal(responder.prepare(
            &good,
            UNIX_EPOCH - Duration::from_secs(1),
            t,
            None,
            None
        )));
        let sha1 = Responder::new(
            responder.certificate().clone(),
            SignatureScheme::Ecdsa(crate::HashAlg::Sha1),
        );
        assert!(internal(sha1.prepare(&good, t, t, None, None)));
    }
}
