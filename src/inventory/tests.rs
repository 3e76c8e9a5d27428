//! Scans of fake machines: a sysfs tree, a udev database and a /dev dir under a tempdir, laid
//! out as the kernel and udev lay them out (symlinked `/sys/block` entries, `device` links).

use super::*;
use std::fs;
use std::os::unix::fs::symlink;

/// A fake machine under a temporary directory.
struct FakeMachine {
    root: tempfile::TempDir,
    mountinfo: String,
    cmdline: String,
}

/// One block device being added to a [`FakeMachine`].
struct FakeDisk<'m> {
    machine: &'m FakeMachine,
    name: String,
    block_dir: PathBuf,
}

impl FakeMachine {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        for dir in ["sys/block", "sys/devices", "run/udev/data", "dev"] {
            fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        Self {
            root,
            mountinfo: String::new(),
            cmdline: String::new(),
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn roots(&self) -> ScanRoots {
        ScanRoots {
            sys: self.path("sys"),
            udev_data: self.path("run/udev/data"),
            dev: self.path("dev"),
            mountinfo: self.mountinfo.clone(),
            cmdline: self.cmdline.clone(),
        }
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// A disk whose parent device is `device_path` under `/sys/devices`; SCSI, virtio and USB
    /// disks sit in `<device>/block/<name>`, NVMe namespaces directly in `<device>/<name>`.
    fn disk(&self, name: &str, device_path: &str, devno: &str, sectors: u64) -> FakeDisk<'_> {
        let device_dir = self.path("sys/devices").join(device_path);
        let nvme = name.starts_with("nvme");
        let block_dir = if nvme {
            device_dir.join(name)
        } else {
            device_dir.join("block").join(name)
        };
        fs::create_dir_all(&block_dir).unwrap();
        let device_name = device_path.rsplit('/').next().unwrap();
        let up = if nvme { "../.." } else { "../../.." };
        symlink(format!("{up}/{device_name}"), block_dir.join("device")).unwrap();
        self.finish_block(name, block_dir, devno, sectors)
    }

    /// A kernel-made device without hardware behind it (loop, md, dm, zram, ram).
    fn virtual_device(&self, name: &str, devno: &str, sectors: u64) -> FakeDisk<'_> {
        let block_dir = self.path("sys/devices/virtual/block").join(name);
        fs::create_dir_all(&block_dir).unwrap();
        self.finish_block(name, block_dir, devno, sectors)
    }

    fn finish_block(
        &self,
        name: &str,
        block_dir: PathBuf,
        devno: &str,
        sectors: u64,
    ) -> FakeDisk<'_> {
        let relative = block_dir.strip_prefix(self.path("sys")).unwrap();
        symlink(
            Path::new("..").join(relative),
            self.path("sys/block").join(name),
        )
        .unwrap();
        let disk = FakeDisk {
            machine: self,
            name: name.to_owned(),
            block_dir,
        };
        self.write(&format!("dev/{name}"), "");
        disk.attr("dev", devno)
            .attr("size", &sectors.to_string())
            .attr("ro", "0")
            .attr("queue/rotational", "0")
            .attr("queue/logical_block_size", "512")
            .attr("queue/physical_block_size", "512")
    }

    /// A SCSI host `hostN` of the given class (`scsi`, `sas`, `fc`...) with its driver name.
    fn scsi_host(&self, host: u32, class: &str, proc_name: &str) {
        self.write(
            &format!("sys/class/scsi_host/host{host}/proc_name"),
            proc_name,
        );
        if class != "scsi" {
            fs::create_dir_all(self.path(&format!("sys/class/{class}_host/host{host}"))).unwrap();
        }
    }

    fn udev(&self, devno: &str, lines: &str) {
        self.write(&format!("run/udev/data/b{devno}"), lines);
    }

    fn link(&self, relative: &str, target: &str) {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
    }
}

impl FakeDisk<'_> {
    fn attr(self, relative: &str, value: &str) -> Self {
        let path = self.block_dir.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, format!("{value}\n")).unwrap();
        self
    }

    fn udev(self, lines: &str) -> Self {
        let devno = fs::read_to_string(self.block_dir.join("dev")).unwrap();
        self.machine.udev(devno.trim(), lines);
        self
    }

    fn scsi_address(self, hctl: &str) -> Self {
        fs::create_dir_all(self.block_dir.join("device/scsi_device").join(hctl)).unwrap();
        self
    }

    fn partition(self, name: &str, devno: &str, udev_lines: &str) -> Self {
        let dir = self.block_dir.join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("partition"), "1\n").unwrap();
        fs::write(dir.join("dev"), format!("{devno}\n")).unwrap();
        self.machine.write(&format!("dev/{name}"), "");
        if !udev_lines.is_empty() {
            self.machine.udev(devno, udev_lines);
        }
        self
    }

    fn slave(self, member: &str) -> Self {
        let slaves = self.block_dir.join("slaves");
        fs::create_dir_all(&slaves).unwrap();
        symlink(format!("../../../{member}"), slaves.join(member)).unwrap();
        self
    }

    fn name(&self) -> &str {
        &self.name
    }
}

fn device<'s>(scan: &'s Scan, name: &str) -> &'s BlockDevice {
    scan.devices
        .iter()
        .find(|device| device.name == name)
        .unwrap_or_else(|| panic!("{name} not a candidate: {scan:#?}"))
}

fn exclusion<'s>(scan: &'s Scan, name: &str) -> &'s str {
    scan.excluded
        .iter()
        .find(|device| device.name == name)
        .map(|device| device.reason.as_str())
        .unwrap_or_else(|| panic!("{name} not excluded: {scan:#?}"))
}

const GIB_SECTORS: u64 = 2 * 1024 * 1024;

/// The machine most tests look at: one device of each kind the installer meets.
fn mixed_machine() -> FakeMachine {
    let mut machine = FakeMachine::new();

    machine.scsi_host(0, "scsi", "ahci");
    machine
        .disk(
            "sda",
            "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0",
            "8:0",
            976_773_168,
        )
        .attr("device/model", "Samsung SSD 860 EVO 500GB       ")
        .attr("device/vendor", "ATA     ")
        .scsi_address("0:0:0:0")
        .udev(
            "S:disk/by-id/ata-Samsung_SSD_860_EVO_500GB_S3Z9NB0K123456\n\
             S:disk/by-path/pci-0000:00:1f.2-ata-1.0\nS:disk/by-path/pci-0000:00:1f.2-ata-1\n\
             E:ID_SERIAL=Samsung_SSD_860_EVO_500GB_S3Z9NB0K123456\n\
             E:ID_SERIAL_SHORT=S3Z9NB0K123456\nE:ID_WWN=0x5002538e40a1b2c3\n\
             E:ID_WWN_WITH_EXTENSION=0x5002538e40a1b2c3\nE:ID_PATH=pci-0000:00:1f.2-ata-1\n",
        )
        .partition("sda1", "8:1", "E:ID_FS_TYPE=vfat\nE:ID_FS_LABEL=EFI\n");

    machine
        .disk(
            "nvme0n1",
            "pci0000:00/0000:00:06.0/nvme/nvme0",
            "259:0",
            2_000_409_264,
        )
        .attr("device/model", "Samsung SSD 970 EVO Plus 1TB")
        .attr("device/serial", "S4EWNX0R123456      ")
        .attr("queue/physical_block_size", "4096")
        .udev(
            "S:disk/by-path/pci-0000:00:06.0-nvme-1\nE:ID_SERIAL_SHORT=S4EWNX0R123456\n\
             E:ID_WWN=eui.0025385b91b12345\nE:ID_PATH=pci-0000:00:06.0-nvme-1\n",
        );

    machine
        .disk(
            "vda",
            "pci0000:00/0000:00:04.0/virtio2",
            "254:0",
            20 * GIB_SECTORS,
        )
        .attr("device/vendor", "0x1af4")
        .attr("queue/rotational", "1")
        .udev(
            "S:disk/by-id/virtio-DISK1SERIAL\nS:disk/by-path/virtio-pci-0000:00:04.0\n\
             S:disk/by-path/pci-0000:00:04.0\nE:ID_SERIAL=DISK1SERIAL\n\
             E:ID_PATH=pci-0000:00:04.0\n",
        );

    // QEMU scsi-hd,serial=DISK2SERIAL,wwn=0x5000c500a1b2c3d4 behind virtio-scsi, with the
    // udev properties such a disk gets.
    machine.scsi_host(1, "scsi", "virtio_scsi");
    machine
        .disk(
            "sdb",
            "pci0000:00/0000:00:05.0/virtio3/host1/target1:0:0/1:0:0:0",
            "8:16",
            20 * GIB_SECTORS,
        )
        .attr("device/model", "QEMU HARDDISK   ")
        .attr("device/vendor", "QEMU    ")
        .attr("queue/rotational", "1")
        .scsi_address("1:0:0:0")
        .udev(
            "S:disk/by-id/wwn-0x5000c500a1b2c3d4\nS:disk/by-id/scsi-35000c500a1b2c3d4\n\
             S:disk/by-path/pci-0000:00:05.0-scsi-0:0:0:0\nE:ID_SCSI=1\nE:ID_VENDOR=QEMU\n\
             E:ID_MODEL=QEMU_HARDDISK\nE:ID_SERIAL=35000c500a1b2c3d4\n\
             E:ID_SERIAL_SHORT=5000c500a1b2c3d4\nE:ID_WWN=0x5000c500a1b2c3d4\n\
             E:ID_WWN_WITH_EXTENSION=0x5000c500a1b2c3d4\nE:ID_SCSI_SERIAL=DISK2SERIAL\n\
             E:ID_PATH=pci-0000:00:05.0-scsi-0:0:0:0\n",
        );

    // USB stick carrying the configuration drive on its first partition.
    machine.scsi_host(6, "scsi", "usb-storage");
    machine
        .disk(
            "sdc",
            "pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host6/target6:0:0/6:0:0:0",
            "8:32",
            4 * GIB_SECTORS,
        )
        .attr("removable", "1")
        .scsi_address("6:0:0:0")
        .udev("E:ID_SERIAL_SHORT=4C530001230817117233\nE:ID_BUS=usb\n")
        .partition(
            "sdc1",
            "8:33",
            "E:ID_FS_TYPE=vfat\nE:ID_FS_LABEL=CONFIG-2\n",
        );

    // Another USB stick, plain: a candidate like any disk.
    machine.scsi_host(7, "scsi", "usb-storage");
    machine
        .disk(
            "sdd",
            "pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host7/target7:0:0/7:0:0:0",
            "8:48",
            8 * GIB_SECTORS,
        )
        .scsi_address("7:0:0:0")
        .udev("E:ID_SERIAL_SHORT=AA00000000012345\n");

    machine.scsi_host(2, "scsi", "ahci");
    machine
        .disk(
            "sr0",
            "pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0",
            "11:0",
            1_000,
        )
        .attr("device/type", "5")
        .attr("ro", "1")
        .scsi_address("2:0:0:0")
        .udev("E:ID_CDROM=1\nE:ID_FS_TYPE=iso9660\nE:ID_FS_LABEL=config-2\n");

    machine.virtual_device("loop0", "7:0", 1_000_000);
    machine.virtual_device("zram0", "253:0", 0);
    machine
        .virtual_device("md0", "9:0", 10 * GIB_SECTORS)
        .slave("vdc1");
    machine
        .virtual_device("dm-0", "252:0", 10 * GIB_SECTORS)
        .slave("vdd2");

    // vdc: its partition vdc1 is mounted as /; vdd holds the PV of the LV mounted on /var.
    for (name, devno, slot) in [("vdc", "254:16", "07"), ("vdd", "254:32", "08")] {
        let disk = machine.disk(
            name,
            &format!("pci0000:00/0000:00:{slot}.0/virtio{slot}"),
            devno,
            GIB_SECTORS,
        );
        let (major, minor) = devno.split_once(':').unwrap();
        let minor: u32 = minor.parse().unwrap();
        let disk = disk
            .partition(&format!("{name}1"), &format!("{major}:{}", minor + 1), "")
            .partition(&format!("{name}2"), &format!("{major}:{}", minor + 2), "");
        assert_eq!(disk.name(), name);
    }
    machine.mountinfo = "22 1 254:17 / / rw,relatime shared:1 - ext4 /dev/vdc1 rw\n\
         23 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n\
         24 22 252:0 / /var rw,relatime shared:2 - ext4 /dev/mapper/vg-var rw\n"
        .to_owned();
    machine
}

#[test]
fn sata_disk_has_ipa_fields() {
    let scan = scan_at(&mixed_machine().roots()).unwrap();
    let sda = device(&scan, "/dev/sda");
    assert_eq!(
        sda,
        &BlockDevice {
            name: "/dev/sda".into(),
            size: 976_773_168 * 512,
            model: Some("Samsung SSD 860 EVO 500GB".into()),
            vendor: Some("ATA".into()),
            serial: Some("S3Z9NB0K123456".into()),
            wwn: Some("0x5002538e40a1b2c3".into()),
            wwn_with_extension: Some("0x5002538e40a1b2c3".into()),
            wwn_vendor_extension: None,
            rotational: false,
            hctl: Some("0:0:0:0".into()),
            by_path: Some("/dev/disk/by-path/pci-0000:00:1f.2-ata-1".into()),
            tran: Some("sata".into()),
            logical_sectors: Some(512),
            physical_sectors: Some(512),
        }
    );
}

#[test]
fn nvme_disk_has_transport_and_no_scsi_address() {
    let scan = scan_at(&mixed_machine().roots()).unwrap();
    let nvme = device(&scan, "/dev/nvme0n1");
    assert_eq!(nvme.tran.as_deref(), Some("nvme"));
    assert_eq!(nvme.serial.as_deref(), Some("S4EWNX0R123456"));
    assert_eq!(nvme.model.as_deref(), Some("Samsung SSD 970 EVO Plus 1TB"));
    assert_eq!(nvme.vendor, None);
    assert_eq!(nvme.wwn.as_deref(), Some("eui.0025385b91b12345"));
    assert_eq!(nvme.hctl, None);
    assert_eq!(nvme.physical_sectors, Some(4096));
    assert_eq!(nvme.size, 2_000_409_264 * 512);
}

#[test]
fn virtio_disk_serial_comes_from_id_serial() {
    let scan = scan_at(&mixed_machine().roots()).unwrap();
    let vda = device(&scan, "/dev/vda");
    assert_eq!(vda.serial.as_deref(), Some("DISK1SERIAL"));
    assert_eq!(vda.tran.as_deref(), Some("virtio"));
    assert_eq!(vda.vendor.as_deref(), Some("0x1af4"));
    assert!(vda.rotational);
    assert_eq!(vda.wwn, None);
    assert_eq!(vda.hctl, None);
    assert_eq!(
        vda.by_path.as_deref(),
        Some("/dev/disk/by-path/pci-0000:00:04.0")
    );
}

#[test]
fn qemu_scsi_disk_with_wwn_reports_short_serial_and_wwn() {
    let scan = scan_at(&mixed_machine().roots()).unwrap();
    let sdb = device(&scan, "/dev/sdb");
    assert_eq!(sdb.serial.as_deref(), Some("DISK2SERIAL"));
    assert_eq!(sdb.wwn.as_deref(), Some("0x5000c500a1b2c3d4"));
    assert_eq!(sdb.model.as_deref(), Some("QEMU HARDDISK"));
    assert_eq!(sdb.vendor.as_deref(), Some("QEMU"));
    assert_eq!(sdb.hctl.as_deref(), Some("1:0:0:0"));
    // lsblk leaves TRAN empty for virtio-scsi hosts.
    assert_eq!(sdb.tran, None);
}

#[test]
fn usb_stick_with_config_drive_is_excluded_and_plain_one_kept() {
    let machine = mixed_machine();
    let scan = scan_at(&machine.roots()).unwrap();
    let reason = exclusion(&scan, "/dev/sdc");
    assert!(reason.contains("configuration drive"), "{reason}");
    assert!(reason.contains("sdc1"), "{reason}");
    assert!(scan.devices.iter().all(|device| device.name != "/dev/sdc1"));

    let sdd = device(&scan, "/dev/sdd");
    assert_eq!(sdd.tran.as_deref(), Some("usb"));
    assert_eq!(sdd.hctl.as_deref(), Some("7:0:0:0"));
}

#[test]
fn a_configdrive_partition_left_on_a_fixed_disk_keeps_the_disk_a_candidate() {
    let machine = mixed_machine();
    // What IPA's direct deploy leaves at the end of its target disk.
    machine
        .disk(
            "vde",
            "pci0000:00/0000:00:09.0/virtio9",
            "254:64",
            GIB_SECTORS,
        )
        .partition("vde1", "254:65", "E:ID_FS_TYPE=ext4\n")
        .partition(
            "vde2",
            "254:66",
            "E:ID_FS_TYPE=iso9660\nE:ID_FS_LABEL=config-2\n",
        );
    let scan = scan_at(&machine.roots()).unwrap();
    assert!(
        scan.excluded.iter().all(|e| e.name != "/dev/vde"),
        "{:?}",
        scan.excluded
    );
    device(&scan, "/dev/vde");
    // The same on a USB stick (removable, orders arrive there) still excludes it.
    assert!(exclusion(&scan, "/dev/sdc").contains("configuration drive"));
}

#[test]
fn non_disks_are_excluded_with_their_kind() {
    let scan = scan_at(&mixed_machine().roots()).unwrap();
    let sr0 = exclusion(&scan, "/dev/sr0");
    assert!(sr0.contains("optical drive"), "{sr0}");
    assert!(sr0.contains("read-only"), "{sr0}");
    assert!(sr0.contains("configuration drive"), "{sr0}");
    assert!(exclusion(&scan, "/dev/loop0").contains("loop device"));
    assert!(exclusion(&scan, "/dev/md0").contains("software RAID"));
    assert!(exclusion(&scan, "/dev/dm-0").contains("device-mapper"));
    let zram = exclusion(&scan, "/dev/zram0");
    assert!(
        zram.contains("compressed RAM disk") && zram.contains("size 0"),
        "{zram}"
    );
}

#[test]
fn disks_under_mounted_filesystems_are_excluded() {
    let scan = scan_at(&mixed_machine().roots()).unwrap();
    let root = exclusion(&scan, "/dev/vdc");
    assert!(
        root.contains("holds a mounted filesystem (/ on vdc1)"),
        "{root}"
    );
    // /var is an LV (dm-0) whose physical volume is vdd2.
    let var = exclusion(&scan, "/dev/vdd");
    assert!(
        var.contains("holds a mounted filesystem (/var on dm-0)"),
        "{var}"
    );
}

#[test]
fn candidates_are_exactly_the_installable_disks_in_kernel_order() {
    let scan = scan_at(&mixed_machine().roots()).unwrap();
    let names: Vec<&str> = scan
        .devices
        .iter()
        .map(|device| device.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "/dev/nvme0n1",
            "/dev/sda",
            "/dev/sdb",
            "/dev/sdd",
            "/dev/vda"
        ]
    );
    assert_eq!(scan.excluded.len(), 8, "{:#?}", scan.excluded);
}

#[test]
fn read_only_empty_and_hidden_disks_are_excluded() {
    let machine = FakeMachine::new();
    machine
        .disk(
            "vda",
            "pci0000:00/0000:00:04.0/virtio1",
            "254:0",
            GIB_SECTORS,
        )
        .attr("ro", "1");
    machine.disk("vdb", "pci0000:00/0000:00:05.0/virtio2", "254:16", 0);
    machine
        .disk(
            "nvme0c0n1",
            "pci0000:00/0000:00:06.0/nvme/nvme0",
            "259:0",
            GIB_SECTORS,
        )
        .attr("hidden", "1");
    let scan = scan_at(&machine.roots()).unwrap();
    assert!(scan.devices.is_empty(), "{scan:#?}");
    assert_eq!(exclusion(&scan, "/dev/vda"), "read-only");
    assert_eq!(exclusion(&scan, "/dev/vdb"), "size 0 (no medium)");
    assert!(exclusion(&scan, "/dev/nvme0c0n1").starts_with("hidden"));
}

#[test]
fn installer_boot_media_is_excluded_by_label_and_by_kernel_argument() {
    let mut machine = FakeMachine::new();
    machine.scsi_host(0, "scsi", "usb-storage");
    // A hybrid ISO dd'ed to a stick: the ISO label is on the whole disk.
    machine
        .disk(
            "sda",
            "pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host0/target0:0:0/0:0:0:0",
            "8:0",
            GIB_SECTORS,
        )
        .udev(&format!(
            "E:ID_FS_TYPE=iso9660\nE:ID_FS_LABEL={BOOT_MEDIA_LABEL}\n"
        ))
        .partition("sda2", "8:2", "E:ID_FS_TYPE=vfat\nE:ID_FS_LABEL=ESP\n");
    // Boot media seen only through /dev/disk/by-label (no udev data for it).
    machine
        .disk(
            "vdb",
            "pci0000:00/0000:00:05.0/virtio2",
            "254:16",
            GIB_SECTORS,
        )
        .partition("vdb1", "254:17", "");
    machine.link(
        &format!("dev/disk/by-label/{BOOT_MEDIA_LABEL}"),
        "../../vdb1",
    );
    // Named on the kernel command line through a by-id link to a partition.
    machine
        .disk(
            "vdc",
            "pci0000:00/0000:00:06.0/virtio3",
            "254:32",
            GIB_SECTORS,
        )
        .partition("vdc1", "254:33", "");
    machine.link("dev/disk/by-id/virtio-BOOTSTICK-part1", "../../vdc1");
    machine.disk(
        "vdd",
        "pci0000:00/0000:00:07.0/virtio4",
        "254:48",
        GIB_SECTORS,
    );
    machine.cmdline =
        format!("console=ttyS0 {BOOT_MEDIA_ARG}=/dev/disk/by-id/virtio-BOOTSTICK-part1 quiet");

    let scan = scan_at(&machine.roots()).unwrap();
    let names: Vec<&str> = scan
        .devices
        .iter()
        .map(|device| device.name.as_str())
        .collect();
    assert_eq!(names, ["/dev/vdd"]);
    assert!(exclusion(&scan, "/dev/sda")
        .contains("installer boot media (filesystem labelled OCIMETAL on sda)"));
    assert!(exclusion(&scan, "/dev/vdb")
        .contains("installer boot media (filesystem labelled OCIMETAL on vdb1)"));
    assert!(exclusion(&scan, "/dev/vdc")
        .contains("ocimetal.boot_media=/dev/disk/by-id/virtio-BOOTSTICK-part1"));
}

#[test]
fn a_configdrive_named_on_the_command_line_is_never_a_target() {
    let mut machine = FakeMachine::new();
    // An unlabelled stick with the configdrive on its first partition, named by path.
    machine
        .disk(
            "vdb",
            "pci0000:00/0000:00:05.0/virtio2",
            "254:16",
            GIB_SECTORS,
        )
        .partition(
            "vdb1",
            "254:17",
            "E:ID_FS_TYPE=vfat\nE:ID_FS_LABEL=ORDERS\n",
        );
    // A whole disk named through a by-id link.
    machine.disk(
        "vdc",
        "pci0000:00/0000:00:06.0/virtio3",
        "254:32",
        GIB_SECTORS,
    );
    machine.link("dev/disk/by-id/virtio-CFG", "../../vdc");
    machine.disk(
        "vdd",
        "pci0000:00/0000:00:07.0/virtio4",
        "254:48",
        GIB_SECTORS,
    );
    machine.cmdline =
        "ocimetal.configdrive=/dev/vdb1 ocimetal.configdrive=/dev/disk/by-id/virtio-CFG".into();

    let scan = scan_at(&machine.roots()).unwrap();
    let names: Vec<&str> = scan.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["/dev/vdd"]);
    assert!(exclusion(&scan, "/dev/vdb")
        .contains("configuration drive (ocimetal.configdrive=/dev/vdb1)"));
    assert!(exclusion(&scan, "/dev/vdc")
        .contains("configuration drive (ocimetal.configdrive=/dev/disk/by-id/virtio-CFG)"));
}

#[test]
fn mounts_without_a_device_number_match_by_source() {
    let mut machine = FakeMachine::new();
    machine
        .disk(
            "vda",
            "pci0000:00/0000:00:04.0/virtio1",
            "254:0",
            GIB_SECTORS,
        )
        .partition("vda1", "254:1", "");
    machine.disk(
        "vdb",
        "pci0000:00/0000:00:05.0/virtio2",
        "254:16",
        GIB_SECTORS,
    );
    // btrfs reports an anonymous device number; the source names the partition.
    machine.mountinfo = "30 1 0:35 / / rw - btrfs /dev/vda1 rw\n".to_owned();
    let scan = scan_at(&machine.roots()).unwrap();
    assert!(exclusion(&scan, "/dev/vda").contains("/ on vda1"));
    assert_eq!(scan.devices.len(), 1);
}

#[test]
fn missing_sysfs_is_an_error_naming_the_path() {
    let machine = FakeMachine::new();
    let mut roots = machine.roots();
    roots.sys = machine.path("nonexistent");
    let err = scan_at(&roots).unwrap_err();
    assert!(format!("{err:#}").contains("nonexistent/block"), "{err:#}");
}

#[test]
fn serial_falls_back_to_sysfs_without_udev() {
    let machine = FakeMachine::new();
    machine
        .disk(
            "vda",
            "pci0000:00/0000:00:04.0/virtio1",
            "254:0",
            GIB_SECTORS,
        )
        .attr("serial", "VIRTSERIAL");
    let scan = scan_at(&machine.roots()).unwrap();
    assert_eq!(
        device(&scan, "/dev/vda").serial.as_deref(),
        Some("VIRTSERIAL")
    );
    assert_eq!(device(&scan, "/dev/vda").by_path, None);
}

#[test]
fn transport_follows_lsblk_for_sas_and_fc_hosts() {
    let machine = FakeMachine::new();
    machine.scsi_host(3, "sas", "mpt3sas");
    machine
        .disk(
            "sda",
            "pci0000:00/0000:00:03.0/host3/port-3:0/end_device-3:0/target3:0:0/3:0:0:0",
            "8:0",
            GIB_SECTORS,
        )
        .scsi_address("3:0:0:0");
    machine.scsi_host(4, "fc", "qla2xxx");
    machine.write(
        "sys/class/fc_host/host4/symbolic_name",
        "QLE2562 FW:v8.07 over eth0",
    );
    machine
        .disk(
            "sdb",
            "pci0000:00/0000:00:04.0/host4/rport-4:0-0/target4:0:0/4:0:0:0",
            "8:16",
            GIB_SECTORS,
        )
        .scsi_address("4:0:0:0");
    let scan = scan_at(&machine.roots()).unwrap();
    assert_eq!(device(&scan, "/dev/sda").tran.as_deref(), Some("sas"));
    assert_eq!(device(&scan, "/dev/sdb").tran.as_deref(), Some("fcoe"));
}

#[test]
fn natural_order_matches_kernel_allocation() {
    let mut names = vec!["sdaa", "sdb", "nvme10n1", "sda", "nvme2n1", "sdz"];
    names.sort_by(|a, b| natural_cmp(a, b));
    assert_eq!(names, ["nvme2n1", "nvme10n1", "sda", "sdb", "sdz", "sdaa"]);
}

#[test]
fn inventory_json_round_trips_ipa_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.json");
    // As IPA serializes, with fields we do not model (uuid, partuuid).
    fs::write(
        &path,
        r#"[{"name": "/dev/sda", "model": "QEMU HARDDISK", "size": 21474836480,
             "rotational": true, "wwn": "0x5000c500a1b2c3d4", "serial": "DISK2SERIAL",
             "vendor": "QEMU", "wwn_with_extension": null, "wwn_vendor_extension": null,
             "hctl": "1:0:0:0", "by_path": "/dev/disk/by-path/pci-0000:00:05.0-scsi-0:0:0:0",
             "uuid": "", "partuuid": "", "logical_sectors": 512, "physical_sectors": 512,
             "tran": null}]"#,
    )
    .unwrap();
    let devices = load_json(&path).unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].serial.as_deref(), Some("DISK2SERIAL"));
    assert_eq!(devices[0].size, 21_474_836_480);
    assert!(devices[0].rotational);
    let again: Vec<BlockDevice> =
        serde_json::from_str(&serde_json::to_string(&devices).unwrap()).unwrap();
    assert_eq!(again, devices);
}

#[test]
fn bad_inventory_file_is_an_order_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let err = load_json(&missing).unwrap_err();
    let order = err.downcast_ref::<OrderError>().expect("an OrderError");
    assert_eq!(order.field, "--inventory");
    assert!(order.problem.contains("missing.json"), "{order}");

    let not_array = dir.path().join("object.json");
    fs::write(&not_array, r#"{"name": "/dev/sda"}"#).unwrap();
    let err = load_json(&not_array).unwrap_err().to_string();
    assert!(
        err.contains("object.json") && err.contains("JSON array"),
        "{err}"
    );

    let bad_name = dir.path().join("bad-name.json");
    for (text, index) in [
        (r#"[{"name": "sda", "size": 1}]"#, "device #0"),
        (r#"[{"name": "/dev/", "size": 1}]"#, "device #0"),
        (
            r#"[{"name": "/dev/sda"}, {"name": "/dev/sd b"}]"#,
            "device #1",
        ),
        (
            r#"[{"name": "/dev/sda"}, {"name": "/dev/sda\n"}]"#,
            "device #1",
        ),
        (r#"[{"name": "/dev/sda"}, {"name": "/dev/sda"}]"#, "repeats"),
    ] {
        fs::write(&bad_name, text).unwrap();
        let err = load_json(&bad_name).unwrap_err();
        assert!(err.downcast_ref::<OrderError>().is_some(), "{err:#}");
        let err = err.to_string();
        assert!(
            err.contains("bad-name.json") && err.contains(index),
            "{text}: {err}"
        );
    }
}

/// The live machine: the scan runs, and the disk holding `/` is never a candidate.
#[test]
fn live_scan_protects_the_running_system() {
    let scan = scan().expect("scanning this machine");
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root_devno = mountinfo
        .lines()
        .find(|line| line.split_whitespace().nth(4) == Some("/"))
        .and_then(|line| line.split_whitespace().nth(2))
        .unwrap()
        .to_owned();
    for device in &scan.devices {
        let name = device.name.strip_prefix("/dev/").unwrap();
        let dir = Path::new("/sys/block").join(name);
        assert!(dir.exists(), "{name} listed but not in /sys/block");
        let devno = fs::read_to_string(dir.join("dev")).unwrap();
        assert_ne!(
            devno.trim(),
            root_devno,
            "root disk {name} offered as a target"
        );
        assert!(device.size > 0);
    }
    for excluded in &scan.excluded {
        assert!(!excluded.reason.is_empty());
    }
    println!("{}", render_table(&scan.devices, &scan.excluded));
}
