//! Fair use of the HSM: parallel batches of the signing API do not starve the TSA or TLS
//! handshakes (they wait in the HSM's urgent lane, batches are cut into small jobs), every
//! batch finishes, and a batch longer than the operation timeout does not mark the token
//! lost. With `SIGNET_TEST_TOKEN=tpm2` the same runs on tpm2-pkcs11 (about 55 signatures a
//! second), with smaller batches so that the run stays short.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};

use signet_e2e::client::{demo_client_config, Connection};
use signet_e2e::token::Backend;
use signet_e2e::{ocsp, tsp, Appliance};
use x509_ocsp::OcspResponseStatus;

/// The demo client, allowed to sign with both document keys and to stamp, with a rate
/// limit large enough for every batch below (a batch costs one token per digest).
fn generous_demo_client(t: &mut toml::Table) {
    let clients: toml::Value = toml::from_str::<toml::Table>(
        r#"clients = [{ name = "demo-app", match = { subject = "CN=demo-app,O=Signet" }, operations = ["sign", "tsa"], keys = ["doc-rsa", "doc-ec"], rate_limit = { per_second = 100000, burst = 100000 } }]"#,
    )
    .expect("toml")["clients"]
        .clone();
    t.insert("clients".into(), clients);
}

/// Parallel batches and their size: 8 x 1,000 on SoftHSM; on the slow tpm2 token 2 x 400,
/// still several times the operation timeout's worth of signatures each.
fn load() -> (usize, usize) {
    match Backend::current() {
        Backend::SoftHsm => (8, 1000),
        Backend::Tpm2 => (2, 400),
    }
}

/// One batch on a connection of its own: (HTTP status, digests signed).
async fn batch(addr: SocketAddr, config: Arc<rustls::ClientConfig>, size: usize) -> (u16, usize) {
    let body = json!({
        "digests": vec![B64.encode([0x5au8; 32]); size],
        "digest_algorithm": "sha256",
        "scheme": "pkcs1v15",
    });
    let mut conn = Connection::connect(addr, config).await.expect("connect");
    let (status, bytes) = conn
        .post(
            "/v1/sign/doc-rsa/batch",
            "application/json",
            Bytes::from(body.to_string()),
        )
        .await
        .expect("answer");
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let signed = answer["results"].as_array().map_or(0, |r| {
        r.iter().filter(|i| i["signature"].is_string()).count()
    });
    (status.as_u16(), signed)
}

/// One time-stamp on a new connection (so a TLS handshake too): its latency, or what went
/// wrong.
async fn stamp(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    n: u64,
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut conn = Connection::connect(addr, config)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let request = tsp::request(format!("stamp {n}").as_bytes(), n, true);
    let (status, body) = conn
        .post(
            "/v1/tsa",
            "application/timestamp-query",
            Bytes::from(request),
        )
        .await
        .map_err(|e| format!("request: {e}"))?;
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    let latency = started.elapsed();
    // Granted, with a token (the helper asserts both).
    std::panic::catch_unwind(|| tsp::tst_info(&body))
        .map_err(|_| format!("not granted: {} bytes", body.len()))?;
    Ok(latency)
}

#[test]
fn parallel_batches_leave_time_stamps_and_handshakes_served() {
    let _alone = signet_e2e::token::measuring_alone();
    let mut app = Appliance::init_with(generous_demo_client);
    let addr = app.start();
    let config = demo_client_config(&app);
    let (batches, size) = load();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (batch_results, stamps) = rt.block_on(async {
        let running: Vec<_> = (0..batches)
            .map(|_| tokio::spawn(batch(addr, Arc::clone(&config), size)))
            .collect();
        // Stamp every 100 ms while any batch runs (and at least ten times).
        let mut stamps = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut n = 0;
        while n < 10 || running.iter().any(|b| !b.is_finished()) {
            tick.tick().await;
            n += 1;
            stamps.push(tokio::spawn(stamp(addr, Arc::clone(&config), n)));
            assert!(n < 3000, "the batches never finished");
        }
        let mut batch_results = Vec::new();
        for b in running {
            batch_results.push(b.await.expect("batch task"));
        }
        let mut done = Vec::new();
        for s in stamps {
            done.push(s.await.expect("stamp task"));
        }
        (batch_results, done)
    });

    for (status, signed) in &batch_results {
        assert_eq!(
            (*status, *signed),
            (200, size),
            "every batch finishes whole"
        );
    }
    let failures: Vec<&String> = stamps.iter().filter_map(|s| s.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} stamps (with their handshakes) failed under the batches: {failures:?}",
        failures.len(),
        stamps.len()
    );
    let mut latencies: Vec<Duration> = stamps.iter().filter_map(|s| s.clone().ok()).collect();
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    eprintln!(
        "{} stamps during {batches} x {size}-digest batches: p50 {:?}, p99 {p99:?}, max {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert!(p99 < Duration::from_secs(1), "stamp p99 {p99:?}");

    let log = app.log();
    assert!(
        !log.contains("HSM lost"),
        "the token was declared lost under honest batches:\n{log}"
    );
    let ready = signet_e2e::run(
        app.curl()
            .arg("-s")
            .arg("-o")
            .arg("/dev/null")
            .arg("-w")
            .arg("%{http_code}")
            .arg(app.url("/readyz")),
    );
    assert_eq!(String::from_utf8_lossy(&ready.stdout).trim(), "200");
    app.stop();
}

/// What anonymous callers can take of the token is bounded: each public source gets a few
/// live-signed OCSP answers a second (then tryLater; pre-signed answers stay free, API
/// clients are not counted), and TLS handshakes, signed before any client certificate is
/// seen, are held to a rate over all sources.
#[test]
fn anonymous_callers_get_a_bounded_share_of_the_token() {
    let _alone = signet_e2e::token::measuring_alone();
    let mut app = Appliance::init_with(|t| {
        generous_demo_client(t);
        let budget: toml::Table = toml::from_str(
            "[ocsp]\nlive_per_source_per_sec = 1\nlive_per_source_burst = 3\n\
             [api]\nhandshake_signatures_per_sec = 2\nhandshake_signature_burst = 4\n",
        )
        .expect("toml");
        for (section, values) in budget {
            let table = t
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .expect("a table");
            for (k, v) in values.as_table().expect("a table") {
                table.insert(k.clone(), v.clone());
            }
        }
    });
    let addr = app.start();
    let public = app.public_addr.expect("public listener");
    let root = ocsp::pki_cert(&app, "root-ca.pem");
    let tsa = ocsp::pki_cert(&app, "tsa.pem");
    let with_nonce = Bytes::from(ocsp::request(&root, &[&tsa], 16));
    let presigned = Bytes::from(ocsp::request(&root, &[&tsa], 0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Whatever start-up took of the handshake budget is back.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let mut plain = Connection::connect_plain(public).await.expect("public");
        let mut live = Vec::new();
        for _ in 0..10 {
            let (status, body) = plain
                .post("/ocsp", "application/ocsp-request", with_nonce.clone())
                .await
                .expect("answer");
            live.push((status.as_u16(), ocsp::status(&body)));
        }
        let signed = live
            .iter()
            .filter(|(s, st)| *s == 200 && *st == OcspResponseStatus::Successful)
            .count();
        let later = live
            .iter()
            .filter(|(s, st)| *s == 503 && *st == OcspResponseStatus::TryLater)
            .count();
        assert!(
            (3..=4).contains(&signed) && signed + later == 10,
            "ten nonce requests from one address: {live:?}"
        );
        // Pre-signed answers cost nothing and are not refused.
        let (status, body) = plain
            .post("/ocsp", "application/ocsp-request", presigned.clone())
            .await
            .expect("answer");
        assert_eq!(
            (status.as_u16(), ocsp::status(&body)),
            (200, OcspResponseStatus::Successful)
        );
        // An API client is authenticated and rate-limited as a client: not counted here.
        let mut api = Connection::connect(addr, demo_client_config(&app))
            .await
            .expect("API connection");
        for _ in 0..5 {
            let (status, body) = api
                .post("/ocsp", "application/ocsp-request", with_nonce.clone())
                .await
                .expect("answer");
            assert_eq!(
                (status.as_u16(), ocsp::status(&body)),
                (200, OcspResponseStatus::Successful)
            );
        }

        // Full handshakes (a fresh client config each, so nothing is resumed) at once: the
        // burst of four (one spent on the connection above) and the refill pass, the rest
        // fail.
        let mut outcomes = Vec::new();
        for _ in 0..12 {
            outcomes.push(
                Connection::connect(addr, demo_client_config(&app))
                    .await
                    .is_ok(),
            );
        }
        let passed = outcomes.iter().filter(|ok| **ok).count();
        assert!(
            (3..=6).contains(&passed),
            "12 handshakes at once under a budget of 4 + 2/s: {outcomes:?}"
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            Connection::connect(addr, demo_client_config(&app))
                .await
                .is_ok(),
            "the handshake budget refills"
        );
    });
    let log = app.log();
    assert!(log.contains("handshake signature budget is spent"), "{log}");
    app.stop();
}
