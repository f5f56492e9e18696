//! The listeners: accept, (for the API) handshake mutual TLS under a deadline, serve
//! HTTP/1.1 or HTTP/2 (ALPN, or prior knowledge in plain HTTP), keep each connection within
//! its deadlines (first request, idle, age) and each listener within its budget, and shut
//! down gracefully.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::api::{App, Listener, RemoteAddr};
use crate::authz::PeerCert;
use crate::conn_budget::{Budget, BudgetLimits, Slot};

/// Limits of the listener.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Deadline for the TLS handshake and for each request head once it has begun.
    pub header_timeout: Duration,
    /// How long in-flight requests get after shutdown begins.
    pub shutdown_grace: Duration,
    /// How long in-flight requests get after a connection is closed for idleness or age.
    pub drain: Duration,
    /// Deadline from accept to the first complete request head (sniffing and the TLS
    /// handshake included).
    pub first_request: Duration,
    /// Time a connection may stay with no request in progress.
    pub idle: Duration,
    /// HTTP/2 keep-alive PING interval.
    pub ping_interval: Duration,
    /// Time an HTTP/2 PING may stay unanswered.
    pub ping_timeout: Duration,
    /// Age after which a connection is closed gracefully.
    pub max_age: Duration,
    /// Connections at once, per source, and new ones per second per source.
    pub budget: BudgetLimits,
}

/// Serve `app` on `listener` until `shutdown` resolves, then let in-flight requests finish.
/// With `tls` the listener is the mutual-TLS API; without, the plain-HTTP public one.
///
/// Every connection is accepted; one over the listener's budget (see
/// [`crate::conn_budget`]) is closed at once, before any byte is read or any handshake, so
/// a full listener keeps serving the sources that are within theirs.
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
    let (closing_tx, closing_rx) = watch::channel(false);
    let budget = Budget::new(limits.budget.clone());
    let http = Arc::new(http_builder(&limits));
    let limits = Arc::new(limits);
    tokio::pin!(shutdown);
    let mut refusals = Refusals::default();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: wait for some to be given back.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let accepted = Instant::now();
        let slot = match budget.admit(peer.ip(), accepted.into_std()) {
            Ok(slot) => slot,
            Err(why) => {
                // Closed at once: no handshake, no read, no task.
                drop(tcp);
                refusals.count(accepted, || (kind, peer, why.to_string(), budget.open()));
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let connection = Connection {
            app: Arc::clone(&app),
            http: Arc::clone(&http),
            limits: Arc::clone(&limits),
            kind,
            peer,
            accepted,
            closing: closing_rx.clone(),
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            connection.run(tcp, acceptor, slot).await;
        });
    }
    drop(listener);
    drop(closing_rx);
    tracing::info!("shutting down: waiting for in-flight requests");
    let _ = closing_tx.send(true);
    // Every connection holds a receiver until it ends; each closes itself after the grace.
    if tokio::time::timeout(
        limits.shutdown_grace + Duration::from_secs(1),
        closing_tx.closed(),
    )
    .await
    .is_err()
    {
        tracing::warn!("grace period over; closing remaining connections");
    }
}

/// HTTP/1 and HTTP/2 with the listener's header limits and timers.
fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    http.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(limits.ping_interval))
        .keep_alive_timeout(limits.ping_timeout);
    http
}

/// Connections refused over budget, logged at most every ten seconds with their count:
/// a flood must not become a flood of log lines.
#[derive(Default)]
struct Refusals {
    since_report: u64,
    reported: Option<Instant>,
}

impl Refusals {
    /// Count one refusal at `now`; `what` says the listener, the peer, why, and how many
    /// connections are open, when a report is due.
    fn count(
        &mut self,
        now: Instant,
        what: impl FnOnce() -> (Listener, SocketAddr, String, usize),
    ) {
        self.since_report += 1;
        let due = self
            .reported
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(10));
        if !due {
            return;
        }
        let (kind, peer, why, open) = what();
        tracing::warn!(
            ?kind,
            %peer,
            reason = %why,
            refused = self.since_report,
            open,
            "connections refused over budget (count since the last report)"
        );
        self.since_report = 0;
        self.reported = Some(now);
    }
}

/// One accepted connection and what it needs.
struct Connection {
    app: Arc<App>,
    http: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<Limits>,
    kind: Listener,
    peer: SocketAddr,
    accepted: Instant,
    closing: watch::Receiver<bool>,
}

/// What the connection's requests tell its supervisor.
struct Activity {
    /// Whether a complete request head has arrived.
    served: AtomicBool,
    /// Requests being handled.
    in_flight: AtomicUsize,
    /// When the last request was handled, in milliseconds since accept.
    last_done_ms: AtomicU64,
}

/// A request being handled; dropping it (answered or abandoned) records the time.
struct InFlight {
    activity: Arc<Activity>,
    accepted: Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.last_done_ms.store(ms, Ordering::Release);
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connection {
    /// The TLS handshake (API listener), by `first_deadline` and the header timeout, and
    /// who the verified client certificate says is calling; `None` when refused (recorded).
    async fn handshake(
        &self,
        tcp: TcpStream,
        acceptor: Option<TlsAcceptor>,
        slot: &Slot,
        first_deadline: Instant,
    ) -> Option<(Io, Option<Arc<PeerCert>>)> {
        let Some(acceptor) = acceptor else {
            return Some((Io::Plain(tcp), None));
        };
        let refused = |why: &str| {
            handshake_refused(&self.app, self.peer, why);
            None
        };
        let deadline = first_deadline.min(self.accepted + self.limits.header_timeout);
        let handshake = tokio::select! {
            h = tokio::time::timeout_at(deadline, acceptor.accept(tcp)) => h,
            () = slot.evicted() => return refused("evicted by a newer connection (listener full)"),
        };
        let tls = match handshake {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return refused(&handshake_error(&e)),
            Err(_) => return refused("handshake timed out"),
        };
        // The verified client certificate: who is calling, for every request on this
        // connection (each request checks it is still in standing).
        let identified = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| self.app.trust.identify(c));
        match identified {
            Some(Ok(peer)) => Some((Io::Tls(Box::new(tls)), Some(Arc::new(peer)))),
            Some(Err(refusal)) => refused(&refusal.to_string()),
            None => refused("no client certificate"),
        }
    }

    /// Serve the connection until it ends, closing it at its deadlines: no first request
    /// in time, idle, too old, evicted while silent, or past the shutdown grace.
    // Long: one select loop over every deadline of the connection; split, its state (the
    // connection future, the activity, the hard-close time) would be passed in pieces.
    async fn run(self, tcp: TcpStream, acceptor: Option<TlsAcceptor>, slot: Slot) {
        let first_deadline = self.accepted + self.limits.first_request;
        let Some((io, client)) = self.handshake(tcp, acceptor, &slot, first_deadline).await else {
            return;
        };
        let activity = Arc::new(Activity {
            served: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
        });
        let (app, kind, accepted, peer) =
            (Arc::clone(&self.app), self.kind, self.accepted, self.peer);
        let seen = Arc::clone(&activity);
        let slot = Arc::new(slot);
        let service_slot = Arc::clone(&slot);
        let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(RemoteAddr(peer));
            service_slot.served();
            seen.served.store(true, Ordering::Release);
            seen.in_flight.fetch_add(1, Ordering::AcqRel);
            let guard = InFlight {
                activity: Arc::clone(&seen),
                accepted,
            };
            let (app, client) = (Arc::clone(&app), client.clone());
            async move {
                let response = app.handle(req, kind, client).await;
                drop(guard);
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let conn = self.http.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut closing = self.closing;
        // Once a graceful close has begun: when the connection is dropped regardless.
        let mut hard_close: Option<Instant> = None;
        let max_age_at = self.accepted + self.limits.max_age;
        let result = loop {
            let wake = match hard_close {
                Some(at) => at,
                None if !activity.served.load(Ordering::Acquire) => first_deadline,
                None => {
                    let idle_at = if activity.in_flight.load(Ordering::Acquire) == 0 {
                        let done = activity.last_done_ms.load(Ordering::Acquire);
                        self.accepted + Duration::from_millis(done) + self.limits.idle
                    } else {
                        Instant::now() + self.limits.idle
                    };
                    idle_at.min(max_age_at)
                }
            };
            let waiting = !activity.served.load(Ordering::Acquire);
            tokio::select! {
                result = conn.as_mut() => break result,
                () = slot.evicted(), if waiting => {
                    tracing::debug!(peer = %self.peer, "evicted by a newer connection (listener full)");
                    return;
                }
                _ = closing.changed(), if hard_close.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    hard_close = Some(Instant::now() + self.limits.shutdown_grace);
                }
                () = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if hard_close.is_some_and(|at| now >= at) {
                        tracing::debug!(peer = %self.peer, "connection dropped after its grace");
                        return;
                    }
                    if hard_close.is_some() {
                        continue;
                    }
                    if !activity.served.load(Ordering::Acquire) {
                        if now >= first_deadline {
                            tracing::debug!(peer = %self.peer, "no request in time: closed");
                            return;
                        }
                        continue;
                    }
                    let idle = activity.in_flight.load(Ordering::Acquire) == 0
                        && now
                            >= self.accepted
                                + Duration::from_millis(
                                    activity.last_done_ms.load(Ordering::Acquire),
                                )
                                + self.limits.idle;
                    if idle || now >= max_age_at {
                        tracing::debug!(peer = %self.peer, idle, "closing the connection gracefully");
                        conn.as_mut().graceful_shutdown();
                        hard_close = Some(now + self.limits.drain);
                    }
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error");
        }
    }
}

/// The connection's bytes: plain TCP or TLS over it.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
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
    // Anyone can make these: while the disk is short they are counted, not recorded.
    if app.disk.audit_short() {
        app.public_tally.count_refused_handshake();
        return;
    }
    // Nothing is answered on the strength of this record: no need to wait for it.
    app.audit
        .record_detached(crate::audit::Event::HandshakeRefused {
            peer: peer.to_string(),
            reason: why.chars().take(256).collect(),
        });
}
