//! `POST /ocsp` and `GET /ocsp/{base64}` (RFC 6960 appendix A, RFC 5019 section 5).
//!
//! Every answer carries an OCSPResponse. Refusals of the protocol (malformedRequest,
//! unauthorized) are HTTP 200 like a signed answer; tryLater (HSM busy or down) is 503 with
//! Retry-After; failures of the HTTP layer are 413/415 with a malformedRequest body. GET
//! answers from the pre-signed cache carry RFC 5019 caching headers and honour conditional
//! requests with 304.

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, RETRY_AFTER};
use std::net::IpAddr;

use hyper::{HeaderMap, Request, StatusCode};

use signet_pki::ocsp::{self, error_response, OcspError};

use super::body::{self, BodyError};
use super::caching::{self, Freshness};
use super::problem;
use super::{App, HttpResponse, Listener, RemoteAddr};
use crate::ocsp::{Answer, Presigned};

const REQUEST: &str = "application/ocsp-request";
const RESPONSE: &str = "application/ocsp-response";

/// Whose budget live signatures come from: on the public listener, the source address's;
/// an API client is authenticated and has a rate limit of its own.
fn source(req: &Request<Incoming>, listener: Listener) -> Option<IpAddr> {
    match listener {
        Listener::Public => req.extensions().get::<RemoteAddr>().map(|a| a.0.ip()),
        Listener::Api => None,
    }
}

/// `POST /ocsp`.
pub(super) async fn post(app: &App, req: Request<Incoming>, listener: Listener) -> HttpResponse {
    let from = source(&req, listener);
    if !body::has_content_type(&req, REQUEST) {
        let resp = http_refusal(&BodyError::WrongType { expected: REQUEST });
        return body::refuse(req, resp).await;
    }
    let der = match body::read(req, app.max_body_bytes, app.body_timeout).await {
        Ok(b) => b,
        Err(e) => return http_refusal(&e),
    };
    respond(app, app.ocsp.answer(&der, from).await, None)
}

/// `GET /ocsp/{base64}`: `encoded` is what follows `/ocsp/`, still percent-encoded.
pub(super) async fn get(
    app: &App,
    req: &Request<Incoming>,
    encoded: &str,
    listener: Listener,
) -> HttpResponse {
    let der = match ocsp::decode_get_path(encoded) {
        Ok(d) => d,
        Err(e) => return respond(app, Answer::Refused(e), None),
    };
    let from = source(req, listener);
    respond(app, app.ocsp.answer(&der, from).await, Some(req.headers()))
}

fn respond(app: &App, answer: Answer, get: Option<&HeaderMap>) -> HttpResponse {
    use crate::metrics::OcspPath;
    app.metrics.ocsp_answer(match &answer {
        Answer::Presigned(_) => OcspPath::presigned,
        Answer::Live { .. } => OcspPath::live,
        Answer::Refused(OcspError::Unauthorized) => OcspPath::unauthorized,
        Answer::Refused(_) => OcspPath::refused,
    });
    match answer {
        Answer::Presigned(p) => match get {
            Some(headers) => {
                let f = freshness(&p);
                let mut resp = if caching::not_modified(headers, &f) {
                    problem::bytes(StatusCode::NOT_MODIFIED, RESPONSE, Vec::new())
                } else {
                    problem::shared(StatusCode::OK, RESPONSE, p.der.clone())
                };
                caching::set_headers(&mut resp, &f, "public, no-transform, must-revalidate");
                resp
            }
            None => problem::shared(StatusCode::OK, RESPONSE, p.der.clone()),
        },
        Answer::Live { der, has_nonce } => {
            let mut resp = problem::bytes(StatusCode::OK, RESPONSE, der);
            if has_nonce {
                resp.headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            resp
        }
        Answer::Refused(e) => refusal(&e),
    }
}

/// The unsigned answer for a refusal, with the HTTP status that fits it.
fn refusal(e: &OcspError) -> HttpResponse {
    match e {
        OcspError::TryLater | OcspError::InternalError(_) => {
            tracing::warn!(error = %e, "OCSP request not answered");
            let mut resp =
                problem::bytes(StatusCode::SERVICE_UNAVAILABLE, RESPONSE, error_response(e));
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
        _ => {
            tracing::info!(error = %e, "OCSP request refused");
            problem::bytes(StatusCode::OK, RESPONSE, error_response(e))
        }
    }
}

fn http_refusal(err: &BodyError) -> HttpResponse {
    let status = err.status();
    tracing::info!(error = %err, %status, "OCSP request refused");
    problem::bytes(
        status,
        RESPONSE,
        error_response(&OcspError::Malformed(err.to_string())),
    )
}

fn freshness(p: &Presigned) -> Freshness<'_> {
    Freshness {
        last_modified: p.this_update,
        expires: p.next_update,
        etag: &p.etag,
    }
}
