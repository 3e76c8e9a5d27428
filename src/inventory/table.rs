//! The human table printed by `ocimetal devices`.

use super::{BlockDevice, Excluded};

const HEADERS: [&str; 8] = [
    "NAME", "SIZE", "TRAN", "ROTA", "MODEL", "SERIAL", "WWN", "HCTL",
];

/// Human table for `ocimetal devices`.
pub fn render_table(devices: &[BlockDevice], excluded: &[Excluded]) -> String {
    let mut out = String::new();
    if devices.is_empty() {
        out.push_str("No candidate disks.\n");
    } else {
        let rows: Vec<[String; 8]> = devices.iter().map(row).collect();
        let mut widths = HEADERS.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        push_line(&mut out, &HEADERS.map(str::to_owned), &widths);
        for row in &rows {
            push_line(&mut out, row, &widths);
        }
    }
    if !excluded.is_empty() {
        out.push_str("\nExcluded:\n");
        let width = excluded
            .iter()
            .map(|device| device.name.chars().count())
            .max()
            .unwrap_or(0);
        for device in excluded {
            out.push_str(&format!("  {:width$}  {}\n", device.name, device.reason));
        }
    }
    out
}

fn row(device: &BlockDevice) -> [String; 8] {
    let text = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    [
        device.name.clone(),
        human_size(device.size),
        text(&device.tran),
        if device.rotational { "1" } else { "0" }.to_owned(),
        text(&device.model),
        text(&device.serial),
        text(&device.wwn),
        text(&device.hctl),
    ]
}

fn push_line(out: &mut String, cells: &[String; 8], widths: &[usize; 8]) {
    let line: Vec<String> = cells
        .iter()
        .zip(widths)
        .enumerate()
        // Sizes read best right-aligned.
        .map(|(column, (cell, &width))| match column {
            1 => format!("{cell:>width$}"),
            _ => format!("{cell:width$}"),
        })
        .collect();
    out.push_str(line.join("  ").trim_end());
    out.push('\n');
}

/// Bytes in binary units with one decimal, e.g. `447.1 GiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(10 * 1024 * 1024 * 1024), "10.0 GiB");
        assert_eq!(human_size(480_103_981_056), "447.1 GiB");
    }

    #[test]
    fn table_aligns_columns_and_lists_exclusions() {
        let devices = [
            BlockDevice {
                name: "/dev/sda".into(),
                size: 480_103_981_056,
                tran: Some("sata".into()),
                model: Some("Samsung SSD 860".into()),
                serial: Some("S3Z9NB0K123".into()),
                ..Default::default()
            },
            BlockDevice {
                name: "/dev/nvme0n1".into(),
                size: 1024 * 1024 * 1024,
                ..Default::default()
            },
        ];
        let excluded = [Excluded {
            name: "/dev/sr0".into(),
            reason: "optical drive".into(),
        }];
        let table = render_table(&devices, &excluded);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("NAME          "), "{table}");
        let serial_column = lines[0].find("SERIAL").unwrap();
        assert_eq!(&lines[1][serial_column..serial_column + 11], "S3Z9NB0K123");
        assert_eq!(&lines[2][serial_column..serial_column + 1], "-");
        assert!(lines[2].contains("  1.0 GiB"), "{table}");
        assert_eq!(lines[4], "Excluded:");
        assert_eq!(lines[5], "  /dev/sr0  optical drive");
    }

    #[test]
    fn empty_inventory_says_so() {
        assert_eq!(render_table(&[], &[]), "No candidate disks.\n");
    }
}
