//! `POST /v1/tsa` (API clients) and `POST /tsa` (anyone, when `[tsa] public` is on): RFC
//! 3161 over HTTP (section 3.4). Every answer carries a TimeStampResp:
//! a rejection is an HTTP 200 like a grant (the exchange itself succeeded), except for
//! failures of the HTTP layer (415, 413, 400) and of the appliance itself (503).
//!
//! Why 503 for `systemFailure` (the HSM lost, busy or slow): RFC 3161 says nothing of HTTP
//! statuses beyond the media types, so a TSP client reads the TimeStampResp in the body,
//! while load balancers and HTTP retry logic only see the status: 503 with Retry-After sends the request to another node or back later, where
//! a 200 would count as served. The body still says `rejection`/`systemFailure`.

use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Request, StatusCode};

use signet_pki::tsp::{rejection, TspError};

use super::body::{self, BodyError};
use super::problem;
use super::{App, HttpResponse, RemoteAddr};

/// `POST /tsa`: the same TSA for clients without a certificate (most TSP clients take only
/// a URL), each source address under its own rate limit; 404 unless `[tsa] public` is on.
pub(super) async fn public(app: &App, req: Request<Incoming>) -> HttpResponse {
    let Some(rates) = &app.public_tsa else {
        let resp = problem::json(StatusCode::NOT_FOUND, "not-found", "no such route");
        return body::refuse(req, resp).await;
    };
    let Some(peer) = req.extensions().get::<RemoteAddr>().map(|a| a.0.ip()) else {
        // Every connection's address is attached by the server; without one, no budget.
        let resp = problem::json(StatusCode::NOT_FOUND, "not-found", "no such route");
        return body::refuse(req, resp).await;
    };
    if let Err(wait) = rates.take(peer, Instant::now()) {
        app.metrics.stamp(Some("rateLimited"));
        tracing::info!(%peer, "anonymous time-stamp refused: source over its rate");
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut resp = problem::bytes(
            StatusCode::TOO_MANY_REQUESTS,
            REPLY,
            rejection(&TspError::SystemFailure),
        );
        if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
            resp.headers_mut().insert(RETRY_AFTER, v);
        }
        return body::refuse(req, resp).await;
    }
    handle(app, req).await
}

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
