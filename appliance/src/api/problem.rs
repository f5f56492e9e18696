//! Plain HTTP answers, and [`Problem`]: every refusal outside a protocol's own format (the
//! TSA and OCSP answer in theirs) is one, and becomes an RFC 9457 problem document, with
//! `Retry-After` when a retry may succeed, here and nowhere else.

use std::borrow::Cow;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};

use signet_pki::pades::PdfError;
use signet_services::pades::PadesError;

use super::body::BodyError;
use super::HttpResponse;
use crate::hsm::HsmError;

/// A refusal on the JSON API: its status, stable code, what happened, and when to retry.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    code: Cow<'static, str>,
    detail: String,
    retry_after_secs: Option<u64>,
}

impl Problem {
    /// A refusal with `status` and `code`.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            code: code.into(),
            detail: detail.into(),
            retry_after_secs: None,
        }
    }

    /// 503: the appliance cannot do it now; a retry after `secs` may succeed.
    pub fn unavailable(code: &'static str, detail: impl Into<String>, secs: u64) -> Self {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, code, detail).retry_after(secs)
    }

    /// Say when a retry may succeed (at least a second).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }
}

impl From<Problem> for HttpResponse {
    fn from(p: Problem) -> Self {
        let mut resp = json_document(p.status, &p.code, &p.detail);
        if let Some(secs) = p.retry_after_secs {
            set_retry_after(&mut resp, secs);
        }
        resp
    }
}

/// The HSM could not sign: 503 when it is busy or gone (a retry may succeed), else 500.
impl From<&HsmError> for Problem {
    fn from(e: &HsmError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "HSM unavailable");
            Problem::unavailable("hsm-unavailable", e.to_string(), 1)
        } else {
            tracing::error!(error = %e, "signing failed");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "signing-failed",
                "the HSM could not sign",
            )
        }
    }
}

/// A request body that could not be read whole.
impl From<BodyError> for Problem {
    fn from(e: BodyError) -> Self {
        Problem::new(e.status(), e.code(), e.to_string())
    }
}

/// A PDF that was not signed: the caller's document (4xx), the HSM, a level that cannot
/// be reached now (503), or the appliance itself (500).
impl From<&PadesError> for Problem {
    fn from(e: &PadesError) -> Self {
        match e {
            PadesError::Pdf(pdf) if pdf.is_bad_input() => {
                let status = match pdf {
                    PdfError::FieldAlreadySigned(_) => StatusCode::CONFLICT,
                    PdfError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                Problem::new(status, pdf.code(), pdf.to_string())
            }
            PadesError::Hsm(e) => e.into(),
            PadesError::Timestamp(_) | PadesError::Validation(_) => {
                tracing::warn!(error = %e, "PAdES level not reachable now");
                Problem::unavailable("level-unavailable", e.to_string(), 1)
            }
            PadesError::Pdf(_) | PadesError::Internal(_) => {
                tracing::error!(error = %e, "PDF signing failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the document could not be signed",
                )
            }
        }
    }
}

/// A wait as the whole seconds Retry-After says, rounded up and at least 1.
pub fn retry_secs(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

fn set_retry_after(resp: &mut HttpResponse, secs: u64) {
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(RETRY_AFTER, v);
    }
}

/// A response with `body` of media type `content_type`.
pub fn bytes(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> HttpResponse {
    shared(status, content_type, Bytes::from(body))
}

/// A response whose body is shared (a cached, pre-signed answer).
pub fn shared(status: StatusCode, content_type: &'static str, body: Bytes) -> HttpResponse {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A text/plain response.
pub fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    bytes(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

/// A text/plain 503 (a probe's answer) saying when to ask again.
pub fn text_unavailable(body: &'static str, secs: u64) -> HttpResponse {
    let mut resp = text(StatusCode::SERVICE_UNAVAILABLE, body);
    set_retry_after(&mut resp, secs.max(1));
    resp
}

/// A plain refusal: [`Problem::new`] as a response.
pub fn json(status: StatusCode, code: &str, detail: &str) -> HttpResponse {
    Problem::new(status, code.to_owned(), detail).into()
}

/// An RFC 9457 `application/problem+json` response with a stable `code` (also in `type`).
fn json_document(status: StatusCode, code: &str, detail: &str) -> HttpResponse {
    let body = serde_json::json!({
        "type": format!("urn:signet:problem:{code}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
    });
    bytes(
        status,
        "application/problem+json",
        body.to_string().into_bytes(),
    )
}

/// An `application/json` response.
pub fn json_value(status: StatusCode, value: &serde_json::Value) -> HttpResponse {
    bytes(status, "application/json", value.to_string().into_bytes())
}

/// 405 naming the allowed method.
pub fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut resp = json(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        &format!("use {allow}"),
    );
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}
