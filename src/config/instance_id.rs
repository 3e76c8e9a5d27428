//! The instance id cloud-init gets: the order's own (`meta_data.uuid`,
//! `meta_data.instance-id`, the node's `uuid`), else the machine's SMBIOS system UUID, else
//! one derived from the orders. Either fallback is stable: the same machine, or the same
//! orders, give the same id, so cloud-init runs its once-per-instance modules once.

use super::{Orders, Source, Sourced};

/// Where the firmware's system UUID is published (readable by root).
pub const SMBIOS_UUID: &str = "/sys/class/dmi/id/product_uuid";

/// Values firmware writes when it has no real UUID.
const PLACEHOLDERS: &[&str] = &[
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "03000200-0400-0500-0006-000700080009",
];

/// The SMBIOS system UUID of this machine, lower case; `None` when unreadable or a
/// placeholder.
pub fn read_smbios_uuid() -> Option<String> {
    read_smbios_uuid_at(std::path::Path::new(SMBIOS_UUID))
}

/// [`read_smbios_uuid`] from the file at `path`.
pub fn read_smbios_uuid_at(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    usable_uuid(&text)
}

fn usable_uuid(text: &str) -> Option<String> {
    let uuid = text.trim().to_ascii_lowercase();
    let well_formed = uuid.len() == 36
        && uuid.chars().enumerate().all(|(i, c)| {
            matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
        });
    (well_formed && !PLACEHOLDERS.contains(&uuid.as_str())).then_some(uuid)
}

/// The instance id the orders give, with its key; `None` when they give none.
pub fn ordered(orders: &Orders) -> Option<Sourced<String>> {
    let meta = |key: &str| {
        orders
            .meta_data
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| Sourced::new(v.to_string(), Source::MetaData, format!("meta_data.{key}")))
    };
    meta("uuid").or_else(|| meta("instance-id")).or_else(|| {
        orders
            .node_uuid
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(|u| Sourced::new(u.to_string(), Source::InstanceInfo, "uuid"))
    })
}

/// Settles [`Orders::instance_id`]: the ordered one, else `smbios`, else one derived from the
/// orders. A fallback is also written into meta_data as `instance-id`, where the cloud-init
/// seed takes it from. Orders without any meta_data (the kernel command line alone) keep
/// cloud-init's NoCloud default id, as before.
pub fn settle(orders: &mut Orders, smbios: Option<String>) {
    if let Some(ordered) = ordered(orders) {
        orders.instance_id = Some(ordered);
        return;
    }
    if orders.meta_data.is_empty() {
        return;
    }
    let chosen = match smbios {
        Some(uuid) => Sourced::new(uuid, Source::Machine, "SMBIOS system UUID"),
        None => Sourced::new(derived(orders), Source::Default, "derived from the orders"),
    };
    orders.meta_data.insert(
        "instance-id".to_string(),
        serde_json::Value::String(chosen.value.clone()),
    );
    orders.instance_id = Some(chosen);
}

/// The orders' digest ([`Orders::digest`]: image, hints, wipe mode, hostname, meta_data,
/// user_data, network_data), shaped as a UUID.
fn derived(orders: &Orders) -> String {
    let digest = orders.digest();
    let hex = digest.rsplit(':').next().unwrap_or(&digest);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cmdline::CmdlineOrders;
    use crate::config::{merge, ConfigDrive};
    use serde_json::json;

    fn orders(meta: serde_json::Value, node_uuid: Option<&str>) -> Orders {
        let drive = ConfigDrive::from_dict(&json!({"meta_data": meta}), "cd").unwrap();
        let mut orders = merge(&CmdlineOrders::default(), None, Some(&drive)).unwrap();
        orders.node_uuid = node_uuid.map(str::to_string);
        orders
    }

    #[test]
    fn the_orders_own_id_wins() {
        for (meta, node, value, key) in [
            (
                json!({"uuid": "u", "instance-id": "i"}),
                Some("n"),
                "u",
                "meta_data.uuid",
            ),
            (
                json!({"uuid": " ", "instance-id": "i"}),
                Some("n"),
                "i",
                "meta_data.instance-id",
            ),
            (json!({}), Some("n"), "n", "uuid"),
        ] {
            let mut orders = orders(meta.clone(), node);
            settle(
                &mut orders,
                Some("4c4c4544-0000-1111-2222-333333333333".into()),
            );
            let id = orders.instance_id.unwrap();
            assert_eq!((id.value.as_str(), id.key.as_str()), (value, key));
            assert_eq!(
                serde_json::Value::Object(orders.meta_data),
                meta,
                "meta_data untouched"
            );
        }
    }

    #[test]
    fn smbios_then_derived() {
        let mut with_smbios = orders(json!({"oci_image": "debian:13"}), None);
        settle(
            &mut with_smbios,
            usable_uuid("4C4C4544-0000-1111-2222-333333333333\n"),
        );
        let id = with_smbios.instance_id.unwrap();
        assert_eq!(id.value, "4c4c4544-0000-1111-2222-333333333333");
        assert_eq!(
            (id.source, id.key.as_str()),
            (Source::Machine, "SMBIOS system UUID")
        );
        assert_eq!(with_smbios.meta_data["instance-id"], id.value);

        let derive = |meta: serde_json::Value| {
            let mut o = orders(meta, None);
            settle(&mut o, None);
            o.instance_id.unwrap()
        };
        let a = derive(json!({"oci_image": "debian:13"}));
        assert_eq!(a.key, "derived from the orders");
        assert_eq!(a.value.len(), 36);
        assert_eq!(derive(json!({"oci_image": "debian:13"})), a, "stable");
        assert_ne!(derive(json!({"oci_image": "debian:12"})).value, a.value);

        let mut bare = orders(json!({}), None);
        settle(
            &mut bare,
            Some("4c4c4544-0000-1111-2222-333333333333".into()),
        );
        assert!(bare.instance_id.is_none() && bare.meta_data.is_empty());
    }

    #[test]
    fn placeholders_and_garbage_are_not_uuids() {
        for bad in [
            "00000000-0000-0000-0000-000000000000",
            "03000200-0400-0500-0006-000700080009",
            "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
            "not a uuid",
            "",
        ] {
            assert_eq!(usable_uuid(bad), None, "{bad}");
        }
    }
}
