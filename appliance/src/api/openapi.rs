//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of the API, shipped with the code
//! (`appliance/openapi.json`) and tested against the live server (`tests/tests/openapi.rs`
//! runs schemathesis on it).

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::OPENAPI;

    /// The router's source: the routes are read from its `match` arms, so that a route added
    /// there without a description here fails this test.
    const ROUTER: &str = include_str!("mod.rs");

    fn doc() -> Value {
        serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
    }

    /// `METHOD /path` for every arm of the router that serves a method, with path parameters
    /// written `{}`. Arms whose method is `_` (the 405 answers) are not routes.
    fn routes() -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for line in ROUTER.lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("(&Method::") else {
                continue;
            };
            let (method, rest) = rest.split_once(", ").expect("(&Method::X, pattern)");
            let path = if let Some(lit) = rest.strip_prefix('"') {
                // (&Method::GET, "/healthz")
                lit.split_once('"').expect("closing quote").0.to_owned()
            } else if let Some(slice) = rest.strip_prefix('[') {
                // (&Method::POST, ["v1", "sign", key, "batch"])
                let slice = slice.split_once(']').expect("closing bracket").0;
                let segments: Vec<String> = slice
                    .split(',')
                    .map(str::trim)
                    .map(|s| match s.strip_prefix('"') {
                        Some(lit) => lit.trim_end_matches('"').to_owned(),
                        None => {
                            assert!(
                                s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                                "unexpected pattern segment {s:?} in {line}"
                            );
                            "{}".to_owned()
                        }
                    })
                    .collect();
                format!("/{}", segments.join("/"))
            } else if let Some((_, prefix)) = rest.split_once(".starts_with(\"") {
                // (&Method::GET, p) if p.starts_with("/ocsp/") => ...
                format!("{}{{}}", prefix.split_once('"').expect("closing quote").0)
            } else {
                panic!("a route pattern this test cannot read: {line}");
            };
            out.insert(format!("{method} {path}"));
        }
        out
    }

    /// `METHOD /path` for every operation of the document, path parameters written `{}`.
    fn documented(doc: &Value) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let mut norm = String::new();
            let mut in_param = false;
            for c in path.chars() {
                match c {
                    '{' => {
                        in_param = true;
                        norm.push_str("{}");
                    }
                    '}' => in_param = false,
                    c if !in_param => norm.push(c),
                    _ => {}
                }
            }
            for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
                if item.get(method).is_some() {
                    out.insert(format!("{} {norm}", method.to_uppercase()));
                }
            }
        }
        out
    }

    #[test]
    fn the_document_is_openapi_3_1() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["info"]["title"].is_string());
        assert_eq!(
            doc["components"]["securitySchemes"]["clientCertificate"]["type"],
            "mutualTLS"
        );
    }

    #[test]
    fn every_route_the_router_serves_is_documented() {
        let routes = routes();
        // The reader above must keep finding the routes: the API's and the public ones.
        for r in [
            "GET /v1/keys",
            "POST /v1/sign/{}",
            "POST /v1/sign/{}/batch",
            "POST /v1/tsa",
            "GET /v1/openapi.json",
            "POST /ocsp",
            "GET /ocsp/{}",
            "GET /crl/{}",
            "GET /healthz",
            "GET /readyz",
            "POST /csc/{}/signatures/signHash",
        ] {
            assert!(
                routes.contains(r),
                "{r} not found in the router: {routes:?}"
            );
        }
        let documented = documented(&doc());
        let missing: Vec<_> = routes.difference(&documented).collect();
        assert!(missing.is_empty(), "served but not documented: {missing:?}");
        let extra: Vec<_> = documented.difference(&routes).collect();
        assert!(extra.is_empty(), "documented but not served: {extra:?}");
    }

    /// Every `$ref` in `v` points at something in `doc`.
    fn check_refs(doc: &Value, v: &Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    let pointer = r.strip_prefix('#').expect("a local $ref");
                    assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
                }
                map.values().for_each(|v| check_refs(doc, v));
            }
            Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v)),
            _ => {}
        }
    }

    #[test]
    fn every_ref_resolves() {
        let doc = doc();
        check_refs(&doc, &doc);
    }

    /// The JSON API's errors are problem details; every 429 and 503 says when to retry.
    #[test]
    fn errors_are_problems_and_busy_answers_have_retry_after() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let Some(responses) = op.get("responses").and_then(Value::as_object) else {
                    continue;
                };
                for (status, resp) in responses {
                    let resp = match resp.get("$ref").and_then(Value::as_str) {
                        Some(r) => doc.pointer(&r[1..]).expect("response $ref"),
                        None => resp,
                    };
                    let content = resp.get("content").and_then(Value::as_object);
                    if path.starts_with("/v1/") && path != "/v1/tsa" && status.as_str() >= "400" {
                        assert!(
                            content.is_some_and(|c| c.contains_key("application/problem+json")),
                            "{method} {path} {status} is not a problem"
                        );
                    }
                    if status == "429" || status == "503" {
                        assert!(
                            resp["headers"].get("Retry-After").is_some(),
                            "{method} {path} {status} without Retry-After"
                        );
                    }
                }
            }
        }
    }
}
