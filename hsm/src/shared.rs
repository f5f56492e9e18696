//! What the workers, the handle and the reconnect loop share.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cryptoki::types::AuthPin;

use super::health::Health;
use super::keys::KeyInfo;
use super::module::Module;

/// What the workers and the reconnect loop share.
pub(super) struct Shared {
    pub(super) module: RwLock<Module>,
    pub(super) health: Arc<Health>,
    /// Every key read so far: after a reconnect each must be found again, unchanged.
    pub(super) keys: RwLock<HashMap<String, Arc<KeyInfo>>>,
    pub(super) token_label: String,
    pub(super) pin: Arc<AuthPin>,
    pub(super) op_timeout: Duration,
}
