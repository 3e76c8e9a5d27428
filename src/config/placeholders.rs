//! Per-machine order URLs: one shared ISO or command line, and each machine fetches its own
//! node document, configdrive or user_data. `ocimetal.node=http://lab/nodes/{mac}.json` (and
//! likewise `ocimetal.configdrive_url=`, `ocimetal.user_data_url=`) names a template whose
//! placeholders are filled in on the machine:
//!
//! - `{mac}`: each NIC's MAC address (`aa-bb-cc-dd-ee-ff`), tried in interface-name order;
//! - `{system_uuid}`: the SMBIOS system UUID;
//! - `{serial}`: the SMBIOS system serial number;
//! - `{hostname}`: the host name the ramdisk has (from DHCP).
//!
//! A candidate answered 404 is passed over; when every one is, there is no such document
//! (`config::gather` fetches them).

use crate::error::OrderError;
use std::path::Path;

/// The placeholders a template may hold.
pub const PLACEHOLDERS: &[&str] = &["{mac}", "{system_uuid}", "{serial}", "{hostname}"];

/// What the placeholders are filled in with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineFacts {
    /// MAC addresses of the Ethernet NICs, `aa-bb-cc-dd-ee-ff`, in interface-name order.
    pub macs: Vec<String>,
    /// SMBIOS system UUID, lower case.
    pub system_uuid: Option<String>,
    /// SMBIOS system serial number.
    pub serial: Option<String>,
    /// The running system's host name.
    pub hostname: Option<String>,
}

impl MachineFacts {
    /// Reads the facts under `sys` (`/sys`) and `proc` (`/proc`).
    pub fn read(sys: &Path, proc: &Path) -> Self {
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let mut nics: Vec<(String, String)> = std::fs::read_dir(sys.join("class/net"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let dir = entry.path();
                // ARPHRD_ETHER only: no loopback, tunnels or InfiniBand.
                (read(&dir.join("type")).as_deref() == Some("1")).then_some(())?;
                let mac = read(&dir.join("address"))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                Some((name, mac.to_ascii_lowercase().replace(':', "-")))
            })
            .filter(|(_, mac)| mac != "00-00-00-00-00-00")
            .collect();
        nics.sort();
        Self {
            macs: nics.into_iter().map(|(_, mac)| mac).collect(),
            system_uuid: super::instance_id::read_smbios_uuid_at(
                &sys.join("class/dmi/id/product_uuid"),
            ),
            serial: read(&sys.join("class/dmi/id/product_serial")),
            hostname: read(&proc.join("sys/kernel/hostname")).filter(|h| h != "(none)"),
        }
    }
}

/// True when `location` holds a placeholder to fill in.
pub fn is_template(location: &str) -> bool {
    location.contains('{')
}

/// Checks that every `{…}` of `template` is a known placeholder; `field` names the order.
pub fn check(template: &str, field: &str) -> Result<(), OrderError> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = rest[start..]
            .find('}')
            .map(|e| start + e + 1)
            .unwrap_or(rest.len());
        let name = &rest[start..end];
        if !PLACEHOLDERS.contains(&name) {
            return Err(OrderError::new(
                field,
                format!(
                    "{name:?} is not a placeholder; use {}",
                    PLACEHOLDERS.join(", ")
                ),
            ));
        }
        rest = &rest[end..];
    }
    Ok(())
}

/// The locations `template` stands for on a machine with `facts`, in the order to try them.
pub fn expand(
    template: &str,
    facts: &MachineFacts,
    field: &str,
) -> Result<Vec<String>, OrderError> {
    check(template, field)?;
    let single = |name: &str, value: &Option<String>| -> Result<Option<String>, OrderError> {
        match (template.contains(name), value) {
            (false, _) => Ok(None),
            (true, Some(value)) => Ok(Some(encode(value))),
            (true, None) => Err(OrderError::new(
                field,
                format!("uses {name}, which this machine does not have"),
            )),
        }
    };
    let mut filled = template.to_string();
    for (name, value) in [
        ("{system_uuid}", &facts.system_uuid),
        ("{serial}", &facts.serial),
        ("{hostname}", &facts.hostname),
    ] {
        if let Some(value) = single(name, value)? {
            filled = filled.replace(name, &value);
        }
    }
    if !filled.contains("{mac}") {
        return Ok(vec![filled]);
    }
    if facts.macs.is_empty() {
        return Err(OrderError::new(
            field,
            "uses {mac}, but this machine has no Ethernet NIC",
        ));
    }
    Ok(facts
        .macs
        .iter()
        .map(|mac| filled.replace("{mac}", mac))
        .collect())
}

/// A value made safe inside a URL path: unreserved characters kept, the rest percent-encoded.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> MachineFacts {
        MachineFacts {
            macs: vec!["52-54-00-12-34-56".into(), "52-54-00-12-34-57".into()],
            system_uuid: Some("5a2c7e4e-0000-4000-8000-00000000e2e9".into()),
            serial: Some("SN 42/7".into()),
            hostname: Some("lab-3".into()),
        }
    }

    #[test]
    fn every_mac_is_a_candidate_and_the_other_placeholders_are_filled_in() {
        assert_eq!(
            expand("http://h/{mac}/{hostname}.json", &facts(), "ocimetal.node").unwrap(),
            [
                "http://h/52-54-00-12-34-56/lab-3.json",
                "http://h/52-54-00-12-34-57/lab-3.json"
            ]
        );
        assert_eq!(
            expand("http://h/{system_uuid}-{serial}", &facts(), "f").unwrap(),
            ["http://h/5a2c7e4e-0000-4000-8000-00000000e2e9-SN%2042%2F7"]
        );
    }

    #[test]
    fn unknown_or_unavailable_placeholders_are_order_errors() {
        let e = expand("http://h/{uuid}", &facts(), "ocimetal.node").unwrap_err();
        assert_eq!(e.field, "ocimetal.node");
        assert!(e.problem.contains("{system_uuid}"), "{e}");
        let bare = MachineFacts::default();
        assert!(expand("http://h/{serial}", &bare, "f").is_err());
        assert!(expand("http://h/{mac}", &bare, "f").is_err());
    }

    #[test]
    fn facts_are_read_from_sysfs_and_proc() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path().join("sys");
        let write = |rel: &str, text: &str| {
            let path = sys.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("class/net/lo/type", "772\n");
        write("class/net/lo/address", "00:00:00:00:00:00\n");
        write("class/net/enp2s0/type", "1\n");
        write("class/net/enp2s0/address", "52:54:00:AA:BB:02\n");
        write("class/net/enp1s0/type", "1\n");
        write("class/net/enp1s0/address", "52:54:00:aa:bb:01\n");
        write(
            "class/dmi/id/product_uuid",
            "5A2C7E4E-0000-4000-8000-00000000E2E9\n",
        );
        write("class/dmi/id/product_serial", "  \n");
        let proc = root.path().join("proc");
        std::fs::create_dir_all(proc.join("sys/kernel")).unwrap();
        std::fs::write(proc.join("sys/kernel/hostname"), "lab-3\n").unwrap();
        let facts = MachineFacts::read(&sys, &proc);
        assert_eq!(facts.macs, ["52-54-00-aa-bb-01", "52-54-00-aa-bb-02"]);
        assert_eq!(
            facts.system_uuid.as_deref(),
            Some("5a2c7e4e-0000-4000-8000-00000000e2e9")
        );
        assert_eq!(facts.serial, None);
        assert_eq!(facts.hostname.as_deref(), Some("lab-3"));
    }
}
