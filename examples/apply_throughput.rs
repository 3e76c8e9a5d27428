//! Layer application throughput compared with only reading the same stream.
//!
//! Usage: `cargo run --release --example apply_throughput -- LAYER SCRATCH`
//! where LAYER is a `.tar`, `.tar.gz` or `.tar.zst` file and SCRATCH a directory to create
//! (it must not exist; it is removed afterwards). Prints both timings and their ratio.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ocimetal::oci::apply::Applier;

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [layer, scratch] = args.as_slice() else {
        bail!("usage: apply_throughput LAYER(.tar|.tar.gz|.tar.zst) SCRATCH_DIR");
    };
    if scratch.exists() {
        bail!("{} exists; give a path to create", scratch.display());
    }

    // Read once untimed so both runs start from the same page cache state.
    let (entries, bytes, _) = read_only(layer)?;
    let (_, _, read_time) = read_only(layer)?;

    std::fs::create_dir(scratch)?;
    let start = Instant::now();
    let mut applier = Applier::open(scratch)?;
    let stats = applier.apply_layer(&mut *open(layer)?)?;
    let apply_time = start.elapsed();
    let start = Instant::now();
    nix::unistd::sync();
    let sync_time = start.elapsed();

    let mib = bytes as f64 / (1024.0 * 1024.0);
    println!(
        "layer: {} ({entries} members, {mib:.0} MiB of file content)",
        layer.display()
    );
    println!(
        "read only : {:>7.2} s  {:>7.1} MiB/s",
        secs(read_time),
        mib / secs(read_time)
    );
    println!(
        "apply     : {:>7.2} s  {:>7.1} MiB/s  {:>8.0} members/s",
        secs(apply_time),
        mib / secs(apply_time),
        entries as f64 / secs(apply_time)
    );
    println!(
        "ratio     : {:>7.2}x (apply / read only)",
        secs(apply_time) / secs(read_time)
    );
    println!(
        "sync after: {:>7.2} s (page cache writeback, not part of apply)",
        secs(sync_time)
    );
    println!("stats     : {stats:?}");
    std::fs::remove_dir_all(scratch).context("removing the scratch tree")?;
    Ok(())
}

/// Decompresses by file name.
fn open(path: &Path) -> anyhow::Result<Box<dyn Read>> {
    let file = BufReader::with_capacity(1 << 20, File::open(path)?);
    let name = path.to_string_lossy();
    Ok(if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else if name.ends_with(".zst") {
        Box::new(zstd::Decoder::with_buffer(file)?)
    } else {
        Box::new(file)
    })
}

/// Walks the tar stream reading every member's content, writing nothing.
fn read_only(path: &Path) -> anyhow::Result<(u64, u64, Duration)> {
    let start = Instant::now();
    let mut archive = tar::Archive::new(open(path)?);
    let mut buf = vec![0u8; 1 << 20];
    let (mut entries, mut bytes) = (0u64, 0u64);
    for entry in archive.entries()? {
        let mut entry = entry?;
        entries += 1;
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
        }
    }
    Ok((entries, bytes, start.elapsed()))
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}
