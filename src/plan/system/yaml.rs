//! YAML text that reads back the same under YAML 1.1 (PyYAML, which cloud-init uses) and 1.2.
//!
//! serde_yaml writes YAML 1.2 plain scalars: `52:54:00:12:34:56` or `on` stay unquoted, and
//! PyYAML reads the first as a base-60 integer and the second as `true`. A QEMU MAC address
//! would then match no NIC. So every string here is double-quoted (JSON escaping is a subset
//! of YAML's), keys are quoted unless plainly safe, and floats always carry a dot.

use serde::Serialize;
use serde_yaml::{Mapping, Value};
use std::fmt::Write;

/// Renders any serialisable value (struct fields and map entries keep their order).
pub fn to_yaml<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_yaml::Error> {
    Ok(value_to_yaml(&serde_yaml::to_value(value)?))
}

/// Renders `value` as block-style YAML ending with a newline.
pub fn value_to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match untag(value) {
        Value::Mapping(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Sequence(items) if !items.is_empty() => write_list(&mut out, items, 0),
        scalar => {
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
    out
}

/// Tags (`!Name`) only come from enums serialised externally tagged; the value is what counts.
fn untag(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => untag(&tagged.value),
        other => other,
    }
}

fn write_map(out: &mut String, map: &Mapping, indent: usize) {
    for (i, (key, value)) in map.iter().enumerate() {
        // The first key of a list item shares the `- ` line.
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        match untag(key) {
            Value::String(k) => out.push_str(&key_text(k)),
            other => out.push_str(&scalar_text(other)),
        }
        out.push(':');
        write_value_after_key(out, value, indent);
    }
}

fn write_list(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push_str("- ");
        match untag(item) {
            Value::Mapping(map) if !map.is_empty() => write_map(out, map, indent + 2),
            Value::Sequence(inner) if !inner.is_empty() => {
                out.push('\n');
                write_list(out, inner, indent + 2);
            }
            scalar => {
                out.push_str(&scalar_text(scalar));
                out.push('\n');
            }
        }
    }
}

fn write_value_after_key(out: &mut String, value: &Value, indent: usize) {
    match untag(value) {
        Value::Mapping(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2);
        }
        Value::Sequence(items) if !items.is_empty() => {
            out.push('\n');
            write_list(out, items, indent);
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn scalar_text(value: &Value) -> String {
    match untag(value) {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_f64() => n.as_f64().map_or_else(|| n.to_string(), float_text),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quoted(s),
        Value::Sequence(_) => "[]".into(),
        Value::Mapping(_) | Value::Tagged(_) => "{}".into(),
    }
}

/// A float YAML 1.1 also reads as a float: it needs a `.` and a signed exponent.
fn float_text(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            ".nan".into()
        } else if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    let plain = f.to_string();
    if plain.contains('.') && plain.len() <= 20 {
        return plain;
    }
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_string()
    } else {
        format!("{mantissa}.0")
    };
    let exponent = if exponent.starts_with('-') {
        exponent.to_string()
    } else {
        format!("+{exponent}")
    };
    format!("{mantissa}e{exponent}")
}

fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Control characters, and the line separators YAML 1.1 treats as breaks.
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' || c == '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Words YAML 1.1 reads as booleans or null when plain.
const RESERVED_WORDS: &[&str] = &[
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
];

fn key_text(key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !RESERVED_WORDS.contains(&key.to_ascii_lowercase().as_str());
    if plain {
        key.to_string()
    } else {
        quoted(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(value: &serde_json::Value) -> String {
        to_yaml(value).expect("serialisable")
    }

    #[test]
    fn strings_are_quoted_so_yaml_1_1_keeps_them_strings() {
        let value = json!({
            "mac": "52:54:00:12:34:56",
            "flag": "on",
            "n": "012",
            "on": 1,
            "2": "x",
            "tab\tkey": "line\nbreak \"q\" \\ \u{7}",
        });
        let text = render(&value);
        assert_eq!(
            text,
            "\"2\": \"x\"\nflag: \"on\"\nmac: \"52:54:00:12:34:56\"\n\"n\": \"012\"\n\"on\": 1\n\
             \"tab\\tkey\": \"line\\nbreak \\\"q\\\" \\\\ \\u0007\"\n"
        );
        let back: serde_json::Value = serde_yaml::from_str(&text).expect("parses");
        assert_eq!(back, value);
    }

    #[test]
    fn nested_lists_and_maps_use_block_style() {
        let value = json!({
            "version": 1,
            "config": [
                {"type": "physical", "subnets": [{"type": "dhcp4"}], "empty": []},
                {"type": "nameserver", "address": ["a", "b"]},
                [1, [2.5, true]],
                {}
            ],
            "params": {"inner": {"x": null}}
        });
        let text = render(&value);
        assert_eq!(
            text,
            "config:\n\
             - empty: []\n  subnets:\n  - type: \"dhcp4\"\n  type: \"physical\"\n\
             - address:\n  - \"a\"\n  - \"b\"\n  type: \"nameserver\"\n\
             - \n  - 1\n  - \n    - 2.5\n    - true\n\
             - {}\n\
             params:\n  inner:\n    x: null\nversion: 1\n"
        );
        let back: serde_json::Value = serde_yaml::from_str(&text).expect("parses");
        assert_eq!(back, value);
    }

    #[test]
    fn floats_always_have_a_dot_and_a_signed_exponent() {
        assert_eq!(float_text(1.5), "1.5");
        assert_eq!(float_text(1e21), "1.0e+21");
        assert_eq!(float_text(2.5e-30), "2.5e-30");
        assert_eq!(float_text(f64::INFINITY), ".inf");
    }

    #[test]
    fn struct_fields_keep_their_declared_order() {
        #[derive(Serialize)]
        struct Entry {
            zeta: u8,
            alpha: &'static str,
        }
        assert_eq!(
            to_yaml(&Entry {
                zeta: 1,
                alpha: "a"
            })
            .expect("serialisable"),
            "zeta: 1\nalpha: \"a\"\n"
        );
    }

    #[test]
    fn top_level_scalars_and_empties() {
        assert_eq!(render(&json!({})), "{}\n");
        assert_eq!(render(&json!("x")), "\"x\"\n");
    }
}
