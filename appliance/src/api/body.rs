//! Reading a request body under a size cap and a deadline.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
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

impl BodyError {
    /// The one HTTP status each body failure gets, whatever protocol answers it.
    pub fn status(&self) -> hyper::StatusCode {
        use hyper::StatusCode;
        match self {
            BodyError::WrongType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Incomplete | BodyError::Timeout => StatusCode::BAD_REQUEST,
        }
    }

    /// Its problem code on the JSON API.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::WrongType { .. } => "unsupported-media-type",
            BodyError::TooLarge { .. } => "body-too-large",
            BodyError::Incomplete | BodyError::Timeout => "bad-body",
        }
    }
}

/// Whether the request's Content-Type is `expected` (parameters ignored, case-insensitive).
pub fn has_content_type(req: &Request<Incoming>, expected: &str) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// Up to this much of an oversized body is read and discarded before the 413 goes out, so
/// that an HTTP/2 client sees the answer instead of a reset stream.
const DRAIN_CAP: usize = 1024 * 1024;

/// Read the whole body, refusing more than `limit` bytes and taking no longer than `deadline`.
pub async fn read(
    req: Request<Incoming>,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = req.into_body();
    if let Some(n) = declared.filter(|n| *n > limit as u64) {
        if n <= DRAIN_CAP as u64 {
            let _ = tokio::time::timeout(deadline, drain(&mut body)).await;
        }
        return Err(BodyError::TooLarge { limit });
    }
    let read_all = async {
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyError::Incomplete)?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    drain(&mut body).await;
                    return Err(BodyError::TooLarge { limit });
                }
                buf.extend_from_slice(&data);
                crate::audit::context::feed(&data);
            }
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(deadline, read_all)
        .await
        .unwrap_or(Err(BodyError::Timeout))
}

/// Answer `resp` to a request whose body was not read: read (and discard) up to
/// [`DRAIN_CAP`] bytes of it first, briefly, so that an HTTP/2 client sees the answer instead
/// of a reset stream.
pub async fn refuse(req: Request<Incoming>, resp: super::HttpResponse) -> super::HttpResponse {
    // A client that sent `Expect: 100-continue` waits for this answer before its body:
    // reading would make hyper invite the body, and the refusal would race the upload.
    let expects_continue = req
        .headers()
        .get(hyper::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects_continue {
        return resp;
    }
    let mut body = req.into_body();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain(&mut body)).await;
    resp
}

/// Read and discard up to [`DRAIN_CAP`] bytes.
pub(super) async fn drain(body: &mut Incoming) {
    let mut seen = 0usize;
    while seen < DRAIN_CAP {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BodyError;

    #[test]
    fn each_body_failure_has_one_status_for_every_protocol() {
        let cases = [
            (
                BodyError::WrongType { expected: "x/y" },
                415,
                "unsupported-media-type",
            ),
            (BodyError::TooLarge { limit: 1 }, 413, "body-too-large"),
            (BodyError::Incomplete, 400, "bad-body"),
            (BodyError::Timeout, 400, "bad-body"),
        ];
        for (e, status, code) in cases {
            assert_eq!((e.status().as_u16(), e.code()), (status, code), "{e}");
        }
    }
}
