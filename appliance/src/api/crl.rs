//! `GET /crl/{ca}.crl`: the CA's full CRL, DER (`application/pkix-crl`, RFC 5280 and
//! RFC 2585), with caching headers that end at its nextUpdate.

use hyper::{HeaderMap, StatusCode};

use super::caching::{self, Freshness};
use super::problem::{self, Problem};
use super::{App, HttpResponse};

const CRL: &str = "application/pkix-crl";

/// `GET /crl/{file}`.
pub(super) fn get(app: &App, file: &str, headers: &HeaderMap) -> HttpResponse {
    let Some(ca) = file.strip_suffix(".crl") else {
        return problem::json(
            StatusCode::NOT_FOUND,
            "not-found",
            "CRLs are at /crl/{ca}.crl",
        );
    };
    if !app.crls.names().any(|n| n == ca) {
        return problem::json(StatusCode::NOT_FOUND, "not-found", "no such CA");
    }
    let Some(crl) = app.crls.current(ca) else {
        return Problem::unavailable("crl-unavailable", "the CRL is being re-signed", 5).into();
    };
    let f = Freshness {
        last_modified: crl.this_update,
        expires: crl.next_update,
        etag: &crl.etag,
    };
    let mut resp = if caching::not_modified(headers, &f) {
        problem::bytes(StatusCode::NOT_MODIFIED, CRL, Vec::new())
    } else {
        problem::shared(StatusCode::OK, CRL, crl.der.clone())
    };
    caching::set_headers(&mut resp, &f, "public, no-transform");
    resp
}
