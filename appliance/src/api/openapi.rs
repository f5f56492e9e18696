//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of the JSON API, shipped with the
//! code (`appliance/openapi.json`) and tested against the live server.

use hyper::StatusCode;

use super::problem;
use super::HttpResponse;

/// The document, as built into the binary.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub(super) fn document() -> HttpResponse {
    problem::bytes(
        StatusCode::OK,
        "application/json",
        OPENAPI.as_bytes().to_vec(),
    )
}
