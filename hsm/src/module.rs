//! The PKCS#11 module: loading it, C_Initialize (and, after a lost token, C_Finalize and
//! C_Initialize again), and finding the token's slot by its label. Nothing else in the
//! crate initialises the module.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::slot::Slot;

use super::error::HsmError;

/// The loaded module as the workers use it. Workers hold it read-locked while they run a
/// job; the reconnect loop write-locks it to initialise the module again.
pub(super) struct Module {
    pub(super) ctx: Pkcs11,
    pub(super) slot: Slot,
    /// Counts initialisations, so that a worker knows its session is from an older one.
    pub(super) generation: u64,
}

impl Module {
    /// C_Finalize, C_Initialize, and find the token again.
    pub(super) fn reinitialize(&mut self, token_label: &str) -> Result<(), HsmError> {
        // Finalizing a module whose server is gone is fine; so is one finalized already.
        let _ = self.ctx.clone().finalize();
        self.generation += 1;
        match self
            .ctx
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(e.into()),
        }
        self.slot = find_slot(&self.ctx, token_label)?;
        Ok(())
    }
}

/// Load and initialise a PKCS#11 module. Already initialised in this process is fine.
pub(super) fn load_module(path: &std::path::Path) -> Result<Pkcs11, HsmError> {
    let module_err = |source| HsmError::Module {
        path: path.to_owned(),
        source,
    };
    let ctx = Pkcs11::new(path).map_err(module_err)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(ctx),
        Err(e) => Err(module_err(e)),
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
