//! HTTP caching of signed artefacts that are valid until a nextUpdate (OCSP responses,
//! CRLs): validators, expiry, and conditional requests.

use std::time::SystemTime;

use hyper::header::{
    HeaderValue, CACHE_CONTROL, ETAG, EXPIRES, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use hyper::HeaderMap;

use super::HttpResponse;

/// What a cacheable answer says of itself.
pub struct Freshness<'a> {
    /// When it was made (thisUpdate).
    pub last_modified: SystemTime,
    /// When it stops being valid (nextUpdate).
    pub expires: SystemTime,
    /// Its strong ETag, quoted.
    pub etag: &'a str,
}

/// Set Last-Modified, Expires, ETag and `Cache-Control: max-age=<until expires>, <directives>`
/// (RFC 5019 6.2).
pub fn set_headers(resp: &mut HttpResponse, f: &Freshness<'_>, directives: &str) {
    let left = f
        .expires
        .duration_since(SystemTime::now())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let h = resp.headers_mut();
    let date = |t| HeaderValue::from_str(&httpdate::fmt_http_date(t)).ok();
    if let Some(v) = date(f.last_modified) {
        h.insert(LAST_MODIFIED, v);
    }
    if let Some(v) = date(f.expires) {
        h.insert(EXPIRES, v);
    }
    if let Ok(v) = HeaderValue::from_str(f.etag) {
        h.insert(ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("max-age={left}, {directives}")) {
        h.insert(CACHE_CONTROL, v);
    }
}

/// Whether a conditional GET may be answered 304 (RFC 9110 13.2.2: If-None-Match first).
pub fn not_modified(headers: &HeaderMap, f: &Freshness<'_>) -> bool {
    if let Some(inm) = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == f.etag);
    }
    headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|since| f.last_modified <= since)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn conditional_requests() {
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let f = |etag| Freshness {
            last_modified: modified,
            expires: modified,
            etag,
        };
        let mut h = HeaderMap::new();
        assert!(!not_modified(&h, &f("\"a\"")));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"b\", \"a\""));
        assert!(not_modified(&h, &f("\"a\"")));
        assert!(!not_modified(&h, &f("\"c\"")));
        let mut h = HeaderMap::new();
        let later = httpdate::fmt_http_date(modified + Duration::from_secs(5));
        h.insert(
            IF_MODIFIED_SINCE,
            HeaderValue::from_str(&later).expect("date"),
        );
        assert!(not_modified(&h, &f("\"a\"")));
        let newer = Freshness {
            last_modified: modified + Duration::from_secs(6),
            ..f("\"a\"")
        };
        assert!(!not_modified(&h, &newer));
    }
}
