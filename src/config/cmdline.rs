//! Orders from the kernel command line: what each `ocimetal.*` parameter means.
//!
//! The words and the key names come from [`crate::host::cmdline`]; this module maps each key
//! to the orders, checks its value and says what is wrong with it.

use super::{FailureAction, HintsInput, RebootAction, RegistryMirror, Secret, WipeMode};
use crate::error::OrderError;
use crate::host::cmdline::{self as words, Key};
use std::path::PathBuf;

/// What the kernel command line ordered, typed but not yet merged with other sources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CmdlineOrders {
    /// `ocimetal.node=`: path or http(s) URL of a node JSON document.
    pub node: Option<String>,
    /// `ocimetal.image=`.
    pub image: Option<String>,
    /// `ocimetal.root_device_hints=`: simplified form, or a JSON object like Ironic's.
    pub root_device_hints: Option<HintsInput>,
    /// `ocimetal.disk_wipe_mode=`.
    pub disk_wipe_mode: Option<WipeMode>,
    /// `ocimetal.insecure_registry=` (repeatable, also comma-separated).
    pub insecure_registries: Vec<String>,
    /// `ocimetal.registry_mirror=REGISTRY=URL` (repeatable).
    pub registry_mirrors: Vec<RegistryMirror>,
    /// `ocimetal.reboot=`.
    pub reboot: Option<RebootAction>,
    /// `ocimetal.force`.
    pub force: bool,
    /// `ocimetal.debug`.
    pub debug: bool,
    /// `ocimetal.dry_run`.
    pub dry_run: bool,
    /// `ocimetal.auth_file=`.
    pub auth_file: Option<PathBuf>,
    /// `ocimetal.ca_file=`.
    pub ca_file: Option<PathBuf>,
    /// `ocimetal.apt_proxy=`.
    pub apt_proxy: Option<String>,
    /// `ocimetal.configdrive=`: a device, directory or ISO image to read instead of looking
    /// for the `config-2` label.
    pub configdrive: Option<PathBuf>,
    /// `ocimetal.configdrive_url=`: an http(s) URL of a configdrive, possibly a per-machine
    /// template (`{mac}`…).
    pub configdrive_url: Option<String>,
    /// `ocimetal.user_data_url=`: an http(s) URL of the user_data, possibly a per-machine
    /// template.
    pub user_data_url: Option<String>,
    /// `ocimetal.report_url=`: an http(s) URL.
    pub report_url: Option<String>,
    /// `ocimetal.report_auth=`.
    pub report_auth: Option<Secret>,
    /// `ocimetal.on_failure=`.
    pub on_failure: Option<FailureAction>,
    /// `ocimetal.ssh_server=`; `None` when not given (the default is yes).
    pub ssh_server: Option<bool>,
    /// `ocimetal.ssh_key=` (repeatable): OpenSSH public keys.
    pub ssh_keys: Vec<String>,
    /// `ocimetal.console=`: `DEVICE[,SPEED…]` or `none`, checked by the planner.
    pub console: Option<String>,
    /// `ocimetal.karg=` (repeatable): kernel arguments for the installed system.
    pub kernel_args: Vec<String>,
}

/// Parses the `ocimetal.*` words of a kernel command line; other words are ignored.
/// Later occurrences of a single-valued key override earlier ones, as for kernel parameters.
pub fn parse(cmdline: &str) -> Result<CmdlineOrders, OrderError> {
    let mut orders = CmdlineOrders::default();
    for word in words::own_words(cmdline) {
        let field = word.param();
        let Some(key) = word.key() else {
            return Err(unknown_key(&field));
        };
        apply(&mut orders, key, &field, word.value)?;
    }
    Ok(orders)
}

fn apply(
    orders: &mut CmdlineOrders,
    key: Key,
    field: &str,
    value: Option<String>,
) -> Result<(), OrderError> {
    match key {
        Key::Force => orders.force = parse_flag(field, value.as_deref())?,
        Key::Debug => orders.debug = parse_flag(field, value.as_deref())?,
        Key::DryRun => orders.dry_run = parse_flag(field, value.as_deref())?,
        Key::Node => {
            let location = required(field, value)?;
            if super::fetch::is_url(&location) {
                super::placeholders::check(&location, field)?;
            }
            orders.node = Some(location)
        }
        Key::Image => orders.image = Some(required(field, value)?),
        Key::RootDeviceHints => {
            orders.root_device_hints = Some(parse_hints(field, &required(field, value)?)?)
        }
        Key::DiskWipeMode => {
            orders.disk_wipe_mode = Some(parse_wipe_mode(field, &required(field, value)?)?)
        }
        Key::InsecureRegistry => {
            let value = required(field, value)?;
            orders.insecure_registries.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_string),
            );
        }
        Key::RegistryMirror => orders
            .registry_mirrors
            .push(parse_mirror(field, &required(field, value)?)?),
        Key::Reboot => orders.reboot = Some(parse_reboot(field, &required(field, value)?)?),
        Key::AuthFile => orders.auth_file = Some(PathBuf::from(required(field, value)?)),
        Key::CaFile => orders.ca_file = Some(PathBuf::from(required(field, value)?)),
        Key::AptProxy => orders.apt_proxy = Some(required(field, value)?),
        Key::Configdrive => orders.configdrive = Some(PathBuf::from(required(field, value)?)),
        Key::ConfigdriveUrl => {
            orders.configdrive_url = Some(check_url_template(field, &required(field, value)?)?)
        }
        Key::UserDataUrl => {
            orders.user_data_url = Some(check_url_template(field, &required(field, value)?)?)
        }
        // Not an order: the inventory reads it to leave the installer's media alone.
        Key::BootMedia => {}
        Key::ReportUrl => {
            orders.report_url = Some(check_http_url(field, &required(field, value)?)?)
        }
        Key::ReportAuth => {
            let value = value.as_deref().map(str::trim).unwrap_or_default();
            if value.is_empty() {
                return Err(OrderError::new(field, "needs a value (key=value)"));
            }
            orders.report_auth = Some(Secret::new(value.as_bytes()));
        }
        Key::OnFailure => {
            orders.on_failure = Some(parse_on_failure(field, &required(field, value)?)?)
        }
        Key::SshServer => orders.ssh_server = Some(parse_flag(field, value.as_deref())?),
        Key::SshKey => orders
            .ssh_keys
            .push(parse_ssh_key(field, &required(field, value)?)?),
        Key::Console => orders.console = Some(required(field, value)?),
        Key::Karg => orders
            .kernel_args
            .push(parse_kernel_arg(field, &required(field, value)?)?),
    }
    Ok(())
}

/// The error for an `ocimetal.*` word that names no key; it lists the valid ones.
fn unknown_key(field: &str) -> OrderError {
    OrderError::new(
        field,
        format!(
            "unknown key; valid keys are {}",
            Key::ALL
                .iter()
                .map(|key| key.param())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

/// The trimmed value of a key that needs one.
fn required(field: &str, value: Option<String>) -> Result<String, OrderError> {
    let value = value.as_deref().map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(OrderError::new(field, "needs a value (key=value)"));
    }
    Ok(value.to_string())
}

/// A flag is on when given bare, or with 1/true/yes/on (0/false/no/off turn it off).
fn parse_flag(field: &str, value: Option<&str>) -> Result<bool, OrderError> {
    words::flag_value(value).ok_or_else(|| {
        OrderError::new(
            field,
            format!(
                "\"{}\" is not a flag value; use the bare key, =1/true/yes/on or =0/false/no/off",
                value.unwrap_or_default()
            ),
        )
    })
}

/// The key types OpenSSH's `authorized_keys` takes.
const SSH_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// An OpenSSH public key line: a known type, base64 key material, an optional comment.
pub fn parse_ssh_key(field: &str, value: &str) -> Result<String, OrderError> {
    let value = value.trim();
    let mut words = value.split_whitespace();
    let kind = words.next().unwrap_or_default();
    let material = words.next().unwrap_or_default();
    let base64 = |s: &str| {
        s.len() >= 16
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
    };
    if !SSH_KEY_TYPES.contains(&kind) || !base64(material) || value.contains(['\n', '\r']) {
        return Err(OrderError::new(
            field,
            format!(
                "is not an OpenSSH public key; give one line like \"ssh-ed25519 AAAAC3… user@host\" \
                 (quote the whole word on the kernel command line), types: {}",
                SSH_KEY_TYPES.join(", ")
            ),
        ));
    }
    Ok(value.to_string())
}

/// One kernel argument for GRUB's `GRUB_CMDLINE_LINUX`: no white space, quotes or characters
/// the shell that reads `/etc/default/grub` would act on.
pub fn parse_kernel_arg(field: &str, value: &str) -> Result<String, OrderError> {
    let value = value.trim();
    let bad = value
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "\"'`$\\;&|<>(){}".contains(*c));
    match bad {
        None if !value.is_empty() => Ok(value.to_string()),
        _ => Err(OrderError::new(
            field,
            format!(
                "{value:?} is not one kernel argument: give one per ocimetal.karg, without \
                 spaces, quotes or any of $ ` \\ ; & | < > ( ) {{ }}"
            ),
        )),
    }
}

/// Parses a wipe mode (trimmed, case-insensitive); `field` names the key in the error.
pub fn parse_wipe_mode(field: &str, value: &str) -> Result<WipeMode, OrderError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "all" => Ok(WipeMode::All),
        "target" => Ok(WipeMode::Target),
        _ => Err(OrderError::new(
            field,
            format!(
                "\"{}\" is not a wipe mode; valid values are all, target",
                value.trim()
            ),
        )),
    }
}

fn parse_reboot(field: &str, value: &str) -> Result<RebootAction, OrderError> {
    match value.to_ascii_lowercase().as_str() {
        "reboot" => Ok(RebootAction::Reboot),
        "poweroff" => Ok(RebootAction::Poweroff),
        "kexec" => Ok(RebootAction::Kexec),
        "none" => Ok(RebootAction::None),
        _ => Err(OrderError::new(
            field,
            format!("\"{value}\" is not an action; valid values are reboot, poweroff, kexec, none"),
        )),
    }
}

fn parse_on_failure(field: &str, value: &str) -> Result<FailureAction, OrderError> {
    match value.to_ascii_lowercase().as_str() {
        "stay" => Ok(FailureAction::Stay),
        "poweroff" => Ok(FailureAction::Poweroff),
        "reboot" => Ok(FailureAction::Reboot),
        _ => Err(OrderError::new(
            field,
            format!("\"{value}\" is not an action; valid values are stay, poweroff, reboot"),
        )),
    }
}

/// An http(s) URL with a host, as given; otherwise an error on `field` that shows the value
/// without credentials.
pub fn check_http_url(field: &str, value: &str) -> Result<String, OrderError> {
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(value.to_string())
        }
        _ => Err(OrderError::new(
            field,
            format!(
                "\"{}\" is not an http(s) URL; expected e.g. https://hooks.example/ocimetal",
                super::display_url(value)
            ),
        )),
    }
}

/// An http(s) URL that may hold per-machine placeholders (`{mac}`…): known placeholders
/// only, and an http(s) URL once they are filled in.
fn check_url_template(field: &str, value: &str) -> Result<String, OrderError> {
    super::placeholders::check(value, field)?;
    let filled = value.replace(['{', '}'], "");
    check_http_url(field, &filled).map_err(|_| {
        OrderError::new(
            field,
            format!(
                "\"{}\" is not an http(s) URL; expected e.g. http://lab.example/orders/{{mac}}",
                super::display_url(value)
            ),
        )
    })?;
    Ok(value.to_string())
}

/// Simplified hints (`serial=A [B]`, `wwn=0x… [0x…]`) or a JSON object like Ironic's
/// `root_device`.
fn parse_hints(field: &str, value: &str) -> Result<HintsInput, OrderError> {
    if value.starts_with('{') {
        return match serde_json::from_str::<serde_json::Value>(value) {
            Ok(serde_json::Value::Object(map)) => Ok(HintsInput::Map(map)),
            _ => Err(OrderError::new(
                field,
                format!("\"{value}\" is not a JSON object; use serial=A [B], wwn=X [Y] or a JSON object"),
            )),
        };
    }
    check_simplified_hints(field, value)?;
    Ok(HintsInput::Simplified(value.to_string()))
}

/// Checks the seed's simplified hint form `serial=V [V2]` / `wwn=V [V2]`.
pub fn check_simplified_hints(field: &str, value: &str) -> Result<(), OrderError> {
    let bad = |why: &str| {
        OrderError::new(
            field,
            format!("\"{value}\" {why}; valid forms are serial=A [B] and wwn=X [Y]"),
        )
    };
    let (kind, values) = value.split_once('=').ok_or_else(|| bad("has no '='"))?;
    let kind = kind.trim().to_ascii_lowercase();
    if kind != "serial" && kind != "wwn" {
        return Err(bad("names neither serial nor wwn"));
    }
    if values.trim().is_empty() {
        return Err(bad("has no value after '='"));
    }
    Ok(())
}

fn parse_mirror(field: &str, value: &str) -> Result<RegistryMirror, OrderError> {
    // The mirror URL may carry a password: never echo it.
    let shown = match value.split_once('=') {
        Some((registry, endpoint)) => format!("{registry}={}", super::display_url(endpoint)),
        None => super::display_url(value),
    };
    let bad = |why: &str| {
        OrderError::new(
            field,
            format!("\"{shown}\" {why}; use REGISTRY=URL, e.g. docker.io=http://10.0.2.2:5000"),
        )
    };
    let (registry, endpoint) = value.split_once('=').ok_or_else(|| bad("has no '='"))?;
    let (registry, endpoint) = (registry.trim(), endpoint.trim());
    if registry.is_empty() || registry.contains('/') || registry.contains(char::is_whitespace) {
        return Err(bad("does not start with a registry host"));
    }
    match url::Url::parse(endpoint) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
        _ => return Err(bad("does not end with an http(s) URL")),
    }
    Ok(RegistryMirror {
        registry: registry.to_string(),
        endpoint: endpoint.trim_end_matches('/').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let orders = parse(concat!(
            "BOOT_IMAGE=/vmlinuz ocimetal.node=http://10.0.2.2:8080/node.json ",
            "ocimetal.image=debian:13 ocimetal.root_device_hints=\"serial=S1 S2\" ",
            "ocimetal.disk_wipe_mode=TARGET ocimetal.insecure_registry=10.0.2.2:5000 ",
            "ocimetal.insecure_registry=a:1,b:2 ",
            "ocimetal.registry_mirror=docker.io=http://10.0.2.2:5000/ ",
            "ocimetal.registry_mirror=quay.io=https://mirror.example ",
            "ocimetal.reboot=poweroff ocimetal.force ocimetal.debug=yes ocimetal.dry-run=1 ",
            "ocimetal.auth_file=/etc/auth.json ocimetal.ca_file=/etc/ca.pem ",
            "ocimetal.apt_proxy=http://proxy:3142 ocimetal.configdrive=/dev/sr1",
        ))
        .unwrap();
        assert_eq!(
            orders.node.as_deref(),
            Some("http://10.0.2.2:8080/node.json")
        );
        assert_eq!(orders.image.as_deref(), Some("debian:13"));
        assert_eq!(
            orders.root_device_hints,
            Some(HintsInput::Simplified("serial=S1 S2".into()))
        );
        assert_eq!(orders.disk_wipe_mode, Some(WipeMode::Target));
        assert_eq!(
            orders.insecure_registries,
            vec!["10.0.2.2:5000", "a:1", "b:2"]
        );
        assert_eq!(
            orders.registry_mirrors,
            vec![
                RegistryMirror {
                    registry: "docker.io".into(),
                    endpoint: "http://10.0.2.2:5000".into()
                },
                RegistryMirror {
                    registry: "quay.io".into(),
                    endpoint: "https://mirror.example".into()
                }
            ]
        );
        assert_eq!(orders.reboot, Some(RebootAction::Poweroff));
        assert!(orders.force && orders.debug && orders.dry_run);
        assert_eq!(orders.auth_file, Some(PathBuf::from("/etc/auth.json")));
        assert_eq!(orders.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(orders.apt_proxy.as_deref(), Some("http://proxy:3142"));
        assert_eq!(orders.configdrive, Some(PathBuf::from("/dev/sr1")));
    }

    #[test]
    fn empty_cmdline_gives_defaults_and_foreign_words_are_ignored() {
        assert_eq!(parse("").unwrap(), CmdlineOrders::default());
        assert_eq!(
            parse("root=/dev/sda1 ocimetalx=1 other.image=x").unwrap(),
            CmdlineOrders::default()
        );
    }

    #[test]
    fn boot_media_is_known_but_no_order() {
        assert_eq!(
            parse("ocimetal.boot_media=/dev/sdb").unwrap(),
            CmdlineOrders::default()
        );
    }

    #[test]
    fn flags_accept_words_and_can_be_turned_off() {
        for (text, expected) in [
            ("ocimetal.force", true),
            ("ocimetal.force=1", true),
            ("ocimetal.force=TRUE", true),
            ("ocimetal.force=yes", true),
            ("ocimetal.force=0", false),
            ("ocimetal.force=no", false),
            ("ocimetal.force=false", false),
            ("ocimetal.force ocimetal.force=0", false),
        ] {
            assert_eq!(parse(text).unwrap().force, expected, "{text}");
        }
        let err = parse("ocimetal.debug=maybe").unwrap_err();
        assert_eq!(err.field, "ocimetal.debug");
        assert!(err.problem.contains("maybe") && err.problem.contains("0/false/no/off"));
    }

    #[test]
    fn later_value_wins_and_values_are_trimmed() {
        let orders = parse(r#"ocimetal.image=a ocimetal.image=" b ""#).unwrap();
        assert_eq!(orders.image.as_deref(), Some("b"));
    }

    #[test]
    fn reboot_actions() {
        for (text, action) in [
            ("reboot", RebootAction::Reboot),
            ("poweroff", RebootAction::Poweroff),
            ("kexec", RebootAction::Kexec),
            ("none", RebootAction::None),
            ("NONE", RebootAction::None),
        ] {
            let orders = parse(&format!("ocimetal.reboot={text}")).unwrap();
            assert_eq!(orders.reboot, Some(action));
        }
        let err = parse("ocimetal.reboot=halt").unwrap_err();
        assert_eq!(err.field, "ocimetal.reboot");
        assert!(err.problem.contains("halt") && err.problem.contains("poweroff, kexec, none"));
    }

    #[test]
    fn unknown_key_lists_the_valid_ones() {
        let err = parse("ocimetal.imgae=debian:12").unwrap_err();
        assert_eq!(err.field, "ocimetal.imgae");
        for key in Key::ALL {
            assert!(err.problem.contains(key.param()), "{key:?}");
        }
    }

    #[test]
    fn value_keys_need_a_value() {
        for key in [
            "image",
            "node",
            "reboot",
            "root_device_hints",
            "configdrive",
        ] {
            let err = parse(&format!("ocimetal.{key}")).unwrap_err();
            assert_eq!(err.field, format!("ocimetal.{key}"));
            assert!(err.problem.contains("needs a value"));
            assert!(parse(&format!("ocimetal.{key}=  ")).is_err());
        }
    }

    #[test]
    fn bad_wipe_mode_names_key_and_valid_values() {
        let err = parse("ocimetal.disk_wipe_mode=some").unwrap_err();
        assert_eq!(err.field, "ocimetal.disk_wipe_mode");
        assert!(err.problem.contains("\"some\"") && err.problem.contains("all, target"));
    }

    #[test]
    fn hints_forms() {
        let orders = parse("ocimetal.root_device_hints=wwn=0x5000c500a1b2c3d4").unwrap();
        assert_eq!(
            orders.root_device_hints,
            Some(HintsInput::Simplified("wwn=0x5000c500a1b2c3d4".into()))
        );
        let orders = parse(r#"ocimetal.root_device_hints={"size":">=_100"}"#).unwrap();
        let Some(HintsInput::Map(map)) = orders.root_device_hints else {
            panic!("expected a map");
        };
        assert_eq!(map["size"], ">=_100");
        for bad in ["model=X", "serial=", "serialX", "{notjson", "[1]"] {
            let err = parse(&format!("ocimetal.root_device_hints={bad}")).unwrap_err();
            assert_eq!(err.field, "ocimetal.root_device_hints");
            assert!(err.problem.contains(bad), "{bad}: {}", err.problem);
        }
    }

    #[test]
    fn documented_examples_parse() {
        // docs/orders.md: Ironic ramdisk_kernel_arguments and the lab USB stick.
        let ironic = parse(concat!(
            "console=ttyS0 ocimetal.image=registry.lab:5000/debian:13 ",
            "ocimetal.insecure_registry=registry.lab:5000 ",
            "ocimetal.root_device_hints=\"wwn=0x5000c500a1b2c3d4 0x5000c500a1b2c3d5\""
        ))
        .unwrap();
        assert_eq!(
            ironic.root_device_hints,
            Some(HintsInput::Simplified(
                "wwn=0x5000c500a1b2c3d4 0x5000c500a1b2c3d5".into()
            ))
        );
        let usb = parse(concat!(
            "console=ttyS0 ocimetal.image=10.0.2.2:5000/debian:13 ",
            "ocimetal.insecure_registry=10.0.2.2:5000 ",
            "ocimetal.root_device_hints=\"serial=DISK1SERIAL DISK2SERIAL\" ocimetal.reboot=poweroff"
        ))
        .unwrap();
        assert_eq!(usb.image.as_deref(), Some("10.0.2.2:5000/debian:13"));
        assert_eq!(usb.insecure_registries, vec!["10.0.2.2:5000"]);
        assert_eq!(usb.reboot, Some(RebootAction::Poweroff));
    }

    #[test]
    fn order_urls_may_be_templates_and_must_be_http() {
        let orders = parse(concat!(
            "ocimetal.configdrive_url=http://lab/cd/{mac}.iso ",
            "ocimetal.user-data-url=https://u:pw@lab/ud/{system_uuid}?sig=x"
        ))
        .unwrap();
        assert_eq!(
            orders.configdrive_url.as_deref(),
            Some("http://lab/cd/{mac}.iso")
        );
        assert_eq!(
            orders.user_data_url.as_deref(),
            Some("https://u:pw@lab/ud/{system_uuid}?sig=x")
        );
        let err = parse("ocimetal.node=http://lab/{mac.json").unwrap_err();
        assert_eq!(err.field, "ocimetal.node");
        assert!(err.problem.contains("not a placeholder"), "{err}");
        assert!(parse("ocimetal.node=/srv/{odd}/node.json").is_ok());
        for key in ["configdrive_url", "user_data_url"] {
            for bad in ["/srv/cd.iso", "ftp://lab/cd", "http://"] {
                let err = parse(&format!("ocimetal.{key}={bad}")).unwrap_err();
                assert_eq!(err.field, format!("ocimetal.{key}"));
                assert!(err.problem.contains("http(s) URL"), "{bad}: {err}");
            }
            let err = parse(&format!("ocimetal.{key}=ftp://u:secretpw@lab/x")).unwrap_err();
            assert!(!err.problem.contains("secretpw"), "{err}");
            // A mistyped placeholder is caught before anything is fetched.
            let err = parse(&format!("ocimetal.{key}=http://lab/{{nic}}")).unwrap_err();
            assert_eq!(err.field, format!("ocimetal.{key}"));
            assert!(
                err.problem.contains("\"{nic}\" is not a placeholder"),
                "{err}"
            );
            assert!(parse(&format!("ocimetal.{key}")).is_err());
        }
    }

    #[test]
    fn bad_registry_mirror() {
        for bad in [
            "docker.io",
            "=http://x",
            "docker.io=ftp://x",
            "docker.io=notaurl",
        ] {
            let err = parse(&format!("ocimetal.registry_mirror={bad}")).unwrap_err();
            assert_eq!(err.field, "ocimetal.registry_mirror");
            assert!(err.problem.contains("REGISTRY=URL"), "{bad}");
        }
    }
}
