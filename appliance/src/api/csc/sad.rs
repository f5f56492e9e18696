//! Signature Activation Data: what `credentials/authorize` hands out and `signHash` spends.
//!
//! A SAD is 32 random bytes (base64url), good for one `signHash` call within its lifetime,
//! and bound to the client certificate that asked for it, the credential and the exact list
//! of hashes (SCAL 2). It is spent by any attempt to use it, right or wrong, so a SAD seen
//! by someone else is worth one failed guess at most. The table is bounded: a client holds
//! at most [`PER_CLIENT`] unspent SADs and all clients together [`TOTAL`]; past that,
//! `authorize` is refused (429) until some expire or are spent. Expired entries are swept
//! whenever one is added.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

/// Unspent SADs one client may hold.
pub const PER_CLIENT: usize = 256;
/// Unspent SADs all clients together may hold.
pub const TOTAL: usize = 8192;

/// What a SAD authorizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// SHA-256 of the client certificate.
    pub client: [u8; 32],
    /// The credential (signing key label).
    pub credential: String,
    /// SHA-256 over the hashes, in order, each length-prefixed.
    pub hashes: [u8; 32],
}

impl Grant {
    /// The binding of `hashes` (decoded bytes, in order).
    pub fn bind_hashes(hashes: &[Vec<u8>]) -> [u8; 32] {
        let mut h = Sha256::new();
        for item in hashes {
            h.update((item.len() as u64).to_be_bytes());
            h.update(item);
        }
        h.finalize().into()
    }
}

/// Why a SAD was not good.
#[derive(Debug, PartialEq, Eq)]
pub enum Spent {
    /// Never issued, already spent, or issued to another client.
    Unknown,
    /// Issued, but its lifetime is over.
    Expired,
    /// Issued for another credential or other hashes.
    Mismatch,
}

/// The table is full for this client, or for all.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

struct Entry {
    grant: Grant,
    expires: Instant,
}

/// The unspent SADs.
pub struct SadStore {
    lifetime: Duration,
    // Keyed by SHA-256 of the SAD: the table never holds a usable secret.
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl SadStore {
    /// An empty table whose SADs are good for `lifetime`.
    pub fn new(lifetime: Duration) -> SadStore {
        SadStore {
            lifetime,
            entries: Mutex::default(),
        }
    }

    /// How long a SAD stays good.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A new SAD for `grant`, good until `now` + the lifetime.
    pub fn issue(&self, grant: Grant, now: Instant) -> Result<String, Full> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, e| e.expires > now);
        let held = entries
            .values()
            .filter(|e| e.grant.client == grant.client)
            .count();
        if held >= PER_CLIENT || entries.len() >= TOTAL {
            return Err(Full);
        }
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        entries.insert(
            Sha256::digest(secret).into(),
            Entry {
                grant,
                expires: now + self.lifetime,
            },
        );
        Ok(B64URL.encode(secret))
    }

    /// Spend `sad` for `wanted`: Ok if it was issued for exactly that and is still good.
    pub fn spend(&self, sad: &str, wanted: &Grant, now: Instant) -> Result<(), Spent> {
        let secret = B64URL.decode(sad).map_err(|_| Spent::Unknown)?;
        let key: [u8; 32] = Sha256::digest(&secret).into();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Another client's SAD stays where it is: it cannot be burnt by a guess.
        match entries.get(&key) {
            Some(e) if e.grant.client == wanted.client => {}
            _ => return Err(Spent::Unknown),
        }
        let entry = entries.remove(&key).ok_or(Spent::Unknown)?;
        if entry.expires <= now {
            return Err(Spent::Expired);
        }
        if entry.grant != *wanted {
            return Err(Spent::Mismatch);
        }
        Ok(())
    }

    /// Unspent SADs (expired ones included until the next sweep).
    pub fn unspent(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFETIME: Duration = Duration::from_secs(300);

    fn grant(client: u8, credential: &str, hashes: &[&[u8]]) -> Grant {
        let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.to_vec()).collect();
        Grant {
            client: [client; 32],
            credential: credential.into(),
            hashes: Grant::bind_hashes(&hashes),
        }
    }

    #[test]
    fn a_sad_is_good_once_for_exactly_what_it_was_issued_for() {
        let store = SadStore::new(LIFETIME);
        let now = Instant::now();
        let g = grant(1, "doc-rsa", &[b"a", b"b"]);
        let sad = store.issue(g.clone(), now).expect("issued");
        assert_eq!(store.spend(&sad, &g, now), Ok(()));
        assert_eq!(store.spend(&sad, &g, now), Err(Spent::Unknown), "replay");

        // Other hashes, or the same in another order: refused, and the SAD is spent.
        let sad = store.issue(g.clone(), now).expect("issued");
        let reordered = grant(1, "doc-rsa", &[b"b", b"a"]);
        assert_eq!(store.spend(&sad, &reordered, now), Err(Spent::Mismatch));
        assert_eq!(store.spend(&sad, &g, now), Err(Spent::Unknown));

        let sad = store.issue(g.clone(), now).expect("issued");
        let other_key = grant(1, "doc-ec", &[b"a", b"b"]);
        assert_eq!(store.spend(&sad, &other_key, now), Err(Spent::Mismatch));
        // Hashes are bound with their lengths: "ab" is not "a" then "b".
        assert_ne!(
            grant(1, "k", &[b"ab"]).hashes,
            grant(1, "k", &[b"a", b"b"]).hashes
        );
    }

    #[test]
    fn another_clients_sad_is_unknown_and_stays_good_for_its_owner() {
        let store = SadStore::new(LIFETIME);
        let now = Instant::now();
        let mine = grant(1, "doc-rsa", &[b"a"]);
        let sad = store.issue(mine.clone(), now).expect("issued");
        let theirs = grant(2, "doc-rsa", &[b"a"]);
        assert_eq!(store.spend(&sad, &theirs, now), Err(Spent::Unknown));
        assert_eq!(store.spend(&sad, &mine, now), Ok(()));
        assert_eq!(store.spend("not base64!", &mine, now), Err(Spent::Unknown));
    }

    #[test]
    fn a_sad_expires_and_the_table_is_bounded_per_client() {
        let store = SadStore::new(LIFETIME);
        let now = Instant::now();
        let g = grant(1, "doc-rsa", &[b"a"]);
        let sad = store.issue(g.clone(), now).expect("issued");
        assert_eq!(
            store.spend(&sad, &g, now + LIFETIME + Duration::from_secs(1)),
            Err(Spent::Expired)
        );
        for _ in 0..PER_CLIENT {
            store.issue(g.clone(), now).expect("within the bound");
        }
        assert_eq!(store.issue(g.clone(), now), Err(Full));
        // Another client is not held up by the first one's SADs.
        assert!(store.issue(grant(2, "doc-rsa", &[b"a"]), now).is_ok());
        // Once they expire, the first client may ask again.
        let later = now + LIFETIME + Duration::from_secs(1);
        assert!(store.issue(g, later).is_ok());
        assert_eq!(store.unspent(), 1);
    }
}
