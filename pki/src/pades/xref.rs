//! Cross-reference data (ISO 32000-2 7.5.4, 7.5.8): classic tables, cross-reference streams
//! and hybrid files, followed from the last `startxref` through every `/Prev`.

use std::collections::{HashMap, HashSet};

use super::filter;
use super::object::{Dict, Object};
use super::parse::{Parser, Syntax};
use super::source::Source;
use super::{PdfError, Result};

/// Where an object lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Not in use.
    Free,
    /// At a byte offset, with a generation.
    Offset {
        /// Byte offset of `N G obj`.
        offset: u64,
        /// Generation.
        gen: u16,
    },
    /// Inside an object stream.
    Compressed {
        /// The object stream's number.
        stream: u32,
        /// Index in the stream.
        index: u32,
    },
}

/// Which kind of cross-reference a revision uses; an update uses the kind of the file it extends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XrefKind {
    /// `xref` ... `trailer` (PDF 1.0 onwards; hybrid files too).
    Table,
    /// A `/Type /XRef` stream (PDF 1.5 onwards).
    Stream,
}

/// The merged cross-reference of a file: the newest entry for each object wins.
pub struct Xref {
    /// Object number to location.
    pub entries: HashMap<u32, Entry>,
    /// The trailer: the newest section's, completed by older ones.
    pub trailer: Dict,
    /// Kind of the newest section.
    pub kind: XrefKind,
    /// The offset the last `startxref` names: the next revision's `/Prev`.
    pub startxref: u64,
}

/// Most sections followed: a /Prev loop or a file of a million revisions is refused.
const MAX_SECTIONS: usize = 4096;
/// Largest window read for one section: a classic table of about 1.6 million entries.
const MAX_WINDOW: usize = 32 << 20;
/// Most cross-reference entries read from one file, over all its sections.
const MAX_ENTRIES: u64 = 2 << 20;

/// Entries a file of `len` bytes may declare: an entry describes an object, and an object
/// takes at least two bytes of the file (even compressed in an object stream), so more
/// entries than half the file's length are an attack, never a document.
fn entry_budget(len: u64) -> u64 {
    (len / 2).clamp(4096, MAX_ENTRIES)
}
/// Keys of a section's trailer or stream dictionary that do not carry over.
const SECTION_KEYS: [&str; 10] = [
    "Prev",
    "XRefStm",
    "Type",
    "W",
    "Index",
    "Length",
    "Filter",
    "DecodeParms",
    "Size",
    "F",
];

/// Read the cross-reference of `src`.
pub fn load(src: &(impl Source + ?Sized)) -> Result<Xref> {
    let head = src.read_vec(0, 1024)?;
    if find(&head, b"%PDF-").is_none() {
        return Err(PdfError::NotPdf);
    }
    let startxref = last_startxref(src)?;
    let mut xref = Xref {
        entries: HashMap::new(),
        trailer: Dict::new(),
        kind: XrefKind::Table,
        startxref,
    };
    let mut visited = HashSet::new();
    let mut budget = entry_budget(src.len());
    let mut next = Some(startxref);
    let mut first = true;
    while let Some(offset) = next {
        if !visited.insert(offset) || visited.len() > MAX_SECTIONS {
            return Err(PdfError::BrokenXref("the /Prev chain loops".into()));
        }
        if offset >= src.len() {
            return Err(PdfError::BrokenXref(format!(
                "a cross-reference offset ({offset}) lies past the end of the file"
            )));
        }
        let section = read_section(src, offset, &mut budget, false)?;
        if first {
            xref.kind = section.kind;
            xref.trailer.set("Size", Object::Integer(section.size));
            first = false;
        }
        for (num, entry) in section.entries {
            xref.entries.entry(num).or_insert(entry);
        }
        for (key, value) in &section.trailer.0 {
            let carried = !SECTION_KEYS.iter().any(|k| k.as_bytes() == key.as_slice());
            if carried && !xref.trailer.0.iter().any(|(k, _)| k == key) {
                xref.trailer.0.push((key.clone(), value.clone()));
            }
        }
        next = section.prev;
    }
    Ok(xref)
}

/// The offset after the last `startxref` near the end of the file.
fn last_startxref(src: &(impl Source + ?Sized)) -> Result<u64> {
    let tail_len = 2048.min(src.len());
    let tail = src.read_vec(src.len() - tail_len, tail_len as usize)?;
    let at = rfind(&tail, b"startxref").ok_or(PdfError::Truncated)?;
    if rfind(&tail[at..], b"%%EOF").is_none() {
        return Err(PdfError::Truncated);
    }
    let mut p = Parser::new(&tail[at + b"startxref".len()..]);
    p.unsigned()
        .map_err(|_| PdfError::BrokenXref("startxref is not followed by an offset".into()))
}

struct Section {
    entries: Vec<(u32, Entry)>,
    trailer: Dict,
    kind: XrefKind,
    size: i64,
    prev: Option<u64>,
}

/// The section at `offset`, its entries taken from `budget`; a `companion` is the stream
/// of a hybrid file's table, and must be a stream.
// Long: one pass over hostile bytes, each bound checked where the value is read; split,
// the budget and the offsets would travel through every piece.
fn read_section(
    src: &(impl Source + ?Sized),
    offset: u64,
    budget: &mut u64,
    companion: bool,
) -> Result<Section> {
    let broken = |what: &str| PdfError::BrokenXref(format!("at offset {offset}: {what}"));
    let mut window = 64 << 10;
    loop {
        let bytes = src.read_vec(offset, window)?;
        let at_end =
            (bytes.len() as u64) < window as u64 || offset + bytes.len() as u64 >= src.len();
        let is_table = Parser::new(&bytes).eat_keyword(b"xref");
        if is_table && companion {
            return Err(broken("/XRefStm does not name a cross-reference stream"));
        }
        let attempt = if is_table {
            table(&bytes, *budget).map(|(entries, trailer)| (entries, trailer, XrefKind::Table))
        } else {
            stream_header(&bytes).map(|(dict, _)| (Vec::new(), dict, XrefKind::Stream))
        };
        match attempt {
            Ok((mut entries, trailer, kind)) => {
                if kind == XrefKind::Stream {
                    entries = stream_entries(src, offset, &bytes, *budget)?;
                }
                *budget = budget.saturating_sub(entries.len() as u64);
                let size = trailer.integer("Size").ok_or_else(|| broken("no /Size"))?;
                let prev = match trailer.get("Prev") {
                    None => None,
                    Some(Object::Integer(p)) if *p >= 0 => Some(*p as u64),
                    Some(_) => return Err(broken("/Prev is not an offset")),
                };
                let mut section = Section {
                    entries,
                    trailer,
                    kind,
                    size,
                    prev,
                };
                // A hybrid file: the table's companion stream holds the compressed objects.
                let stm = match section.trailer.get("XRefStm") {
                    Some(Object::Integer(stm)) if !companion && kind == XrefKind::Table => {
                        Some(*stm)
                    }
                    _ => None,
                };
                if let Some(stm) = stm {
                    let stm = u64::try_from(stm).map_err(|_| broken("bad /XRefStm"))?;
                    if stm >= src.len() {
                        return Err(broken("/XRefStm lies past the end of the file"));
                    }
                    let extra = read_section(src, stm, budget, true)?;
                    let mut known: HashMap<u32, Entry> =
                        std::mem::take(&mut section.entries).into_iter().collect();
                    for (num, entry) in extra.entries {
                        let slot = known.entry(num).or_insert(Entry::Free);
                        if *slot == Entry::Free {
                            *slot = entry;
                        }
                    }
                    section.entries = known.into_iter().collect();
                }
                return Ok(section);
            }
            Err(Syntax::Eof) if !at_end && window < MAX_WINDOW => {
                window = (window * 4).min(MAX_WINDOW)
            }
            Err(Syntax::Eof) if !at_end => {
                return Err(PdfError::too_large(
                    "a cross-reference section larger than a request may read",
                ))
            }
            Err(Syntax::Eof) => return Err(broken("the section runs off the end of the file")),
            Err(Syntax::Bad(_, what)) => {
                return Err(broken(&format!("not a cross-reference section ({what})")))
            }
            Err(Syntax::Limit(what)) => return Err(PdfError::too_large(what)),
        }
    }
}

/// A classic table and its trailer dictionary, of at most `budget` entries.
fn table(bytes: &[u8], budget: u64) -> core::result::Result<(Vec<(u32, Entry)>, Dict), Syntax> {
    let mut p = Parser::new(bytes);
    p.expect_keyword(b"xref", "expected 'xref'")?;
    let mut entries = Vec::new();
    loop {
        if p.eat_keyword(b"trailer") {
            break;
        }
        let start = p.unsigned()?;
        let count = p.unsigned()?;
        if count > budget.saturating_sub(entries.len() as u64) {
            return Err(Syntax::Limit(
                "more cross-reference entries than the file could hold",
            ));
        }
        for i in 0..count {
            let offset = p.unsigned()?;
            let gen = p.unsigned()?;
            let entry = if p.eat_keyword(b"n") {
                Entry::Offset {
                    offset,
                    gen: u16::try_from(gen).map_err(|_| Syntax::Bad(p.pos(), "bad generation"))?,
                }
            } else if p.eat_keyword(b"f") {
                Entry::Free
            } else {
                p.skip_space();
                return Err(if p.pos() >= bytes.len() {
                    Syntax::Eof
                } else {
                    Syntax::Bad(p.pos(), "xref entry is neither 'n' nor 'f'")
                });
            };
            let num = u32::try_from(start + i)
                .map_err(|_| Syntax::Bad(p.pos(), "object number too large"))?;
            entries.push((num, entry));
        }
    }
    match p.object()? {
        Object::Dict(trailer) => Ok((entries, trailer)),
        _ => Err(Syntax::Bad(p.pos(), "trailer is not a dictionary")),
    }
}

/// The dictionary of the stream at the start of `bytes`, and the offset of its data.
pub fn stream_header(bytes: &[u8]) -> core::result::Result<(Dict, usize), Syntax> {
    let mut p = Parser::new(bytes);
    p.object_header()?;
    let Object::Dict(dict) = p.object()? else {
        return Err(Syntax::Bad(p.pos(), "expected a stream dictionary"));
    };
    if !p.stream_start()? {
        return Err(Syntax::Bad(p.pos(), "expected a stream"));
    }
    Ok((dict, p.pos()))
}

/// The entries of a cross-reference stream whose object starts at `offset`, at most `budget`.
// Long: the /W, /Index and /Size checks and the decode loop share every bound; they are
// read in order, as ISO 32000 7.5.8 lays them out.
fn stream_entries(
    src: &(impl Source + ?Sized),
    offset: u64,
    window: &[u8],
    budget: u64,
) -> Result<Vec<(u32, Entry)>> {
    let broken = |what: &str| PdfError::BrokenXref(format!("xref stream at {offset}: {what}"));
    let (dict, data_at) = stream_header(window).map_err(|_| broken("unreadable header"))?;
    if dict.name("Type") != Some(b"XRef") {
        return Err(broken("not a /Type /XRef stream"));
    }
    let length = dict
        .integer("Length")
        .and_then(|l| u64::try_from(l).ok())
        .ok_or_else(|| broken("/Length must be a direct integer"))?;
    let widths: Vec<usize> = match dict.get("W") {
        Some(Object::Array(w)) if w.len() == 3 => w
            .iter()
            .map(|x| match x {
                Object::Integer(i) if (0..=8).contains(i) => Ok(*i as usize),
                _ => Err(broken("bad /W")),
            })
            .collect::<Result<_>>()?,
        _ => return Err(broken("bad /W")),
    };
    let size = dict.integer("Size").ok_or_else(|| broken("no /Size"))?;
    let index: Vec<i64> = match dict.get("Index") {
        None => vec![0, size],
        Some(Object::Array(items)) if items.len() % 2 == 0 => items
            .iter()
            .map(|x| match x {
                Object::Integer(i) if (0..=i64::from(u32::MAX)).contains(i) => Ok(*i),
                _ => Err(broken("bad /Index")),
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(broken("bad /Index")),
    };
    let row = widths.iter().sum::<usize>();
    if row == 0 {
        return Err(broken("/W is all zeros"));
    }
    // Everything is known before a byte is decoded: how many entries, and so how many bytes.
    let count = index
        .chunks(2)
        .try_fold(0u64, |sum, pair| sum.checked_add(pair[1].max(0) as u64))
        .ok_or_else(|| broken("bad /Index"))?;
    if count > budget {
        return Err(PdfError::too_large(
            "more cross-reference entries than the file could hold",
        ));
    }
    let raw = filter::SourceReader::new(src, offset + data_at as u64, length)
        .ok_or_else(|| broken("the stream runs off the end of the file"))?;
    // The rows /Index needs, each with a predictor byte, and a little slack: no more.
    let cap = count * (row as u64 + 1) + 4096;
    let data = filter::decode(&dict, raw, cap)?;
    let mut rows = data.chunks_exact(row);
    let mut entries = Vec::with_capacity(count as usize);
    for pair in index.chunks(2) {
        for num in pair[0]..pair[0].saturating_add(pair[1]) {
            let Some(r) = rows.next() else {
                return Err(broken("fewer entries than /Index says"));
            };
            let field = |i: usize, default: u64| -> u64 {
                let start: usize = widths[..i].iter().sum();
                if widths[i] == 0 {
                    return default;
                }
                r[start..start + widths[i]]
                    .iter()
                    .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
            };
            let num = u32::try_from(num).map_err(|_| broken("object number too large"))?;
            let entry = match field(0, 1) {
                0 => Entry::Free,
                1 => Entry::Offset {
                    offset: field(1, 0),
                    gen: u16::try_from(field(2, 0)).map_err(|_| broken("bad generation"))?,
                },
                2 => Entry::Compressed {
                    stream: u32::try_from(field(1, 0)).map_err(|_| broken("bad stream number"))?,
                    index: u32::try_from(field(2, 0)).map_err(|_| broken("bad index"))?,
                },
                // Unknown types are to be ignored, as references to the null object.
                _ => Entry::Free,
            };
            entries.push((num, entry));
        }
    }
    Ok(entries)
}

/// Offset of the first `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Offset of the last `needle` in `hay`.
pub fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}
