//! Placing a signature: the field and its widget, the signature dictionary with a
//! `/ByteRange` and a `/Contents` hole, in one incremental update (ISO 32000-2 12.8).

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use super::document::Document;
use super::object::{hex_upper, Dict, Object, Ref};
use super::source::Source;
use super::update::{Revision, UpdateBuilder};
use super::{PdfError, Result};
use crate::alg::Hasher;

/// Deepest field or page tree followed.
const MAX_TREE_DEPTH: usize = 32;
/// Most form fields walked: a form wider than this is an attack on memory, not a form.
const MAX_FIELDS: usize = 20_000;
/// Widest `/ByteRange` array written: four numbers of up to 20 digits.
const BYTE_RANGE_WIDTH: usize = 4 * 21 + 2;

/// What kind of signature a field gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureKind {
    /// An approval signature: CMS per ETSI EN 319 142-1 (`/ETSI.CAdES.detached`).
    Cades,
    /// A document timestamp: an RFC 3161 token over the document (`/ETSI.RFC3161`).
    DocTimeStamp,
}

/// What goes in the signature dictionary and where.
#[derive(Clone, Debug)]
pub struct SignatureOptions {
    /// Approval signature or document timestamp.
    pub kind: SignatureKind,
    /// The field to sign: an existing empty signature field, or the name of a new one.
    pub field: Option<String>,
    /// `/Name`: the signer's name.
    pub name: Option<String>,
    /// `/Reason`.
    pub reason: Option<String>,
    /// `/Location`.
    pub location: Option<String>,
    /// `/ContactInfo`.
    pub contact_info: Option<String>,
    /// `/M`, the claimed signing time (approval signatures only).
    pub signing_time: SystemTime,
    /// Bytes reserved for the DER signature in `/Contents`.
    pub contents_len: usize,
}

/// A revision whose `/Contents` waits for the signature over its byte ranges.
#[derive(Debug)]
pub struct PendingSignature {
    revision: Revision,
    /// Offsets in the revision of `<` and just past `>` of `/Contents`.
    hole: (usize, usize),
    base: u64,
    field: String,
}

impl PendingSignature {
    /// The `/ByteRange`: everything but the `/Contents` string.
    pub fn byte_range(&self) -> [u64; 4] {
        let end = self.base + self.revision.bytes.len() as u64;
        let (a, b) = (
            self.base + self.hole.0 as u64,
            self.base + self.hole.1 as u64,
        );
        [0, a, b, end - b]
    }

    /// The digest the signature covers, given a hasher fed with the document up to this
    /// revision (the caller streams those bytes; they are never held here).
    pub fn digest(&self, document_so_far: &Hasher) -> Vec<u8> {
        let mut h = document_so_far.clone();
        h.update(&self.revision.bytes[..self.hole.0]);
        h.update(&self.revision.bytes[self.hole.1..]);
        h.finish()
    }

    /// Bytes reserved for the DER signature.
    pub fn reserved(&self) -> usize {
        (self.hole.1 - self.hole.0 - 2) / 2
    }

    /// The name of the field signed.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Put `der` in the hole: the finished revision.
    pub fn fill(mut self, der: &[u8]) -> Result<Revision> {
        if der.len() > self.reserved() {
            return Err(PdfError::ContentsTooSmall {
                needed: der.len(),
                reserved: self.reserved(),
            });
        }
        let hex = hex_upper(der);
        let at = self.hole.0 + 1;
        self.revision.bytes[at..at + hex.len()].copy_from_slice(hex.as_bytes());
        Ok(self.revision)
    }
}

impl<S: Source> Document<S> {
    /// Lay out a signature per `options` as the next revision.
    pub fn prepare_signature(&self, options: &SignatureOptions) -> Result<PendingSignature> {
        let mut update = UpdateBuilder::new(self);
        let sig = update.alloc();
        let catalog_ref = self.root()?;
        let mut catalog = self.catalog()?;
        let mut form = Form::load(self, &catalog)?;

        let existing = match &options.field {
            Some(name) => form.find(self, name)?,
            None => None,
        };
        let field_name = match (&options.field, &existing) {
            (Some(name), _) => name.clone(),
            (None, _) => form.fresh_name(self, options.kind)?,
        };
        if let Some((field_ref, mut field)) = existing {
            field.set("V", Object::Ref(sig));
            update.put(field_ref, Object::Dict(field));
        } else {
            let widget = update.alloc();
            let (page_ref, page) = self.first_page(&catalog)?;
            let mut dict = Dict::new();
            dict.set("Type", Object::name("Annot"));
            dict.set("Subtype", Object::name("Widget"));
            dict.set("FT", Object::name("Sig"));
            dict.set("T", Object::text(&field_name));
            dict.set("V", Object::Ref(sig));
            // Print and Locked: PDF/A wants printable annotations; an invisible signature
            // has a zero rectangle rather than the Hidden flag.
            dict.set("F", Object::Integer(132));
            dict.set("Rect", Object::Array(vec![Object::Integer(0); 4]));
            dict.set("P", Object::Ref(page_ref));
            update.put(widget, Object::Dict(dict));
            self.add_annotation(&mut update, page_ref, page, widget)?;
            form.fields.push(Object::Ref(widget));
        }
        form.dict.set("SigFlags", Object::Integer(3));
        form.store(&mut update, &mut catalog);
        update.put(catalog_ref, Object::Dict(catalog));

        let mut layout = signature_dictionary(options);
        update.put_raw(sig, std::mem::take(&mut layout.bytes));

        let (mut revision, offsets) = update.finish();
        let body = *offsets
            .get(&sig.num)
            .ok_or_else(|| PdfError::malformed("signature object missing"))?;
        let hole = place_byte_range(&mut revision.bytes, body, &layout, self.len())?;
        Ok(PendingSignature {
            revision,
            hole,
            base: self.len(),
            field: field_name,
        })
    }

    /// The first page, where an invisible signature's widget is attached.
    fn first_page(&self, catalog: &Dict) -> Result<(Ref, Dict)> {
        let mut node = catalog
            .reference("Pages")
            .ok_or_else(|| PdfError::malformed("the catalog has no /Pages"))?;
        for _ in 0..MAX_TREE_DEPTH {
            let dict = self.dict(node)?;
            match dict.name("Type") {
                Some(b"Pages") => {
                    let kids = match self.resolve(dict.get("Kids").unwrap_or(&Object::Null))? {
                        Object::Array(k) => k,
                        _ => return Err(PdfError::malformed("a page tree node has no /Kids")),
                    };
                    node = match kids.first() {
                        Some(Object::Ref(r)) => *r,
                        _ => return Err(PdfError::malformed("the document has no pages")),
                    };
                }
                _ => return Ok((node, dict)),
            }
        }
        Err(PdfError::malformed("the page tree is too deep"))
    }

    fn add_annotation(
        &self,
        update: &mut UpdateBuilder<'_, S>,
        page_ref: Ref,
        mut page: Dict,
        widget: Ref,
    ) -> Result<()> {
        match page.get("Annots").cloned() {
            Some(Object::Ref(list)) => {
                let mut items = match self.get(list)? {
                    Object::Array(items) => items,
                    _ => return Err(PdfError::malformed("a page's /Annots is not an array")),
                };
                items.push(Object::Ref(widget));
                update.put(list, Object::Array(items));
            }
            Some(Object::Array(mut items)) => {
                items.push(Object::Ref(widget));
                page.set("Annots", Object::Array(items));
                update.put(page_ref, Object::Dict(page));
            }
            None => {
                page.set("Annots", Object::Array(vec![Object::Ref(widget)]));
                update.put(page_ref, Object::Dict(page));
            }
            Some(_) => return Err(PdfError::malformed("a page's /Annots is not an array")),
        }
        Ok(())
    }
}

/// The interactive form: where it lives and its fields.
struct Form {
    dict: Dict,
    /// The form's own object, when it is not direct in the catalog.
    dict_ref: Option<Ref>,
    fields: Vec<Object>,
    fields_ref: Option<Ref>,
}

impl Form {
    fn load<S: Source>(doc: &Document<S>, catalog: &Dict) -> Result<Form> {
        let (dict, dict_ref) = match catalog.get("AcroForm") {
            None => (Dict::new(), None),
            Some(Object::Ref(r)) => match doc.get(*r)? {
                Object::Dict(d) => (d, Some(*r)),
                Object::Null => (Dict::new(), None),
                _ => return Err(PdfError::malformed("/AcroForm is not a dictionary")),
            },
            Some(Object::Dict(d)) => (d.clone(), None),
            Some(_) => return Err(PdfError::malformed("/AcroForm is not a dictionary")),
        };
        let (fields, fields_ref) = match dict.get("Fields") {
            None => (Vec::new(), None),
            Some(Object::Ref(r)) => match doc.get(*r)? {
                Object::Array(a) => (a, Some(*r)),
                _ => return Err(PdfError::malformed("/Fields is not an array")),
            },
            Some(Object::Array(a)) => (a.clone(), None),
            Some(_) => return Err(PdfError::malformed("/Fields is not an array")),
        };
        Ok(Form {
            dict,
            dict_ref,
            fields,
            fields_ref,
        })
    }

    /// Write the form back where it came from.
    fn store<S: Source>(mut self, update: &mut UpdateBuilder<'_, S>, catalog: &mut Dict) {
        match self.fields_ref {
            Some(r) => update.put(r, Object::Array(self.fields)),
            None => self.dict.set("Fields", Object::Array(self.fields)),
        }
        match self.dict_ref {
            Some(r) => update.put(r, Object::Dict(self.dict)),
            None => catalog.set("AcroForm", Object::Dict(self.dict)),
        }
    }

    /// Every terminal field, with its full name, reference and inherited field type.
    fn terminal_fields<S: Source>(&self, doc: &Document<S>) -> Result<Vec<FieldInfo>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for field in &self.fields {
            walk(doc, field, "", None, 0, &mut seen, &mut out)?;
        }
        Ok(out)
    }

    /// The field named `name`, checked to be an empty signature field.
    fn find<S: Source>(&self, doc: &Document<S>, name: &str) -> Result<Option<(Ref, Dict)>> {
        for field in self.terminal_fields(doc)? {
            if field.name != name {
                continue;
            }
            if field.kind.as_deref() != Some(b"Sig") {
                return Err(PdfError::NotASignatureField(name.to_owned()));
            }
            if field.dict.get("V").is_some() {
                return Err(PdfError::FieldAlreadySigned(name.to_owned()));
            }
            let r = field.reference.ok_or_else(|| {
                PdfError::Unsupported(format!("field {name:?} is not an indirect object"))
            })?;
            return Ok(Some((r, field.dict)));
        }
        Ok(None)
    }

    /// A field name not yet used.
    fn fresh_name<S: Source>(
        &self,
        doc: &Document<S>,
        kind: super::SignatureKind,
    ) -> Result<String> {
        let taken: HashSet<String> = self
            .terminal_fields(doc)?
            .into_iter()
            .map(|f| f.name)
            .collect();
        let stem = match kind {
            super::SignatureKind::Cades => "Signature",
            super::SignatureKind::DocTimeStamp => "DocumentTimestamp",
        };
        Ok((1..)
            .map(|i| format!("{stem}{i}"))
            .find(|n| !taken.contains(n))
            .unwrap_or_else(|| stem.to_owned()))
    }
}

struct FieldInfo {
    name: String,
    reference: Option<Ref>,
    dict: Dict,
    kind: Option<Vec<u8>>,
}

fn walk<S: Source>(
    doc: &Document<S>,
    node: &Object,
    parent: &str,
    inherited: Option<&[u8]>,
    depth: usize,
    seen: &mut HashSet<Ref>,
    out: &mut Vec<FieldInfo>,
) -> Result<()> {
    if depth > MAX_TREE_DEPTH {
        return Err(PdfError::malformed("the form's field tree is too deep"));
    }
    if seen.len() > MAX_FIELDS || out.len() > MAX_FIELDS {
        return Err(PdfError::too_large("a form with too many fields"));
    }
    let reference = match node {
        Object::Ref(r) => {
            if !seen.insert(*r) {
                return Err(PdfError::malformed("the form's field tree has a loop"));
            }
            Some(*r)
        }
        _ => None,
    };
    let Object::Dict(dict) = doc.resolve(node)? else {
        return Ok(());
    };
    let partial = match dict.get("T") {
        Some(Object::String(t)) => Some(text_string(t)),
        _ => None,
    };
    let name = match (&partial, parent.is_empty()) {
        (Some(p), true) => p.clone(),
        (Some(p), false) => format!("{parent}.{p}"),
        (None, _) => parent.to_owned(),
    };
    let kind = dict
        .name("FT")
        .map(<[u8]>::to_vec)
        .or(inherited.map(<[u8]>::to_vec));
    let kids: Vec<Object> = match dict.get("Kids").map(|k| doc.resolve(k)).transpose()? {
        Some(Object::Array(k)) => k,
        _ => Vec::new(),
    };
    // Kids without a /T are widgets of this field, not fields of their own.
    let mut field_kids = Vec::new();
    for kid in &kids {
        if let Object::Dict(d) = doc.resolve(kid)? {
            if d.get("T").is_some() {
                field_kids.push(kid.clone());
            }
        }
    }
    if field_kids.is_empty() {
        if partial.is_some() {
            out.push(FieldInfo {
                name,
                reference,
                dict,
                kind,
            });
        }
        return Ok(());
    }
    for kid in &field_kids {
        walk(doc, kid, &name, kind.as_deref(), depth + 1, seen, out)?;
    }
    Ok(())
}

/// A PDF text string as Rust text: UTF-16BE with a byte-order mark, else PDFDocEncoding
/// (read as Latin-1, which agrees on everything a field name uses).
fn text_string(bytes: &[u8]) -> String {
    match bytes.strip_prefix(&[0xfe, 0xff]) {
        Some(utf16) => {
            let units: Vec<u16> = utf16
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        None => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// A signature dictionary laid out with its `/ByteRange` and `/Contents` first, and where
/// they are: caller text comes after them and is never searched, so it is just a string.
struct SignatureBody {
    bytes: Vec<u8>,
    /// Offset of the first byte inside the `/ByteRange` brackets.
    range_at: usize,
    /// Offsets of `<` and just past `>` of the `/Contents` string.
    hole: (usize, usize),
}

/// The signature dictionary: a blank `/ByteRange` and a zeroed `/Contents` first, then the rest.
fn signature_dictionary(options: &SignatureOptions) -> SignatureBody {
    let mut dict = Dict::new();
    match options.kind {
        SignatureKind::Cades => {
            dict.set("Type", Object::name("Sig"));
            dict.set("Filter", Object::name("Adobe.PPKLite"));
            dict.set("SubFilter", Object::name("ETSI.CAdES.detached"));
            dict.set(
                "M",
                Object::String(pdf_date(options.signing_time).into_bytes()),
            );
            for (key, value) in [
                ("Name", &options.name),
                ("Reason", &options.reason),
                ("Location", &options.location),
                ("ContactInfo", &options.contact_info),
            ] {
                if let Some(v) = value {
                    dict.set(key, Object::text(v));
                }
            }
        }
        SignatureKind::DocTimeStamp => {
            dict.set("Type", Object::name("DocTimeStamp"));
            dict.set("Filter", Object::name("Adobe.PPKLite"));
            dict.set("SubFilter", Object::name("ETSI.RFC3161"));
        }
    }
    let mut bytes = b"<</ByteRange [".to_vec();
    let range_at = bytes.len();
    bytes.extend(std::iter::repeat_n(b' ', BYTE_RANGE_WIDTH - 2));
    bytes.extend_from_slice(b"]/Contents ");
    let open = bytes.len();
    bytes.push(b'<');
    bytes.extend(std::iter::repeat_n(b'0', options.contents_len * 2));
    bytes.push(b'>');
    let close = bytes.len();
    for (key, value) in &dict.0 {
        Object::Name(key.clone()).write(&mut bytes);
        bytes.push(b' ');
        value.write(&mut bytes);
    }
    bytes.extend_from_slice(b">>");
    SignatureBody {
        bytes,
        range_at,
        hole: (open, close),
    }
}

/// Fill the `/ByteRange` of the signature dictionary laid out as `layout`, whose body
/// starts at `body` in `bytes` (a revision appended at `base`); returns the `/Contents` hole.
fn place_byte_range(
    bytes: &mut [u8],
    body: usize,
    layout: &SignatureBody,
    base: u64,
) -> Result<(usize, usize)> {
    let missing = || PdfError::malformed("signature dictionary layout");
    let (open, close) = (body + layout.hole.0, body + layout.hole.1);
    let range_at = body + layout.range_at;
    // The layout is ours; check it landed where recorded rather than trust it blindly.
    if bytes.get(range_at - 1) != Some(&b'[')
        || bytes.get(open) != Some(&b'<')
        || bytes.get(close - 1) != Some(&b'>')
    {
        return Err(missing());
    }
    let end = base + bytes.len() as u64;
    let (a, b) = (base + open as u64, base + close as u64);
    let text = format!("0 {a} {b} {}", end - b);
    if text.len() > BYTE_RANGE_WIDTH - 2 {
        return Err(missing());
    }
    bytes[range_at..range_at + text.len()].copy_from_slice(text.as_bytes());
    Ok((open, close))
}

/// A PDF date (ISO 32000-2 7.9.4) in UTC.
fn pdf_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match der::DateTime::from_unix_duration(std::time::Duration::from_secs(secs)) {
        Ok(t) => format!(
            "D:{:04}{:02}{:02}{:02}{:02}{:02}+00'00'",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minutes(),
            t.seconds()
        ),
        Err(_) => "D:19700101000000+00'00'".to_owned(),
    }
}
