//! `signetctl`: one module per subcommand, each a clap `Args` and a thin `exec`.

pub mod audit;
pub mod cert;
pub mod client;
pub mod config;
pub mod crl;
pub mod csr;
pub mod hsm_bench;
pub mod init;
pub mod key;
pub mod pdf;
pub mod progress;
pub mod reload;
pub mod status;

use std::path::{Path, PathBuf};

use signet_config::Config;

use crate::config_source::ConfigSource;

/// Load the config at `path` (or `sealed:PATH`, unsealed through `$SIGNET_TCTI`), with
/// `--state-dir` taking precedence over the file.
pub fn load_config(path: &Path, state_dir: Option<PathBuf>) -> Result<Config, String> {
    let source = ConfigSource::new(path, crate::config_source::tcti(None));
    let mut config = source.load()?;
    if let Some(dir) = state_dir {
        config.state_dir = dir;
    }
    Ok(config)
}

/// Point SoftHSM at the config's dev token, if it has one. Call before any thread starts.
pub fn prepare_softhsm(config: &Config) {
    if let Some(dir) = &config.hsm.softhsm_dir {
        crate::hsm::softhsm::use_token_dir(&config.state_path(dir));
    }
}

/// Print `v` as pretty JSON (for `--json`).
pub fn print_json(v: &serde_json::Value) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}
