//! Decoding a TimeStampReq and deciding whether the policy grants it.

use der::asn1::{AnyRef, Int, OctetString};
use der::Decode;
use x509_tsp::TimeStampReq;

use super::{TimeStampAuthority, TspError};
use crate::alg::HashAlg;

/// Decode a DER TimeStampReq; trailing bytes are refused.
pub fn parse_request(der: &[u8]) -> Result<TimeStampReq, TspError> {
    TimeStampReq::from_der(der).map_err(|e| TspError::Malformed(e.to_string()))
}

/// A request the policy grants: everything the token needs from it.
#[derive(Clone, Debug)]
pub struct AcceptedRequest {
    /// Echoed as received: RFC 3161 2.4.2 wants "the same value" in TSTInfo, parameters and all.
    pub(super) imprint: x509_tsp::MessageImprint,
    pub(super) policy: const_oid::ObjectIdentifier,
    pub(super) nonce: Option<Int>,
    pub(super) cert_req: bool,
}

impl AcceptedRequest {
    /// Whether the client asked for the TSA's certificate.
    pub fn cert_req(&self) -> bool {
        self.cert_req
    }
}

impl TimeStampAuthority {
    /// Apply the policy: hash algorithm, imprint length, requested policy, extensions.
    pub fn check(&self, req: &TimeStampReq) -> Result<AcceptedRequest, TspError> {
        let imprint = &req.message_imprint;
        let oid = imprint.hash_algorithm.oid;
        let hash = HashAlg::from_oid(oid).ok_or(TspError::BadAlg(oid))?;
        // Parameters must be absent or NULL (RFC 5754 section 2).
        if let Some(params) = &imprint.hash_algorithm.parameters {
            if AnyRef::from(params) != AnyRef::NULL {
                return Err(TspError::BadAlg(oid));
            }
        }
        self.check_imprint(hash, imprint.hashed_message.as_bytes())?;
        let policy = match req.req_policy {
            None => self.policy.default_policy,
            Some(p)
                if p == self.policy.default_policy
                    || self.policy.accepted_policies.contains(&p) =>
            {
                p
            }
            Some(p) => return Err(TspError::UnacceptedPolicy(p)),
        };
        if let Some(ext) = req.extensions.as_ref().and_then(|e| e.first()) {
            return Err(TspError::UnacceptedExtension(ext.extn_id));
        }
        if let Some(nonce) = &req.nonce {
            // A nonce is a large random integer (RFC 3161 2.4.1); a huge one is an abuse.
            if nonce.as_bytes().len() > 64 {
                return Err(TspError::BadRequest("nonce longer than 64 octets"));
            }
        }
        Ok(AcceptedRequest {
            imprint: imprint.clone(),
            policy,
            nonce: req.nonce.clone(),
            cert_req: req.cert_req,
        })
    }

    /// Grant a stamp over `digest`, made with `hash`, without a DER request: for a stamp the
    /// appliance asks of itself (a CAdES signature-time-stamp). The same hash and length
    /// checks as [`TimeStampAuthority::check`]; the default policy, no nonce, and the TSA's
    /// certificate in the token (certReq true).
    pub fn accept_imprint(
        &self,
        hash: HashAlg,
        digest: &[u8],
    ) -> Result<AcceptedRequest, TspError> {
        self.check_imprint(hash, digest)?;
        Ok(AcceptedRequest {
            imprint: x509_tsp::MessageImprint {
                hash_algorithm: hash.algorithm_identifier(),
                hashed_message: OctetString::new(digest).map_err(|_| TspError::SystemFailure)?,
            },
            policy: self.policy.default_policy,
            nonce: None,
            cert_req: true,
        })
    }

    /// Whether the policy accepts `hash`, and `hashed` is as long as its digests.
    fn check_imprint(&self, hash: HashAlg, hashed: &[u8]) -> Result<(), TspError> {
        if hash == HashAlg::Sha1 && !self.policy.allow_sha1 {
            return Err(TspError::BadAlg(hash.oid()));
        }
        if hashed.len() != hash.output_len() {
            return Err(TspError::BadDataFormat {
                expected: hash.output_len(),
                got: hashed.len(),
            });
        }
        Ok(())
    }
}
