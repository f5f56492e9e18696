//! HTTP routes of the mTLS API listener.

mod body;
mod caching;
mod crl;
mod ocsp;
mod problem;
mod tsa;

pub use body::BodyError;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::crl::CrlService;
use crate::ocsp::OcspService;
use crate::tsa::TsaService;

/// The response type of every route.
pub type HttpResponse = Response<Full<Bytes>>;

/// What the routes need.
pub struct App {
    /// The time-stamping authority.
    pub tsa: TsaService,
    /// The OCSP responder.
    pub ocsp: Arc<OcspService>,
    /// The CRLs.
    pub crls: Arc<CrlService>,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Time allowed to read a request body.
    pub body_timeout: Duration,
}

/// Which listener a request came in on: the public one serves only what relying parties
/// without a client certificate need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// The mutual-TLS API listener: every route.
    Api,
    /// The plain-HTTP public listener: OCSP, CRLs and health.
    Public,
}

impl App {
    /// Route one request that came in on `listener`.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        listener: Listener,
    ) -> HttpResponse {
        let path = req.uri().path().to_owned();
        let api = listener == Listener::Api;
        match (req.method(), path.as_str()) {
            (&Method::POST, "/v1/tsa") if api => tsa::handle(&self, req).await,
            (_, "/v1/tsa") if api => problem::method_not_allowed("POST"),
            (&Method::POST, "/ocsp") => ocsp::post(&self, req).await,
            (&Method::GET, p) if p.starts_with("/ocsp/") => {
                ocsp::get(&self, &p["/ocsp/".len()..], req.headers()).await
            }
            (_, "/ocsp") => problem::method_not_allowed("POST"),
            (&Method::GET, p) if p.starts_with("/crl/") => {
                crl::get(&self, &p["/crl/".len()..], req.headers())
            }
            (&Method::GET, "/healthz") => problem::text(StatusCode::OK, "ok\n"),
            _ => problem::json(StatusCode::NOT_FOUND, "not-found", "no such route"),
        }
    }
}
