//! Detached CAdES signatures (ETSI EN 319 122-1 baseline B-B and B-T, over RFC 5652).
//!
//! ```text
//! B-B: SignedData { eContentType id-data, no eContent, certificates: signer and issuers,
//!        SignerInfo { signedAttrs: content-type, message-digest, signing-time (not for
//!                     PAdES), signing-certificate-v2 } }
//! B-T: the same, plus the unsigned attribute
//!        id-aa-signatureTimeStampToken  -- 1.2.840.113549.1.9.16.2.14, value TimeStampToken
//!      whose imprint is over the SignerInfo's signature octets (EN 319 122-1 5.3, RFC 3161 app. A)
//! ```
//!
//! [`prepare_detached`] and [`PreparedSignedData::finish`] make the B-B signature; a TSA
//! stamps a hash of [`signature_value`]; [`add_signature_timestamp`] turns B-B into B-T.

use std::time::SystemTime;

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerInfo, SignerInfos};
use const_oid::db::rfc5911;
use const_oid::ObjectIdentifier;
use der::asn1::SetOfVec;
use der::{Any, Decode, Encode};
use x509_cert::attr::Attribute;
use x509_tsp::TstInfo;

use super::{attribute, PreparedSignedData, SignerIdentity, ID_CT_TST_INFO};
use crate::alg::HashAlg;
use crate::error::{Error, Result};

/// id-aa-signatureTimeStampToken (RFC 3161 appendix A; ETSI EN 319 122-1 5.3).
pub const ID_AA_SIGNATURE_TIME_STAMP_TOKEN: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");

/// Which family of signature the CMS is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CadesProfile {
    /// A CAdES signature: the signing-time attribute is included.
    Cades,
    /// The CMS inside a PAdES signature: no signing-time attribute, the PDF signature
    /// dictionary's /M carries the time (ETSI EN 319 142-1 5.2).
    Pades,
}

/// Prepare a detached CAdES B-B signature over content whose digest, with the hash of the
/// signer's scheme, is `content_digest`, claimed to be made at `signing_time` (whole seconds;
/// ignored for [`CadesProfile::Pades`]). The signer's certificate and issuers go in
/// `certificates`. The signature over [`PreparedSignedData::signed_bytes`] completes it.
pub fn prepare_detached(
    signer: &SignerIdentity,
    content_digest: &[u8],
    signing_time: SystemTime,
    profile: CadesProfile,
) -> Result<PreparedSignedData> {
    let scheme = signer.scheme();
    // Refuse a scheme CMS cannot name (SHA-1) now rather than after the HSM has signed.
    scheme.algorithm_identifier()?;
    if content_digest.len() != scheme.hash().output_len() {
        return Err(Error::Invalid(
            "content digest length does not match the signer's hash",
        ));
    }
    let extra = match profile {
        // SigningTime ::= Time, UTCTime through 2049 and GeneralizedTime after (RFC 5652 11.3).
        CadesProfile::Cades => vec![attribute(
            rfc5911::ID_SIGNING_TIME,
            &crate::time::rfc5280(signing_time)?,
        )?],
        CadesProfile::Pades => Vec::new(),
    };
    signer.prepare(rfc5911::ID_DATA, None, content_digest, extra, true)
}

/// The signature octets of the first SignerInfo of a DER ContentInfo: what the imprint of
/// a signature-time-stamp is computed over.
pub fn signature_value(content_info_der: &[u8]) -> Result<Vec<u8>> {
    let signed_data = single_signer(content_info_der)?;
    let signer_info = first_signer(&signed_data)?;
    Ok(signer_info.signature.as_bytes().to_vec())
}

/// Add `token_der`, a DER TimeStampToken (a ContentInfo, as a TSA's TimeStampResp carries
/// it), as the unsigned attribute id-aa-signatureTimeStampToken of the one SignerInfo of
/// the DER ContentInfo `content_info_der`, and re-encode it. The token's imprint must be
/// the digest of that SignerInfo's signature value.
///
/// Refused: trailing data, content that is not SignedData, a SignedData without exactly one
/// SignerInfo, and input that is not DER (re-encoding it would change the signed bytes).
pub fn add_signature_timestamp(content_info_der: &[u8], token_der: &[u8]) -> Result<Vec<u8>> {
    let mut signed_data = single_signer(content_info_der)?;
    let mut signer_info = first_signer(&signed_data)?.clone();
    check_token_imprint(token_der, signer_info.signature.as_bytes())?;

    let attr = Attribute {
        oid: ID_AA_SIGNATURE_TIME_STAMP_TOKEN,
        values: SetOfVec::try_from(vec![Any::from_der(token_der)?])?,
    };
    // Further stamps (from other TSAs) are further instances of the attribute.
    let mut unsigned = signer_info.unsigned_attrs.take().unwrap_or_default();
    unsigned.insert(attr)?;
    signer_info.unsigned_attrs = Some(unsigned);
    signed_data.signer_infos = SignerInfos::try_from(vec![signer_info])?;

    Ok(ContentInfo {
        content_type: rfc5911::ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data)?,
    }
    .to_der()?)
}

/// Decode a DER ContentInfo holding SignedData with exactly one SignerInfo. The input must
/// re-encode to itself, so that what is added later leaves the signed bytes alone.
fn single_signer(content_info_der: &[u8]) -> Result<SignedData> {
    let content_info = ContentInfo::from_der(content_info_der)?;
    if content_info.content_type != rfc5911::ID_SIGNED_DATA {
        return Err(Error::Invalid("ContentInfo does not hold SignedData"));
    }
    let signed_data = content_info.content.decode_as::<SignedData>()?;
    if signed_data.signer_infos.0.len() != 1 {
        return Err(Error::Invalid(
            "SignedData must have exactly one SignerInfo",
        ));
    }
    // Decoding sorts every SET OF; what was not DER would come out different.
    if content_info.to_der()? != content_info_der
        || signed_data.to_der()? != content_info.content.to_der()?
    {
        return Err(Error::Invalid("SignedData is not DER"));
    }
    Ok(signed_data)
}

fn first_signer(signed_data: &SignedData) -> Result<&SignerInfo> {
    signed_data.signer_infos.0.get(0).ok_or(Error::Invalid(
        "SignedData must have exactly one SignerInfo",
    ))
}

/// Check that `token_der` is a DER TimeStampToken whose TSTInfo stamps `signature`.
fn check_token_imprint(token_der: &[u8], signature: &[u8]) -> Result<()> {
    let token = ContentInfo::from_der(token_der)?;
    if token.content_type != rfc5911::ID_SIGNED_DATA {
        return Err(Error::Invalid("time-stamp token does not hold SignedData"));
    }
    let signed_data = token.content.decode_as::<SignedData>()?;
    let encap = &signed_data.encap_content_info;
    if encap.econtent_type != ID_CT_TST_INFO {
        return Err(Error::Invalid("time-stamp token does not hold a TSTInfo"));
    }
    let econtent = encap
        .econtent
        .as_ref()
        .ok_or(Error::Invalid("time-stamp token without its TSTInfo"))?;
    let tst_info = TstInfo::from_der(econtent.value())?;
    let imprint = &tst_info.message_imprint;
    let hash = HashAlg::from_oid(imprint.hash_algorithm.oid)
        .ok_or(Error::UnsupportedAlgorithm(imprint.hash_algorithm.oid))?;
    if hash.digest(signature) != imprint.hashed_message.as_bytes() {
        return Err(Error::Invalid(
            "time-stamp token's imprint is not over this signature value",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use cms::signed_data::SignedAttributes;
    use der::asn1::OctetString;
    use x509_cert::time::Time;
    use x509_cert::Certificate;

    use super::*;
    use crate::test_keys::{self, SoftKey};
    use crate::tsp::{Accuracy, TimeStampAuthority, TsaPolicy};
    use crate::verify::PublicKey;
    use crate::x509::Profile;

    struct Fixture {
        root: Certificate,
        signer: SignerIdentity,
        key: SoftKey,
        tsa: TimeStampAuthority,
        tsa_key: SoftKey,
    }

    fn fixture(key: SoftKey) -> Fixture {
        let root_key = test_keys::p256(0x51);
        let root = test_keys::ca(&root_key, "CN=CAdES Test Root");
        let cert = test_keys::issue(
            &root,
            &root_key,
            Profile::TlsClient(vec![]),
            "CN=CAdES Signer",
            &key,
        );
        let signer = SignerIdentity::new(cert, vec![root.clone()], key.scheme()).expect("signer");
        let tsa_key = test_keys::p256(0x52);
        let tsa_cert = test_keys::issue(
            &root,
            &root_key,
            Profile::TimeStamping,
            "CN=CAdES Test TSA",
            &tsa_key,
        );
        let tsa_signer =
            SignerIdentity::new(tsa_cert, vec![root.clone()], tsa_key.scheme()).expect("tsa");
        let tsa = TimeStampAuthority::new(
            tsa_signer,
            TsaPolicy {
                default_policy: "1.3.6.1.4.1.32473.1.1".parse().expect("oid"),
                accepted_policies: Vec::new(),
                accuracy: Accuracy {
                    seconds: 1,
                    millis: 0,
                    micros: 0,
                },
                allow_sha1: false,
            },
        );
        Fixture {
            root,
            signer,
            key,
            tsa,
            tsa_key,
        }
    }

    const DATA: &[u8] = b"a document to sign";
    // 2023-11-14T22:13:20Z.
    const WHEN: u64 = 1_700_000_000;

    fn sign(f: &Fixture, profile: CadesProfile) -> Vec<u8> {
        let digest = f.signer.scheme().hash().digest(DATA);
        let prepared = prepare_detached(
            &f.signer,
            &digest,
            UNIX_EPOCH + Duration::from_secs(WHEN),
            profile,
        )
        .expect("prepare");
        let signature = f.key.sign(prepared.signed_bytes());
        prepared
            .finish(&signature)
            .and_then(|ci| ci.to_der().map_err(Error::from))
            .expect("finish")
    }

    fn signed_data(der: &[u8]) -> SignedData {
        ContentInfo::from_der(der)
            .expect("ContentInfo")
            .content
            .decode_as()
            .expect("SignedData")
    }

    fn only_signer(sd: &SignedData) -> SignerInfo {
        assert_eq!(sd.signer_infos.0.len(), 1);
        sd.signer_infos.0.get(0).expect("signer").clone()
    }

    fn oids(attrs: &SignedAttributes) -> Vec<ObjectIdentifier> {
        let mut oids: Vec<_> = attrs.iter().map(|a| a.oid).collect();
        oids.sort();
        oids
    }

    fn stamp(f: &Fixture, signature: &[u8], serial: u64) -> Vec<u8> {
        let accepted = f
            .tsa
            .accept_imprint(HashAlg::Sha256, &HashAlg::Sha256.digest(signature))
            .expect("accept");
        let prepared = f
            .tsa
            .prepare(
                &accepted,
                UNIX_EPOCH + Duration::from_secs(WHEN + 5),
                serial,
            )
            .expect("prepare");
        let tsa_signature = f.tsa_key.sign(prepared.signed_bytes());
        prepared.finish_token(&tsa_signature).expect("token")
    }

    #[test]
    fn cades_attributes_include_signing_time_and_pades_leave_it_out() {
        let f = fixture(test_keys::p256(0x53));
        let mut expected = vec![
            rfc5911::ID_CONTENT_TYPE,
            rfc5911::ID_MESSAGE_DIGEST,
            rfc5911::ID_SIGNING_TIME,
            super::super::ID_AA_SIGNING_CERTIFICATE_V2,
        ];
        expected.sort();
        let cades = signed_data(&sign(&f, CadesProfile::Cades));
        let si = only_signer(&cades);
        let attrs = si.signed_attrs.as_ref().expect("signed attributes");
        assert_eq!(oids(attrs), expected);
        let time = attrs
            .iter()
            .find(|a| a.oid == rfc5911::ID_SIGNING_TIME)
            .and_then(|a| a.values.get(0))
            .expect("signing-time value")
            .to_der()
            .and_then(|der| Time::from_der(&der))
            .expect("Time");
        assert!(matches!(time, Time::UtcTime(_)), "UTCTime through 2049");
        assert_eq!(time.to_unix_duration(), Duration::from_secs(WHEN));
        let digest = attrs
            .iter()
            .find(|a| a.oid == rfc5911::ID_MESSAGE_DIGEST)
            .and_then(|a| a.values.get(0))
            .expect("message-digest value")
            .decode_as::<OctetString>()
            .expect("OCTET STRING");
        assert_eq!(digest.as_bytes(), HashAlg::Sha256.digest(DATA));
        assert!(si.unsigned_attrs.is_none());

        let pades = signed_data(&sign(&f, CadesProfile::Pades));
        let attrs = only_signer(&pades).signed_attrs.expect("signed attributes");
        expected.retain(|o| *o != rfc5911::ID_SIGNING_TIME);
        assert_eq!(oids(&attrs), expected);
    }

    #[test]
    fn detached_id_data_with_the_whole_chain() {
        let f = fixture(test_keys::rsa());
        let sd = signed_data(&sign(&f, CadesProfile::Cades));
        assert_eq!(sd.encap_content_info.econtent_type, rfc5911::ID_DATA);
        assert!(sd.encap_content_info.econtent.is_none(), "detached");
        assert_eq!(sd.version, cms::content_info::CmsVersion::V1);
        let certs: Vec<Certificate> = sd
            .certificates
            .expect("certificates")
            .0
            .iter()
            .map(|c| match c {
                cms::cert::CertificateChoices::Certificate(c) => c.clone(),
                _ => panic!("only certificates"),
            })
            .collect();
        assert_eq!(certs.len(), 2);
        assert!(certs.contains(f.signer.certificate()));
        assert!(certs.contains(&f.root));
        // The signature verifies over the signed attributes as DER re-encodes them.
        let si = only_signer(&signed_data(&sign(&f, CadesProfile::Cades)));
        let spki = f
            .signer
            .certificate()
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .expect("spki");
        PublicKey::from_spki_der(&spki)
            .expect("key")
            .verify_message(
                f.signer.scheme(),
                &si.signed_attrs.expect("attrs").to_der().expect("der"),
                si.signature.as_bytes(),
            )
            .expect("signature");
    }

    #[test]
    fn signing_time_after_2049_is_generalized() {
        let f = fixture(test_keys::p256(0x53));
        // 2050-01-01T00:00:00Z.
        let prepared = prepare_detached(
            &f.signer,
            &[0; 32],
            UNIX_EPOCH + Duration::from_secs(2_524_608_000),
            CadesProfile::Cades,
        )
        .expect("prepare");
        let attrs = SignedAttributes::from_der(prepared.signed_bytes()).expect("attrs");
        let time = attrs
            .iter()
            .find(|a| a.oid == rfc5911::ID_SIGNING_TIME)
            .and_then(|a| a.values.get(0))
            .expect("signing-time")
            .to_der()
            .and_then(|der| Time::from_der(&der))
            .expect("Time");
        assert!(matches!(time, Time::GeneralTime(_)));
    }

    #[test]
    fn a_digest_of_the_wrong_length_is_refused() {
        let f = fixture(test_keys::p256(0x53));
        let now = UNIX_EPOCH + Duration::from_secs(WHEN);
        for len in [0, 20, 31, 33, 48, 64] {
            assert!(
                matches!(
                    prepare_detached(&f.signer, &vec![0; len], now, CadesProfile::Cades),
                    Err(Error::Invalid(_))
                ),
                "{len} bytes"
            );
        }
        assert!(prepare_detached(&f.signer, &[0; 32], now, CadesProfile::Pades).is_ok());
        assert!(
            prepare_detached(
                &f.signer,
                &[0; 32],
                UNIX_EPOCH - Duration::from_secs(1),
                CadesProfile::Cades
            )
            .is_err(),
            "before 1970"
        );
    }

    #[test]
    fn signature_time_stamp_is_added_as_an_unsigned_attribute() {
        let f = fixture(test_keys::p256(0x53));
        let bb = sign(&f, CadesProfile::Cades);
        let signature = signature_value(&bb).expect("signature value");
        assert_eq!(
            signature,
            only_signer(&signed_data(&bb)).signature.as_bytes()
        );
        let token = stamp(&f, &signature, 1);
        let bt = add_signature_timestamp(&bb, &token).expect("B-T");

        let before = only_signer(&signed_data(&bb));
        let after = only_signer(&signed_data(&bt));
        assert_eq!(
            after.signed_attrs.to_der().expect("der"),
            before.signed_attrs.to_der().expect("der"),
            "signed attributes untouched"
        );
        assert_eq!(after.signature, before.signature);
        let unsigned = after.unsigned_attrs.expect("unsigned attributes");
        assert_eq!(unsigned.len(), 1);
        let attr = unsigned.get(0).expect("attribute");
        assert_eq!(attr.oid, ID_AA_SIGNATURE_TIME_STAMP_TOKEN);
        assert_eq!(attr.values.len(), 1);
        assert_eq!(
            attr.values.get(0).expect("value").to_der().expect("der"),
            token
        );
        assert_eq!(signature_value(&bt).expect("signature value"), signature);

        // A second stamp is a second instance of the attribute; the same token twice is refused.
        assert!(add_signature_timestamp(&bt, &token).is_err(), "duplicate");
        let twice = add_signature_timestamp(&bt, &stamp(&f, &signature, 2)).expect("second");
        let unsigned = only_signer(&signed_data(&twice))
            .unsigned_attrs
            .expect("unsigned attributes");
        assert_eq!(unsigned.len(), 2);
    }

    #[test]
    fn garbage_and_wrong_tokens_are_refused() {
        let f = fixture(test_keys::p256(0x53));
        let bb = sign(&f, CadesProfile::Pades);
        let signature = signature_value(&bb).expect("signature value");
        let token = stamp(&f, &signature, 1);

        for garbage in [
            &[][..],
            &[0x30, 0x00],
            &[0x04, 0x01, 0x00],
            b"not DER at all",
        ] {
            assert!(add_signature_timestamp(garbage, &token).is_err());
            assert!(signature_value(garbage).is_err());
            assert!(add_signature_timestamp(&bb, garbage).is_err());
        }
        let mut trailing = bb.clone();
        trailing.push(0);
        assert!(
            add_signature_timestamp(&trailing, &token).is_err(),
            "trailing data"
        );
        assert!(signature_value(&trailing).is_err(), "trailing data");
        let mut token_trailing = token.clone();
        token_trailing.push(0);
        assert!(add_signature_timestamp(&bb, &token_trailing).is_err());
        for n in 0..bb.len() {
            assert!(
                add_signature_timestamp(&bb[..n], &token).is_err(),
                "prefix of {n}"
            );
        }

        // Not DER: the certificates SET OF out of order. It decodes (sorted), but
        // re-encoding it would not give back the input.
        let sd = signed_data(&bb);
        let certs: Vec<Vec<u8>> = sd
            .certificates
            .as_ref()
            .expect("certificates")
            .0
            .iter()
            .map(|c| c.to_der().expect("der"))
            .collect();
        let in_order = [certs[0].clone(), certs[1].clone()].concat();
        let swapped = [certs[1].clone(), certs[0].clone()].concat();
        let at = bb
            .windows(in_order.len())
            .position(|w| w == in_order)
            .expect("certificates in the encoding");
        let mut unsorted = bb.clone();
        unsorted[at..at + in_order.len()].copy_from_slice(&swapped);
        assert!(ContentInfo::from_der(&unsorted).is_ok(), "still decodes");
        assert!(matches!(
            add_signature_timestamp(&unsorted, &token),
            Err(Error::Invalid(_))
        ));

        // A ContentInfo that is not SignedData.
        let data = ContentInfo {
            content_type: rfc5911::ID_DATA,
            content: Any::encode_from(&OctetString::new(DATA).expect("octets")).expect("any"),
        }
        .to_der()
        .expect("der");
        assert!(matches!(
            add_signature_timestamp(&data, &token),
            Err(Error::Invalid(_))
        ));

        // Two SignerInfos.
        let mut sd = signed_data(&bb);
        let mut second = only_signer(&sd);
        second.signature = OctetString::new(vec![1, 2, 3]).expect("octets");
        let mut infos = sd.signer_infos.0.clone();
        infos.insert(second).expect("insert");
        sd.signer_infos = SignerInfos(infos);
        let two = ContentInfo {
            content_type: rfc5911::ID_SIGNED_DATA,
            content: Any::encode_from(&sd).expect("any"),
        }
        .to_der()
        .expect("der");
        assert!(matches!(
            add_signature_timestamp(&two, &token),
            Err(Error::Invalid(_))
        ));
        assert!(signature_value(&two).is_err());

        // A token over another signature, and a B-B signature where a token belongs.
        let other = stamp(&f, b"another signature", 3);
        assert!(matches!(
            add_signature_timestamp(&bb, &other),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            add_signature_timestamp(&bb, &bb),
            Err(Error::Invalid(_))
        ));
    }
}
