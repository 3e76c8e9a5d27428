//! Which order wins, end to end: node JSON, configdrive (directory, ISO, inline, Ironic's
//! string) and command line, read from real files by the built binary; the plan's JSON and
//! summary; what `ocimetal devices` lists.

use super::support::{
    build_iso, file_paths, fixture, have_xorriso, ironic_string, ocimetal, step, strings,
    write_tree, DriveForm, Orders,
};
use serde_json::{json, Value};

const UUID: &str = "0e4d5b1a-9c1f-4f4e-8a55-3f1d2b9c0a11";

fn node_info(info: Value) -> Value {
    json!({"uuid": UUID, "instance_info": info})
}

fn image_of(plan: &Value) -> (String, String) {
    (
        plan["image"].as_str().unwrap().to_string(),
        plan["image_source"].as_str().unwrap().to_string(),
    )
}

fn pair(image: &str, source: &str) -> (String, String) {
    (image.to_string(), source.to_string())
}

#[test]
fn image_comes_from_image_source_then_cmdline_then_meta_data_then_default() {
    let meta =
        json!({"uuid": UUID, "oci_image": "debian:12", "root_device_hints": "serial=S-ALPHA"});
    let cmdline = "ocimetal.image=quay.io/team/os:3";
    let node = |source: &str| node_info(json!({"image_source": source}));
    let all = Orders::node(node("oci://registry.lab:5000/team/os:1.2"))
        .with_meta(meta.clone())
        .with_cmdline(cmdline);
    assert_eq!(
        image_of(&all.plan()),
        pair(
            "registry.lab:5000/team/os:1.2",
            "instance_info.image_source"
        )
    );
    // An empty oci:// and any other scheme fall through to the next rung.
    for source in [
        "oci://",
        " oci://  ",
        "http://images.lab/os.qcow2",
        "https://images.lab/os.img?temp_url_sig=abc",
        "5f8a9b1c-glance-uuid",
    ] {
        let orders = Orders::node(node(source))
            .with_meta(meta.clone())
            .with_cmdline(cmdline);
        let run = orders.run(true);
        assert_eq!(
            image_of(&run.json()),
            pair("quay.io/team/os:3", "ocimetal.image"),
            "{source}"
        );
        assert!(
            run.stderr.contains("instance_info.image_source"),
            "the fallback is reported: {run:?}"
        );
        assert!(
            !run.stderr.contains('\x1b'),
            "no colour codes when stderr is not a terminal: {run:?}"
        );
        let orders = Orders::node(node(source)).with_meta(meta.clone());
        assert_eq!(
            image_of(&orders.plan()),
            pair("docker.io/library/debian:12", "meta_data.oci_image"),
            "{source}"
        );
    }
    let meta_only = Orders::meta(meta.clone());
    assert_eq!(
        image_of(&meta_only.plan()),
        pair("docker.io/library/debian:12", "meta_data.oci_image")
    );
    // `oci://` is accepted (and removed) on the two other rungs too.
    let prefixed = Orders::meta(json!({"uuid": UUID, "oci_image": "oci://debian:13", "root_device_hints": "serial=S-ALPHA"}))
        .with_cmdline("ocimetal.image=oci://");
    assert_eq!(
        image_of(&prefixed.plan()),
        pair("docker.io/library/debian:13", "meta_data.oci_image")
    );
    let prefixed = Orders::meta(meta.clone()).with_cmdline("ocimetal.image=oci://alpine:3");
    assert_eq!(
        image_of(&prefixed.plan()),
        pair("docker.io/library/alpine:3", "ocimetal.image")
    );
    for blank in [json!("   "), json!(""), Value::Null] {
        let orders = Orders::meta(
            json!({"uuid": UUID, "oci_image": blank, "root_device_hints": "serial=S-ALPHA"}),
        );
        assert_eq!(
            image_of(&orders.plan()),
            pair("docker.io/library/ubuntu:24.04", "default"),
            "{blank}"
        );
    }
    let nothing = Orders::node(node_info(json!({"root_device": {"serial": "S-ALPHA"}})));
    assert_eq!(
        image_of(&nothing.plan()),
        pair("docker.io/library/ubuntu:24.04", "default")
    );
}

#[test]
fn image_references_are_normalised() {
    let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
    let cases = [
        ("ubuntu:24.04", "docker.io/library/ubuntu:24.04".to_string()),
        ("debian", "docker.io/library/debian:latest".to_string()),
        ("team/app:1", "docker.io/team/app:1".to_string()),
        ("localhost:5000/x:1", "localhost:5000/x:1".to_string()),
        (
            "10.0.2.2:5000/debian:13",
            "10.0.2.2:5000/debian:13".to_string(),
        ),
        ("registry.lab/a/b/c:2", "registry.lab/a/b/c:2".to_string()),
        (
            &*format!("debian@{digest}"),
            format!("docker.io/library/debian@{digest}"),
        ),
        (
            &*format!("registry.lab:5000/os:1@{digest}"),
            format!("registry.lab:5000/os:1@{digest}"),
        ),
    ];
    for (image, normalised) in cases {
        let orders = Orders::cmdline(&format!(
            "ocimetal.image={image} ocimetal.root_device_hints=serial=S-ALPHA"
        ))
        .with_meta(json!({"uuid": UUID}));
        let plan = orders.plan();
        assert_eq!(plan["image"], normalised, "{image}");
        let pull = step(&plan, "pull");
        assert!(
            pull["detail"].as_str().unwrap().contains(&normalised),
            "the pull step uses the normalised reference: {pull}"
        );
    }
}

#[test]
fn hints_come_from_meta_data_then_cmdline_then_instance_info() {
    let node = node_info(json!({"root_device": {"serial": "S-NVME"}}));
    let meta = |hints: Value| json!({"uuid": UUID, "root_device_hints": hints});
    let cmdline = "ocimetal.root_device_hints=serial=S-BRAVO";
    let chosen = |orders: Orders| {
        let plan = orders.plan();
        (
            strings(&plan["disks"]),
            plan["hints_source"].as_str().unwrap().to_string(),
        )
    };
    let all = Orders::node(node.clone())
        .with_meta(meta(json!("serial=S-ALPHA")))
        .with_cmdline(cmdline);
    assert_eq!(
        chosen(all),
        (
            vec!["/dev/sda".to_string()],
            "meta_data.root_device_hints".to_string()
        )
    );
    for absent in [json!(""), json!("  "), Value::Null] {
        let orders = Orders::node(node.clone())
            .with_meta(meta(absent.clone()))
            .with_cmdline(cmdline);
        assert_eq!(
            chosen(orders),
            (
                vec!["/dev/sdb".to_string()],
                "ocimetal.root_device_hints".to_string()
            ),
            "{absent}"
        );
    }
    assert_eq!(
        chosen(Orders::node(node.clone())),
        (
            vec!["/dev/nvme0n1".to_string()],
            "instance_info.root_device".to_string()
        )
    );
    // The command line also takes Ironic's dictionary, and the short form's other name.
    let json_form = Orders::node(node.clone())
        .with_cmdline(r#"ocimetal.root_device_hints={"wwn":"0x5000000000000bbb"}"#);
    assert_eq!(chosen(json_form).0, vec!["/dev/sdb".to_string()]);
    let wwn = Orders::meta(meta(json!("WWN = 0x5000000000000aaa")));
    assert_eq!(chosen(wwn).0, vec!["/dev/sda".to_string()]);
    // Quoted on the command line because of the space: a RAID1 pair.
    let pair =
        Orders::node(node).with_cmdline(r#"ocimetal.root_device_hints="serial=S-BRAVO S-ALPHA""#);
    let plan = pair.plan();
    assert_eq!(strings(&plan["disks"]), ["/dev/sdb", "/dev/sda"]);
    assert_eq!(plan["raid"], true);
}

#[test]
fn dictionary_hints_use_ipa_operators() {
    let cases = [
        (json!({"size": ">= 800"}), "/dev/nvme0n1"),
        (json!({"size": "< 500", "serial": "<in> BRAVO"}), "/dev/sdb"),
        (json!({"model": "<in> MZQL2"}), "/dev/nvme0n1"),
        (json!({"name": "/dev/sdb"}), "/dev/sdb"),
        (json!({"hctl": "0:0:0:0"}), "/dev/sda"),
        (
            json!({"tran": "nvme", "rotational": "false"}),
            "/dev/nvme0n1",
        ),
        (json!({"serial": "s-alpha"}), "/dev/sda"),
        (
            json!({"wwn": "s!= 0x5000000000000aaa", "tran": "sata"}),
            "/dev/sdb",
        ),
    ];
    for (hints, disk) in cases {
        let plan = Orders::node(node_info(json!({"root_device": hints.clone()}))).plan();
        assert_eq!(strings(&plan["disks"]), [disk], "{hints}");
        assert_eq!(plan["raid"], false);
    }
}

#[test]
fn wipe_mode_comes_from_meta_data_then_cmdline_then_the_disk_count() {
    let raid = |wipe_mode: Option<&str>| {
        let mut meta = json!({"uuid": UUID, "root_device_hints": "serial=S-ALPHA S-BRAVO"});
        if let Some(mode) = wipe_mode {
            meta["disk_wipe_mode"] = json!(mode);
        }
        Orders::meta(meta)
    };
    let wipe = |orders: Orders| {
        let plan = orders.plan();
        (
            plan["wipe_mode"].as_str().unwrap().to_string(),
            plan["wipe_mode_source"].as_str().unwrap().to_string(),
            strings(&plan["wipe"]),
        )
    };
    let every_disk = vec![
        "/dev/sda".to_string(),
        "/dev/sdb".to_string(),
        "/dev/nvme0n1".to_string(),
    ];
    let pair = vec!["/dev/sda".to_string(), "/dev/sdb".to_string()];
    assert_eq!(
        wipe(raid(None)),
        ("all".into(), "default for RAID1".into(), every_disk.clone())
    );
    assert_eq!(
        wipe(raid(None).with_cmdline("ocimetal.disk_wipe_mode=target")),
        (
            "target".into(),
            "ocimetal.disk_wipe_mode".into(),
            pair.clone()
        )
    );
    assert_eq!(
        wipe(raid(Some(" Target ")).with_cmdline("ocimetal.disk_wipe_mode=all")),
        (
            "target".into(),
            "meta_data.disk_wipe_mode".into(),
            pair.clone()
        )
    );
    assert_eq!(
        wipe(raid(Some("")).with_cmdline("ocimetal.disk_wipe_mode=target")),
        ("target".into(), "ocimetal.disk_wipe_mode".into(), pair),
        "a blank meta_data value counts as not given"
    );
    let single = |cmdline: &str| {
        Orders::meta(json!({"uuid": UUID, "root_device_hints": "serial=S-NVME"}))
            .with_cmdline(cmdline)
    };
    assert_eq!(
        wipe(single("")),
        (
            "target".into(),
            "default for one disk".into(),
            vec!["/dev/nvme0n1".to_string()]
        )
    );
    assert_eq!(
        wipe(single("ocimetal.disk_wipe_mode=ALL")),
        ("all".into(), "ocimetal.disk_wipe_mode".into(), every_disk)
    );
}

#[test]
fn hostname_keys_in_order() {
    let keys = [
        "local-hostname",
        "local_hostname",
        "hostname",
        "metal3-name",
        "name",
    ];
    for (index, key) in keys.iter().enumerate() {
        let mut meta = json!({"uuid": UUID, "root_device_hints": "serial=S-ALPHA"});
        for (later, name) in keys.iter().enumerate().skip(index) {
            meta[*name] = json!(format!("host-{later}"));
        }
        for earlier in &keys[..index] {
            meta[*earlier] = json!("  ");
        }
        let plan = Orders::meta(meta).plan();
        assert_eq!(plan["hostname"], format!("host-{index}"), "{key}");
        assert!(file_paths(&plan).contains(&"/etc/hostname".to_string()));
    }
    let plan = Orders::meta(json!({"uuid": UUID, "root_device_hints": "serial=S-ALPHA"})).plan();
    assert_eq!(plan["hostname"], Value::Null);
    assert!(!file_paths(&plan).contains(&"/etc/hostname".to_string()));
}

#[test]
fn raid_homehost_is_metal3_name_then_hostname() {
    let homehost = |meta: Value| step(&Orders::meta(meta).plan(), "raid")["homehost"].clone();
    let base = json!({"uuid": UUID, "root_device_hints": "serial=S-ALPHA S-BRAVO"});
    let mut meta = base.clone();
    meta["metal3-name"] = json!("bmh-7");
    meta["local-hostname"] = json!("host-7");
    assert_eq!(homehost(meta), "bmh-7");
    let mut meta = base.clone();
    meta["local-hostname"] = json!("host-7");
    assert_eq!(homehost(meta), "host-7");
    assert_eq!(homehost(base), "ocimetal");
}

#[test]
fn reboot_action_from_the_command_line() {
    let meta = json!({"uuid": UUID, "root_device_hints": "serial=S-ALPHA"});
    for (cmdline, action) in [
        ("", "reboot"),
        ("ocimetal.reboot=poweroff", "poweroff"),
        ("ocimetal.reboot=KEXEC", "kexec"),
        ("ocimetal.reboot=none", "none"),
        ("ocimetal.reboot=none ocimetal.reboot=reboot", "reboot"),
    ] {
        let plan = Orders::meta(meta.clone()).with_cmdline(cmdline).plan();
        assert_eq!(plan["reboot"], action, "{cmdline}");
        let last = plan["steps"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            last,
            json!({"name": "reboot", "detail": action, "action": action}),
            "{cmdline}"
        );
    }
}

#[test]
fn json_plan_keys_and_steps() {
    let raid = ocimetal(&[
        "plan",
        "--json",
        "--arch",
        "x86_64",
        "--cmdline",
        "",
        "--inventory",
        &fixture("inventory.json").display().to_string(),
        "--node",
        &fixture("node.json").display().to_string(),
    ])
    .json();
    for key in [
        "image",
        "image_source",
        "platform",
        "disks",
        "disk_details",
        "hints",
        "hints_source",
        "raid",
        "wipe_mode",
        "wipe_mode_source",
        "wipe",
        "hostname",
        "reboot",
        "force",
        "steps",
    ] {
        assert!(raid.get(key).is_some(), "key {key} in {raid}");
    }
    assert_eq!(raid["image"], "registry.lab:5000/team/os:1.2");
    assert_eq!(raid["platform"], "linux/amd64");
    assert_eq!(strings(&raid["disks"]), ["/dev/sda", "/dev/sdb"]);
    assert_eq!(raid["raid"], true);
    assert_eq!(raid["hostname"], "rack1-node7");
    assert_eq!(
        strings(&step(&raid, "raid")["members"]),
        ["/dev/sda2", "/dev/sdb2"]
    );
    let names = |plan: &Value| -> Vec<String> {
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&raid),
        [
            "reentry",
            "validate",
            "wipe",
            "partition",
            "raid",
            "lvm",
            "mkfs",
            "mount",
            "pull",
            "mount",
            "packages",
            "files",
            "initramfs",
            "mount",
            "bootloader",
            "record",
            "finish",
            "efi-entries",
            "reboot"
        ]
    );
    let files = file_paths(&raid);
    assert!(files.contains(&"/var/lib/cloud/seed/nocloud-net/network-config".to_string()));
    let single = Orders::meta(json!({"uuid": UUID, "root_device_hints": "serial=S-NVME"})).plan();
    assert!(!names(&single).contains(&"raid".to_string()));
    assert_eq!(step(&single, "raid"), &Value::Null);
    assert_eq!(step(&single, "lvm")["pv"], "/dev/nvme0n1p2");
    assert_eq!(
        step(&single, "partition")["disks"][0]["partitions"][0]["device"],
        "/dev/nvme0n1p1"
    );
}

#[test]
fn arch_selects_the_platform() {
    let meta = json!({"uuid": UUID, "root_device_hints": "serial=S-ALPHA"});
    let mut orders = Orders::meta(meta.clone());
    orders.arch = Some("aarch64".into());
    let plan = orders.plan();
    assert_eq!(plan["platform"], "linux/arm64");
    assert_eq!(plan["arch"], "aarch64");
    assert_eq!(
        step(&plan, "bootloader")["installs"][0]["target"],
        "arm64-efi"
    );
    assert!(step(&plan, "efi-entries")["entries"][0]["loader"]
        .as_str()
        .unwrap()
        .ends_with("shimaa64.efi"));
    let packages = step(&plan, "packages")["rules"].to_string();
    assert!(
        packages.contains("arm64") && !packages.contains("amd64"),
        "{packages}"
    );
    orders.arch = Some("x86_64".into());
    assert_eq!(orders.plan()["platform"], "linux/amd64");
    // Without --arch, the machine's own.
    orders.arch = None;
    let host = match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        _ => return,
    };
    assert_eq!(orders.plan()["platform"], host);
}

/// The same meta_data through every way a configdrive arrives gives the same plan.
#[test]
fn configdrive_in_every_form() {
    let meta = json!({
        "uuid": UUID,
        "oci_image": "debian:13",
        "root_device_hints": "serial=S-BRAVO",
        "local-hostname": "every-form",
        "disk_wipe_mode": "all"
    });
    let user_data = "#cloud-config\nruncmd: [true]\n";
    let expect = |plan: &Value, how: &str| {
        assert_eq!(plan["image"], "docker.io/library/debian:13", "{how}");
        assert_eq!(plan["image_source"], "meta_data.oci_image", "{how}");
        assert_eq!(strings(&plan["disks"]), ["/dev/sdb"], "{how}");
        assert_eq!(plan["hostname"], "every-form", "{how}");
        assert_eq!(
            plan["wipe_mode_source"], "meta_data.disk_wipe_mode",
            "{how}"
        );
    };
    let mut forms = vec![DriveForm::Directory, DriveForm::CmdlineDirectory];
    if have_xorriso() {
        forms.push(DriveForm::Iso);
    } else {
        eprintln!("xorriso not found: the ISO form is not checked");
    }
    for form in forms {
        let mut orders = Orders::meta(meta.clone());
        orders.user_data = Some(user_data.into());
        orders.drive_form = form;
        expect(&orders.plan(), &format!("{form:?}"));
    }
    // Inline in the node document, as a dictionary.
    let inline =
        node_info(json!({"configdrive": {"meta_data": meta.clone(), "user_data": user_data}}));
    expect(&Orders::node(inline).plan(), "inline dictionary");
    // Inline as Ironic stores a built drive.
    if have_xorriso() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        write_tree(&tree, meta.to_string().into_bytes(), Some(user_data), None);
        let iso = dir.path().join("cd.iso");
        build_iso(&tree, &iso).unwrap();
        let text = ironic_string(&std::fs::read(&iso).unwrap());
        // Ironic may wrap the base64 text; line breaks are allowed.
        let wrapped: String = text
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        for stored in [text, wrapped] {
            let node = node_info(json!({"configdrive": stored}));
            expect(&Orders::node(node).plan(), "base64 gzip ISO string");
        }
    }
}

#[test]
fn named_configdrive_wins_over_the_nodes_own() {
    let args = |extra: &[&str]| {
        let mut args: Vec<String> = [
            "plan",
            "--json",
            "--arch",
            "x86_64",
            "--cmdline",
            "",
            "--inventory",
            &fixture("inventory.json").display().to_string(),
            "--node",
            &fixture("node.json").display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let drive = fixture("configdrive").display().to_string();
    let plan = ocimetal(&args(&["--configdrive", &drive])).json();
    // The image still comes from the node (instance_info.image_source is first)...
    assert_eq!(plan["image"], "registry.lab:5000/team/os:1.2");
    // ...but meta_data is the named drive's: its hints beat instance_info.root_device.
    assert_eq!(plan["hints_source"], "meta_data.root_device_hints");
    assert_eq!(strings(&plan["disks"]), ["/dev/sdb"]);
    assert_eq!(plan["hostname"], "cd-host");
    assert_eq!(plan["wipe_mode"], "target");
    // Without it, the node's inline drive.
    let plan = ocimetal(&args(&[])).json();
    assert_eq!(plan["hostname"], "rack1-node7");
    assert_eq!(plan["hints_source"], "instance_info.root_device");
}

#[test]
fn readable_summary_agrees_with_the_json() {
    let orders = Orders::meta(json!({
        "uuid": UUID,
        "root_device_hints": "serial=S-ALPHA S-BRAVO",
        "local-hostname": "summary-host",
        "oci_image": "debian:13"
    }))
    .with_cmdline("ocimetal.reboot=poweroff");
    let run = orders.run(false);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.is_empty(), "no warnings expected: {run:?}");
    let text = run.stdout;
    for expected in [
        "image        docker.io/library/debian:13 (linux/amd64) from meta_data.oci_image",
        "chosen by hints from meta_data.root_device_hints",
        "raid         RAID1 /dev/md0",
        "wipe         all (default for RAID1): /dev/sda, /dev/sdb, /dev/nvme0n1",
        "hostname     summary-host",
        "then         poweroff",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
}

#[test]
fn devices_lists_the_inventory() {
    let inventory = fixture("inventory.json").display().to_string();
    let run = ocimetal(&["devices", "--json", "--inventory", &inventory]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let listed: Value = serde_json::from_str(&run.stdout).unwrap();
    let given: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("inventory.json")).unwrap()).unwrap();
    assert_eq!(listed, given);
    let run = ocimetal(&["devices", "--inventory", &inventory]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{}", run.stdout);
    for (line, (name, serial)) in lines[1..].iter().zip([
        ("/dev/sda", "S-ALPHA"),
        ("/dev/sdb", "S-BRAVO"),
        ("/dev/nvme0n1", "S-NVME"),
    ]) {
        assert!(line.starts_with(name) && line.contains(serial), "{line}");
    }
    let run = ocimetal(&[
        "devices",
        "--inventory",
        &fixture("inventory-malformed.json").display().to_string(),
    ]);
    run.assert_refused("--inventory", &["inventory-malformed.json", "JSON array"]);
}

/// The commands docs/plan.md and docs/orders.md show, on the documented example files.
#[test]
fn documented_examples_work() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = |name: &str| root.join("docs/examples").join(name).display().to_string();
    let inventory = example("inventory.json");
    let run = |args: &[&str]| {
        let mut all = vec!["plan", "--inventory", &inventory];
        all.extend_from_slice(args);
        if !args.contains(&"--arch") {
            all.extend(["--arch", "x86_64"]);
        }
        ocimetal(&all).json()
    };
    let node = example("node-raid1.json");
    let plan = run(&["--cmdline", "", "--node", &node, "--json"]);
    assert_eq!(plan["image"], "docker.io/library/debian:13");
    assert_eq!(strings(&plan["disks"]), ["/dev/vda", "/dev/sda"]);
    assert_eq!(plan["hostname"], "worker-0");
    let drive = example("configdrive");
    let plan = run(&["--cmdline", "", "--configdrive", &drive, "--json"]);
    assert_eq!(plan["image"], "docker.io/library/debian:12");
    assert_eq!(strings(&plan["wipe"]), ["/dev/sda"]);
    // Command line only, as on the lab USB stick: no configdrive, no node, no hostname.
    let plan = run(&[
        "--cmdline",
        r#"console=ttyS0 ocimetal.image=10.0.2.2:5000/debian:13 ocimetal.insecure_registry=10.0.2.2:5000 ocimetal.root_device_hints="serial=DISK1SERIAL DISK2SERIAL" ocimetal.reboot=poweroff"#,
        "--json",
    ]);
    assert_eq!(plan["image"], "10.0.2.2:5000/debian:13");
    assert_eq!(plan["raid"], true);
    assert_eq!(plan["wipe_mode"], "all");
    assert_eq!(plan["hostname"], Value::Null);
    assert_eq!(plan["reboot"], "poweroff");
    let plan = run(&[
        "--cmdline",
        r#"ocimetal.image=debian:13 ocimetal.root_device_hints="serial=DISK1SERIAL""#,
        "--arch",
        "aarch64",
        "--json",
    ]);
    assert_eq!(plan["platform"], "linux/arm64");
    assert_eq!(strings(&plan["disks"]), ["/dev/vda"]);
}

#[test]
fn report_url_comes_from_instance_info_then_cmdline_then_meta_data() {
    let meta = json!({
        "uuid": UUID,
        "root_device_hints": "serial=S-ALPHA",
        "ocimetal_report_url": "http://meta.lab/events"
    });
    let cmdline = "ocimetal.report_url=http://cmd.lab/events ocimetal.on_failure=poweroff";
    let plan = Orders::meta(meta.clone()).plan();
    assert_eq!(plan["report_url"], "http://meta.lab/events");
    assert_eq!(plan["on_failure"], "stay");
    let plan = Orders::meta(meta.clone()).with_cmdline(cmdline).plan();
    assert_eq!(plan["report_url"], "http://cmd.lab/events");
    assert_eq!(plan["on_failure"], "poweroff");
    let node = Orders::node(json!({
        "uuid": UUID,
        "instance_info": {"ocimetal_report_url": "https://node.lab/events?token=abc"}
    }))
    .with_meta(meta)
    .with_cmdline(cmdline);
    let plan = node.plan();
    assert_eq!(plan["report_url"], "https://node.lab/events?redacted");
}

#[test]
fn the_ssh_server_and_the_filesystem_tools_are_in_every_package_rule_unless_opted_out() {
    let meta = json!({"uuid": UUID, "root_device_hints": "serial=S-ALPHA"});
    let rules = |cmdline: &str| -> Vec<Vec<String>> {
        let plan = Orders::meta(meta.clone()).with_cmdline(cmdline).plan();
        step(&plan, "packages")["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|rule| strings(&rule["packages"]))
            .collect()
    };
    for (cmdline, ssh) in [
        ("", true),
        ("ocimetal.ssh_server=yes", true),
        ("ocimetal.ssh_server=no", false),
        ("ocimetal.ssh-server=0", false),
    ] {
        let rules = rules(cmdline);
        assert_eq!(rules.len(), 2, "{cmdline}: {rules:?}");
        for packages in rules {
            assert_eq!(
                packages.iter().any(|p| p == "openssh-server"),
                ssh,
                "{cmdline}: {packages:?}"
            );
            for tool in ["e2fsprogs", "dosfstools", "iproute2"] {
                assert!(packages.iter().any(|p| p == tool), "{tool}: {packages:?}");
            }
            assert!(
                packages.iter().any(|p| p.starts_with("busybox")),
                "{packages:?}"
            );
        }
    }
}

#[test]
fn lab_orders_give_the_console_kernel_arguments_and_ssh_keys_of_the_installed_system() {
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyMaterialForTheLab lab@desk";
    let cmdline = format!(
        "ocimetal.image=lab:5000/debian:13 ocimetal.root_device_hints=serial=S-ALPHA \
         ocimetal.console=ttyS1,57600 ocimetal.karg=nomodeset ocimetal.karg=intel_iommu=on \
         \"ocimetal.ssh_key={key}\""
    );
    let orders = Orders::cmdline(&cmdline);
    let plan = orders.plan();
    let boot = &step(&plan, "files")["boot"];
    assert_eq!(boot["serial"]["device"], "ttyS1");
    assert_eq!(boot["serial"]["speed"], 57600);
    assert_eq!(
        strings(&boot["extra_args"]),
        ["nomodeset", "intel_iommu=on"]
    );
    // The key reaches the NoCloud seed that cloud-init reads at first boot.
    let dir = tempfile::tempdir().unwrap();
    let mut args = orders.write_args(dir.path());
    let rendered = dir.path().join("render");
    args.extend(["--render".to_string(), rendered.display().to_string()]);
    let run = ocimetal(&args);
    assert_eq!(run.code, Some(0), "{run:?}");
    let meta =
        std::fs::read_to_string(rendered.join("var/lib/cloud/seed/nocloud-net/meta-data")).unwrap();
    assert!(meta.contains(key), "{meta}");
    // No serial console at all, when asked.
    let plan = Orders::cmdline(&format!("{cmdline} ocimetal.console=none")).plan();
    assert!(step(&plan, "files")["boot"]["serial"].is_null());
}

#[test]
fn without_orders_nothing_is_planned_and_the_status_is_4() {
    let inventory = fixture("inventory.json").display().to_string();
    for cmdline in [
        "",
        "ocimetal.debug ocimetal.insecure_registry=lab:5000",
        "quiet",
    ] {
        let run = ocimetal(&["plan", "--cmdline", cmdline, "--inventory", &inventory]);
        assert_eq!(run.code, Some(4), "{cmdline:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
        assert!(run.stderr.starts_with("ocimetal: no orders: "), "{run:?}");
    }
    // Orders that name disks but no image: the default image, said as a warning.
    let run = ocimetal(&[
        "plan",
        "--json",
        "--arch",
        "x86_64",
        "--cmdline",
        "ocimetal.root_device_hints=serial=S-ALPHA",
        "--inventory",
        &inventory,
    ]);
    assert_eq!(run.json()["image"], "docker.io/library/ubuntu:24.04");
    assert!(run.stderr.contains("no image ordered"), "{run:?}");
}

#[test]
fn instance_id_comes_from_meta_data_then_the_node_then_the_machine_or_the_orders() {
    let hint = json!({"root_device_hints": "serial=S-ALPHA"});
    let with = |extra: Value| {
        let mut meta = hint.clone();
        meta.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        meta
    };
    let plan = Orders::meta(with(json!({"uuid": "u-1", "instance-id": "i-1"}))).plan();
    assert_eq!(
        (&plan["instance_id"], &plan["instance_id_source"]),
        (&json!("u-1"), &json!("meta_data.uuid"))
    );
    let plan = Orders::meta(with(json!({"instance-id": "i-1"}))).plan();
    assert_eq!(plan["instance_id_source"], "meta_data.instance-id");
    let mut orders = Orders::meta(hint.clone());
    orders.node = Some(node_info(json!({})));
    let plan = orders.plan();
    assert_eq!(
        (&plan["instance_id"], &plan["instance_id_source"]),
        (&json!(UUID), &json!("uuid"))
    );

    // No id in the orders: the SMBIOS system UUID where it can be read, else a digest of the
    // orders; the same orders give the same id, and the summary says where it came from.
    let orders = Orders::meta(with(json!({"local-hostname": "no-id"})));
    let plan = orders.plan();
    let source = plan["instance_id_source"].as_str().unwrap();
    assert!(
        ["SMBIOS system UUID", "derived from the orders"].contains(&source),
        "{plan}"
    );
    assert_eq!(orders.plan()["instance_id"], plan["instance_id"]);
    let summary = orders.run(false);
    assert!(
        summary.stdout.contains(&format!(
            "instance id  {} ({source})",
            plan["instance_id"].as_str().unwrap()
        )),
        "{summary:?}"
    );
}
