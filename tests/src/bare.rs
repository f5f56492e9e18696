//! The bare server (`bare-server`, src/bin/bare-server.rs) for the benchmarks: the HTTP and
//! TLS work alone, measured with the same load generator in the same run as signetd, so
//! that each point shows what signetd spends beyond it and beyond the token. Over mutual
//! TLS, like signetd's API; or plain, like its public listener (OCSP).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::client::mtls_client_config;
use crate::load::{self, LoadRequest};
use crate::stamp_load::{post_load, Posts};
use crate::{bin, process_cpu, run_ok};

/// What the bare server does per request beside HTTP and TLS.
#[derive(Clone, Copy, Debug)]
pub enum BareMode {
    /// Nothing: a fixed answer.
    Echo,
    /// One in-process P-256 signature over the body.
    Ecdsa,
}

/// How clients reach it.
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    /// Mutual TLS, as signetd's API.
    Mtls,
    /// Plain HTTP, as signetd's public listener.
    Plain,
}

/// A running bare server, with a throwaway PKI; stopped when dropped.
pub struct Bare {
    child: Child,
    addr: SocketAddr,
    /// The clients' TLS config; `None` over plain HTTP.
    client: Option<Arc<rustls::ClientConfig>>,
    _pki: tempfile::TempDir,
}

impl Bare {
    /// Start it on 127.0.0.1 with `workers` tokio threads (signetd's API has two).
    pub fn start(mode: BareMode, transport: Transport, workers: usize) -> Bare {
        let pki = tempfile::tempdir().expect("temp dir");
        let dir = pki.path();
        let mode = match mode {
            BareMode::Echo => "echo",
            BareMode::Ecdsa => "ecdsa",
        };
        let mut cmd = Command::new(bin("bare-server"));
        cmd.args(["--mode", mode, "--workers", &workers.to_string()]);
        match transport {
            Transport::Plain => {
                cmd.arg("--plain");
            }
            Transport::Mtls => {
                throwaway_pki(dir);
                cmd.arg("--cert")
                    .arg(dir.join("server.pem"))
                    .arg("--key")
                    .arg(dir.join("server.key"))
                    .arg("--ca")
                    .arg(dir.join("ca.pem"));
            }
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("bare-server starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("bare-server says where it listens");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("bare-server: {line:?}"));
        let client = matches!(transport, Transport::Mtls).then(|| {
            mtls_client_config(
                &dir.join("ca.pem"),
                &dir.join("client.pem"),
                &dir.join("client.key"),
            )
        });
        Bare {
            child,
            addr,
            client,
            _pki: pki,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `clients` keep-alive connections POSTing a signing-API-sized JSON body back to back
    /// for `duration`: the server's CPU per answer, the median latency, and the number of
    /// failed requests.
    pub fn load(&self, clients: usize, duration: Duration) -> BareLoad {
        let body = Bytes::from_static(
            br#"{"digest":"n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=","digest_algorithm":"sha256","scheme":"ecdsa"}"#,
        );
        let (path, json) = ("/v1/sign/bare", "application/json");
        match &self.client {
            Some(config) => {
                let posts = Posts {
                    path,
                    content_type: json,
                    bodies: vec![body],
                };
                let p = post_load(
                    self.addr,
                    config.clone(),
                    &[self.pid()],
                    clients,
                    duration,
                    posts,
                );
                BareLoad {
                    cpu: p.server_cpu,
                    p50: p.p50,
                    errors: p.errors as u64,
                }
            }
            None => {
                let before = process_cpu(self.pid());
                let r = load::run(
                    self.addr,
                    LoadRequest::post(path, json, body),
                    clients,
                    duration,
                );
                let cpu = process_cpu(self.pid()).saturating_sub(before) / r.count.max(1) as u32;
                BareLoad {
                    cpu,
                    p50: r.p50,
                    errors: r.errors,
                }
            }
        }
    }
}

/// What one load on the bare server measured.
pub struct BareLoad {
    /// The server's CPU per answer.
    pub cpu: Duration,
    /// The median latency the clients saw.
    pub p50: Duration,
    /// Failed requests.
    pub errors: u64,
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A P-256 CA, a server certificate for `localhost` and a client certificate, in `dir`.
#[rustfmt::skip]
fn throwaway_pki(dir: &Path) {
    let openssl = |args: &[&str]| {
        run_ok(Command::new("openssl").args(args).current_dir(dir));
    };
    openssl(&[
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-days", "2", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=bare-server CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign",
    ]);
    for (name, usage, san) in [
        ("server", "serverAuth", "subjectAltName=DNS:localhost\n"),
        ("client", "clientAuth", ""),
    ] {
        openssl(&[
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", &format!("{name}.key"), "-out", &format!("{name}.csr"),
            "-subj", &format!("/CN={name}"),
        ]);
        let ext = format!(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n{san}"
        );
        std::fs::write(dir.join(format!("{name}.ext")), ext).expect("extensions file");
        openssl(&[
            "x509", "-req", "-in", &format!("{name}.csr"), "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", &format!("{name}.ext"),
            "-out", &format!("{name}.pem"),
        ]);
    }
}
