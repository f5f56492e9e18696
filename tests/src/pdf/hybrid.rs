//! A hybrid-reference file (PDF 1.5, 7.5.8.4): no producer installed here writes one (qpdf,
//! Ghostscript and pyHanko read them only), so this turns qpdf's object-stream output into
//! one the way older Word versions did: the xref stream stays where it is, and a classic
//! `xref` table listing the uncompressed objects is appended with a trailer whose
//! `/XRefStm` points at the stream. Readers that know xref streams find the compressed
//! objects through it; `qpdf --check` proves the result well-formed.

use std::path::Path;
use std::process::Command;

use crate::run_ok;

/// The hybrid form of `objstm` (a qpdf `--object-streams=generate` file, one revision).
pub fn from_object_streams(objstm: &Path) -> Vec<u8> {
    let pdf = std::fs::read(objstm).expect("read");
    let xref_at = startxref(&pdf);
    let stream_end = find_from(&pdf, b"endobj", xref_at).expect("xref stream endobj") + 6;

    let trailer = run_ok(
        Command::new("qpdf")
            .arg("--show-object=trailer")
            .arg(objstm),
    );
    let size: usize = after(&trailer, "/Size ")
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("/Size");
    let root = reference(&trailer, "/Root ").expect("/Root");
    let info = reference(&trailer, "/Info ");
    let id = after(&trailer, "/ID ")
        .and_then(|s| s.split_once(']').map(|(a, _)| format!("{a}]")))
        .expect("/ID");

    // `N/G: uncompressed; offset = O` for each object outside an object stream.
    let mut offsets = vec![None; size];
    for line in run_ok(Command::new("qpdf").arg("--show-xref").arg(objstm)).lines() {
        let Some((obj, rest)) = line.split_once(": uncompressed; offset = ") else {
            continue;
        };
        let (n, g) = obj.split_once('/').expect("N/G");
        let n: usize = n.parse().expect("object number");
        let g: u32 = g.parse().expect("generation");
        if n < size {
            offsets[n] = Some((rest.trim().parse::<usize>().expect("offset"), g));
        }
    }

    let mut out = pdf[..stream_end].to_vec();
    out.push(b'\n');
    let table_at = out.len();
    out.extend_from_slice(format!("xref\n0 {size}\n").as_bytes());
    for (n, entry) in offsets.iter().enumerate() {
        // Objects in object streams are free here; the /XRefStm stream has them.
        let line = match entry {
            Some((offset, g)) if n > 0 => format!("{offset:010} {g:05} n \n"),
            _ if n == 0 => "0000000000 65535 f \n".to_owned(),
            _ => "0000000000 00000 f \n".to_owned(),
        };
        out.extend_from_slice(line.as_bytes());
    }
    let info = info.map(|i| format!(" /Info {i}")).unwrap_or_default();
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {size} /Root {root}{info} /ID {id} /XRefStm {xref_at} >>\nstartxref\n{table_at}\n%%EOF\n"
        )
        .as_bytes(),
    );
    out
}

fn startxref(pdf: &[u8]) -> usize {
    let at = pdf
        .windows(9)
        .rposition(|w| w == b"startxref")
        .expect("startxref");
    String::from_utf8_lossy(&pdf[at + 9..])
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("startxref offset")
}

fn find_from(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split_once(key).map(|(_, rest)| rest)
}

/// `N G R` after `key`.
fn reference(text: &str, key: &str) -> Option<String> {
    let words: Vec<&str> = after(text, key)?.split_whitespace().take(3).collect();
    (words.len() == 3 && words[2] == "R").then(|| words.join(" "))
}
