//! The Cloud Signature Consortium API (v1.0.4 and v2.0) over the mutual-TLS listener.
//!
//! A credential is a signing key the client may use with the `sign` operation; the client
//! certificate is the authentication (`authType: TLS`). Each signature is authorized with
//! `credentials/authorize` (`authMode: implicit`, `SCAL: 2`): a single-use SAD bound to the
//! client, the credential and the exact hashes (see [`sad`]). Served: `info`,
//! `credentials/list`, `credentials/info`, `credentials/authorize`, `signatures/signHash`
//! (synchronous). Everything else under `/csc/` is refused in CSC's error form.

mod algorithms;
mod error;
pub mod sad;
mod wire;

use std::time::Instant;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use signet_config::Operation;
use signet_pki::HashAlg;

use super::guard::Caller;
use super::sign::scheme_name;
use super::{body, problem, App, HttpResponse};
use crate::audit::context;
use crate::authz::Decision;
use crate::signing_keys::SigningKey;
use error::CscError;
use sad::{Grant, Spent};

pub use sad::SadStore;

/// The API version a path names: `/csc/v1/...` or `/csc/v2/...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// v1.0.4.
    V1,
    /// v2.0.
    V2,
}

impl Version {
    /// The path segment's version, if it is one this server speaks.
    pub fn parse(segment: &str) -> Option<Version> {
        match segment {
            "v1" => Some(Version::V1),
            "v2" => Some(Version::V2),
            _ => None,
        }
    }
}

/// The methods `info` announces: exactly those served.
const METHODS: [&str; 5] = [
    "info",
    "credentials/list",
    "credentials/info",
    "credentials/authorize",
    "signatures/signHash",
];

/// What a CSC handler gives: its JSON answer, or the refusal.
pub(super) type Answer = Result<Value, CscError>;

/// A handler's result as the HTTP answer: the JSON, or CSC's error form.
pub(super) fn respond(result: Answer) -> HttpResponse {
    match result {
        Ok(v) => problem::json_value(StatusCode::OK, &v),
        Err(e) => e.into(),
    }
}

/// `POST /csc/{v}/info`.
pub(super) async fn info(app: &App, version: &str, req: Request<Incoming>) -> Answer {
    let _: wire::InfoRequest = read(app, version, req).await?;
    let version = Version::parse(version).ok_or_else(unknown_version)?;
    Ok(json!({
        "specs": match version { Version::V1 => "1.0.4.0", Version::V2 => "2.0.0.2" },
        "name": "Signet",
        "logo": "",
        "region": "",
        "lang": "en-US",
        "description": "Signet signing appliance: keys in an HSM, clients authenticated by mutual TLS",
        "authType": ["TLS"],
        "methods": METHODS,
    }))
}

/// `POST /csc/{v}/credentials/list`: the signing keys this client may sign with.
pub(super) async fn list(
    app: &App,
    caller: &Caller,
    version: &str,
    req: Request<Incoming>,
) -> Answer {
    let asked: wire::ListRequest = read(app, version, req).await?;
    let allowed = match app
        .authz
        .policy()
        .authorize(&caller.cert, Operation::Sign, None)
    {
        Decision::Allowed { .. } => true,
        Decision::Forbidden { .. } => false,
        other => return Err(refusal(app, other)),
    };
    let labels = match (allowed, app.authz.policy().keys_of(&caller.cert)) {
        (true, Some((_, labels))) => labels,
        _ => Vec::new(),
    };
    let max = asked.max_results.map_or(usize::MAX, |m| {
        usize::try_from(m.max(1)).unwrap_or(usize::MAX)
    });
    let keys: Vec<_> = labels
        .iter()
        .filter_map(|l| app.keys.get(l))
        .take(max)
        .collect();
    let mut out = json!({
        "credentialIDs": keys.iter().map(|k| k.label.clone()).collect::<Vec<_>>(),
    });
    if asked.credential_info == Some(true) {
        let certificates = Certificates::parse(asked.certificates.as_deref())?;
        let infos: Vec<Value> = keys
            .iter()
            .map(|k| {
                let mut info = credential_info(app, k, certificates, asked.cert_info == Some(true));
                info["credentialID"] = json!(k.label);
                info
            })
            .collect();
        out["credentialInfos"] = json!(infos);
    }
    Ok(out)
}

/// `POST /csc/{v}/credentials/info`.
pub(super) async fn credential(
    app: &App,
    caller: &Caller,
    version: &str,
    req: Request<Incoming>,
) -> Answer {
    let asked: wire::InfoOfCredential = read(app, version, req).await?;
    let key = credential_for(app, caller, &asked.credential_id)?;
    let certificates = Certificates::parse(asked.certificates.as_deref())?;
    Ok(credential_info(
        app,
        &key,
        certificates,
        asked.cert_info == Some(true),
    ))
}

/// `POST /csc/{v}/credentials/authorize`: a SAD for these hashes with this credential.
pub(super) async fn authorize(
    app: &App,
    caller: &Caller,
    version: &str,
    req: Request<Incoming>,
) -> Answer {
    let asked: wire::AuthorizeRequest = read(app, version, req).await?;
    let key = credential_for(app, caller, &asked.credential_id)?;
    let hashes = asked
        .hashes
        .ok_or_else(|| CscError::missing("array", "hashes"))?;
    context::note_items(hashes.len() as u64);
    if asked.num_signatures != hashes.len() as u64 {
        return Err(CscError::parameter("numSignatures"));
    }
    check_batch(app, hashes.len())?;
    let hash_alg = asked
        .hash_algorithm
        .as_deref()
        .map(algorithms::hash)
        .transpose()?;
    let decoded = decode_hashes(&hashes, hash_alg)?;
    let grant = Grant {
        client: caller.cert.fingerprint,
        credential: key.label.clone(),
        hashes: Grant::bind_hashes(&decoded),
    };
    let sad = app.csc_sads.issue(grant, Instant::now()).map_err(|_| {
        CscError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many unspent SADs: spend or let some expire",
        )
        .retry_after(app.csc_sads.lifetime().as_secs())
    })?;
    Ok(json!({ "SAD": sad, "expiresIn": app.csc_sads.lifetime().as_secs() }))
}

/// `POST /csc/{v}/signatures/signHash`.
pub(super) async fn sign_hash(
    app: &App,
    caller: &Caller,
    version: &str,
    req: Request<Incoming>,
) -> Answer {
    let asked: wire::SignHashRequest = read(app, version, req).await?;
    let key = credential_for(app, caller, &asked.credential_id)?;
    context::note_items(asked.hashes.len() as u64);
    if asked.operation_mode.as_deref().is_some_and(|m| m != "S") {
        return Err(CscError::parameter("operationMode"));
    }
    if asked.hashes.is_empty() {
        return Err(CscError::invalid("Empty hash array"));
    }
    check_batch(app, asked.hashes.len())?;
    let scheme = algorithms::scheme(
        &asked.sign_algo,
        asked.sign_algo_params.as_deref(),
        asked.hash_algorithm.as_deref(),
    )?;
    if !key.key.algorithm.fits(scheme) {
        return Err(CscError::invalid(format!(
            "Invalid parameter signAlgo: a {} key cannot make it",
            key.key.algorithm
        )));
    }
    let decoded = decode_hashes(&asked.hashes, Some(scheme.hash()))?;
    let sad = asked
        .sad
        .ok_or_else(|| CscError::missing("string", "SAD"))?;
    let wanted = Grant {
        client: caller.cert.fingerprint,
        credential: key.label.clone(),
        hashes: Grant::bind_hashes(&decoded),
    };
    app.csc_sads
        .spend(&sad, &wanted, Instant::now())
        .map_err(|spent| match spent {
            Spent::Expired => CscError::invalid("SAD expired"),
            Spent::Unknown => CscError::parameter("SAD"),
            Spent::Mismatch => CscError::invalid(
                "Invalid parameter SAD: issued for another credential or other hashes",
            ),
        })?;
    // One rate-limit token per hash: the request took the first.
    if let Some((client, wait)) = app.authz.policy().charge(
        &caller.cert,
        u32::try_from(decoded.len() - 1).unwrap_or(u32::MAX),
    ) {
        return Err(limited(app, &client, wait));
    }
    let results = app
        .hsm
        .sign_digests(&key.key, scheme, decoded)
        .await
        .map_err(|e| CscError::from(&e))?;
    let mut signatures = Vec::with_capacity(results.len());
    for r in results {
        signatures.push(B64.encode(r.map_err(|e| CscError::from(&e))?));
    }
    app.metrics
        .signed(&key.label, scheme_name(scheme), signatures.len() as u64);
    Ok(json!({ "signatures": signatures }))
}

/// Anything else under `/csc/`: not served, in CSC's error form.
pub(super) fn not_served(path: &str) -> HttpResponse {
    let name: String = path.chars().take(80).collect();
    CscError::new(
        StatusCode::NOT_FOUND,
        "invalid_request",
        format!("{name} is not served here; info lists the methods that are"),
    )
    .into()
}

/// A client certificate revoked or held after its handshake, on a CSC route.
pub(super) fn client_refused(why: &str) -> HttpResponse {
    CscError::new(StatusCode::FORBIDDEN, "access_denied", why).into()
}

/// A CSC route asked with a method other than POST.
pub(super) fn post_only() -> HttpResponse {
    let mut resp: HttpResponse = CscError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "use POST",
    )
    .into();
    resp.headers_mut().insert(
        hyper::header::ALLOW,
        hyper::header::HeaderValue::from_static("POST"),
    );
    resp
}

fn unknown_version() -> CscError {
    CscError::new(
        StatusCode::NOT_FOUND,
        "invalid_request",
        "this server speaks /csc/v1/ and /csc/v2/",
    )
}

/// Which certificates `credentials/info` returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Certificates {
    None,
    Single,
    Chain,
}

impl Certificates {
    fn parse(s: Option<&str>) -> Result<Certificates, CscError> {
        match s {
            None | Some("single") => Ok(Certificates::Single),
            Some("none") => Ok(Certificates::None),
            Some("chain") => Ok(Certificates::Chain),
            Some(_) => Err(CscError::parameter("certificates")),
        }
    }
}

/// The key `label`, if the caller may sign with it. An unknown key and one the client may
/// not use get the same answer: a client learns nothing of keys that are not its own.
fn credential_for(
    app: &App,
    caller: &Caller,
    label: &str,
) -> Result<std::sync::Arc<SigningKey>, CscError> {
    context::note_key(label);
    let key = app.keys.get(label);
    let decision = app.authz.policy().authorize(
        &caller.cert,
        Operation::Sign,
        Some(key.as_ref().map_or(label, |k| k.label.as_str())),
    );
    match (decision, key) {
        (Decision::Allowed { .. }, Some(key)) => Ok(key),
        (Decision::Allowed { .. } | Decision::Forbidden { .. }, _) => {
            Err(CscError::parameter("credentialID"))
        }
        (other, _) => Err(refusal(app, other)),
    }
}

/// The refusal for an unknown client or a client over its rate limit.
fn refusal(app: &App, decision: Decision) -> CscError {
    match decision {
        Decision::Limited {
            client,
            retry_after,
        } => limited(app, &client, retry_after),
        Decision::UnknownClient => CscError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            "this client certificate is not granted anything",
        ),
        Decision::Allowed { .. } | Decision::Forbidden { .. } => {
            CscError::new(StatusCode::FORBIDDEN, "access_denied", "not granted")
        }
    }
}

fn limited(app: &App, client: &str, wait: std::time::Duration) -> CscError {
    app.metrics.rate_limited(client);
    CscError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        format!("client {client} is over its rate limit"),
    )
    .retry_after(problem::retry_secs(wait))
}

fn check_batch(app: &App, n: usize) -> Result<(), CscError> {
    if n > app.max_batch {
        return Err(CscError::invalid(format!(
            "{n} hashes; at most {} in one call (multisign)",
            app.max_batch
        )));
    }
    Ok(())
}

/// Base64 hashes, each as long as `alg` makes them (when it is known).
fn decode_hashes(hashes: &[String], alg: Option<HashAlg>) -> Result<Vec<Vec<u8>>, CscError> {
    hashes
        .iter()
        .map(|h| {
            let bytes = B64
                .decode(h)
                .map_err(|_| CscError::invalid("Invalid Base64 hash string parameter"))?;
            match alg {
                Some(a) if bytes.len() != a.output_len() => Err(CscError::invalid(format!(
                    "Invalid hash length: a {a:?} hash has {} octets, not {}",
                    a.output_len(),
                    bytes.len()
                ))),
                None if ![32, 48, 64].contains(&bytes.len()) => {
                    Err(CscError::invalid("Invalid hash length"))
                }
                _ => Ok(bytes),
            }
        })
        .collect()
}

/// Read a JSON body (at most `api.max_json_bytes`) of a path whose version is `version`;
/// an empty body is `{}`.
async fn read<T: DeserializeOwned>(
    app: &App,
    version: &str,
    req: Request<Incoming>,
) -> Result<T, CscError> {
    let typed = body::has_content_type(&req, "application/json");
    let bytes = body::read(req, app.max_json_bytes, app.body_timeout).await?;
    // Checked after the body is read: a stream cut before its end is reset, not answered.
    Version::parse(version).ok_or_else(unknown_version)?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else if !typed {
        return Err(CscError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "send application/json",
        ));
    } else {
        &bytes
    };
    serde_json::from_slice(bytes).map_err(|e| CscError::invalid(format!("Invalid JSON: {e}")))
}

/// `credentials/info`'s answer for `key` (v1 and v2 fields both).
fn credential_info(
    app: &App,
    key: &SigningKey,
    certificates: Certificates,
    cert_info: bool,
) -> Value {
    let algorithm = key.key.algorithm;
    let mut key_part = json!({
        "status": "enabled",
        "algo": algorithms::key_algorithms(algorithm),
        "len": algorithms::key_bits(algorithm),
    });
    if let Some(curve) = algorithms::key_curve(algorithm) {
        key_part["curve"] = json!(curve);
    }
    let chain: Vec<String> = match certificates {
        Certificates::None => Vec::new(),
        Certificates::Single => key.chain.iter().take(1).filter_map(der_b64).collect(),
        Certificates::Chain => key.chain.iter().filter_map(der_b64).collect(),
    };
    let mut cert = json!({ "status": certificate::status(key.chain.first()) });
    if certificates != Certificates::None {
        cert["certificates"] = json!(chain);
    }
    if cert_info {
        if let Some(c) = key.chain.first() {
            certificate::describe(c, &mut cert);
        }
    }
    json!({
        "description": key.purpose,
        "key": key_part,
        "cert": cert,
        "authMode": "implicit",
        "auth": { "mode": "implicit" },
        "SCAL": "2",
        "multisign": app.max_batch,
        "lang": "en-US",
    })
}

fn der_b64(c: &x509_cert::Certificate) -> Option<String> {
    use der::Encode;
    c.to_der().ok().map(|d| B64.encode(d))
}

mod certificate {
    //! The certificate details `credentials/info` gives with `certInfo`.

    use serde_json::{json, Value};
    use x509_cert::time::Time;
    use x509_cert::Certificate;

    /// `valid`, `expired` or `not_yet_valid` (v1's names) by the clock now.
    pub fn status(cert: Option<&Certificate>) -> &'static str {
        let Some(cert) = cert else {
            return "valid";
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let v = &cert.tbs_certificate.validity;
        if now < v.not_before.to_unix_duration() {
            "not_yet_valid"
        } else if now > v.not_after.to_unix_duration() {
            "expired"
        } else {
            "valid"
        }
    }

    /// Add subject, issuer, serial and validity to `out`.
    pub fn describe(cert: &Certificate, out: &mut Value) {
        let tbs = &cert.tbs_certificate;
        out["subjectDN"] = json!(tbs.subject.to_string());
        out["issuerDN"] = json!(tbs.issuer.to_string());
        out["serialNumber"] = json!(hex::encode_upper(tbs.serial_number.as_bytes()));
        out["validFrom"] = json!(generalized(&tbs.validity.not_before));
        out["validTo"] = json!(generalized(&tbs.validity.not_after));
    }

    /// `YYYYMMDDHHMMSSZ`, as the specification writes times.
    fn generalized(t: &Time) -> String {
        let d = t.to_date_time();
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}Z",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minutes(),
            d.seconds()
        )
    }
}
