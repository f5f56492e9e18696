//! `POST /v1/tsa` (API clients) and `POST /tsa` (anyone, when `[tsa] public` is on): RFC
//! 3161 over HTTP (section 3.4). Every answer carries a TimeStampResp:
//! a rejection is an HTTP 200 like a grant (the exchange itself succeeded), except for
//! failures of the HTTP layer (415, 413, 400) and of the appliance itself (503).
//!
//! Why 503 for `systemFailure` (the HSM lost, busy or slow): RFC 3161 says nothing of HTTP
//! statuses beyond the media types, so a TSP client reads the TimeStampResp in the body,
//! while load balancers and HTTP retry logic only see the status: 503 with Retry-After sends the request to another node or back later, where
//! a 200 would count as served. The body still says `rejection`/`systemFailure`.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Request, StatusCode};

use signet_pki::tsp::{rejection, TspError};

use super::body::{self, BodyError};
use super::problem;
use super::{App, HttpResponse, RemoteAddr, PUBLIC_TSA_SOURCES};
use crate::bucket::TokenBucket;
use crate::source_limit::SourceRates;

/// What anonymous time-stamps may take: a rate per source address, and one over all.
pub struct PublicBudget {
    per_source: SourceRates,
    total: Mutex<TokenBucket>,
}

impl PublicBudget {
    /// `per_source` (rate, burst) for each source, `total_per_sec` (burst twice that) for
    /// all.
    pub fn new(per_source: (f64, f64), total_per_sec: f64) -> PublicBudget {
        PublicBudget {
            per_source: SourceRates::new(per_source.0, per_source.1, PUBLIC_TSA_SOURCES),
            total: Mutex::new(TokenBucket::new(
                total_per_sec,
                2.0 * total_per_sec,
                Instant::now(),
            )),
        }
    }

    /// Take one stamp for `peer`: refused with the wait and the HTTP status to say it with
    /// (429 for this source, 503 when all sources together are over).
    fn take(&self, peer: IpAddr, now: Instant) -> Result<(), (StatusCode, Duration)> {
        self.per_source
            .take(peer, now)
            .map_err(|w| (StatusCode::TOO_MANY_REQUESTS, w))?;
        let mut total = self.total.lock().unwrap_or_else(|p| p.into_inner());
        total
            .take(now)
            .map_err(|w| (StatusCode::SERVICE_UNAVAILABLE, w))
    }
}

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
    if let Err((status, wait)) = rates.take(peer, Instant::now()) {
        app.metrics.stamp(Some("rateLimited"));
        tracing::info!(%peer, %status, "anonymous time-stamp refused: over its rate");
        let mut resp = problem::bytes(status, REPLY, rejection(&TspError::SystemFailure));
        if let Ok(v) = HeaderValue::from_str(&problem::retry_secs(wait).to_string()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_source_is_held_to_its_rate_and_all_sources_to_the_total() {
        let now = Instant::now();
        let ip = |n: u8| IpAddr::from([192, 0, 2, n]);
        // Per source: 1 a second, 2 at once; all together: 3 a second, 6 at once.
        let budget = PublicBudget::new((1.0, 2.0), 3.0);
        assert!(budget.take(ip(1), now).is_ok());
        assert!(budget.take(ip(1), now).is_ok());
        let (status, wait) = budget.take(ip(1), now).expect_err("over its rate");
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(wait > Duration::ZERO);
        // Others are served until the total is spent: 6 at once, 2 already taken.
        for n in 2..6 {
            assert!(budget.take(ip(n), now).is_ok(), "source {n}");
        }
        let (status, _) = budget.take(ip(6), now).expect_err("over the total");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        // A second later the total has refilled by three.
        let later = now + Duration::from_secs(1);
        assert!(budget.take(ip(7), later).is_ok());
    }
}
