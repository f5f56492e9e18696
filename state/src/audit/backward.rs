//! Reading the log backward from its end: the last record at start, and `audit tail`, cost
//! the same however long the log.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::record::Record;

/// Cut an incomplete last line (a write a crash interrupted: no one was answered for it);
/// returns the last complete record and how many bytes were cut. It reads the file backward
/// from its end, so starting costs the same whatever the log's length.
pub(super) fn recover(file: &mut File) -> Result<(Option<Record>, u64), String> {
    recover_with_chunk(file, 64 * 1024)
}

fn recover_with_chunk(file: &mut File, chunk: u64) -> Result<(Option<Record>, u64), String> {
    let io = |e: std::io::Error| e.to_string();
    let len = file.metadata().map_err(io)?.len();
    let complete = rfind_newlines(file, len, 1, chunk)
        .map_err(io)?
        .map_or(0, |i| i + 1);
    let torn = len - complete;
    if torn > 0 {
        tracing::warn!(torn, "audit log: cutting an incomplete last line");
        file.set_len(complete)
            .and_then(|_| file.sync_all())
            .map_err(io)?;
    }
    if complete == 0 {
        return Ok((None, torn));
    }
    let line = read_last_lines(file, complete, 1, chunk).map_err(io)?;
    let last = serde_json::from_slice::<Record>(line.trim_ascii_end())
        .map_err(|e| format!("the last record does not parse ({e}); the log needs an operator"))?;
    Ok((Some(last), torn))
}

/// The last `n` whole lines of the log at `path` among its first `end` bytes (a torn line
/// at the end is left out), read backward: `audit tail` costs the same however long the log.
pub fn tail_bytes(path: &Path, end: u64, n: usize) -> std::io::Result<Vec<u8>> {
    const CHUNK: u64 = 64 * 1024;
    let mut file = File::open(path)?;
    let complete = rfind_newlines(&mut file, end, 1, CHUNK)?.map_or(0, |i| i + 1);
    read_last_lines(&mut file, complete, n, CHUNK)
}

/// The last whole line before `end` (`end` just after a newline), newline included.
pub(super) fn last_line_before(file: &mut File, end: u64) -> std::io::Result<Vec<u8>> {
    read_last_lines(file, end, 1, 64 * 1024)
}

/// The bytes of the last `n` lines before `end` (`end` just after a newline, or 0).
fn read_last_lines(file: &mut File, end: u64, n: usize, chunk: u64) -> std::io::Result<Vec<u8>> {
    if n == 0 || end == 0 {
        return Ok(Vec::new());
    }
    // The last line's own newline is at end - 1; the n-th newline before it ends the line
    // just before the first one wanted.
    let start = rfind_newlines(file, end - 1, n, chunk)?.map_or(0, |i| i + 1);
    let mut bytes = vec![0; (end - start) as usize];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// The offset of the `n`-th `\n` counted backward from `end` (exclusive), reading `chunk`
/// bytes at a time; `None` if there are fewer.
fn rfind_newlines(file: &mut File, end: u64, n: usize, chunk: u64) -> std::io::Result<Option<u64>> {
    let mut buf = vec![0; chunk as usize];
    let mut pos = end;
    let mut seen = 0;
    while pos > 0 {
        let from = pos.saturating_sub(chunk);
        let window = &mut buf[..(pos - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(window)?;
        for (i, _) in window
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, b)| **b == b'\n')
        {
            seen += 1;
            if seen == n {
                return Ok(Some(from + i as u64));
            }
        }
        pos = from;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::audit::record::{Event, GENESIS};

    fn line(seq: u64) -> String {
        let event = Event::Checkpoint {
            algorithm: "ecdsa-sha256".into(),
            signature: "x".repeat(50),
        };
        Record::seal(seq, 1_000 + seq, GENESIS.to_owned(), None, event).to_line()
    }

    fn file_with(text: &str) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn the_last_complete_record_is_found_from_the_end_and_a_torn_tail_cut() {
        let whole = format!("{}\n{}\n{}\n", line(0), line(1), line(2));
        // Chunks smaller than a line, of a line's size, and larger than the file.
        for chunk in [7, 64, 100_000] {
            let mut f = file_with(&whole);
            let (last, torn) = recover_with_chunk(&mut f, chunk).unwrap();
            assert_eq!((last.map(|r| r.seq), torn), (Some(2), 0), "chunk {chunk}");

            let mut f = file_with(&format!("{whole}{{\"seq\":3,\"ti"));
            let (last, torn) = recover_with_chunk(&mut f, chunk).unwrap();
            assert_eq!((last.map(|r| r.seq), torn), (Some(2), 12), "chunk {chunk}");
            assert_eq!(f.metadata().unwrap().len(), whole.len() as u64);
        }
    }

    #[test]
    fn the_last_lines_are_read_backward_whatever_the_chunk() {
        let lines: Vec<String> = (0..5).map(|i| format!("{}\n", line(i))).collect();
        let whole = lines.concat();
        for chunk in [3, 64, 100_000] {
            let mut f = file_with(&whole);
            for n in 0..=7 {
                let got = read_last_lines(&mut f, whole.len() as u64, n, chunk).unwrap();
                let want = lines[lines.len().saturating_sub(n)..].concat();
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    want,
                    "chunk {chunk}, n {n}"
                );
            }
            // Only the first `end` bytes count (the daemon's durable length).
            let end = (lines[0].len() + lines[1].len()) as u64;
            let got = read_last_lines(&mut f, end, 1, chunk).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), lines[1], "chunk {chunk}");
        }
    }

    #[test]
    fn a_tail_leaves_out_a_torn_last_line() {
        let whole = format!("{}\n{}\n", line(0), line(1));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), format!("{whole}{{\"seq\":2")).unwrap();
        let len = file.as_file().metadata().unwrap().len();
        let got = tail_bytes(file.path(), len, 5).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), whole);
    }

    #[test]
    fn an_empty_or_wholly_torn_log_has_no_last_record() {
        let mut f = file_with("");
        assert_eq!(recover_with_chunk(&mut f, 8).unwrap().1, 0);
        let mut f = file_with("{\"seq\":0");
        let (last, torn) = recover_with_chunk(&mut f, 4).unwrap();
        assert!(last.is_none());
        assert_eq!((torn, f.metadata().unwrap().len()), (8, 0));
    }

    #[test]
    fn a_last_line_that_is_not_a_record_needs_an_operator() {
        let mut f = file_with(&format!("{}\nnot json\n", line(0)));
        let e = recover_with_chunk(&mut f, 5).unwrap_err();
        assert!(e.contains("needs an operator"), "{e}");
    }
}
