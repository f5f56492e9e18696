//! The write-ahead ring: a file of fixed size beside the log (`audit.log.ring`), zero-filled
//! once, that each batch of records is written to and made durable in, instead of the log.
//!
//! Why: a record must be durable before its answer leaves, and on ext4 an `fdatasync` of
//! an append also commits the journal (the file grew), where one of bytes overwritten in
//! place does not. Here that is about 140 us of wall time per sync against 190, and a
//! quarter less CPU. The log itself is still appended on every batch (readers see each
//! record at once) and is made durable, and the ring started again from its end, when the
//! ring is full, at every checkpoint and at start: an anchor never names a record the log
//! alone does not hold.
//!
//! ```text
//! offset 0     {"log_bytes":B,"next_seq":S,"prev":"<hash of S-1>","check":"<sha256>"}\n
//! offset 4096  record S\n record S+1\n ...   (the lines appended to the log after B)
//! ```
//!
//! At start, before the log's last line is read: the log up to `B` is durable. If it lacks
//! what follows in the ring (a power cut took its unsynced tail), it is cut at `B` and the
//! ring's records, chained from `S` and `prev`, are appended and synced. Stale bytes of an
//! earlier round never chain from the header; a torn line ends the replay. A ring whose
//! header does not match the log (a log restored from a backup) is left out.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::record::{Record, GENESIS};

/// The ring's size: about 8,000 records between two syncs of the log.
pub(super) const RING_BYTES: u64 = 4 << 20;
/// Where records begin; the header has the first block to itself.
const HEADER_BYTES: u64 = 4096;

/// Where the log was durable when the ring began.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    /// The log's length then.
    log_bytes: u64,
    /// The first record's sequence number in the ring.
    next_seq: u64,
    /// The hash of the record before it (`GENESIS` for none).
    prev: String,
    /// SHA-256 over the three fields above: a header half overwritten is no header.
    check: String,
}

impl Header {
    fn new(log_bytes: u64, next_seq: u64, prev: &str) -> Header {
        Header {
            log_bytes,
            next_seq,
            prev: prev.to_owned(),
            check: Header::checksum(log_bytes, next_seq, prev),
        }
    }

    fn checksum(log_bytes: u64, next_seq: u64, prev: &str) -> String {
        let mut h = Sha256::new();
        h.update(log_bytes.to_be_bytes());
        h.update(next_seq.to_be_bytes());
        h.update(prev.as_bytes());
        hex::encode(h.finalize())
    }

    fn parse(block: &[u8]) -> Option<Header> {
        let line = block.split(|b| *b == b'\n').next()?;
        let h: Header = serde_json::from_slice(line).ok()?;
        (h.check == Header::checksum(h.log_bytes, h.next_seq, &h.prev)).then_some(h)
    }
}

/// The ring's path for the log at `log`.
pub(super) fn path_for(log: &Path) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_owned();
    name.push(".ring");
    log.with_file_name(name)
}

/// The ring, open for writing, and where the next batch goes.
pub(super) struct Ring {
    file: File,
    pos: u64,
    size: u64,
}

impl Ring {
    /// Open (or create, zero-filled) the ring at `path` and begin it at the log's end:
    /// `log` is synced first, so that everything before `log_bytes` is durable there.
    pub(super) fn begin(
        path: &Path,
        log: &File,
        log_bytes: u64,
        next_seq: u64,
        prev: &str,
    ) -> std::io::Result<Ring> {
        Ring::begin_sized(path, log, (log_bytes, next_seq, prev), RING_BYTES)
    }

    fn begin_sized(
        path: &Path,
        log: &File,
        (log_bytes, next_seq, prev): (u64, u64, &str),
        size: u64,
    ) -> std::io::Result<Ring> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if file.metadata()?.len() != size {
            zero_fill(&file, size)?;
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        let mut ring = Ring {
            file,
            pos: HEADER_BYTES,
            size,
        };
        log.sync_data()?;
        ring.restart(log_bytes, next_seq, prev)?;
        Ok(ring)
    }

    /// Whether `bytes` more fit before the end.
    pub(super) fn fits(&self, bytes: usize) -> bool {
        self.pos + bytes as u64 <= self.size
    }

    /// Write `lines` (whole records, as just appended to the log) and make them durable.
    /// On failure the position stays: the next batch, chained from the same record,
    /// overwrites what part of this one landed.
    pub(super) fn append(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(lines, self.pos)?;
        self.file.sync_data()?;
        self.pos += lines.len() as u64;
        Ok(())
    }

    /// Begin the ring again at the log's end (`log_bytes`, just made durable, the next
    /// record `next_seq` after the one hashed `prev`): its records are all in the log now.
    pub(super) fn restart(
        &mut self,
        log_bytes: u64,
        next_seq: u64,
        prev: &str,
    ) -> std::io::Result<()> {
        let mut block = serde_json::to_vec(&Header::new(log_bytes, next_seq, prev))
            .map_err(std::io::Error::other)?;
        block.push(b'\n');
        self.file.write_all_at(&block, 0)?;
        self.file.sync_data()?;
        self.pos = HEADER_BYTES;
        Ok(())
    }
}

fn zero_fill(file: &File, size: u64) -> std::io::Result<()> {
    file.set_len(0)?;
    let zeros = vec![0u8; 64 * 1024];
    let mut at = 0;
    while at < size {
        let n = zeros.len().min((size - at) as usize);
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_all()
}

/// What [`replay`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Replayed {
    /// No ring, or the log already holds everything in it.
    Nothing,
    /// The log was cut at the ring's base and this many records were restored from it.
    Restored(usize),
    /// The ring does not belong to this log; it was left out.
    Foreign(String),
}

/// Give the log at `log` back what a power cut took from its unsynced tail: see the module
/// documentation. Reads the ring (a few megabytes) once, at start.
pub(super) fn replay(ring: &Path, log: &mut File) -> Result<Replayed, String> {
    let io = |e: std::io::Error| format!("{}: {e}", ring.display());
    // Never more than a ring holds, whatever the file in its place has grown to.
    let mut bytes = Vec::new();
    match File::open(ring).and_then(|f| f.take(RING_BYTES).read_to_end(&mut bytes)) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Replayed::Nothing),
        Err(e) => return Err(io(e)),
    }
    let Some(header) = bytes.get(..HEADER_BYTES as usize).and_then(Header::parse) else {
        // No whole header: the log was synced before the last one was begun, and no
        // record was answered on the strength of the ring since.
        return Ok(Replayed::Nothing);
    };
    let log_bytes = log.metadata().map_err(|e| format!("audit log: {e}"))?.len();
    if let Err(why) = base_matches(log, log_bytes, &header) {
        return Ok(Replayed::Foreign(why));
    }
    let records = chained_lines(
        bytes.get(HEADER_BYTES as usize..).unwrap_or_default(),
        &header,
    );
    let lines = records.concat();
    let available = log_bytes - header.log_bytes;
    let mut after_base = vec![0; (lines.len() as u64).min(available) as usize];
    log.read_exact_at(&mut after_base, header.log_bytes)
        .map_err(|e| format!("audit log: {e}"))?;
    if after_base == lines {
        return Ok(Replayed::Nothing);
    }
    restore(log, header.log_bytes, &lines)
        .map_err(|e| format!("audit log: restoring from the ring: {e}"))?;
    Ok(Replayed::Restored(records.len()))
}

/// Cut `log` at `base` and append `lines` there, durably.
fn restore(log: &mut File, base: u64, lines: &[u8]) -> std::io::Result<()> {
    log.set_len(base)?;
    log.seek(SeekFrom::End(0))?;
    log.write_all(lines)?;
    log.sync_all()
}

/// Whether the log reaches the ring's base and its record there is the one the ring
/// chains from.
fn base_matches(log: &mut File, log_bytes: u64, header: &Header) -> Result<(), String> {
    if header.log_bytes > log_bytes {
        return Err(format!(
            "the ring begins at byte {} of the log, which has {log_bytes}",
            header.log_bytes
        ));
    }
    if header.log_bytes == 0 {
        return match (header.next_seq, header.prev.as_str()) {
            (0, GENESIS) => Ok(()),
            _ => Err("the ring follows records the log does not hold".into()),
        };
    }
    let last = super::backward::last_line_before(log, header.log_bytes)
        .map_err(|e| format!("audit log: {e}"))?;
    match serde_json::from_slice::<Record>(last.trim_ascii_end()) {
        Ok(r) if r.hash == header.prev && r.seq + 1 == header.next_seq => Ok(()),
        Ok(r) => Err(format!(
            "the ring follows record {} hashed {}, the log has record {} hashed {} there",
            header.next_seq.saturating_sub(1),
            header.prev,
            r.seq,
            r.hash
        )),
        Err(e) => Err(format!(
            "the log's record before the ring's base does not parse: {e}"
        )),
    }
}

/// The whole lines at the start of `body` (newline included) that are records chained
/// from `header`, each its own canonical form with its hash right; the first that is not
/// ends them.
fn chained_lines<'a>(body: &'a [u8], header: &Header) -> Vec<&'a [u8]> {
    let (mut seq, mut prev) = (header.next_seq, header.prev.clone());
    let mut lines = Vec::new();
    let mut rest = body;
    while let Some(end) = rest.iter().position(|b| *b == b'\n') {
        let (line, after) = rest.split_at(end + 1);
        let Ok(r) = serde_json::from_slice::<Record>(&line[..end]) else {
            break;
        };
        let whole = r.seq == seq
            && r.prev == prev
            && r.hash == hex::encode(r.digest())
            && r.to_line().as_bytes() == &line[..end];
        if !whole {
            break;
        }
        lines.push(line);
        (seq, prev) = (seq + 1, r.hash);
        rest = after;
    }
    lines
}

#[cfg(test)]
mod tests;
