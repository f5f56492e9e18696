//! A parser of PDF objects over a window of bytes (ISO 32000-2 7.2, 7.3).
//!
//! The window is a slice read from the document; running off its end is reported as
//! [`Syntax::Eof`] so that the caller can read a bigger window and try again.

use super::object::{is_delimiter, Dict, Object, Ref};

/// Deepest nesting of arrays and dictionaries accepted: hostile input must not exhaust the stack.
const MAX_DEPTH: usize = 64;
/// Most objects (array items, dictionary values, at every depth) in one parsed object: a
/// wide object costs tens of bytes an element in memory, so this bounds it to a few MiB.
const MAX_ELEMENTS: usize = 1 << 18;

/// Why bytes did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// The window ended inside an object.
    Eof,
    /// Bytes that are not PDF syntax, at an offset in the window.
    Bad(usize, &'static str),
    /// Syntax beyond what one request may spend on it (elements, keys, entries).
    Limit(&'static str),
}

/// A cursor over a window of PDF bytes.
pub struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    elements: usize,
}

/// PDF white space (ISO 32000-2 7.2.3).
pub fn is_whitespace(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

impl<'a> Parser<'a> {
    /// A parser at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Parser {
            bytes,
            pos: 0,
            elements: 0,
        }
    }

    /// The offset of the cursor in the window.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Skip white space and comments.
    pub fn skip_space(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if is_whitespace(b) {
                self.pos += 1;
            } else if b == b'%' {
                while let Some(&c) = self.bytes.get(self.pos) {
                    if c == b'\r' || c == b'\n' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    /// Consume `keyword` (after white space) if it comes next as a whole token.
    pub fn eat_keyword(&mut self, keyword: &[u8]) -> bool {
        self.skip_space();
        let end = self.pos + keyword.len();
        if self.bytes.get(self.pos..end) == Some(keyword)
            && self
                .bytes
                .get(end)
                .is_none_or(|&b| is_whitespace(b) || is_delimiter(b))
        {
            self.pos = end;
            true
        } else {
            false
        }
    }

    /// Like [`Parser::eat_keyword`], but an error if the keyword is not there.
    pub fn expect_keyword(&mut self, keyword: &[u8], what: &'static str) -> Result<(), Syntax> {
        if self.eat_keyword(keyword) {
            Ok(())
        } else if self.pos + keyword.len() > self.bytes.len() {
            Err(Syntax::Eof)
        } else {
            Err(Syntax::Bad(self.pos, what))
        }
    }

    /// A non-negative integer token.
    pub fn unsigned(&mut self) -> Result<u64, Syntax> {
        self.skip_space();
        let start = self.pos;
        let mut value: u64 = 0;
        while let Some(&b) = self.bytes.get(self.pos) {
            if !b.is_ascii_digit() {
                break;
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or(Syntax::Bad(start, "number too large"))?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(if start >= self.bytes.len() {
                Syntax::Eof
            } else {
                Syntax::Bad(start, "expected a number")
            });
        }
        Ok(value)
    }

    /// The header `N G obj` of an indirect object.
    pub fn object_header(&mut self) -> Result<Ref, Syntax> {
        let num = self.unsigned()?;
        let gen = self.unsigned()?;
        self.expect_keyword(b"obj", "expected 'obj'")?;
        let num = u32::try_from(num).map_err(|_| Syntax::Bad(0, "object number too large"))?;
        let gen = u16::try_from(gen).map_err(|_| Syntax::Bad(0, "generation too large"))?;
        Ok(Ref::new(num, gen))
    }

    /// After a stream dictionary: the `stream` keyword and its end of line. Returns whether
    /// a stream follows; the cursor is then at the first byte of its data.
    pub fn stream_start(&mut self) -> Result<bool, Syntax> {
        if !self.eat_keyword(b"stream") {
            return Ok(false);
        }
        match self.bytes.get(self.pos) {
            Some(b'\n') => self.pos += 1,
            Some(b'\r') => {
                self.pos += 1;
                if self.bytes.get(self.pos) == Some(&b'\n') {
                    self.pos += 1;
                }
            }
            None => return Err(Syntax::Eof),
            Some(_) => return Err(Syntax::Bad(self.pos, "no end of line after 'stream'")),
        }
        Ok(true)
    }

    /// One object, resolving `N G R` into a reference.
    pub fn object(&mut self) -> Result<Object, Syntax> {
        self.object_at_depth(0)
    }

    fn object_at_depth(&mut self, depth: usize) -> Result<Object, Syntax> {
        if depth > MAX_DEPTH {
            return Err(Syntax::Limit("objects nested too deeply"));
        }
        self.elements += 1;
        if self.elements > MAX_ELEMENTS {
            return Err(Syntax::Limit("an object with too many elements"));
        }
        self.skip_space();
        let Some(&b) = self.bytes.get(self.pos) else {
            return Err(Syntax::Eof);
        };
        match b {
            b'/' => {
                self.pos += 1;
                Ok(Object::Name(self.name_body()?))
            }
            b'(' => {
                self.pos += 1;
                Ok(Object::String(self.literal_string()?))
            }
            b'<' if self.bytes.get(self.pos + 1) == Some(&b'<') => {
                self.pos += 2;
                Ok(Object::Dict(self.dict_body(depth)?))
            }
            b'<' => {
                self.pos += 1;
                Ok(Object::String(self.hex_string()?))
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_space();
                    match self.bytes.get(self.pos) {
                        None => return Err(Syntax::Eof),
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Object::Array(items));
                        }
                        Some(_) => items.push(self.object_at_depth(depth + 1)?),
                    }
                }
            }
            b'+' | b'-' | b'.' | b'0'..=b'9' => self.number_or_ref(),
            _ => self.keyword_object(),
        }
    }

    fn dict_body(&mut self, depth: usize) -> Result<Dict, Syntax> {
        let mut dict = Dict::new();
        // Keys seen, once the dictionary is too big to search for duplicates.
        let mut keys: Option<std::collections::HashSet<Vec<u8>>> = None;
        loop {
            self.skip_space();
            match self.bytes.get(self.pos) {
                None => return Err(Syntax::Eof),
                Some(b'>') => {
                    return match self.bytes.get(self.pos + 1) {
                        Some(b'>') => {
                            self.pos += 2;
                            Ok(dict)
                        }
                        None => Err(Syntax::Eof),
                        Some(_) => Err(Syntax::Bad(self.pos, "'>' inside a dictionary")),
                    };
                }
                Some(b'/') => {
                    self.pos += 1;
                    let key = self.name_body()?;
                    let value = self.object_at_depth(depth + 1)?;
                    // A later duplicate key is ignored, as readers commonly do.
                    let duplicate = match &mut keys {
                        Some(set) => !set.insert(key.clone()),
                        None => dict.0.iter().any(|(k, _)| *k == key),
                    };
                    if !duplicate {
                        dict.0.push((key, value));
                        if keys.is_none() && dict.0.len() > 32 {
                            keys = Some(dict.0.iter().map(|(k, _)| k.clone()).collect());
                        }
                    }
                }
                Some(_) => return Err(Syntax::Bad(self.pos, "dictionary key is not a name")),
            }
        }
    }

    fn name_body(&mut self) -> Result<Vec<u8>, Syntax> {
        let mut name = Vec::new();
        while let Some(&b) = self.bytes.get(self.pos) {
            if is_whitespace(b) || is_delimiter(b) {
                break;
            }
            if b == b'#' {
                let hex = self
                    .bytes
                    .get(self.pos + 1..self.pos + 3)
                    .ok_or(Syntax::Eof)?;
                let value = hex_pair(hex[0], hex[1])
                    .ok_or(Syntax::Bad(self.pos, "bad #xx escape in a name"))?;
                name.push(value);
                self.pos += 3;
            } else {
                name.push(b);
                self.pos += 1;
            }
        }
        if self.pos >= self.bytes.len() {
            // A name may continue past the window.
            return Err(Syntax::Eof);
        }
        Ok(name)
    }

    fn literal_string(&mut self) -> Result<Vec<u8>, Syntax> {
        let mut out = Vec::new();
        let mut depth = 1usize;
        loop {
            let b = *self.bytes.get(self.pos).ok_or(Syntax::Eof)?;
            self.pos += 1;
            match b {
                b'(' => {
                    depth += 1;
                    out.push(b);
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(out);
                    }
                    out.push(b);
                }
                b'\\' => {
                    let e = *self.bytes.get(self.pos).ok_or(Syntax::Eof)?;
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'\r' => {
                            if self.bytes.get(self.pos) == Some(&b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        b'0'..=b'7' => {
                            let mut value = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.bytes.get(self.pos) {
                                    Some(&d @ b'0'..=b'7') => {
                                        value = value * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push((value & 0xff) as u8);
                        }
                        other => out.push(other),
                    }
                }
                _ => out.push(b),
            }
        }
    }

    fn hex_string(&mut self) -> Result<Vec<u8>, Syntax> {
        let mut digits = Vec::new();
        loop {
            let b = *self.bytes.get(self.pos).ok_or(Syntax::Eof)?;
            self.pos += 1;
            match b {
                b'>' => break,
                b if is_whitespace(b) => {}
                b if b.is_ascii_hexdigit() => digits.push(b),
                _ => return Err(Syntax::Bad(self.pos - 1, "bad character in a hex string")),
            }
        }
        if digits.len() % 2 == 1 {
            digits.push(b'0');
        }
        Ok(digits
            .chunks(2)
            .filter_map(|pair| hex_pair(pair[0], pair[1]))
            .collect())
    }

    /// A number; two unsigned integers followed by `R` are a reference.
    fn number_or_ref(&mut self) -> Result<Object, Syntax> {
        let first = self.number_token()?;
        let Object::Integer(num) = first else {
            return Ok(first);
        };
        if num < 0 {
            return Ok(first);
        }
        let save = self.pos;
        self.skip_space();
        if !self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
            if self.pos >= self.bytes.len() {
                return Err(Syntax::Eof);
            }
            self.pos = save;
            return Ok(first);
        }
        let gen_start = self.pos;
        let gen = match self.number_token()? {
            Object::Integer(g) if self.pos > gen_start => g,
            _ => {
                self.pos = save;
                return Ok(first);
            }
        };
        self.skip_space();
        if self.pos >= self.bytes.len() {
            return Err(Syntax::Eof);
        }
        if self.eat_keyword(b"R") {
            let num =
                u32::try_from(num).map_err(|_| Syntax::Bad(save, "object number too large"))?;
            let gen = u16::try_from(gen).map_err(|_| Syntax::Bad(save, "generation too large"))?;
            return Ok(Object::Ref(Ref::new(num, gen)));
        }
        self.pos = save;
        Ok(first)
    }

    fn number_token(&mut self) -> Result<Object, Syntax> {
        let start = self.pos;
        while let Some(&b) = self.bytes.get(self.pos) {
            if b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.') {
                self.pos += 1;
            } else {
                break;
            }
        }
        if self.pos >= self.bytes.len() {
            return Err(Syntax::Eof);
        }
        let text = std::str::from_utf8(&self.bytes[start..self.pos])
            .map_err(|_| Syntax::Bad(start, "bad number"))?;
        if text.contains('.') {
            text.parse::<f64>()
                .map_err(|_| Syntax::Bad(start, "bad number"))?;
            Ok(Object::Real(text.to_owned()))
        } else {
            text.parse::<i64>()
                .map(Object::Integer)
                .map_err(|_| Syntax::Bad(start, "bad number"))
        }
    }

    fn keyword_object(&mut self) -> Result<Object, Syntax> {
        for (keyword, value) in [
            (&b"true"[..], Object::Bool(true)),
            (b"false", Object::Bool(false)),
            (b"null", Object::Null),
        ] {
            if self.eat_keyword(keyword) {
                return Ok(value);
            }
        }
        if self.pos + 5 > self.bytes.len() {
            return Err(Syntax::Eof);
        }
        Err(Syntax::Bad(self.pos, "unexpected token"))
    }
}

fn hex_pair(a: u8, b: u8) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(a)? * 16 + digit(b)?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Object, Syntax> {
        Parser::new(s.as_bytes()).object()
    }

    #[test]
    fn parses_the_usual_objects() {
        let obj = parse("<< /Type /Page /Kids [1 0 R 2 0 R] /N -3 /R 1.5 /S (a\\(b\\)) /H <4142> /B true /Z null >> ").unwrap();
        let Object::Dict(d) = obj else { panic!() };
        assert_eq!(d.name("Type"), Some(&b"Page"[..]));
        assert_eq!(
            d.get("Kids"),
            Some(&Object::Array(vec![
                Object::Ref(Ref::new(1, 0)),
                Object::Ref(Ref::new(2, 0))
            ]))
        );
        assert_eq!(d.integer("N"), Some(-3));
        assert_eq!(d.get("R"), Some(&Object::Real("1.5".into())));
        assert_eq!(d.get("S"), Some(&Object::String(b"a(b)".to_vec())));
        assert_eq!(d.get("H"), Some(&Object::String(b"AB".to_vec())));
        assert_eq!(d.get("B"), Some(&Object::Bool(true)));
        assert_eq!(d.get("Z"), None);
    }

    #[test]
    fn numbers_that_are_not_references() {
        let obj = parse("[1 2 3] ").unwrap();
        assert_eq!(
            obj,
            Object::Array(vec![
                Object::Integer(1),
                Object::Integer(2),
                Object::Integer(3)
            ])
        );
    }

    #[test]
    fn running_out_of_window_is_eof() {
        assert_eq!(parse("<< /A [1 2"), Err(Syntax::Eof));
        assert_eq!(parse("(abc"), Err(Syntax::Eof));
        assert_eq!(parse("<< /A 1 0"), Err(Syntax::Eof));
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(matches!(parse(&deep), Err(Syntax::Limit(_))));
    }

    #[test]
    fn wide_objects_are_refused() {
        let wide = format!("[{}]", "0 ".repeat(MAX_ELEMENTS + 1));
        assert!(matches!(parse(&wide), Err(Syntax::Limit(_))));
        let ok = format!("[{}]", "0 ".repeat(1000));
        assert!(parse(&ok).is_ok());
        let mut dict = String::from("<<");
        for i in 0..5000 {
            dict.push_str(&format!("/K{i} {i} /K{} 0 ", i / 2));
        }
        dict.push_str(">>");
        let Ok(Object::Dict(d)) = parse(&dict) else {
            panic!("dict")
        };
        assert_eq!(d.0.len(), 5000);
        assert_eq!(d.integer("K7"), Some(7));
    }

    #[test]
    fn escapes_in_names_and_strings() {
        assert_eq!(parse("/A#20B ").unwrap(), Object::Name(b"A B".to_vec()));
        assert_eq!(
            parse("(\\101\\n)").unwrap(),
            Object::String(b"A\n".to_vec())
        );
    }
}
