//! Reading SPC object lists the way the Go providers' YAML decoders do: scalars of any YAML
//! type are accepted where a string is expected (`objectVersion: 2` is the string "2").

use std::cell::Cell;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde_norway::Value;
use serde_norway::value::{Tag, TaggedValue};

use crate::error::Error;

/// Reads a YAML document an SPC author (or a cloud secret) wrote, as `serde_norway::from_str`
/// does, with what its aliases may expand to bounded: a few kilobytes of anchors referring to
/// anchors (`b: [*a, *a, …]`, `c: [*b, *b, …]`) expand to hundreds of millions of values, which
/// serde_norway's own limit (a hundred alias jumps per event) lets through, and which would take
/// the node's provider into the OOM killer. The document may hold at most twice as many values
/// as its text has bytes, plus ten thousand (a value takes at least a byte to write, and a string
/// counts one per 64 bytes), so a document without aliases always fits.
pub fn parse(text: &str) -> Result<Value, serde_norway::Error> {
    let budget = Cell::new(values_allowed(text));
    Bounded { budget: &budget }.deserialize(serde_norway::Deserializer::from_str(text))
}

/// [`parse`] for each document of a text of several (`---`), the bound over the whole text.
pub fn parse_each(text: &str) -> impl Iterator<Item = Result<Value, serde_norway::Error>> + '_ {
    let budget = Cell::new(values_allowed(text));
    serde_norway::Deserializer::from_str(text)
        .map(move |document| Bounded { budget: &budget }.deserialize(document))
}

fn values_allowed(text: &str) -> usize {
    text.len().saturating_mul(2).saturating_add(10_000)
}

/// Why [`parse`] refused a document whose aliases expand too far.
pub const EXPANDS_TOO_FAR: &str =
    "the YAML expands (through its anchors and aliases) to far more values than it is long";

/// Builds a [`Value`] as serde_norway's own visitor does, spending the budget on every value.
#[derive(Clone, Copy)]
struct Bounded<'b> {
    budget: &'b Cell<usize>,
}

impl Bounded<'_> {
    fn spend<E: de::Error>(self, values: usize) -> Result<(), E> {
        match self.budget.get().checked_sub(values) {
            Some(left) => {
                self.budget.set(left);
                Ok(())
            }
            None => Err(E::custom(EXPANDS_TOO_FAR)),
        }
    }

    fn string<E: de::Error>(self, text: String) -> Result<Value, E> {
        self.spend(1 + text.len() / 64)?;
        Ok(Value::String(text))
    }
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        self.spend(1)?;
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        self.spend(1)?;
        Ok(Value::Number(i.into()))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        self.spend(1)?;
        Ok(Value::Number(u.into()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        self.spend(1)?;
        Ok(Value::Number(f.into()))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        self.string(s.to_owned())
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        self.string(s)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.spend(1)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        self.spend(1)?;
        let mut sequence = Vec::new();
        while let Some(item) = items.next_element_seed(self)? {
            sequence.push(item);
        }
        Ok(Value::Sequence(sequence))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        self.spend(1)?;
        let mut mapping = serde_norway::Mapping::new();
        while let Some(key) = entries.next_key_seed(self)? {
            if mapping.contains_key(&key) {
                // serde_norway's words for a key given twice.
                let which = match &key {
                    Value::Null => "with null key".to_owned(),
                    Value::Bool(b) => format!("with key `{b}`"),
                    Value::Number(n) => format!("with key {n}"),
                    Value::String(s) => format!("with key {s:?}"),
                    Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => "in YAML map".to_owned(),
                };
                return Err(de::Error::custom(format!("duplicate entry {which}")));
            }
            let value = entries.next_value_seed(self)?;
            mapping.insert(key, value);
        }
        Ok(Value::Mapping(mapping))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        self.spend(1)?;
        let (tag, contents) = data.variant::<String>()?;
        if tag.is_empty() {
            return Err(de::Error::custom("empty YAML tag is not allowed"));
        }
        let value = contents.newtype_variant_seed(self)?;
        Ok(Value::Tagged(Box::new(TaggedValue { tag: Tag::new(tag), value })))
    }
}

/// The value of `key` in a YAML mapping as a string. `Ok(None)` when absent or null; an error
/// naming the field when it is a list or mapping.
pub fn scalar(map: &Value, key: &str) -> Result<Option<String>, Error> {
    scalar_value(map.get(key), key)
}

/// A value read as a string (see [`scalar`]); `key` names it in the error.
pub fn scalar_value(value: Option<&Value>, key: &str) -> Result<Option<String>, Error> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(Error::invalid_config(format!("{key} must be a string")).with_field(key)),
    }
}

/// Like [`scalar`], with blank treated as absent (no trimming: Go's decoder keeps spaces).
pub fn non_empty(map: &Value, key: &str) -> Result<Option<String>, Error> {
    non_empty_value(map.get(key), key)
}

/// A value read as a string, blank treated as absent, not trimmed.
pub fn non_empty_value(value: Option<&Value>, key: &str) -> Result<Option<String>, Error> {
    Ok(scalar_value(value, key)?.filter(|s| !s.is_empty()))
}

/// A value read as a string with whitespace trimmed, blank treated as absent.
pub fn trimmed_value(value: Option<&Value>, key: &str) -> Result<Option<String>, Error> {
    Ok(scalar_value(value, key)?.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_read_as_serde_norway_reads_them() -> Result<(), Box<dyn std::error::Error>> {
        let documents = [
            "- objectName: a\n  objectType: secretsmanager\n  objectVersion: 2\n  flag: true\n  n: ~\n",
            "a: &x [1, 2.5, -3, \"s\"]\nb: *x\nc: !custom {k: v}\nd: {}\ne: []\n",
            "'quoted': |\n  block\n  text\nplain: 18446744073709551615\n",
            "",
        ];
        for text in documents {
            let ours = parse(text)?;
            let theirs: Value = serde_norway::from_str(text)?;
            assert_eq!(ours, theirs, "{text}");
        }
        for broken in ["a: 1\na: 2", "[1, 2", "!'' x", "key: [unclosed"] {
            let ours = parse(broken).err().map(|e| e.to_string());
            let theirs = serde_norway::from_str::<Value>(broken).err().map(|e| e.to_string());
            assert_eq!(ours.is_some(), theirs.is_some(), "{broken}: {ours:?} / {theirs:?}");
        }
        let twice = parse("a: 1\na: 2").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(twice.contains("duplicate entry with key \"a\""), "{twice}");
        Ok(())
    }

    /// About 5 KB of anchors that expand to 10^8 values (gigabytes): refused, quickly, with
    /// little memory.
    #[test]
    fn aliases_cannot_expand_a_document_past_its_length() {
        let a = vec!["0"; 1000].join(",");
        let b = vec!["*a"; 1000].join(",");
        let c = vec!["*b"; 100].join(",");
        let bomb = format!("a: &a [{a}]\nb: &b [{b}]\nc: [{c}]\n");
        assert!(bomb.len() < 8_000);
        let started = std::time::Instant::now();
        let error = parse(&bomb).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("far more values than it is long"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        // A few aliases, as people use them, are fine.
        let fine = "defaults: &d {objectType: secretsmanager}\nobjects:\n  - *d\n  - *d\n";
        assert!(parse(fine).is_ok());
    }

    #[test]
    fn scalars_of_any_type_read_as_strings() -> Result<(), Box<dyn std::error::Error>> {
        let map: Value = serde_norway::from_str("a: x\nb: 2\nc: true\nd: null\ne: [1]\nf: ' y '\ng: ''")?;
        assert_eq!(scalar(&map, "a")?, Some("x".to_owned()));
        assert_eq!(scalar(&map, "b")?, Some("2".to_owned()));
        assert_eq!(scalar(&map, "c")?, Some("true".to_owned()));
        assert_eq!(scalar(&map, "d")?, None);
        assert_eq!(scalar(&map, "missing")?, None);
        assert_eq!(scalar(&map, "e").err().and_then(|e| e.field().map(str::to_owned)), Some("e".to_owned()));
        assert_eq!(trimmed_value(map.get("f"), "f")?, Some("y".to_owned()));
        assert_eq!(trimmed_value(map.get("g"), "g")?, None);
        assert_eq!(non_empty(&map, "f")?, Some(" y ".to_owned()));
        Ok(())
    }
}
