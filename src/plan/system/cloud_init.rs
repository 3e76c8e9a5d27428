//! The NoCloud seed cloud-init reads on the installed system's first boot.
//!
//! The configdrive is not there after the reboot, so its content is copied into the seed
//! directory and cloud-init is told to use NoCloud only. `meta-data` gets the keys that
//! cloud-init's ConfigDrive datasource would have derived (`instance-id` from `uuid`,
//! `local-hostname` from `hostname`, `public-keys` from `public_keys`), so the node comes up
//! as it would from the configdrive itself; `network-config` is network_data converted by
//! [`super::network`].

use super::file::TargetFile;
use super::files::Hostname;
use super::network::convert_network_data;
use super::yaml;
use crate::config::Secret;
use crate::error::OrderError;
use serde_json::{Map, Value};

/// Seed directory, relative to the target root.
pub const SEED_DIR: &str = "var/lib/cloud/seed/nocloud-net";

/// cloud-init config that selects the seed, relative to the target root.
pub const DATASOURCE_CFG_PATH: &str = "etc/cloud/cloud.cfg.d/99-ocimetal-nocloud.cfg";

/// Mode of the seed files: user_data and meta_data may hold secrets.
pub const SEED_FILE_MODE: u32 = 0o600;

/// The instance id cloud-init's NoCloud datasource assumes when meta-data has none.
pub const NOCLOUD_DEFAULT_INSTANCE_ID: &str = "nocloud";

/// What the seed is made from.
#[derive(Debug, Clone, Copy)]
pub struct SeedInput<'a> {
    /// The configdrive's `meta_data`.
    pub meta_data: &'a Map<String, Value>,
    /// The configdrive's `user_data`, written verbatim.
    pub user_data: Option<&'a Secret>,
    /// The configdrive's `network_data`, converted to network config v1.
    pub network_data: Option<&'a Value>,
    /// The Ironic node UUID, the instance id when meta_data has none.
    pub node_uuid: Option<&'a str>,
    /// The hostname the installer chose (also written to /etc/hostname).
    pub hostname: Option<&'a Hostname>,
    /// More authorized SSH keys (`ocimetal.ssh_key`), added to meta_data's `public_keys`.
    pub ssh_keys: &'a [String],
}

/// The seed files, and warnings for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Seed {
    /// `meta-data`, `user-data`, `network-config` (when network_data is given), and the
    /// datasource config.
    pub files: Vec<TargetFile>,
    /// Notes from the network conversion (unknown link types...).
    pub warnings: Vec<String>,
}

/// Renders every file of the NoCloud seed.
pub fn nocloud_seed(input: &SeedInput<'_>) -> Result<Seed, OrderError> {
    let mut files = vec![
        TargetFile::plain(
            format!("{SEED_DIR}/meta-data"),
            render_meta_data(input)?,
            SEED_FILE_MODE,
        ),
        TargetFile::secret(
            format!("{SEED_DIR}/user-data"),
            input.user_data.cloned().unwrap_or_default(),
            SEED_FILE_MODE,
        ),
    ];
    let mut warnings = Vec::new();
    if let Some(network_data) = input.network_data {
        let converted = convert_network_data(network_data)?;
        let text = converted
            .config
            .to_yaml()
            .map_err(|e| OrderError::new("network_data", format!("cannot be rendered: {e}")))?;
        files.push(TargetFile::plain(
            format!("{SEED_DIR}/network-config"),
            text,
            SEED_FILE_MODE,
        ));
        warnings = converted.warnings;
    }
    files.push(TargetFile::plain(
        DATASOURCE_CFG_PATH,
        render_datasource_cfg(),
        0o644,
    ));
    Ok(Seed { files, warnings })
}

/// `meta-data`: the configdrive's meta_data plus the keys NoCloud reads.
pub fn render_meta_data(input: &SeedInput<'_>) -> Result<String, OrderError> {
    let mut meta = input.meta_data.clone();
    // Orders from the kernel command line alone have no meta_data at all: NoCloud then uses
    // its own default id. A meta_data without an id is a broken configdrive and refused.
    let default_id = meta.is_empty().then_some(NOCLOUD_DEFAULT_INSTANCE_ID);
    let instance_id = non_empty_str(&meta, "uuid")
        .or_else(|| non_empty_str(&meta, "instance-id"))
        .or(input.node_uuid.filter(|u| !u.is_empty()))
        .or(default_id)
        .map(str::to_string)
        .ok_or_else(|| {
            OrderError::new(
                "meta_data.uuid",
                "missing; cloud-init needs an instance id: give meta_data.uuid (or \
                 meta_data.instance-id) or a node document with a uuid",
            )
        })?;
    meta.insert("instance-id".into(), Value::String(instance_id));

    // The hostname the installer writes to /etc/hostname wins, so cloud-init agrees with it.
    let hostname = input
        .hostname
        .map(|h| h.as_str().to_string())
        .or_else(|| non_empty_str(&meta, "local-hostname").map(str::to_string))
        .or_else(|| non_empty_str(&meta, "hostname").map(str::to_string));
    if let Some(hostname) = hostname {
        meta.insert("local-hostname".into(), Value::String(hostname));
    }
    if !meta.contains_key("public-keys") {
        if let Some(keys) = meta.get("public_keys").cloned() {
            meta.insert("public-keys".into(), keys);
        }
    }
    if !input.ssh_keys.is_empty() {
        let keys = add_keys(meta.remove("public-keys"), input.ssh_keys);
        meta.insert("public-keys".into(), keys);
    }
    yaml::to_yaml(&meta)
        .map_err(|e| OrderError::new("meta_data", format!("cannot be rendered: {e}")))
}

/// `public-keys` with `extra` added, in any of the shapes cloud-init reads (a string, a list,
/// or OpenStack's map of name to key).
fn add_keys(existing: Option<Value>, extra: &[String]) -> Value {
    let extra = extra.iter().cloned().map(Value::String);
    match existing {
        Some(Value::Object(mut map)) => {
            for (n, key) in extra.enumerate() {
                map.insert(format!("ocimetal-{}", n + 1), key);
            }
            Value::Object(map)
        }
        Some(Value::Array(mut list)) => {
            list.extend(extra);
            Value::Array(list)
        }
        Some(Value::String(one)) => {
            Value::Array(std::iter::once(Value::String(one)).chain(extra).collect())
        }
        _ => Value::Array(extra.collect()),
    }
}

/// The cloud.cfg.d snippet that makes NoCloud, reading our seed, the only datasource.
/// Also sets cloud-init's default locale to C.UTF-8, which glibc always has: its own default,
/// en_US.UTF-8, is generated in no minimal image, and on Debian 12 `update-locale` then fails
/// the `locale` module (and cloud-config.service) at first boot. user_data's `locale:` wins.
pub fn render_datasource_cfg() -> String {
    format!(
        "# Written by ocimetal: the configdrive is gone after installation; use its copy.\n\
         datasource_list: [ NoCloud, None ]\n\
         datasource:\n  NoCloud:\n    seedfrom: file:///{SEED_DIR}/\n\
         # A locale every image has (user_data may choose another).\n\
         locale: C.UTF-8\n"
    )
}

fn non_empty_str<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_ssh_keys_join_the_keys_of_meta_data_in_its_shape() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample lab".to_string();
        let extra = std::slice::from_ref(&key);
        assert_eq!(add_keys(None, extra), serde_json::json!([key]));
        assert_eq!(
            add_keys(
                Some(serde_json::json!({"default": "ssh-rsa AAAA x"})),
                extra
            ),
            serde_json::json!({"default": "ssh-rsa AAAA x", "ocimetal-1": key})
        );
        assert_eq!(
            add_keys(Some(serde_json::json!("ssh-rsa AAAA x")), extra),
            serde_json::json!(["ssh-rsa AAAA x", key])
        );
    }
    use serde_json::json;

    fn meta(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("object")
    }

    fn read_back(text: &str) -> Value {
        serde_yaml::from_str(text).expect("meta-data is YAML")
    }

    #[test]
    fn datasource_cfg_is_exact() {
        assert_eq!(
            render_datasource_cfg(),
            "# Written by ocimetal: the configdrive is gone after installation; use its copy.\n\
             datasource_list: [ NoCloud, None ]\n\
             datasource:\n  NoCloud:\n    seedfrom: file:///var/lib/cloud/seed/nocloud-net/\n\
             # A locale every image has (user_data may choose another).\n\
             locale: C.UTF-8\n"
        );
    }

    #[test]
    fn seed_has_meta_user_network_and_cfg_with_modes() {
        let md = meta(json!({"uuid": "u-1", "hostname": "node-a"}));
        let user = Secret::new(b"#cloud-config\npassword: s3cret\n".to_vec());
        let nd = json!({"links": [{"id": "eth0", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56"}],
                        "networks": [{"link": "eth0", "type": "ipv4_dhcp"}]});
        let seed = nocloud_seed(&SeedInput {
            meta_data: &md,
            user_data: Some(&user),
            network_data: Some(&nd),
            node_uuid: Some("node-uuid"),
            hostname: None,
            ssh_keys: &[],
        })
        .expect("seed");
        let paths: Vec<_> = seed
            .files
            .iter()
            .map(|f| (f.path.to_string_lossy().into_owned(), f.mode))
            .collect();
        assert_eq!(
            paths,
            [
                (
                    "var/lib/cloud/seed/nocloud-net/meta-data".to_string(),
                    0o600
                ),
                (
                    "var/lib/cloud/seed/nocloud-net/user-data".to_string(),
                    0o600
                ),
                (
                    "var/lib/cloud/seed/nocloud-net/network-config".to_string(),
                    0o600
                ),
                (
                    "etc/cloud/cloud.cfg.d/99-ocimetal-nocloud.cfg".to_string(),
                    0o644
                ),
            ]
        );
        assert!(seed.files[1].contents.is_secret());
        assert_eq!(seed.files[1].contents.bytes(), user.expose());
        let net = seed.files[2].text().expect("text");
        assert!(net.contains("mac_address: \"52:54:00:12:34:56\""), "{net}");
        assert!(net.starts_with("version: 1\n"), "{net}");
        let plan = serde_json::to_string(&seed.files).expect("serialise");
        assert!(!plan.contains("s3cret"));
    }

    #[test]
    fn no_network_data_means_no_network_config_and_empty_user_data() {
        let md = meta(json!({"uuid": "u-1"}));
        let seed = nocloud_seed(&SeedInput {
            meta_data: &md,
            user_data: None,
            network_data: None,
            node_uuid: None,
            hostname: None,
            ssh_keys: &[],
        })
        .expect("seed");
        assert_eq!(seed.files.len(), 3);
        assert!(seed
            .files
            .iter()
            .all(|f| !f.path.ends_with("network-config")));
        assert_eq!(seed.files[1].contents.bytes(), b"");
    }

    #[test]
    fn instance_id_prefers_uuid_then_instance_id_then_node_uuid() {
        let render = |md: Value, node: Option<&str>| {
            let md = meta(md);
            read_back(
                &render_meta_data(&SeedInput {
                    meta_data: &md,
                    user_data: None,
                    network_data: None,
                    node_uuid: node,
                    hostname: None,
                    ssh_keys: &[],
                })
                .expect("renders"),
            )["instance-id"]
                .clone()
        };
        assert_eq!(
            render(json!({"uuid": "a", "instance-id": "b"}), Some("c")),
            "a"
        );
        assert_eq!(render(json!({"instance-id": "b"}), Some("c")), "b");
        assert_eq!(render(json!({"uuid": ""}), Some("c")), "c");
        assert_eq!(render(json!({}), None), NOCLOUD_DEFAULT_INSTANCE_ID);
        let md = meta(json!({"local-hostname": "h"}));
        let e = render_meta_data(&SeedInput {
            meta_data: &md,
            user_data: None,
            network_data: None,
            node_uuid: None,
            hostname: None,
            ssh_keys: &[],
        })
        .expect_err("no id");
        assert_eq!(e.field, "meta_data.uuid");
    }

    #[test]
    fn meta_data_keeps_everything_and_adds_nocloud_keys() {
        let chosen = Hostname::parse("chosen", "hostname").expect("valid");
        let md = meta(json!({
            "uuid": "u-1",
            "hostname": "from-meta",
            "metal3-name": "node-0",
            "public_keys": {"default": "ssh-ed25519 AAAA key"},
            "flag": "on"
        }));
        let input = SeedInput {
            meta_data: &md,
            user_data: None,
            network_data: None,
            node_uuid: None,
            hostname: Some(&chosen),
            ssh_keys: &[],
        };
        let text = render_meta_data(&input).expect("renders");
        let back = read_back(&text);
        assert_eq!(back["local-hostname"], "chosen");
        assert_eq!(back["hostname"], "from-meta");
        assert_eq!(back["metal3-name"], "node-0");
        assert_eq!(back["public-keys"]["default"], "ssh-ed25519 AAAA key");
        // Quoted, so YAML 1.1 readers keep it a string.
        assert!(text.contains("flag: \"on\""), "{text}");

        let input = SeedInput {
            hostname: None,
            ssh_keys: &[],
            ..input
        };
        let back = read_back(&render_meta_data(&input).expect("renders"));
        assert_eq!(back["local-hostname"], "from-meta");
    }

    #[test]
    fn bad_network_data_is_an_order_error() {
        let md = meta(json!({"uuid": "u"}));
        let nd = json!({"links": [{"id": "x", "type": "bond"}]});
        let e = nocloud_seed(&SeedInput {
            meta_data: &md,
            user_data: None,
            network_data: Some(&nd),
            node_uuid: None,
            hostname: None,
            ssh_keys: &[],
        })
        .expect_err("invalid");
        assert_eq!(e.field, "network_data.links[0].bond_links");
    }
}
