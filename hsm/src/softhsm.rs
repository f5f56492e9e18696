//! A SoftHSM2 token of the appliance's own, for the dev profile and tests: its config file
//! and token directory live under the state directory, so nothing global is touched.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::error::HsmError;

/// The softhsm2.conf template; `@TOKENDIR@` is replaced by the token directory.
pub const CONF_TEMPLATE: &str = include_str!("../../softhsm/softhsm2.conf.in");

/// The config file of the token in `dir`.
pub fn conf_path(dir: &Path) -> PathBuf {
    dir.join("softhsm2.conf")
}

/// Point this process's SoftHSM at the token in `dir`. SoftHSM reads SOFTHSM2_CONF when the
/// module is initialised, so call this before any thread starts and before [`super::Hsm::open`].
pub fn use_token_dir(dir: &Path) {
    std::env::set_var("SOFTHSM2_CONF", conf_path(dir));
}

/// Write the config for a token in `dir` (made if missing); returns the config's path.
pub fn write_conf(dir: &Path) -> std::io::Result<PathBuf> {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let tokens = std::fs::canonicalize(&tokens)?;
    let conf = conf_path(dir);
    std::fs::write(
        &conf,
        CONF_TEMPLATE.replace("@TOKENDIR@", &tokens.to_string_lossy()),
    )?;
    Ok(conf)
}

/// Initialise a new token labelled `label` in the first free slot of SoftHSM, with the
/// given SO and user PINs. The process's SOFTHSM2_CONF must point at the token's config.
pub fn init_token(
    module: &Path,
    label: &str,
    so_pin: &SecretString,
    user_pin: &SecretString,
) -> Result<(), HsmError> {
    super::token::init(module, label, so_pin, user_pin)
}
