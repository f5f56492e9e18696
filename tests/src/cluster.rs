//! Two boxes on one PostgreSQL database behind real HAProxy, and the load the cluster tests
//! put through it: each request on a connection of its own (as a client that reconnects
//! would send it), so that one that starts after a box died is routed by HAProxy alone.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use x509_cert::Certificate;

use crate::client::{demo_client_config, Connection};
use crate::haproxy::HaProxy;
use crate::ocsp::{self, statuses};
use crate::p11kit::{client_module, P11KitServer};
use crate::postgres::Postgres;
use crate::{run, tsp, Appliance};

/// Box A and its replica B (a copy of A's state directory) on one database and one token,
/// started on pinned ports, behind HAProxy.
pub struct Cluster {
    /// The first box (it made the PKI).
    pub a: Appliance,
    /// The second box: a copy of A's state directory.
    pub b: Appliance,
    /// The load balancer in front of both.
    pub lb: HaProxy,
    /// The one token both boxes use, served by `p11-kit server` (the shape of a network
    /// HSM); B's state directory holds a copy of A's token files, unused.
    pub token: P11KitServer,
    /// Scratch space (HAProxy's log, requests).
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Two boxes on a new database of `pg` (with `edit` applied to A's config before
    /// `init`); `prepare` runs on A before either starts (e.g. recording certificates).
    pub fn start(
        pg: &Postgres,
        edit: impl FnOnce(&mut toml::Table),
        prepare: impl FnOnce(&Appliance),
    ) -> Cluster {
        let database = pg.create_database();
        let a = Appliance::init_with(|t| {
            crate::store::use_postgres(t, pg, &database);
            edit(t);
        });
        prepare(&a);
        let dir = tempfile::tempdir().expect("tempdir");
        // A's token, served by `p11-kit server` to both boxes: one token, as a network HSM.
        let token = P11KitServer::start(
            &dir.path().join("p11-kit.sock"),
            &a.softhsm_conf(),
            "signet-dev",
        );
        let module = client_module().to_string_lossy().into_owned();
        a.edit_config(|t| {
            t["hsm"]["module"] = toml::Value::String(module.clone());
        });
        let mut b = a.replica();
        let mut a = a;
        for app in [&mut a, &mut b] {
            app.env.push(token.client_env());
            app.pin_ports();
            app.start();
        }
        let lb = HaProxy::start(&a, &b, dir.path());
        Cluster {
            a,
            b,
            lb,
            token,
            dir,
        }
    }

    /// The box named `name` ("A" or "B").
    pub fn node(&self, name: &str) -> &Appliance {
        if name == "A" {
            &self.a
        } else {
            &self.b
        }
    }
}

/// What one request of the mixed load is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A time-stamp on the API (`/v1/tsa`).
    Tsa,
    /// An OCSP request with a nonce (signed live) on the public listener.
    OcspNonce,
    /// A P-256 digest signature (`/v1/sign/doc-ec`).
    Sign,
}

/// One request's outcome.
#[derive(Debug)]
pub struct Outcome {
    /// What was asked.
    pub kind: Kind,
    /// When it was sent (its connection opened).
    pub sent: Instant,
    /// The TSA serial of a granted stamp, or why the request failed.
    pub result: Result<Option<u128>, String>,
}

/// Send requests of `kinds` (one client each, back to back, each on a new connection)
/// through `lb` until `stop` is set; every outcome, in no particular order.
pub fn mixed_load(
    app: &Appliance,
    lb: (SocketAddr, SocketAddr),
    root: &Certificate,
    subject: &Certificate,
    kinds: &[Kind],
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Outcome>> {
    let tls = demo_client_config(app);
    let ocsp_body = Bytes::from(ocsp::request(root, &[subject], 16));
    let kinds = kinds.to_vec();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        rt.block_on(async {
            let tasks: Vec<_> = kinds
                .into_iter()
                .enumerate()
                .map(|(client, kind)| {
                    let (tls, ocsp_body, stop) =
                        (Arc::clone(&tls), ocsp_body.clone(), Arc::clone(&stop));
                    let outcomes = Arc::clone(&outcomes);
                    tokio::spawn(async move {
                        let mut i = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            i += 1;
                            let sent = Instant::now();
                            let nonce = ((client as u64) << 40) | i;
                            let result = tokio::time::timeout(
                                Duration::from_secs(5),
                                once(kind, lb, &tls, &ocsp_body, nonce),
                            )
                            .await
                            .unwrap_or_else(|_| Err("no answer within 5 s".into()));
                            let outcome = Outcome { kind, sent, result };
                            outcomes.lock().expect("outcomes").push(outcome);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("client task");
            }
        });
        let mut outcomes = outcomes.lock().expect("outcomes");
        std::mem::take(&mut *outcomes)
    })
}

/// One request of `kind` on a new connection.
async fn once(
    kind: Kind,
    (api, public): (SocketAddr, SocketAddr),
    tls: &Arc<rustls::ClientConfig>,
    ocsp_body: &Bytes,
    nonce: u64,
) -> Result<Option<u128>, String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    let (status, body) = match kind {
        Kind::Tsa => {
            let mut c = Connection::connect(api, Arc::clone(tls))
                .await
                .map_err(|e| text(&e))?;
            let req = tsp::request(&nonce.to_be_bytes(), nonce, true);
            c.post("/v1/tsa", "application/timestamp-query", req.into())
                .await
                .map_err(|e| text(&e))?
        }
        Kind::Sign => {
            let mut c = Connection::connect(api, Arc::clone(tls))
                .await
                .map_err(|e| text(&e))?;
            let digest = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
            let body =
                format!(r#"{{"digest":"{digest}","digest_algorithm":"sha256","scheme":"ecdsa"}}"#);
            c.post("/v1/sign/doc-ec", "application/json", body.into())
                .await
                .map_err(|e| text(&e))?
        }
        Kind::OcspNonce => {
            let mut c = Connection::connect_plain(public)
                .await
                .map_err(|e| text(&e))?;
            c.post("/ocsp", "application/ocsp-request", ocsp_body.clone())
                .await
                .map_err(|e| text(&e))?
        }
    };
    if status != 200 {
        return Err(format!(
            "{kind:?}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    match kind {
        Kind::Tsa => Ok(Some(tsp::serial(&body))),
        Kind::OcspNonce if ocsp::status(&body) != x509_ocsp::OcspResponseStatus::Successful => {
            Err(format!("OCSP: {:?}", ocsp::status(&body)))
        }
        _ => Ok(None),
    }
}

/// What `app`'s public OCSP responder says of `cert` (no nonce: the pre-signed cache).
pub fn ocsp_status(app: &Appliance, root: &Certificate, cert: &Certificate, dir: &Path) -> String {
    let req = dir.join(format!("req-{}.der", std::process::id()));
    std::fs::write(&req, ocsp::request(root, &[cert], 0)).expect("request");
    let out = run(Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-H",
            "Content-Type: application/ocsp-request",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", req.display()))
        .arg(app.public_url("/ocsp")));
    if !out.status.success() {
        return format!("no answer: {}", String::from_utf8_lossy(&out.stderr));
    }
    statuses(&out.stdout)
        .first()
        .map_or("none".to_owned(), |s| (*s).to_owned())
}

/// Wait until `app` says `want` of `cert`; how long that took, or `None` after 5 s.
pub fn until(
    app: &Appliance,
    root: &Certificate,
    cert: &Certificate,
    want: &str,
    dir: &Path,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if ocsp_status(app, root, cert, dir) == want {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// A revocation asked of one box, and whether that box said it was done.
#[derive(Debug)]
pub struct Revocation {
    /// The certificate's index in the list revoked.
    pub index: usize,
    /// "A" or "B".
    pub node: &'static str,
    /// What `signetctl cert revoke` said: `Ok` when done.
    pub answer: Result<(), String>,
}

/// Revoke `serials` one by one, every `every`, alternating between box A and box B
/// (`signetctl` of each, speaking to its daemon's admin socket only: a box that is down
/// refuses, as it would refuse its operator), until `stop` or the list ends.
pub fn revoke_every(
    ctl: [(&'static str, Command, std::path::PathBuf); 2],
    serials: Vec<String>,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Revocation>> {
    std::thread::spawn(move || {
        let mut ctl = ctl;
        let mut done = Vec::new();
        for (index, serial) in serials.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let (node, cmd, socket) = &mut ctl[index % 2];
            let out = run(Command::new(cmd.get_program())
                .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
                .args(["cert", "revoke", serial, "--reason", "keyCompromise"])
                .arg("--socket")
                .arg(&*socket));
            let answer = if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
            };
            done.push(Revocation {
                index,
                node,
                answer,
            });
            std::thread::sleep(every);
        }
        done
    })
}
