//! The orders digest: what the deployment marker records, so that a ramdisk booted again can
//! tell the same orders from others, and what a missing instance id is derived from.
//!
//! It is versioned and computed over a canonical document (keys sorted at every level, no
//! white space), so that it changes when the orders change and only then, not when another
//! ocimetal release prints them differently.

use super::Orders;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The prefix of the current orders digest format.
pub const ORDERS_HASH_PREFIX: &str = "ocimetal-orders/2:sha256:";

impl Orders {
    /// A digest of the orders that shape the result (node, image, hints, wipe mode, hostname,
    /// meta_data, network_data, user_data, SSH server and keys, console, kernel arguments):
    /// equal digests install the same system. Secrets enter only through their own digest.
    pub fn digest(&self) -> String {
        let user_data = self.user_data.as_ref().map(|u| u.expose()).unwrap_or(&[]);
        let document = json!({
            "node_uuid": self.node_uuid,
            "image": self.image.value.trim(),
            "root_device_hints": self.root_device_hints.as_ref().map(|h| json!(h.value)),
            "disk_wipe_mode": self.wipe_mode.as_ref().map(|w| json!(w.value)),
            "hostname": self.hostname.as_ref().map(|h| h.value.clone()),
            "meta_data": self.meta_data,
            "network_data": self.network_data,
            "user_data_sha256": hex::encode(Sha256::digest(user_data)),
            "ssh_server": self.ssh_server,
            "ssh_keys": self.ssh_keys,
            "console": self.console,
            "kernel_args": self.kernel_args,
        });
        let mut text = String::new();
        write_canonical(&document, &mut text);
        format!(
            "{ORDERS_HASH_PREFIX}{}",
            hex::encode(Sha256::digest(text.as_bytes()))
        )
    }
}

/// Writes `value` as JSON with object keys sorted, whatever order the map keeps them in.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let mut a = String::new();
        write_canonical(&json!({"b": [{"y": 1, "x": 2}], "a": null}), &mut a);
        assert_eq!(a, r#"{"a":null,"b":[{"x":2,"y":1}]}"#);
    }
}
