//! TSA serial numbers survive `kill -9`: 1000 timestamps across a crash and a restart are
//! all distinct, increasing for each client, and every serial after the restart is above
//! every serial before it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use signet_e2e::client::{demo_client_config, Connection};
use signet_e2e::{tsp, Appliance};

const CLIENTS: usize = 4;

/// Run `CLIENTS` keep-alive clients until `target` serials are collected in total or
/// their connections die; returns each client's serials in the order it received them.
fn load(
    rt: &tokio::runtime::Runtime,
    a: &Appliance,
    target: usize,
    done: Arc<AtomicUsize>,
) -> Vec<Vec<u128>> {
    let addr = a.addr.expect("running");
    let config = demo_client_config(a);
    let results = Arc::new(Mutex::new(vec![Vec::new(); CLIENTS]));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (config, done, results) = (config.clone(), Arc::clone(&done), Arc::clone(&results));
            rt.spawn(async move {
                let Ok(mut conn) = Connection::connect(addr, config).await else {
                    return;
                };
                let mut n = 0u64;
                while done.load(Ordering::SeqCst) < target {
                    n += 1;
                    let req = Bytes::from(tsp::request(
                        format!("client {c} request {n}").as_bytes(),
                        n,
                        false,
                    ));
                    let Ok((status, body)) = conn
                        .post("/v1/tsa", "application/timestamp-query", req)
                        .await
                    else {
                        return; // the daemon died under us
                    };
                    assert_eq!(status, 200);
                    results.lock().expect("lock")[c].push(tsp::serial(&body));
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    rt.block_on(async {
        for h in handles {
            h.await.expect("client task");
        }
    });
    let out = results.lock().expect("lock").clone();
    out
}

#[test]
fn serials_stay_distinct_and_increasing_across_kill_9() {
    // A small reservation block, so the run crosses many blocks.
    let mut a = Appliance::init_with(|t| {
        t["tsa"]["serial_block"] = toml::Value::Integer(37);
    });
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    a.start();

    // Phase 1: load, and kill -9 while requests are in flight.
    let done = Arc::new(AtomicUsize::new(0));
    let before = std::thread::scope(|s| {
        let killer_done = Arc::clone(&done);
        let pid = a.pid();
        s.spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while killer_done.load(Ordering::SeqCst) < 500 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        });
        load(&rt, &a, usize::MAX, Arc::clone(&done))
    });
    a.kill9();
    let n_before: usize = before.iter().map(Vec::len).sum();
    assert!(n_before >= 500, "only {n_before} before the crash");

    // Phase 2: restart and finish the thousand.
    a.start();
    let after = load(&rt, &a, 1000 - n_before, Arc::new(AtomicUsize::new(0)));
    a.stop();

    let all: Vec<u128> = before
        .iter()
        .chain(after.iter())
        .flatten()
        .copied()
        .collect();
    assert!(all.len() >= 1000, "{} timestamps", all.len());
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "a serial was issued twice");
    for client in before.iter().chain(after.iter()) {
        assert!(
            client.windows(2).all(|w| w[0] < w[1]),
            "a client saw serials go down: {client:?}"
        );
    }
    let max_before = before.iter().flatten().max().expect("some before");
    let min_after = after.iter().flatten().min().expect("some after");
    assert!(
        min_after > max_before,
        "after the restart {min_after} <= {max_before}"
    );
}
