//! Reading a request body under a size cap and a deadline.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Request;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Content-Type is not the one the route speaks.
    #[error("content type must be {expected}")]
    WrongType {
        /// The media type the route accepts.
        expected: &'static str,
    },
    /// Larger than the limit (by Content-Length, or while streaming).
    #[error("body larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The client stopped sending or sent a broken body.
    #[error("incomplete body")]
    Incomplete,
    /// The body did not arrive in time.
    #[error("body not received in time")]
    Timeout,
}

/// Whether the request's Content-Type is `expected` (parameters ignored, case-insensitive).
pub fn has_content_type(req: &Request<Incoming>, expected: &str) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// Read the whole body, refusing more than `limit` bytes and taking no longer than `deadline`.
pub async fn read(req: Request<Incoming>, limit: usize, deadline: Duration) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let collect = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(deadline, collect).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge { limit }),
        Ok(Err(_)) => Err(BodyError::Incomplete),
    }
}
