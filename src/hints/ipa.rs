//! IPA's `device_hints`: hint validation and normalisation (`parse_root_device_hints`,
//! `_normalize_hint_expression`, `_append_operator_to_hints`) and the per-device comparison
//! of `find_devices_by_hints`.

use serde::Serialize;
use serde_json::Value;

use super::pycompat;
use super::spec::{self, Operand};
use crate::inventory::BlockDevice;

/// A hint name IPA accepts, with the type that decides how it is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HintName {
    /// Disk size in GiB (integer hint, compared as a float against bytes / 2^30).
    Size,
    /// Model string.
    Model,
    /// World Wide Name.
    Wwn,
    /// Serial number.
    Serial,
    /// Vendor string.
    Vendor,
    /// WWN with the vendor extension appended.
    WwnWithExtension,
    /// The WWN vendor extension.
    WwnVendorExtension,
    /// Device path as listed, e.g. `/dev/sda` (IPA adds no `/dev/` prefix).
    Name,
    /// Whether the disk is rotational (boolean hint).
    Rotational,
    /// SCSI address `host:channel:target:lun`.
    Hctl,
    /// The `/dev/disk/by-path/...` link.
    ByPath,
    /// Transport (`sata`, `sas`, `nvme`...).
    Tran,
}

impl HintName {
    /// Every hint, in the order IPA's `VALID_ROOT_DEVICE_HINTS` lists them.
    pub const ALL: [HintName; 12] = [
        HintName::Size,
        HintName::Model,
        HintName::Wwn,
        HintName::Serial,
        HintName::Vendor,
        HintName::WwnWithExtension,
        HintName::WwnVendorExtension,
        HintName::Name,
        HintName::Rotational,
        HintName::Hctl,
        HintName::ByPath,
        HintName::Tran,
    ];

    /// The key as written in a hints dictionary.
    pub fn as_str(self) -> &'static str {
        match self {
            HintName::Size => "size",
            HintName::Model => "model",
            HintName::Wwn => "wwn",
            HintName::Serial => "serial",
            HintName::Vendor => "vendor",
            HintName::WwnWithExtension => "wwn_with_extension",
            HintName::WwnVendorExtension => "wwn_vendor_extension",
            HintName::Name => "name",
            HintName::Rotational => "rotational",
            HintName::Hctl => "hctl",
            HintName::ByPath => "by_path",
            HintName::Tran => "tran",
        }
    }

    /// Looks a key up exactly as IPA does (case-sensitive).
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|name| name.as_str() == key)
    }

    /// The device's value for a string hint; `None` for `size` and `rotational`.
    fn device_str(self, dev: &BlockDevice) -> Option<Option<&str>> {
        let value = match self {
            HintName::Size | HintName::Rotational => return None,
            HintName::Name => Some(dev.name.as_str()),
            HintName::Model => dev.model.as_deref(),
            HintName::Wwn => dev.wwn.as_deref(),
            HintName::Serial => dev.serial.as_deref(),
            HintName::Vendor => dev.vendor.as_deref(),
            HintName::WwnWithExtension => dev.wwn_with_extension.as_deref(),
            HintName::WwnVendorExtension => dev.wwn_vendor_extension.as_deref(),
            HintName::Hctl => dev.hctl.as_deref(),
            HintName::ByPath => dev.by_path.as_deref(),
            HintName::Tran => dev.tran.as_deref(),
        };
        Some(value)
    }
}

/// A hint as IPA stores it after `parse_root_device_hints`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum HintValue {
    /// A specs_matcher expression that always carries its operator, e.g. `s== abc%20def`
    /// (string hints: lower-cased and URL-quoted) or `>= 400` (size: kept as written).
    Spec(String),
    /// The `rotational` hint.
    Bool(bool),
}

/// Why a hint expression was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExprError {
    /// Blank after stripping (IPA: `ValueError`).
    Empty,
    /// The grammar cannot parse it (IPA: pyparsing's `ParseException`).
    Unparsable,
}

/// `_extract_hint_operator_and_values`: the operator (empty when none) and the stripped,
/// lower-cased values it separates.
pub(crate) fn extract_operator_and_values(
    expression: &str,
) -> Result<(String, Vec<String>), ExprError> {
    let expression = pycompat::lower(pycompat::strip(expression));
    if expression.is_empty() {
        return Err(ExprError::Empty);
    }
    let tree = spec::parse(&expression).ok_or(ExprError::Unparsable)?;
    if tree.len() <= 1 {
        return Ok((String::new(), vec![expression]));
    }
    let op = tree[0].clone();
    // IPA splits with re.split(op, ...) on every occurrence; no operator holds a regex
    // metacharacter, so a plain split is the same. Empty pieces are dropped before stripping.
    let values = expression
        .split(op.as_str())
        .filter(|piece| !piece.is_empty())
        .map(|piece| pycompat::strip(piece).to_string())
        .collect();
    Ok((op, values))
}

/// `_normalize_hint_expression`: values URL-quoted so that spaces survive the grammar,
/// operators kept: `<or> foo bar <or> baz` becomes `<or> foo%20bar <or> baz`.
pub(crate) fn normalize(expression: &str) -> Result<String, ExprError> {
    let (op, values) = extract_operator_and_values(expression)?;
    let joined = values
        .iter()
        .map(|v| format!(" {} ", pycompat::url_quote(v)))
        .collect::<Vec<_>>()
        .join(&op);
    Ok(pycompat::strip(&format!("{op}{joined}")).to_string())
}

/// `_append_operator_to_hints` for one expression: prefix `default_op` unless the grammar
/// already finds an operator.
fn with_operator(expression: String, default_op: &str) -> Result<String, ExprError> {
    let tree = spec::parse(&expression).ok_or(ExprError::Unparsable)?;
    Ok(if tree.len() > 1 {
        expression
    } else {
        format!("{default_op} {expression}")
    })
}

/// Python's `str()` of a JSON scalar, where IPA relies on it (integers); `None` for values
/// whose `str()` can never pass the integer/boolean checks (floats, null, lists, objects).
fn integer_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// One validated hint, or the message IPA would raise (without the field name).
pub(crate) fn compile(name: HintName, value: &Value) -> Result<HintValue, String> {
    let shown = value.to_string();
    match name {
        HintName::Rotational => bool_from_string(value).map(HintValue::Bool).ok_or_else(|| {
            format!(
                "root device hint \"rotational\" is not a Boolean value: {shown} \
                 (valid: true/false, yes/no, on/off, y/n, t/f, 1/0)"
            )
        }),
        HintName::Size => {
            let not_int =
                || format!("root device hint \"size\" is not an integer value (GiB): {shown}");
            let raw = integer_text(value).ok_or_else(not_int)?;
            let (_, values) =
                extract_operator_and_values(&raw).map_err(|e| expr_problem(name, e, &shown))?;
            for v in &values {
                match pycompat::int_is_positive(v) {
                    None => return Err(not_int()),
                    Some(false) => {
                        return Err(format!(
                            "root device hint \"size\" should be a positive integer (GiB): {shown}"
                        ))
                    }
                    Some(true) => {}
                }
            }
            // IPA keeps the size expression as written (neither stripped nor lower-cased).
            with_operator(raw, "==")
                .map(HintValue::Spec)
                .map_err(|e| expr_problem(name, e, &shown))
        }
        _ => {
            let Value::String(expression) = value else {
                return Err(format!(
                    "root device hint \"{}\" is not a string value: {shown}",
                    name.as_str()
                ));
            };
            normalize(expression)
                .and_then(|normalized| with_operator(normalized, "s=="))
                .map(HintValue::Spec)
                .map_err(|e| expr_problem(name, e, &shown))
        }
    }
}

fn expr_problem(name: HintName, error: ExprError, shown: &str) -> String {
    match error {
        ExprError::Empty => format!("root device hint \"{}\" expression is empty", name.as_str()),
        ExprError::Unparsable => format!(
            "root device hint \"{}\" is not a valid expression: {shown} \
             (an operator such as s==, <in>, >= must be followed by a value)",
            name.as_str()
        ),
    }
}

/// `strutils.bool_from_string(value, strict=True)`; `None` where it raises.
pub(crate) fn bool_from_string(value: &Value) -> Option<bool> {
    let text = match value {
        Value::Bool(b) => return Some(*b),
        other => integer_text(other)?,
    };
    match pycompat::lower(pycompat::strip(&text)).as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// The outcome of comparing one hint with one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Match,
    NoMatch,
    /// IPA would raise here; the reason, for the operator.
    Incomparable(String),
}

/// The body of `find_devices_by_hints`' inner loop for one hint.
///
/// Unlike IPA, an attribute the device does not have (`None`) never matches: IPA turns it
/// into the string `"none"`, which `s!= X` or `<in> on` would then select.
pub(crate) fn compare(name: HintName, hint: &HintValue, dev: &BlockDevice) -> Outcome {
    let (value, outcome) = match (hint, name.device_str(dev)) {
        (HintValue::Bool(want), _) => return bool_outcome(*want == dev.rotational),
        (HintValue::Spec(spec), None) => {
            // IPA divides with Python's true division; scaling by a power of two is exact,
            // so this is the same float.
            let gib = dev.size as f64 / (1u64 << 30) as f64;
            (format!("{gib} GiB"), spec::matches(Operand::Num(gib), spec))
        }
        (HintValue::Spec(_), Some(None)) => return Outcome::NoMatch,
        (HintValue::Spec(spec), Some(Some(raw))) => match normalize(raw) {
            Ok(value) => (
                format!("{raw:?}"),
                spec::matches(Operand::Str(&value), spec),
            ),
            // IPA skips a device whose attribute is blank...
            Err(ExprError::Empty) => return Outcome::NoMatch,
            // ...but lets the grammar's exception escape for one like "==".
            Err(ExprError::Unparsable) => {
                return Outcome::Incomparable(format!(
                    "its {} {raw:?} cannot be read as a hint value",
                    name.as_str()
                ))
            }
        },
    };
    match outcome {
        Ok(matched) => bool_outcome(matched),
        Err(spec::Incomparable(reason)) => {
            Outcome::Incomparable(format!("its {} is {value}: {reason}", name.as_str()))
        }
    }
}

fn bool_outcome(matched: bool) -> Outcome {
    if matched {
        Outcome::Match
    } else {
        Outcome::NoMatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalize_quotes_values_and_keeps_operators() {
        assert_eq!(
            normalize("<or> foo bar <or> bar"),
            Ok("<or> foo%20bar <or> bar".into())
        );
        assert_eq!(normalize("  QEMU HARDDISK "), Ok("qemu%20harddisk".into()));
        assert_eq!(normalize("s== ABC"), Ok("s== abc".into()));
        assert_eq!(normalize("s==ABC"), Ok("s== abc".into()));
        assert_eq!(normalize("<in> a:b"), Ok("<in> a%3Ab".into()));
        assert_eq!(normalize("   "), Err(ExprError::Empty));
        assert_eq!(normalize("s=="), Err(ExprError::Unparsable));
    }

    #[test]
    fn extract_splits_on_every_operator_occurrence() {
        let (op, values) = extract_operator_and_values("s== a s== b").unwrap_or_default();
        assert_eq!(op, "s==");
        assert_eq!(values, ["a", "b"]);
        let (op, values) = extract_operator_and_values("<or> a <or>  <or> b").unwrap_or_default();
        assert_eq!(op, "<or>");
        assert_eq!(values, ["a", "", "b"]);
    }

    #[test]
    fn compile_adds_default_operators() {
        assert_eq!(
            compile(HintName::Serial, &json!("ABC")),
            Ok(HintValue::Spec("s== abc".into()))
        );
        assert_eq!(
            compile(HintName::Model, &json!("<in> Samsung SSD")),
            Ok(HintValue::Spec("<in> samsung%20ssd".into()))
        );
        assert_eq!(
            compile(HintName::Size, &json!(447)),
            Ok(HintValue::Spec("== 447".into()))
        );
        assert_eq!(
            compile(HintName::Size, &json!(" >= 400 ")),
            Ok(HintValue::Spec(" >= 400 ".into()))
        );
        assert_eq!(
            compile(HintName::Size, &json!("<or> 1 <or> 2")),
            Ok(HintValue::Spec("<or> 1 <or> 2".into()))
        );
        // Validation parses the lower-cased text, matching parses it as written.
        assert_eq!(
            compile(HintName::Size, &json!("S== 100")),
            Ok(HintValue::Spec("== S== 100".into()))
        );
    }

    #[test]
    fn bools_follow_strutils_strict() {
        for (value, want) in [
            (json!(true), Some(true)),
            (json!("yes"), Some(true)),
            (json!(" ON "), Some(true)),
            (json!("t"), Some(true)),
            (json!(1), Some(true)),
            (json!("0"), Some(false)),
            (json!("No"), Some(false)),
            (json!("off"), Some(false)),
            (json!(false), Some(false)),
            (json!(2), None),
            (json!(1.0), None),
            (json!(null), None),
            (json!("maybe"), None),
            (json!([true]), None),
        ] {
            assert_eq!(bool_from_string(&value), want, "{value}");
        }
    }
}
