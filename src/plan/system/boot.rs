//! Boot configuration: initramfs-tools settings, GRUB defaults, and keeping the second ESP of
//! a RAID1 install in step with the first.

use super::file::TargetFile;
use super::files::{ESP2_LABEL, ESP2_MOUNT, ESP_MOUNT};
use crate::arch::Arch;
use crate::error::OrderError;
use std::fmt::Write;

/// `conf.d/resume`: there is no swap to resume from, and initramfs-tools would otherwise
/// probe for one (and wait for it) at every boot.
pub fn initramfs_resume_file() -> TargetFile {
    TargetFile::plain("etc/initramfs-tools/conf.d/resume", "RESUME=none\n", 0o644)
}

/// Modules forced into the initramfs. The lvm2 and mdadm hooks add them too when they detect
/// the root device, but detection runs inside the installer's chroot, where it may not see
/// the target's device stack; listing them costs nothing.
pub fn initramfs_modules(raid: bool) -> &'static [&'static str] {
    if raid {
        &["dm_mod", "md_mod", "raid1"]
    } else {
        &["dm_mod"]
    }
}

/// Appends to `/etc/initramfs-tools/modules` the modules of [`initramfs_modules`] it lacks
/// (`dm-mod` and `dm_mod` count as the same), keeping everything already there.
pub fn edit_initramfs_modules(existing: &str, raid: bool) -> String {
    let normalise = |s: &str| s.replace('-', "_");
    let present: Vec<String> = existing
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .map(normalise)
        .collect();
    let mut out = existing.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let missing: Vec<&str> = initramfs_modules(raid)
        .iter()
        .copied()
        .filter(|m| !present.contains(&normalise(m)))
        .collect();
    if !missing.is_empty() {
        out.push_str("# Root on LVM (and RAID1): added by ocimetal.\n");
        for m in missing {
            out.push_str(m);
            out.push('\n');
        }
    }
    out
}

/// Makes `initramfs.conf` say `MODULES=most` (the Debian and Ubuntu default), changing the
/// file only when it says otherwise: `dep` would size the initramfs by what the installer's
/// chroot sees, not by the target's hardware, and `list`/`netboot` leave out disk drivers.
pub fn edit_initramfs_conf(existing: &str) -> String {
    let mut out = String::with_capacity(existing.len());
    for line in existing.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        match body.trim_start().strip_prefix("MODULES=") {
            Some(value) if value.trim().trim_matches('"') != "most" => {
                out.push_str("# ocimetal: the installer's chroot cannot tell which drivers this machine needs.\n");
                out.push_str("MODULES=most\n");
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// A serial console for the kernel and (where GRUB can drive it) for GRUB.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SerialConsole {
    /// Kernel device name, e.g. `ttyS0`.
    pub device: String,
    /// Baud rate.
    pub speed: u32,
    /// GRUB's `serial --unit=N`, when GRUB has a port driver for it (x86 UARTs).
    pub grub_unit: Option<u8>,
}

impl SerialConsole {
    /// The console `ocimetal.console=` orders: `none` (the screen only), or `DEVICE[,SPEED]`
    /// with an optional parity/bits suffix as the kernel writes it (`ttyS1,115200n8`); only
    /// `n8` is used. `ttyS<N>` on x86_64 is also GRUB's serial unit N.
    pub fn from_order(field: &str, value: &str, arch: Arch) -> Result<Option<Self>, OrderError> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        let (device, options) = value.split_once(',').unwrap_or((value, ""));
        let digits: String = options.chars().take_while(char::is_ascii_digit).collect();
        let suffix = &options[digits.len()..];
        let device_ok = device.len() <= 16
            && device.starts_with("tty")
            && device.chars().all(|c| c.is_ascii_alphanumeric())
            && device.ends_with(|c: char| c.is_ascii_digit());
        let speed = if digits.is_empty() {
            Some(115_200)
        } else {
            digits
                .parse::<u32>()
                .ok()
                .filter(|s| (1_200..=4_000_000).contains(s))
        };
        let suffix_ok = suffix.is_empty() || suffix == "n8";
        match (
            device_ok && suffix_ok && options.len() == digits.len() + suffix.len(),
            speed,
        ) {
            (true, Some(speed)) => Ok(Some(Self {
                device: device.to_string(),
                speed,
                grub_unit: match arch {
                    Arch::X86_64 => device.strip_prefix("ttyS").and_then(|n| n.parse().ok()),
                    Arch::Aarch64 => None,
                },
            })),
            _ => Err(OrderError::new(
                field,
                format!(
                    "{value:?} is not a serial console; give DEVICE[,SPEED] like ttyS1,115200 \
                     (ttyS0 is {}'s usual one) or none",
                    arch
                ),
            )),
        }
    }

    /// The usual first serial port of `arch` at 115200 baud. On aarch64 GRUB keeps the
    /// firmware console, which is the serial port on servers.
    pub fn for_arch(arch: Arch) -> Self {
        Self {
            device: arch.serial_console().to_string(),
            speed: 115_200,
            grub_unit: matches!(arch, Arch::X86_64).then_some(0),
        }
    }
}

/// The installed kernel's console and extra arguments, as the orders decide them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BootChoices {
    /// The serial console (`None`: the screen only).
    pub serial: Option<SerialConsole>,
    /// More kernel arguments (`ocimetal.karg`).
    pub extra_args: Vec<String>,
}

impl BootChoices {
    /// From `ocimetal.console` (`None`: the architecture's usual port at 115200) and
    /// `ocimetal.karg`.
    pub fn from_orders(
        console: Option<&str>,
        extra_args: &[String],
        arch: Arch,
    ) -> Result<Self, OrderError> {
        let serial = match console {
            Some(value) => SerialConsole::from_order("ocimetal.console", value, arch)?,
            None => Some(SerialConsole::for_arch(arch)),
        };
        Ok(Self {
            serial,
            extra_args: extra_args.to_vec(),
        })
    }
}

/// What ocimetal sets in `/etc/default/grub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrubSettings {
    /// Root filesystem label, for `root=LABEL=`.
    pub root_label: String,
    /// Serial console, if any.
    pub serial: Option<SerialConsole>,
    /// More kernel arguments, as ordered.
    pub extra_args: Vec<String>,
}

impl GrubSettings {
    /// The `KEY=value` assignments, in the order they are appended when missing.
    pub fn assignments(&self) -> Vec<(&'static str, String)> {
        let mut cmdline = format!("root=LABEL={}", self.root_label);
        if let Some(serial) = &self.serial {
            // The last console= is /dev/console: the serial line, which a BMC can show.
            let _ = write!(
                cmdline,
                " console=tty0 console={},{}n8",
                serial.device, serial.speed
            );
        }
        for arg in &self.extra_args {
            cmdline.push(' ');
            cmdline.push_str(arg);
        }
        let mut vars = vec![
            ("GRUB_CMDLINE_LINUX", format!("\"{cmdline}\"")),
            // The root is found by label: a UUID would point at one RAID member's LV copy
            // no better, and labels are what the initramfs is told to wait for.
            ("GRUB_DISABLE_LINUX_UUID", "true".to_string()),
            ("GRUB_DISABLE_OS_PROBER", "true".to_string()),
        ];
        if let Some(SerialConsole {
            speed,
            grub_unit: Some(unit),
            ..
        }) = &self.serial
        {
            vars.push(("GRUB_TERMINAL", "\"console serial\"".to_string()));
            vars.push((
                "GRUB_SERIAL_COMMAND",
                format!("\"serial --unit={unit} --speed={speed}\""),
            ));
        }
        vars
    }
}

/// Edits the text of `/etc/default/grub`: each of our variables replaces the first line that
/// assigns it (commented out or not), later active assignments of it are dropped (the shell
/// would let them win), and variables never mentioned are appended. Every other line stays.
pub fn edit_grub_default(existing: &str, settings: &GrubSettings) -> String {
    let vars = settings.assignments();
    let mut written = vec![false; vars.len()];
    let mut out = String::with_capacity(existing.len() + 256);
    for line in existing.lines() {
        let commented = line.trim_start().starts_with('#');
        let key = line
            .trim_start()
            .trim_start_matches('#')
            .trim_start()
            .split_once('=')
            .map(|(k, _)| k);
        match key.and_then(|k| vars.iter().position(|(name, _)| *name == k)) {
            Some(i) if !written[i] => {
                let _ = writeln!(out, "{}={}", vars[i].0, vars[i].1);
                written[i] = true;
            }
            Some(_) if !commented => {}
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if written.iter().any(|w| !w) {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str("# Added by ocimetal.\n");
        for (i, (name, value)) in vars.iter().enumerate() {
            if !written[i] {
                let _ = writeln!(out, "{name}={value}");
            }
        }
    }
    out
}

/// Path of the ESP mirroring script in the target.
pub const ESP_SYNC_SCRIPT: &str = "usr/local/sbin/ocimetal-sync-esp";

/// The files that keep the second ESP a copy of the first on a RAID1 install.
///
/// The ESP cannot sit on the md array (firmware reads it as plain FAT), so only the first
/// ESP is mounted and updated by the system; its content changes when GRUB or shim is
/// (re)installed. Kernels and grub.cfg live on the root LV, which RAID1 already mirrors.
/// So the script runs after every dpkg run started by apt (GRUB, shim and kernel upgrades
/// all come that way) and from `update-grub` (which follows a manual `grub-install`).
/// It uses rsync rather than `cp -a`: vfat has no owners or modes for `-a` to keep,
/// `--delete` drops files the first ESP no longer has, only changed files are written, and
/// each goes to a temporary name first, so an interruption never leaves half a loader.
pub fn esp_sync_files() -> Vec<TargetFile> {
    let script = format!(
        r#"#!/bin/sh
# Written by ocimetal. Mirrors the first EFI system partition ({ESP_MOUNT}) onto the second
# one (LABEL={ESP2_LABEL}, {ESP2_MOUNT}) so that either RAID1 disk boots on its own.
set -eu
primary={ESP_MOUNT}
mirror={ESP2_MOUNT}
mountpoint -q "$primary" || exit 0
if ! blkid -L {ESP2_LABEL} >/dev/null 2>&1; then
    echo "ocimetal-sync-esp: no filesystem labelled {ESP2_LABEL}; the second ESP was not updated" >&2
    exit 0
fi
if ! mountpoint -q "$mirror"; then
    mkdir -p "$mirror"
    mount "$mirror"
    trap 'umount "$mirror"' EXIT
fi
# vfat keeps 2-second timestamps: compare with that slack so unchanged files are skipped.
rsync --recursive --times --modify-window=1 --delete "$primary/" "$mirror/"
"#
    );
    let grub_hook = format!(
        r#"#!/bin/sh
# Written by ocimetal: update-grub also refreshes the second ESP. grub-mkconfig puts this
# script's standard output into grub.cfg, so everything goes to standard error.
if [ -x /{ESP_SYNC_SCRIPT} ]; then
    /{ESP_SYNC_SCRIPT} >&2 || echo "ocimetal-sync-esp failed; the second ESP may be stale" >&2
fi
exit 0
"#
    );
    let apt_hook = format!(
        "// Written by ocimetal: after every dpkg run (GRUB, shim or kernel upgrades), mirror the\n\
         // first ESP onto the second so both RAID1 disks stay bootable.\n\
         DPkg::Post-Invoke {{ \"if [ -x /{ESP_SYNC_SCRIPT} ]; then /{ESP_SYNC_SCRIPT} || true; fi\"; }};\n"
    );
    vec![
        TargetFile::plain(ESP_SYNC_SCRIPT, script, 0o755),
        TargetFile::plain("etc/grub.d/90_ocimetal_sync_esp", grub_hook, 0o755),
        TargetFile::plain("etc/apt/apt.conf.d/90ocimetal-sync-esp", apt_hook, 0o644),
    ]
}

#[cfg(test)]
mod tests;
