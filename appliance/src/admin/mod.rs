//! The admin socket: a Unix socket on which `signetctl` asks the running daemon to act, so
//! that only signetd holds the HSM PIN while it runs.
//!
//! The protocol is one JSON object per line each way, versioned:
//!
//! ```text
//! -> {"version":1,"command":"cert-revoke","serial":"1a2b","reason":"keyCompromise"}
//! <- {"version":1,"ok":true,"result":{...}}
//! <- {"version":1,"ok":false,"error":{"code":"not-found","message":"..."}}
//! ```
//!
//! A request with `"progress":true` may get progress lines before its answer, from a long
//! command (`audit verify`): `<- {"progress":{"done":4096,"total":1048576}}`.
//!
//! Peers are checked with SO_PEERCRED: root, the daemon's own user, or a member of the
//! configured admin group. Every command is audited before it is answered.

pub mod audit_ops;
pub mod client;
pub mod client_edit;
pub mod daemon_ops;
pub mod dispatch;
pub mod duties;
pub mod key_ops;
pub mod offline;
pub mod ops;
pub mod server;

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line accepted.
pub const MAX_LINE: usize = 64 * 1024;

/// What signetctl asks of the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Command {
    /// Every issued certificate and its status.
    CertList,
    /// One certificate.
    CertShow {
        /// Its serial, hex.
        serial: String,
    },
    /// Revoke (or, with `certificateHold`, suspend) a certificate.
    CertRevoke {
        /// Its serial, hex.
        serial: String,
        /// The CRLReason name.
        reason: String,
    },
    /// Lift a hold.
    CertUnhold {
        /// Its serial, hex.
        serial: String,
    },
    /// Issue a certificate from a PKCS#10 request.
    CertIssue(crate::issuance::IssueRequest),
    /// Generate a key pair in the token, and (with `issue_from`) a document-signing
    /// certificate for it.
    KeyGenerate {
        /// CKA_LABEL of the new key.
        label: String,
        /// `rsa-2048`, `rsa-3072`, `rsa-4096`, `ec-p256` or `ec-p384`.
        algorithm: String,
        /// The CA to certify it (`root`), if any.
        #[serde(default)]
        issue_from: Option<String>,
    },
    /// The audit log.
    Audit(AuditCommand),
    /// What the running appliance is doing.
    Status,
    /// Keys in the token.
    KeyList,
    /// One key in the token: algorithm and public key.
    KeyShow {
        /// Its label.
        label: String,
    },
    /// Re-sign every CRL (and the OCSP cache) now.
    CrlPublish,
    /// The configured API clients.
    ClientList,
    /// Re-read the client policy from the config (as SIGHUP does).
    Reload,
    /// A PKCS#10 request for a key in the token, signed by that key, for an outside CA.
    Csr {
        /// The key's label.
        label: String,
        /// The subject DN, RFC 4514 (`CN=...,O=...`).
        subject: String,
        /// DNS names to ask for in the subjectAltName.
        #[serde(default)]
        san_dns: Vec<String>,
    },
    /// Put a chain from an outside CA (leaf first, PEM) in service for a key in the token.
    CertImport {
        /// The key's label.
        label: String,
        /// The chain, PEM.
        chain_pem: String,
    },
    /// Add an API client to the config the daemon runs from, and reload.
    ClientAdd(client_edit::NewClient),
    /// Remove an API client from the config, and reload.
    ClientRemove {
        /// Its name.
        name: String,
    },
}

/// What `signetctl audit` asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum AuditCommand {
    /// Check the chain, every checkpoint, and that the log reaches the last checkpoint.
    Verify,
    /// The last records.
    Tail {
        /// How many.
        count: usize,
    },
    /// Records `from..=to` with the checkpoint that covers them.
    Export {
        /// First sequence number.
        from: u64,
        /// Last sequence number.
        to: u64,
    },
}

/// A request: the version and the command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u32,
    /// The command.
    #[serde(flatten)]
    pub command: Command,
    /// The client draws progress: the daemon may send [`ProgressLine`]s before the answer
    /// to a long command (an older client leaves this out and gets the answer alone).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub progress: bool,
}

/// How far a long command has got, sent before its answer when the request asks for it:
/// `{"progress":{"done":..,"total":..}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressLine {
    /// How far.
    pub progress: Advance,
}

/// Units done out of a total (bytes of the log, for `audit verify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advance {
    /// Done so far.
    pub done: u64,
    /// In all.
    pub total: u64,
}

/// A refusal or failure, with a stable code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({code})")]
pub struct AdminError {
    /// Stable machine-readable code: `bad-request`, `unsupported-version`, `forbidden`,
    /// `bad-serial`, `bad-reason`, `not-found`, `ambiguous`, `already-revoked`,
    /// `not-on-hold`, `internal`.
    pub code: String,
    /// What happened, for people.
    pub message: String,
}

impl AdminError {
    /// An error with `code` and `message`.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        AdminError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The one place a service's refusal becomes an admin answer.
impl From<signet_services::ServiceError> for AdminError {
    fn from(e: signet_services::ServiceError) -> Self {
        use signet_services::ServiceError;
        match e {
            ServiceError::BadRequest(m) => AdminError::new("bad-request", m),
            ServiceError::Refused(r) => ops::refused(r),
            ServiceError::Unpublished(m) => AdminError::new("unpublished", m),
            ServiceError::Unavailable(m) => AdminError::new("unavailable", m),
            ServiceError::Internal(m) => AdminError::new("internal", m),
        }
    }
}

/// The answer to one request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    /// [`PROTOCOL_VERSION`] of the daemon.
    pub version: u32,
    /// Whether the command succeeded.
    pub ok: bool,
    /// What it produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<AdminError>,
}

impl Response {
    /// The response for an outcome.
    pub fn from_result(outcome: Result<serde_json::Value, AdminError>) -> Self {
        match outcome {
            Ok(v) => Response {
                version: PROTOCOL_VERSION,
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => Response {
                version: PROTOCOL_VERSION,
                ok: false,
                result: None,
                error: Some(e),
            },
        }
    }
}

/// Decode one request line; every failure is an [`AdminError`] the peer gets back.
pub fn parse_request(line: &[u8]) -> Result<Request, AdminError> {
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let version: Version = serde_json::from_slice(line)
        .map_err(|e| AdminError::new("bad-request", format!("not a versioned request: {e}")))?;
    if version.version != PROTOCOL_VERSION {
        return Err(AdminError::new(
            "unsupported-version",
            format!(
                "protocol version {} is not {PROTOCOL_VERSION}",
                version.version
            ),
        ));
    }
    let request: Request =
        serde_json::from_slice(line).map_err(|e| AdminError::new("bad-request", e.to_string()))?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_ones_get_a_code() {
        let cmd = Command::CertRevoke {
            serial: "1a".into(),
            reason: "keyCompromise".into(),
        };
        for progress in [false, true] {
            let line = serde_json::to_vec(&Request {
                version: PROTOCOL_VERSION,
                command: cmd.clone(),
                progress,
            })
            .expect("json");
            let request = parse_request(&line).expect("parses");
            assert_eq!((request.command, request.progress), (cmd.clone(), progress));
        }
        // A request from a client that does not draw progress.
        let old = br#"{"version":1,"command":"cert-list"}"#;
        assert!(!parse_request(old).expect("parses").progress);
        let verify = br#"{"version":1,"command":"audit","action":"verify","progress":true}"#;
        let request = parse_request(verify).expect("parses");
        assert_eq!(request.command, Command::Audit(AuditCommand::Verify));
        assert!(request.progress);
        for (bad, code) in [
            (&b"not json"[..], "bad-request"),
            (br#"{"command":"cert-list"}"#, "bad-request"),
            (
                br#"{"version":2,"command":"cert-list"}"#,
                "unsupported-version",
            ),
            (br#"{"version":1,"command":"format-disk"}"#, "bad-request"),
            (br#"{"version":1,"command":"cert-show"}"#, "bad-request"),
        ] {
            assert_eq!(parse_request(bad).map_err(|e| e.code), Err(code.into()));
        }
    }
}
