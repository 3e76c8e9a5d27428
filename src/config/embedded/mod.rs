//! Orders carried by the installer ISO itself (`ocimetal iso customize`).
//!
//! `mkosi/build` reserves two kinds of space in `ocimetal-ramdisk.iso`, both plain files of
//! the ISO 9660 tree whose bytes can be rewritten without moving anything:
//!
//! - the orders area `/ocimetal/orders.img` ([`ORDERS_AREA_LEN`] bytes, zeros as built): a
//!   configdrive and a node JSON document ([`area`]);
//! - a kernel-argument area on every `linux` line of `/boot/grub/grub.cfg` ([`kargs`]).
//!
//! The ramdisk reads the orders area from its own boot medium (the ISO 9660 filesystem
//! labelled `OCIMETAL`, as a CD or as the whole of a USB stick); the kernel arguments reach it
//! through GRUB, on the kernel command line.

pub mod area;
pub mod kargs;

use super::configdrive::ConfigDrive;
use super::iso9660::IsoImage;
use super::mount::DeviceRoots;
use super::node::NodeDoc;
use crate::error::OrderError;
use crate::host::{sysfs, udev};
use area::Payload;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The orders area inside the ISO 9660 tree.
pub const ORDERS_PATH: &str = "/ocimetal/orders.img";
/// The GRUB menu inside the ISO 9660 tree.
pub const GRUB_CFG_PATH: &str = "/boot/grub/grub.cfg";
/// The size `mkosi/build` gives the orders area.
pub const ORDERS_AREA_LEN: u64 = 4 * 1024 * 1024;
/// The volume label of the installer ISO.
pub const LABEL: &str = "OCIMETAL";
/// Largest orders area read (an ISO built with a larger one still works).
const MAX_AREA: u64 = 64 * 1024 * 1024;
/// Largest GRUB menu read.
const MAX_GRUB_CFG: u64 = 1024 * 1024;

/// Where the areas of an installer ISO lie: byte offset and length of each file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// `/ocimetal/orders.img`.
    pub orders: (u64, u64),
    /// `/boot/grub/grub.cfg`.
    pub grub_cfg: (u64, u64),
}

/// Everything an installer ISO carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Carried {
    /// The orders area's content; `None` when it is empty.
    pub payload: Option<Payload>,
    /// The embedded kernel arguments (empty when none).
    pub kargs: String,
}

/// The orders found on a medium, parsed.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// Where they were read, e.g. `/dev/sr0:/ocimetal/orders.img`.
    pub origin: String,
    /// The carried node document.
    pub node: Option<NodeDoc>,
    /// The carried configdrive.
    pub drive: Option<ConfigDrive>,
}

impl Embedded {
    /// Parses what an area carries; `origin` names it.
    pub fn parse(payload: &Payload, origin: &str) -> Result<Self, OrderError> {
        Ok(Self {
            origin: origin.to_string(),
            node: payload.node_doc(origin)?,
            drive: payload.drive(origin)?,
        })
    }
}

/// Locates both areas of an installer ISO; `name` names it in errors.
pub fn layout<R: Read + Seek>(reader: R, name: &str) -> Result<Layout, OrderError> {
    let not_ours = |why: String| {
        OrderError::new(
            name,
            format!("{why}; give an ocimetal-ramdisk.iso built by mkosi/build"),
        )
    };
    let mut image = IsoImage::open(reader)
        .map_err(|err| not_ours(format!("is not an ISO 9660 image ({err})")))?;
    let mut find = |path: &str| {
        image
            .locate(path)
            .map_err(|err| not_ours(format!("cannot be read ({err})")))?
            .ok_or_else(|| {
                not_ours(format!(
                    "has no {path} (built before ISOs could carry orders?)"
                ))
            })
    };
    Ok(Layout {
        orders: find(ORDERS_PATH)?,
        grub_cfg: find(GRUB_CFG_PATH)?,
    })
}

/// Reads what the installer ISO `reader` carries; `name` names it in errors.
pub fn read_carried<R: Read + Seek>(mut reader: R, name: &str) -> Result<Carried, OrderError> {
    let layout = layout(&mut reader, name)?;
    let (area, cfg) = read_areas(&mut reader, &layout, name)?;
    let payload = area::decode(&area, &format!("{name}:{ORDERS_PATH}"))?;
    let kargs =
        kargs::read(&cfg).map_err(|why| OrderError::new(format!("{name}:{GRUB_CFG_PATH}"), why))?;
    Ok(Carried { payload, kargs })
}

/// The bytes of both areas, bounded.
pub fn read_areas<R: Read + Seek>(
    reader: &mut R,
    layout: &Layout,
    name: &str,
) -> Result<(Vec<u8>, Vec<u8>), OrderError> {
    let area = read_bounded(reader, layout.orders, MAX_AREA)
        .map_err(|err| OrderError::new(format!("{name}:{ORDERS_PATH}"), err))?;
    let cfg = read_bounded(reader, layout.grub_cfg, MAX_GRUB_CFG)
        .map_err(|err| OrderError::new(format!("{name}:{GRUB_CFG_PATH}"), err))?;
    Ok((area, cfg))
}

fn read_bounded<R: Read + Seek>(
    reader: &mut R,
    (offset, len): (u64, u64),
    max: u64,
) -> Result<Vec<u8>, String> {
    if len > max {
        return Err(format!(
            "is {len} bytes, more than the {max} bytes ocimetal reads"
        ));
    }
    let mut buf = vec![0u8; len as usize];
    reader
        .seek(SeekFrom::Start(offset))
        .and_then(|_| reader.read_exact(&mut buf))
        .map_err(|err| format!("cannot be read ({err})"))?;
    Ok(buf)
}

/// The orders an installer ISO file carries, with its kernel arguments; `field` names the
/// option that gave the path.
pub fn read_iso_file(path: &Path, field: &str) -> Result<(Embedded, String), OrderError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|err| {
        OrderError::new(
            field,
            format!("cannot open {name} ({err}); give an installer ISO"),
        )
    })?;
    let carried = read_carried(std::io::BufReader::new(file), &name)?;
    let origin = format!("{name}:{ORDERS_PATH}");
    let embedded = match &carried.payload {
        Some(payload) => Embedded::parse(payload, &origin)?,
        None => Embedded {
            origin,
            node: None,
            drive: None,
        },
    };
    Ok((embedded, carried.kargs))
}

/// The devices that may be the installer's boot medium: an ISO 9660 filesystem labelled
/// `OCIMETAL` (a CD, or the whole of a USB stick the ISO was written to), from the udev
/// database, in device-number order. The FAT ESP of the same stick has that label too and is
/// left out by its type.
pub fn boot_media(roots: &DeviceRoots) -> Vec<PathBuf> {
    udev::block_entries(&roots.udev_data)
        .into_iter()
        .filter(|(_, entry)| {
            entry.get("ID_FS_LABEL") == Some(LABEL) && entry.get("ID_FS_TYPE") == Some("iso9660")
        })
        .map(|(major_minor, _)| {
            sysfs::uevent_value(&roots.sys_dev_block.join(&major_minor), "DEVNAME")
                .map(|name| roots.dev.join(name))
                .unwrap_or_else(|| roots.dev.join("block").join(&major_minor))
        })
        .collect()
}

/// What GRUB puts first on the kernel command line when it boots the installer ISO (as a CD
/// or from a stick): the ISO's own kernel path.
pub const ISO_BOOT_IMAGE: &str = "BOOT_IMAGE=/ocimetal/vmlinuz";
/// How long a ramdisk booted from the ISO waits for its medium to be probed (a USB stick can
/// show up well after udev has settled).
pub const BOOT_MEDIUM_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// Whether this kernel command line comes from the installer ISO's GRUB menu.
pub fn booted_from_iso(cmdline: &str) -> bool {
    cmdline.split_whitespace().next() == Some(ISO_BOOT_IMAGE)
}

/// Waits (bounded) until the udev database lists a boot medium of [`boot_media`]; `false`
/// when none appeared in time.
pub fn wait_for_boot_medium(roots: &DeviceRoots, timeout: std::time::Duration) -> bool {
    crate::host::wait::wait_until(&roots.udev_data, timeout, || !boot_media(roots).is_empty())
        .unwrap_or_else(|err| {
            tracing::warn!("cannot wait for the installer medium: {err:#}");
            false
        })
}

/// The orders carried by the boot medium, if any: every medium of [`boot_media`] is read and
/// at most one may carry orders. A medium that cannot be opened, or an older ISO without an
/// orders area, carries none; a damaged area is an [`OrderError`].
pub fn from_boot_media(roots: &DeviceRoots) -> anyhow::Result<Option<Embedded>> {
    let mut found: Vec<Embedded> = Vec::new();
    for device in boot_media(roots) {
        let name = device.display().to_string();
        let file = match std::fs::File::open(&device) {
            Ok(file) => file,
            Err(err) => {
                tracing::warn!("cannot read the installer medium {name}: {err}");
                continue;
            }
        };
        let mut reader = std::io::BufReader::new(file);
        let Ok(layout) = layout(&mut reader, &name) else {
            tracing::info!("{name}: no orders area");
            continue;
        };
        let (area, _) = read_areas(&mut reader, &layout, &name)?;
        let origin = format!("{name}:{ORDERS_PATH}");
        if let Some(payload) = area::decode(&area, &origin)? {
            found.push(Embedded::parse(&payload, &origin)?);
        }
    }
    if found.len() > 1 {
        let names: Vec<&str> = found.iter().map(|e| e.origin.as_str()).collect();
        return Err(OrderError::new(
            "embedded orders",
            format!(
                "more than one installer medium carries orders ({}); leave only one attached",
                names.join(", ")
            ),
        )
        .into());
    }
    Ok(found.pop())
}

#[cfg(test)]
pub(crate) mod tests;
