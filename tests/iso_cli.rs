//! `ocimetal iso customize | show | reset` on an ISO laid out as `mkosi/build` lays it out
//! (ISO 9660 + Rock Ridge + Joliet labelled OCIMETAL, an appended FAT ESP as El Torito image
//! and GPT partition, the orders area and GRUB's kernel-argument areas), built with xorriso.
//! `ocimetal plan --iso` then reads the customized ISO as the ramdisk would.

#[allow(dead_code)]
#[path = "cli_plan/support.rs"]
mod support;

use ocimetal::config::embedded::{self, kargs};
use serde_json::json;
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{fixture, ocimetal};

/// Builds the installer-shaped ISO in `dir`; `None` (test skipped) without xorriso or
/// mkfs.vfat.
fn installer_iso(dir: &Path) -> Option<PathBuf> {
    let root = dir.join("root");
    for sub in ["ocimetal", "boot/grub", ".disk"] {
        fs::create_dir_all(root.join(sub)).unwrap();
    }
    fs::write(root.join(".disk/ocimetal-0123456789abcdef"), "hash\n").unwrap();
    fs::write(root.join("ocimetal/vmlinuz"), vec![1u8; 70_000]).unwrap();
    fs::write(root.join("ocimetal/initrd.zst"), vec![2u8; 90_000]).unwrap();
    let orders = fs::File::create(root.join("ocimetal/orders.img")).unwrap();
    orders.set_len(embedded::ORDERS_AREA_LEN).unwrap();
    let area = format!(
        "{}{}",
        "#".repeat(kargs::AREA_LEN),
        String::from_utf8_lossy(kargs::END_MARKER)
    );
    let console = "console=tty0 console=ttyS0,115200";
    fs::write(
        root.join("boot/grub/grub.cfg"),
        format!(
            "search --no-floppy --file --set=root /.disk/ocimetal-0123456789abcdef\n\
             set timeout=3\nset default=0\n\
             menuentry 'ocimetal installer' {{\n    linux /ocimetal/vmlinuz {console} {area}\n    initrd /ocimetal/initrd.zst\n}}\n\
             menuentry 'ocimetal installer (debug: root console, no reboot)' {{\n    linux /ocimetal/vmlinuz {console} ocimetal.debug ocimetal.reboot=none {area}\n    initrd /ocimetal/initrd.zst\n}}\n"
        ),
    )
    .unwrap();
    let esp = dir.join("efi.img");
    let made = Command::new("mkfs.vfat")
        .args(["-C", "-n", "OCIMETAL"])
        .arg(&esp)
        .arg("2048")
        .output();
    if !made.is_ok_and(|out| out.status.success()) {
        eprintln!("skipping: mkfs.vfat not available");
        return None;
    }
    let iso = dir.join("ocimetal-ramdisk.iso");
    let built = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-o"])
        .arg(&iso)
        .args([
            "-V",
            "OCIMETAL",
            "-r",
            "-J",
            "-append_partition",
            "2",
            "0xef",
        ])
        .arg(&esp)
        .args([
            "-appended_part_as_gpt",
            "-e",
            "--interval:appended_partition_2:all::",
            "-no-emul-boot",
        ])
        .arg(&root)
        .output();
    match built {
        Ok(out) if out.status.success() => Some(iso),
        Ok(out) => panic!("xorriso: {}", String::from_utf8_lossy(&out.stderr)),
        Err(err) => {
            eprintln!("skipping: xorriso not available ({err})");
            None
        }
    }
}

/// A config-2 tree with a secret in user_data and in meta_data.
fn configdrive(dir: &Path, meta: serde_json::Value) -> PathBuf {
    let tree = dir.join("cd");
    fs::create_dir_all(tree.join("openstack/latest")).unwrap();
    fs::write(
        tree.join("openstack/latest/meta_data.json"),
        meta.to_string(),
    )
    .unwrap();
    fs::write(
        tree.join("openstack/latest/user_data"),
        "#cloud-config\npassword: user-data-secret\n",
    )
    .unwrap();
    tree
}

fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// The bytes of `a` and `b` differ only inside the two areas of the ISO.
fn differ_only_in_areas(a: &[u8], b: &[u8]) {
    assert_eq!(a.len(), b.len(), "the ISO keeps its size");
    let layout = embedded::layout(Cursor::new(a), "iso").unwrap();
    let inside = |at: usize| {
        [layout.orders, layout.grub_cfg]
            .iter()
            .any(|&(offset, len)| (offset as usize..(offset + len) as usize).contains(&at))
    };
    let outside = (0..a.len()).find(|&at| a[at] != b[at] && !inside(at));
    assert_eq!(outside, None, "a byte outside the areas changed");
}

/// The JSON plan `ocimetal plan --iso ISO` makes for the fixture inventory, as text.
fn plan_iso(iso: &Path, extra: &[&str]) -> String {
    let iso = arg(iso);
    let inventory = arg(&fixture("inventory.json"));
    let mut args = vec!["plan", "--iso", &iso, "--inventory", &inventory];
    args.extend(["--arch", "x86_64", "--json"]);
    args.extend(extra);
    ocimetal(&args).json().to_string()
}

/// A temporary directory with an installer ISO in it, and the ISO's bytes.
fn setup() -> Option<(tempfile::TempDir, PathBuf, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let iso = installer_iso(dir.path())?;
    let original = fs::read(&iso).unwrap();
    Some((dir, iso, original))
}

#[test]
fn customize_show_plan_and_reset_round_trip() {
    let Some((dir, iso, original)) = setup() else {
        return;
    };
    let drive = configdrive(
        dir.path(),
        json!({"oci_image": "debian:13", "local-hostname": "lab-1", "admin_pass": "meta-secret"}),
    );
    let node = dir.path().join("node.json");
    fs::write(
        &node,
        json!({"uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123",
               "instance_info": {"image_pull_secret": "pull-secret"}})
        .to_string(),
    )
    .unwrap();
    let out = dir.path().join("custom.iso");
    let kargs = r#"ocimetal.root_device_hints="serial=S-ALPHA S-BRAVO" ocimetal.report_url=https://hook.example/x?token=q-secret ocimetal.report_auth="Bearer auth-secret""#;
    let run = ocimetal(&[
        "iso",
        "customize",
        "--configdrive",
        &arg(&drive),
        "--node",
        &arg(&node),
        "--kargs",
        kargs,
        "-o",
        &arg(&out),
        &arg(&iso),
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("carries configdrive"), "{run:?}");
    let custom = fs::read(&out).unwrap();
    differ_only_in_areas(&original, &custom);
    assert_eq!(fs::read(&iso).unwrap(), original, "the input is untouched");

    // The GRUB menu carries the arguments on both entries, as GRUB will read them.
    let carried = embedded::read_carried(Cursor::new(&custom), "custom").unwrap();
    assert_eq!(carried.kargs, kargs);

    let show = ocimetal(&["iso", "show", &arg(&out)]);
    assert_eq!(show.code, Some(0), "{show:?}");
    for secret in [
        "user-data-secret",
        "meta-secret",
        "pull-secret",
        "q-secret",
        "auth-secret",
    ] {
        assert!(!show.all_output().contains(secret), "{secret}: {show:?}");
    }
    for shown in [
        "lab-1",
        "admin_pass",
        "1be26c0b",
        "serial=S-ALPHA S-BRAVO",
        "user_data=<redacted",
    ] {
        assert!(show.stdout.contains(shown), "{shown}: {show:?}");
    }

    // The planner reads the ISO as the ramdisk does: meta_data, node and kernel arguments.
    let text = plan_iso(&out, &[]);
    assert!(text.contains("docker.io/library/debian:13"), "{text}");
    assert!(
        text.contains("/dev/sda") && text.contains("/dev/sdb"),
        "{text}"
    );
    assert!(
        text.contains("1be26c0b-03f2-4d2e-ae87-c02d7f33c123"),
        "{text}"
    );

    // Reset gives the original bytes back.
    let reset = dir.path().join("reset.iso");
    let run = ocimetal(&["iso", "reset", "-o", &arg(&reset), &arg(&out)]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        fs::read(&reset).unwrap() == original,
        "reset restores every byte"
    );
    let show = ocimetal(&["iso", "show", &arg(&reset)]);
    assert!(show.stdout.contains("carries no orders"), "{show:?}");
}

#[test]
fn every_configdrive_shape_is_carried() {
    let Some((dir, iso, _)) = setup() else {
        return;
    };
    let dict = dir.path().join("cd.json");
    fs::write(
        &dict,
        json!({"meta_data": {"uuid": "u-2", "oci_image": "alpine:3", "root_device_hints": "serial=S-NVME"},
               "user_data": "#cloud-config\n"})
        .to_string(),
    )
    .unwrap();
    let tree = configdrive(dir.path(), json!({"uuid": "u-3", "oci_image": "alpine:3"}));
    let config2 = dir.path().join("config2.iso");
    let status = Command::new("xorriso")
        .args([
            "-as", "mkisofs", "-quiet", "-V", "config-2", "-J", "-r", "-o",
        ])
        .arg(&config2)
        .arg(&tree)
        .status()
        .unwrap();
    assert!(status.success());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &fs::read(&config2).unwrap()).unwrap();
    let ironic = dir.path().join("ironic.txt");
    use base64::Engine;
    fs::write(
        &ironic,
        base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap()),
    )
    .unwrap();
    for (index, input) in [dict, tree, config2, ironic].iter().enumerate() {
        let out = dir.path().join(format!("out-{index}.iso"));
        let run = ocimetal(&[
            "iso",
            "customize",
            "--configdrive",
            &arg(input),
            "-o",
            &arg(&out),
            &arg(&iso),
        ]);
        assert_eq!(run.code, Some(0), "{input:?}: {run:?}");
        let text = plan_iso(
            &out,
            &["--cmdline", "ocimetal.root_device_hints=serial=S-ALPHA"],
        );
        assert!(text.contains("docker.io/library/alpine:3"), "{input:?}");
    }
}

#[test]
fn invalid_orders_and_outputs_are_refused_and_nothing_is_written() {
    let Some((dir, iso, original)) = setup() else {
        return;
    };
    let out = dir.path().join("out.iso");
    let bad_wipe = configdrive(dir.path(), json!({"disk_wipe_mode": "everything"}));
    let bad_node = dir.path().join("node.json");
    fs::write(&bad_node, r#"{"instance_info": {"root_device": "sda"}}"#).unwrap();
    let cases: Vec<(Vec<String>, &str, &[&str])> = vec![
        (
            vec!["--configdrive".into(), arg(&bad_wipe)],
            "meta_data.disk_wipe_mode",
            &["everything"],
        ),
        (
            vec!["--node".into(), arg(&bad_node)],
            "instance_info.root_device",
            &["dictionary"],
        ),
        (
            vec!["--kargs".into(), "ocimetal.image=debian:13;reboot".into()],
            "--kargs",
            &["GRUB"],
        ),
        (
            vec!["--kargs".into(), "ocimetal.reboot=later".into()],
            "ocimetal.reboot",
            &["later"],
        ),
        (
            vec!["--kargs".into(), "ocimetal.image=Not/Valid:Ref:x".into()],
            "ocimetal.image",
            &["image reference"],
        ),
        (
            vec![
                "--kargs".into(),
                "ocimetal.root_device_hints=serial=".into(),
            ],
            "ocimetal.root_device_hints",
            &["no value"],
        ),
        (
            vec!["--configdrive".into(), "/nonexistent/cd".into()],
            "--configdrive",
            &["/nonexistent/cd"],
        ),
        (vec![], "iso customize", &["--configdrive"]),
    ];
    for (options, field, mentions) in cases {
        let mut args: Vec<String> = vec!["iso".into(), "customize".into()];
        args.extend(options);
        args.extend(["-o".into(), arg(&out), arg(&iso)]);
        ocimetal(&args).assert_refused(field, mentions);
        assert!(!out.exists(), "{field}: nothing written");
    }
    let good = ["--kargs", "ocimetal.image=debian:13"];
    let with = |extra: &[&str]| {
        let mut args = vec!["iso", "customize"];
        args.extend(good);
        args.extend(extra);
        ocimetal(&args)
    };
    let iso_arg = arg(&iso);
    with(&[&iso_arg]).assert_refused("-o", &["--in-place"]);
    with(&["-o", &iso_arg, &iso_arg]).assert_refused("-o", &["--in-place"]);
    assert_eq!(fs::read(&iso).unwrap(), original);
    let out_arg = arg(&out);
    assert_eq!(with(&["-o", &out_arg, &iso_arg]).code, Some(0));
    with(&["-o", &out_arg, &iso_arg]).assert_refused("-o", &["--force"]);
    let again = dir.path().join("again.iso");
    with(&["-o", &arg(&again), &out_arg]).assert_refused("ISO", &["already carries orders"]);
    assert_eq!(
        with(&["--force", "-o", &arg(&again), &out_arg]).code,
        Some(0)
    );
    ocimetal(&["iso", "show", &arg(&bad_node)]).assert_refused(&arg(&bad_node), &["ISO 9660"]);
    // In place, with consent.
    assert_eq!(
        ocimetal(&["iso", "reset", "--in-place", &out_arg]).code,
        Some(0)
    );
    assert_eq!(fs::read(&out).unwrap(), original);
}
