//! A plain-HTTP/1.1 load generator for benchmarks: `clients` connections, each sending one
//! request after the other for a given time, with the latency of every answer recorded.
//!
//! Each client keeps its connection alive as long as the server does. A server that closes
//! after every answer (an HTTP/1.0 answer without keep-alive, or `Connection: close`, as
//! OpenSSL's `ocsp -port` responder does) costs that client a new connection before its next
//! request; the connection time then counts in that request's latency, as it would for a
//! real client, and [`LoadReport::connections`] shows how many connections were made.
//!
//! The generator is bounded in time: no request starts after `duration`, and every request
//! (connection included) is abandoned after [`LoadRequest::timeout`] and counted as an
//! error, so [`run`] returns within `duration + timeout` (plus one warm-up request per
//! client, bounded the same way). It runs on one thread (a current-thread tokio runtime) so
//! that on a small machine it takes at most one core from the server it measures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;

/// A check of an answer's body, run on every answer whose status is the expected one; an
/// `Err` counts the answer as an error and its message may become [`LoadReport::first_error`].
pub type Check = Arc<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;

/// How a request is sent.
#[derive(Clone, Debug)]
pub enum Method {
    /// `GET path`, no body.
    Get,
    /// `POST path` with this `Content-Type` and body.
    Post {
        /// The `Content-Type` header.
        content_type: String,
        /// The body, sent as is.
        body: Bytes,
    },
}

/// The one request every client sends over and over, and what a good answer is.
#[derive(Clone)]
pub struct LoadRequest {
    /// GET or POST (with its body).
    pub method: Method,
    /// The request target, from its leading `/` (already percent-encoded where needed).
    pub path: String,
    /// The status a good answer has (200 unless changed).
    pub expect_status: u16,
    /// An optional check of a good answer's body.
    pub check: Option<Check>,
    /// How long one request may take, connection included, before it counts as an error.
    pub timeout: Duration,
}

/// The per-request timeout unless changed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl LoadRequest {
    /// `POST path` with `content_type` and `body`, expecting 200.
    pub fn post(path: &str, content_type: &str, body: impl Into<Bytes>) -> LoadRequest {
        LoadRequest {
            method: Method::Post {
                content_type: content_type.to_owned(),
                body: body.into(),
            },
            path: path.to_owned(),
            expect_status: 200,
            check: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// `GET path`, expecting 200.
    pub fn get(path: &str) -> LoadRequest {
        LoadRequest {
            method: Method::Get,
            path: path.to_owned(),
            expect_status: 200,
            check: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Expect `status` instead of 200.
    pub fn expect_status(mut self, status: u16) -> LoadRequest {
        self.expect_status = status;
        self
    }

    /// Check every answer's body with `check`.
    pub fn check(
        mut self,
        check: impl Fn(&[u8]) -> Result<(), String> + Send + Sync + 'static,
    ) -> LoadRequest {
        self.check = Some(Arc::new(check));
        self
    }

    /// Give up on a request after `timeout` instead of [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> LoadRequest {
        self.timeout = timeout;
        self
    }
}

impl std::fmt::Debug for LoadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("expect_status", &self.expect_status)
            .field("check", &self.check.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Concurrent clients (connections at any one time).
    pub clients: usize,
    /// Good answers (expected status, check passed) within the measured time.
    pub count: u64,
    /// Good answers per second of measured time.
    pub rate: f64,
    /// Median latency of the good answers.
    pub p50: Duration,
    /// 99th percentile latency of the good answers.
    pub p99: Duration,
    /// Failed requests: another status, a failed check, an I/O error or a timeout
    /// (warm-up requests included).
    pub errors: u64,
    /// The first error's description, if any.
    pub first_error: Option<String>,
    /// TCP connections made, warm-up included: `clients` if the server keeps them alive.
    pub connections: u64,
    /// The measured time: from the first measured request to the last answer.
    pub elapsed: Duration,
}

/// Run `clients` clients against `addr` for `duration`, each on its own connection sending
/// `request` back to back, after one unmeasured warm-up request per client.
///
/// Blocking; it runs its own single-threaded tokio runtime, so it must not be called from
/// inside a tokio runtime.
pub fn run(
    addr: SocketAddr,
    request: LoadRequest,
    clients: usize,
    duration: Duration,
) -> LoadReport {
    assert!(clients > 0, "at least one client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let request = Arc::new(request);
    let report = rt.block_on(async move {
        let mut stats = Stats::default();
        // Warm up: connect every client and send one request each, unmeasured.
        let warm: Vec<_> = (0..clients)
            .map(|_| {
                let request = Arc::clone(&request);
                tokio::spawn(async move {
                    let mut stats = Stats::default();
                    let mut conn = None;
                    let _ = attempt(addr, &request, &mut conn, &mut stats).await;
                    (conn, stats)
                })
            })
            .collect();
        let mut conns = Vec::with_capacity(clients);
        for task in warm {
            let (conn, s) = task.await.expect("warm-up task");
            stats.merge(s);
            conns.push(conn);
        }
        let start = Instant::now();
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|mut conn| {
                let request = Arc::clone(&request);
                tokio::spawn(async move {
                    let mut stats = Stats::default();
                    while start.elapsed() < duration {
                        let t = Instant::now();
                        if attempt(addr, &request, &mut conn, &mut stats).await {
                            stats.latencies.push(t.elapsed());
                        }
                    }
                    stats
                })
            })
            .collect();
        for task in tasks {
            stats.merge(task.await.expect("client task"));
        }
        let elapsed = start.elapsed();
        stats.report(clients, elapsed)
    });
    // Dropping the runtime drops the idle connections and their driver tasks.
    drop(rt);
    report
}

/// Send `request` once on a fresh connection and return the status and body: the same
/// client code as [`run`], for checking a server's answer before loading it.
pub fn fetch(addr: SocketAddr, request: &LoadRequest) -> Result<(u16, Bytes), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let mut connections = 0;
        let mut conn = None;
        tokio::time::timeout(
            request.timeout,
            exchange(addr, request, &mut conn, &mut connections),
        )
        .await
        .map_err(|_| format!("no answer within {:?}", request.timeout))?
    })
}

/// One keep-alive connection.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
}

#[derive(Default)]
struct Stats {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
    connections: u64,
}

impl Stats {
    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    fn merge(&mut self, other: Stats) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.connections += other.connections;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn report(mut self, clients: usize, elapsed: Duration) -> LoadReport {
        self.latencies.sort_unstable();
        let pct = |p: f64| {
            let n = self.latencies.len();
            if n == 0 {
                return Duration::ZERO;
            }
            self.latencies[((n as f64 * p) as usize).min(n - 1)]
        };
        LoadReport {
            clients,
            count: self.latencies.len() as u64,
            rate: self.latencies.len() as f64 / elapsed.as_secs_f64().max(1e-9),
            p50: pct(0.50),
            p99: pct(0.99),
            errors: self.errors,
            first_error: self.first_error,
            connections: self.connections,
            elapsed,
        }
    }
}

/// One request with the timeout; records an error and returns false if it was not good.
/// After an I/O error or a timeout the connection is dropped (the next attempt makes a new
/// one) and the client pauses briefly, so that a server that is down is not spun on.
async fn attempt(
    addr: SocketAddr,
    request: &LoadRequest,
    conn: &mut Option<Conn>,
    stats: &mut Stats,
) -> bool {
    let result = tokio::time::timeout(
        request.timeout,
        exchange(addr, request, conn, &mut stats.connections),
    )
    .await;
    let io_error = match result {
        Ok(Ok((status, body))) => {
            if status != request.expect_status {
                stats.error(format!(
                    "status {status} (expected {}): {}",
                    request.expect_status,
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ));
                return false;
            }
            if let Some(check) = &request.check {
                if let Err(e) = check(&body) {
                    stats.error(format!("bad answer: {e}"));
                    return false;
                }
            }
            return true;
        }
        Ok(Err(e)) => e,
        Err(_) => format!("no answer within {:?}", request.timeout),
    };
    stats.error(io_error);
    *conn = None;
    tokio::time::sleep(Duration::from_millis(10)).await;
    false
}

/// Send the request on `conn`, connecting first if there is none or the server closed it;
/// read the whole answer.
async fn exchange(
    addr: SocketAddr,
    request: &LoadRequest,
    conn: &mut Option<Conn>,
    connections: &mut u64,
) -> Result<(u16, Bytes), String> {
    // `ready` waits until the connection can take another request, or fails once the server
    // has closed it (or said it would).
    if let Some(c) = conn.as_mut() {
        if c.sender.ready().await.is_err() {
            *conn = None;
        }
    }
    if conn.is_none() {
        *connections += 1;
        *conn = Some(connect(addr).await?);
    }
    let c = conn.as_mut().expect("connected above");
    let builder = Request::builder()
        .uri(request.path.as_str())
        .header("host", addr.to_string());
    let req = match &request.method {
        Method::Get => builder.method("GET").body(Full::new(Bytes::new())),
        Method::Post { content_type, body } => builder
            .method("POST")
            .header("content-type", content_type.as_str())
            .body(Full::new(body.clone())),
    }
    .map_err(|e| format!("bad request: {e}"))?;
    let resp = c
        .sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, body))
}

async fn connect(addr: SocketAddr) -> Result<Conn, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (sender, driver) = http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = driver.await;
    });
    Ok(Conn { sender })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on a background thread that answers every request with `answer`, or never
    /// answers if `answer` is None; `close` closes the connection after each answer.
    fn server(answer: Option<&'static [u8]>, close: bool) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (mut s, _) = listener.accept().await.unwrap();
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 4096];
                        loop {
                            let n = match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            buf.extend_from_slice(&chunk[..n]);
                            // Requests here are small: one per read, headers and body.
                            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                                let len: usize = head
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length:"))
                                    .map(|v| v.trim().parse().unwrap())
                                    .unwrap_or(0);
                                if buf.len() < end + 4 + len {
                                    break;
                                }
                                buf.drain(..end + 4 + len);
                                let Some(a) = answer else { continue };
                                if s.write_all(a).await.is_err() || close {
                                    return;
                                }
                            }
                        }
                    });
                }
            });
        });
        addr
    }

    const OK_KEEP_ALIVE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    const OK_CLOSE: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";

    #[test]
    fn keep_alive_uses_one_connection_per_client() {
        let addr = server(Some(OK_KEEP_ALIVE), false);
        let r = run(
            addr,
            LoadRequest::post("/x", "application/octet-stream", &b"body"[..])
                .check(|b| (b == b"ok").then_some(()).ok_or("not ok".into())),
            3,
            Duration::from_millis(300),
        );
        assert!(r.count > 10, "{r:?}");
        assert_eq!(r.errors, 0, "{r:?}");
        assert_eq!(r.connections, 3, "{r:?}");
        assert!(r.p50 <= r.p99);
    }

    #[test]
    fn reconnects_when_the_server_closes() {
        let addr = server(Some(OK_CLOSE), true);
        let r = run(addr, LoadRequest::get("/y"), 2, Duration::from_millis(300));
        assert!(r.count > 10, "{r:?}");
        assert_eq!(r.errors, 0, "{r:?}");
        // One connection per request, warm-up included.
        assert_eq!(r.connections, r.count + 2, "{r:?}");
    }

    #[test]
    fn wrong_status_and_failed_checks_are_errors() {
        let addr = server(Some(OK_KEEP_ALIVE), false);
        let r = run(
            addr,
            LoadRequest::get("/").expect_status(204),
            1,
            Duration::from_millis(100),
        );
        assert_eq!(r.count, 0);
        assert!(r.errors > 0);
        assert!(r.first_error.unwrap().contains("status 200"));
        let r = run(
            addr,
            LoadRequest::get("/").check(|_| Err("nope".into())),
            1,
            Duration::from_millis(100),
        );
        assert_eq!(r.count, 0);
        assert!(r.first_error.unwrap().contains("nope"));
    }

    #[test]
    fn a_silent_server_does_not_hang_the_run() {
        let addr = server(None, false);
        let t = Instant::now();
        let r = run(
            addr,
            LoadRequest::get("/").timeout(Duration::from_millis(200)),
            4,
            Duration::from_millis(300),
        );
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(r.count, 0);
        assert!(r.errors >= 4, "{r:?}");
        assert!(r.first_error.unwrap().contains("no answer"));
    }

    #[test]
    fn nothing_listening_is_an_error_not_a_hang() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let r = run(port, LoadRequest::get("/"), 2, Duration::from_millis(100));
        assert_eq!(r.count, 0);
        assert!(r.errors > 0);
        assert!(fetch(port, &LoadRequest::get("/")).is_err());
    }
}
