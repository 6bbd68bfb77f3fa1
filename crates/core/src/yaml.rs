//! Reading SPC object lists the way the Go providers' YAML decoders do: scalars of any YAML
//! type are accepted where a string is expected (`objectVersion: 2` is the string "2").

use serde_norway::Value;

use crate::error::Error;

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
