//! Checking a log or an export: every line canonical, every hash right, the sequence
//! without gaps, each `prev` the hash before it, every checkpoint signed by the audit key;
//! and for the appliance's own log, that it still reaches the last checkpoint it wrote.
//! The first failure is named by the sequence number the record at that place should have.

use serde::Serialize;

use signet_pki::verify::PublicKey;
use signet_pki::SignatureScheme;

pub use super::anchor::Anchor;
use super::record::{hash_from_hex, Event, Record, GENESIS};

/// What is being checked.
#[derive(Clone, Debug)]
pub enum Scope {
    /// The appliance's log: it starts at record 0, and must reach the anchor if there is one.
    Log(Option<Anchor>),
    /// An export: any range, whose last record is a checkpoint covering it.
    Export,
}

/// A log that checks out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Records read (checkpoints included).
    pub records: u64,
    /// Checkpoints whose signature verified.
    pub checkpoints: u64,
    /// Sequence number of the first record.
    pub first: Option<u64>,
    /// Sequence number of the last record.
    pub last: Option<u64>,
    /// Sequence number of the last checkpoint.
    pub last_checkpoint: Option<u64>,
}

/// The first place where the log is broken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("audit log broken at record {seq} (line {line}): {reason}")]
pub struct Broken {
    /// The sequence number the record there should have.
    pub seq: u64,
    /// The line (from 1).
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// The name a checkpoint gives its signature scheme.
pub fn scheme_name(s: SignatureScheme) -> String {
    let h = |h: signet_pki::HashAlg| match h {
        signet_pki::HashAlg::Sha1 => "sha1",
        signet_pki::HashAlg::Sha256 => "sha256",
        signet_pki::HashAlg::Sha384 => "sha384",
        signet_pki::HashAlg::Sha512 => "sha512",
    };
    match s {
        SignatureScheme::RsaPkcs1v15(x) => format!("rsa-pkcs1v15-{}", h(x)),
        SignatureScheme::RsaPss(x) => format!("rsa-pss-{}", h(x)),
        SignatureScheme::Ecdsa(x) => format!("ecdsa-{}", h(x)),
    }
}

/// Check `bytes` (whole lines of the log or of an export) against the audit key `key`.
/// `progress` is told how many bytes have been checked, now and then.
pub fn verify(
    bytes: &[u8],
    key: &PublicKey,
    scope: &Scope,
    progress: &mut dyn FnMut(u64),
) -> Result<Verified, Broken> {
    let scheme = key.algorithm().default_scheme();
    let mut v = Verified::default();
    let mut expected: Option<u64> = match scope {
        Scope::Log(_) => Some(0),
        Scope::Export => None,
    };
    let mut prev: Option<String> = match scope {
        Scope::Log(_) => Some(GENESIS.to_owned()),
        Scope::Export => None,
    };
    let anchor = match scope {
        Scope::Log(a) => a.clone(),
        Scope::Export => None,
    };
    let mut anchor_seen = false;
    let mut offset = 0usize;
    let mut line_no = 0u64;
    while offset < bytes.len() {
        line_no += 1;
        let rest = &bytes[offset..];
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            return Err(Broken {
                seq: expected.unwrap_or(0),
                line: line_no,
                reason: "incomplete last line (torn or truncated)".into(),
            });
        };
        let line = &rest[..end];
        offset += end + 1;
        if line_no & 0x3ff == 0 {
            progress(offset as u64);
        }
        let record = check_record(line, line_no, expected, prev.as_deref(), key, scheme)?;
        if matches!(record.event, Event::Checkpoint { .. }) {
            v.checkpoints += 1;
            v.last_checkpoint = Some(record.seq);
        }
        if let Some(a) = &anchor {
            if a.seq == record.seq {
                if a.hash != record.hash {
                    return Err(Broken {
                        seq: record.seq,
                        line: line_no,
                        reason: "differs from the checkpoint the anchor recorded".into(),
                    });
                }
                anchor_seen = true;
            }
        }
        v.first.get_or_insert(record.seq);
        v.last = Some(record.seq);
        v.records += 1;
        expected = Some(record.seq + 1);
        prev = Some(record.hash);
    }
    progress(bytes.len() as u64);
    let next = expected.unwrap_or(0);
    let after_end = |reason: String| Broken {
        seq: next,
        line: line_no + 1,
        reason,
    };
    match scope {
        Scope::Log(Some(a)) if !anchor_seen => Err(after_end(format!(
            "missing: the log ends here, but checkpoint {} was written (truncated)",
            a.seq
        ))),
        Scope::Export if v.records == 0 => Err(after_end("the export is empty".into())),
        Scope::Export if v.last_checkpoint != v.last => Err(after_end(
            "the export does not end with a checkpoint covering it".into(),
        )),
        _ => Ok(v),
    }
}

/// The record on `line` (line `line_no`), checked on its own and against the chain before
/// it: canonical, its hash right, numbered `expected`, following `prev`, and a checkpoint
/// signed by `key`.
fn check_record(
    line: &[u8],
    line_no: u64,
    expected: Option<u64>,
    prev: Option<&str>,
    key: &PublicKey,
    scheme: SignatureScheme,
) -> Result<Record, Broken> {
    use base64::Engine;
    let here = expected.unwrap_or(0);
    let broken = |reason: String| Broken {
        seq: here,
        line: line_no,
        reason,
    };
    let record: Record =
        serde_json::from_slice(line).map_err(|e| broken(format!("not a record: {e}")))?;
    if record.to_line().as_bytes() != line {
        return Err(broken("edited: not the form the log writes".into()));
    }
    if hex::encode(record.digest()) != record.hash {
        return Err(broken("its contents do not match its hash".into()));
    }
    match expected {
        Some(want) if record.seq != want => {
            return Err(broken(format!(
                "missing or out of order (found record {} here)",
                record.seq
            )))
        }
        _ => {}
    }
    let here = record.seq;
    let broken = |reason: String| Broken {
        seq: here,
        line: line_no,
        reason,
    };
    if let Some(p) = prev {
        if record.prev != p {
            return Err(broken(
                "does not follow the record before it (prev hash differs)".into(),
            ));
        }
    }
    if let Event::Checkpoint {
        algorithm,
        signature,
    } = &record.event
    {
        if *algorithm != scheme_name(scheme) {
            return Err(broken(format!(
                "checkpoint signed with {algorithm}, the audit key signs with {}",
                scheme_name(scheme)
            )));
        }
        let prev_hash = hash_from_hex(&record.prev)
            .ok_or_else(|| broken("prev is not a SHA-256 hash".into()))?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(signature)
            .map_err(|_| broken("checkpoint signature is not base64".into()))?;
        let message = Record::signed_bytes(record.seq, record.time_ms, &prev_hash);
        key.verify_message(scheme, &message, &sig)
            .map_err(|_| broken("checkpoint signature does not verify".into()))?;
    }
    Ok(record)
}

/// The records `from..=to` and those up to the first checkpoint at or after `to`, which
/// covers them: a file that [`verify`] checks with [`Scope::Export`] and the audit key.
pub fn export(bytes: &[u8], from: u64, to: u64) -> Result<Vec<u8>, String> {
    if from > to {
        return Err(format!("--from {from} is after --to {to}"));
    }
    let mut out = Vec::new();
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        if line.last() != Some(&b'\n') {
            break;
        }
        let record: Record = serde_json::from_slice(&line[..line.len() - 1])
            .map_err(|e| format!("the log does not parse ({e}); run audit verify"))?;
        if record.seq < from {
            continue;
        }
        if out.is_empty() && record.seq != from {
            return Err(format!("record {from} is not in the log"));
        }
        out.extend_from_slice(line);
        if record.seq >= to && matches!(record.event, Event::Checkpoint { .. }) {
            return Ok(out);
        }
    }
    if out.is_empty() {
        Err(format!("record {from} is not in the log"))
    } else {
        Err(format!("no checkpoint after record {to} yet"))
    }
}
