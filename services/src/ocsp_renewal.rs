//! The delegated OCSP signer renews itself: its certificate lives `ocsp.signer_lifetime_secs`
//! and signetd replaces it at half its life, or at once when it is revoked, held or expired.
//!
//! A renewal makes a new key in the token under the other of two labels (`L` and `L.next`,
//! `L` being `keys.ocsp_signer.label`), so old and new coexist until the switch; has the
//! root issue its certificate, records it (OCSP and CRLs know it from then on), replaces
//! the certificate file atomically, puts the new signer in place, re-signs every cached
//! answer with it, and only then destroys the old key. A crash at any step leaves a
//! certificate file that certifies one of the two keys: at start signetd takes the key the
//! file certifies and destroys the other.
//!
//! While no usable delegated signer exists the root signs the answers itself (RFC 6960
//! 4.2.2.2); the responder checks the signer before every signature.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use x509_cert::Certificate;

use signet_pki::x509::{self, Profile};
use signet_pki::KeyAlgorithm;

use crate::issuance::certifies;
use crate::issuance::ROOT_CA;
use crate::ocsp::{OcspService, Signer};
use crate::revocation::StatusAuthority;
use signet_hsm::{Hsm, HsmError, KeyInfo};
use signet_state::store::certs;

/// The label a renewal moves the signer's key to from `current`: the other of `base` and
/// `base.next`.
pub fn next_label(base: &str, current: &str) -> String {
    if current == base {
        alternate_label(base)
    } else {
        base.to_owned()
    }
}

/// The second label the signer's key may carry.
pub fn alternate_label(base: &str) -> String {
    format!("{base}.next")
}

/// The notBefore of a signer certificate issued now for `lifetime`: backdated a little
/// against clock skew (five minutes, or a tenth of a short lifetime).
pub fn not_before(lifetime: Duration) -> SystemTime {
    SystemTime::now() - (lifetime / 10).min(Duration::from_secs(300))
}

/// How often to look whether the signer is due: a tenth of its lifetime, at most a minute.
pub fn check_interval(lifetime: Duration) -> Duration {
    (lifetime / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// At start: the key (labelled `base` or `base.next`) that `cert` certifies. The other one,
/// left by a renewal cut short, is destroyed. `Ok(None)`: neither certifies `cert`.
pub fn load_signer_key(
    hsm: &Hsm,
    base: &str,
    cert: &Certificate,
) -> Result<Option<Arc<KeyInfo>>, HsmError> {
    let alternate = alternate_label(base);
    let mut found = None;
    let mut strays = Vec::new();
    let mut first_error = None;
    for label in [base, alternate.as_str()] {
        match hsm.key_blocking(label) {
            Ok(key) if found.is_none() && certifies(cert, &key) => found = Some(key),
            Ok(_) => strays.push(label.to_owned()),
            Err(HsmError::KeyNotFound(_)) if label != base => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let Some(key) = found else {
        return match first_error {
            Some(e) => Err(e),
            None => Ok(None),
        };
    };
    for label in strays {
        tracing::warn!(
            label,
            "destroying an OCSP signer key left by an unfinished renewal"
        );
        if let Err(e) = hsm.destroy_blocking(&label) {
            tracing::warn!(label, error = %e, "stray OCSP signer key not destroyed");
        }
    }
    Ok(Some(key))
}

/// The renewal task's parts.
pub struct Renewal {
    /// Issues the certificate, records it and tells the responder.
    pub authority: Arc<StatusAuthority>,
    /// The responder whose signer is renewed.
    pub ocsp: Arc<OcspService>,
    /// The token.
    pub hsm: Hsm,
    /// The certificate file (`pki/ocsp-signer.pem`).
    pub cert_path: std::path::PathBuf,
    /// `keys.ocsp_signer.label`.
    pub base_label: String,
    /// The algorithm of new keys.
    pub algorithm: KeyAlgorithm,
    /// `ocsp.signer_lifetime_secs`.
    pub lifetime: Duration,
    /// `ocsp.signer_new_key`.
    pub new_key: bool,
}

impl Renewal {
    /// Why the signer must be renewed now, if it must.
    pub fn due(&self, now: SystemTime) -> Option<&'static str> {
        if let Some(why) = self.ocsp.signer_unusable(ROOT_CA, now) {
            return Some(why);
        }
        let signer = self.ocsp.ca(ROOT_CA)?.delegated();
        let life = signer
            .not_after()
            .duration_since(signer.not_before())
            .unwrap_or_default();
        (now >= signer.not_before() + life / 2).then_some("half its life is over")
    }

    /// Look every [`check_interval`] (and whenever the responder asks) whether the signer
    /// is due, and renew it; a failed renewal is retried at the next look.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(check_interval(self.lifetime));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.ocsp.renewal_requested() => {}
                () = &mut shutdown => return,
            }
            let Some(why) = self.due(SystemTime::now()) else {
                continue;
            };
            tracing::info!(why, "renewing the delegated OCSP signer");
            if let Err(e) = self.renew(why).await {
                tracing::error!(error = %e, "OCSP signer renewal failed; retried shortly");
            }
        }
    }

    /// Issue a new signer certificate (with a new key unless configured otherwise; always
    /// when the old one is revoked or held) and put it in place.
    pub async fn renew(&self, why: &str) -> Result<(), String> {
        let ca = &self
            .authority
            .ca()
            .ok_or("this daemon has no CA key to issue with")?
            .root;
        let old = self
            .ocsp
            .ca(ROOT_CA)
            .ok_or("no OCSP responder for the root")?
            .delegated();
        let compromised = matches!(why, "revoked" | "on hold");
        let key = if self.new_key || compromised {
            let label = next_label(&self.base_label, &old.key().label);
            let (hsm, algorithm) = (self.hsm.clone(), self.algorithm);
            tokio::task::block_in_place(|| {
                // A key left under this label by a renewal cut short goes first.
                hsm.destroy_blocking(&label)?;
                hsm.generate_key_blocking(&label, algorithm)
            })
            .map_err(|e| format!("new key {label:?}: {e}"))?
        } else {
            Arc::clone(old.key())
        };
        let cert = ca
            .sign_certificate(
                Profile::OcspSigning,
                old.certificate().tbs_certificate.subject.clone(),
                key.spki.clone(),
                not_before(self.lifetime),
                self.lifetime,
            )
            .await
            .map_err(|e| format!("issuing: {e}"))?;
        let record = self
            .authority
            .store()
            .record_certificate(ROOT_CA, "ocsp-signer", &cert)
            .await
            .map_err(|e| format!("recording: {e}"))?;
        self.authority.issued(&record).await;
        write_cert(&self.cert_path, &cert)?;
        // From here nothing can fail: the file on disk and the signer in use agree.
        let new = Signer::new(cert, Arc::clone(&key));
        let not_after = certs::unix_secs(new.not_after());
        self.ocsp.install_signer(ROOT_CA, new).await;
        if old.key().label != key.label {
            let label = old.key().label.clone();
            let hsm = self.hsm.clone();
            if let Err(e) = tokio::task::block_in_place(|| hsm.destroy_blocking(&label)) {
                tracing::warn!(label, error = %e, "old OCSP signer key not destroyed");
            }
        }
        tracing::info!(
            serial = %record.serial,
            not_after,
            label = %key.label,
            replaced = %old.serial(),
            "OCSP signer renewed"
        );
        Ok(())
    }
}

/// Replace the signer certificate file atomically.
fn write_cert(path: &Path, cert: &Certificate) -> Result<(), String> {
    let pem = x509::certificate_to_pem(cert).map_err(|e| e.to_string())?;
    signet_state::atomic_write::write_atomic(path, pem.as_bytes(), 0o644)
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_alternates_between_two() {
        assert_eq!(next_label("ocsp", "ocsp"), "ocsp.next");
        assert_eq!(next_label("ocsp", "ocsp.next"), "ocsp");
        assert_eq!(next_label("ocsp", "something else"), "ocsp");
    }

    #[test]
    fn short_lifetimes_are_checked_often_and_backdated_little() {
        assert_eq!(
            check_interval(Duration::from_secs(120)),
            Duration::from_secs(12)
        );
        assert_eq!(
            check_interval(Duration::from_secs(604_800)),
            Duration::from_secs(60)
        );
        let nb = not_before(Duration::from_secs(120));
        let ago = SystemTime::now().duration_since(nb).unwrap_or_default();
        assert!(ago <= Duration::from_secs(13), "{ago:?}");
    }
}
