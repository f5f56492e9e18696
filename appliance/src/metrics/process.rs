//! The standard process metrics (`process_resident_memory_bytes`, `process_open_fds`,
//! `process_start_time_seconds`), read from /proc when a scrape comes.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

#[derive(Debug)]
struct Process {
    started: f64,
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut gauge = |name: &str, help: &str, unit: Option<&Unit>, value: f64| {
            let metric = ConstGauge::new(value);
            let e = encoder.encode_descriptor(name, help, unit, metric.metric_type())?;
            metric.encode(e)
        };
        if let Some(rss) = resident_bytes() {
            gauge(
                "process_resident_memory",
                "Resident memory",
                Some(&Unit::Bytes),
                rss,
            )?;
        }
        if let Some(open) = open_fds() {
            gauge("process_open_fds", "Open file descriptors", None, open)?;
        }
        gauge(
            "process_start_time",
            "When the process started, Unix time",
            Some(&Unit::Seconds),
            self.started,
        )
    }
}

pub(super) fn register(registry: &mut Registry) {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    registry.register_collector(Box::new(Process { started }));
}

fn resident_bytes() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096.0, |n| n as f64)
}

fn open_fds() -> Option<f64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as f64)
}
