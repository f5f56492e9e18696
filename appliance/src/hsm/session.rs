//! One worker's logged-in session, reopened and logged in again when it is lost.

use std::collections::HashMap;
use std::sync::Arc;

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use super::error::HsmError;
use super::keys;

/// What a worker thread owns: the module, its token's slot, its session and the private
/// key handles it has resolved (and checked) so far.
pub struct WorkerSession {
    ctx: Pkcs11,
    token_label: String,
    pin: Arc<AuthPin>,
    slot: Slot,
    session: Option<Session>,
    handles: HashMap<String, PrivateKey>,
    /// The token's C_GetMechanismList, read once.
    mechanisms: Option<Arc<[MechanismType]>>,
}

/// A private key found and checked in this session.
#[derive(Clone)]
pub struct PrivateKey {
    /// Its handle in this session.
    pub handle: ObjectHandle,
    /// Its CKA_ALLOWED_MECHANISMS (empty: not restricted).
    pub allowed: Arc<[MechanismType]>,
}

impl WorkerSession {
    pub(super) fn new(ctx: Pkcs11, token_label: String, pin: Arc<AuthPin>, slot: Slot) -> Self {
        WorkerSession {
            ctx,
            token_label,
            pin,
            slot,
            session: None,
            handles: HashMap::new(),
            mechanisms: None,
        }
    }

    /// The session, opened and logged in if it is not yet.
    pub fn session(&mut self) -> Result<&Session, HsmError> {
        if self.session.is_none() {
            let session = open_logged_in(&self.ctx, self.slot, &self.pin)?;
            self.session = Some(session);
        }
        self.session.as_ref().ok_or(HsmError::Unavailable)
    }

    /// Run `op`; if the session or login turns out to be lost, drop everything, find the
    /// token again, log in again and retry once.
    pub fn with_retry<T>(
        &mut self,
        mut op: impl FnMut(&mut Self) -> Result<T, HsmError>,
    ) -> Result<T, HsmError> {
        match op(self) {
            Err(e) if e.is_session_lost() || e.may_be_stale() && !self.logged_in() => {
                tracing::warn!(error = %e, "HSM session lost; reopening and logging in again");
                self.reset();
                if let Ok(slot) = find_slot(&self.ctx, &self.token_label) {
                    self.slot = slot;
                }
                op(self)
            }
            // Logged in again (another worker's new login covers every session of the
            // application) but holding handles from before: look the keys up afresh.
            Err(e) if e.may_be_stale() => {
                self.handles.clear();
                op(self)
            }
            other => other,
        }
    }

    /// Whether the session still exists and is logged in as the user. After a logout,
    /// private keys are simply not found and cached handles are invalid: the error alone
    /// does not say the login is gone.
    fn logged_in(&self) -> bool {
        use cryptoki::session::SessionState;
        self.session
            .as_ref()
            .and_then(|s| s.get_session_info().ok())
            .is_some_and(|i| {
                matches!(
                    i.session_state(),
                    SessionState::RwUser | SessionState::RoUser
                )
            })
    }

    fn reset(&mut self) {
        if let Some(s) = self.session.take() {
            // The session is most likely dead already; closing it is best effort.
            let _ = s.close();
        }
        self.handles.clear();
        self.mechanisms = None;
    }

    /// The private key handle for `label`, found and checked once per session.
    pub fn private_key(&mut self, label: &str) -> Result<ObjectHandle, HsmError> {
        Ok(self.signing_key(label)?.handle)
    }

    /// The private key labelled `label` with the mechanisms it allows, found and checked
    /// once per session.
    pub fn signing_key(&mut self, label: &str) -> Result<PrivateKey, HsmError> {
        if let Some(k) = self.handles.get(label) {
            return Ok(k.clone());
        }
        let session = self.session()?;
        let handle = keys::find_private_key(session, label)?;
        let allowed = keys::allowed_mechanisms(session, handle)?.into();
        let key = PrivateKey { handle, allowed };
        self.handles.insert(label.to_owned(), key.clone());
        Ok(key)
    }

    /// Refuse an RSA size the token says it cannot generate (C_GetMechanismInfo) with a
    /// message that says so: swtpm's TPM makes RSA keys of up to 3072 bits, and
    /// tpm2-pkcs11 answers a 4096-bit request with a bare CKR_ATTRIBUTE_VALUE_INVALID.
    pub fn check_rsa_size(&mut self, label: &str, bits: u32) -> Result<(), HsmError> {
        let info = self
            .ctx
            .get_mechanism_info(self.slot, MechanismType::RSA_PKCS_KEY_PAIR_GEN)?;
        let (min, max) = (info.min_key_size(), info.max_key_size());
        // Some tokens state no bounds (0); only a stated range is enforced.
        if max != 0 && !(min..=max).contains(&(bits as usize)) {
            return Err(HsmError::UnsupportedKey {
                label: label.to_owned(),
                reason: format!("the token generates RSA keys of {min} to {max} bits, not {bits}"),
            });
        }
        Ok(())
    }

    /// The mechanisms the token offers (C_GetMechanismList), read once.
    pub fn token_mechanisms(&mut self) -> Result<Arc<[MechanismType]>, HsmError> {
        if let Some(m) = &self.mechanisms {
            return Ok(Arc::clone(m));
        }
        let list: Arc<[MechanismType]> = self.ctx.get_mechanism_list(self.slot)?.into();
        self.mechanisms = Some(Arc::clone(&list));
        Ok(list)
    }

    /// Forget cached handles (after keys were created or destroyed).
    pub fn forget_handles(&mut self) {
        self.handles.clear();
    }
}

/// Open a read-write session on `slot` and log the user in (already logged in is fine: a
/// login is shared by all sessions of the application).
pub(super) fn open_logged_in(ctx: &Pkcs11, slot: Slot, pin: &AuthPin) -> Result<Session, HsmError> {
    let session = ctx.open_rw_session(slot)?;
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(e) => Err(e.into()),
    }
}

/// The slot holding the token labelled `label`.
pub(super) fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Slot, HsmError> {
    for slot in ctx.get_slots_with_token()? {
        let info = ctx.get_token_info(slot)?;
        if info.token_initialized() && info.label().trim_end() == label {
            return Ok(slot);
        }
    }
    Err(HsmError::TokenNotFound(label.to_owned()))
}
