//! Hostile input to every endpoint of one running appliance: empty bodies, a valid request cut
//! at every length, the wrong Content-Type, bodies over the limit, DER nested ten thousand deep,
//! DER with trailing bytes, huge declared lengths; then slowloris headers and a flood of tiny
//! requests on one keep-alive connection. Each gets its protocol's own error (TSA: a
//! TimeStampResp with badRequest; OCSP: malformedRequest; the JSON and PDF API: a 4xx
//! problem+json), the daemon answers /healthz after every group, and its memory comes back
//! to near where it started.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_ocsp::OcspResponseStatus;

use signet_e2e::client::{demo_client_config, Connection};
use signet_e2e::{ocsp, repo_root, tsp, Appliance};

/// The daemon's header timeout in this test: slowloris must be cut off within it.
const HEADER_TIMEOUT_SECS: u64 = 3;
/// Body limits in this test (small, so "over the limit" is cheap to send).
const MAX_BODY: usize = 65_536;
const MAX_JSON: usize = 262_144;
const MAX_STREAM: usize = 1_048_576;

const TSQ: &str = "application/timestamp-query";
const OCSP_REQ: &str = "application/ocsp-request";
const JSON: &str = "application/json";
const PDF: &str = "application/pdf";

/// One answer: status, Content-Type, body.
type Answer = (StatusCode, String, Bytes);

struct Target {
    app: Appliance,
    api: SocketAddr,
    public: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

impl Target {
    async fn api(&self) -> Connection {
        Connection::connect(self.api, Arc::clone(&self.tls))
            .await
            .expect("connect to the API")
    }

    async fn public(&self) -> Connection {
        Connection::connect_plain(self.public)
            .await
            .expect("connect to the public listener")
    }

    /// The daemon still answers, on both listeners, and has not died.
    async fn assert_alive(&self, after: &str) {
        for mut conn in [self.api().await, self.public().await] {
            let (status, _, body) = send(&mut conn, Method::GET, "/healthz", None, b"").await;
            assert_eq!(status, StatusCode::OK, "/healthz after {after}");
            assert_eq!(&body[..], b"ok\n", "/healthz after {after}");
        }
        assert!(
            std::fs::metadata(format!("/proc/{}", self.app.pid())).is_ok(),
            "signetd died during {after}"
        );
    }
}

/// Send one request; a connection the daemon closed is reconnected by the caller.
async fn try_send(
    conn: &mut Connection,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> hyper::Result<Answer> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
    let (status, headers, body) = conn.send(req).await?;
    let ct = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    Ok((status, ct, body))
}

async fn send(
    conn: &mut Connection,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Answer {
    try_send(conn, method, path, content_type, body)
        .await
        .unwrap_or_else(|e| panic!("{path}: no answer for a body of {} bytes: {e}", body.len()))
}

/// Send one request on `conn`; when the daemon had closed it (as HTTP/1.1 allows after an
/// error), once more on a fresh connection from `reconnect`.
async fn ask<F, Fut>(
    conn: &mut Connection,
    reconnect: F,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Answer
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Connection>,
{
    match try_send(conn, method.clone(), path, content_type, body).await {
        Ok(a) => a,
        Err(_) => {
            *conn = reconnect().await;
            send(conn, method, path, content_type, body).await
        }
    }
}

/// POSTs every body with [`ask`] and checks each answer.
async fn each<F, Fut>(
    conn: &mut Connection,
    reconnect: F,
    path: &str,
    content_type: Option<&str>,
    bodies: &[Vec<u8>],
    check: impl Fn(&[u8], &Answer),
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Connection>,
{
    for body in bodies {
        let answer = ask(conn, &reconnect, Method::POST, path, content_type, body).await;
        check(body, &answer);
    }
}

// ---- the inputs ----

/// A DER header for `tag` over `len` content bytes.
fn der_header(tag: u8, len: usize) -> Vec<u8> {
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out
}

/// `depth` SEQUENCEs, each properly encoded inside the next, around a NULL.
fn nested_der(depth: usize) -> Vec<u8> {
    let mut inner = vec![0x05, 0x00];
    for _ in 0..depth {
        let mut outer = der_header(0x30, inner.len());
        outer.extend_from_slice(&inner);
        inner = outer;
    }
    inner
}

/// The malformed DER bodies every DER endpoint gets, from a valid request.
fn bad_der(valid: &[u8]) -> Vec<Vec<u8>> {
    let mut bodies = vec![Vec::new()];
    // Every strict prefix.
    bodies.extend((1..valid.len()).map(|n| valid[..n].to_vec()));
    // Trailing data: one byte, and a whole second request.
    bodies.push([valid, &[0]].concat());
    bodies.push([valid, valid].concat());
    // Ten thousand nested SEQUENCEs (~40 KB, under the body limit).
    let nested = nested_der(10_000);
    assert!(
        nested.len() < MAX_BODY,
        "nested DER is {} bytes",
        nested.len()
    );
    bodies.push(nested);
    // Indefinite lengths nested (BER, not DER).
    bodies.push([[0x30u8, 0x80].repeat(10_000), vec![0; 20_000]].concat());
    // Huge declared lengths: 2^31-1, 2^64-1, and a length of length 127.
    bodies.push(vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01]);
    bodies.push([&[0x30, 0x88][..], &[0xff; 8], &[0x02, 0x01, 0x01]].concat());
    bodies.push([&[0x30, 0xff][..], &[0xff; 127]].concat());
    // The valid request with its outer length inflated.
    let mut inflated = valid.to_vec();
    inflated[1] = 0x84;
    inflated.splice(2..2, [0x7f, 0xff, 0xff]);
    bodies.push(inflated);
    bodies
}

fn sample_lengths(len: usize, count: usize) -> Vec<usize> {
    let step = (len / count).max(1);
    (0..len).step_by(step).collect()
}

fn digest_b64(n: usize) -> String {
    B64.encode(vec![0x5a; n])
}

/// The JSON bodies every JSON endpoint gets that must be refused with a 4xx.
fn bad_json(valid: &[u8]) -> Vec<Vec<u8>> {
    let mut bodies = vec![Vec::new()];
    bodies.extend(
        sample_lengths(valid.len(), 40)
            .into_iter()
            .filter(|n| *n > 0)
            .map(|n| valid[..n].to_vec()),
    );
    bodies.push([valid, b"{}"].concat());
    bodies.push([valid, b" trailing"].concat());
    bodies.push(b"null".to_vec());
    bodies.push(b"[]".to_vec());
    bodies.push(vec![0xff, 0xfe, 0x00]);
    bodies.push("[".repeat(100_000).into_bytes());
    bodies.push(format!("{}1{}", "{\"a\":".repeat(20_000), "}".repeat(20_000)).into_bytes());
    bodies.push(
        br#"{"digest":"AAAA","digest_algorithm":"sha256","scheme":"ecdsa","digests":[]}"#.to_vec(),
    );
    bodies.push(
        format!(
            r#"{{"digest":"{}","digest_algorithm":"sha256","scheme":"ecdsa"}}"#,
            "!".repeat(1000)
        )
        .into_bytes(),
    );
    bodies.push(br#"{"digest":"AAAA","digest_algorithm":"md5","scheme":"ecdsa"}"#.to_vec());
    bodies.push(br#"{"digest":1e999999,"digest_algorithm":"sha256","scheme":"ecdsa"}"#.to_vec());
    bodies
}

/// A 4xx problem+json answer.
fn is_problem(answer: &Answer) -> bool {
    answer.0.is_client_error() && answer.1.starts_with("application/problem+json") && {
        let v: serde_json::Value = serde_json::from_slice(&answer.2).unwrap_or_default();
        v.get("status").and_then(serde_json::Value::as_u64) == Some(u64::from(answer.0.as_u16()))
    }
}

fn assert_problem(what: &str, body: &[u8], answer: &Answer) {
    assert!(
        is_problem(answer),
        "{what}, body of {} bytes: {} {} {}",
        body.len(),
        answer.0,
        answer.1,
        String::from_utf8_lossy(&answer.2[..answer.2.len().min(300)])
    );
}

// ---- memory ----

fn rss_kib(pid: u32) -> u64 {
    signet_e2e::process_rss_kib(pid).expect("VmRSS of the running daemon")
}

/// Samples the daemon's RSS every 20 ms until stopped; keeps the peak.
struct PeakWatch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl PeakWatch {
    fn start(pid: u32) -> PeakWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&peak));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(kib) = signet_e2e::process_rss_kib(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        PeakWatch { stop, peak, thread }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

// ---- the groups ----

async fn tsa(t: &Target) {
    let valid = tsp::request(b"hostile", 42, true);
    let mut conn = t.api().await;
    let reconnect = || t.api();
    let bodies = bad_der(&valid);
    each(
        &mut conn,
        reconnect,
        "/v1/tsa",
        Some(TSQ),
        &bodies,
        |body, (status, ct, resp)| {
            assert_eq!(*status, StatusCode::OK, "TSA, body of {} bytes", body.len());
            assert_eq!(ct, "application/timestamp-reply");
            assert_eq!(
                tsp::fail_bits(resp),
                vec![2],
                "TSA badRequest, body of {} bytes",
                body.len()
            );
        },
    )
    .await;
    for ct in [
        None,
        Some("application/json"),
        Some(OCSP_REQ),
        Some("text/plain"),
    ] {
        let (status, _, resp) = send(&mut conn, Method::POST, "/v1/tsa", ct, &valid).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "TSA with {ct:?}"
        );
        assert_eq!(tsp::fail_bits(&resp), vec![2], "TSA with {ct:?}");
    }
    let over = vec![0x30; MAX_BODY + 1];
    let (status, _, resp) = send(
        &mut t.api().await,
        Method::POST,
        "/v1/tsa",
        Some(TSQ),
        &over,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(tsp::fail_bits(&resp), vec![2]);
    // And the valid request still stamps.
    let (status, _, resp) = send(
        &mut t.api().await,
        Method::POST,
        "/v1/tsa",
        Some(TSQ),
        &valid,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(tsp::serial(&resp) > 0);
    println!(
        "tsa: {} malformed bodies, 4 media types, 1 oversize",
        bodies.len()
    );
}

async fn ocsp_post_and_get(t: &Target) {
    let root = ocsp::pki_cert(&t.app, "root-ca.pem");
    let valid = ocsp::request(&root, &[&ocsp::pki_cert(&t.app, "tsa.pem")], 16);
    let bodies = bad_der(&valid);
    let malformed = |what: &str, body: &[u8], (status, ct, resp): &Answer| {
        assert_eq!(*status, StatusCode::OK, "{what}, {} bytes", body.len());
        assert_eq!(ct, "application/ocsp-response", "{what}");
        assert_eq!(
            ocsp::status(resp),
            OcspResponseStatus::MalformedRequest,
            "{what}, {} bytes",
            body.len()
        );
    };
    // POST, on both listeners.
    for api in [false, true] {
        let mut conn = if api { t.api().await } else { t.public().await };
        let reconnect = || async {
            if api {
                t.api().await
            } else {
                t.public().await
            }
        };
        each(
            &mut conn,
            reconnect,
            "/ocsp",
            Some(OCSP_REQ),
            &bodies,
            |b, a| malformed("OCSP POST", b, a),
        )
        .await;
        for ct in [None, Some(TSQ), Some("text/plain")] {
            let (status, _, resp) = send(&mut conn, Method::POST, "/ocsp", ct, &valid).await;
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "OCSP with {ct:?}"
            );
            assert_eq!(ocsp::status(&resp), OcspResponseStatus::MalformedRequest);
        }
        let over = vec![0x30; MAX_BODY + 1];
        let (status, _, _) = send(
            &mut t.public().await,
            Method::POST,
            "/ocsp",
            Some(OCSP_REQ),
            &over,
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }
    // GET: the same DER, base64 in the path (percent-encoded as RFC 6960 wants).
    let mut conn = t.public().await;
    let mut gets = 0;
    for body in bodies.iter().filter(|b| b.len() < 4096) {
        let path = format!(
            "/ocsp/{}",
            B64.encode(body)
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        );
        let answer = ask(&mut conn, || t.public(), Method::GET, &path, None, b"").await;
        malformed("OCSP GET", body, &answer);
        gets += 1;
    }
    for path in [
        "/ocsp/%%%",
        "/ocsp/%ZZ",
        "/ocsp/!!!!",
        "/ocsp/AAAA",
        "/ocsp/A",
        "/ocsp/==",
    ] {
        let (status, ct, resp) = ask(&mut conn, || t.public(), Method::GET, path, None, b"").await;
        assert!(
            (status == StatusCode::OK
                && ocsp::status(&resp) == OcspResponseStatus::MalformedRequest)
                || (status.is_client_error() && !ct.is_empty()),
            "{path}: {status} {ct}"
        );
        gets += 1;
    }
    // A path far over any request's size.
    let long = format!("/ocsp/{}", "A".repeat(12_000));
    let answer = ask(&mut conn, || t.public(), Method::GET, &long, None, b"").await;
    assert!(
        answer.0.is_client_error()
            || ocsp::status(&answer.2) == OcspResponseStatus::MalformedRequest,
        "long GET: {}",
        answer.0
    );
    // The valid request still answers.
    let (status, _, resp) = send(
        &mut t.public().await,
        Method::POST,
        "/ocsp",
        Some(OCSP_REQ),
        &valid,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ocsp::statuses(&resp), ["good"]);
    println!(
        "ocsp: {} malformed bodies x 2 listeners, {gets} GET paths",
        bodies.len()
    );
}

async fn json_api(t: &Target) {
    let d32 = digest_b64(32);
    let routes: [(&str, String); 4] = [
        (
            "/v1/sign/doc-ec",
            format!(r#"{{"digest":"{d32}","digest_algorithm":"sha256","scheme":"ecdsa"}}"#),
        ),
        (
            "/v1/sign/doc-rsa/batch",
            format!(
                r#"{{"digests":["{d32}","{d32}"],"digest_algorithm":"sha256","scheme":"pss"}}"#
            ),
        ),
        (
            "/v1/cms/doc-ec",
            format!(r#"{{"digest":"{d32}","digest_algorithm":"sha256"}}"#),
        ),
        (
            "/v1/cms/doc-rsa?level=B-B&profile=cades",
            format!(r#"{{"digest":"{d32}","digest_algorithm":"sha256"}}"#),
        ),
    ];
    let mut sent = 0;
    for (path, valid) in &routes {
        let mut conn = t.api().await;
        // The valid body is taken.
        let (status, _, body) =
            send(&mut conn, Method::POST, path, Some(JSON), valid.as_bytes()).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
        let bodies = bad_json(valid.as_bytes());
        each(
            &mut conn,
            || t.api(),
            path,
            Some(JSON),
            &bodies,
            |b, a| assert_problem(path, b, a),
        )
        .await;
        sent += bodies.len() + 1;
        // Over the limit, declared or not.
        let over = [valid.as_bytes(), &vec![b' '; MAX_JSON]].concat();
        let answer = send(&mut t.api().await, Method::POST, path, Some(JSON), &over).await;
        assert_problem(path, &over, &answer);
        assert_eq!(answer.0, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        sent += 1;
        // The wrong Content-Type: the sign routes take JSON only; /v1/cms takes anything
        // else as data to hash, so it is no error there.
        if path.starts_with("/v1/sign") {
            for ct in [
                None,
                Some("text/plain"),
                Some(PDF),
                Some("application/jsonx"),
            ] {
                let answer = send(&mut conn, Method::POST, path, ct, valid.as_bytes()).await;
                assert_problem(path, valid.as_bytes(), &answer);
                assert_eq!(
                    answer.0,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "{path} {ct:?}"
                );
                sent += 1;
            }
        }
    }
    // Bad query strings and unknown keys.
    let mut conn = t.api().await;
    for path in [
        "/v1/cms/doc-ec?level=B-X",
        "/v1/cms/doc-ec?%ff%fe=1",
        "/v1/cms/doc-ec?level",
        "/v1/sign/no-such-key",
        "/v1/sign/%2e%2e",
        "/v1/cms/no-such-key",
    ] {
        let body = routes[0].1.as_bytes();
        let answer = ask(&mut conn, || t.api(), Method::POST, path, Some(JSON), body).await;
        assert_problem(path, body, &answer);
        sent += 1;
    }
    // The streaming CMS route, over its limit.
    let over = vec![b'x'; MAX_STREAM + 1];
    let answer = send(
        &mut t.api().await,
        Method::POST,
        "/v1/cms/doc-ec",
        Some("application/octet-stream"),
        &over,
    )
    .await;
    assert_problem("/v1/cms stream", &over, &answer);
    assert_eq!(answer.0, StatusCode::PAYLOAD_TOO_LARGE);
    println!("json api: {} hostile requests", sent + 1);
}

async fn pdf(t: &Target) {
    let valid =
        std::fs::read(repo_root().join("pki/tests/vectors/pdf/gs-1.4.pdf")).expect("vector");
    let path = "/v1/pdf/doc-ec";
    let mut conn = t.api().await;
    let (status, ct, signed) = send(&mut conn, Method::POST, path, Some(PDF), &valid).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&signed[..signed.len().min(300)])
    );
    assert_eq!(ct, PDF);
    let mut bodies: Vec<Vec<u8>> = vec![Vec::new()];
    bodies.extend(
        sample_lengths(valid.len(), 40)
            .into_iter()
            .filter(|n| *n > 0)
            .map(|n| valid[..n].to_vec()),
    );
    bodies.push(b"%PDF-1.7\n".to_vec());
    bodies.push(
        b"%PDF-1.7\ntrailer\n<< /Size 99999999999 /Root 1 0 R /Prev 9 >>\nstartxref\n9\n%%EOF\n"
            .to_vec(),
    );
    bodies.push(
        b"%PDF-1.7\nxref\n0 4294967295\ntrailer\n<< /Size 1 >>\nstartxref\n9\n%%EOF\n".to_vec(),
    );
    bodies.push(nested_der(1000));
    // Deep nesting in an object, and a trailer that points at itself.
    let mut deep = b"%PDF-1.7\n1 0 obj\n".to_vec();
    deep.extend("[".repeat(50_000).as_bytes());
    deep.extend(b"\nendobj\nstartxref\n9\n%%EOF\n");
    bodies.push(deep);
    each(
        &mut conn,
        || t.api(),
        path,
        Some(PDF),
        &bodies,
        |b, a| assert_problem(path, b, a),
    )
    .await;
    for ct in [None, Some(JSON), Some("text/plain")] {
        let answer = ask(&mut conn, || t.api(), Method::POST, path, ct, &valid).await;
        assert_problem(path, &valid, &answer);
        assert_eq!(answer.0, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
    }
    let over = [valid.clone(), vec![b'\n'; MAX_STREAM]].concat();
    let answer = send(&mut t.api().await, Method::POST, path, Some(PDF), &over).await;
    assert_problem(path, &over, &answer);
    assert_eq!(answer.0, StatusCode::PAYLOAD_TOO_LARGE);
    println!(
        "pdf: {} malformed bodies, 3 media types, 1 oversize",
        bodies.len()
    );
}

async fn crl(t: &Target) {
    let mut conn = t.public().await;
    let mut names = vec![
        "/crl/".to_owned(),
        "/crl/nope.crl".to_owned(),
        "/crl/..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/crl/%00".to_owned(),
        "/crl/root.crl%00.pem".to_owned(),
        format!("/crl/{}", "a".repeat(8000)),
    ];
    names.push("/crl/../../etc/passwd".to_owned());
    for path in &names {
        let answer = ask(&mut conn, || t.public(), Method::GET, path, None, b"").await;
        assert!(answer.0.is_client_error(), "{path}: {}", answer.0);
        if answer.0 == StatusCode::NOT_FOUND {
            assert_problem(path, b"", &answer);
        }
    }
    // A body on a GET, and a POST: refused, not crashed.
    let answer = send(&mut conn, Method::POST, "/crl/root.crl", Some(JSON), b"{}").await;
    assert!(answer.0.is_client_error(), "POST /crl: {}", answer.0);
    println!("crl: {} hostile paths", names.len() + 1);
}

/// Raw clients that send their first bytes one per second: the daemon must close each within
/// its header timeout (plus slack), whatever stage they are stuck in.
async fn slowloris(t: &Target) {
    let limit = Duration::from_secs(HEADER_TIMEOUT_SECS + 4);
    let request = b"POST /v1/tsa HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    // In TLS, after a full handshake: drip the HTTP headers.
    let tls_drip = async {
        let tcp = tokio::net::TcpStream::connect(t.api).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::clone(&t.tls))
            .connect(name, tcp)
            .await
            .expect("handshake");
        drip(&mut tls, request, limit).await
    };
    // In plain TCP to the mTLS port: drip a ClientHello that never completes.
    let tcp_drip = async {
        let mut tcp = tokio::net::TcpStream::connect(t.api).await.unwrap();
        drip(
            &mut tcp,
            &[
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0,
            ],
            limit,
        )
        .await
    };
    // On the public listener: drip the headers of an OCSP GET.
    let public_drip = async {
        let mut tcp = tokio::net::TcpStream::connect(t.public).await.unwrap();
        drip(&mut tcp, b"GET /ocsp/AAAA HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", limit).await
    };
    let (a, b, c) = tokio::join!(tls_drip, tcp_drip, public_drip);
    for (what, closed) in [
        ("TLS headers", a),
        ("TLS handshake", b),
        ("plain headers", c),
    ] {
        let closed =
            closed.unwrap_or_else(|| panic!("slowloris ({what}) still open after {limit:?}"));
        println!(
            "slowloris ({what}): closed after {closed:?} (header timeout {HEADER_TIMEOUT_SECS}s)"
        );
        assert!(closed <= limit, "{what}: {closed:?}");
    }
}

/// Writes `bytes` one per second; returns when the peer closed (write error or EOF), or None
/// if it still held the connection open after `limit`.
async fn drip<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    for byte in bytes.iter().cycle() {
        if started.elapsed() > limit {
            return None;
        }
        if stream.write_all(&[*byte]).await.is_err() || stream.flush().await.is_err() {
            return Some(started.elapsed());
        }
        // Wait a second, but notice a close (EOF or an error answer then EOF) at once.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
                Ok(Ok(_)) => continue,
            }
        }
    }
    None
}

/// Tiny requests back to back on one keep-alive connection, bounded in count and time:
/// 20,000 in CI; `SIGNET_KEEPALIVE_REQUESTS=1000000` for a million (about six minutes), which
/// must then all be sent within the hour.
async fn keep_alive_flood(t: &Target) {
    let wanted: Option<usize> = std::env::var("SIGNET_KEEPALIVE_REQUESTS")
        .ok()
        .map(|v| v.parse().expect("SIGNET_KEEPALIVE_REQUESTS: a count"));
    let (max_requests, max_time) = match wanted {
        Some(n) => (n, Duration::from_secs(3600)),
        None => (20_000, Duration::from_secs(20)),
    };
    let mut conn = t.api().await;
    let started = Instant::now();
    let (mut count, mut limited) = (0usize, 0usize);
    while count < max_requests && started.elapsed() < max_time {
        // Alternate the cheapest answer and a cheap refusal that goes through the audit log.
        let (status, _, resp) = if count % 2 == 0 {
            send(&mut conn, Method::GET, "/healthz", None, b"").await
        } else {
            send(&mut conn, Method::POST, "/v1/tsa", Some(TSQ), b"").await
        };
        match status {
            StatusCode::OK if count % 2 == 0 => {}
            StatusCode::OK => assert_eq!(tsp::fail_bits(&resp), vec![2]),
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("request {count} on one connection: {other}"),
        }
        count += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "keep-alive: {count} requests on one connection in {secs:.1}s ({:.0}/s), {limited} rate-limited",
        count as f64 / secs
    );
    assert!(count >= 1000, "only {count} requests in {secs:.1}s");
    if let Some(n) = wanted {
        assert_eq!(count, n, "the requests asked for were not all sent in time");
    }
}

#[test]
fn hostile_input_on_every_endpoint_is_refused_and_the_daemon_stays_well() {
    let mut app = Appliance::init_with(|t| {
        let api = t
            .entry("api")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .unwrap();
        api.insert(
            "header_timeout_secs".into(),
            (HEADER_TIMEOUT_SECS as i64).into(),
        );
        api.insert("max_body_bytes".into(), (MAX_BODY as i64).into());
        api.insert("max_json_bytes".into(), (MAX_JSON as i64).into());
        api.insert("max_stream_bytes".into(), (MAX_STREAM as i64).into());
    });
    let api = app.start();
    let public = app.public_addr.expect("public listener");
    let tls = demo_client_config(&app);
    let t = Target {
        app,
        api,
        public,
        tls,
    };
    let pid = t.app.pid();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            // Warm up every route once so the baseline holds the daemon's steady state.
            t.assert_alive("start").await;
            tsa_warmup(&t).await;
            let baseline = rss_kib(pid);
            let watch = PeakWatch::start(pid);
            let started = Instant::now();

            tsa(&t).await;
            t.assert_alive("the TSA group").await;
            ocsp_post_and_get(&t).await;
            t.assert_alive("the OCSP group").await;
            json_api(&t).await;
            t.assert_alive("the JSON group").await;
            pdf(&t).await;
            t.assert_alive("the PDF group").await;
            crl(&t).await;
            t.assert_alive("the CRL group").await;
            slowloris(&t).await;
            t.assert_alive("slowloris").await;
            keep_alive_flood(&t).await;
            t.assert_alive("the keep-alive flood").await;

            let peak = watch.finish();
            // Give freed buffers a moment to go back.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = rss_kib(pid);
            println!(
            "signetd VmRSS: baseline {} KiB, peak {} KiB, after {} KiB ({:.0}s of hostile input)",
            baseline,
            peak,
            after,
            started.elapsed().as_secs_f64()
        );
            assert!(
                after <= baseline + 64 * 1024,
                "memory did not come back: baseline {baseline} KiB, after {after} KiB"
            );
        })
    }));
    if let Err(panic) = outcome {
        let log = t.app.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!("signetd's last log lines:");
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
        std::panic::resume_unwind(panic);
    }
    let mut app = t.app;
    assert!(app.stop().expect("was running").success(), "{}", app.log());
    let log = app.log();
    assert!(!log.contains("panicked"), "signetd panicked:\n{log}");
}

/// One valid request per route, so lazily built state is in the baseline.
async fn tsa_warmup(t: &Target) {
    let mut conn = t.api().await;
    let (status, _, _) = send(
        &mut conn,
        Method::POST,
        "/v1/tsa",
        Some(TSQ),
        &tsp::request(b"warm", 1, false),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let body = format!(
        r#"{{"digest":"{}","digest_algorithm":"sha256","scheme":"ecdsa"}}"#,
        digest_b64(32)
    );
    let (status, _, _) = send(
        &mut conn,
        Method::POST,
        "/v1/sign/doc-ec",
        Some(JSON),
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
