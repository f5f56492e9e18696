//! A plain-HTTP door to the appliance's TSA for outside signers that cannot present a client
//! certificate (pyHanko's `--timestamp-url`): the public listener serves OCSP and CRLs only,
//! so this forwards each POST, as the demo client over mutual TLS, to `/v1/tsa`. The tokens
//! are the appliance's own; the bridge only carries bytes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::client::{demo_client_config, Connection};
use crate::Appliance;

/// A running bridge on 127.0.0.1; stopped on drop.
pub struct TsaBridge {
    /// `http://127.0.0.1:PORT/` to give pyHanko.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TsaBridge {
    /// Start a bridge to `app`'s running daemon.
    pub fn start(app: &Appliance) -> TsaBridge {
        let api = app.addr.expect("the appliance is running");
        let config = demo_client_config(app);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            let config = config.clone();
                            tokio::spawn(async move {
                                let service = hyper::service::service_fn(move |req| {
                                    forward(req, api, config.clone())
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(tcp), service)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        TsaBridge {
            url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for TsaBridge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn forward(
    req: Request<Incoming>,
    api: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let answer = async {
        let body = req.into_body().collect().await.ok()?.to_bytes();
        let mut conn = Connection::connect(api, config).await.ok()?;
        conn.post("/v1/tsa", "application/timestamp-query", body)
            .await
            .ok()
    }
    .await;
    let (status, body) = answer.unwrap_or((StatusCode::BAD_GATEWAY, Bytes::new()));
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/timestamp-reply")
        .body(Full::new(body))
        .expect("response"))
}
