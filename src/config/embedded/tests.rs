use super::area::{encode, DriveFiles, Payload};
use super::*;
use crate::config::gather::{gather, EmbeddedSource, GatherOptions};
use crate::config::iso9660::tests::build_iso;
use crate::config::Source;
use std::fs;

/// Area size of the test ISOs (the real one is larger; the size is read from the ISO).
const TEST_AREA: usize = 256 * 1024;

/// An installer-shaped ISO (label OCIMETAL, empty areas) at `out`; `None` without xorriso.
pub(crate) fn installer_iso(dir: &Path, out: &Path) -> Option<()> {
    let tree = dir.join("installer-tree");
    fs::create_dir_all(tree.join("ocimetal")).unwrap();
    fs::create_dir_all(tree.join("boot/grub")).unwrap();
    fs::write(tree.join("ocimetal/orders.img"), vec![0u8; TEST_AREA]).unwrap();
    fs::write(tree.join("ocimetal/vmlinuz"), b"kernel").unwrap();
    fs::write(tree.join("boot/grub/grub.cfg"), kargs::tests::menu()).unwrap();
    let args = ["-as", "mkisofs", "-quiet", "-V", LABEL, "-r", "-J"];
    build_iso("xorriso", &args, &tree, out)
}

/// Writes `payload` and `kargs` into the ISO at `path`, in place.
fn customize(path: &Path, payload: &Payload, kargs_text: &str) {
    let mut bytes = fs::read(path).unwrap();
    let layout = layout(std::io::Cursor::new(&bytes), "t").unwrap();
    let (offset, len) = layout.orders;
    let area = encode(payload, len as usize, "t").unwrap();
    bytes[offset as usize..(offset + len) as usize].copy_from_slice(&area);
    let (offset, len) = layout.grub_cfg;
    let range = offset as usize..(offset + len) as usize;
    let cfg = kargs::write(&bytes[range.clone()], kargs_text).unwrap();
    bytes[range].copy_from_slice(&cfg);
    fs::write(path, bytes).unwrap();
}

fn sample() -> Payload {
    Payload {
        configdrive: Some(DriveFiles {
            meta_data: br#"{"oci_image":"debian:13","local-hostname":"iso-1"}"#.to_vec(),
            user_data: Some(b"#cloud-config\n".to_vec()),
            network_data: None,
        }),
        node: Some(br#"{"uuid":"n-iso","instance_info":{}}"#.to_vec()),
    }
}

/// A fake udev database and sysfs naming `devices` (kernel name, file, label, type).
fn roots(dir: &Path, devices: &[(&str, &Path, &str, &str)]) -> DeviceRoots {
    let roots = DeviceRoots {
        by_label: dir.join("by-label"),
        udev_data: dir.join("udev"),
        sys_dev_block: dir.join("sys"),
        dev: dir.join("dev"),
    };
    for (index, (name, file, label, kind)) in devices.iter().enumerate() {
        let devno = format!("11:{index}");
        fs::create_dir_all(&roots.udev_data).unwrap();
        fs::write(
            roots.udev_data.join(format!("b{devno}")),
            format!("E:ID_FS_LABEL={label}\nE:ID_FS_TYPE={kind}\n"),
        )
        .unwrap();
        fs::create_dir_all(roots.sys_dev_block.join(&devno)).unwrap();
        fs::write(
            roots.sys_dev_block.join(&devno).join("uevent"),
            format!("DEVNAME={name}\n"),
        )
        .unwrap();
        fs::create_dir_all(&roots.dev).unwrap();
        fs::copy(file, roots.dev.join(name)).unwrap();
    }
    roots
}

#[test]
fn the_ramdisk_reads_the_orders_its_boot_medium_carries() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("installer.iso");
    if installer_iso(dir.path(), &iso).is_none() {
        return;
    }
    let plain = dir.path().join("plain.iso");
    fs::copy(&iso, &plain).unwrap();
    customize(&iso, &sample(), "ocimetal.dry_run");
    let esp = dir.path().join("esp.img");
    fs::write(&esp, vec![0u8; 4096]).unwrap();
    let roots = roots(
        dir.path(),
        &[
            ("sr0", &iso, LABEL, "iso9660"),
            ("sdb2", &esp, LABEL, "vfat"),
            ("sdc", &plain, LABEL, "iso9660"),
        ],
    );
    assert_eq!(
        boot_media(&roots),
        vec![roots.dev.join("sr0"), roots.dev.join("sdc")]
    );
    let found = from_boot_media(&roots).unwrap().unwrap();
    let origin = format!("{}:/ocimetal/orders.img", roots.dev.join("sr0").display());
    assert_eq!(found.origin, origin);
    assert_eq!(found.node.as_ref().unwrap().uuid.as_deref(), Some("n-iso"));
    let drive = found.drive.as_ref().unwrap();
    assert_eq!(drive.meta_data["local-hostname"], "iso-1");
    assert_eq!(
        drive.user_data.as_ref().unwrap().expose(),
        b"#cloud-config\n"
    );

    // Read from the file, the kernel arguments come along.
    let (from_file, kargs) = read_iso_file(&iso, "--iso").unwrap();
    assert_eq!(kargs, "ocimetal.dry_run");
    assert_eq!(from_file.drive.unwrap().meta_data, drive.meta_data);
    let (_, kargs) = read_iso_file(&plain, "--iso").unwrap();
    assert_eq!(kargs, "");
}

#[test]
fn two_media_with_orders_are_refused_and_damage_is_an_order_error() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("installer.iso");
    if installer_iso(dir.path(), &iso).is_none() {
        return;
    }
    customize(&iso, &sample(), "");
    let twice = roots(
        &dir.path().join("twice"),
        &[
            ("sr0", &iso, LABEL, "iso9660"),
            ("sr1", &iso, LABEL, "iso9660"),
        ],
    );
    let err = from_boot_media(&twice).unwrap_err();
    let order = err.downcast_ref::<OrderError>().unwrap();
    assert!(order.problem.contains("more than one"), "{order}");

    let mut bytes = fs::read(&iso).unwrap();
    let (offset, _) = layout(std::io::Cursor::new(&bytes), "t").unwrap().orders;
    bytes[offset as usize + 70] ^= 0xff;
    let damaged = dir.path().join("damaged.iso");
    fs::write(&damaged, bytes).unwrap();
    let roots = roots(
        &dir.path().join("one"),
        &[("sr0", &damaged, LABEL, "iso9660")],
    );
    let err = from_boot_media(&roots).unwrap_err();
    assert!(err
        .downcast_ref::<OrderError>()
        .unwrap()
        .problem
        .contains("checksum"));
}

#[test]
fn an_iso_without_areas_carries_nothing_on_the_ramdisk_and_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("old");
    fs::create_dir_all(tree.join("ocimetal")).unwrap();
    fs::write(tree.join("ocimetal/vmlinuz"), b"k").unwrap();
    let old = dir.path().join("old.iso");
    let args = ["-as", "mkisofs", "-quiet", "-V", LABEL, "-r", "-J"];
    if build_iso("xorriso", &args, &tree, &old).is_none() {
        return;
    }
    let roots = roots(dir.path(), &[("sr0", &old, LABEL, "iso9660")]);
    assert!(from_boot_media(&roots).unwrap().is_none());
    let err = read_iso_file(&old, "--iso").unwrap_err();
    assert!(err.problem.contains("/ocimetal/orders.img"), "{err}");
}

#[test]
fn a_config2_medium_and_named_sources_win_over_the_carried_orders() {
    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("installer.iso");
    if installer_iso(dir.path(), &iso).is_none() {
        return;
    }
    customize(&iso, &sample(), "");
    let (embedded, _) = read_iso_file(&iso, "--iso").unwrap();
    let given = |cmdline: &str, configdrive: Option<PathBuf>| GatherOptions {
        cmdline: Some(cmdline.to_string()),
        configdrive,
        embedded: EmbeddedSource::Given(Box::new(embedded.clone())),
        offline: true,
        ..GatherOptions::default()
    };
    let orders = gather(&given("", None)).unwrap();
    assert_eq!(orders.image.value, "debian:13");
    assert_eq!(orders.image.source, Source::MetaData);
    assert_eq!(orders.node_uuid.as_deref(), Some("n-iso"));
    assert_eq!(
        orders.configdrive_origin.as_deref(),
        Some(format!("{}:/ocimetal/orders.img:configdrive", iso.display()).as_str())
    );
    // The kernel command line still wins where it wins over any configdrive.
    let orders = gather(&given("ocimetal.image=alpine:3", None)).unwrap();
    assert_eq!(orders.image.value, "alpine:3");
    // A configdrive named by the operator replaces the carried one.
    let named = dir.path().join("named");
    crate::config::configdrive::tests::write_tree(
        &named,
        &serde_json::json!({"local-hostname": "named"}),
        None,
        None,
    );
    let orders = gather(&given("", Some(named))).unwrap();
    assert_eq!(orders.hostname.unwrap().value, "named");
    // Nothing carried and nothing else: no orders.
    let none = GatherOptions {
        cmdline: Some(String::new()),
        embedded: EmbeddedSource::None,
        offline: true,
        ..GatherOptions::default()
    };
    let err = gather(&none).unwrap_err();
    assert!(err.downcast_ref::<crate::error::NoOrders>().is_some());
}

#[test]
fn a_ramdisk_booted_from_the_iso_waits_for_its_medium() {
    assert!(booted_from_iso(
        "BOOT_IMAGE=/ocimetal/vmlinuz console=ttyS0 ocimetal.dry_run"
    ));
    assert!(!booted_from_iso("BOOT_IMAGE=/vmlinuz root=/dev/ram0 text"));
    assert!(!booted_from_iso(
        "console=ttyS0 BOOT_IMAGE=/ocimetal/vmlinuz"
    ));

    let dir = tempfile::tempdir().unwrap();
    let iso = dir.path().join("any.iso");
    fs::write(&iso, b"x").unwrap();
    let roots = roots(dir.path(), &[("sda", &iso, "ESP", "vfat")]);
    assert!(!wait_for_boot_medium(
        &roots,
        std::time::Duration::from_millis(50)
    ));
    let late = roots.udev_data.join("b8:16");
    let writer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        // As udev writes its database: a temporary file renamed into place.
        let temp = late.with_extension("tmp");
        let entry = format!("E:ID_FS_LABEL={LABEL}\nE:ID_FS_TYPE=iso9660\n");
        fs::write(&temp, entry).unwrap();
        fs::rename(&temp, &late).unwrap();
    });
    let start = std::time::Instant::now();
    assert!(wait_for_boot_medium(
        &roots,
        std::time::Duration::from_secs(20)
    ));
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    writer.join().unwrap();
}
