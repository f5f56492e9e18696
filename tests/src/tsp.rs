//! Building TimeStampReqs and reading tokens, for tests.

use der::asn1::{Int, OctetString};
use der::{Decode, Encode};
use sha2::Digest;
use spki::AlgorithmIdentifierOwned;
use x509_tsp::{MessageImprint, TimeStampReq, TspVersion, TstInfo};

use signet_pki::tsp::status::TimeStampResp;

/// A SHA-256 TimeStampReq for `data` with `nonce`.
pub fn request(data: &[u8], nonce: u64, cert_req: bool) -> Vec<u8> {
    TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: const_oid::db::rfc5912::ID_SHA_256,
                parameters: None,
            },
            hashed_message: OctetString::new(sha2::Sha256::digest(data).to_vec()).expect("imprint"),
        },
        req_policy: None,
        nonce: Some(positive_int(nonce)),
        cert_req,
        extensions: None,
    }
    .to_der()
    .expect("encode")
}

/// `n` as a minimal positive DER INTEGER.
pub fn positive_int(n: u64) -> Int {
    let bytes = n.to_be_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(7);
    let mut v = Vec::with_capacity(9);
    if bytes[first] & 0x80 != 0 {
        v.push(0);
    }
    v.extend_from_slice(&bytes[first..]);
    Int::new(&v).expect("nonce")
}

/// The TSTInfo inside a granted TimeStampResp.
pub fn tst_info(response: &[u8]) -> TstInfo {
    let resp = TimeStampResp::from_der(response).expect("TimeStampResp");
    assert_eq!(resp.status.status, 0, "not granted: {:?}", resp.status);
    let token = resp.time_stamp_token.expect("token");
    let signed = cms::signed_data::SignedData::from_der(&token.content.to_der().expect("der"))
        .expect("SignedData");
    let econtent = signed.encap_content_info.econtent.expect("eContent");
    TstInfo::from_der(econtent.value()).expect("TSTInfo")
}

/// The serial number of a granted token, as an integer.
pub fn serial(response: &[u8]) -> u128 {
    tst_info(response)
        .serial_number
        .as_bytes()
        .iter()
        .fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
}

/// The failInfo bits of a rejection.
pub fn fail_bits(response: &[u8]) -> Vec<usize> {
    let resp = TimeStampResp::from_der(response).expect("TimeStampResp");
    assert_eq!(resp.status.status, 2, "not a rejection: {:?}", resp.status);
    assert!(resp.time_stamp_token.is_none());
    signet_pki::tsp::status::FailureInfo::bits_of(&resp.status.fail_info.expect("failInfo"))
}
