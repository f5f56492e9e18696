//! The Signet appliance: the daemon `signetd` (its listeners, the signing API, the admin
//! socket, authorization, TLS, systemd and hardening). The operator CLI is `ctl/`.
//!
//! `signet-pki` knows the formats; this crate owns I/O, the HSM, policy and state.
#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod authz;
pub mod channel_body;
pub mod client_crls;
pub mod config_source;
pub mod conn_budget;
pub mod daemon;
pub mod docs;
pub mod hardening;
pub use signet_hsm as hsm;
pub use signet_services::{
    bucket, ceremony, crl, infrastructure, issuance, ocsp, ocsp_renewal, pades, revocation,
    settings, signing_keys, source_limit, tsa,
};
pub use signet_state::{atomic_write, audit, clock, disk, layout, spool, statelock, store};
pub mod hsm_watch;
pub mod metrics;
pub mod server;
pub mod systemd;
pub mod tls;

/// Set up logging: human-readable or JSON lines on stderr, filtered by `RUST_LOG`.
pub fn init_logging(json: bool) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // cryptoki logs, at ERROR, every mechanism type it has no name for while it reads a
    // token's mechanism list: not an error, and dozens of lines at each start. Which
    // mechanisms Signet uses is logged once instead (signet_hsm, "token mechanisms").
    if let Ok(quiet) = "cryptoki::mechanism=off".parse() {
        filter = filter.add_directive(quiet);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in journald or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
