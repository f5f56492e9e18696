//! `POST /v1/pdf/{key}?level=B-B|B-T|B-LT|B-LTA&field=&reason=&location=&contact_info=&name=`:
//! body `application/pdf`, answer the signed PDF.
//!
//! The upload is spooled to an encrypted, nameless file and hashed as it streams in; the
//! answer streams the original back from the spool followed by the new revisions. Every
//! check and signature is done before the first byte of the answer: a refusal is a
//! problem document, never a half-written PDF.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use signet_config::Operation;
use signet_pki::alg::Hasher;
use signet_pki::pades::Source;

use super::guard::{self, Caller};
use super::problem::{self, Problem};
use super::{body, App, HttpResponse, ResponseBody};
use crate::channel_body::ChannelBody;
use crate::pades::{self, Appearance, Level, Services, SignedPdf};
use crate::spool::Spool;

const PDF: &str = "application/pdf";
/// Bytes gathered before a write to the spool.
const SPOOL_CHUNK: usize = 1 << 20;
/// Bytes per frame of the answer.
const ANSWER_CHUNK: usize = 256 << 10;

/// `POST /v1/pdf/{key}`.
pub(super) async fn handle(
    app: &App,
    caller: &Caller,
    label: &str,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    match sign(app, caller, label, req).await {
        Ok(signed) => {
            app.metrics.signed(label, "pades", 1);
            stream_answer(signed)
        }
        Err(resp) => resp.map(Either::Left),
    }
}

async fn sign(
    app: &App,
    caller: &Caller,
    label: &str,
    req: Request<Incoming>,
) -> Result<SignedPdf, HttpResponse> {
    let key = match guard::key_for(app, caller, Operation::Pdf, label) {
        Ok(k) => k,
        Err(resp) => return Err(body::refuse(req, resp).await),
    };
    let (level, appearance) = match parse_query(req.uri().query().unwrap_or("")) {
        Ok(q) => q,
        Err(detail) => {
            let resp = problem::json(StatusCode::BAD_REQUEST, "bad-parameter", &detail);
            return Err(body::refuse(req, resp).await);
        }
    };
    if !body::has_content_type(&req, PDF) {
        let resp = problem::json(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong-content-type",
            "the body must be application/pdf",
        );
        return Err(body::refuse(req, resp).await);
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.max_stream_bytes) {
        return Err(body::refuse(req, too_large(app.max_stream_bytes)).await);
    }
    if app.disk.spool_short() {
        let resp = insufficient_storage("the spool's disk is short of space");
        return Err(body::refuse(req, resp).await);
    }
    // Held while the document is spooled and signed.
    let Ok(_slot) = Arc::clone(&app.spool_slots).try_acquire_owned() else {
        let busy = "too many PDFs are being signed at once; try again";
        let resp = Problem::unavailable("spool-busy", busy, 1).into();
        return Err(body::refuse(req, resp).await);
    };
    let hash = key.key.algorithm.default_scheme().hash();
    let (spool, hashed) = spool_body(app, req, Hasher::new(hash)).await?;
    let services = Services {
        hsm: &app.hsm,
        tsa: &app.tsa,
        ocsp: &app.ocsp,
        crls: &app.crls,
    };
    pades::sign(&services, &key, spool, hashed, hash, level, appearance)
        .await
        .map_err(|e| Problem::from(&e).into())
}

pub(super) fn parse_query(query: &str) -> Result<(Level, Appearance), String> {
    let mut level = Level::Bb;
    let mut appearance = Appearance::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(&raw.replace('+', " "))
            .decode_utf8()
            .map_err(|_| format!("parameter {name:?} is not UTF-8"))?
            .into_owned();
        if value.len() > 256 || value.chars().any(char::is_control) {
            return Err(format!(
                "parameter {name:?} is too long or has control characters"
            ));
        }
        let slot = match name {
            "level" => {
                level = Level::parse(&value)
                    .ok_or_else(|| format!("unknown level {value:?}: B-B, B-T, B-LT or B-LTA"))?;
                continue;
            }
            "field" => &mut appearance.field,
            "reason" => &mut appearance.reason,
            "location" => &mut appearance.location,
            "contact_info" => &mut appearance.contact_info,
            "name" => &mut appearance.name,
            other => {
                return Err(format!(
                "unknown parameter {other:?}: level, field, reason, location, contact_info, name"
            ))
            }
        };
        if name == "field" && (value.is_empty() || value.contains('.')) {
            return Err("field must be a non-empty name without '.'".into());
        }
        *slot = Some(value);
    }
    Ok((level, appearance))
}

/// Spool and hash the body, with an idle deadline per chunk and the size cap.
async fn spool_body(
    app: &App,
    req: Request<Incoming>,
    mut hasher: Hasher,
) -> Result<(Spool, Hasher), HttpResponse> {
    let internal = |e: std::io::Error| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        ) {
            tracing::warn!(error = %e, "PDF refused: no room to spool it");
            return insufficient_storage(&e.to_string());
        }
        tracing::error!(error = %e, "PDF spool failed");
        problem::json(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "could not spool the document",
        )
    };
    let (dir, quota) = (app.spool_dir.clone(), Arc::clone(&app.spool_quota));
    let mut spool = blocking(move || Spool::create(&dir, quota))
        .await
        .map_err(internal)?;
    let mut body = req.into_body();
    let mut pending: Vec<u8> = Vec::with_capacity(SPOOL_CHUNK);
    let mut seen: u64 = 0;
    loop {
        let frame = match tokio::time::timeout(app.body_timeout, body.frame()).await {
            Err(_) => {
                return Err(problem::json(
                    StatusCode::REQUEST_TIMEOUT,
                    "body-timeout",
                    "the body stopped arriving",
                ))
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                return Err(problem::json(
                    StatusCode::BAD_REQUEST,
                    "bad-body",
                    "incomplete body",
                ))
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen > app.max_stream_bytes {
            // Read a little more first, so that an HTTP/2 client sees the answer rather
            // than a reset stream.
            let _ = tokio::time::timeout(Duration::from_secs(2), body::drain(&mut body)).await;
            return Err(too_large(app.max_stream_bytes));
        }
        hasher.update(&data);
        crate::audit::context::feed(&data);
        pending.extend_from_slice(&data);
        if pending.len() >= SPOOL_CHUNK {
            let chunk = std::mem::replace(&mut pending, Vec::with_capacity(SPOOL_CHUNK));
            spool = blocking(move || spool.append(&chunk).map(|()| spool))
                .await
                .map_err(internal)?;
        }
    }
    let spool = blocking(move || spool.append(&pending).map(|()| spool))
        .await
        .map_err(internal)?;
    Ok((spool, hasher))
}

/// 507: the document cannot be stored while it is signed.
fn insufficient_storage(detail: &str) -> HttpResponse {
    problem::json(
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient-storage",
        detail,
    )
}

fn too_large(limit: u64) -> HttpResponse {
    problem::json(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        &format!("documents are limited to {limit} bytes"),
    )
}

/// The signed PDF: the original read back from the spool, then the new revisions.
fn stream_answer(signed: SignedPdf) -> Response<ResponseBody> {
    let len = signed.len();
    let field = signed.field.clone();
    let (tx, body) = ChannelBody::new(len);
    tokio::task::spawn_blocking(move || {
        let SignedPdf {
            original,
            revisions,
            ..
        } = signed;
        let mut offset = 0;
        while offset < original.len() {
            let chunk = original.read_vec(offset, ANSWER_CHUNK);
            let stop = match &chunk {
                Ok(c) => c.is_empty(),
                Err(_) => true,
            };
            offset += chunk.as_ref().map(|c| c.len() as u64).unwrap_or(0);
            if tx.blocking_send(chunk.map(Bytes::from)).is_err() || stop {
                return;
            }
        }
        for revision in revisions {
            if tx.blocking_send(Ok(Bytes::from(revision))).is_err() {
                return;
            }
        }
        // The spool is dropped here: its nameless file is gone with its descriptor.
    });
    let mut resp = Response::new(Either::Right(body));
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(PDF));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&field) {
        headers.insert("signet-signature-field", v);
    }
    resp
}

async fn blocking<T, F>(f: F) -> std::io::Result<T>
where
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        let (level, a) =
            parse_query("level=B-LTA&reason=Approved%20by%20me&field=Sig1&contact_info=a+b")
                .unwrap();
        assert_eq!(level, Level::Blta);
        assert_eq!(a.reason.as_deref(), Some("Approved by me"));
        assert_eq!(a.field.as_deref(), Some("Sig1"));
        assert_eq!(a.contact_info.as_deref(), Some("a b"));
        assert!(parse_query("level=B-X").is_err());
        assert!(parse_query("colour=red").is_err());
        assert!(parse_query("field=a.b").is_err());
        assert!(parse_query("reason=%FF").is_err());
    }
}
