//! Redaction of secret-looking meta_data keys for every printed form (Debug, Serialize, log).

use super::secret::REDACTED;
use serde::Serializer;
use serde_json::{Map, Value};

/// Key fragments that mark a value as secret (compared in lower case): `admin_pass`,
/// `password`, `*token*`, `*secret*`, credentials and private keys.
const SECRET_FRAGMENTS: &[&str] = &["pass", "token", "secret", "credential", "private"];

/// True when a meta_data key looks like it holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_FRAGMENTS
        .iter()
        .any(|fragment| key.contains(fragment))
}

/// A copy of `map` where every value under a secret-looking key (at any depth) is replaced by
/// `<redacted>`.
pub fn redact_map(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .map(|(key, value)| {
            let value = if is_secret_key(key) {
                Value::String(REDACTED.to_string())
            } else {
                redact_value(value)
            };
            (key.clone(), value)
        })
        .collect()
}

fn redact_value(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(redact_map(map)),
        Value::Array(items) => Value::Array(items.iter().map(redact_value).collect()),
        other => other.clone(),
    }
}

/// `serialize_with` helper: serialises a meta_data map with secrets redacted.
pub fn serialize_redacted_map<S: Serializer>(
    map: &Map<String, Value>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(redact_map(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys() {
        for key in [
            "admin_pass",
            "password",
            "Root_Password",
            "api_token",
            "TOKEN",
            "client_secret",
            "registry_credentials",
            "ssh_private_key",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["uuid", "hostname", "public_keys", "oci_image", "name"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn redacts_at_any_depth() {
        let map = json!({
            "admin_pass": "p1",
            "meta": {"db_password": "p2", "role": "web"},
            "list": [{"token": "p3"}],
            "public_keys": {"k": "ssh-ed25519 AAAA"}
        });
        let redacted = Value::Object(redact_map(map.as_object().unwrap()));
        let text = redacted.to_string();
        for secret in ["p1", "p2", "p3"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(redacted["meta"]["role"], "web");
        assert_eq!(redacted["public_keys"]["k"], "ssh-ed25519 AAAA");
        assert_eq!(redacted["admin_pass"], REDACTED);
    }
}
