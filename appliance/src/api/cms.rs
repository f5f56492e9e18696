//! `POST /v1/cms/{key}?level=B-B|B-T&profile=cades|pades`: a detached CMS SignedData
//! (CAdES baseline, ETSI EN 319 122-1) over data streamed in the body (hashed as it arrives,
//! never stored) or over a digest sent as JSON. B-T adds a signature-time-stamp from the
//! appliance's own TSA, in process.

use std::time::SystemTime;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;

use signet_config::Operation;
use signet_pki::cms::cades::{self, CadesProfile};
use signet_pki::cms::SignerIdentity;
use signet_pki::HashAlg;

use super::body;
use super::guard::{self, Caller};
use super::problem::{self, Problem};
use super::sign::{decode_digest, DigestName};
use super::{App, HttpResponse};
use crate::signing_keys::SigningKey;

const SIGNATURE: &str = "application/pkcs7-signature";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DigestRequest {
    pub(super) digest: String,
    pub(super) digest_algorithm: DigestName,
}

/// Which baseline level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Level {
    Bb,
    Bt,
}

/// `POST /v1/cms/{key}`.
pub(super) async fn handle(
    app: &App,
    caller: &Caller,
    label: &str,
    req: Request<Incoming>,
) -> HttpResponse {
    let key = match guard::key_for(app, caller, Operation::Cms, label) {
        Ok(k) => k,
        Err(resp) => return body::refuse(req, resp).await,
    };
    let (level, profile) = match parse_query(req.uri().query().unwrap_or("")) {
        Ok(q) => q,
        Err(detail) => {
            let resp = problem::json(StatusCode::BAD_REQUEST, "bad-parameter", &detail);
            return body::refuse(req, resp).await;
        }
    };
    let (hash, digest) = if super::body::has_content_type(&req, "application/json") {
        let body: DigestRequest = match guard::json_body(app, req).await {
            Ok(b) => b,
            Err(resp) => return resp,
        };
        match decode_digest(&body.digest, body.digest_algorithm) {
            Ok(d) => (body.digest_algorithm.hash(), d),
            Err((code, detail)) => return problem::json(StatusCode::BAD_REQUEST, code, &detail),
        }
    } else {
        let hash = key.key.algorithm.default_scheme().hash();
        match hash_stream(app, req, hash).await {
            Ok(d) => (hash, d),
            Err(resp) => return resp,
        }
    };
    match sign(app, &key, hash, &digest, level, profile).await {
        Ok(der) => {
            app.metrics.signed(&key.label, "cms", 1);
            problem::bytes(StatusCode::OK, SIGNATURE, der)
        }
        Err(resp) => resp,
    }
}

pub(super) fn parse_query(query: &str) -> Result<(Level, CadesProfile), String> {
    let (mut level, mut profile) = (Level::Bb, CadesProfile::Cades);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("level", "B-B")) => level = Level::Bb,
            Some(("level", "B-T")) => level = Level::Bt,
            Some(("profile", "cades")) => profile = CadesProfile::Cades,
            Some(("profile", "pades")) => profile = CadesProfile::Pades,
            _ => {
                return Err(format!(
                    "unknown parameter {pair:?}: level=B-B|B-T, profile=cades|pades"
                ))
            }
        }
    }
    Ok((level, profile))
}

/// Hash the body as it streams in, up to `api.max_stream_bytes`.
async fn hash_stream(
    app: &App,
    req: Request<Incoming>,
    hash: HashAlg,
) -> Result<Vec<u8>, HttpResponse> {
    let mut hasher = signet_pki::alg::Hasher::new(hash);
    let mut body = req.into_body();
    let mut seen: u64 = 0;
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| {
                problem::json(StatusCode::BAD_REQUEST, "bad-body", "incomplete body")
            })?;
            if let Ok(data) = frame.into_data() {
                seen += data.len() as u64;
                if seen > app.max_stream_bytes {
                    return Err(problem::json(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body-too-large",
                        &format!("more than {} bytes", app.max_stream_bytes),
                    ));
                }
                hasher.update(&data);
                crate::audit::context::feed(&data);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(app.body_timeout, read).await {
        Ok(Ok(())) => Ok(hasher.finish()),
        Ok(Err(resp)) => Err(resp),
        Err(_) => Err(problem::json(
            StatusCode::REQUEST_TIMEOUT,
            "body-timeout",
            "the body did not arrive in time",
        )),
    }
}

async fn sign(
    app: &App,
    key: &SigningKey,
    hash: HashAlg,
    digest: &[u8],
    level: Level,
    profile: CadesProfile,
) -> Result<Vec<u8>, HttpResponse> {
    let internal = |e: signet_pki::Error| {
        tracing::error!(error = %e, "CMS building failed");
        problem::json(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "CMS building failed",
        )
    };
    let scheme = key.cms_scheme(hash);
    let Some(cert) = key.chain.first() else {
        return Err(problem::json(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no certificate",
        ));
    };
    let signer =
        SignerIdentity::new(cert.clone(), key.chain[1..].to_vec(), scheme).map_err(internal)?;
    let prepared =
        cades::prepare_detached(&signer, digest, SystemTime::now(), profile).map_err(|e| {
            problem::json(
                StatusCode::UNPROCESSABLE_ENTITY,
                "digest-mismatch",
                &e.to_string(),
            )
        })?;
    let signature = app
        .hsm
        .sign(&key.key, prepared.scheme(), prepared.signed_bytes())
        .await
        .map_err(|e| Problem::from(&e))?;
    let der = der::Encode::to_der(&prepared.finish(&signature).map_err(internal)?)
        .map_err(|e| internal(e.into()))?;
    if level == Level::Bb {
        return Ok(der);
    }
    let value = cades::signature_value(&der).map_err(internal)?;
    let token = app
        .tsa
        .stamp_digest(HashAlg::Sha256, &HashAlg::Sha256.digest(&value))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "signature time-stamp refused");
            Problem::unavailable("timestamp-unavailable", e.to_string(), 1)
        })?;
    cades::add_signature_timestamp(&der, &token).map_err(internal)
}
