//! Load over mutual TLS with keep-alive: `clients` connections sending POSTs back to back,
//! with the latency of every answer and the servers' CPU per answer. Time-stamp requests
//! for the TSA and cluster benchmarks; any POST for the bare server they are compared with.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::client::Connection;
use crate::cost::{split_per_answer, thread_cpu};
use crate::{process_cpu, tsp};

/// What one load point measured.
pub struct Point {
    /// Concurrent clients.
    pub clients: usize,
    /// Good answers, over `elapsed`.
    pub answers: u64,
    /// The measured window.
    pub elapsed: Duration,
    /// The servers' CPU per good answer (all of `pids` together).
    pub server_cpu: Duration,
    /// Good answers per second.
    pub rate: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Failed requests.
    pub errors: usize,
    /// The first server's CPU per good answer by thread (`crate::cost::split_per_answer`).
    pub split: String,
}

/// What every client sends: a POST to `path`, cycling through `bodies`.
pub struct Posts {
    /// The request target.
    pub path: &'static str,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The bodies, each client starting at its own.
    pub bodies: Vec<Bytes>,
}

/// Time-stamp requests for `/v1/tsa`, each with its own nonce.
pub fn stamp_requests() -> Posts {
    Posts {
        path: "/v1/tsa",
        content_type: "application/timestamp-query",
        bodies: (0..512u64)
            .map(|n| Bytes::from(tsp::request(&n.to_be_bytes(), n + 1, false)))
            .collect(),
    }
}

/// `clients` keep-alive connections to `addr` (a box, or a load balancer in front of the
/// boxes whose processes are `pids`) stamping back to back for `duration`.
pub fn stamp_load(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    pids: &[u32],
    clients: usize,
    duration: Duration,
) -> Point {
    post_load(addr, config, pids, clients, duration, stamp_requests())
}

/// `clients` keep-alive connections to `addr` sending `posts` back to back for `duration`;
/// a good answer is a 200 with a body.
pub fn post_load(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    pids: &[u32],
    clients: usize,
    duration: Duration,
    posts: Posts,
) -> Point {
    let cpu = || pids.iter().map(|p| process_cpu(*p)).sum::<Duration>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let posts = Arc::new(posts);
    rt.block_on(async move {
        let mut conns = Vec::new();
        for _ in 0..clients {
            conns.push(
                Connection::connect(addr, config.clone())
                    .await
                    .expect("connect"),
            );
        }
        // Warm up every connection once, then measure.
        for c in &mut conns {
            c.post(posts.path, posts.content_type, posts.bodies[0].clone())
                .await
                .expect("warm-up");
        }
        let start = Instant::now();
        let cpu_before = cpu();
        let threads_before = thread_cpu(pids[0]);
        let tasks: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, mut conn)| {
                let posts = Arc::clone(&posts);
                tokio::spawn(async move {
                    let (mut latencies, mut errors, mut n) = (Vec::new(), 0usize, i);
                    while start.elapsed() < duration {
                        let t = Instant::now();
                        let body = posts.bodies[n % posts.bodies.len()].clone();
                        match conn.post(posts.path, posts.content_type, body).await {
                            Ok((status, body)) if status == 200 && !body.is_empty() => {
                                latencies.push(t.elapsed())
                            }
                            _ => errors += 1,
                        }
                        n += clients;
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.expect("client");
            latencies.extend(l);
            errors += e;
        }
        let window = start.elapsed();
        let elapsed = window.as_secs_f64();
        let server_cpu = cpu().saturating_sub(cpu_before) / (latencies.len().max(1) as u32);
        let split = split_per_answer(
            &threads_before,
            &thread_cpu(pids[0]),
            latencies.len() as u64,
        );
        latencies.sort();
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Point {
            clients,
            answers: latencies.len() as u64,
            elapsed: window,
            server_cpu,
            rate: latencies.len() as f64 / elapsed,
            p50: pct(0.50),
            p99: pct(0.99),
            errors,
            split,
        }
    })
}
