//! Reading fields of JSON orders (node documents, configdrive files, network_data) with the
//! path of each field, so that a wrong value is one line naming the field and what it must be.

use crate::bounded::{too_many_values, MAX_JSON_VALUES};
use crate::error::OrderError;
use serde_json::{Map, Value};

/// A dotted field path, e.g. `network_data.links[2].ethernet_mac_address`.
#[derive(Debug, Clone)]
pub struct FieldPath(String);

impl FieldPath {
    /// The path of a document or of one top-level field.
    pub fn new(root: &str) -> Self {
        Self(root.to_string())
    }

    /// The path of `key` in the object at this path.
    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}.{key}", self.0))
    }

    /// The path of item `i` of the list at this path.
    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A JSON type with its article, e.g. `a string`, for "must be" messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A short, safe description of a JSON value for error messages: its type and, for scalars,
/// the value itself (callers never pass secrets here).
pub fn describe(value: &Value) -> String {
    const LIMIT: usize = 60;
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => {
            let shown: String = s.chars().take(LIMIT).collect();
            let more = if s.chars().count() > LIMIT { "…" } else { "" };
            format!("string \"{shown}{more}\"")
        }
        other => kind_of(other).into(),
    }
}

/// A trimmed, non-empty string; absent, null and blank are `None`; any other type is an error
/// on `field`.
pub fn optional_string(value: Option<&Value>, field: &str) -> Result<Option<String>, OrderError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(OrderError::new(
            field,
            format!(
                "{} is not a string; {field} must be a string",
                describe(other)
            ),
        )),
    }
}

/// An object; absent and null are empty; any other type is an error on `field`, which says
/// that `name` must be an object.
pub fn optional_object(
    value: Option<&Value>,
    field: &str,
    name: &str,
) -> Result<Map<String, Value>, OrderError> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(other) => Err(not_an_object(other, field, name)),
    }
}

/// The error for a value that should have been an object.
pub fn not_an_object(value: &Value, field: &str, name: &str) -> OrderError {
    OrderError::new(
        field,
        format!(
            "{} is not a JSON object; {name} must be an object",
            describe(value)
        ),
    )
}

/// A JSON document that must be an object: invalid JSON and other types are errors on
/// `field`, which say that `name` must be a JSON object.
pub fn parse_object(
    bytes: &[u8],
    field: &str,
    name: &str,
) -> Result<Map<String, Value>, OrderError> {
    check_value_count(bytes, field)?;
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(not_an_object(&other, field, name)),
        Err(err) => Err(OrderError::new(
            field,
            format!("is not valid JSON ({err}); {name} must be a JSON object"),
        )),
    }
}

/// Refuses a document of more than [`MAX_JSON_VALUES`] values before it is parsed, so that
/// its memory stays near its size.
pub fn check_value_count(bytes: &[u8], field: &str) -> Result<(), OrderError> {
    if too_many_values(bytes) {
        return Err(OrderError::new(
            field,
            format!("holds more than {MAX_JSON_VALUES} JSON values; orders hold some hundreds"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_of_too_many_values_are_refused() {
        let many = format!("[{}0]", "0,".repeat(MAX_JSON_VALUES));
        let err = parse_object(many.as_bytes(), "meta", "meta_data").unwrap_err();
        assert_eq!(err.field, "meta");
        assert!(
            err.problem.contains("more than 100000 JSON values"),
            "{err}"
        );
        let fine = format!("{{\"a\":[{}0]}}", "0,".repeat(1000));
        assert!(parse_object(fine.as_bytes(), "meta", "meta_data").is_ok());
    }

    #[test]
    fn errors_name_the_field_and_what_it_must_be() {
        assert_eq!(
            optional_string(Some(&json!("  x ")), "uuid").unwrap(),
            Some("x".into())
        );
        assert_eq!(optional_string(Some(&json!(" ")), "uuid").unwrap(), None);
        let err = optional_string(Some(&json!(7)), "uuid").unwrap_err();
        assert_eq!(err.field, "uuid");
        assert_eq!(
            err.problem,
            "number 7 is not a string; uuid must be a string"
        );
        let err = optional_object(Some(&json!([1])), "x.meta_data", "meta_data").unwrap_err();
        assert_eq!(
            err.problem,
            "a list is not a JSON object; meta_data must be an object"
        );
        let err = parse_object(b"{", "drive:meta_data.json", "meta_data").unwrap_err();
        assert!(
            err.problem.starts_with("is not valid JSON ("),
            "{}",
            err.problem
        );
        assert!(err.problem.ends_with("meta_data must be a JSON object"));
        let path = FieldPath::new("network_data").key("links").index(2);
        assert_eq!(path.to_string(), "network_data.links[2]");
        assert_eq!(describe(&json!("a".repeat(70))).chars().count(), 70);
    }
}
