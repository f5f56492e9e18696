//! A document opened for signing: its cross-reference, its objects on demand, and the
//! objects of revisions this signer has appended since.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use super::filter;
use super::object::{Dict, Object, Ref};
use super::parse::{Parser, Syntax};
use super::source::Source;
use super::update::RevisionState;
use super::xref::{self, Entry, Xref, XrefKind};
use super::{PdfError, Result};

/// References followed in a row before giving up: a chain of references is a loop or an attack.
const MAX_INDIRECTION: usize = 32;
/// Largest window read for one object.
const MAX_OBJECT_WINDOW: usize = 8 << 20;
/// Decoded object streams kept.
const OBJECT_STREAM_CACHE: usize = 16;
/// Bytes of decoded object streams kept at once.
const OBJECT_STREAM_CACHE_BYTES: usize = 32 << 20;
/// Bytes decoded over the life of a document: re-decoding evicted streams is bounded too.
const MAX_DECODED_TOTAL: u64 = 512 << 20;
/// Objects read from the file over the life of a document: a wide object graph is refused
/// rather than walked for minutes.
const MAX_OBJECT_READS: u32 = 100_000;

/// A PDF document being extended.
pub struct Document<S> {
    src: S,
    xref: Xref,
    len: u64,
    size: u32,
    overlay: HashMap<u32, Object>,
    object_streams: RefCell<HashMap<u32, Arc<ObjectStream>>>,
    /// What this document has spent so far: objects read and bytes decoded.
    reads: Cell<u32>,
    decoded: Cell<u64>,
}

struct ObjectStream {
    /// Object number and offset (from `first`) of each member.
    members: Vec<(u32, usize)>,
    first: usize,
    data: Vec<u8>,
}

impl<S: Source> Document<S> {
    /// Open `src`: read its cross-reference and check it has a catalog and no encryption.
    pub fn open(src: S) -> Result<Self> {
        let xref = xref::load(&src)?;
        if xref.trailer.get("Encrypt").is_some() {
            return Err(PdfError::Encrypted);
        }
        let size = xref
            .trailer
            .integer("Size")
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(|| PdfError::BrokenXref("the trailer has no valid /Size".into()))?;
        // Some writers undercount /Size; never reuse a number that is in use.
        let size = xref
            .entries
            .keys()
            .map(|n| n.saturating_add(1))
            .max()
            .unwrap_or(0)
            .max(size);
        let len = src.len();
        let doc = Document {
            src,
            xref,
            len,
            size,
            overlay: HashMap::new(),
            object_streams: RefCell::new(HashMap::new()),
            reads: Cell::new(0),
            decoded: Cell::new(0),
        };
        let catalog = doc.catalog()?;
        if catalog.name("Type").is_some_and(|t| t != b"Catalog") {
            return Err(PdfError::malformed("/Root is not a /Catalog"));
        }
        Ok(doc)
    }

    /// The bytes being read.
    pub fn source(&self) -> &S {
        &self.src
    }

    /// Give back the source.
    pub fn into_source(self) -> S {
        self.src
    }

    /// Length of the document with the revisions committed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the document is empty (never, once opened).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The kind of cross-reference the next revision uses.
    pub fn xref_kind(&self) -> XrefKind {
        self.xref.kind
    }

    /// The newest trailer.
    pub fn trailer(&self) -> &Dict {
        &self.xref.trailer
    }

    /// Offset of the newest cross-reference section.
    pub fn startxref(&self) -> u64 {
        self.xref.startxref
    }

    /// The first unused object number.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The catalog's reference.
    pub fn root(&self) -> Result<Ref> {
        self.xref
            .trailer
            .reference("Root")
            .ok_or_else(|| PdfError::BrokenXref("the trailer has no /Root".into()))
    }

    /// The catalog dictionary.
    pub fn catalog(&self) -> Result<Dict> {
        self.dict(self.root()?)
    }

    /// Take in a revision that has been appended.
    pub fn commit(&mut self, state: RevisionState) {
        self.len = state.len;
        self.xref.startxref = state.startxref;
        self.size = state.size;
        for (num, obj) in state.objects {
            self.overlay.insert(num, obj);
        }
        self.xref
            .trailer
            .set("Size", Object::Integer(i64::from(self.size)));
    }

    /// The dictionary at `r` (a stream's dictionary for a stream).
    pub fn dict(&self, r: Ref) -> Result<Dict> {
        match self.get(r)? {
            Object::Dict(d) => Ok(d),
            _ => Err(PdfError::Malformed(format!(
                "object {} {} is not a dictionary",
                r.num, r.gen
            ))),
        }
    }

    /// `obj` with references followed.
    pub fn resolve(&self, obj: &Object) -> Result<Object> {
        let mut current = obj.clone();
        for _ in 0..MAX_INDIRECTION {
            match current {
                Object::Ref(r) => current = self.get(r)?,
                other => return Ok(other),
            }
        }
        Err(PdfError::malformed("a chain of references does not end"))
    }

    /// The object `r` names; `null` for a free or unknown object, as the standard says.
    pub fn get(&self, r: Ref) -> Result<Object> {
        if let Some(obj) = self.overlay.get(&r.num) {
            return Ok(obj.clone());
        }
        let reads = self.reads.get() + 1;
        if reads > MAX_OBJECT_READS {
            return Err(PdfError::too_large("more objects than a request may read"));
        }
        self.reads.set(reads);
        match self.xref.entries.get(&r.num).copied() {
            None | Some(Entry::Free) => Ok(Object::Null),
            Some(Entry::Offset { offset, gen }) => {
                if gen != r.gen {
                    return Ok(Object::Null);
                }
                Ok(self.object_at(offset, r)?.0)
            }
            Some(Entry::Compressed { stream, index }) => {
                if r.gen != 0 {
                    return Ok(Object::Null);
                }
                self.compressed(stream, index, r.num)
            }
        }
    }

    /// Whether `r` is stored in an object stream.
    pub fn is_compressed(&self, r: Ref) -> bool {
        matches!(
            self.xref.entries.get(&r.num),
            Some(Entry::Compressed { .. })
        ) && !self.overlay.contains_key(&r.num)
    }

    /// The object at `offset`, which must be `expected`; with the offset of its stream data.
    fn object_at(&self, offset: u64, expected: Ref) -> Result<(Object, Option<u64>)> {
        let bad = |what: &str| {
            PdfError::BrokenXref(format!(
                "object {} {} at offset {offset}: {what}",
                expected.num, expected.gen
            ))
        };
        if offset >= self.src.len() {
            return Err(bad("the offset lies past the end of the file"));
        }
        let mut window = 4096;
        loop {
            let bytes = self.src.read_vec(offset, window)?;
            let whole = offset + (bytes.len() as u64) >= self.src.len();
            let mut p = Parser::new(&bytes);
            let parsed = p.object_header().and_then(|found| {
                let obj = p.object()?;
                let stream = match obj {
                    Object::Dict(_) => p.stream_start().or_else(|e| match e {
                        // `endobj` right after a dictionary at the window's end.
                        Syntax::Eof if whole => Ok(false),
                        e => Err(e),
                    })?,
                    _ => false,
                };
                Ok((found, obj, stream.then_some(p.pos())))
            });
            match parsed {
                Ok((found, _, _)) if found != expected => {
                    return Err(bad(&format!(
                        "found object {} {} there",
                        found.num, found.gen
                    )))
                }
                Ok((_, obj, data)) => return Ok((obj, data.map(|d| offset + d as u64))),
                Err(Syntax::Eof) if !whole && window < MAX_OBJECT_WINDOW => {
                    window = (window * 4).min(MAX_OBJECT_WINDOW)
                }
                Err(Syntax::Eof) if !whole => {
                    return Err(PdfError::too_large(
                        "an object larger than a request may read",
                    ))
                }
                Err(Syntax::Eof) => return Err(bad("the object runs off the end of the file")),
                Err(Syntax::Bad(_, what)) => return Err(bad(what)),
                Err(Syntax::Limit(what)) => return Err(PdfError::too_large(what)),
            }
        }
    }

    /// The dictionary of the stream `r`, and where its raw data lies: offset and length.
    fn stream(&self, r: Ref) -> Result<(Dict, u64, u64)> {
        let Some(Entry::Offset { offset, gen }) = self.xref.entries.get(&r.num).copied() else {
            return Err(PdfError::Malformed(format!(
                "object stream {} is not stored at an offset",
                r.num
            )));
        };
        if gen != r.gen {
            return Err(PdfError::BrokenXref(format!(
                "object stream {} has the wrong generation",
                r.num
            )));
        }
        let (obj, data_at) = self.object_at(offset, r)?;
        let (Object::Dict(dict), Some(data_at)) = (obj, data_at) else {
            return Err(PdfError::Malformed(format!(
                "object {} is not a stream",
                r.num
            )));
        };
        let length = match dict.get("Length") {
            Some(Object::Integer(l)) => *l,
            Some(Object::Ref(l)) => match self.get(*l)? {
                Object::Integer(l) => l,
                _ => return Err(PdfError::malformed("a stream /Length is not an integer")),
            },
            _ => return Err(PdfError::malformed("a stream has no /Length")),
        };
        let length = u64::try_from(length)
            .ok()
            .filter(|l| {
                data_at
                    .checked_add(*l)
                    .is_some_and(|end| end <= self.src.len())
            })
            .ok_or_else(|| PdfError::malformed("a stream runs off the end of the file"))?;
        Ok((dict, data_at, length))
    }

    fn compressed(&self, stream: u32, index: u32, num: u32) -> Result<Object> {
        let objstm = self.object_stream(stream)?;
        let (found, offset) = *objstm.members.get(index as usize).ok_or_else(|| {
            PdfError::BrokenXref(format!(
                "object {num}: index {index} past the end of object stream {stream}"
            ))
        })?;
        if found != num {
            return Err(PdfError::BrokenXref(format!(
                "object stream {stream} holds object {found} where {num} was expected"
            )));
        }
        let start = objstm
            .first
            .checked_add(offset)
            .filter(|s| *s <= objstm.data.len())
            .ok_or_else(|| PdfError::malformed("an object stream offset is out of range"))?;
        Parser::new(&objstm.data[start..])
            .object()
            .map_err(|e| match e {
                Syntax::Limit(what) => PdfError::too_large(what),
                _ => PdfError::Malformed(format!(
                    "object {num} in object stream {stream} does not parse"
                )),
            })
    }

    fn object_stream(&self, num: u32) -> Result<Arc<ObjectStream>> {
        if let Some(s) = self.object_streams.borrow().get(&num) {
            return Ok(Arc::clone(s));
        }
        let (dict, data_at, length) = self.stream(Ref::new(num, 0))?;
        if dict.name("Type") != Some(b"ObjStm") {
            return Err(PdfError::Malformed(format!(
                "object {num} is not an object stream"
            )));
        }
        let raw = filter::SourceReader::new(&self.src, data_at, length)
            .ok_or_else(|| PdfError::malformed("a stream runs off the end of the file"))?;
        let spent = self.decoded.get();
        let cap = filter::MAX_DECODED.min(MAX_DECODED_TOTAL.saturating_sub(spent));
        let mut data = filter::decode(&dict, raw, cap)?;
        self.decoded.set(spent + data.len() as u64);
        // White space after the last member, which may end exactly at the end of the data.
        data.reserve_exact(1);
        data.push(b' ');
        let count = dict
            .integer("N")
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| PdfError::malformed("an object stream has no valid /N"))?;
        let first = dict
            .integer("First")
            .and_then(|n| usize::try_from(n).ok())
            .filter(|f| *f <= data.len())
            .ok_or_else(|| PdfError::malformed("an object stream has no valid /First"))?;
        let mut p = Parser::new(&data[..first]);
        let mut members = Vec::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            let (Ok(n), Ok(off)) = (p.unsigned(), p.unsigned()) else {
                return Err(PdfError::malformed(
                    "an object stream's header does not parse",
                ));
            };
            let n = u32::try_from(n).map_err(|_| PdfError::malformed("object number too large"))?;
            let off = usize::try_from(off).map_err(|_| PdfError::malformed("offset too large"))?;
            members.push((n, off));
        }
        let objstm = Arc::new(ObjectStream {
            members,
            first,
            data,
        });
        let mut cache = self.object_streams.borrow_mut();
        let held: usize = cache.values().map(|s| s.data.len()).sum();
        if cache.len() >= OBJECT_STREAM_CACHE
            || held + objstm.data.len() > OBJECT_STREAM_CACHE_BYTES
        {
            cache.clear();
        }
        cache.insert(num, Arc::clone(&objstm));
        Ok(objstm)
    }
}
