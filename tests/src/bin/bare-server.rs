//! bare-server: the least an mTLS HTTP server does per request on this machine, with the
//! stack and settings of signetd's API listener (tokio, hyper-util's HTTP/1.1 + HTTP/2 by
//! ALPN, rustls with ring, a client certificate required, the same body and header limits);
//! with `--plain`, the least a plain HTTP server does (signetd's public listener).
//! The benchmarks measure it beside signetd, with the same load generator in the same run:
//! what signetd spends beyond it and beyond the token's signature is its own.
//!
//! Every POST is read whole and answered with a fixed-size JSON body:
//! - `--mode echo`: `{"signature":"<64 bytes>"}`, no cryptography beyond TLS;
//! - `--mode ecdsa`: one in-process P-256 ECDSA signature (ring) over the body, in base64
//!   DER: a signing API whose HSM costs nothing.
//!
//! Usage: `bare-server (--cert chain.pem --key key.pem --ca ca.pem | --plain)
//! [--workers N] [--mode echo|ecdsa]`; it listens on 127.0.0.1 at a port of the kernel's choosing and
//! prints `listening on ADDR` on stdout.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// signetd's default API limits.
const MAX_BODY: usize = 64 * 1024;
const MAX_HEADER: usize = 16 * 1024;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    /// Chain, key and client CA; `None` for plain HTTP.
    tls: Option<[String; 3]>,
    workers: usize,
    sign: bool,
}

fn parse_args() -> Result<Args, Error> {
    let (mut cert, mut key, mut ca) = (None, None, None);
    let (mut workers, mut sign, mut plain) = (2, false, false);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--plain" {
            plain = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--cert" => cert = Some(value),
            "--key" => key = Some(value),
            "--ca" => ca = Some(value),
            "--workers" => workers = value.parse()?,
            "--mode" if value == "echo" => sign = false,
            "--mode" if value == "ecdsa" => sign = true,
            _ => return Err(format!("unknown argument {flag} {value}").into()),
        }
    }
    let tls = match (plain, cert, key, ca) {
        (true, None, None, None) => None,
        (false, Some(cert), Some(key), Some(ca)) => Some([cert, key, ca]),
        _ => return Err("either --plain or all of --cert, --key and --ca".into()),
    };
    Ok(Args { tls, workers, sign })
}

fn tls_config([cert, key, ca]: &[String; 3]) -> Result<Arc<rustls::ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let read = |path: &str| std::fs::read(path).map_err(|e| format!("{path}: {e}"));
    let chain = rustls_pemfile::certs(&mut &read(cert)?[..]).collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut &read(key)?[..])?.ok_or("no private key")?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut &read(ca)?[..]) {
        roots.add(ca?)?;
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What every request gets: the fixed answer, or a signature over its body.
struct Answer {
    key: Option<EcdsaKeyPair>,
    rng: SystemRandom,
}

impl Answer {
    async fn to(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::POST {
            return reply(StatusCode::METHOD_NOT_ALLOWED, Bytes::new());
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return reply(StatusCode::BAD_REQUEST, Bytes::new()),
        };
        let signature = match &self.key {
            None => Bytes::from_static(&[b'A'; 64]),
            Some(key) => match key.sign(&self.rng, &body) {
                Ok(sig) => base64::engine::general_purpose::STANDARD
                    .encode(sig.as_ref())
                    .into(),
                Err(_) => return reply(StatusCode::INTERNAL_SERVER_ERROR, Bytes::new()),
            },
        };
        let mut json = Vec::with_capacity(signature.len() + 16);
        json.extend_from_slice(br#"{"signature":""#);
        json.extend_from_slice(&signature);
        json.extend_from_slice(br#""}"#);
        reply(StatusCode::OK, json.into())
    }
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let json = hyper::header::HeaderValue::from_static("application/json");
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, json);
    r
}

async fn serve(args: Args) -> Result<(), Error> {
    let acceptor = match &args.tls {
        Some(files) => Some(TlsAcceptor::from(tls_config(files)?)),
        None => None,
    };
    let rng = SystemRandom::new();
    let key = if args.sign {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| "key generation failed")?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| "the generated key does not load")?;
        Some(key)
    } else {
        None
    };
    let answer = Arc::new(Answer { key, rng });
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER.max(8192));
    http.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER as u32)
        .max_concurrent_streams(256);
    let http = Arc::new(http);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, http, answer) = (acceptor.clone(), http.clone(), answer.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let answer = answer.clone();
                async move { Ok::<_, Infallible>(answer.to(req).await) }
            });
            let Some(acceptor) = acceptor else {
                let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                return;
            };
            let Ok(Ok(tls)) = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let _ = http.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

fn main() {
    let result = parse_args().and_then(|args| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.workers.max(1))
            .enable_all()
            .build()?
            .block_on(serve(args))
    });
    if let Err(e) = result {
        eprintln!("bare-server: {e}");
        std::process::exit(1);
    }
}
