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
use super::health::Health;
use super::keys;
use super::module::{find_slot, Module};

/// What a worker thread owns: the module, its token's slot, its session and the private
/// key handles it has resolved (and checked) so far.
pub struct WorkerSession {
    ctx: Pkcs11,
    token_label: String,
    pin: Arc<AuthPin>,
    slot: Slot,
    /// Which initialisation of the module `session` belongs to.
    generation: u64,
    /// The pool's view of the token; none for the benchmark's bare sessions.
    health: Option<Arc<Health>>,
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
    /// Whether it was generated in the token.
    pub origin: keys::KeyOrigin,
}

impl WorkerSession {
    pub(super) fn new(module: &Module, token_label: String, pin: Arc<AuthPin>) -> Self {
        WorkerSession {
            ctx: module.ctx.clone(),
            token_label,
            pin,
            slot: module.slot,
            generation: module.generation,
            health: None,
            session: None,
            handles: HashMap::new(),
            mechanisms: None,
        }
    }

    /// Refuse to touch the token while `health` says it is lost.
    pub(super) fn watched_by(mut self, health: Arc<Health>) -> Self {
        self.health = Some(health);
        self
    }

    /// Follow the module into a new initialisation. The old session died with the old
    /// one (C_Finalize closed it); it is forgotten, not closed, because its handle may now
    /// name another worker's new session.
    pub(super) fn adopt(&mut self, module: &Module) {
        if module.generation == self.generation {
            return;
        }
        if let Some(old) = self.session.take() {
            std::mem::forget(old);
        }
        self.handles.clear();
        self.ctx = module.ctx.clone();
        self.slot = module.slot;
        self.generation = module.generation;
    }

    /// Mark the token lost if `e` says the device is gone.
    pub(super) fn observe(&self, e: &HsmError) {
        if let (Some(health), true) = (&self.health, e.is_device_lost()) {
            health.mark_lost(&e.to_string());
        }
    }

    /// The session, opened and logged in if it is not yet.
    pub fn session(&mut self) -> Result<&Session, HsmError> {
        if self.health.as_ref().is_some_and(|h| !h.is_ready()) {
            return Err(HsmError::Lost);
        }
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

    /// The private key labelled `label` with the mechanisms it allows, found and checked
    /// once per session.
    pub fn signing_key(&mut self, label: &str) -> Result<PrivateKey, HsmError> {
        if let Some(k) = self.handles.get(label) {
            return Ok(k.clone());
        }
        let session = self.session()?;
        let (handle, origin) = keys::find_private_key(session, label)?;
        let allowed = keys::allowed_mechanisms(session, handle)?.into();
        let key = PrivateKey {
            handle,
            allowed,
            origin,
        };
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
