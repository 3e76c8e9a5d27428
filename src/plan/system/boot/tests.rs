use super::*;
use std::path::Path;
use std::process::Command;

/// Debian 12's /etc/default/grub as grub2-common ships it (abridged comments).
const DEBIAN_GRUB_DEFAULT: &str = r#"# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.

GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""

# os-prober can cause damage to guest OSes as it mounts filesystems.
#GRUB_DISABLE_OS_PROBER=false

# Uncomment to disable graphical terminal
#GRUB_TERMINAL=console

# Uncomment if you don't want GRUB to pass "root=UUID=xxx" parameter to Linux
#GRUB_DISABLE_LINUX_UUID=true
"#;

fn text(file: &TargetFile) -> &str {
    file.text().expect("plain")
}

fn settings(serial: Option<SerialConsole>) -> GrubSettings {
    GrubSettings {
        extra_args: Vec::new(),
        root_label: "ROOTFS".into(),
        serial,
    }
}

#[test]
fn grub_default_edits_in_place_and_appends_what_is_missing() {
    let edited = edit_grub_default(
        DEBIAN_GRUB_DEFAULT,
        &settings(Some(SerialConsole::for_arch(Arch::X86_64))),
    );
    assert_eq!(
        edited,
        r#"# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.

GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX="root=LABEL=ROOTFS console=tty0 console=ttyS0,115200n8"

# os-prober can cause damage to guest OSes as it mounts filesystems.
GRUB_DISABLE_OS_PROBER=true

# Uncomment to disable graphical terminal
GRUB_TERMINAL="console serial"

# Uncomment if you don't want GRUB to pass "root=UUID=xxx" parameter to Linux
GRUB_DISABLE_LINUX_UUID=true

# Added by ocimetal.
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
"#
    );
}

#[test]
fn grub_default_without_serial_and_from_nothing() {
    assert_eq!(
        edit_grub_default("", &settings(None)),
        "# Added by ocimetal.\n\
         GRUB_CMDLINE_LINUX=\"root=LABEL=ROOTFS\"\n\
         GRUB_DISABLE_LINUX_UUID=true\n\
         GRUB_DISABLE_OS_PROBER=true\n"
    );
    let arm = edit_grub_default("", &settings(Some(SerialConsole::for_arch(Arch::Aarch64))));
    assert!(arm.contains(
        "GRUB_CMDLINE_LINUX=\"root=LABEL=ROOTFS console=tty0 console=ttyAMA0,115200n8\"\n"
    ));
    assert!(!arm.contains("GRUB_TERMINAL"), "{arm}");
}

#[test]
fn grub_default_drops_later_overrides_and_seed_dracut_options() {
    let existing = "GRUB_CMDLINE_LINUX=\"root=LABEL=ROOTFS rd.auto=1\"\nGRUB_TIMEOUT=1\nGRUB_CMDLINE_LINUX=\"other\"\n#GRUB_CMDLINE_LINUX=\"kept comment\"\nGRUB_DISABLE_LINUX_UUID=false\n";
    let edited = edit_grub_default(existing, &settings(None));
    assert_eq!(
        edited,
        "GRUB_CMDLINE_LINUX=\"root=LABEL=ROOTFS\"\nGRUB_TIMEOUT=1\n#GRUB_CMDLINE_LINUX=\"kept comment\"\n\
         GRUB_DISABLE_LINUX_UUID=true\n\n# Added by ocimetal.\nGRUB_DISABLE_OS_PROBER=true\n"
    );
    assert!(!edited.contains("rd.auto"));
    // Editing twice changes nothing more.
    assert_eq!(edit_grub_default(&edited, &settings(None)), edited);
}

#[test]
fn grub_default_is_valid_shell_that_sets_our_values() {
    let edited = edit_grub_default(
        DEBIAN_GRUB_DEFAULT,
        &settings(Some(SerialConsole::for_arch(Arch::X86_64))),
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{edited}\nprintf '%s|%s|%s|%s' \"$GRUB_CMDLINE_LINUX\" \"$GRUB_TERMINAL\" \"$GRUB_DISABLE_OS_PROBER\" \"$GRUB_CMDLINE_LINUX_DEFAULT\""
        ))
        .output()
        .expect("run sh");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "root=LABEL=ROOTFS console=tty0 console=ttyS0,115200n8|console serial|true|quiet"
    );
}

#[test]
fn initramfs_modules_are_added_once() {
    assert_eq!(
        edit_initramfs_modules("# List of modules\n", true),
        "# List of modules\n# Root on LVM (and RAID1): added by ocimetal.\ndm_mod\nmd_mod\nraid1\n"
    );
    assert_eq!(
        edit_initramfs_modules("dm-mod\nraid1 some_option=1", true),
        "dm-mod\nraid1 some_option=1\n# Root on LVM (and RAID1): added by ocimetal.\nmd_mod\n"
    );
    let once = edit_initramfs_modules("", false);
    assert_eq!(
        once,
        "# Root on LVM (and RAID1): added by ocimetal.\ndm_mod\n"
    );
    assert_eq!(edit_initramfs_modules(&once, false), once);
}

#[test]
fn initramfs_conf_is_only_touched_when_not_most() {
    let debian = "# initramfs.conf\nMODULES=most\nBUSYBOX=auto\n";
    assert_eq!(edit_initramfs_conf(debian), debian);
    assert_eq!(
        edit_initramfs_conf("MODULES=dep\nCOMPRESS=zstd\n"),
        "# ocimetal: the installer's chroot cannot tell which drivers this machine needs.\nMODULES=most\nCOMPRESS=zstd\n"
    );
    assert_eq!(text(&initramfs_resume_file()), "RESUME=none\n");
}

#[test]
fn esp_sync_files_paths_modes_and_syntax() {
    let files = esp_sync_files();
    let listed: Vec<_> = files
        .iter()
        .map(|f| (f.path.to_string_lossy().into_owned(), f.mode))
        .collect();
    assert_eq!(
        listed,
        [
            ("usr/local/sbin/ocimetal-sync-esp".to_string(), 0o755),
            ("etc/grub.d/90_ocimetal_sync_esp".to_string(), 0o755),
            ("etc/apt/apt.conf.d/90ocimetal-sync-esp".to_string(), 0o644),
        ]
    );
    for script in &files[..2] {
        let status = Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(text(script))
            .status()
            .expect("sh");
        assert!(status.success(), "{}", script.path.display());
    }
    assert!(text(&files[2]).contains(
        "DPkg::Post-Invoke { \"if [ -x /usr/local/sbin/ocimetal-sync-esp ]; then /usr/local/sbin/ocimetal-sync-esp || true; fi\"; };"
    ));
}

fn write_exec(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Runs the sync script against two directories, with mount tools replaced by stubs that
/// record their calls. Returns the call log.
fn run_sync(root: &Path, mirror_label_exists: bool) -> String {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let log = root.join("calls");
    let primary = root.join("efi");
    let mirror = root.join("efi2");
    // The primary is mounted, the mirror is not (until the stub "mounts" it).
    write_exec(
        &bin.join("mountpoint"),
        &format!("#!/bin/sh\n[ \"$2\" = \"{}\" ]\n", primary.display()),
    );
    write_exec(
        &bin.join("blkid"),
        &format!(
            "#!/bin/sh\necho \"blkid $*\" >>{}\n{}\n",
            log.display(),
            if mirror_label_exists {
                "exit 0"
            } else {
                "exit 2"
            }
        ),
    );
    for tool in ["mount", "umount"] {
        write_exec(
            &bin.join(tool),
            &format!("#!/bin/sh\necho \"{tool} $*\" >>{}\n", log.display()),
        );
    }
    let script = text(&esp_sync_files()[0])
        .replace("/boot/efi2", &mirror.display().to_string())
        .replace("/boot/efi", &primary.display().to_string());
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .output()
        .expect("run script");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&log).unwrap_or_default()
}

#[test]
fn esp_sync_script_mirrors_and_deletes_stale_files() {
    if Command::new("rsync").arg("--version").output().is_err() {
        println!("SKIPPED esp_sync_script_mirrors_and_deletes_stale_files: rsync is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let primary = root.join("efi/EFI/debian");
    let mirror = root.join("efi2");
    std::fs::create_dir_all(&primary).expect("mkdir");
    std::fs::create_dir_all(mirror.join("EFI/old")).expect("mkdir");
    std::fs::write(primary.join("grubx64.efi"), b"new loader").expect("write");
    std::fs::write(mirror.join("EFI/old/stale.efi"), b"stale").expect("write");

    let calls = run_sync(root, true);
    assert_eq!(
        std::fs::read(mirror.join("EFI/debian/grubx64.efi")).expect("copied"),
        b"new loader"
    );
    assert!(!mirror.join("EFI/old").exists(), "stale files are removed");
    let mirror_s = mirror.display().to_string();
    assert_eq!(
        calls,
        format!("blkid -L EFI2\nmount {mirror_s}\numount {mirror_s}\n")
    );
}

#[test]
fn esp_sync_script_does_nothing_without_a_second_esp() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("efi")).expect("mkdir");
    let calls = run_sync(dir.path(), false);
    assert_eq!(calls, "blkid -L EFI2\n");
}

#[test]
fn the_ordered_console_and_kernel_arguments_reach_grub() {
    let serial = SerialConsole::from_order("ocimetal.console", "ttyS1,57600n8", Arch::X86_64)
        .expect("valid")
        .expect("a serial console");
    assert_eq!(serial.device, "ttyS1");
    assert_eq!(serial.speed, 57_600);
    assert_eq!(serial.grub_unit, Some(1));
    let grub = GrubSettings {
        root_label: "ROOTFS".into(),
        serial: Some(serial),
        extra_args: vec!["nomodeset".into(), "intel_iommu=on".into()],
    };
    let text = edit_grub_default("", &grub);
    assert!(
        text.contains(
            "GRUB_CMDLINE_LINUX=\"root=LABEL=ROOTFS console=tty0 console=ttyS1,57600n8 nomodeset intel_iommu=on\""
        ),
        "{text}"
    );
    assert!(text.contains("serial --unit=1 --speed=57600"), "{text}");
    let arm = SerialConsole::from_order("f", "ttyAMA1", Arch::Aarch64)
        .unwrap()
        .unwrap();
    assert_eq!((arm.speed, arm.grub_unit), (115_200, None));
    assert_eq!(
        SerialConsole::from_order("f", "NONE", Arch::X86_64).unwrap(),
        None
    );
    for bad in [
        "eth0",
        "ttyS",
        "ttyS1,fast",
        "ttyS1,115200e7",
        "ttyS1;reboot",
        "/dev/ttyS1",
    ] {
        let e = SerialConsole::from_order("ocimetal.console", bad, Arch::X86_64).expect_err(bad);
        assert_eq!(e.field, "ocimetal.console");
    }
}
