//! One audit record: what happened, chained to the record before it.
//!
//! A record is one line of JSON in a canonical form (the one `serde_json` writes for
//! [`Record`]): a line that parses but is not byte for byte its own re-serialisation has
//! been edited. `hash` is the SHA-256 of the record without it (see [`Record::digest`]);
//! `prev` is the previous record's `hash`, all zeros for the first.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a checkpoint signature covers: this prefix, then the checkpoint's sequence number
/// and time (big-endian u64 each), then the 32-byte hash of the record before it.
pub const CHECKPOINT_DOMAIN: &[u8] = b"signet audit checkpoint v1\0";

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Position in the chain, from 0, without gaps.
    pub seq: u64,
    /// When it was written, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The previous record's `hash` (hex).
    pub prev: String,
    /// The box that wrote it (`[cluster] node`, or its hostname); absent in records written
    /// before boxes named themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// What happened.
    pub event: Event,
    /// SHA-256 of this record without this field (hex).
    pub hash: String,
}

/// What a record says happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Event {
    /// The daemon started (and, after a crash, cut a torn last line of this many bytes).
    Start {
        /// The version of signetd.
        version: String,
        /// Bytes of an incomplete last line removed at start (a write cut by a crash;
        /// nobody was answered for it).
        torn_bytes: u64,
    },
    /// An API request and its answer.
    Request {
        /// `api` (mutual TLS) or `public` (plain HTTP).
        listener: String,
        /// The client certificate's subject, on the API listener.
        client: Option<String>,
        /// SHA-256 of the client certificate (hex).
        client_sha256: Option<String>,
        /// `sign`, `sign-batch`, `cms`, `pdf`, `tsa`, `ocsp`, `crl`, `keys`, ...
        operation: String,
        /// The signing key named in the route, if any.
        key: Option<String>,
        /// SHA-256 of the request body (hex), when there was one.
        input_sha256: Option<String>,
        /// The HTTP status answered.
        status: u16,
        /// Time from the request to the answer, microseconds.
        latency_us: u64,
        /// Why the client was refused before any route ran (a revoked certificate, say).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refused: Option<String>,
        /// How many items (hashes) the request carried, where its route counts them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        items: Option<u64>,
        /// The peer's address, where the caller has no certificate to name it (the
        /// anonymous time-stamping route).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
    },
    /// A TLS handshake refused (no or bad client certificate, timeout, ...).
    HandshakeRefused {
        /// The peer's address.
        peer: String,
        /// Why.
        reason: String,
    },
    /// An admin command on the admin socket.
    Admin {
        /// The peer's uid (SO_PEERCRED).
        uid: u32,
        /// Its user name, if it has one.
        user: Option<String>,
        /// The command as it was sent (JSON).
        command: serde_json::Value,
        /// Whether it succeeded.
        ok: bool,
        /// The error code when it did not.
        error: Option<String>,
        /// The role it ran under, `admin` or `officer`: with `uid` and `user`, the second
        /// identity on record.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
        /// What granted that role: `root`, `daemon user`, `group NAME`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role_via: Option<String>,
        /// What about the command needs the officer role, when something does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duty: Option<String>,
    },
    /// An admin connection refused by the peer credential check.
    AdminRefused {
        /// The peer's uid.
        uid: Option<u32>,
        /// Its user name, if it has one.
        user: Option<String>,
        /// Why.
        reason: String,
    },
    /// The HSM went away or came back. While it is away every signing request is refused
    /// (and recorded as such with its status).
    Hsm {
        /// Whether requests can be signed from now on.
        available: bool,
    },
    /// The log takes writes again after they failed (a full disk, say). Nobody was
    /// answered on the strength of a record that was not written: those requests were
    /// refused, and their records are not in the chain.
    WritesResumed {
        /// The first error.
        error: String,
        /// Records that could not be written meanwhile.
        refused: u64,
        /// How long writes failed, milliseconds.
        failed_ms: u64,
    },
    /// Public-listener requests answered (and TLS handshakes refused) while the disk was
    /// short of space, counted instead of recorded one by one: how many, of what, with
    /// which status.
    PublicSummary {
        /// The first counted request, milliseconds since the Unix epoch.
        from_ms: u64,
        /// The last counted request.
        to_ms: u64,
        /// Requests counted.
        requests: u64,
        /// Requests per operation and HTTP status, e.g. `"ocsp 200": 1200`.
        counts: std::collections::BTreeMap<String, u64>,
    },
    /// A signature by the audit key over the chain up to the previous record.
    Checkpoint {
        /// The signature scheme, e.g. `ecdsa-sha256`.
        algorithm: String,
        /// The signature (base64; DER for ECDSA) over [`Record::signed_bytes`].
        signature: String,
    },
}

impl Event {
    /// A short name of the kind of event.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Start { .. } => "start",
            Event::Request { .. } => "request",
            Event::HandshakeRefused { .. } => "handshake-refused",
            Event::Admin { .. } => "admin",
            Event::AdminRefused { .. } => "admin-refused",
            Event::Hsm { .. } => "hsm",
            Event::WritesResumed { .. } => "writes-resumed",
            Event::PublicSummary { .. } => "public-summary",
            Event::Checkpoint { .. } => "checkpoint",
        }
    }
}

impl Record {
    /// A sealed record: `hash` computed over the rest.
    pub fn seal(
        seq: u64,
        time_ms: u64,
        prev: String,
        node: Option<String>,
        event: Event,
    ) -> Record {
        let mut r = Record {
            seq,
            time_ms,
            prev,
            node,
            event,
            hash: String::new(),
        };
        r.hash = hex::encode(r.digest());
        r
    }

    /// SHA-256 over the canonical JSON of `[seq, time_ms, prev, event]`, or of
    /// `[seq, time_ms, prev, node, event]` when the record names its box.
    pub fn digest(&self) -> [u8; 32] {
        let body = match &self.node {
            None => serde_json::to_vec(&(&self.seq, &self.time_ms, &self.prev, &self.event)),
            Some(node) => {
                serde_json::to_vec(&(&self.seq, &self.time_ms, &self.prev, node, &self.event))
            }
        }
        .unwrap_or_default();
        Sha256::digest(body).into()
    }

    /// The line as it is stored (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// What a checkpoint at `seq`, `time_ms` after the record hashed `prev` signs.
    pub fn signed_bytes(seq: u64, time_ms: u64, prev: &[u8; 32]) -> Vec<u8> {
        let mut m = CHECKPOINT_DOMAIN.to_vec();
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(&time_ms.to_be_bytes());
        m.extend_from_slice(prev);
        m
    }
}

/// 32 bytes from 64 hex digits.
pub fn hash_from_hex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_record_round_trips_canonically_and_its_hash_covers_every_field() {
        let r = Record::seal(
            7,
            1_700_000_000_000,
            GENESIS.into(),
            Some("box-a".into()),
            Event::Admin {
                uid: 0,
                user: Some("root".into()),
                command: serde_json::json!({"command": "cert-list"}),
                ok: true,
                error: None,
                role: None,
                role_via: None,
                duty: None,
            },
        );
        let line = r.to_line();
        let back: Record = serde_json::from_str(&line).expect("parses");
        assert_eq!(back, r);
        assert_eq!(back.to_line(), line);
        assert_eq!(hex::encode(back.digest()), r.hash);
        let mut other = r.clone();
        other.time_ms += 1;
        assert_ne!(hex::encode(other.digest()), r.hash);
        let mut other = r.clone();
        other.prev = hex::encode([1u8; 32]);
        assert_ne!(hex::encode(other.digest()), r.hash);
        // The box's name is covered too: a record cannot be moved to another box's name.
        let mut other = r.clone();
        other.node = Some("box-b".into());
        assert_ne!(hex::encode(other.digest()), r.hash);
        assert!(line.contains(r#""node":"box-a""#), "{line}");
    }

    #[test]
    fn a_record_without_a_node_is_written_and_hashed_as_before_boxes_had_names() {
        let start = Event::Start {
            version: "1".into(),
            torn_bytes: 0,
        };
        let r = Record::seal(0, 1, GENESIS.into(), None, start);
        assert!(!r.to_line().contains("node"));
        let old = serde_json::to_vec(&(&r.seq, &r.time_ms, &r.prev, &r.event)).unwrap();
        assert_eq!(r.hash, hex::encode(Sha256::digest(old)));
    }
}
