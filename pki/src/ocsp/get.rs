//! The request carried in a GET path.
//!
//! ```text
//! GET {url}/{url-encoding of base-64 encoding of the DER encoding of the OCSPRequest}
//!                                                                   -- RFC 6960 A.1
//! ```
//!
//! Clients differ in what they escape: some percent-encode `+`, `/` and `=`, some send
//! them bare, some use the URL-safe alphabet (`-`, `_`) and drop the padding. All are taken.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use super::OcspError;

/// The longest path segment looked at. RFC 5019 2.1.1 caps GET requests at 255 bytes;
/// this leaves room for clients that ask about several certificates or escape everything.
pub const MAX_GET_PATH_LEN: usize = 4096;

const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::RequireNone)
    .with_decode_allow_trailing_bits(false);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);

/// Decode what follows `/ocsp/` in a GET path into the DER OCSPRequest: percent-decoding
/// (either case of hex digits), then base64 in the standard or URL-safe alphabet, padding
/// optional. Anything else, or more than [`MAX_GET_PATH_LEN`] characters, is
/// [`OcspError::Malformed`].
pub fn decode_get_path(path_after_ocsp: &str) -> Result<Vec<u8>, OcspError> {
    if path_after_ocsp.len() > MAX_GET_PATH_LEN {
        return Err(OcspError::Malformed(format!(
            "GET path of {} characters, at most {MAX_GET_PATH_LEN}",
            path_after_ocsp.len()
        )));
    }
    let text = percent_decode(path_after_ocsp.as_bytes())?;
    if text.is_empty() {
        return Err(OcspError::Malformed("empty GET path".into()));
    }
    // Padding is optional, but when present it must be complete.
    let unpadded = text.iter().rposition(|b| *b != b'=').map_or(0, |i| i + 1);
    let padding = text.len() - unpadded;
    if padding > 0 && (padding > 2 || text.len() % 4 != 0) {
        return Err(OcspError::Malformed(
            "bad base64 padding in GET path".into(),
        ));
    }
    let text = &text[..unpadded];
    let url_safe = text.iter().any(|b| matches!(b, b'-' | b'_'));
    let engine = if url_safe { &URL_SAFE } else { &STANDARD };
    engine
        .decode(text)
        .map_err(|e| OcspError::Malformed(format!("GET path is not base64: {e}")))
}

/// Replace each `%XX` by its byte; a `%` not followed by two hex digits is malformed.
fn percent_decode(input: &[u8]) -> Result<Vec<u8>, OcspError> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'%' {
            out.push(b);
            rest = tail;
            continue;
        }
        match tail {
            [h, l, after @ ..] => {
                let byte = hex_value(*h)
                    .zip(hex_value(*l))
                    .map(|(h, l)| h << 4 | l)
                    .ok_or_else(|| OcspError::Malformed("bad percent escape".into()))?;
                out.push(byte);
                rest = after;
            }
            _ => return Err(OcspError::Malformed("truncated percent escape".into())),
        }
    }
    Ok(out)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bytes whose base64 uses '+', '/' and one '=' of padding: "+/+/" then "AA==".
    const BYTES: [u8; 4] = [0xfb, 0xff, 0xbf, 0x00];

    #[test]
    fn every_spelling_decodes_to_the_same_bytes() {
        for path in [
            "+/+/AA==",
            "+/+/AA",
            "%2B%2F%2B%2FAA%3D%3D",
            "%2b%2f%2b%2fAA%3d%3d",
            "%2B/+%2FAA=%3D",
            "-_-_AA",
            "-_-_AA==",
            "-_-_AA%3D%3D",
        ] {
            assert_eq!(decode_get_path(path).as_deref(), Ok(&BYTES[..]), "{path}");
        }
    }

    #[test]
    fn bad_input_is_malformed() {
        for path in [
            "",
            "%",
            "%2",
            "%zz",
            "+/+/AA=",
            "+/+/A",
            "+/-_AA",
            "+/+/ AA",
            "+/+/AA==x",
            "+/+/AA===",
            "+/+/A=A=",
            "====",
            "%00",
        ] {
            assert!(
                matches!(decode_get_path(path), Err(OcspError::Malformed(_))),
                "{path:?}"
            );
        }
    }

    #[test]
    fn length_is_capped_before_decoding() {
        let ok = "A".repeat(MAX_GET_PATH_LEN);
        assert_eq!(decode_get_path(&ok).map(|v| v.len()), Ok(3072));
        let long = "A".repeat(MAX_GET_PATH_LEN + 1);
        assert!(matches!(
            decode_get_path(&long),
            Err(OcspError::Malformed(_))
        ));
    }
}
