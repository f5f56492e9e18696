//! The listeners: accept, (for the API) handshake mutual TLS under a deadline, serve
//! HTTP/1.1 or HTTP/2 (ALPN, or prior knowledge in plain HTTP), cap concurrent connections,
//! and shut down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::api::{App, Listener};

/// Limits of the listener.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Deadline for the TLS handshake and for each request head.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long in-flight requests get after shutdown begins.
    pub shutdown_grace: Duration,
}

/// Serve `app` on `listener` until `shutdown` resolves, then let in-flight requests finish.
/// With `tls` the listener is the mutual-TLS API; without, the plain-HTTP public one.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Arc<App>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let kind = if tls.is_some() {
        Listener::Api
    } else {
        Listener::Public
    };
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    http.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, app, http) = (acceptor.clone(), Arc::clone(&app), Arc::clone(&http));
        let watcher = graceful.watcher();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let result = match acceptor {
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return handshake_refused(&app, peer, &handshake_error(&e)),
                        Err(_) => return handshake_refused(&app, peer, "handshake timed out"),
                    };
                    // The verified client certificate: who is calling, for every request
                    // on this connection (each request checks it is still in standing).
                    let identified = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| app.trust.identify(c));
                    let client = match identified {
                        Some(Ok(peer)) => Some(Arc::new(peer)),
                        Some(Err(refusal)) => {
                            return handshake_refused(&app, peer, &refusal.to_string())
                        }
                        None => return handshake_refused(&app, peer, "no client certificate"),
                    };
                    let service = service_fn(move |req| {
                        let (app, client) = (Arc::clone(&app), client.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(app.handle(req, kind, client).await)
                        }
                    });
                    let conn = http.serve_connection(TokioIo::new(tls), service);
                    watcher.watch(conn.into_owned()).await
                }
                None => {
                    let service = service_fn(move |req| {
                        let app = Arc::clone(&app);
                        async move {
                            Ok::<_, std::convert::Infallible>(app.handle(req, kind, None).await)
                        }
                    });
                    let conn = http.serve_connection(TokioIo::new(tcp), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing remaining connections");
    }
}

/// Why a handshake failed, in words: a client certificate refused by the identity check
/// says what [`crate::authz::Refusal`] says (rustls would print its Debug form).
fn handshake_error(e: &std::io::Error) -> String {
    let refusal = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|tls| match tls {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
                other.0.downcast_ref::<crate::authz::Refusal>()
            }
            _ => None,
        });
    match refusal {
        Some(r) => format!("client certificate refused: {r}"),
        None => e.to_string(),
    }
}

fn handshake_refused(app: &App, peer: SocketAddr, why: &str) {
    tracing::info!(%peer, reason = why, "TLS handshake refused");
    // Nothing is answered on the strength of this record: no need to wait for it.
    app.audit
        .record_detached(crate::audit::Event::HandshakeRefused {
            peer: peer.to_string(),
            reason: why.chars().take(256).collect(),
        });
}
