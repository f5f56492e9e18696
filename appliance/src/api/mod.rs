//! HTTP routes of the mTLS API listener and the public one.
//!
//! Checks return the ready refusal as their error (`Result<T, HttpResponse>`): it is built
//! once per refused request, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod body;
mod caching;
mod cms;
mod crl;
pub mod csc;
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod ocsp;
mod openapi;
mod pdf;
mod problem;
mod sign;
pub mod tsa;

pub use body::BodyError;

/// Sources of anonymous time-stamp requests (`[tsa] public`) whose rate is tracked at once.
pub const PUBLIC_TSA_SOURCES: usize = 8192;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::audit::context::Seen;
use crate::audit::{AuditLog, Event};
use crate::authz::{Authorizer, ClientTrust, PeerCert};
use crate::crl::CrlService;
use crate::hsm::Hsm;
use crate::ocsp::OcspService;
use crate::signing_keys::KeyRing;
use crate::tsa::TsaService;

/// The response type of every route but one.
pub type HttpResponse = Response<Full<Bytes>>;

/// The body of every answer: whole, or a signed PDF streamed from its spool.
pub type ResponseBody = Either<Full<Bytes>, crate::channel_body::ChannelBody>;

/// What the routes need.
pub struct App {
    /// The time-stamping authority.
    pub tsa: TsaService,
    /// The OCSP responder.
    pub ocsp: Arc<OcspService>,
    /// The CRLs.
    pub crls: Arc<CrlService>,
    /// Who may do what.
    pub authz: Arc<Authorizer>,
    /// Which client certificates may authenticate, and whether each still may.
    pub trust: Arc<ClientTrust>,
    /// The signing API's keys.
    pub keys: Arc<KeyRing>,
    /// The HSM.
    pub hsm: Hsm,
    /// The store, asked only whether its database answers (`/readyz`).
    pub store: crate::store::Store,
    /// Largest JSON body.
    pub max_json_bytes: usize,
    /// Most digests in a batch.
    pub max_batch: usize,
    /// Largest document streamed through `/v1/cms`.
    pub max_stream_bytes: u64,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Time allowed to read a request body (for a PDF: between two chunks of it).
    pub body_timeout: Duration,
    /// Where PDFs are spooled while they are signed.
    pub spool_dir: PathBuf,
    /// What the spools may take of the disk together.
    pub spool_quota: Arc<crate::spool::SpoolQuota>,
    /// PDF uploads spooled at once.
    pub spool_slots: Arc<tokio::sync::Semaphore>,
    /// Free space on the audit log's and the spool's filesystems.
    pub disk: Arc<crate::disk::DiskWatch>,
    /// Public requests answered under disk pressure, counted instead of recorded.
    pub public_tally: Arc<crate::disk::PublicTally>,
    /// Where every request is recorded before it is answered.
    pub audit: AuditLog,
    /// What the edges count, for Prometheus.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The CSC API's unspent Signature Activation Data.
    pub csc_sads: Arc<csc::SadStore>,
    /// With `[tsa] public`: what anonymous time-stamps may take.
    pub public_tsa: Option<tsa::PublicBudget>,
}

impl Listener {
    /// Its name in records and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Listener::Api => "api",
            Listener::Public => "public",
        }
    }
}

/// The address a request's connection came from (a request extension).
#[derive(Clone, Copy, Debug)]
pub struct RemoteAddr(pub std::net::SocketAddr);

/// Which listener a request came in on: the public one serves only what relying parties
/// without a client certificate need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// The mutual-TLS API listener: every route.
    Api,
    /// The plain-HTTP public listener: OCSP, CRLs and health.
    Public,
}

impl App {
    /// Serve one request that came in on `listener` from `client` (the verified client
    /// certificate, on the API listener): route it, and release the answer only once its
    /// audit record is durable.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        listener: Listener,
        client: Option<Arc<PeerCert>>,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        // Probes of the load balancer and the service manager: answered, not audited.
        if let Some(route) = probe_route(&path) {
            let resp = Arc::clone(&self).dispatch(req, listener, client).await;
            let took = started.elapsed();
            self.metrics
                .request(listener.name(), route, resp.status().as_u16(), took);
            return resp;
        }
        // Counted until its record is handed over: the audit writer waits for it a moment.
        let coming = self.audit.expect_record();
        // A client revoked after its handshake is refused here, on the connection it holds.
        let refused = match (listener, &client) {
            (Listener::Api, Some(cert)) => self.trust.check(cert).err(),
            _ => None,
        };
        let peer = req.extensions().get::<RemoteAddr>().map(|a| a.0);
        let (resp, seen) = match &refused {
            Some(refusal) => {
                let resp = refuse_client(client.as_deref(), &path, refusal);
                (
                    body::refuse(req, resp).await.map(Either::Left),
                    Seen::default(),
                )
            }
            None => {
                // Boxed: the routes' futures together are large, and each layer that
                // wraps a future moves it (a memcpy of its whole size per request).
                let dispatch = Box::pin(Arc::clone(&self).dispatch(req, listener, client.clone()));
                crate::audit::context::scope(dispatch).await
            }
        };
        let (route, operation, key) = audited_operation(&method, &path);
        let status = resp.status().as_u16();
        self.metrics
            .request(listener.name(), route, status, started.elapsed());
        // Anyone can send public requests: while the disk is short they are counted, and
        // the count recorded per interval, rather than each taking a record of its own.
        if listener == Listener::Public && self.disk.audit_short() {
            self.public_tally.count(&operation, resp.status().as_u16());
            return resp;
        }
        let event = Event::Request {
            listener: listener.name().into(),
            client: client.as_ref().map(|c| c.subject.clone()),
            client_sha256: client.as_ref().map(|c| hex::encode(c.fingerprint)),
            operation,
            key: key.or(seen.noted.key),
            input_sha256: seen.input.map(hex::encode),
            status: resp.status().as_u16(),
            latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            refused: refused.map(|r| r.to_string()),
            items: seen.noted.items,
            // A caller without a certificate is named by its address.
            peer: client
                .is_none()
                .then(|| peer.map(|p| p.ip().to_string()))
                .flatten(),
        };
        drop(coming);
        match self.audit.record(event).await {
            Ok(_) => resp,
            Err(e) => withheld(&e),
        }
    }

    /// The one route whose answer streams, then every other route.
    async fn dispatch(
        self: Arc<Self>,
        req: Request<Incoming>,
        listener: Listener,
        client: Option<Arc<PeerCert>>,
    ) -> Response<ResponseBody> {
        if let (Listener::Api, Some(cert)) = (listener, &client) {
            let path = req.uri().path().to_owned();
            let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            // A match, so that the OpenAPI test reads this route like the others.
            #[allow(clippy::single_match)]
            match (req.method(), segments.as_slice()) {
                (&Method::POST, ["v1", "pdf", key]) => {
                    let caller = guard::Caller {
                        cert: Arc::clone(cert),
                    };
                    return pdf::handle(&self, &caller, key, req).await;
                }
                _ => {}
            }
        }
        self.route(req, listener, client).await.map(Either::Left)
    }

    async fn route(
        self: Arc<Self>,
        req: Request<Incoming>,
        listener: Listener,
        client: Option<Arc<PeerCert>>,
    ) -> HttpResponse {
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        // Open to anyone who reached the listener: status information and health.
        match (&method, path.as_str()) {
            (&Method::POST, "/ocsp") => return ocsp::post(&self, req, listener).await,
            (&Method::GET, p) if p.starts_with("/ocsp/") => {
                return ocsp::get(&self, &req, &p["/ocsp/".len()..], listener).await
            }
            (_, "/ocsp") => return problem::method_not_allowed("POST"),
            (&Method::GET, p) if p.starts_with("/crl/") => {
                return crl::get(&self, &p["/crl/".len()..], req.headers())
            }
            (&Method::POST, "/tsa") => return tsa::public(&self, req).await,
            (_, "/tsa") if self.public_tsa.is_some() => return problem::method_not_allowed("POST"),
            (&Method::GET, "/healthz") => return problem::text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/readyz") => return readiness(&self.hsm, &self.store),
            _ => {}
        }
        let (Listener::Api, Some(cert)) = (listener, client) else {
            return problem::json(StatusCode::NOT_FOUND, "not-found", "no such route");
        };
        let caller = guard::Caller { cert };
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (&method, segments.as_slice()) {
            (&Method::POST, ["v1", "tsa"]) => {
                match guard::authorize(&self, &caller, signet_config::Operation::Tsa, None) {
                    Ok(_) => tsa::handle(&self, req).await,
                    Err(resp) => body::refuse(req, resp).await,
                }
            }
            (_, ["v1", "tsa"]) => problem::method_not_allowed("POST"),
            (&Method::GET, ["v1", "keys"]) => sign::keys(&self, &caller),
            (&Method::POST, ["v1", "sign", key]) => sign::sign(&self, &caller, key, req).await,
            (&Method::POST, ["v1", "sign", key, "batch"]) => {
                sign::batch(&self, &caller, key, req).await
            }
            (_, ["v1", "sign", ..]) => problem::method_not_allowed("POST"),
            (&Method::POST, ["v1", "cms", key]) => cms::handle(&self, &caller, key, req).await,
            (_, ["v1", "cms", ..]) => problem::method_not_allowed("POST"),
            (_, ["v1", "pdf", ..]) => problem::method_not_allowed("POST"),
            (&Method::GET, ["v1", "openapi.json"]) => openapi::document(),
            (&Method::POST, ["csc", version, "info"]) => {
                csc::respond(csc::info(&self, version, req).await)
            }
            (&Method::POST, ["csc", version, "credentials", "list"]) => {
                csc::respond(csc::list(&self, &caller, version, req).await)
            }
            (&Method::POST, ["csc", version, "credentials", "info"]) => {
                csc::respond(csc::credential(&self, &caller, version, req).await)
            }
            (&Method::POST, ["csc", version, "credentials", "authorize"]) => {
                csc::respond(csc::authorize(&self, &caller, version, req).await)
            }
            (&Method::POST, ["csc", version, "signatures", "signHash"]) => {
                csc::respond(csc::sign_hash(&self, &caller, version, req).await)
            }
            (_, ["csc", _, "info" | "credentials" | "signatures", ..])
                if method != Method::POST =>
            {
                body::refuse(req, csc::post_only()).await
            }
            (_, ["csc", ..]) => body::refuse(req, csc::not_served(&path)).await,
            _ => problem::json(StatusCode::NOT_FOUND, "not-found", "no such route"),
        }
    }
}

/// `/readyz`: whether requests can be signed now, and which dependency is down. `/healthz`
/// stays liveness only: a daemon whose HSM is lost is alive, answers "unavailable" at once
/// and reconnects by itself.
///
/// Only the HSM makes a box unready. An unreachable database is named but leaves it ready:
/// stamps come from the reserved serial block and OCSP from the cached statuses, so a load
/// balancer must keep sending it those (only revoke, unhold and issue wait for the
/// database); were it unready, losing the shared database would take every box out at once.
fn readiness(hsm: &Hsm, store: &crate::store::Store) -> HttpResponse {
    match (hsm.is_ready(), store.reachable()) {
        (true, true) => problem::text(StatusCode::OK, "ready\n"),
        (true, false) => problem::text(
            StatusCode::OK,
            "ready, degraded: database unreachable (stamps and OCSP served; revoke, unhold and issue refused)\n",
        ),
        (false, true) => problem::text_unavailable("not ready: hsm unavailable\n", 1),
        (false, false) => {
            problem::text_unavailable("not ready: hsm unavailable, database unreachable\n", 1)
        }
    }
}

/// The answer in place of one whose audit record is not durable.
fn withheld(e: &crate::audit::AuditError) -> Response<ResponseBody> {
    tracing::error!(error = %e, "answer withheld: its audit record is not durable");
    problem::json(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit-unavailable",
        "the audit log cannot record this request",
    )
    .map(Either::Left)
}

/// The metrics route of a probe path, which is answered but not audited.
fn probe_route(path: &str) -> Option<&'static str> {
    match path {
        "/healthz" => Some("healthz"),
        "/readyz" => Some("readyz"),
        _ => None,
    }
}

/// The answer to a client whose certificate was revoked or held after its handshake: in
/// CSC's error form on `/csc/`, a problem elsewhere.
fn refuse_client(
    client: Option<&PeerCert>,
    path: &str,
    refusal: &impl std::fmt::Display,
) -> HttpResponse {
    tracing::warn!(subject = %client.map_or("", |c| c.subject.as_str()), reason = %refusal, "request refused: client not admitted");
    if path.starts_with("/csc/") {
        csc::client_refused(&refusal.to_string())
    } else {
        problem::json(
            StatusCode::FORBIDDEN,
            "client-refused",
            &refusal.to_string(),
        )
    }
}

/// What the audit record calls a request, and the signing key its route names.
/// The route (a fixed name, a metrics label), the operation as records name it, and the key.
fn audited_operation(method: &Method, path: &str) -> (&'static str, String, Option<String>) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (op, key) = match segments.as_slice() {
        ["ocsp", ..] => ("ocsp", None),
        ["crl", ..] => ("crl", None),
        ["v1", "tsa"] => ("tsa", None),
        ["tsa"] => ("tsa-public", None),
        ["v1", "keys"] => ("keys", None),
        ["v1", "sign", key, "batch"] => ("sign-batch", Some(*key)),
        ["v1", "sign", key, ..] => ("sign", Some(*key)),
        ["v1", "cms", key, ..] => ("cms", Some(*key)),
        ["v1", "pdf", key, ..] => ("pdf", Some(*key)),
        ["v1", "openapi.json"] => ("openapi", None),
        ["csc", _, "info"] => ("csc-info", None),
        ["csc", _, "credentials", "list"] => ("csc-credentials-list", None),
        ["csc", _, "credentials", "info"] => ("csc-credentials-info", None),
        ["csc", _, "credentials", "authorize"] => ("csc-credentials-authorize", None),
        ["csc", _, "signatures", "signHash"] => ("csc-signatures-signHash", None),
        ["csc", ..] => ("csc-other", None),
        _ => ("other", None),
    };
    let operation = if op == "other" {
        format!("other {method}")
    } else {
        op.to_owned()
    };
    // Labels are short; anything else in the path is cut, never recorded at length.
    (op, operation, key.map(|k| k.chars().take(64).collect()))
}
