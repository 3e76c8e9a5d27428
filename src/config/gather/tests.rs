//! Gathering orders from files, URLs and command lines.

use super::*;
use crate::config::configdrive::tests::{ironic_string, iso_from_tree, write_tree};
use crate::config::configdrive::ConfigDrive;
use crate::config::fetch;
use crate::config::fetch::tests::serve;
use crate::config::placeholders::MachineFacts;
use crate::config::{redacted_summary, Source};
use crate::error::OrderError;
use serde_json::json;
use std::fs;
use std::path::Path;

fn opts(cmdline: &str) -> GatherOptions {
    GatherOptions {
        cmdline: Some(cmdline.to_string()),
        ..GatherOptions::default()
    }
}

#[test]
fn directory_given_as_option() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &json!({"oci_image": "debian:13", "root_device_hints": "serial=S1", "local-hostname": "n1"}),
        Some(b"#cloud-config\n"),
        None,
    );
    let orders = gather(&GatherOptions {
        configdrive: Some(dir.path().to_path_buf()),
        ..opts("quiet")
    })
    .unwrap();
    assert_eq!(orders.image.value, "debian:13");
    assert_eq!(orders.image.source, Source::MetaData);
    assert_eq!(orders.hostname.unwrap().value, "n1");
    assert_eq!(
        orders.configdrive_origin.as_deref(),
        Some(dir.path().display().to_string().as_str())
    );
}

#[test]
fn cmdline_names_configdrive_iso_and_node_file() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    write_tree(&tree, &json!({"disk_wipe_mode": "all"}), None, None);
    let Some(iso) = iso_from_tree(&tree) else {
        return;
    };
    let iso_path = dir.path().join("cd.iso");
    fs::write(&iso_path, iso).unwrap();
    let node_path = dir.path().join("node.json");
    fs::write(
        &node_path,
        json!({"uuid": "n-9", "instance_info": {"image_source": "oci://r/x:1"}}).to_string(),
    )
    .unwrap();
    let orders = gather(&opts(&format!(
        "ocimetal.node={} ocimetal.configdrive={}",
        node_path.display(),
        iso_path.display()
    )))
    .unwrap();
    assert_eq!(orders.node_uuid.as_deref(), Some("n-9"));
    assert_eq!(orders.image.value, "r/x:1");
    assert_eq!(orders.wipe_mode.unwrap().key, "meta_data.disk_wipe_mode");
}

#[test]
fn option_overrides_cmdline_configdrive_and_node() {
    let dir = tempfile::tempdir().unwrap();
    let chosen = dir.path().join("chosen");
    write_tree(&chosen, &json!({"hostname": "chosen"}), None, None);
    let node_path = dir.path().join("node.json");
    fs::write(&node_path, json!({"uuid": "from-option"}).to_string()).unwrap();
    let orders = gather(&GatherOptions {
        cmdline: Some("ocimetal.configdrive=/nonexistent ocimetal.node=/nonexistent".into()),
        node: Some(node_path.display().to_string()),
        configdrive: Some(chosen),
        ..GatherOptions::default()
    })
    .unwrap();
    assert_eq!(orders.hostname.unwrap().value, "chosen");
    assert_eq!(orders.node_uuid.as_deref(), Some("from-option"));
}

#[test]
fn node_url_with_configdrive_url() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    write_tree(&tree, &json!({"metal3-name": "bmh-1"}), Some(b"ud"), None);
    let Some(iso) = iso_from_tree(&tree) else {
        return;
    };
    let base = serve(vec![("/cd", 200, ironic_string(&iso).into_bytes())]);
    let node = json!({"uuid": "u", "instance_info": {"configdrive": format!("{base}/cd")}});
    let base2 = serve(vec![("/node", 200, node.to_string().into_bytes())]);
    let orders = gather(&opts(&format!("ocimetal.node={base2}/node"))).unwrap();
    assert_eq!(orders.metal3_name.as_deref(), Some("bmh-1"));
    assert_eq!(orders.hostname.unwrap().key, "meta_data.metal3-name");
    assert_eq!(orders.user_data.unwrap().expose(), b"ud");
}

fn two_nics() -> Machine {
    Machine::with(MachineFacts {
        macs: vec!["52-54-00-00-00-01".into(), "52-54-00-00-00-02".into()],
        ..Default::default()
    })
}

fn one_nic() -> Machine {
    Machine::with(MachineFacts {
        macs: vec!["52-54-00-00-00-01".into()],
        ..Default::default()
    })
}

#[test]
fn a_per_machine_node_url_is_tried_for_each_mac_and_404_everywhere_is_none() {
    let node = json!({"uuid": "n-mac2", "instance_info": {"image_source": "oci://lab/x:1"}});
    let base = serve(vec![
        ("/nodes/52-54-00-00-00-01.json", 404, b"no".to_vec()),
        (
            "/nodes/52-54-00-00-00-02.json",
            200,
            node.to_string().into_bytes(),
        ),
    ]);
    let template = format!("{base}/nodes/{{mac}}.json");
    let found = per_machine::node(&template, &two_nics())
        .unwrap()
        .expect("the second NIC's document");
    assert_eq!(found.uuid.as_deref(), Some("n-mac2"));
    assert!(per_machine::node(&template, &one_nic()).unwrap().is_none());
    // Another failure is not "not this machine".
    let err = per_machine::node("http://127.0.0.1:9/{mac}", &two_nics()).unwrap_err();
    assert!(!err.chain().any(|e| e.is::<fetch::NotFound>()), "{err:#}");
}

/// A config-2 ISO image whose meta_data names `host` and whose user_data is `user_data`;
/// `None` without xorriso.
fn drive_iso(dir: &Path, host: &str, user_data: &[u8]) -> Option<Vec<u8>> {
    let tree = dir.join(host);
    write_tree(
        &tree,
        &json!({"local-hostname": host}),
        Some(user_data),
        None,
    );
    iso_from_tree(&tree)
}

#[test]
fn a_configdrive_url_shares_the_node_urls_rules() {
    let dir = tempfile::tempdir().unwrap();
    let Some(iso) = drive_iso(dir.path(), "by-mac", b"ud") else {
        return;
    };
    let base = serve(vec![
        (
            "/cd/52-54-00-00-00-02.iso",
            200,
            ironic_string(&iso).into_bytes(),
        ),
        ("/garbage", 200, b"<html>oops</html>".to_vec()),
    ]);
    let template = format!("{base}/cd/{{mac}}.iso");
    let drive = per_machine::configdrive(&template, &two_nics())
        .unwrap()
        .expect("the second NIC's drive");
    assert_eq!(drive.meta_data["local-hostname"], "by-mac");
    assert_eq!(
        drive.origin,
        format!("ocimetal.configdrive_url {base}/cd/52-54-00-00-00-02.iso")
    );
    assert!(per_machine::configdrive(&template, &one_nic())
        .unwrap()
        .is_none());
    // Not a template: named, so a 404 is an error, as for ocimetal.node=.
    let err = per_machine::configdrive(&format!("{base}/cd/x.iso"), &one_nic()).unwrap_err();
    assert!(err.chain().any(|e| e.is::<fetch::NotFound>()), "{err:#}");
    let err =
        per_machine::configdrive(&format!("{base}/garbage?sig=s3cr3t"), &one_nic()).unwrap_err();
    let order = err.downcast_ref::<OrderError>().expect("an invalid order");
    assert_eq!(
        order.field,
        format!("ocimetal.configdrive_url {base}/garbage?redacted")
    );
    // Placeholders are checked as for the node.
    let err = per_machine::configdrive("http://lab/{uuid}", &one_nic()).unwrap_err();
    assert_eq!(
        err.downcast_ref::<OrderError>().unwrap().field,
        "ocimetal.configdrive_url"
    );
}

#[test]
fn the_configdrive_url_ranks_below_the_node_and_above_the_installer_iso() {
    let dir = tempfile::tempdir().unwrap();
    let Some(iso) = drive_iso(dir.path(), "from-url", b"ud") else {
        return;
    };
    let base = serve(vec![
        ("/cd/52-54-00-00-00-01", 200, iso),
        ("/broken", 500, b"never fetched".to_vec()),
    ]);
    // Alone, it gives the orders.
    let orders = gather_on(
        &opts(&format!("ocimetal.configdrive_url={base}/cd/{{mac}}")),
        &one_nic(),
    )
    .unwrap();
    assert_eq!(orders.hostname.unwrap().value, "from-url");
    assert_eq!(
        orders.configdrive_source.as_deref(),
        Some("ocimetal.configdrive_url")
    );
    assert_eq!(orders.user_data_source.as_deref(), Some("configdrive"));

    // A node's configdrive wins, and the URL is not even fetched.
    let node_path = dir.path().join("node.json");
    let node = json!({"instance_info": {"configdrive": {"meta_data": {"hostname": "from-node"}}}});
    fs::write(&node_path, node.to_string()).unwrap();
    let orders = gather_on(
        &GatherOptions {
            node: Some(node_path.display().to_string()),
            ..opts(&format!("ocimetal.configdrive_url={base}/broken"))
        },
        &one_nic(),
    )
    .unwrap();
    assert_eq!(orders.hostname.unwrap().value, "from-node");
    assert_eq!(
        orders.configdrive_source.as_deref(),
        Some("instance_info.configdrive")
    );

    // It wins over the drive the installer ISO carries, which is used when it gives none.
    let carried = Embedded {
        origin: "/dev/sr0:/ocimetal/orders.img".into(),
        node: None,
        drive: Some(
            ConfigDrive::from_dict(&json!({"meta_data": {"hostname": "carried"}}), "carried")
                .unwrap(),
        ),
    };
    let with_carried = |cmdline: String| GatherOptions {
        embedded: EmbeddedSource::Given(Box::new(carried.clone())),
        ..opts(&cmdline)
    };
    let template = format!("ocimetal.configdrive_url={base}/cd/{{mac}}");
    let orders = gather_on(&with_carried(template.clone()), &one_nic()).unwrap();
    assert_eq!(orders.hostname.unwrap().value, "from-url");
    let orders = gather_on(&with_carried(template), &other_nic()).unwrap();
    assert_eq!(orders.hostname.unwrap().value, "carried");
    assert_eq!(orders.configdrive_source.as_deref(), Some("installer ISO"));
}

/// A machine with one NIC, not the one the test servers know.
fn other_nic() -> Machine {
    Machine::with(MachineFacts {
        macs: vec!["52-54-00-00-00-02".into()],
        ..Default::default()
    })
}

#[test]
fn a_configdrive_url_answered_404_everywhere_is_no_orders() {
    let base = serve(vec![]);
    let err = gather_on(
        &GatherOptions {
            embedded: EmbeddedSource::None,
            ..opts(&format!("ocimetal.configdrive_url={base}/cd/{{mac}}.iso"))
        },
        &two_nics(),
    )
    .unwrap_err();
    assert!(
        err.downcast_ref::<crate::error::NoOrders>().is_some(),
        "{err:#}"
    );
}

#[test]
fn user_data_from_its_url_replaces_or_supplies_the_configdrives() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &json!({"hostname": "h"}),
        Some(b"drive-ud"),
        None,
    );
    let base = serve(vec![
        (
            "/ud/52-54-00-00-00-01",
            200,
            b"#cloud-config\nurl-ud\n".to_vec(),
        ),
        ("/broken", 500, b"never fetched".to_vec()),
    ]);
    let with_drive = |cmdline: &str| GatherOptions {
        configdrive: Some(dir.path().to_path_buf()),
        ..opts(cmdline)
    };
    let url = format!("ocimetal.user_data_url={base}/ud/{{mac}}");
    let orders = gather_on(&with_drive(&url), &one_nic()).unwrap();
    assert_eq!(
        orders.user_data.as_ref().unwrap().expose(),
        b"#cloud-config\nurl-ud\n"
    );
    assert_eq!(
        orders.user_data_source.as_deref(),
        Some("ocimetal.user_data_url")
    );
    let summary = redacted_summary(&orders);
    assert!(!summary.contains("url-ud"), "{summary}");
    assert!(summary.contains("(ocimetal.user_data_url)"), "{summary}");
    // Answered 404 everywhere: the configdrive's stays.
    let orders = gather_on(&with_drive(&url), &other_nic()).unwrap();
    assert_eq!(orders.user_data.as_ref().unwrap().expose(), b"drive-ud");
    assert_eq!(orders.user_data_source.as_deref(), Some("configdrive"));
    // No configdrive: it supplies the user_data of orders from elsewhere.
    let orders = gather_on(
        &opts(&format!("ocimetal.image=debian:13 {url}")),
        &one_nic(),
    )
    .unwrap();
    assert_eq!(
        orders.user_data.as_ref().unwrap().expose(),
        b"#cloud-config\nurl-ud\n"
    );
    // On its own it orders nothing, and is not fetched.
    let err = gather_on(
        &GatherOptions {
            embedded: EmbeddedSource::None,
            ..opts(&format!("ocimetal.user_data_url={base}/broken"))
        },
        &one_nic(),
    )
    .unwrap_err();
    assert!(
        err.downcast_ref::<crate::error::NoOrders>().is_some(),
        "{err:#}"
    );
}

#[test]
fn inline_node_configdrive_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let node_path = dir.path().join("node.json");
    let node = json!({"instance_info": {"configdrive": {"meta_data": {"oci_image": "alpine:3"}}}});
    fs::write(&node_path, node.to_string()).unwrap();
    let orders = gather(&GatherOptions {
        node: Some(node_path.display().to_string()),
        ..opts("")
    })
    .unwrap();
    assert_eq!(orders.image.value, "alpine:3");
    assert_eq!(
        orders.configdrive_origin.as_deref(),
        Some("instance_info.configdrive")
    );
}

#[test]
fn bad_input_is_an_order_error() {
    let err = gather(&opts("ocimetal.bogus=1")).unwrap_err();
    assert_eq!(
        err.downcast_ref::<OrderError>().unwrap().field,
        "ocimetal.bogus"
    );
    let err = gather(&GatherOptions {
        configdrive: Some("/nonexistent/cd".into()),
        ..opts("")
    })
    .unwrap_err();
    let order = err.downcast_ref::<OrderError>().unwrap();
    assert_eq!(order.field, "--configdrive");
    assert!(order.problem.contains("/nonexistent/cd"));
    let dir = tempfile::tempdir().unwrap();
    let not_iso = dir.path().join("x.img");
    fs::write(&not_iso, vec![0u8; 40000]).unwrap();
    let err = gather(&opts(&format!(
        "ocimetal.configdrive={}",
        not_iso.display()
    )))
    .unwrap_err();
    assert!(err
        .downcast_ref::<OrderError>()
        .unwrap()
        .problem
        .contains("ISO 9660"));
}

#[test]
fn summary_of_gathered_orders_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &json!({"admin_pass": "pw-in-meta"}),
        Some(b"user-data-secret"),
        None,
    );
    let orders = gather(&GatherOptions {
        configdrive: Some(dir.path().to_path_buf()),
        ..opts("ocimetal.apt_proxy=http://u:proxypw@proxy:3142")
    })
    .unwrap();
    let summary = redacted_summary(&orders);
    for secret in ["pw-in-meta", "user-data-secret", "proxypw"] {
        assert!(!summary.contains(secret), "{summary}");
    }
    assert!(
        summary.contains("admin_pass"),
        "key names are listed: {summary}"
    );
}
