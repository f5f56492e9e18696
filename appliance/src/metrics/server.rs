//! The metrics listener: `GET /metrics` and nothing else, over HTTP/1.1: plain on a
//! loopback address, mutual TLS on any other, where only a client the API's policy grants
//! `metrics` is served ([`MtlsGate`]). A scraper is one well-behaved client, so the budgets
//! are small: a few connections at once, small heads, short deadlines; a connection over
//! them is closed unread.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::{Metrics, Sources};
use crate::authz::{Authorizer, ClientTrust, Decision};

/// Who may scrape when the listener is not on loopback: the API's TLS (client certificate
/// required), its client trust, and its policy (the `metrics` grant).
pub struct MtlsGate {
    /// The API's TLS configuration.
    pub acceptor: TlsAcceptor,
    /// Which client certificates authenticate.
    pub trust: Arc<ClientTrust>,
    /// What each client may do.
    pub authz: Arc<Authorizer>,
}

/// Connections served at once.
const MAX_CONNECTIONS: usize = 8;
/// Longest a connection may stay open, whatever it does.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);
/// Longest wait for a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read.
const MAX_HEAD_BYTES: usize = 8192;

/// What the text exposition is served as (Prometheus text format 0.0.4 is a subset of what
/// the encoder writes, and every Prometheus reads it).
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serve scrapes on `listener` until `shutdown` resolves; through `gate` when given.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    sources: Arc<Sources>,
    gate: Option<Arc<MtlsGate>>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue; // Over budget: closed unread.
        };
        let (metrics, sources) = (Arc::clone(&metrics), Arc::clone(&sources));
        let gate = gate.clone();
        tokio::spawn(async move {
            let work = async {
                match gate {
                    None => http(tcp, metrics, sources).await,
                    Some(gate) => {
                        if let Some(tls) = admitted(&gate, tcp).await {
                            http(tls, metrics, sources).await;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, work).await;
            drop(slot);
        });
    }
}

/// The TLS stream of a client granted `metrics`, or `None` (the connection is dropped).
async fn admitted(
    gate: &MtlsGate,
    tcp: TcpStream,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let tls = match tokio::time::timeout(HEADER_TIMEOUT, gate.acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        _ => return None,
    };
    let der = tls.get_ref().1.peer_certificates()?.first()?.clone();
    let peer = gate.trust.identify(&der).ok()?;
    match gate
        .authz
        .policy()
        .authorize(&peer, signet_config::Operation::Metrics, None)
    {
        Decision::Allowed { .. } => Some(tls),
        refused => {
            tracing::info!(subject = %peer.subject, ?refused, "metrics scrape refused");
            None
        }
    }
}

/// Answer scrapes on one connection.
async fn http<IO>(io: IO, metrics: Arc<Metrics>, sources: Arc<Sources>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let answer = answer(&req, &metrics, &sources);
        async move { Ok::<_, std::convert::Infallible>(answer) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

fn answer<B>(req: &Request<B>, metrics: &Metrics, sources: &Sources) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "only /metrics here\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    match metrics.render(sources) {
        Ok(text) => {
            let mut resp = Response::new(Full::new(Bytes::from(text)));
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT));
            resp
        }
        Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded\n",
        ),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
