//! The PDF object model (ISO 32000-2 7.3), just enough to read a document's structure and
//! write the objects an incremental update replaces.

use std::fmt::Write as _;

/// An indirect reference `N G R`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ref {
    /// Object number.
    pub num: u32,
    /// Generation number.
    pub gen: u16,
}

impl Ref {
    /// The reference `num gen R`.
    pub fn new(num: u32, gen: u16) -> Self {
        Ref { num, gen }
    }
}

/// A direct PDF object. Streams are not values here: a reader gets their dictionary and
/// the location of their data separately.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Integer(i64),
    /// A real number, kept as written so that rewriting it changes nothing.
    Real(String),
    /// A string (literal or hex), decoded to its bytes.
    String(Vec<u8>),
    /// A name, without its slash and with `#xx` escapes decoded.
    Name(Vec<u8>),
    /// An array.
    Array(Vec<Object>),
    /// A dictionary.
    Dict(Dict),
    /// An indirect reference.
    Ref(Ref),
}

/// A dictionary, in the order its keys were written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dict(pub Vec<(Vec<u8>, Object)>);

impl Dict {
    /// An empty dictionary.
    pub fn new() -> Self {
        Dict(Vec::new())
    }

    /// The value under `key`, if any (`null` counts as absent, as the standard says).
    pub fn get(&self, key: &str) -> Option<&Object> {
        self.0
            .iter()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v)
            .filter(|v| !matches!(v, Object::Null))
    }

    /// Set `key` to `value`, in place if it exists, else at the end.
    pub fn set(&mut self, key: &str, value: Object) {
        match self.0.iter_mut().find(|(k, _)| k == key.as_bytes()) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.as_bytes().to_vec(), value)),
        }
    }

    /// Remove `key`.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key.as_bytes());
    }

    /// The name under `key`.
    pub fn name(&self, key: &str) -> Option<&[u8]> {
        match self.get(key) {
            Some(Object::Name(n)) => Some(n),
            _ => None,
        }
    }

    /// The integer under `key`.
    pub fn integer(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Some(Object::Integer(i)) => Some(*i),
            _ => None,
        }
    }

    /// The reference under `key`.
    pub fn reference(&self, key: &str) -> Option<Ref> {
        match self.get(key) {
            Some(Object::Ref(r)) => Some(*r),
            _ => None,
        }
    }
}

impl Object {
    /// A name object.
    pub fn name(name: &str) -> Object {
        Object::Name(name.as_bytes().to_vec())
    }

    /// A text string: PDFDocEncoding when ASCII, else UTF-16BE with a byte-order mark.
    pub fn text(text: &str) -> Object {
        if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            Object::String(text.as_bytes().to_vec())
        } else {
            let mut bytes = vec![0xfe, 0xff];
            for unit in text.encode_utf16() {
                bytes.extend_from_slice(&unit.to_be_bytes());
            }
            Object::String(bytes)
        }
    }

    /// Serialise this object in PDF syntax.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Object::Null => out.extend_from_slice(b"null"),
            Object::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Object::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Object::Real(r) => out.extend_from_slice(r.as_bytes()),
            Object::String(s) => write_string(s, out),
            Object::Name(n) => write_name(n, out),
            Object::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Object::Dict(dict) => dict.write(out),
            Object::Ref(r) => out.extend_from_slice(format!("{} {} R", r.num, r.gen).as_bytes()),
        }
    }

    /// This object in PDF syntax.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }
}

impl Dict {
    /// Serialise this dictionary in PDF syntax.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"<<");
        for (key, value) in &self.0 {
            write_name(key, out);
            out.push(b' ');
            value.write(out);
        }
        out.extend_from_slice(b">>");
    }
}

/// A literal string when every byte is printable ASCII, else a hex string.
fn write_string(s: &[u8], out: &mut Vec<u8>) {
    if s.iter().all(|b| (0x20..0x7f).contains(b)) {
        out.push(b'(');
        for &b in s {
            if matches!(b, b'(' | b')' | b'\\') {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b')');
    } else {
        out.push(b'<');
        out.extend_from_slice(hex_upper(s).as_bytes());
        out.push(b'>');
    }
}

fn write_name(n: &[u8], out: &mut Vec<u8>) {
    out.push(b'/');
    for &b in n {
        if b.is_ascii_graphic() && !is_delimiter(b) && b != b'#' {
            out.push(b);
        } else {
            out.extend_from_slice(format!("#{b:02X}").as_bytes());
        }
    }
}

/// The PDF delimiter characters (ISO 32000-2 7.2.3).
pub(crate) fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

/// Upper-case hex, as /VRI keys and hex strings are written.
pub fn hex_upper(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02X}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_it_reads() {
        let mut d = Dict::new();
        d.set("Type", Object::name("Sig"));
        d.set("T", Object::text("a (b) \\c"));
        d.set("N", Object::Name(b"odd name#".to_vec()));
        d.set(
            "K",
            Object::Array(vec![Object::Ref(Ref::new(3, 0)), Object::Integer(-2)]),
        );
        let bytes = Object::Dict(d).to_bytes();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "<</Type /Sig/T (a \\(b\\) \\\\c)/N /odd#20name#23/K [3 0 R -2]>>"
        );
    }

    #[test]
    fn non_ascii_text_is_utf16() {
        assert_eq!(Object::text("é").to_bytes(), b"<FEFF00E9>".to_vec());
    }
}
