//! The signing API: `GET /v1/keys`, `POST /v1/sign/{key}`, `POST /v1/sign/{key}/batch`.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use signet_config::Operation;
use signet_pki::{HashAlg, SignatureScheme};

use super::body;
use super::guard::{self, Caller};
use super::problem::{self, Problem};
use super::{App, HttpResponse};
use crate::hsm::HsmError;
use crate::signing_keys::{SchemeFamily, SigningKey};

/// A digest algorithm as the API names it.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DigestName {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestName {
    /// The hash.
    pub fn hash(self) -> HashAlg {
        match self {
            DigestName::Sha256 => HashAlg::Sha256,
            DigestName::Sha384 => HashAlg::Sha384,
            DigestName::Sha512 => HashAlg::Sha512,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignRequest {
    pub(super) digest: String,
    pub(super) digest_algorithm: DigestName,
    pub(super) scheme: SchemeFamily,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchRequest {
    pub(super) digests: Vec<String>,
    pub(super) digest_algorithm: DigestName,
    pub(super) scheme: SchemeFamily,
}

/// The name of a signature scheme in answers.
pub fn scheme_name(s: SignatureScheme) -> String {
    let h = |h: HashAlg| match h {
        HashAlg::Sha1 => "sha1",
        HashAlg::Sha256 => "sha256",
        HashAlg::Sha384 => "sha384",
        HashAlg::Sha512 => "sha512",
    };
    match s {
        SignatureScheme::RsaPkcs1v15(x) => format!("rsa-pkcs1v15-{}", h(x)),
        SignatureScheme::RsaPss(x) => format!("rsa-pss-{}", h(x)),
        SignatureScheme::Ecdsa(x) => format!("ecdsa-{}", h(x)),
    }
}

/// `GET /v1/keys`: the keys this client may use.
pub(super) fn keys(app: &App, caller: &Caller) -> HttpResponse {
    let Some((client, labels)) = app.authz.policy().keys_of(&caller.cert) else {
        return guard::unknown_client(caller);
    };
    let keys: Vec<_> = labels
        .iter()
        .filter_map(|l| app.keys.get(l))
        .map(|k| {
            json!({
                "label": k.label,
                "algorithm": k.key.algorithm.to_string(),
                "purpose": k.purpose,
                "spki_pem": k.spki_pem,
                "certificate_chain_pem": k.chain_pem,
            })
        })
        .collect();
    tracing::debug!(%client, "keys listed");
    problem::json_value(StatusCode::OK, &json!({ "keys": keys }))
}

/// `POST /v1/sign/{key}`.
pub(super) async fn sign(
    app: &App,
    caller: &Caller,
    label: &str,
    req: Request<Incoming>,
) -> HttpResponse {
    let key = match guard::key_for(app, caller, Operation::Sign, label) {
        Ok(k) => k,
        Err(resp) => return body::refuse(req, resp).await,
    };
    let body: SignRequest = match guard::json_body(app, req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let scheme = match scheme_for(&key, body.scheme, body.digest_algorithm) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let digest = match decode_digest(&body.digest, body.digest_algorithm) {
        Ok(d) => d,
        Err((code, detail)) => return problem::json(StatusCode::BAD_REQUEST, code, &detail),
    };
    let signed = app.hsm.sign_digest(&key.key, scheme, &digest).await;
    if signed.is_ok() {
        app.metrics.signed(&key.label, scheme_name(scheme), 1);
    }
    match signed {
        Ok(signature) => problem::json_value(
            StatusCode::OK,
            &json!({
                "signature": B64.encode(signature),
                "algorithm": scheme_name(scheme),
                "key": key.label,
            }),
        ),
        Err(e) => Problem::from(&e).into(),
    }
}

/// `POST /v1/sign/{key}/batch`.
pub(super) async fn batch(
    app: &App,
    caller: &Caller,
    label: &str,
    req: Request<Incoming>,
) -> HttpResponse {
    let key = match guard::key_for(app, caller, Operation::Sign, label) {
        Ok(k) => k,
        Err(resp) => return body::refuse(req, resp).await,
    };
    let body: BatchRequest = match guard::json_body(app, req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    if body.digests.len() > app.max_batch {
        return problem::json(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            &format!(
                "{} digests; at most {} in one batch",
                body.digests.len(),
                app.max_batch
            ),
        );
    }
    if body.digests.is_empty() {
        return problem::json(StatusCode::BAD_REQUEST, "empty-batch", "no digests");
    }
    // One token per digest: the request took the first.
    if let Err(resp) = guard::charge(app, caller, body.digests.len() - 1) {
        return resp;
    }
    let scheme = match scheme_for(&key, body.scheme, body.digest_algorithm) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    // Items that do not decode get their own error; the rest are signed together.
    let decoded: Vec<Result<Vec<u8>, (&str, String)>> = body
        .digests
        .iter()
        .map(|d| decode_digest(d, body.digest_algorithm))
        .collect();
    let good: Vec<Vec<u8>> = decoded
        .iter()
        .filter_map(|d| d.as_ref().ok().cloned())
        .collect();
    let mut signatures = match app.hsm.sign_digests(&key.key, scheme, good).await {
        Ok(s) => s.into_iter(),
        Err(e) => return Problem::from(&e).into(),
    };
    let made = signatures.as_slice().iter().filter(|s| s.is_ok()).count();
    app.metrics
        .signed(&key.label, scheme_name(scheme), made as u64);
    let results: Vec<_> = decoded
        .into_iter()
        .map(|d| match d {
            Err((code, detail)) => json!({ "error": { "code": code, "detail": detail } }),
            Ok(_) => match signatures.next() {
                Some(Ok(sig)) => json!({ "signature": B64.encode(sig) }),
                Some(Err(e)) => {
                    json!({ "error": { "code": hsm_code(&e), "detail": e.to_string() } })
                }
                None => json!({ "error": { "code": "internal", "detail": "no result" } }),
            },
        })
        .collect();
    problem::json_value(
        StatusCode::OK,
        &json!({ "key": key.label, "algorithm": scheme_name(scheme), "results": results }),
    )
}

// The refusal is the response the handler returns as it is; a box would only add an allocation.
fn scheme_for(
    key: &Arc<SigningKey>,
    family: SchemeFamily,
    digest: DigestName,
) -> Result<SignatureScheme, HttpResponse> {
    key.scheme(family, digest.hash()).ok_or_else(|| {
        problem::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            "scheme-mismatch",
            &format!(
                "a {} key cannot sign with {family:?}/{digest:?}",
                key.key.algorithm
            ),
        )
    })
}

/// A base64 digest of the right length for its algorithm.
pub(super) fn decode_digest(
    text: &str,
    alg: DigestName,
) -> Result<Vec<u8>, (&'static str, String)> {
    let bytes = B64
        .decode(text)
        .map_err(|e| ("bad-base64", format!("digest is not base64: {e}")))?;
    let want = alg.hash().output_len();
    if bytes.len() != want {
        return Err((
            "bad-digest-length",
            format!("a {alg:?} digest has {want} octets, not {}", bytes.len()),
        ));
    }
    Ok(bytes)
}

fn hsm_code(e: &HsmError) -> &'static str {
    if e.is_unavailable() {
        "hsm-unavailable"
    } else {
        "signing-failed"
    }
}
