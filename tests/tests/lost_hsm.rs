//! A lost HSM: the token lives in another process (`p11-kit server` exporting the SoftHSM
//! token, signetd on p11-kit's client module, as with a network HSM). Under load from TSA,
//! OCSP-with-nonce and JSON signing clients, the server is killed: every request is
//! answered at once with the protocol's "unavailable" (TSA systemFailure, OCSP tryLater,
//! HTTP 503), `/readyz` turns 503, the watchdog keeps being fed while STATUS= says the HSM
//! is lost; then the server is started again and signetd recovers by itself. Every answer
//! that claims success is checked: nothing is ever signed wrongly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use der::{Decode, Encode};
use http_body_util::Full;
use hyper::Request;
use x509_cert::Certificate;

use signet_e2e::client::{demo_client_config, Connection};
use signet_e2e::load::{fetch, LoadRequest};
use signet_e2e::p11kit::{client_module, P11KitServer};
use signet_e2e::{run, Appliance, Launch};
use signet_pki::verify::PublicKey;
use signet_pki::{HashAlg, SignatureScheme};

/// The bounded wait for one HSM operation, as configured for this test.
const OP_TIMEOUT: Duration = Duration::from_millis(2000);
/// How long the HSM stays away.
const OUTAGE: Duration = Duration::from_secs(3);
/// Every request that starts this long after the kill must get "unavailable".
const NOTICE: Duration = Duration::from_secs(1);
/// The most the appliance may take to be ready again once the server is back.
const RECOVER: Duration = Duration::from_secs(5);
const WATCHDOG: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Tsa,
    Ocsp,
    Sign,
}

#[derive(Debug)]
enum Outcome {
    /// A signed answer that verified.
    Signed,
    /// The protocol's "unavailable" answer.
    Unavailable,
    /// Anything else: a defect.
    Wrong(String),
}

struct Sample {
    kind: Kind,
    started: Instant,
    latency: Duration,
    outcome: Outcome,
}

/// What the clients check answers against.
struct Judge {
    root: Certificate,
    tsa_cert: Certificate,
    ocsp_key: PublicKey,
    doc_ec: PublicKey,
    /// Granted tokens with their data, for `openssl ts -verify` afterwards.
    tokens: Mutex<Vec<(Instant, Vec<u8>, Bytes)>>,
}

fn pem_cert(path: &Path) -> Certificate {
    let pem = std::fs::read_to_string(path).expect("pem");
    signet_pki::x509::certificates_from_pem(&pem)
        .expect("certificates")
        .remove(0)
}

fn public_key(cert: &Certificate) -> PublicKey {
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .expect("spki");
    PublicKey::from_spki_der(&spki).expect("public key")
}

impl Judge {
    fn new(app: &Appliance) -> Judge {
        Judge {
            root: pem_cert(&app.path("pki/root-ca.pem")),
            tsa_cert: pem_cert(&app.path("pki/tsa.pem")),
            ocsp_key: public_key(&pem_cert(&app.path("pki/ocsp-signer.pem"))),
            doc_ec: public_key(&pem_cert(&app.path("pki/doc-ec-chain.pem"))),
            tokens: Mutex::new(Vec::new()),
        }
    }

    fn tsa(&self, status: u16, body: &Bytes, data: &[u8], nonce: u64, at: Instant) -> Outcome {
        use signet_pki::tsp::status::TimeStampResp;
        let Ok(resp) = TimeStampResp::from_der(body) else {
            return Outcome::Wrong(format!("TSA {status}: not a TimeStampResp"));
        };
        match (status, resp.status.status) {
            (200, 0 | 1) => {
                let info = match resp.time_stamp_token.as_ref().map(tst_info) {
                    Some(Ok(info)) => info,
                    Some(Err(e)) => return Outcome::Wrong(format!("TSA token: {e}")),
                    None => return Outcome::Wrong("TSA granted without a token".into()),
                };
                let imprint = info.message_imprint.hashed_message.as_bytes();
                if imprint != HashAlg::Sha256.digest(data).as_slice() {
                    return Outcome::Wrong("TSA token over another imprint".into());
                }
                if info.nonce != Some(signet_e2e::tsp::positive_int(nonce)) {
                    return Outcome::Wrong("TSA token with another nonce".into());
                }
                self.tokens
                    .lock()
                    .unwrap()
                    .push((at, data.to_vec(), body.clone()));
                Outcome::Signed
            }
            (503, 2) => {
                let bits = resp
                    .status
                    .fail_info
                    .map(|f| signet_pki::tsp::status::FailureInfo::bits_of(&f));
                if bits == Some(vec![25]) {
                    Outcome::Unavailable
                } else {
                    Outcome::Wrong(format!("TSA 503 with failInfo {bits:?}"))
                }
            }
            (s, st) => Outcome::Wrong(format!("TSA HTTP {s}, PKIStatus {st:?}")),
        }
    }

    fn ocsp(&self, status: u16, body: &Bytes, nonce: &[u8]) -> Outcome {
        use x509_ocsp::{BasicOcspResponse, OcspResponse, OcspResponseStatus};
        let Ok(resp) = OcspResponse::from_der(body) else {
            return Outcome::Wrong(format!("OCSP {status}: not an OCSPResponse"));
        };
        match (status, resp.response_status) {
            (200, OcspResponseStatus::Successful) => {
                let Some(bytes) = resp.response_bytes else {
                    return Outcome::Wrong("OCSP successful without responseBytes".into());
                };
                let Ok(basic) = BasicOcspResponse::from_der(bytes.response.as_bytes()) else {
                    return Outcome::Wrong("OCSP: not a BasicOCSPResponse".into());
                };
                let scheme = match scheme_of(&basic.signature_algorithm.oid) {
                    Some(s) => s,
                    None => return Outcome::Wrong("OCSP signed with an unknown algorithm".into()),
                };
                let tbs = basic.tbs_response_data.to_der().expect("tbs");
                let signature = basic.signature.raw_bytes();
                if self
                    .ocsp_key
                    .verify_message(scheme, &tbs, signature)
                    .is_err()
                {
                    return Outcome::Wrong("OCSP response does not verify".into());
                }
                if signet_e2e::ocsp::echoed_nonce(body).as_deref() != Some(nonce) {
                    return Outcome::Wrong("OCSP response without our nonce".into());
                }
                Outcome::Signed
            }
            (503, OcspResponseStatus::TryLater) => Outcome::Unavailable,
            (s, st) => Outcome::Wrong(format!("OCSP HTTP {s}, {st:?}")),
        }
    }

    fn sign(
        &self,
        status: u16,
        headers: &hyper::HeaderMap,
        body: &Bytes,
        digest: &[u8],
    ) -> Outcome {
        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        match status {
            200 => {
                let Some(sig) = json["signature"].as_str().and_then(|s| B64.decode(s).ok()) else {
                    return Outcome::Wrong(format!("sign 200 without a signature: {json}"));
                };
                match self.doc_ec.verify_digest(
                    SignatureScheme::Ecdsa(HashAlg::Sha256),
                    digest,
                    &sig,
                ) {
                    Ok(()) => Outcome::Signed,
                    Err(_) => Outcome::Wrong("a signature that does not verify".into()),
                }
            }
            503 if json["code"] == "hsm-unavailable"
                && headers.contains_key(hyper::header::RETRY_AFTER) =>
            {
                Outcome::Unavailable
            }
            s => Outcome::Wrong(format!("sign HTTP {s}: {json}")),
        }
    }
}

fn tst_info(token: &cms::content_info::ContentInfo) -> Result<x509_tsp::TstInfo, String> {
    let signed =
        cms::signed_data::SignedData::from_der(&token.content.to_der().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let econtent = signed.encap_content_info.econtent.ok_or("no eContent")?;
    x509_tsp::TstInfo::from_der(econtent.value()).map_err(|e| e.to_string())
}

fn scheme_of(oid: &const_oid::ObjectIdentifier) -> Option<SignatureScheme> {
    use const_oid::db::rfc5912::*;
    Some(match *oid {
        SHA_256_WITH_RSA_ENCRYPTION => SignatureScheme::RsaPkcs1v15(HashAlg::Sha256),
        SHA_384_WITH_RSA_ENCRYPTION => SignatureScheme::RsaPkcs1v15(HashAlg::Sha384),
        SHA_512_WITH_RSA_ENCRYPTION => SignatureScheme::RsaPkcs1v15(HashAlg::Sha512),
        ECDSA_WITH_SHA_256 => SignatureScheme::Ecdsa(HashAlg::Sha256),
        ECDSA_WITH_SHA_384 => SignatureScheme::Ecdsa(HashAlg::Sha384),
        _ => return None,
    })
}

/// One client: its own keep-alive mTLS connection, one kind of request after the other
/// until `stop`, each bounded by a timeout well past the appliance's own.
async fn client(
    kind: Kind,
    n: u64,
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    judge: Arc<Judge>,
    ocsp_request: Bytes,
    stop: Arc<AtomicBool>,
) -> Vec<Sample> {
    let mut conn = Connection::connect(addr, config)
        .await
        .expect("connect while the HSM is up");
    let mut samples = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let nonce = n * 1_000_000 + i;
        let data = format!("lost-hsm {kind:?} {nonce}").into_bytes();
        let digest = HashAlg::Sha256.digest(&data);
        let (path, content_type, body) = match kind {
            Kind::Tsa => (
                "/v1/tsa",
                "application/timestamp-query",
                Bytes::from(signet_e2e::tsp::request(&data, nonce, true)),
            ),
            Kind::Ocsp => ("/ocsp", "application/ocsp-request", ocsp_request.clone()),
            Kind::Sign => (
                "/v1/sign/doc-ec",
                "application/json",
                Bytes::from(
                    serde_json::json!({
                        "digest": B64.encode(&digest),
                        "digest_algorithm": "sha256",
                        "scheme": "ecdsa",
                    })
                    .to_string(),
                ),
            ),
        };
        let req = Request::post(path)
            .header("content-type", content_type)
            .body(Full::new(body))
            .expect("request");
        let started = Instant::now();
        let answer = tokio::time::timeout(OP_TIMEOUT * 5, conn.send(req)).await;
        let latency = started.elapsed();
        let outcome = match answer {
            Err(_) => Outcome::Wrong(format!("{kind:?}: no answer within {:?}", OP_TIMEOUT * 5)),
            Ok(Err(e)) => Outcome::Wrong(format!("{kind:?}: connection: {e}")),
            Ok(Ok((status, headers, body))) => {
                let status = status.as_u16();
                match kind {
                    Kind::Tsa => judge.tsa(status, &body, &data, nonce, started),
                    Kind::Ocsp => judge.ocsp(status, &body, &[0x5a; 16]),
                    Kind::Sign => judge.sign(status, &headers, &body, &digest),
                }
            }
        };
        let broken = matches!(&outcome, Outcome::Wrong(w) if w.contains("connection"));
        samples.push(Sample {
            kind,
            started,
            latency,
            outcome,
        });
        if broken {
            break;
        }
        // A few hundred requests a second in all: load, without starving the daemon of
        // the two cores it shares with this test.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    samples
}

/// `GET /readyz` on the plain public listener: (status, body).
fn readyz(app: &Appliance) -> (u16, String) {
    let addr = app.public_addr.expect("public listener");
    let (status, body) = fetch(
        addr,
        &LoadRequest::get("/readyz").timeout(Duration::from_secs(2)),
    )
    .expect("readyz");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Poll `/readyz` until it answers `want`; how long that took after `since`.
fn readyz_until(app: &Appliance, want: u16, since: Instant, limit: Duration) -> Duration {
    loop {
        let (status, body) = readyz(app);
        if status == want {
            let expected = if want == 200 {
                "ready\n"
            } else {
                "not ready: hsm unavailable\n"
            };
            assert_eq!(body, expected);
            return since.elapsed();
        }
        assert!(
            since.elapsed() < limit,
            "/readyz still {status} {:?} after {limit:?}:\n{}",
            body,
            app.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The service manager's side: every datagram signetd sends, with when it came. Read all
/// along, as systemd does: a Unix datagram socket queues only a few (net.unix.max_dgram_qlen)
/// and then the sender blocks.
struct Notify {
    seen: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Notify {
    fn listen(path: &Path) -> Notify {
        let socket = UnixDatagram::bind(path).expect("notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = socket.recv(&mut buf) {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        seen.lock().unwrap().push((Instant::now(), text));
                    }
                }
            })
        };
        Notify {
            seen,
            stop,
            reader: Some(reader),
        }
    }

    fn lines_between(&self, from: Instant, to: Instant, prefix: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .flat_map(|(_, m)| m.lines().map(str::to_owned).collect::<Vec<_>>())
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// An appliance whose token is served by `p11-kit server` (started here), with signetd
/// started on p11-kit's client module and `env` added.
fn on_p11kit(env: Vec<(std::ffi::OsString, std::ffi::OsString)>) -> (Appliance, P11KitServer) {
    let module = client_module();
    let mut app = Appliance::init();
    // The token `init` made, served from another process from now on.
    let server = P11KitServer::start(&app.path("p11-kit.sock"), &app.softhsm_conf(), "signet-dev");
    app.edit_config(|t| {
        let hsm = t["hsm"].as_table_mut().expect("[hsm]");
        hsm.insert(
            "module".into(),
            toml::Value::String(module.to_string_lossy().into_owned()),
        );
        hsm.insert(
            "op_timeout_ms".into(),
            toml::Value::Integer(OP_TIMEOUT.as_millis() as i64),
        );
    });
    let (key, value) = server.client_env();
    let mut env = env;
    env.push((key.into(), value.into()));
    app.spawn(&Launch {
        env,
        ..Launch::default()
    });
    app.wait_listening().expect("signetd on p11-kit's client");
    assert_eq!(readyz(&app), (200, "ready\n".into()));
    (app, server)
}

/// Start the load clients on `rt`: TSA, OCSP with a nonce, and two JSON signing clients.
fn start_load(
    rt: &tokio::runtime::Runtime,
    app: &Appliance,
    judge: &Arc<Judge>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Sample>>> {
    let ocsp_request = Bytes::from(signet_e2e::ocsp::request(
        &judge.root,
        &[&judge.tsa_cert],
        16,
    ));
    let config = demo_client_config(app);
    let addr = app.addr.expect("listening");
    [Kind::Tsa, Kind::Ocsp, Kind::Sign, Kind::Sign]
        .into_iter()
        .enumerate()
        .map(|(n, kind)| {
            rt.spawn(client(
                kind,
                n as u64,
                addr,
                Arc::clone(&config),
                Arc::clone(judge),
                ocsp_request.clone(),
                Arc::clone(stop),
            ))
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// One test at a time: each loads a daemon on the two cores with timing assertions.
static ALONE: Mutex<()> = Mutex::new(());

fn wrong_answers(samples: &[Sample], since: Instant) -> Vec<String> {
    samples
        .iter()
        .filter_map(|s| match &s.outcome {
            Outcome::Wrong(w) => Some(format!(
                "{:?} +{:?}: {w}",
                s.kind,
                s.started.saturating_duration_since(since)
            )),
            _ => None,
        })
        .take(10)
        .collect()
}

#[test]
fn a_killed_hsm_server_is_answered_unavailable_at_once_and_recovered_by_itself() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let notify_dir = tempfile::tempdir().expect("tmp");
    let notify_path = notify_dir.path().join("notify.sock");
    let notify = Notify::listen(&notify_path);
    let (mut app, mut server) = on_p11kit(vec![
        ("NOTIFY_SOCKET".into(), notify_path.clone().into()),
        (
            "WATCHDOG_USEC".into(),
            WATCHDOG.as_micros().to_string().into(),
        ),
    ]);
    let addr = app.addr.expect("listening");
    let judge = Arc::new(Judge::new(&app));
    let config = demo_client_config(&app);
    let stop = Arc::new(AtomicBool::new(false));
    let rt = runtime();
    let clients = start_load(&rt, &app, &judge, &stop);
    // The mTLS listener's /readyz, on a connection opened while the HSM (and with it the
    // TLS server key) is up.
    let mut probe = rt
        .block_on(Connection::connect(addr, Arc::clone(&config)))
        .expect("connect");
    let api_readyz = |probe: &mut Connection| {
        let req = Request::get("/readyz")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let (status, _, body) = rt.block_on(probe.send(req)).expect("readyz over mTLS");
        (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(api_readyz(&mut probe), (200, "ready\n".into()));

    std::thread::sleep(Duration::from_secs(2));
    let killed = Instant::now();
    server.kill9();
    let readyz_notice = readyz_until(&app, 503, killed, NOTICE + Duration::from_millis(500));
    assert_eq!(
        api_readyz(&mut probe),
        (503, "not ready: hsm unavailable\n".into())
    );
    std::thread::sleep(OUTAGE.saturating_sub(killed.elapsed()));
    // /healthz is liveness: the daemon is alive and answering.
    let (status, body) = fetch(
        app.public_addr.unwrap(),
        &LoadRequest::get("/healthz").timeout(Duration::from_secs(2)),
    )
    .unwrap_or_else(|e| panic!("healthz: {e}\n{}", app.log()));
    assert_eq!((status, &body[..]), (200, &b"ok\n"[..]));

    let restarted = Instant::now();
    server.restart();
    let recovered_after = readyz_until(&app, 200, restarted, RECOVER);
    let recovered = Instant::now();
    assert_eq!(api_readyz(&mut probe), (200, "ready\n".into()));
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let samples: Vec<Sample> = clients
        .into_iter()
        .flat_map(|c| rt.block_on(c).expect("client task"))
        .collect();

    // Nothing wrong, ever: every answer is a verified signature or the protocol's
    // "unavailable".
    let wrong = wrong_answers(&samples, killed);
    assert!(wrong.is_empty(), "{wrong:#?}\n{}", app.log());

    let window = |s: &Sample, from: Instant, to: Instant| s.started >= from && s.started < to;
    for kind in [Kind::Tsa, Kind::Ocsp, Kind::Sign] {
        let of = |from: Instant, to: Instant, signed: bool| {
            samples
                .iter()
                .filter(|s| s.kind == kind && window(s, from, to))
                .filter(|s| matches!(s.outcome, Outcome::Signed) == signed)
                .count()
        };
        let far_future = recovered + Duration::from_secs(3600);
        assert!(
            of(killed - Duration::from_secs(2), killed, true) > 0,
            "{kind:?}: nothing signed before"
        );
        // Within a second of the kill every request is refused, until the server is back.
        let signed_in_outage = of(killed + NOTICE, restarted, true);
        let refused_in_outage = of(killed + NOTICE, restarted, false);
        assert_eq!(
            signed_in_outage, 0,
            "{kind:?}: signed while the HSM was gone"
        );
        assert!(
            refused_in_outage > 0,
            "{kind:?}: no request during the outage"
        );
        // Half a second after /readyz says ready, everything is signed again.
        let settled = recovered + Duration::from_millis(500);
        assert_eq!(
            of(settled, far_future, false),
            0,
            "{kind:?}: refused after recovery"
        );
        assert!(
            of(settled, far_future, true) > 0,
            "{kind:?}: nothing signed after recovery"
        );
    }

    // No request waited on the dead token: the refusals came at once, far inside the
    // operation timeout.
    let outage: Vec<&Sample> = samples
        .iter()
        .filter(|s| window(s, killed, restarted))
        .collect();
    let max_outage = outage.iter().map(|s| s.latency).max().unwrap_or_default();
    let max_all = samples.iter().map(|s| s.latency).max().unwrap_or_default();
    assert!(
        max_outage < OP_TIMEOUT,
        "a request waited {max_outage:?} on the lost HSM"
    );
    assert!(max_all < OP_TIMEOUT * 2, "a request took {max_all:?}");
    let first_refusal = samples
        .iter()
        .filter(|s| s.started >= killed && matches!(s.outcome, Outcome::Unavailable))
        .map(|s| s.started + s.latency - killed)
        .min()
        .expect("a refusal");
    let last_signed_after_kill = samples
        .iter()
        .filter(|s| window(s, killed, restarted) && matches!(s.outcome, Outcome::Signed))
        .map(|s| s.started + s.latency - killed)
        .max();

    // Sampled tokens verify with openssl: some from before the loss, the first ones after.
    let tokens = judge.tokens.lock().unwrap();
    let before: Vec<_> = tokens.iter().filter(|t| t.0 < killed).take(3).collect();
    let after: Vec<_> = tokens
        .iter()
        .filter(|t| t.0 >= restarted)
        .take(10)
        .collect();
    assert!(!after.is_empty(), "no token after recovery");
    let dir = tempfile::tempdir().expect("tmp");
    for (i, (_, data, resp)) in before.iter().chain(after.iter()).enumerate() {
        let (d, r) = (
            dir.path().join(format!("{i}.bin")),
            dir.path().join(format!("{i}.tsr")),
        );
        std::fs::write(&d, data).unwrap();
        std::fs::write(&r, resp).unwrap();
        let out = run(std::process::Command::new("openssl")
            .args(["ts", "-verify", "-data"])
            .arg(&d)
            .arg("-in")
            .arg(&r)
            .arg("-CAfile")
            .arg(app.path("pki/root-ca.pem"))
            .arg("-untrusted")
            .arg(app.path("pki/tsa.pem")));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Verification: OK"),
            "token {i}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The service manager saw the loss and the return, and was fed all along.
    let statuses = notify.lines_between(killed, Instant::now(), "STATUS=");
    assert!(
        statuses.contains(&"STATUS=serving; HSM unavailable, reconnecting".to_owned())
            && statuses.last().map(String::as_str) == Some("STATUS=serving"),
        "{statuses:?}"
    );
    let beats = notify.lines_between(killed, restarted, "WATCHDOG=1").len();
    assert!(beats >= 2, "{beats} keep-alives during the outage");

    // The audit log says when the HSM went and came back; the refusals are in it too.
    let audit = std::fs::read_to_string(app.path("audit/audit.log")).expect("audit log");
    let hsm_events: Vec<bool> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["event"]["kind"] == "hsm")
        .map(|r| r["event"]["available"].as_bool().expect("available"))
        .collect();
    assert_eq!(hsm_events, [false, true], "audit records of the HSM");
    assert!(audit.contains("\"status\":503"), "no refusal audited");

    let count = |k: Kind, signed: bool| {
        samples
            .iter()
            .filter(|s| s.kind == k && matches!(s.outcome, Outcome::Signed) == signed)
            .count()
    };
    println!(
        "requests: TSA {}/{} OCSP {}/{} sign {}/{} (signed/refused)",
        count(Kind::Tsa, true),
        count(Kind::Tsa, false),
        count(Kind::Ocsp, true),
        count(Kind::Ocsp, false),
        count(Kind::Sign, true),
        count(Kind::Sign, false),
    );
    println!(
        "time to notice: first refusal {first_refusal:?} after the kill, /readyz 503 after \
         {readyz_notice:?}; last signed answer {last_signed_after_kill:?} after the kill"
    );
    println!("time to recover: /readyz 200 {recovered_after:?} after the server restarted");
    println!(
        "max latency: {max_outage:?} during the outage ({} requests), {max_all:?} overall",
        outage.len()
    );
    println!("openssl verified {} tokens", before.len() + after.len());

    // A checkpoint the lost HSM cannot sign is retried now and then, not per request.
    let retries = app.log().matches("audit checkpoint not signed").count();
    assert!(
        retries <= 10,
        "{retries} checkpoint attempts during a 3 s outage"
    );

    drop(probe);
    let status = app.stop().expect("running");
    assert!(status.success(), "{status}\n{}", app.log());
    assert!(!app.log().contains("panicked"), "{}", app.log());
}

/// The token stops answering without closing anything (the server's process group stopped,
/// as behind a network that drops packets): the requests already waiting are answered
/// "unavailable" when the operation timeout runs out, never later; the silent token is then
/// marked lost, so that later requests are refused at once; and when the server runs
/// again signetd recovers by itself.
#[test]
fn a_frozen_hsm_server_holds_no_request_past_the_operation_timeout() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let (mut app, server) = on_p11kit(Vec::new());
    let judge = Arc::new(Judge::new(&app));
    let stop = Arc::new(AtomicBool::new(false));
    let rt = runtime();
    let clients = start_load(&rt, &app, &judge, &stop);
    std::thread::sleep(Duration::from_secs(1));

    let frozen = Instant::now();
    server.signal(nix::sys::signal::Signal::SIGSTOP);
    // The probe's own wait, plus its interval, plus slack for two loaded cores.
    let readyz_notice = readyz_until(&app, 503, frozen, OP_TIMEOUT + Duration::from_secs(2));
    std::thread::sleep(Duration::from_secs(4).saturating_sub(frozen.elapsed()));
    let thawed = Instant::now();
    server.signal(nix::sys::signal::Signal::SIGCONT);
    let recovered_after = readyz_until(&app, 200, thawed, RECOVER);
    let recovered = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let samples: Vec<Sample> = clients
        .into_iter()
        .flat_map(|c| rt.block_on(c).expect("client task"))
        .collect();

    let wrong = wrong_answers(&samples, frozen);
    assert!(wrong.is_empty(), "{wrong:#?}\n{}", app.log());
    // No request outlived the operation timeout by more than the time to answer it.
    let max = samples.iter().map(|s| s.latency).max().unwrap_or_default();
    assert!(
        max < OP_TIMEOUT + Duration::from_millis(500),
        "a request took {max:?} (operation timeout {OP_TIMEOUT:?})"
    );
    // Once the token is marked lost, refusals come at once.
    let marked = frozen + readyz_notice;
    let known: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started > marked + Duration::from_millis(100) && s.started < thawed)
        .collect();
    assert!(
        known.len() > 10,
        "{} requests between the loss being known and the thaw",
        known.len()
    );
    let late: Vec<Duration> = known
        .iter()
        .map(|s| s.latency)
        .filter(|l| *l > Duration::from_millis(500))
        .collect();
    assert!(
        late.is_empty(),
        "slow refusals after the loss was known: {late:?}"
    );
    let refused_in_freeze = samples
        .iter()
        .filter(|s| s.started > frozen && s.started < thawed)
        .filter(|s| matches!(s.outcome, Outcome::Unavailable))
        .count();
    assert!(refused_in_freeze > 0, "nothing refused while frozen");
    let settled = recovered + Duration::from_millis(500);
    let after: Vec<&Sample> = samples.iter().filter(|s| s.started > settled).collect();
    assert!(
        !after.is_empty() && after.iter().all(|s| matches!(s.outcome, Outcome::Signed)),
        "not everything signed again after recovery"
    );
    println!(
        "frozen token: /readyz 503 after {readyz_notice:?}, longest request {max:?} \
         (timeout {OP_TIMEOUT:?}), {refused_in_freeze} refused; recovered {recovered_after:?} \
         after SIGCONT"
    );

    let status = app.stop().expect("running");
    assert!(status.success(), "{status}\n{}", app.log());
}
