//! Making a token: C_InitToken on a free slot, then the user PIN. Works on any module that
//! offers an uninitialised slot (SoftHSM, tpm2-pkcs11); production tokens are made by the
//! vendor's tools instead.

use std::path::Path;

use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use secrecy::{ExposeSecret, SecretString};

use super::error::HsmError;
use super::module::find_slot;
use super::module::load_module;

/// Whether `module` has an initialised token labelled `label`.
pub fn exists(module: &Path, label: &str) -> Result<bool, HsmError> {
    let ctx = load_module(module)?;
    match find_slot(&ctx, label) {
        Ok(_) => Ok(true),
        Err(HsmError::TokenNotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Initialise a new token labelled `label` in the first free slot of `module`, with the
/// given SO and user PINs.
pub fn init(
    module: &Path,
    label: &str,
    so_pin: &SecretString,
    user_pin: &SecretString,
) -> Result<(), HsmError> {
    let ctx = load_module(module)?;
    let slot = ctx
        .get_all_slots()?
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|t| !t.token_initialized())
                .unwrap_or(false)
        })
        .ok_or_else(|| HsmError::TokenNotFound("(a free slot)".into()))?;
    let so = AuthPin::new(so_pin.expose_secret().into());
    ctx.init_token(slot, &so, label)?;
    // C_InitToken may renumber slots (SoftHSM does; tpm2-pkcs11 adds a new free slot):
    // find the new token by its label.
    let slot = find_slot(&ctx, label)?;
    let session = ctx.open_rw_session(slot)?;
    session.login(UserType::So, Some(&so))?;
    session.init_pin(&AuthPin::new(user_pin.expose_secret().into()))?;
    session.logout()?;
    Ok(())
}
