//! HTTP routes of the mTLS API listener.

mod body;
mod problem;
mod tsa;

pub use body::BodyError;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::tsa::TsaService;

/// The response type of every route.
pub type HttpResponse = Response<Full<Bytes>>;

/// What the routes need.
pub struct App {
    /// The time-stamping authority.
    pub tsa: TsaService,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Time allowed to read a request body.
    pub body_timeout: Duration,
}

impl App {
    /// Route one request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> HttpResponse {
        let path = req.uri().path().to_owned();
        match (req.method(), path.as_str()) {
            (&Method::POST, "/v1/tsa") => tsa::handle(&self, req).await,
            (_, "/v1/tsa") => problem::method_not_allowed("POST"),
            (&Method::GET, "/healthz") => problem::text(StatusCode::OK, "ok\n"),
            _ => problem::json(StatusCode::NOT_FOUND, "not-found", "no such route"),
        }
    }
}
