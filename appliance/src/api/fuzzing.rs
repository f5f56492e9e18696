//! The API's parsers of outside bytes, reachable without a live request, for the fuzz targets:
//! each parses exactly as its route does and reports only whether the input was taken.

use super::{cms, pdf, sign};

/// A `POST /v1/sign/{key}` body: the JSON, then its digest.
pub fn sign_body(json: &[u8]) -> Result<(), String> {
    let req: sign::SignRequest = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let _ = req.scheme;
    sign::decode_digest(&req.digest, req.digest_algorithm).map_err(|(_, detail)| detail)?;
    Ok(())
}

/// A `POST /v1/sign/{key}/batch` body: the JSON, then every digest.
pub fn batch_body(json: &[u8]) -> Result<(), String> {
    let req: sign::BatchRequest = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let _ = req.scheme;
    for digest in &req.digests {
        sign::decode_digest(digest, req.digest_algorithm).map_err(|(_, detail)| detail)?;
    }
    Ok(())
}

/// A `POST /v1/cms/{key}` JSON body (a digest to sign).
pub fn cms_digest_body(json: &[u8]) -> Result<(), String> {
    let req: cms::DigestRequest = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    sign::decode_digest(&req.digest, req.digest_algorithm).map_err(|(_, detail)| detail)?;
    Ok(())
}

/// The query string of `POST /v1/cms/{key}`.
pub fn cms_query(query: &str) -> Result<(), String> {
    cms::parse_query(query).map(|_| ())
}

/// The query string of `POST /v1/pdf/{key}`.
pub fn pdf_query(query: &str) -> Result<(), String> {
    pdf::parse_query(query).map(|_| ())
}
