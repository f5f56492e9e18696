//! `signetctl pdf sign IN OUT --key K --level L`: sign a PDF through the appliance's API,
//! as any enterprise client does (mutual TLS with a client certificate), with a progress
//! bar while a big file uploads. OUT appears only when the signed document is complete.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use indicatif::{ProgressBar, ProgressStyle};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::transport::Common;
use signet::channel_body::ChannelBody;

/// Bytes read from IN per chunk.
const CHUNK: usize = 256 << 10;

/// PDF documents.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Sign IN with a key of the appliance and write the signed PDF to OUT.
    Sign(SignArgs),
}

#[derive(Debug, clap::Args)]
struct SignArgs {
    /// The PDF to sign.
    input: PathBuf,
    /// Where to write the signed PDF.
    output: PathBuf,
    /// The signing key's label.
    #[arg(long)]
    key: String,
    /// PAdES baseline level.
    #[arg(long, default_value = "B-B", value_parser = clap::builder::PossibleValuesParser::new(["B-B", "B-T", "B-LT", "B-LTA"]))]
    level: String,
    /// Sign this field (an existing empty signature field, or a new one of this name).
    #[arg(long)]
    field: Option<String>,
    /// The reason for signing.
    #[arg(long)]
    reason: Option<String>,
    /// Where the document was signed.
    #[arg(long)]
    location: Option<String>,
    /// How to reach the signer.
    #[arg(long)]
    contact_info: Option<String>,
    /// The signer's name.
    #[arg(long)]
    name: Option<String>,
    /// The API (default: https://API_LISTEN from the config).
    #[arg(long)]
    url: Option<String>,
    /// Client certificate, PEM (default: the dev demo client's).
    #[arg(long)]
    client_cert: Option<PathBuf>,
    /// Client private key, PEM (default: the dev demo client's).
    #[arg(long)]
    client_key: Option<PathBuf>,
    /// CA certificate to trust for the server (default: the appliance's root).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The name the server's certificate is checked against.
    #[arg(long, default_value = "localhost")]
    server_name: String,
}

/// Run it.
pub fn exec(args: Args) -> Result<(), String> {
    let Action::Sign(sign) = args.action;
    let config = super::load_config(&args.common.config, args.common.state_dir.clone())?;
    let layout = signet::layout::StateLayout::new(&config.state_dir);
    let url = sign
        .url
        .clone()
        .unwrap_or_else(|| format!("https://{}", config.api.listen));
    let target = Target::parse(&url)?;
    let tls = client_config(
        &sign.ca.clone().unwrap_or_else(|| layout.root_ca()),
        &sign
            .client_cert
            .clone()
            .unwrap_or_else(|| layout.demo_cert()),
        &sign.client_key.clone().unwrap_or_else(|| layout.demo_key()),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let field = runtime.block_on(upload(&target, tls, &sign))?;
    if args.common.json {
        println!(
            "{}",
            serde_json::json!({"output": sign.output, "field": field, "level": sign.level})
        );
    } else {
        println!(
            "signed {} ({}, field {field})",
            sign.output.display(),
            sign.level
        );
    }
    Ok(())
}

struct Target {
    addr: SocketAddr,
    host: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| format!("{url}: only https:// URLs"))?;
        let host = rest.split('/').next().unwrap_or(rest).to_owned();
        let addr = host
            .to_socket_addrs()
            .map_err(|e| format!("{host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}: no address"))?;
        Ok(Target { addr, host })
    }
}

fn client_config(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let certs = |p: &Path| -> Result<Vec<CertificateDer<'static>>, String> {
        rustls_pemfile::certs(&mut read(p)?.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca)? {
        roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| format!("{}: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs(cert)?, key)
        .map_err(|e| format!("client certificate: {e}"))?;
    Ok(Arc::new(config))
}

/// `GET /v1/keys`: fail at once, not after the upload, when the key is not offered.
async fn check_key(
    sender: &mut http1::SendRequest<ChannelBody>,
    host: &str,
    key: &str,
) -> Result<(), String> {
    let (_tx, empty) = ChannelBody::new(0);
    let req = Request::get("/v1/keys")
        .header("host", host)
        .body(empty)
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("GET /v1/keys: {e}"))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| format!("GET /v1/keys: {e}"))?;
    let keys: Vec<String> = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("keys").and_then(|k| k.as_array()).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|k| k.get("label").and_then(|l| l.as_str()).map(str::to_owned))
        .collect();
    if status != StatusCode::OK {
        return Err(format!("GET /v1/keys: {status}"));
    }
    if !keys.iter().any(|k| k == key) {
        return Err(format!(
            "key {key:?} is not offered to this client (offered: {})",
            keys.join(", ")
        ));
    }
    Ok(())
}

/// Upload IN, write OUT; the signed field's name.
async fn upload(
    target: &Target,
    tls: Arc<rustls::ClientConfig>,
    args: &SignArgs,
) -> Result<String, String> {
    let file = tokio::fs::File::open(&args.input)
        .await
        .map_err(io(&args.input))?;
    let len = file.metadata().await.map_err(io(&args.input))?.len();
    let mut sender = connect(target, tls, &args.server_name).await?;
    // Before a long upload: is the key offered to this client at all?
    check_key(&mut sender, &target.host, &args.key).await?;

    let bar = ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("uploading");
    let req = Request::post(sign_path(args))
        .header("host", &target.host)
        .header("content-type", "application/pdf")
        .header("content-length", len)
        .body(stream_file(file, len, bar.clone()))
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    bar.finish_and_clear();
    let status = resp.status();
    let field = resp
        .headers()
        .get("signet-signature-field")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut body = resp.into_body();
    if status != StatusCode::OK {
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(format!("{status}: {detail}"));
    }
    download(&mut body, &args.output).await?;
    Ok(field)
}

/// An error about `what` (a file), for people.
fn io(what: &Path) -> impl Fn(std::io::Error) -> String {
    let what = what.display().to_string();
    move |e: std::io::Error| format!("{what}: {e}")
}

/// HTTP/1.1 over mutual TLS to the appliance's API.
async fn connect(
    target: &Target,
    tls: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> Result<http1::SendRequest<ChannelBody>, String> {
    let tcp = tokio::net::TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("{}: {e}", target.host))?;
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {}: {e}", target.host))?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// `/v1/pdf/{key}` with the level and the signature's optional texts.
fn sign_path(args: &SignArgs) -> String {
    let mut query = vec![format!("level={}", args.level)];
    for (name, value) in [
        ("field", &args.field),
        ("reason", &args.reason),
        ("location", &args.location),
        ("contact_info", &args.contact_info),
        ("name", &args.name),
    ] {
        if let Some(v) = value {
            let encoded =
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC);
            query.push(format!("{name}={encoded}"));
        }
    }
    format!("/v1/pdf/{}?{}", args.key, query.join("&"))
}

/// The file as a request body of `len` bytes, read as it is sent, moving `bar`.
fn stream_file(mut file: tokio::fs::File, len: u64, bar: ProgressBar) -> ChannelBody {
    let (tx, body) = ChannelBody::new(len);
    tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match file.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => {
                    bar.inc(n as u64);
                    if tx
                        .send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    body
}

/// The signed document into `output`, written beside it and then renamed: `output` is
/// never a partial document.
async fn download(body: &mut hyper::body::Incoming, output: &Path) -> Result<(), String> {
    let partial = output.with_extension("partial");
    let mut out = tokio::fs::File::create(&partial)
        .await
        .map_err(io(&partial))?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("download: {e}"))?;
        if let Ok(data) = frame.into_data() {
            out.write_all(&data).await.map_err(io(&partial))?;
        }
    }
    out.sync_all().await.map_err(io(&partial))?;
    tokio::fs::rename(&partial, output)
        .await
        .map_err(io(output))
}
