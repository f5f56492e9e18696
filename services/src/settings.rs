//! Turning the configuration into the settings of each component.

use signet_config::{Config, KeyAlgorithmName};
use signet_pki::KeyAlgorithm;

use signet_hsm::HsmSettings;

/// Point SoftHSM at the config's dev token, if it has one. Call before any thread starts
/// (it sets an environment variable).
pub fn prepare_softhsm(config: &Config) {
    if let Some(dir) = &config.hsm.softhsm_dir {
        signet_hsm::softhsm::use_token_dir(&config.state_path(dir));
    }
}

/// The HSM settings; the PIN comes from the config (sealed to the TPM in production).
pub fn hsm(config: &Config) -> Result<HsmSettings, String> {
    let pin = config.hsm.user_pin.clone().ok_or_else(|| {
        "hsm.user_pin is not set (in production it comes from the sealed config)".to_string()
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
