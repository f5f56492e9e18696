//! `POST /v1/tsa`: RFC 3161 over HTTP (section 3.4). Every answer carries a TimeStampResp:
//! a rejection is an HTTP 200 like a grant (the exchange itself succeeded), except for
//! failures of the HTTP layer (415, 413, 400) and of the appliance itself (503).
//!
//! Why 503 for `systemFailure` (the HSM lost, busy or slow): RFC 3161 says nothing of HTTP
//! statuses beyond the media types, so a TSP client reads the TimeStampResp in the body,
//! while load balancers and HTTP retry logic only see the status: 503 with Retry-After sends the request to another node or back later, where
//! a 200 would count as served. The body still says `rejection`/`systemFailure`.

use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Request, StatusCode};

use signet_pki::tsp::{rejection, TspError};

use super::body::{self, BodyError};
use super::problem;
use super::{App, HttpResponse};

const QUERY: &str = "application/timestamp-query";
const REPLY: &str = "application/timestamp-reply";

pub(super) async fn handle(app: &App, req: Request<Incoming>) -> HttpResponse {
    if !body::has_content_type(&req, QUERY) {
        let resp = reply_error(&BodyError::WrongType { expected: QUERY });
        return body::refuse(req, resp).await;
    }
    let request = match body::read(req, app.max_body_bytes, app.body_timeout).await {
        Ok(b) => b,
        Err(e) => {
            app.metrics.stamp(Some("badRequest"));
            return reply_error(&e);
        }
    };
    let stamped = app.tsa.stamp(&request).await;
    app.metrics.stamp(stamped.as_ref().err().map(failure_name));
    match stamped {
        Ok(granted) => problem::bytes(StatusCode::OK, REPLY, granted),
        Err(e @ TspError::SystemFailure) => {
            let mut resp = problem::bytes(StatusCode::SERVICE_UNAVAILABLE, REPLY, rejection(&e));
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
        Err(e) => {
            tracing::info!(error = %e, "time-stamp request rejected");
            problem::bytes(StatusCode::OK, REPLY, rejection(&e))
        }
    }
}

/// An HTTP-level refusal, still with a TimeStampResp (badRequest) a TSP client can read.
fn reply_error(err: &BodyError) -> HttpResponse {
    let status = err.status();
    tracing::info!(error = %err, %status, "time-stamp request refused");
    problem::bytes(
        status,
        REPLY,
        rejection(&TspError::Malformed(err.to_string())),
    )
}

/// The PKIFailureInfo name of a rejection (RFC 3161 2.4.2), a metrics label.
fn failure_name(e: &TspError) -> &'static str {
    match e {
        TspError::BadAlg(_) => "badAlg",
        TspError::Malformed(_) | TspError::BadRequest(_) => "badRequest",
        TspError::BadDataFormat { .. } => "badDataFormat",
        TspError::UnacceptedPolicy(_) => "unacceptedPolicy",
        TspError::UnacceptedExtension(_) => "unacceptedExtension",
        TspError::TimeNotAvailable => "timeNotAvailable",
        _ => "systemFailure",
    }
}
