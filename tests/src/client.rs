//! A small mTLS HTTP/1.1 client with keep-alive, for load in tests and benchmarks.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::Appliance;

/// The demo client's TLS config: its certificate and key, trusting the appliance's root.
pub fn demo_client_config(app: &Appliance) -> Arc<rustls::ClientConfig> {
    client_config(
        app,
        &app.path("demo/client.pem"),
        &app.path("demo/client.key"),
    )
}

/// A TLS config presenting the certificate and key in these PEM files, trusting the
/// appliance's root.
pub fn client_config(
    app: &Appliance,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Arc<rustls::ClientConfig> {
    mtls_client_config(&app.path("pki/root-ca.pem"), cert, key)
}

/// A TLS config presenting the certificate and key in these PEM files, trusting the
/// certificates in the PEM file `roots`.
pub fn mtls_client_config(
    roots: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut trusted = rustls::RootCertStore::empty();
    for c in pem_certs(roots) {
        trusted.add(c).expect("root");
    }
    let key_pem = std::fs::read(key).expect("client key");
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .expect("pem")
        .expect("a key");
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(trusted)
        .with_client_auth_cert(pem_certs(cert), key)
        .expect("client auth");
    Arc::new(config)
}

fn pem_certs(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
    let pem = std::fs::read(path).expect("pem file");
    rustls_pemfile::certs(&mut pem.as_slice())
        .map(|c| c.expect("cert"))
        .collect()
}

/// One keep-alive connection.
pub struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Connection {
    /// Connect and handshake.
    pub async fn connect(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
    ) -> std::io::Result<Connection> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await?;
        let (sender, conn) = http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection {
            sender,
            host: addr.to_string(),
        })
    }

    /// Connect without TLS (the public listener).
    pub async fn connect_plain(addr: SocketAddr) -> std::io::Result<Connection> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection {
            sender,
            host: addr.to_string(),
        })
    }

    /// Send `req` (its Host set here) and read the whole answer, headers too.
    pub async fn send(
        &mut self,
        mut req: Request<Full<Bytes>>,
    ) -> hyper::Result<(StatusCode, hyper::HeaderMap, Bytes)> {
        let host = hyper::header::HeaderValue::from_str(&self.host).expect("host");
        req.headers_mut().insert(hyper::header::HOST, host);
        // The connection task may still be finishing the previous exchange.
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok((parts.status, parts.headers, body))
    }

    /// POST `body` and read the whole answer.
    pub async fn post(
        &mut self,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> hyper::Result<(StatusCode, Bytes)> {
        let req = Request::post(path)
            .header("host", &self.host)
            .header("content-type", content_type)
            .body(Full::new(body))
            .expect("request");
        // The connection task may still be finishing the previous exchange.
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
