//! Writing the planned GPT with sgdisk and waiting for the partition nodes.

use super::wipe::erase_signatures;
use crate::host::exec::cmd;
use crate::host::Host;
use crate::plan::{DiskLayout, PartitionDisks};
use anyhow::Context;
use std::path::Path;
use std::time::Duration;

/// How long udev may take to announce a new partition.
pub const DEVICE_TIMEOUT: Duration = Duration::from_secs(60);

/// sgdisk arguments that create `layout` on a cleared table. sgdisk gives every disk and
/// partition a fresh random GUID, so two disks with the same layout never share one.
pub fn sgdisk_args(layout: &DiskLayout) -> Vec<String> {
    let sector_size = layout.sector_size;
    let mut args = vec!["--clear".to_string()];
    for part in &layout.partitions {
        let first = part.start / sector_size;
        let last = (part.start + part.size) / sector_size - 1;
        let n = part.number;
        args.push(format!("--new={n}:{first}:{last}"));
        args.push(format!("--typecode={n}:{}", part.type_guid));
        args.push(format!("--change-name={n}:{}", part.gpt_name));
    }
    args.push(layout.disk.clone());
    args
}

/// The partition step: every planned GPT written, each new partition awaited and scrubbed of
/// old signatures (a new partition at an old offset would bring them back).
pub fn run(host: &dyn Host, step: &PartitionDisks) -> anyhow::Result<()> {
    for layout in &step.disks {
        write_gpt(host, layout)?;
        for part in &layout.partitions {
            erase_signatures(host, &part.device)?;
        }
    }
    Ok(())
}

/// Writes the GPT and waits until udev has processed every new partition.
fn write_gpt(host: &dyn Host, layout: &DiskLayout) -> anyhow::Result<()> {
    tracing::info!("partition: {}", layout.disk);
    host.run(&mut cmd("sgdisk", sgdisk_args(layout)))
        .with_context(|| format!("partitioning {}", layout.disk))?;
    for part in &layout.partitions {
        host.wait_for_device(Path::new(&part.device), DEVICE_TIMEOUT)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::BlockDevice;
    use crate::plan::layout::layouts;

    #[test]
    fn sgdisk_gets_exact_sectors_types_and_names() {
        let disk = BlockDevice {
            name: "/dev/sda".into(),
            size: 16 << 30,
            ..Default::default()
        };
        let layout = &layouts(&[disk], false, "h").unwrap()[0];
        let args = sgdisk_args(layout);
        assert_eq!(args[0], "--clear");
        assert_eq!(args[1], "--new=1:4096:4198399");
        assert_eq!(args[2], "--typecode=1:C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(args[3], "--change-name=1:EFI");
        assert_eq!(
            args[4],
            format!("--new=2:4198400:{}", ((16u64 << 30) - (1 << 20)) / 512 - 1)
        );
        assert_eq!(args.last().unwrap(), "/dev/sda");
        let four_k = DiskLayout {
            sector_size: 4096,
            ..layout.clone()
        };
        let args4k = sgdisk_args(&four_k);
        assert_eq!(args4k[1], "--new=1:512:524799");
    }
}
