//! Turning the configuration into the settings of each component.

use signet_config::{Config, KeyAlgorithmName};
use signet_pki::KeyAlgorithm;

use signet_hsm::HsmSettings;

/// The HSM settings; the PIN comes from the config (dev) — the sealed config comes later.
pub fn hsm(config: &Config) -> Result<HsmSettings, String> {
    let pin = config.hsm.user_pin.clone().ok_or_else(|| {
        "hsm.user_pin is not set (production PINs come from the sealed config)".to_string()
    })?;
    Ok(HsmSettings {
        module: config.hsm.module.clone(),
        token_label: config.hsm.token_label.clone(),
        pin,
        workers: config.hsm.workers,
        queue_depth: config.hsm.queue_depth,
        op_timeout: std::time::Duration::from_millis(config.hsm.op_timeout_ms),
    })
}

/// The key algorithm a config name stands for.
pub fn key_algorithm(name: KeyAlgorithmName) -> KeyAlgorithm {
    match name {
        KeyAlgorithmName::Rsa2048 => KeyAlgorithm::Rsa(2048),
        KeyAlgorithmName::Rsa3072 => KeyAlgorithm::Rsa(3072),
        KeyAlgorithmName::Rsa4096 => KeyAlgorithm::Rsa(4096),
        KeyAlgorithmName::EcP256 => KeyAlgorithm::EcP256,
        KeyAlgorithmName::EcP384 => KeyAlgorithm::EcP384,
    }
}
