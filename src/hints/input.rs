//! The seed's extensions to IPA's hints: the simplified `serial=A [B]` string and RAID1 pairs.

use serde_json::{Map, Value};

use super::{pycompat, spec};

const SIMPLIFIED_FORMS: &str = "expected serial=VALUE [VALUE2] or wwn=VALUE [VALUE2]";

/// The keys whose two values ask for a RAID1 pair.
const PAIR_KEYS: [&str; 2] = ["serial", "wwn"];

/// `serial=A [B]` / `wwn=X [Y]` as the dictionary the seed's `parse_prefixed_hint_string`
/// makes of it: `{"serial": "s== A [B]"}`. The name is trimmed and case-insensitive.
pub(crate) fn simplified_to_map(text: &str) -> Result<Map<String, Value>, String> {
    let text = pycompat::strip(text);
    let Some((name, values)) = text.split_once('=') else {
        return Err(format!(
            "root device hint {text:?} has no \"=\"; {SIMPLIFIED_FORMS}"
        ));
    };
    let name = pycompat::lower(pycompat::strip(name));
    if !PAIR_KEYS.contains(&name.as_str()) {
        return Err(format!(
            "root device hint type {name:?} is not supported in the short form; {SIMPLIFIED_FORMS} \
             (other hints need Ironic's root_device dictionary)"
        ));
    }
    let values = pycompat::strip(values);
    if values.is_empty() {
        return Err(format!(
            "root device hint {name} has no value; {SIMPLIFIED_FORMS}"
        ));
    }
    let mut map = Map::new();
    map.insert(name, Value::String(format!("s== {values}")));
    Ok(map)
}

/// The two values of a RAID1 pair: exactly two whitespace-separated values, either plain or
/// after `s==`. Any other operator keeps IPA's meaning.
fn pair_values(expression: &str) -> Option<[String; 2]> {
    let stripped = pycompat::strip(expression);
    let tree = spec::parse(&pycompat::lower(stripped))?;
    let values = match tree.first().map(String::as_str) {
        _ if tree.len() <= 1 => stripped,
        // Lower-casing kept the operator at the start: the text begins with `s==` or `S==`.
        Some("s==") => stripped.get(3..)?,
        _ => return None,
    };
    let parts: Vec<&str> = pycompat::split_whitespace(values).collect();
    match parts.as_slice() {
        [primary, secondary] => Some([primary.to_string(), secondary.to_string()]),
        _ => None,
    }
}

/// One hint dictionary per disk to find: the input itself, or for a RAID1 pair two copies
/// whose `serial`/`wwn` pairs are split between them (the other hints apply to both).
pub(crate) fn raid_slots(map: &Map<String, Value>) -> Vec<Map<String, Value>> {
    let pairs: Vec<(&str, [String; 2])> = PAIR_KEYS
        .iter()
        .filter_map(|key| match map.get(*key) {
            Some(Value::String(expression)) => pair_values(expression).map(|pair| (*key, pair)),
            _ => None,
        })
        .collect();
    if pairs.is_empty() {
        return vec![map.clone()];
    }
    (0..2)
        .map(|slot| {
            let mut slot_map = map.clone();
            for (key, pair) in &pairs {
                slot_map.insert(
                    key.to_string(),
                    Value::String(format!("s== {}", pair[slot])),
                );
            }
            slot_map
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn simplified_becomes_string_equality() {
        assert_eq!(
            simplified_to_map("serial=ABC123"),
            Ok(map(json!({"serial": "s== ABC123"})))
        );
        assert_eq!(
            simplified_to_map("  WWN = 0x5000c500a1b2c3d4 0x5000c500a1b2c3d5 "),
            Ok(map(
                json!({"wwn": "s== 0x5000c500a1b2c3d4 0x5000c500a1b2c3d5"})
            ))
        );
        assert_eq!(
            simplified_to_map("serial=a=b"),
            Ok(map(json!({"serial": "s== a=b"})))
        );
    }

    #[test]
    fn simplified_errors() {
        for (text, needle) in [
            ("", "no \"=\""),
            ("serial", "no \"=\""),
            ("model=QEMU", "\"model\" is not supported"),
            ("serial=", "serial has no value"),
            ("wwn=   ", "wwn has no value"),
        ] {
            let err = simplified_to_map(text).err().unwrap_or_default();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(err.contains("serial=VALUE"), "{text:?}: {err}");
        }
    }

    #[test]
    fn pairs_are_two_plain_or_s_eq_values() {
        let pair = |a: &str, b: &str| Some([a.to_string(), b.to_string()]);
        assert_eq!(pair_values("A B"), pair("A", "B"));
        assert_eq!(pair_values(" s== A  B "), pair("A", "B"));
        assert_eq!(pair_values("S==A B"), pair("A", "B"));
        assert_eq!(pair_values("A"), None);
        assert_eq!(pair_values("s== A"), None);
        assert_eq!(pair_values("A B C"), None);
        assert_eq!(pair_values("<in> A B"), None);
        assert_eq!(pair_values("s!= A B"), None);
        assert_eq!(pair_values("<or> A <or> B"), None);
        assert_eq!(pair_values("s== A s== B"), None);
    }

    #[test]
    fn slots_split_pairs_and_share_other_hints() {
        let input = map(json!({"serial": "A B", "wwn": "s== X Y", "size": ">= 400", "model": "m"}));
        let slots = raid_slots(&input);
        assert_eq!(
            slots,
            [
                map(json!({"serial": "s== A", "wwn": "s== X", "size": ">= 400", "model": "m"})),
                map(json!({"serial": "s== B", "wwn": "s== Y", "size": ">= 400", "model": "m"})),
            ]
        );
        let single = map(json!({"serial": "A", "wwn": "X Y"}));
        assert_eq!(
            raid_slots(&single),
            [
                map(json!({"serial": "A", "wwn": "s== X"})),
                map(json!({"serial": "A", "wwn": "s== Y"})),
            ]
        );
        let plain = map(json!({"serial": "<in> A B"}));
        assert_eq!(raid_slots(&plain), std::slice::from_ref(&plain));
    }
}
