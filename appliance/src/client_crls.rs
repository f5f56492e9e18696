//! The CRLs of outside client CAs: read from a file or fetched over plain HTTP at start and
//! on each CA's schedule, verified with the CA's key, and put in force in [`ClientTrust`].
//! A CRL that cannot be had leaves the one in force; once that one is past its nextUpdate,
//! the CA's `revocation` mode decides (fail-closed refuses its clients).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use signet_config::Config;

use crate::authz::ClientTrust;

/// Largest CRL taken: bigger ones are refused, not read into memory.
const MAX_CRL_BYTES: usize = 16 * 1024 * 1024;

/// Longest one fetch may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a CRL comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A file on this box.
    File(PathBuf),
    /// An `http://` URL (CRLs are signed: no TLS is needed to trust them).
    Http {
        /// `host[:port]`, as the Host header says it.
        authority: String,
        /// Path and query.
        path: String,
    },
}

impl Location {
    /// `text` from the config: an `http://` URL, or a path (relative: under state_dir).
    pub fn parse(text: &str, config: &Config) -> Location {
        match text.strip_prefix("http://") {
            Some(rest) => {
                let (authority, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/"),
                };
                Location::Http {
                    authority: authority.to_owned(),
                    path: path.to_owned(),
                }
            }
            None => Location::File(config.state_path(std::path::Path::new(text))),
        }
    }
}

/// One outside CA's CRL and how often to read it.
#[derive(Clone, Debug)]
pub struct CrlSource {
    /// The client CA's name.
    pub ca: String,
    /// Where its CRL is.
    pub location: Location,
    /// How often to read it.
    pub every: Duration,
}

/// Read every outside CA's CRL once (at start, before the API listens).
pub async fn load_all(trust: &ClientTrust, config: &Config) {
    for ca in &config.client_cas {
        if let Some(crl) = &ca.crl {
            let source = CrlSource {
                ca: ca.name.clone(),
                location: Location::parse(crl, config),
                every: Duration::from_secs(ca.crl_refresh_secs),
            };
            update(trust, &source).await;
        }
    }
}

/// Re-read each source on its schedule until `shutdown`.
pub async fn refresh(
    trust: Arc<ClientTrust>,
    sources: Vec<CrlSource>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    if sources.is_empty() {
        return;
    }
    tokio::pin!(shutdown);
    let mut due: Vec<Instant> = sources.iter().map(|s| Instant::now() + s.every).collect();
    loop {
        let next = due.iter().min().copied().unwrap_or_else(Instant::now);
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = &mut shutdown => return,
        }
        let now = Instant::now();
        for (source, at) in sources.iter().zip(due.iter_mut()) {
            if *at <= now {
                update(&trust, source).await;
                *at = now + source.every;
            }
        }
    }
}

async fn update(trust: &ClientTrust, source: &CrlSource) {
    let fetched = tokio::time::timeout(FETCH_TIMEOUT, fetch(&source.location))
        .await
        .unwrap_or_else(|_| Err("timed out".into()));
    match fetched.and_then(|bytes| trust.take_crl(&source.ca, &bytes)) {
        Ok(revoked) => tracing::info!(ca = %source.ca, revoked, "client CA's CRL in force"),
        Err(e) => tracing::warn!(ca = %source.ca, error = %e, "client CA's CRL not updated"),
    }
}

/// The bytes at `location`, at most [`MAX_CRL_BYTES`].
pub async fn fetch(location: &Location) -> Result<Vec<u8>, String> {
    match location {
        Location::File(path) => {
            use tokio::io::AsyncReadExt;
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let mut bytes = Vec::new();
            file.take(MAX_CRL_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if bytes.len() > MAX_CRL_BYTES {
                return Err(format!(
                    "{}: larger than {MAX_CRL_BYTES} bytes",
                    path.display()
                ));
            }
            Ok(bytes)
        }
        Location::Http { authority, path } => http_get(authority, path).await,
    }
}

async fn http_get(authority: &str, path: &str) -> Result<Vec<u8>, String> {
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let url = format!("http://{authority}{path}");
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let driver = tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if response.status() != hyper::StatusCode::OK {
        driver.abort();
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_CRL_BYTES)
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    driver.abort();
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_crl_comes_over_http_within_its_size_cap() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            for body_len in [5usize, MAX_CRL_BYTES + 1] {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut head = vec![0u8; 1024];
                let n = s.read(&mut head).await.expect("read");
                let head = String::from_utf8_lossy(&head[..n]).to_string();
                assert!(head.starts_with("GET /ca.crl HTTP/1.1\r\n"), "{head}");
                let _ = s
                    .write_all(
                        format!("HTTP/1.1 200 OK\r\ncontent-length: {body_len}\r\n\r\n").as_bytes(),
                    )
                    .await;
                let _ = s.write_all(&vec![b'x'; body_len]).await;
            }
        });
        let location = Location::Http {
            authority: addr.to_string(),
            path: "/ca.crl".into(),
        };
        assert_eq!(fetch(&location).await.expect("fetched"), b"xxxxx");
        assert!(fetch(&location).await.is_err());
        server.await.expect("server");
        let gone = Location::File(PathBuf::from("/nonexistent/ca.crl"));
        assert!(fetch(&gone).await.is_err());
    }
}
