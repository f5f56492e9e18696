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
    ceremony, crl, infrastructure, issuance, ocsp, ocsp_renewal, pades, revocation, settings,
    signing_keys, source_limit, tsa,
};
pub use signet_state::{atomic_write, audit, clock, disk, layout, spool, statelock, store};
pub mod hsm_watch;
pub mod server;
pub mod systemd;
pub mod tls;

/// Set up logging: human-readable or JSON lines on stderr, filtered by `RUST_LOG`.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
