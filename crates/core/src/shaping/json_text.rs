//! JSON text of template values (`tojson`, the `json` format, a nested value written as text),
//! written straight from minijinja's values: the text serde_json writes for them, without
//! the serde round trip, whose string escaping costs about ten instructions a byte (a 2 KiB
//! password in a `tojson` was the largest single cost of a templated mount). Anything unusual
//! (bytes inside an indented document, a key that is not a string, an invalid value) is left
//! to serde_json, so the text is always the text serde_json would write.

use minijinja::value::{Value, ValueKind};

/// How a document is laid out: serde_json's compact form, or its pretty form indented by the
/// given unit.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Layout<'a> {
    Compact,
    Indented(&'a [u8]),
}

/// The value cannot be JSON (serde_json refused it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotJson;

/// Deeper than this, the text is left to serde_json (no value a secret parses into is).
const MAX_DEPTH: usize = 128;

/// Appends the JSON text of `value` to `out`.
pub(crate) fn write(value: &Value, layout: Layout<'_>, out: &mut Vec<u8>) -> Result<(), NotJson> {
    write_at_most(value, layout, out, usize::MAX)
}

/// [`write`], failing once `out` would grow past `limit` bytes: a template can build a list of
/// a hundred thousand references to one large string, whose text would be far larger than any
/// file. The writer stops within one string's text of the limit.
pub(crate) fn write_at_most(
    value: &Value,
    layout: Layout<'_>,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), NotJson> {
    let start = out.len();
    let mut writer = Writer { out, layout, depth: 0, limit };
    match writer.value(value) {
        Ok(()) => return Ok(()),
        Err(Unusual::TooLarge) => {
            out.truncate(start);
            return Err(NotJson);
        }
        Err(Unusual::Other) => out.truncate(start),
    }
    let mut capped = CappedWriter { out: &mut *out, limit };
    match layout {
        Layout::Compact => serde_json::to_writer(&mut capped, value).map_err(|_| NotJson),
        Layout::Indented(unit) => {
            let formatter = serde_json::ser::PrettyFormatter::with_indent(unit);
            let mut serializer = serde_json::Serializer::with_formatter(&mut capped, formatter);
            serde::Serialize::serialize(value, &mut serializer).map_err(|_| NotJson)
        }
    }
    .inspect_err(|_| out.truncate(start))
}

/// serde_json's output, refused past `limit` bytes.
struct CappedWriter<'w> {
    out: &'w mut Vec<u8>,
    limit: usize,
}

impl std::io::Write for CappedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len().saturating_add(buf.len()) > self.limit {
            return Err(std::io::Error::other("larger than the limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Why this writer stopped: a value it leaves to serde_json, or the limit.
enum Unusual {
    Other,
    TooLarge,
}

struct Writer<'w, 'l> {
    out: &'w mut Vec<u8>,
    layout: Layout<'l>,
    depth: usize,
    limit: usize,
}

impl Writer<'_, '_> {
    fn value(&mut self, value: &Value) -> Result<(), Unusual> {
        if self.out.len() > self.limit
            || value.as_str().is_some_and(|s| self.out.len().saturating_add(s.len()) > self.limit)
        {
            return Err(Unusual::TooLarge);
        }
        match value.kind() {
            ValueKind::Undefined | ValueKind::None => self.out.extend_from_slice(b"null"),
            ValueKind::Bool => self.out.extend_from_slice(if value.is_true() { b"true" } else { b"false" }),
            ValueKind::String => write_string(value.as_str().ok_or(Unusual::Other)?, self.out),
            ValueKind::Map => {
                let pairs = value.as_object().and_then(|o| o.try_iter_pairs()).ok_or(Unusual::Other)?;
                self.open(b'{')?;
                let mut count = 0;
                for (key, item) in pairs {
                    self.next_item(count);
                    write_string(key.as_str().ok_or(Unusual::Other)?, self.out);
                    self.out.extend_from_slice(match self.layout {
                        Layout::Compact => b":",
                        Layout::Indented(_) => b": ",
                    });
                    self.value(&item)?;
                    count += 1;
                }
                self.close(b'}', count);
            }
            ValueKind::Seq | ValueKind::Iterable => {
                let items = value.as_object().and_then(|o| o.try_iter()).ok_or(Unusual::Other)?;
                self.open(b'[')?;
                let mut count = 0;
                for item in items {
                    self.next_item(count);
                    self.value(&item)?;
                    count += 1;
                }
                self.close(b']', count);
            }
            // A number's or a plain object's text is the same in either layout: serde_json's.
            ValueKind::Number | ValueKind::Plain => {
                serde_json::to_writer(&mut *self.out, value).map_err(|_| Unusual::Other)?;
            }
            // Bytes (serde_json writes a list of numbers, laid out its own way), invalid values.
            _ => return Err(Unusual::Other),
        }
        Ok(())
    }

    fn open(&mut self, bracket: u8) -> Result<(), Unusual> {
        if self.depth >= MAX_DEPTH {
            return Err(Unusual::Other);
        }
        self.depth += 1;
        self.out.push(bracket);
        Ok(())
    }

    /// Before the `index`th item of the innermost container.
    fn next_item(&mut self, index: usize) {
        if index > 0 {
            self.out.push(b',');
        }
        if let Layout::Indented(unit) = self.layout {
            self.out.push(b'\n');
            self.indent(unit, self.depth);
        }
    }

    fn close(&mut self, bracket: u8, items: usize) {
        self.depth -= 1;
        if let (Layout::Indented(unit), true) = (self.layout, items > 0) {
            self.out.push(b'\n');
            self.indent(unit, self.depth);
        }
        self.out.push(bracket);
    }

    fn indent(&mut self, unit: &[u8], levels: usize) {
        for _ in 0..levels {
            self.out.extend_from_slice(unit);
        }
    }
}

/// Does JSON need `byte` escaped inside a string? (serde_json escapes exactly these.)
const fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Bytes checked at a time for anything to escape; the check of a whole chunk compiles to a
/// few vector instructions, so a long string without escapes is copied at memcpy speed.
const CHUNK: usize = 32;

/// `text` as a JSON string, quoted and escaped as serde_json does.
pub(crate) fn write_string(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut plain_from = 0;
    let mut at = 0;
    while at < bytes.len() {
        if let Some(chunk) = bytes[at..].first_chunk::<CHUNK>()
            && !chunk.iter().fold(false, |any, &b| any | needs_escape(b))
        {
            at += CHUNK;
            continue;
        }
        let byte = bytes[at];
        if needs_escape(byte) {
            out.extend_from_slice(&bytes[plain_from..at]);
            write_escape(byte, out);
            plain_from = at + 1;
        }
        at += 1;
    }
    out.extend_from_slice(&bytes[plain_from..]);
    out.push(b'"');
}

fn write_escape(byte: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_compact(value: &Value) -> String {
        serde_json::to_string(value).unwrap_or_else(|e| format!("<serde_json refused: {e}>"))
    }

    fn serde_pretty(value: &Value, unit: &[u8]) -> String {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(unit);
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        match serde::Serialize::serialize(value, &mut serializer) {
            Ok(()) => String::from_utf8(out).unwrap_or_else(|_| "<not UTF-8>".to_owned()),
            Err(e) => format!("<serde_json refused: {e}>"),
        }
    }

    fn ours(value: &Value, layout: Layout<'_>) -> String {
        let mut out = Vec::new();
        match write(value, layout, &mut out) {
            Ok(()) => String::from_utf8(out).unwrap_or_else(|_| "<not UTF-8>".to_owned()),
            Err(NotJson) => "<refused>".to_owned(),
        }
    }

    /// Every string with one of each byte that matters, at each place around a chunk border.
    fn tricky_strings() -> Vec<String> {
        let specials = [
            '"', '\\', '\n', '\r', '\t', '\u{8}', '\u{c}', '\u{0}', '\u{1f}', '\u{7f}', 'é', '€', '😀', '/',
            '<',
        ];
        let mut strings = vec![String::new(), "plain".to_owned(), "p".repeat(2048)];
        for special in specials {
            for at in [0, 1, 30, 31, 32, 33, 63, 64, 100] {
                let mut text: String = "a".repeat(at);
                text.push(special);
                text.push_str(&"b".repeat(40));
                text.push(special);
                strings.push(text);
            }
        }
        strings.push((0u8..0x80).map(char::from).collect());
        strings
    }

    #[test]
    fn strings_are_written_exactly_as_serde_json_writes_them() {
        for text in tricky_strings() {
            let value = Value::from(text.as_str());
            assert_eq!(ours(&value, Layout::Compact), serde_compact(&value), "{text:?}");
        }
    }

    fn documents() -> serde_json::Result<Vec<Value>> {
        let parsed = |text: &str| serde_json::from_str::<Value>(text);
        Ok(vec![
            parsed(
                r#"{"username":"u","password":"p\"w\n","port":5432,"ratio":0.5,"big":18446744073709551615,"neg":-3,"on":true,"off":false,"nothing":null}"#,
            )?,
            parsed(r#"{"nested":{"a":[1,2,{"b":[]}],"empty":{},"list":[]},"e":1e300}"#)?,
            parsed(r#"[[], {}, [[1]], "x", {"k": {"k": {"k": "v"}}}]"#)?,
            parsed(r#""just a string""#)?,
            parsed("12")?,
            Value::from(()),
            Value::UNDEFINED,
            Value::from(true),
            Value::from(-1.25f64),
            Value::from(u128::MAX),
            Value::from_iter([Value::from("a"), Value::from(1)]),
            Value::from_pairs([("b", Value::from_bytes(b"\x00\xff".to_vec()))]),
            Value::from_bytes(b"bytes".to_vec()),
            Value::from_pairs([(Value::from(1), Value::from("int key"))]),
        ])
    }

    #[test]
    fn documents_are_written_exactly_as_serde_json_writes_them_in_both_layouts() -> serde_json::Result<()> {
        for value in documents()? {
            assert_eq!(ours(&value, Layout::Compact), serde_compact(&value), "{value:?}");
            for unit in [&b"  "[..], b"    ", b"\t", b""] {
                assert_eq!(ours(&value, Layout::Indented(unit)), serde_pretty(&value, unit), "{value:?}");
            }
        }
        Ok(())
    }

    /// JSON documents of any shape, with any strings.
    fn json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
            r#"[\\"\x00-\x1f a-z]{0,80}"#.prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_parsed_json_is_written_as_serde_json_writes_it(document in json()) {
            let fail = |e: serde_json::Error| proptest::test_runner::TestCaseError::fail(e.to_string());
            let text = serde_json::to_string(&document).map_err(fail)?;
            let value: Value = serde_json::from_str(&text).map_err(fail)?;
            proptest::prop_assert_eq!(ours(&value, Layout::Compact), serde_compact(&value));
            proptest::prop_assert_eq!(ours(&value, Layout::Indented(b"  ")), serde_pretty(&value, b"  "));
        }
    }

    #[test]
    fn what_serde_json_refuses_is_refused_and_nothing_is_left_behind() {
        let value = Value::from_pairs([(Value::from(vec![Value::from(1)]), Value::from("a list as a key"))]);
        assert!(serde_json::to_string(&value).is_err());
        let mut out = b"kept".to_vec();
        assert_eq!(write(&value, Layout::Compact, &mut out), Err(NotJson));
        assert_eq!(out, b"kept");
    }
}
