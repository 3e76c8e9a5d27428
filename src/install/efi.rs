//! EFI boot entries in NVRAM through efibootmgr: one per ESP with distinct labels, ours first
//! in BootOrder, BootNext on the primary.

use super::bootloader::find_case_insensitive;
use crate::host::exec::cmd;
use crate::host::mount::MountStack;
use crate::host::Host;
use crate::plan::BootEntry;
use anyhow::Context;
use std::path::Path;

/// NVRAM boot state as efibootmgr prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootState {
    pub current: Option<String>,
    pub next: Option<String>,
    pub order: Vec<String>,
    /// (number, label) of every `BootXXXX` entry.
    pub entries: Vec<(String, String)>,
}

/// Parses `efibootmgr` output (`BootOrder: 0001,0000`, `Boot0003* label\tpath`).
pub fn parse_efibootmgr(text: &str) -> BootState {
    let mut state = BootState::default();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("BootCurrent:") {
            state.current = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("BootNext:") {
            state.next = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("BootOrder:") {
            state.order = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        } else if let Some(rest) = line.strip_prefix("Boot") {
            let number: String = rest.chars().take(4).collect();
            if number.len() == 4 && number.chars().all(|c| c.is_ascii_hexdigit()) {
                let label_part = rest[4..].trim_start_matches('*').trim_start();
                let label = label_part.split('\t').next().unwrap_or("").trim_end();
                state.entries.push((number, label.to_string()));
            }
        }
    }
    state
}

/// The BootOrder that puts `ours` first and keeps every other entry after them.
pub fn boot_order(ours: &[String], previous: &[String]) -> Vec<String> {
    ours.iter()
        .cloned()
        .chain(previous.iter().filter(|n| !ours.contains(n)).cloned())
        .collect()
}

fn read_state(host: &dyn Host) -> anyhow::Result<BootState> {
    Ok(parse_efibootmgr(
        &host.run(&mut cmd("efibootmgr", ["-v"]))?.stdout,
    ))
}

/// Runs `look` on an ESP mounted read-only in a private directory for the moment; `None`
/// when it cannot be mounted (missing device, no FAT filesystem).
pub fn with_esp<T>(host: &dyn Host, esp: &str, look: impl FnOnce(&Path) -> T) -> Option<T> {
    let dir = tempfile::Builder::new()
        .prefix("ocimetal-esp-")
        .tempdir_in("/run")
        .ok()?;
    let mut mounts = MountStack::new(host);
    // vfat takes `ro` as a parameter; the mount flags (nodev…) it would refuse.
    mounts.mount_fs(esp, dir.path(), "vfat", Some("ro")).ok()?;
    let seen = look(dir.path());
    drop(mounts);
    Some(seen)
}

/// The entries with every loader checked on its ESP: a loader that is not there (the ESP
/// lacks what the install decided it holds) is replaced by the removable-media loader
/// `\EFI\BOOT\BOOT<ARCH>.EFI` that every ESP of ours has, so the entry still boots.
pub fn checked_entries(host: &dyn Host, entries: &[BootEntry]) -> Vec<BootEntry> {
    entries
        .iter()
        .map(|entry| {
            let esp = crate::plan::partition_path(&entry.disk, entry.partition);
            let checked = with_esp(host, &esp, |root| {
                let parts: Vec<&str> = entry.loader.split('\\').filter(|p| !p.is_empty()).collect();
                if find_case_insensitive(root, &parts).is_some() {
                    return None;
                }
                removable_loader(root)
            });
            match checked.flatten() {
                Some(fallback) => {
                    tracing::warn!(
                        "efi: {} is not on {esp}; {:?} points at {fallback} instead",
                        entry.loader,
                        entry.label
                    );
                    BootEntry {
                        loader: fallback,
                        ..entry.clone()
                    }
                }
                None => entry.clone(),
            }
        })
        .collect()
}

/// `\EFI\BOOT\BOOT<ARCH>.EFI` as the ESP under `root` has it, if it has one.
fn removable_loader(root: &Path) -> Option<String> {
    let dir = find_case_insensitive(root, &["EFI", "BOOT"])?;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            let upper = n.to_ascii_uppercase();
            upper.starts_with("BOOT") && upper.ends_with(".EFI")
        })
        .collect();
    names.sort();
    names.first().map(|n| format!("\\EFI\\BOOT\\{n}"))
}

/// Replaces our entries: removes every entry carrying one of our labels, creates one per ESP,
/// orders ours first, and sets BootNext to the primary. Returns the new entry numbers,
/// primary first.
pub fn ensure_entries(host: &dyn Host, entries: &[BootEntry]) -> anyhow::Result<Vec<String>> {
    let before = read_state(host).context("reading EFI boot entries")?;
    let labels: Vec<&str> = entries.iter().map(|e| e.label.as_str()).collect();
    for (number, label) in &before.entries {
        if labels.contains(&label.as_str()) {
            tracing::info!("efi: removing stale entry Boot{number} {label:?}");
            host.run(&mut cmd("efibootmgr", ["-q", "-b", number.as_str(), "-B"]))?;
        }
    }
    let mut created = Vec::new();
    for entry in entries {
        let loader = &entry.loader;
        let partition = entry.partition.to_string();
        let known: Vec<String> = read_state(host)?.entries.into_iter().map(|e| e.0).collect();
        host.run(&mut cmd(
            "efibootmgr",
            [
                "-q",
                "-c",
                "-d",
                entry.disk.as_str(),
                "-p",
                partition.as_str(),
                "-L",
                entry.label.as_str(),
                "-l",
                loader.as_str(),
            ],
        ))
        .with_context(|| format!("creating EFI entry {:?}", entry.label))?;
        let after = read_state(host)?;
        let number = after
            .entries
            .iter()
            .find(|(n, l)| l == &entry.label && !known.contains(n))
            .map(|(n, _)| n.clone())
            .with_context(|| format!("efibootmgr did not create {:?}", entry.label))?;
        tracing::info!(
            "efi: Boot{number} {:?} -> {} {loader}",
            entry.label,
            entry.disk
        );
        created.push(number);
    }
    let order = boot_order(&created, &read_state(host)?.order).join(",");
    host.run(&mut cmd("efibootmgr", ["-q", "-o", order.as_str()]))?;
    if let Some(primary) = created.first() {
        host.run(&mut cmd("efibootmgr", ["-q", "-n", primary.as_str()]))?;
    }
    Ok(created)
}

/// Whether BootNext already points at the entry labelled `label`: set by an earlier boot of
/// the installer and not used, so the firmware booted something else first (a BMC's
/// persistent boot override wins over BootNext on some machines).
pub fn boot_next_unused(state: &BootState, label: &str) -> bool {
    state
        .entries
        .iter()
        .any(|(n, l)| l == label && state.next.as_ref() == Some(n))
}

/// Sets BootNext to the existing entry labelled `label` (re-entry path). Refuses when an
/// earlier BootNext to it went unused: rebooting again would only boot the installer again.
pub fn boot_next_to(host: &dyn Host, label: &str) -> anyhow::Result<Option<String>> {
    let state = read_state(host)?;
    if boot_next_unused(&state, label) {
        anyhow::bail!(
            "BootNext already points at {label:?} from an earlier boot of the installer, and \
             the firmware booted the installer again (a persistent boot override on the BMC?): \
             not rebooting in a loop; make the disk the boot device"
        );
    }
    let found = state
        .entries
        .iter()
        .find(|(_, l)| l == label)
        .map(|(n, _)| n.clone());
    if let Some(number) = &found {
        host.run(&mut cmd("efibootmgr", ["-q", "-n", number.as_str()]))?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "BootCurrent: 0001\nTimeout: 0 seconds\nBootOrder: 0001,0000,0003\n\
Boot0000* UiApp\tFvVol(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1)/FvFile(462caa21-7614-4503-836e-8ab6f4662331)\n\
Boot0001* UEFI QEMU DVD-ROM QM00005 \tPciRoot(0x0)/Pci(0x1f,0x2)/Sata(2,65535,0){auto_created_boot_option}\n\
Boot0003* ocimetal EFI\tHD(1,GPT,5b1c...,0x1000,0x400000)/File(\\EFI\\debian\\shimx64.efi)\n";

    #[test]
    fn an_unused_boot_next_to_our_entry_is_noticed() {
        let mut state = parse_efibootmgr(OUTPUT);
        assert!(!boot_next_unused(&state, "ocimetal EFI"));
        state.next = Some("0003".into());
        assert!(boot_next_unused(&state, "ocimetal EFI"));
        assert!(!boot_next_unused(&state, "ocimetal EFI2"));
        let with_next = parse_efibootmgr(&format!("BootNext: 0003\n{OUTPUT}"));
        assert_eq!(with_next.next.as_deref(), Some("0003"));
    }

    #[test]
    fn efibootmgr_output_is_parsed() {
        let state = parse_efibootmgr(OUTPUT);
        assert_eq!(state.current.as_deref(), Some("0001"));
        assert_eq!(state.order, vec!["0001", "0000", "0003"]);
        assert_eq!(state.entries.len(), 3);
        assert_eq!(
            state.entries[1],
            ("0001".into(), "UEFI QEMU DVD-ROM QM00005".into())
        );
        assert_eq!(state.entries[2], ("0003".into(), "ocimetal EFI".into()));
    }

    #[test]
    fn our_entries_go_first_and_others_keep_their_order() {
        let ours = vec!["0004".to_string(), "0005".to_string()];
        let previous: Vec<String> = ["0001", "0005", "0000"].map(String::from).to_vec();
        assert_eq!(
            boot_order(&ours, &previous),
            vec!["0004", "0005", "0001", "0000"]
        );
    }
}
