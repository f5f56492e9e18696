//! Plain HTTP answers: RFC 9457 problem details for errors outside a protocol's own format.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::HttpResponse;

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

/// An RFC 9457 `application/problem+json` response with a stable `code` (also in `type`).
pub fn json(status: StatusCode, code: &str, detail: &str) -> HttpResponse {
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
