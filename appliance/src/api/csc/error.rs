//! CSC's own error form: `{"error": "...", "error_description": "..."}` with an HTTP
//! status (CSC API v1.0.4 and v2.0 section 10.1). The only place a `/csc/` refusal
//! becomes an HTTP answer.

use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::StatusCode;
use serde_json::json;

use crate::api::body::BodyError;
use crate::api::problem;
use crate::api::HttpResponse;
use crate::hsm::HsmError;

/// A CSC refusal.
#[derive(Debug)]
pub struct CscError {
    status: StatusCode,
    error: &'static str,
    description: String,
    retry_after: Option<u64>,
}

impl CscError {
    /// 400 `invalid_request`: the request is malformed or names what it may not use.
    pub fn invalid(description: impl Into<String>) -> CscError {
        CscError::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// A refusal with its own status and error code.
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        CscError {
            status,
            error,
            description: description.into(),
            retry_after: None,
        }
    }

    /// Say when a retry may succeed.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// "Missing (or invalid type) ... parameter NAME", the specification's wording.
    pub fn missing(kind: &str, name: &str) -> CscError {
        CscError::invalid(format!("Missing (or invalid type) {kind} parameter {name}"))
    }

    /// "Invalid parameter NAME".
    pub fn parameter(name: &str) -> CscError {
        CscError::invalid(format!("Invalid parameter {name}"))
    }

    /// The error code (for tests and logs).
    pub fn code(&self) -> &'static str {
        self.error
    }
}

impl From<CscError> for HttpResponse {
    fn from(e: CscError) -> HttpResponse {
        let body = json!({ "error": e.error, "error_description": e.description });
        let mut resp = problem::json_value(e.status, &body);
        if let Some(secs) = e.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl From<BodyError> for CscError {
    fn from(e: BodyError) -> CscError {
        CscError::new(e.status(), "invalid_request", e.to_string())
    }
}

impl From<&HsmError> for CscError {
    fn from(e: &HsmError) -> CscError {
        if e.is_unavailable() {
            CscError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the signing device is unavailable",
            )
            .retry_after(1)
        } else {
            tracing::error!(error = %e, "CSC signHash failed");
            CscError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the hashes could not be signed",
            )
        }
    }
}
