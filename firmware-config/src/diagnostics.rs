//! Where a problem is in the file: line and column of every key and value, and the loop
//! that gathers every schema error of a file at once instead of stopping at the first.
//!
//! serde stops at the first error. To find the next one, the offending key-value is
//! blanked out (every byte but newlines becomes a space, so every other offset, line and
//! column stays where it was) and the text is parsed again, until it parses or an error
//! cannot be stepped over (a missing required key, a syntax error).

use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;

/// One problem in a config file, at a line and column (both from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
    /// The dotted key (`clients[0].match.subject`), empty for the file as a whole.
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.line, self.column, self.key, self.message
            )
        }
    }
}

/// One key or value of the document and where it is.
#[derive(Clone, Debug)]
struct Entry {
    path: String,
    /// The key (for a `[table]` or `[[array]]` element: its header).
    key: Range<usize>,
    /// The value (for a table: its header).
    value: Range<usize>,
    /// How it can be blanked out: `None` for headers and array elements.
    removal: Option<Removal>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Removal {
    /// `key = value` on lines of its own.
    Line,
    /// `key = value` inside `{ ... }`, with a comma on one side.
    Inline,
}

/// Every key and value of a TOML text, with its position.
#[derive(Debug)]
pub struct SpanIndex {
    text: String,
    entries: Vec<Entry>,
}

impl SpanIndex {
    /// Index `text`; a syntax error comes back as a problem.
    pub fn new(text: &str) -> Result<SpanIndex, Problem> {
        let doc = toml_edit::ImDocument::parse(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            let (line, column) = line_column(text, at);
            Problem {
                line,
                column,
                key: String::new(),
                message: format!("not TOML: {}", e.message().trim_end()),
            }
        })?;
        let mut entries = Vec::new();
        walk_table(doc.as_table(), "", &mut entries);
        Ok(SpanIndex {
            text: text.to_owned(),
            entries,
        })
    }

    /// The problem `message` at the key `path` (its value when it has one); at the closest
    /// enclosing key that exists when it does not (a missing key: its table).
    pub fn problem_at_key(&self, path: &str, message: impl Into<String>) -> Problem {
        let mut p = path;
        let entry = loop {
            if let Some(e) = self.entries.iter().find(|e| e.path == p) {
                break Some(e);
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => break None,
            }
        };
        let at = entry.map_or(0, |e| e.value.start);
        let (line, column) = line_column(&self.text, at);
        Problem {
            line,
            column,
            key: path.to_owned(),
            message: message.into(),
        }
    }

    /// serde reports an error inside an inline table at the table: find the member it is
    /// about (the unknown key, or the value named in the message) and point there.
    fn refine(&self, at: usize, message: &str) -> usize {
        let Some(table) = self.entry_at(at, false) else {
            return at;
        };
        let named = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned)
        };
        let prefix = format!("{}.", table.path);
        let members = self
            .entries
            .iter()
            .filter(|e| e.removal == Some(Removal::Inline))
            .filter(|e| {
                e.path
                    .strip_prefix(&prefix)
                    .is_some_and(|k| !k.contains(['.', '[']))
            });
        if let Some(key) = named("unknown field `") {
            let path = format!("{prefix}{key}");
            return members
                .clone()
                .find(|e| e.path == path)
                .map_or(at, |e| e.key.start);
        }
        let value = named("unknown variant `")
            .map(|v| format!("\"{v}\""))
            .or_else(|| {
                let rest = message.strip_prefix("invalid type: ")?;
                let (_, v) = rest.split_once(' ')?;
                Some(v.rsplit_once(", expected")?.0.trim_matches('`').to_owned())
            });
        match value {
            Some(v) => members
                .clone()
                .find(|e| {
                    self.text
                        .get(e.value.clone())
                        .is_some_and(|t| t.trim() == v)
                })
                .map_or(at, |e| e.value.start),
            None => at,
        }
    }

    /// The innermost entry at byte `at`.
    fn entry_at(&self, at: usize, removable: bool) -> Option<&Entry> {
        self.entries
            .iter()
            .filter(|e| !removable || e.removal.is_some())
            .filter(|e| {
                let (start, end) = (e.key.start.min(e.value.start), e.key.end.max(e.value.end));
                start <= at && at < end.max(start + 1)
            })
            .min_by_key(|e| e.key.end.max(e.value.end) - e.key.start.min(e.value.start))
    }
}

fn walk_table(table: &toml_edit::Table, prefix: &str, out: &mut Vec<Entry>) {
    for (name, item) in table.iter() {
        let path = join(prefix, name);
        let key = table
            .key(name)
            .and_then(toml_edit::Key::span)
            .unwrap_or(0..0);
        walk_item(item, path, key, Removal::Line, out);
    }
}

fn walk_item(
    item: &toml_edit::Item,
    path: String,
    key: Range<usize>,
    removal: Removal,
    out: &mut Vec<Entry>,
) {
    match item {
        toml_edit::Item::Value(v) => walk_value(v, path, key, Some(removal), out),
        toml_edit::Item::Table(t) => {
            let header = t.span().unwrap_or_else(|| key.clone());
            out.push(Entry {
                path: path.clone(),
                key: header.clone(),
                value: header,
                removal: None,
            });
            walk_table(t, &path, out);
        }
        toml_edit::Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let path = format!("{path}[{i}]");
                let header = t.span().unwrap_or_else(|| key.clone());
                out.push(Entry {
                    path: path.clone(),
                    key: header.clone(),
                    value: header,
                    removal: None,
                });
                walk_table(t, &path, out);
            }
        }
        toml_edit::Item::None => {}
    }
}

fn walk_value(
    value: &toml_edit::Value,
    path: String,
    key: Range<usize>,
    removal: Option<Removal>,
    out: &mut Vec<Entry>,
) {
    let span = value.span().unwrap_or_else(|| key.clone());
    out.push(Entry {
        path: path.clone(),
        key,
        value: span,
        removal,
    });
    match value {
        toml_edit::Value::InlineTable(t) => {
            for (name, v) in t.iter() {
                let key = t.key(name).and_then(toml_edit::Key::span).unwrap_or(0..0);
                walk_value(v, join(&path, name), key, Some(Removal::Inline), out);
            }
        }
        toml_edit::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let span = v.span().unwrap_or(0..0);
                walk_value(v, format!("{path}[{i}]"), span, None, out);
            }
        }
        _ => {}
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Line and column (from 1, column in characters) of byte `at` of `text`.
pub fn line_column(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Deserialize `text` as `T`, collecting every schema error. Returns the value when the
/// errors could all be stepped over (so later checks can still run), and the problems.
pub fn deserialize_all<T: DeserializeOwned>(
    text: &str,
    index: &SpanIndex,
) -> (Option<T>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut current = text.to_owned();
    let mut removed: Vec<String> = Vec::new();
    // Each round blanks one key-value out, so the number of entries bounds the rounds.
    for _ in 0..=index.entries.len() {
        let err = match toml::from_str::<T>(&current) {
            Ok(value) => return (Some(value), problems),
            Err(e) => e,
        };
        // Positions are those of the original text: blanking keeps every offset.
        let reparsed = match SpanIndex::new(&current) {
            Ok(i) => i,
            Err(p) => {
                problems.push(p);
                return (None, problems);
            }
        };
        let at = reparsed.refine(err.span().map_or(0, |s| s.start), err.message());
        let path = reparsed
            .entry_at(at, false)
            .map(|e| e.path.clone())
            .unwrap_or_default();
        if let Some(field) = err
            .message()
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            // Missing because it was just blanked out for being wrong: said already.
            if removed.contains(&join(&path, field)) {
                return (None, problems);
            }
        }
        let (line, column) = line_column(text, at);
        problems.push(Problem {
            line,
            column,
            key: path,
            message: explain(err.message()),
        });
        let Some(removable) = reparsed.entry_at(at, true) else {
            return (None, problems);
        };
        if err.message().starts_with("missing field") {
            return (None, problems);
        }
        removed.push(removable.path.clone());
        current = blank(&current, removable);
    }
    (None, problems)
}

/// `text` with `entry` replaced by spaces (newlines kept), and for an inline-table member
/// one of its commas too, so the rest still parses and keeps its positions.
fn blank(text: &str, entry: &Entry) -> String {
    let bytes = text.as_bytes();
    let mut start = entry.key.start.min(entry.value.start);
    let mut end = entry.key.end.max(entry.value.end).min(bytes.len());
    match entry.removal {
        Some(Removal::Line) => {
            start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        }
        Some(Removal::Inline) => {
            let before = text[..start].trim_end();
            if before.ends_with(',') {
                start = before.len() - 1;
            } else {
                let after = &text[end..];
                let trimmed = after.trim_start();
                if trimmed.starts_with(',') {
                    end += after.len() - trimmed.len() + 1;
                }
            }
        }
        None => {}
    }
    let mut out = bytes.to_vec();
    for b in &mut out[start..end] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
    // Only ASCII bytes were written, over whole characters (spans fall on boundaries).
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// serde's message, with a "did you mean" for unknown keys and names.
fn explain(message: &str) -> String {
    let message = message.trim_end();
    for (prefix, what) in [
        ("unknown field `", "unknown key"),
        ("unknown variant `", "unknown value"),
    ] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let Some((name, expected)) = rest.split_once('`') else {
            continue;
        };
        let allowed: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        if allowed.is_empty() {
            return format!("{what} `{name}`: nothing is allowed here");
        }
        let hint = did_you_mean(name, &allowed)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        return format!(
            "{what} `{name}`{hint} (allowed: {})",
            allowed
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    message.to_owned()
}

/// The allowed name closest to `name`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(name: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (strsim::damerau_levenshtein(name, a), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // after the two-byte é
        assert_eq!(line_column(text, 9), (2, 3));
    }

    #[test]
    fn blanking_keeps_positions_and_parses() {
        let text = "[t]\na = 1\nb = { x = 1, y = 2 }\n";
        let index = SpanIndex::new(text).unwrap();
        let y = index.entries.iter().find(|e| e.path == "t.b.y").unwrap();
        let out = blank(text, y);
        assert_eq!(out.len(), text.len());
        assert!(out.parse::<toml::Table>().is_ok(), "{out}");
        let x = index.entries.iter().find(|e| e.path == "t.b.x").unwrap();
        let out = blank(text, x);
        assert!(out.parse::<toml::Table>().is_ok(), "{out}");
        let a = index.entries.iter().find(|e| e.path == "t.a").unwrap();
        let out = blank(text, a);
        assert_eq!(out.lines().count(), text.lines().count());
    }

    #[test]
    fn suggestions_are_close_names_only() {
        assert_eq!(
            did_you_mean("polcy", &["policy", "accuracy_ms"]),
            Some("policy")
        );
        assert_eq!(did_you_mean("zzzzzz", &["policy", "accuracy_ms"]), None);
    }
}
