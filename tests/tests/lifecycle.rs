//! signetd's life: SIGTERM under load lets in-flight requests finish and exits cleanly; a
//! key that does not match its certificate stops the start with a clear message.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use signet_e2e::client::{demo_client_config, Connection};
use signet_e2e::{tsp, Appliance};

#[test]
fn sigterm_under_load_finishes_in_flight_requests_and_exits_cleanly() {
    let mut a = Appliance::init();
    let addr = a.start();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let config = demo_client_config(&a);
    let granted = Arc::new(AtomicUsize::new(0));
    let bad_answers = Arc::new(AtomicUsize::new(0));
    let stopping = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8u64)
        .map(|c| {
            let (config, granted, bad, stopping) = (
                config.clone(),
                Arc::clone(&granted),
                Arc::clone(&bad_answers),
                Arc::clone(&stopping),
            );
            rt.spawn(async move {
                let mut conn = Connection::connect(addr, config).await.expect("connect");
                for n in 0.. {
                    let req = Bytes::from(tsp::request(&[c as u8, n as u8], n + 1, false));
                    match conn
                        .post("/v1/tsa", "application/timestamp-query", req)
                        .await
                    {
                        Ok((status, body)) if status == 200 && tsp::serial(&body) > 0 => {
                            granted.fetch_add(1, Ordering::SeqCst);
                        }
                        // An answer that is not a granted token is a failure, before or after SIGTERM.
                        Ok(_) => {
                            bad.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        // The connection closed: expected only once shutdown began.
                        Err(e) => {
                            assert!(
                                stopping.load(Ordering::SeqCst),
                                "connection failed before SIGTERM: {e}"
                            );
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while granted.load(Ordering::SeqCst) < 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    stopping.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let status = a.stop().expect("was running");
    rt.block_on(async {
        for c in clients {
            c.await.expect("client task");
        }
    });
    assert!(status.success(), "exit status {status}:\n{}", a.log());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(
        bad_answers.load(Ordering::SeqCst),
        0,
        "a request got a broken answer"
    );
    assert!(granted.load(Ordering::SeqCst) >= 200);
    let log = a.log();
    assert!(
        log.contains("SIGTERM received") && log.contains("stopped"),
        "{log}"
    );
}

#[test]
fn a_key_that_does_not_match_its_certificate_stops_the_start() {
    let mut a = Appliance::init();
    // Point the TSA at the TLS key: a real key, but not the one its certificate certifies.
    a.edit_config(|t| {
        t["keys"]["tsa"]["label"] = toml::Value::String("tls-server".into());
    });
    let log = a.try_start().expect_err("started with a mismatched key");
    assert!(
        log.contains("key \"tls-server\" in the token does not match") && log.contains("tsa.pem"),
        "{log}"
    );
}
