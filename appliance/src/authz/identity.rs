//! Who a client certificate is, and whether it may still be: it must be meant for client
//! authentication (id-kp-clientAuth), come from a client CA the config names, and be neither
//! revoked nor on hold. Checked at the handshake and again before every request, so that a
//! revocation reaches connections that were open before it.
//!
//! The appliance's own client CA answers from the status index that every revocation
//! updates before `signetctl cert revoke` returns; an outside CA answers from its CRL,
//! verified with the CA's key and refreshed on a schedule, with a configured choice between
//! refusing and admitting its clients while no fresh CRL is at hand.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use const_oid::db::rfc5912::ID_KP_CLIENT_AUTH;
use der::{Decode, Encode};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, ExtendedKeyUsage, SubjectKeyIdentifier};
use x509_cert::Certificate;

use signet_config::RevocationFailMode;
use signet_pki::crl::VerifiedCrl;

use super::PeerCert;

/// What the appliance knows of a certificate one of its own CAs issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Issued and in good standing.
    Good,
    /// Revoked, or on hold (`certificateHold`).
    Revoked {
        /// The reason's name (RFC 5280), `certificateHold` for a hold.
        reason: String,
    },
    /// Not issued by that CA as far as the records go.
    Unknown,
}

/// The status of certificates the appliance issued: the index revocations update.
pub trait IssuedStatus: Send + Sync {
    /// The standing of the certificate CA `ca` issued with `serial` (INTEGER content octets).
    fn standing(&self, ca: &str, serial: &[u8]) -> Standing;
}

/// Why a client certificate is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// It does not parse.
    #[error("client certificate does not parse: {0}")]
    Malformed(String),
    /// Its extendedKeyUsage does not name id-kp-clientAuth (or it has none).
    #[error("not a client certificate: its extended key usage lacks id-kp-clientAuth")]
    NotForClientAuth,
    /// No configured client CA issued it.
    #[error("issued by no configured client CA")]
    UnknownIssuer,
    /// Revoked or on hold.
    #[error("client certificate {serial} of CA {ca} is revoked ({reason})")]
    Revoked {
        /// The CA's name.
        ca: Arc<str>,
        /// Its serial, hex.
        serial: String,
        /// Why.
        reason: String,
    },
    /// Its status cannot be known and the CA's policy is to refuse then.
    #[error("client certificate {serial} of CA {ca}: revocation status unknown ({why})")]
    StatusUnknown {
        /// The CA's name.
        ca: Arc<str>,
        /// Its serial, hex.
        serial: String,
        /// Why it is unknown.
        why: String,
    },
}

/// One CA whose client certificates are accepted.
struct TrustedCa {
    name: Arc<str>,
    /// DER of its subject Name, compared with the client certificate's issuer.
    subject: Vec<u8>,
    /// Its subjectKeyIdentifier, compared with the client's authorityKeyIdentifier.
    key_id: Option<Vec<u8>>,
    certificate: Certificate,
    source: StatusSource,
}

enum StatusSource {
    /// One of the appliance's own CAs: the status index.
    Appliance,
    /// An outside CA: its CRL, once one verified.
    Crl {
        current: RwLock<Option<LoadedCrl>>,
        mode: RevocationFailMode,
    },
}

struct LoadedCrl {
    revoked: HashMap<Vec<u8>, Option<signet_pki::RevocationReason>>,
    next_update: Option<SystemTime>,
}

/// The client CAs and how each one's revocations are learnt.
pub struct ClientTrust {
    cas: Vec<TrustedCa>,
    issued: Arc<dyn IssuedStatus>,
}

impl ClientTrust {
    /// Trust the appliance's client CA `own` (named `own_name`), whose statuses `issued`
    /// knows.
    pub fn new(own_name: &str, own: Certificate, issued: Arc<dyn IssuedStatus>) -> Self {
        ClientTrust {
            cas: vec![TrustedCa::new(own_name, own, StatusSource::Appliance)],
            issued,
        }
    }

    /// Also trust the outside CA `name`, whose revocations come from CRLs given to
    /// [`ClientTrust::take_crl`]; until one is, `mode` decides.
    pub fn with_outside_ca(
        mut self,
        name: &str,
        certificate: Certificate,
        mode: RevocationFailMode,
    ) -> Result<Self, String> {
        if self.cas.iter().any(|c| {
            c.subject
                == certificate
                    .tbs_certificate
                    .subject
                    .to_der()
                    .unwrap_or_default()
        }) {
            return Err(format!(
                "client CA `{name}` has the same subject as another client CA: a client \
                 certificate's issuer would not say which one"
            ));
        }
        self.cas.push(TrustedCa::new(
            name,
            certificate,
            StatusSource::Crl {
                current: RwLock::new(None),
                mode,
            },
        ));
        Ok(self)
    }

    /// The trust anchors, DER: what the TLS layer builds chains to.
    pub fn anchors(&self) -> Vec<Vec<u8>> {
        self.cas
            .iter()
            .filter_map(|c| c.certificate.to_der().ok())
            .collect()
    }

    /// The outside CAs, by name, with their certificates (for the CRL refresher).
    pub fn outside_cas(&self) -> Vec<(Arc<str>, Certificate)> {
        self.cas
            .iter()
            .filter(|c| matches!(c.source, StatusSource::Crl { .. }))
            .map(|c| (Arc::clone(&c.name), c.certificate.clone()))
            .collect()
    }

    /// Put a CRL of outside CA `ca` in force: DER or PEM, verified with the CA's key. A CRL
    /// older than the one in force is refused (a replayed CRL must not lift a revocation).
    pub fn take_crl(&self, ca: &str, bytes: &[u8]) -> Result<usize, String> {
        let trusted = self
            .cas
            .iter()
            .find(|c| &*c.name == ca)
            .ok_or_else(|| format!("no client CA named {ca:?}"))?;
        let StatusSource::Crl { current, .. } = &trusted.source else {
            return Err(format!("client CA {ca:?} is the appliance's own"));
        };
        let der = crl_der(bytes)?;
        let crl = signet_pki::crl::read_verified(&der, &trusted.certificate)
            .map_err(|e| format!("CRL of {ca}: {e}"))?;
        let VerifiedCrl {
            this_update,
            next_update,
            revoked,
        } = crl;
        let mut guard = current
            .write()
            .map_err(|_| "CRL state poisoned".to_owned())?;
        if let Some(old) = guard.as_ref() {
            if old.next_update.is_some_and(|n| next_update < Some(n)) {
                return Err(format!("CRL of {ca} is older than the one in force"));
            }
        }
        let count = revoked.len();
        *guard = Some(LoadedCrl {
            revoked: revoked.into_iter().collect(),
            next_update: next_update.or(Some(this_update)),
        });
        Ok(count)
    }

    /// Who `der` is, if it may authenticate now.
    pub fn identify(&self, der: &[u8]) -> Result<PeerCert, Refusal> {
        let cert = Certificate::from_der(der).map_err(|e| Refusal::Malformed(e.to_string()))?;
        if !allows_client_auth(&cert) {
            return Err(Refusal::NotForClientAuth);
        }
        let ca = self.issuer_of(&cert).ok_or(Refusal::UnknownIssuer)?;
        let serial = cert.tbs_certificate.serial_number.as_bytes().to_vec();
        let peer = PeerCert::read(&cert, der, Arc::clone(&ca.name), serial);
        self.check_with(ca, &peer)?;
        Ok(peer)
    }

    /// Whether `peer`, identified earlier, is still in good standing.
    pub fn check(&self, peer: &PeerCert) -> Result<(), Refusal> {
        let ca = self
            .cas
            .iter()
            .find(|c| c.name == peer.issuer)
            .ok_or(Refusal::UnknownIssuer)?;
        self.check_with(ca, peer)
    }

    fn check_with(&self, ca: &TrustedCa, peer: &PeerCert) -> Result<(), Refusal> {
        let serial = || hex::encode(&peer.serial);
        match &ca.source {
            StatusSource::Appliance => match self.issued.standing(&ca.name, &peer.serial) {
                Standing::Good => Ok(()),
                Standing::Revoked { reason } => Err(Refusal::Revoked {
                    ca: Arc::clone(&ca.name),
                    serial: serial(),
                    reason,
                }),
                // Every certificate the client CA issues is recorded before it is handed
                // out: one the records do not know was not issued through the appliance.
                Standing::Unknown => Err(Refusal::StatusUnknown {
                    ca: Arc::clone(&ca.name),
                    serial: serial(),
                    why: "not in the appliance's records".into(),
                }),
            },
            StatusSource::Crl { current, mode } => {
                let now = SystemTime::now();
                let unknown = |why: &str| match mode {
                    RevocationFailMode::FailClosed => Err(Refusal::StatusUnknown {
                        ca: Arc::clone(&ca.name),
                        serial: serial(),
                        why: why.to_owned(),
                    }),
                    RevocationFailMode::FailOpen => {
                        tracing::warn!(ca = %ca.name, serial = %serial(), why, "client admitted without a revocation check (fail-open)");
                        Ok(())
                    }
                };
                let Ok(guard) = current.read() else {
                    return unknown("CRL state poisoned");
                };
                let Some(crl) = guard.as_ref() else {
                    return unknown("no CRL read yet");
                };
                // A listed serial is refused whatever the CRL's age.
                if let Some(reason) = crl.revoked.get(&peer.serial) {
                    return Err(Refusal::Revoked {
                        ca: Arc::clone(&ca.name),
                        serial: serial(),
                        reason: reason
                            .map(|r| r.name().to_owned())
                            .unwrap_or_else(|| "unspecified".into()),
                    });
                }
                if crl.next_update.is_some_and(|n| n < now) {
                    return unknown("the CRL is past its nextUpdate");
                }
                Ok(())
            }
        }
    }

    /// The configured CA that issued `cert`: the issuer name matches its subject and, when
    /// both say, the key identifiers match too.
    fn issuer_of(&self, cert: &Certificate) -> Option<&TrustedCa> {
        let issuer = cert.tbs_certificate.issuer.to_der().ok()?;
        let akid = cert
            .tbs_certificate
            .get::<AuthorityKeyIdentifier>()
            .ok()
            .flatten()
            .and_then(|(_, a)| a.key_identifier.map(|k| k.as_bytes().to_vec()));
        self.cas.iter().find(|ca| {
            ca.subject == issuer
                && match (&akid, &ca.key_id) {
                    (Some(a), Some(k)) => a == k,
                    _ => true,
                }
        })
    }
}

impl std::fmt::Debug for ClientTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.cas.iter().map(|c| &*c.name).collect();
        f.debug_struct("ClientTrust").field("cas", &names).finish()
    }
}

impl TrustedCa {
    fn new(name: &str, certificate: Certificate, source: StatusSource) -> Self {
        let key_id = certificate
            .tbs_certificate
            .get::<SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .map(|(_, k)| k.0.as_bytes().to_vec());
        TrustedCa {
            name: name.into(),
            subject: certificate
                .tbs_certificate
                .subject
                .to_der()
                .unwrap_or_default(),
            key_id,
            certificate,
            source,
        }
    }
}

/// Whether `cert` names id-kp-clientAuth in its extended key usage. A certificate without
/// the extension is refused: every profile but the client's leaves clientAuth out, and a
/// certificate that says nothing of its purpose is not taken as a client's.
fn allows_client_auth(cert: &Certificate) -> bool {
    match cert.tbs_certificate.get::<ExtendedKeyUsage>() {
        Ok(Some((_, eku))) => eku.0.contains(&ID_KP_CLIENT_AUTH),
        _ => false,
    }
}

/// A CRL's DER, from DER or PEM (`X509 CRL`).
fn crl_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let mut reader = bytes;
    let first = rustls_pemfile::crls(&mut reader).next();
    match first {
        Some(Ok(der)) => Ok(der.to_vec()),
        Some(Err(e)) => Err(format!("CRL PEM: {e}")),
        None => Err("neither a DER CRL nor a PEM `X509 CRL`".into()),
    }
}

#[cfg(test)]
mod tests;
