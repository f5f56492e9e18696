//! What every API handler checks first: who is calling, whether the policy lets them, and
//! whether the JSON body is one the route takes. Each refusal is logged with the identity.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::de::DeserializeOwned;

use signet_config::Operation;

use super::body;
use super::problem::{self, Problem};
use super::{App, HttpResponse};
use crate::authz::{Decision, PeerCert};
use crate::signing_keys::SigningKey;

/// The caller of an API request: its verified client certificate.
pub struct Caller {
    /// What the policy matches on.
    pub cert: Arc<PeerCert>,
}

/// 403 for a certificate no configured client matches.
pub fn unknown_client(caller: &Caller) -> HttpResponse {
    tracing::warn!(subject = %caller.cert.subject, "request refused: unknown client");
    problem::json(
        StatusCode::FORBIDDEN,
        "unknown-client",
        "this client certificate is not granted anything",
    )
}

/// May the caller do `op` (on `key`)? Its client's name, or the refusal to send.
// The refusal is the response the handler returns as it is; a box would only add an allocation.
pub fn authorize(
    app: &App,
    caller: &Caller,
    op: Operation,
    key: Option<&str>,
) -> Result<Arc<str>, HttpResponse> {
    match app.authz.policy().authorize(&caller.cert, op, key) {
        Decision::Allowed { client } => Ok(client),
        Decision::UnknownClient => Err(unknown_client(caller)),
        Decision::Forbidden { client } => {
            tracing::warn!(%client, ?op, key, "request refused: not granted");
            Err(problem::json(
                StatusCode::FORBIDDEN,
                "forbidden",
                &format!("client {client} may not do {op:?} with this key"),
            ))
        }
        Decision::Limited {
            client,
            retry_after,
        } => {
            tracing::info!(%client, ?op, "request refused: rate limit");
            Err(rate_limited(app, &client, retry_after))
        }
    }
}

/// Charge the caller's rate limit for `n` signatures beyond the one its request was
/// authorized for (the rest of a batch): 429 when it cannot pay.
pub fn charge(app: &App, caller: &Caller, n: usize) -> Result<(), HttpResponse> {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    match app.authz.policy().charge(&caller.cert, n) {
        None => Ok(()),
        Some((client, retry_after)) => {
            tracing::info!(%client, digests = n + 1, "batch refused: rate limit");
            Err(rate_limited(app, &client, retry_after))
        }
    }
}

/// 429 with the seconds until a retry may succeed.
fn rate_limited(app: &App, client: &str, retry_after: std::time::Duration) -> HttpResponse {
    app.metrics.rate_limited(client);
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        format!("client {client} is over its rate limit"),
    )
    .retry_after(problem::retry_secs(retry_after))
    .into()
}

/// The signing key `label`, if it exists (404) and the caller may do `op` with it (403/429).
// The refusal is the response the handler returns as it is; a box would only add an allocation.
pub fn key_for(
    app: &App,
    caller: &Caller,
    op: Operation,
    label: &str,
) -> Result<Arc<SigningKey>, HttpResponse> {
    let Some(key) = app.keys.get(label) else {
        // Unknown clients learn nothing about which keys exist.
        authorize(app, caller, op, None)?;
        return Err(problem::json(
            StatusCode::NOT_FOUND,
            "unknown-key",
            &format!("no signing key {label:?}"),
        ));
    };
    authorize(app, caller, op, Some(label))?;
    Ok(key)
}

/// Read and decode a JSON body (`application/json`, at most `api.max_json_bytes`).
pub async fn json_body<T: DeserializeOwned>(
    app: &App,
    req: Request<Incoming>,
) -> Result<T, HttpResponse> {
    if !body::has_content_type(&req, "application/json") {
        let resp = problem::json(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send application/json",
        );
        return Err(body::refuse(req, resp).await);
    }
    let bytes = match body::read(req, app.max_json_bytes, app.body_timeout).await {
        Ok(b) => b,
        Err(e) => return Err(Problem::from(e).into()),
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| problem::json(StatusCode::BAD_REQUEST, "bad-json", &e.to_string()))
}
