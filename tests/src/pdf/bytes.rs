//! Byte-level facts about a PDF that need no parser: the signed byte ranges, whether one file
//! is a prefix of another, which kind of cross-reference the newest revision uses, whether
//! the XMP declares PDF/A, and a one-byte tamper inside what every signature covers.

/// The kind of cross-reference section a revision ends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XrefKind {
    /// A classic `xref` table and `trailer`.
    Table,
    /// An `xref` table whose trailer points at an xref stream too (`/XRefStm`).
    Hybrid,
    /// A cross-reference stream (`/Type /XRef`), PDF 1.5+.
    Stream,
}

/// Whether `input` is a byte-for-byte prefix of `output` (an incremental update).
pub fn is_prefix(input: &[u8], output: &[u8]) -> bool {
    output.len() >= input.len() && output[..input.len()] == *input
}

/// Every `/ByteRange [a b c d]` in the file, in file order.
pub fn byte_ranges(pdf: &[u8]) -> Vec<[u64; 4]> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = find(&pdf[from..], b"/ByteRange") {
        let start = from + at + b"/ByteRange".len();
        from = start;
        let rest = &pdf[start..pdf.len().min(start + 200)];
        let text = String::from_utf8_lossy(rest);
        let Some(inner) = text
            .trim_start()
            .strip_prefix('[')
            .and_then(|t| t.split(']').next())
        else {
            continue;
        };
        let nums: Vec<u64> = inner
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        if let [a, b, c, d] = nums[..] {
            out.push([a, b, c, d]);
        }
    }
    out
}

/// A copy of a signed file with one byte changed inside the first byte range of every
/// signature (so every signature and timestamp is broken), far from any /Contents, and
/// where parsers do not look: a byte of the binary comment on the second line, or else the
/// minor digit of the `%PDF-1.x` header. Returns the bytes and the offset changed.
pub fn tamper_signed_byte(signed: &[u8]) -> (Vec<u8>, usize) {
    let ranges = byte_ranges(signed);
    assert!(!ranges.is_empty(), "no /ByteRange: not a signed file");
    let line2 = signed.iter().position(|b| *b == b'\n').map(|n| n + 1);
    let offset = match line2 {
        Some(n)
            if signed.get(n) == Some(&b'%') && signed.get(n + 2).is_some_and(|b| *b >= 0x80) =>
        {
            n + 2
        }
        _ => {
            assert!(signed.starts_with(b"%PDF-1."), "no %PDF-1.x header");
            7
        }
    };
    for [a, b, _, _] in &ranges {
        assert!(
            (*a as usize) <= offset && offset < (*a + *b) as usize,
            "byte {offset} is outside the first range of {ranges:?}"
        );
    }
    let mut out = signed.to_vec();
    out[offset] = if offset == 7 {
        // 1.7 -> 1.6, 1.4 -> 1.5: still a version every reader takes.
        if out[7] == b'7' {
            b'6'
        } else {
            b'5'
        }
    } else {
        out[offset] ^ 0x01
    };
    (out, offset)
}

/// The kind of cross-reference the newest revision uses (from the last `startxref`), or
/// None when the offset does not lead to one.
pub fn last_xref_kind(pdf: &[u8]) -> Option<XrefKind> {
    let at = rfind(pdf, b"startxref")?;
    let text = String::from_utf8_lossy(&pdf[at + 9..pdf.len().min(at + 40)]);
    let offset: usize = text.split_whitespace().next()?.parse().ok()?;
    let section = pdf.get(offset..)?;
    if section.starts_with(b"xref") {
        let trailer_end = find(section, b"startxref").unwrap_or(section.len());
        let trailer = &section[find(&section[..trailer_end], b"trailer")?..trailer_end];
        return Some(if find(trailer, b"/XRefStm").is_some() {
            XrefKind::Hybrid
        } else {
            XrefKind::Table
        });
    }
    // `N G obj << ... /Type /XRef ... >> stream`
    let head = &section[..section.len().min(1024)];
    let stream_at = find(head, b"stream")?;
    let dict = String::from_utf8_lossy(&head[..stream_at]);
    let first = dict.split_whitespace().take(3).collect::<Vec<_>>();
    let is_obj = first.len() == 3
        && first[0].parse::<u32>().is_ok()
        && first[1].parse::<u32>().is_ok()
        && first[2].starts_with("obj");
    (is_obj && dict.replace(char::is_whitespace, "").contains("/Type/XRef"))
        .then_some(XrefKind::Stream)
}

/// The PDF/A part and conformance an uncompressed XMP packet declares (`pdfaid:part`,
/// `pdfaid:conformance`, as attributes or elements).
pub fn pdfa_declared(pdf: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(pdf);
    Some((
        xmp_value(&text, "pdfaid:part")?,
        xmp_value(&text, "pdfaid:conformance")?,
    ))
}

fn xmp_value(text: &str, name: &str) -> Option<String> {
    for (at, _) in text.match_indices(name) {
        let rest = &text[at + name.len()..];
        let value = if let Some(v) = rest.strip_prefix('=') {
            let quote = v.chars().next()?;
            v[1..].split(quote).next()
        } else if let Some(v) = rest.strip_prefix('>') {
            v.split('<').next()
        } else {
            None
        };
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            return Some(v.trim().to_owned());
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_ranges() {
        assert!(is_prefix(b"abc", b"abcd"));
        assert!(is_prefix(b"abc", b"abc"));
        assert!(!is_prefix(b"abd", b"abcd"));
        assert!(!is_prefix(b"abcd", b"abc"));
        let pdf = b"%PDF-1.7\n<</ByteRange [0 10 20 5] /Contents <00>>> /ByteRange[ 0 3 4 5 ]";
        assert_eq!(byte_ranges(pdf), vec![[0, 10, 20, 5], [0, 3, 4, 5]]);
    }

    #[test]
    fn xmp_values_as_attributes_or_elements() {
        let a = b"<rdf:Description pdfaid:part='2' pdfaid:conformance='B'/>";
        assert_eq!(pdfa_declared(a), Some(("2".into(), "B".into())));
        let e = b"<pdfaid:part>3</pdfaid:part><pdfaid:conformance>A</pdfaid:conformance>";
        assert_eq!(pdfa_declared(e), Some(("3".into(), "A".into())));
        assert_eq!(pdfa_declared(b"%PDF-1.7 nothing"), None);
    }

    #[test]
    fn xref_kinds() {
        let table = b"%PDF-1.4\nxref\n0 1\n0000000000 65535 f \ntrailer\n<</Size 1>>\nstartxref\n9\n%%EOF\n";
        assert_eq!(last_xref_kind(table), Some(XrefKind::Table));
        let hybrid = b"%PDF-1.4\nxref\n0 1\n0000000000 65535 f \ntrailer\n<</Size 1/XRefStm 3>>\nstartxref\n9\n%%EOF\n";
        assert_eq!(last_xref_kind(hybrid), Some(XrefKind::Hybrid));
        let stream = b"%PDF-1.5\n7 0 obj\n<</Type /XRef /Size 8>>\nstream\n\nendstream\nendobj\nstartxref\n9\n%%EOF\n";
        assert_eq!(last_xref_kind(stream), Some(XrefKind::Stream));
        assert_eq!(last_xref_kind(b"%PDF-1.5\nstartxref\n999\n%%EOF"), None);
    }
}
