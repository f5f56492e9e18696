//! Writing an incremental update (ISO 32000-2 7.5.6): new and replaced objects, then a
//! cross-reference section of the same kind as the file's, whose `/Prev` is the last one.

use std::collections::BTreeMap;

use super::document::Document;
use super::object::{Dict, Object, Ref};
use super::source::Source;
use super::xref::XrefKind;

/// What a document learns from a revision once it is appended.
#[derive(Clone, Debug)]
pub struct RevisionState {
    pub(crate) len: u64,
    pub(crate) startxref: u64,
    pub(crate) size: u32,
    pub(crate) objects: Vec<(u32, Object)>,
}

/// An incremental update, ready to append.
#[derive(Clone, Debug)]
pub struct Revision {
    /// The bytes to append.
    pub bytes: Vec<u8>,
    /// What the document becomes with them.
    pub state: RevisionState,
}

/// Collects the objects of one revision.
pub(crate) struct UpdateBuilder<'d, S> {
    doc: &'d Document<S>,
    next: u32,
    objects: BTreeMap<u32, (u16, Vec<u8>, Option<Object>)>,
}

impl<'d, S: Source> UpdateBuilder<'d, S> {
    pub(crate) fn new(doc: &'d Document<S>) -> Self {
        UpdateBuilder {
            doc,
            next: doc.size(),
            objects: BTreeMap::new(),
        }
    }

    /// A fresh object number.
    pub(crate) fn alloc(&mut self) -> Ref {
        let r = Ref::new(self.next, 0);
        self.next += 1;
        r
    }

    /// Write `obj` as object `r` (new, or replacing the old one).
    pub(crate) fn put(&mut self, r: Ref, obj: Object) {
        let body = obj.to_bytes();
        self.objects.insert(r.num, (r.gen, body, Some(obj)));
    }

    /// Write `body`, already PDF syntax, as object `r`; it cannot be read back.
    pub(crate) fn put_raw(&mut self, r: Ref, body: Vec<u8>) {
        self.objects.insert(r.num, (r.gen, body, None));
    }

    /// A stream object holding `data` as is.
    pub(crate) fn put_stream(&mut self, r: Ref, mut dict: Dict, data: &[u8]) {
        dict.set("Length", Object::Integer(data.len() as i64));
        let mut body = Object::Dict(dict).to_bytes();
        body.extend_from_slice(b"\nstream\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\nendstream");
        self.put_raw(r, body);
    }

    /// The revision, and where in its bytes each object's body starts.
    pub(crate) fn finish(mut self) -> (Revision, BTreeMap<u32, usize>) {
        let base = self.doc.len();
        let mut bytes = b"\n".to_vec();
        let mut offsets = BTreeMap::new();
        let mut xref: BTreeMap<u32, (u64, u16)> = BTreeMap::new();
        for (&num, (gen, body, _)) in &self.objects {
            xref.insert(num, (base + bytes.len() as u64, *gen));
            bytes.extend_from_slice(format!("{num} {gen} obj\n").as_bytes());
            offsets.insert(num, bytes.len());
            bytes.extend_from_slice(body);
            bytes.extend_from_slice(b"\nendobj\n");
        }
        let startxref = base + bytes.len() as u64;
        match self.doc.xref_kind() {
            XrefKind::Table => self.table(&mut bytes, &xref),
            XrefKind::Stream => self.stream(&mut bytes, &mut xref, startxref),
        }
        bytes.extend_from_slice(format!("startxref\n{startxref}\n%%EOF\n").as_bytes());
        let objects = std::mem::take(&mut self.objects)
            .into_iter()
            .filter_map(|(num, (_, _, obj))| obj.map(|o| (num, o)))
            .collect();
        let state = RevisionState {
            len: base + bytes.len() as u64,
            startxref,
            size: self.next,
            objects,
        };
        (Revision { bytes, state }, offsets)
    }

    /// The trailer entries every section repeats.
    fn trailer(&self) -> Dict {
        let mut trailer = Dict::new();
        trailer.set("Size", Object::Integer(i64::from(self.next)));
        for key in ["Root", "Info", "ID"] {
            if let Some(v) = self.doc.trailer().get(key) {
                trailer.set(key, v.clone());
            }
        }
        trailer.set("Prev", Object::Integer(self.doc.startxref() as i64));
        trailer
    }

    fn table(&self, bytes: &mut Vec<u8>, xref: &BTreeMap<u32, (u64, u16)>) {
        bytes.extend_from_slice(b"xref\n");
        for run in runs(xref.keys().copied()) {
            bytes.extend_from_slice(format!("{} {}\n", run.0, run.1).as_bytes());
            for num in run.0..run.0 + run.1 {
                if let Some((offset, gen)) = xref.get(&num) {
                    // Exactly 20 bytes per entry, the end of line being two characters.
                    bytes.extend_from_slice(format!("{offset:010} {gen:05} n\r\n").as_bytes());
                }
            }
        }
        bytes.extend_from_slice(b"trailer\n");
        Object::Dict(self.trailer()).write(bytes);
        bytes.push(b'\n');
    }

    fn stream(&mut self, bytes: &mut Vec<u8>, xref: &mut BTreeMap<u32, (u64, u16)>, at: u64) {
        let own = self.alloc();
        xref.insert(own.num, (at, 0));
        let width = (1..=8)
            .find(|w| xref.values().all(|(o, _)| *o < 1u64 << (8 * w)))
            .unwrap_or(8);
        let mut index = Vec::new();
        let mut data = Vec::new();
        for run in runs(xref.keys().copied()) {
            index.push(Object::Integer(i64::from(run.0)));
            index.push(Object::Integer(i64::from(run.1)));
            for num in run.0..run.0 + run.1 {
                if let Some((offset, gen)) = xref.get(&num) {
                    data.push(1);
                    data.extend_from_slice(&offset.to_be_bytes()[8 - width..]);
                    data.extend_from_slice(&gen.to_be_bytes());
                }
            }
        }
        let mut dict = self.trailer();
        dict.set("Type", Object::name("XRef"));
        dict.set("Index", Object::Array(index));
        dict.set(
            "W",
            Object::Array(vec![
                Object::Integer(1),
                Object::Integer(width as i64),
                Object::Integer(2),
            ]),
        );
        dict.set("Length", Object::Integer(data.len() as i64));
        bytes.extend_from_slice(format!("{} 0 obj\n", own.num).as_bytes());
        Object::Dict(dict).write(bytes);
        bytes.extend_from_slice(b"\nstream\n");
        bytes.extend_from_slice(&data);
        bytes.extend_from_slice(b"\nendstream\nendobj\n");
    }
}

/// Runs of consecutive numbers, as (first, count).
fn runs(nums: impl Iterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for n in nums {
        match out.last_mut() {
            Some((start, count)) if *start + *count == n => *count += 1,
            _ => out.push((n, 1)),
        }
    }
    out
}
