//! Tests of every rung of every priority ladder, and of redaction.

use super::*;
use crate::config::cmdline;
use crate::config::{RegistryMirror, Secret};
use serde_json::json;

fn drive(meta: Value) -> ConfigDrive {
    ConfigDrive {
        meta_data: meta.as_object().unwrap().clone(),
        origin: "test-drive".into(),
        ..ConfigDrive::default()
    }
}

fn node_with(image_source: Option<&str>, root_device: Option<Value>) -> NodeDoc {
    NodeDoc {
        uuid: Some("node-uuid".into()),
        image_source: image_source.map(str::to_string),
        root_device: root_device.map(|v| v.as_object().unwrap().clone()),
        ..NodeDoc::default()
    }
}

fn cmd(text: &str) -> CmdlineOrders {
    cmdline::parse(text).unwrap()
}

#[test]
fn nothing_given_gives_defaults() {
    let orders = merge(&CmdlineOrders::default(), None, None).unwrap();
    assert_eq!(
        orders.image,
        Sourced::new(DEFAULT_IMAGE.to_string(), Source::Default, "default")
    );
    assert_eq!(orders.root_device_hints, None);
    assert_eq!(orders.wipe_mode, None);
    assert_eq!(orders.hostname, None);
    assert_eq!(
        orders.reboot,
        Sourced::new(RebootAction::Reboot, Source::Default, "default")
    );
    assert!(orders.meta_data.is_empty() && orders.user_data.is_none());
    assert!(!orders.force && !orders.debug && !orders.dry_run);
    assert_eq!(
        orders.warnings,
        [
            "no image ordered (instance_info.image_source, ocimetal.image, meta_data.oci_image): \
          installing the default ubuntu:24.04"
        ]
    );
    assert_eq!(orders.configdrive_origin, None);
}

// --- image: instance_info.image_source (oci://) → ocimetal.image → meta_data.oci_image → default

#[test]
fn image_rung_1_instance_info_beats_everything() {
    let node = node_with(Some("oci://quay.io/x/y:1"), None);
    let drive = drive(json!({"oci_image": "debian:12"}));
    let orders = merge(&cmd("ocimetal.image=debian:13"), Some(&node), Some(&drive)).unwrap();
    assert_eq!(
        orders.image,
        Sourced::new(
            "quay.io/x/y:1".to_string(),
            Source::InstanceInfo,
            "instance_info.image_source"
        )
    );
}

#[test]
fn image_rung_2_cmdline_beats_meta_data() {
    let drive = drive(json!({"oci_image": "debian:12"}));
    let orders = merge(&cmd("ocimetal.image=debian:13"), None, Some(&drive)).unwrap();
    assert_eq!(
        orders.image,
        Sourced::new("debian:13".to_string(), Source::Cmdline, "ocimetal.image")
    );
}

#[test]
fn image_rung_3_meta_data() {
    let drive = drive(json!({"oci_image": "  debian:12 "}));
    let orders = merge(&CmdlineOrders::default(), None, Some(&drive)).unwrap();
    assert_eq!(
        orders.image,
        Sourced::new(
            "debian:12".to_string(),
            Source::MetaData,
            "meta_data.oci_image"
        )
    );
}

#[test]
fn image_empty_oci_falls_back_with_warning() {
    for source in ["oci://", "oci://   "] {
        let node = node_with(Some(source), None);
        let drive = drive(json!({"oci_image": "debian:12"}));
        let orders = merge(&CmdlineOrders::default(), Some(&node), Some(&drive)).unwrap();
        assert_eq!(orders.image.value, "debian:12");
        assert_eq!(orders.image.source, Source::MetaData);
        assert_eq!(orders.warnings.len(), 1);
        assert!(orders.warnings[0].contains("empty oci://"));
    }
}

#[test]
fn image_other_scheme_is_ignored_with_warning() {
    let node = node_with(Some("http://images/disk.qcow2"), None);
    let orders = merge(&CmdlineOrders::default(), Some(&node), None).unwrap();
    assert_eq!(orders.image.source, Source::Default);
    assert!(orders.warnings[0].contains("http://images/disk.qcow2"));
    assert!(orders.warnings[0].contains("not an oci://"));
    let node = node_with(Some("https://swift/img?temp_url_sig=SECRET-sig"), None);
    let orders = merge(&CmdlineOrders::default(), Some(&node), None).unwrap();
    assert!(
        !orders.warnings[0].contains("SECRET-sig"),
        "{:?}",
        orders.warnings
    );
}

#[test]
fn image_blank_meta_data_falls_to_default_and_oci_prefix_is_accepted() {
    let orders = merge(
        &CmdlineOrders::default(),
        None,
        Some(&drive(json!({"oci_image": " "}))),
    )
    .unwrap();
    assert_eq!(orders.image.source, Source::Default);
    let orders = merge(
        &CmdlineOrders::default(),
        None,
        Some(&drive(json!({"oci_image": "oci://debian:12"}))),
    )
    .unwrap();
    assert_eq!(orders.image.value, "debian:12");
    let orders = merge(&cmd("ocimetal.image=oci://debian:11"), None, None).unwrap();
    assert_eq!(orders.image.value, "debian:11");
}

#[test]
fn image_meta_data_of_wrong_type() {
    let err = merge(
        &CmdlineOrders::default(),
        None,
        Some(&drive(json!({"oci_image": 12}))),
    )
    .unwrap_err();
    assert_eq!(err.field, "meta_data.oci_image");
    assert!(err.problem.contains("number 12") && err.problem.contains("string"));
}

// --- hints: meta_data.root_device_hints → ocimetal.root_device_hints → instance_info.root_device

#[test]
fn hints_rung_1_meta_data_beats_everything() {
    let node = node_with(None, Some(json!({"serial": "s== N"})));
    let drive = drive(json!({"root_device_hints": " serial=A B "}));
    let orders = merge(
        &cmd("ocimetal.root_device_hints=wwn=0x1"),
        Some(&node),
        Some(&drive),
    )
    .unwrap();
    assert_eq!(
        orders.root_device_hints,
        Some(Sourced::new(
            HintsInput::Simplified("serial=A B".into()),
            Source::MetaData,
            "meta_data.root_device_hints"
        ))
    );
}

#[test]
fn hints_rung_2_cmdline_beats_instance_info() {
    let node = node_with(None, Some(json!({"serial": "s== N"})));
    let orders = merge(
        &cmd("ocimetal.root_device_hints=wwn=0x1"),
        Some(&node),
        None,
    )
    .unwrap();
    assert_eq!(
        orders.root_device_hints,
        Some(Sourced::new(
            HintsInput::Simplified("wwn=0x1".into()),
            Source::Cmdline,
            "ocimetal.root_device_hints"
        ))
    );
}

#[test]
fn hints_rung_3_instance_info() {
    let node = node_with(None, Some(json!({"serial": "s== N1 N2", "size": ">= 10"})));
    let orders = merge(&CmdlineOrders::default(), Some(&node), None).unwrap();
    let hints = orders.root_device_hints.unwrap();
    assert_eq!(hints.source, Source::InstanceInfo);
    assert_eq!(hints.key, "instance_info.root_device");
    let HintsInput::Map(map) = hints.value else {
        panic!("expected a map");
    };
    assert_eq!(map["serial"], "s== N1 N2");
}

#[test]
fn hints_blank_meta_data_falls_through_with_warning() {
    let node = node_with(None, Some(json!({"wwn": "0x5"})));
    let drive = drive(json!({"root_device_hints": ""}));
    let orders = merge(&CmdlineOrders::default(), Some(&node), Some(&drive)).unwrap();
    assert_eq!(
        orders.root_device_hints.unwrap().source,
        Source::InstanceInfo
    );
    assert!(
        orders
            .warnings
            .iter()
            .any(|w| w.contains("meta_data.root_device_hints")),
        "{:?}",
        orders.warnings
    );
}

#[test]
fn hints_meta_data_must_be_a_simplified_string() {
    let err = merge(
        &CmdlineOrders::default(),
        None,
        Some(&drive(json!({"root_device_hints": {"serial": "A"}}))),
    )
    .unwrap_err();
    assert_eq!(err.field, "meta_data.root_device_hints");
    assert!(
        err.problem.contains("an object is not a string"),
        "{}",
        err.problem
    );
    let err = merge(
        &CmdlineOrders::default(),
        None,
        Some(&drive(json!({"root_device_hints": "model=X"}))),
    )
    .unwrap_err();
    assert_eq!(err.field, "meta_data.root_device_hints");
    assert!(err.problem.contains("model=X") && err.problem.contains("serial=A [B]"));
}

// --- wipe mode: meta_data.disk_wipe_mode → ocimetal.disk_wipe_mode → none

#[test]
fn wipe_rung_1_meta_data_case_insensitive() {
    let drive = drive(json!({"disk_wipe_mode": " ALL "}));
    let orders = merge(&cmd("ocimetal.disk_wipe_mode=target"), None, Some(&drive)).unwrap();
    assert_eq!(
        orders.wipe_mode,
        Some(Sourced::new(
            WipeMode::All,
            Source::MetaData,
            "meta_data.disk_wipe_mode"
        ))
    );
}

#[test]
fn wipe_rung_2_cmdline() {
    let drive = drive(json!({"disk_wipe_mode": ""}));
    let orders = merge(&cmd("ocimetal.disk_wipe_mode=Target"), None, Some(&drive)).unwrap();
    assert_eq!(
        orders.wipe_mode,
        Some(Sourced::new(
            WipeMode::Target,
            Source::Cmdline,
            "ocimetal.disk_wipe_mode"
        ))
    );
}

#[test]
fn wipe_rung_3_none_leaves_it_to_the_planner() {
    let orders = merge(&CmdlineOrders::default(), None, Some(&drive(json!({})))).unwrap();
    assert_eq!(orders.wipe_mode, None);
}

#[test]
fn wipe_invalid_values() {
    let err = merge(
        &CmdlineOrders::default(),
        None,
        Some(&drive(json!({"disk_wipe_mode": "everything"}))),
    )
    .unwrap_err();
    assert_eq!(err.field, "meta_data.disk_wipe_mode");
    assert!(err.problem.contains("\"everything\"") && err.problem.contains("all, target"));
    let err = merge(
        &CmdlineOrders::default(),
        None,
        Some(&drive(json!({"disk_wipe_mode": true}))),
    )
    .unwrap_err();
    assert_eq!(err.field, "meta_data.disk_wipe_mode");
    assert!(err.problem.contains("boolean true"));
}

// --- hostname: local-hostname → local_hostname → hostname → metal3-name → name

#[test]
fn hostname_ladder() {
    let all = json!({
        "local-hostname": "a", "local_hostname": "b", "hostname": "c", "metal3-name": "d", "name": "e"
    });
    let mut meta = all.as_object().unwrap().clone();
    for (key, value) in [
        ("local-hostname", "a"),
        ("local_hostname", "b"),
        ("hostname", "c"),
        ("metal3-name", "d"),
        ("name", "e"),
    ] {
        let drive = drive(Value::Object(meta.clone()));
        let orders = merge(&CmdlineOrders::default(), None, Some(&drive)).unwrap();
        let hostname = orders.hostname.unwrap();
        assert_eq!(hostname.value, value);
        assert_eq!(hostname.key, format!("meta_data.{key}"));
        assert_eq!(hostname.source, Source::MetaData);
        // A blank value counts as absent: the next key wins.
        meta.insert(key.to_string(), json!("  "));
    }
    let drive = drive(Value::Object(meta));
    assert_eq!(
        merge(&CmdlineOrders::default(), None, Some(&drive))
            .unwrap()
            .hostname,
        None
    );
}

#[test]
fn hostname_and_metal3_name_type_errors() {
    let err = merge(
        &CmdlineOrders::default(),
        None,
        Some(&drive(json!({"hostname": ["x"]}))),
    )
    .unwrap_err();
    assert_eq!(err.field, "meta_data.hostname");
    let err = merge(
        &CmdlineOrders::default(),
        None,
        Some(&drive(json!({"metal3-name": 1}))),
    )
    .unwrap_err();
    assert_eq!(err.field, "meta_data.metal3-name");
}

#[test]
fn metal3_name_and_configdrive_content_are_carried() {
    let mut d = drive(json!({"metal3-name": "bmh-7", "metal3-namespace": "metal3"}));
    d.user_data = Some(Secret::new(b"#cloud-config\n".to_vec()));
    d.network_data = Some(json!({"links": []}));
    let orders = merge(&CmdlineOrders::default(), None, Some(&d)).unwrap();
    assert_eq!(orders.metal3_name.as_deref(), Some("bmh-7"));
    assert_eq!(orders.meta_data["metal3-namespace"], "metal3");
    assert_eq!(orders.user_data.unwrap().expose(), b"#cloud-config\n");
    assert_eq!(orders.network_data, Some(json!({"links": []})));
    assert_eq!(orders.configdrive_origin.as_deref(), Some("test-drive"));
}

// --- which configdrive

#[test]
fn given_drive_beats_the_node_inline_one() {
    let mut node = node_with(None, None);
    node.configdrive = Some(NodeConfigDrive::Inline(drive(
        json!({"hostname": "inline"}),
    )));
    let orders = merge(&CmdlineOrders::default(), Some(&node), None).unwrap();
    assert_eq!(orders.hostname.unwrap().value, "inline");
    let medium = drive(json!({"hostname": "medium"}));
    let orders = merge(&CmdlineOrders::default(), Some(&node), Some(&medium)).unwrap();
    assert_eq!(orders.hostname.unwrap().value, "medium");
}

// --- cmdline-only values, reboot, node fields

#[test]
fn cmdline_values_are_carried() {
    let orders = merge(
        &cmd(concat!(
            "ocimetal.reboot=kexec ocimetal.force ocimetal.debug ocimetal.dry_run ",
            "ocimetal.insecure_registry=r:5000 ocimetal.registry_mirror=docker.io=http://m:5000 ",
            "ocimetal.auth_file=/a.json ocimetal.ca_file=/ca.pem ocimetal.apt_proxy=http://p:3142"
        )),
        None,
        None,
    )
    .unwrap();
    assert_eq!(
        orders.reboot,
        Sourced::new(RebootAction::Kexec, Source::Cmdline, "ocimetal.reboot")
    );
    assert!(orders.force && orders.debug && orders.dry_run);
    assert_eq!(orders.insecure_registries, vec!["r:5000"]);
    assert_eq!(
        orders.registry_mirrors,
        vec![RegistryMirror {
            registry: "docker.io".into(),
            endpoint: "http://m:5000".into()
        }]
    );
    assert_eq!(
        orders.auth_file.as_deref(),
        Some(std::path::Path::new("/a.json"))
    );
    assert_eq!(
        orders.ca_file.as_deref(),
        Some(std::path::Path::new("/ca.pem"))
    );
    assert_eq!(orders.apt_proxy.as_deref(), Some("http://p:3142"));
}

#[test]
fn node_uuid_and_pull_secret_are_carried() {
    let mut node = node_with(None, None);
    node.image_pull_secret = Some(Secret::new(b"u:p".to_vec()));
    let orders = merge(&CmdlineOrders::default(), Some(&node), None).unwrap();
    assert_eq!(orders.node_uuid.as_deref(), Some("node-uuid"));
    assert_eq!(orders.image_pull_secret.unwrap().expose(), b"u:p");
}

// --- redaction

fn secret_orders() -> Orders {
    let mut d = drive(json!({
        "admin_pass": "SECRET-admin",
        "password": "SECRET-password",
        "meta": {"api_token": "SECRET-token", "role": "web"},
        "client_secret": "SECRET-client",
        "local-hostname": "host-1"
    }));
    d.user_data = Some(Secret::new(
        b"#cloud-config\npassword: SECRET-userdata\n".to_vec(),
    ));
    let mut node = node_with(Some("oci://debian:13"), None);
    node.image_pull_secret = Some(Secret::new(b"robot:SECRET-pull".to_vec()));
    merge(
        &cmd("ocimetal.apt_proxy=http://user:SECRET-proxy@proxy:3142"),
        Some(&node),
        Some(&d),
    )
    .unwrap()
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains("SECRET-"), "a secret leaked: {text}");
}

#[test]
fn secrets_never_appear_in_debug() {
    let orders = secret_orders();
    let debug = format!("{orders:?}");
    assert_no_secret(&debug);
    assert!(
        debug.contains("host-1") && debug.contains("role"),
        "{debug}"
    );
    assert_no_secret(&format!("{orders:#?}"));
}

#[test]
fn secrets_never_appear_in_serialize() {
    let orders = secret_orders();
    let text = serde_json::to_string(&orders).unwrap();
    assert_no_secret(&text);
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["meta_data"]["admin_pass"], "<redacted>");
    assert_eq!(value["meta_data"]["meta"]["role"], "web");
    assert_eq!(value["user_data"], "<redacted>");
    assert_eq!(value["image_pull_secret"], "<redacted>");
    assert_eq!(value["apt_proxy"], "http://user:redacted@proxy:3142/");
    assert_eq!(value["image"]["key"], "instance_info.image_source");
    assert_no_secret(&serde_yaml::to_string(&orders).unwrap());
}

#[test]
fn summary_shows_every_value_with_its_source_and_no_secret() {
    let orders = secret_orders();
    let summary = redacted_summary(&orders);
    assert_no_secret(&summary);
    assert!(summary.lines().count() <= 3, "{summary}");
    assert!(
        summary.contains("image=debian:13 (instance_info.image_source)"),
        "{summary}"
    );
    assert!(
        summary.contains("hostname=host-1 (meta_data.local-hostname)"),
        "{summary}"
    );
    assert!(summary.contains("reboot=reboot (default)"), "{summary}");
    assert!(summary.contains("node=node-uuid"), "{summary}");
    assert!(summary.contains("user_data=<redacted, "), "{summary}");
    assert!(
        summary.contains("image_pull_secret=<redacted, 17 bytes>"),
        "{summary}"
    );
    assert!(summary.contains("configdrive=test-drive"), "{summary}");
}

#[test]
fn summary_of_defaults() {
    let summary = redacted_summary(&merge(&CmdlineOrders::default(), None, None).unwrap());
    assert!(
        summary.contains("image=ubuntu:24.04 (default)"),
        "{summary}"
    );
    assert!(summary.contains("root_device_hints=none"), "{summary}");
    assert!(summary.contains("disk_wipe_mode=default"), "{summary}");
    assert!(summary.contains("user_data=none"), "{summary}");
}
