//! The connection budget, against a real signetd: 600 silent connections to the public port
//! and 600 to the API port (sending nothing, or only the start of an HTTP/2 preface) are each
//! closed within the first-request deadline while `/healthz` answers on both within a second
//! on fresh connections from another address; a keep-alive connection (HTTP/1.1 or HTTP/2)
//! left idle is closed within the idle deadline and a busy one at its maximum age; 2,000
//! handshakes a second from one address are throttled while another address is served.
//!
//! Sources are loopback addresses: Linux routes all of 127/8 to `lo`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use signet_e2e::client::demo_client_config;
use signet_e2e::Appliance;

/// The deadline from accept to the first request head, in this test.
const FIRST_REQUEST_SECS: u64 = 2;
/// The idle deadline between requests.
const IDLE_SECS: u64 = 3;
/// The maximum age of a connection.
const MAX_AGE_SECS: u64 = 5;
/// New connections per second (and burst) allowed to one source.
const PER_SEC: u64 = 20;
const BURST: u64 = 20;
/// Silent connections per listener, and the sources they come from.
const SILENT: usize = 600;
const SILENT_SOURCES: usize = 60;
/// Slack for scheduling on a busy CI machine.
const SLACK: Duration = Duration::from_millis(1500);

fn ip(a: u8, b: u8, c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, a, b, c))
}

async fn connect_from(source: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let tcp = socket.connect(to).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

async fn tls_from(
    source: IpAddr,
    to: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = connect_from(source, to).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(name, tcp)
        .await
}

/// `GET /healthz` with `Connection: close`; true when the answer is 200 "ok".
async fn healthz_on<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> bool {
    let req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if s.write_all(req).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer).await;
    answer.starts_with(b"HTTP/1.1 200") && answer.ends_with(b"ok\n")
}

/// `/healthz` on a fresh connection from `source`: how long it took, or why it failed.
async fn healthz(
    source: IpAddr,
    to: SocketAddr,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Duration, String> {
    let started = Instant::now();
    let ok = tokio::time::timeout(Duration::from_secs(5), async {
        match tls {
            Some(tls) => match tls_from(source, to, tls).await {
                Ok(s) => healthz_on(s).await,
                Err(_) => false,
            },
            None => match connect_from(source, to).await {
                Ok(s) => healthz_on(s).await,
                Err(_) => false,
            },
        }
    })
    .await;
    match ok {
        Ok(true) => Ok(started.elapsed()),
        Ok(false) => Err(format!("no answer after {:?}", started.elapsed())),
        Err(_) => Err("timed out after 5s".into()),
    }
}

/// Open a connection from `source`, send `first` (maybe nothing), then wait for the server to
/// close it: how long after connecting, or None if it stayed open past `limit`.
async fn silent(
    source: IpAddr,
    to: SocketAddr,
    first: &'static [u8],
    limit: Duration,
) -> Option<Duration> {
    let mut tcp = connect_from(source, to).await.expect("connect");
    let started = Instant::now();
    if !first.is_empty() {
        let _ = tcp.write_all(first).await;
    }
    let mut buf = [0u8; 1024];
    let read_until_closed = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    };
    match tokio::time::timeout(limit, read_until_closed).await {
        Ok(()) => Some(started.elapsed()),
        Err(_) => None,
    }
}

const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2.0\r\n";
/// The whole client preface and an empty SETTINGS frame, and then no request.
const H2_PREFACE_SETTINGS: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

async fn silent_flood(t: &Target) {
    let deadline = Duration::from_secs(FIRST_REQUEST_SECS);
    let limit = deadline + SLACK + Duration::from_secs(3);
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for (listener, to) in [("public", t.public), ("api", t.api)] {
        for i in 0..SILENT {
            let source = ip(
                1,
                if listener == "api" { 1 } else { 2 },
                (i % SILENT_SOURCES) as u8,
            );
            let first: &'static [u8] = match (listener, i % 3) {
                ("public", 1) => H2_PREFACE_START,
                ("public", 2) => H2_PREFACE_SETTINGS,
                _ => b"",
            };
            tasks.spawn(async move {
                (
                    listener,
                    first.len(),
                    silent(source, to, first, limit).await,
                )
            });
            // A flood, but one the kernel's accept queue takes whole: the deadline runs
            // from accept, and the queue is the kernel's.
            if i % 100 == 99 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    // Meanwhile: /healthz on fresh connections from another address, four times a second.
    let probe = {
        let (done, api, public, tls) = (Arc::clone(&done), t.api, t.public, Arc::clone(&t.tls));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        std::thread::spawn(move || {
            rt.block_on(async move {
                let mut worst = Duration::ZERO;
                let mut probes = 0;
                while !done.load(Ordering::Acquire) {
                    let (a, p) = tokio::join!(
                        healthz(ip(0, 0, 2), api, Some(&tls)),
                        healthz(ip(0, 0, 2), public, None)
                    );
                    for (what, r) in [("api", a), ("public", p)] {
                        let took = r.unwrap_or_else(|e| panic!("/healthz on {what}: {e}"));
                        assert!(
                            took <= Duration::from_secs(1),
                            "/healthz on {what} took {took:?}"
                        );
                        worst = worst.max(took);
                    }
                    probes += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                (probes, worst)
            })
        })
    };
    let mut closed = Vec::new();
    let mut open = std::collections::BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("silent connection task") {
            (listener, _, Some(after)) => closed.push((listener, after)),
            (listener, sent, None) => *open.entry((listener, sent)).or_insert(0) += 1,
        }
    }
    assert!(
        open.is_empty(),
        "silent connections still open after {limit:?} (listener, bytes sent): count: {open:?}"
    );
    done.store(true, Ordering::Release);
    let (probes, worst) = probe
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    for listener in ["public", "api"] {
        let mut times: Vec<Duration> = closed
            .iter()
            .filter(|(l, _)| *l == listener)
            .map(|(_, d)| *d)
            .collect();
        times.sort();
        let (first, median, last) = (times[0], times[times.len() / 2], times[times.len() - 1]);
        println!(
            "{listener}: {} silent connections closed after {first:?} .. {median:?} (median) .. {last:?}",
            times.len()
        );
        assert_eq!(times.len(), SILENT);
        assert!(
            last <= deadline + SLACK,
            "{listener}: closed after {last:?}"
        );
        // They were held (accepted and served), not refused at once.
        assert!(
            median + Duration::from_millis(500) >= deadline,
            "{listener}: median {median:?}"
        );
    }
    println!("/healthz answered {probes} times on both listeners meanwhile, slowest {worst:?}");
    assert!(probes >= 2, "only {probes} probes");
}

/// A keep-alive connection left idle after one request is closed within the idle deadline;
/// one that keeps asking is closed at its maximum age.
async fn idle_and_age(t: &Target) {
    let idle = async {
        let tcp = connect_from(ip(0, 0, 5), t.public).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
                .await
                .unwrap();
        let conn = tokio::spawn(conn);
        let started = Instant::now();
        let resp = sender
            .send_request(
                Request::get("/healthz")
                    .header("host", "x")
                    .body(Empty::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert!(resp.status().is_success());
        let _ = resp.into_body().collect().await;
        let limit = Duration::from_secs(IDLE_SECS) + SLACK + Duration::from_secs(3);
        tokio::time::timeout(limit, conn)
            .await
            .unwrap_or_else(|_| panic!("an idle connection still open after {limit:?}"))
            .expect("connection task")
            .ok();
        started.elapsed()
    };
    // HTTP/2 (prior knowledge): no header timeout applies between streams; the idle
    // deadline does.
    let idle_h2 = async {
        let tcp = connect_from(ip(0, 0, 7), t.public).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(tcp),
        )
        .await
        .unwrap();
        let conn = tokio::spawn(conn);
        let started = Instant::now();
        let req = Request::get("http://x/healthz").body(Empty::new()).unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert!(resp.status().is_success());
        let _ = resp.into_body().collect().await;
        let limit = Duration::from_secs(IDLE_SECS) + SLACK + Duration::from_secs(3);
        tokio::time::timeout(limit, conn)
            .await
            .unwrap_or_else(|_| panic!("an idle HTTP/2 connection still open after {limit:?}"))
            .expect("connection task")
            .ok();
        started.elapsed()
    };
    let busy = async {
        let tls = tls_from(ip(0, 0, 6), t.api, &t.tls)
            .await
            .expect("handshake");
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let started = Instant::now();
        let limit = Duration::from_secs(MAX_AGE_SECS) + SLACK + Duration::from_secs(3);
        let mut answered = 0;
        while started.elapsed() < limit {
            if sender.ready().await.is_err() {
                break;
            }
            let req = Request::get("/healthz")
                .header("host", "x")
                .body(Empty::new())
                .unwrap();
            match sender.send_request(req).await {
                Ok(resp) => {
                    assert!(resp.status().is_success());
                    let _ = resp.into_body().collect().await;
                    answered += 1;
                }
                Err(_) => break,
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        (started.elapsed(), answered)
    };
    let (idle_closed, idle_h2_closed, (age_closed, answered)) = tokio::join!(idle, idle_h2, busy);
    println!("idle HTTP/2 connection closed after {idle_h2_closed:?}");
    assert!(
        idle_h2_closed >= Duration::from_secs(IDLE_SECS) - Duration::from_millis(500)
            && idle_h2_closed <= Duration::from_secs(IDLE_SECS) + SLACK,
        "idle HTTP/2 connection closed after {idle_h2_closed:?}"
    );
    println!("idle keep-alive connection closed after {idle_closed:?}; busy one after {age_closed:?} ({answered} requests)");
    assert!(
        idle_closed <= Duration::from_secs(IDLE_SECS) + SLACK,
        "{idle_closed:?}"
    );
    assert!(
        age_closed >= Duration::from_secs(MAX_AGE_SECS) - Duration::from_millis(500)
            && age_closed <= Duration::from_secs(MAX_AGE_SECS) + SLACK,
        "busy connection closed after {age_closed:?}"
    );
    assert!(answered >= 10, "{answered}");
}

/// 2,000 handshakes a second for two seconds from one address: at most the burst and the rate
/// get through; another address meanwhile handshakes and is answered within a second.
async fn handshake_flood(t: &Target) {
    let attacker = ip(0, 0, 3);
    let (ok, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let flood = {
        let (ok, refused, api, tls) = (
            Arc::clone(&ok),
            Arc::clone(&refused),
            t.api,
            Arc::clone(&t.tls),
        );
        async move {
            let started = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            let mut sent = 0usize;
            while started.elapsed() < Duration::from_secs(2) {
                tick.tick().await;
                // Keep to 2,000 a second whatever the timer's granularity.
                let due = (started.elapsed().as_secs_f64() * 2000.0) as usize;
                while sent < due.min(4000) {
                    let (ok, refused, tls) =
                        (Arc::clone(&ok), Arc::clone(&refused), Arc::clone(&tls));
                    tasks.spawn(async move {
                        let attempt = tokio::time::timeout(
                            Duration::from_secs(5),
                            tls_from(attacker, api, &tls),
                        )
                        .await;
                        match attempt {
                            Ok(Ok(_)) => ok.fetch_add(1, Ordering::Relaxed),
                            _ => refused.fetch_add(1, Ordering::Relaxed),
                        };
                    });
                    sent += 1;
                }
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
            (sent, started.elapsed())
        }
    };
    let served = async {
        // Let the flood get going first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut worst = Duration::ZERO;
        for _ in 0..6 {
            let took = healthz(ip(0, 0, 4), t.api, Some(&t.tls))
                .await
                .unwrap_or_else(|e| panic!("/healthz from another address during the flood: {e}"));
            worst = worst.max(took);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        worst
    };
    let ((sent, took), worst) = tokio::join!(flood, served);
    let (ok, refused) = (ok.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    println!(
        "handshake flood: {sent} attempts in {took:?}, {ok} handshakes completed, {refused} refused; \
         another address answered within {worst:?}"
    );
    assert!(sent >= 3000, "only {sent} attempts");
    let allowed = BURST + PER_SEC * (took.as_secs() + 2);
    assert!(
        ok as u64 <= allowed,
        "{ok} handshakes got through (allowed {allowed})"
    );
    assert!(ok >= 1, "the rate lets some through");
    assert!(
        worst <= Duration::from_secs(1),
        "another address waited {worst:?}"
    );
}

struct Target {
    api: SocketAddr,
    public: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

fn budget(t: &mut toml::Table, listener: &str) {
    let section = t
        .entry(listener)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .unwrap();
    let mut b = toml::Table::new();
    for (key, value) in [
        ("first_request_secs", FIRST_REQUEST_SECS),
        ("idle_secs", IDLE_SECS),
        ("max_age_secs", MAX_AGE_SECS),
        ("max_per_source", 64),
        ("handshakes_per_sec", PER_SEC),
        ("handshake_burst", BURST),
    ] {
        b.insert(key.into(), (value as i64).into());
    }
    section.insert("connections".into(), toml::Value::Table(b));
}

#[test]
fn silent_and_hasty_connections_stay_within_their_budget() {
    // 1,200 client sockets here and as many in signetd (which inherits the limit).
    if let Ok((_, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        let _ = nix::sys::resource::setrlimit(
            nix::sys::resource::Resource::RLIMIT_NOFILE,
            hard.min(65_536),
            hard,
        );
    }
    let mut app = Appliance::init_with(|t| {
        budget(t, "api");
        budget(t, "public");
        let api = t.get_mut("api").and_then(|v| v.as_table_mut()).unwrap();
        api.insert("header_timeout_secs".into(), 2.into());
    });
    let api = app.start();
    let public = app.public_addr.expect("public listener");
    let t = Target {
        api,
        public,
        tls: demo_client_config(&app),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            let started = Instant::now();
            silent_flood(&t).await;
            idle_and_age(&t).await;
            handshake_flood(&t).await;
            println!("connection budget checks took {:?}", started.elapsed());
        })
    }));
    if let Err(panic) = outcome {
        let log = app.log();
        let tail: Vec<&str> = log
            .lines()
            .rev()
            .filter(|l| !l.contains("signet::audit"))
            .take(4000)
            .collect();
        eprintln!("signetd's last log lines:");
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
        std::panic::resume_unwind(panic);
    }
    assert!(app.stop().expect("was running").success(), "{}", app.log());
    let log = app.log();
    assert!(!log.contains("panicked"), "signetd panicked:\n{log}");
}
