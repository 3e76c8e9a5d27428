//! `ocimetal iso customize | show | reset`: orders carried by the installer ISO.
//!
//! The ISO keeps its size, its El Torito catalogue, its GPT and its EFI system partition
//! byte for byte: only the orders area (`/ocimetal/orders.img`) and the kernel-argument areas
//! of `/boot/grub/grub.cfg` are rewritten, in a copy written next to the output and renamed
//! over it once complete (see `config::embedded`).

use crate::config::configdrive::ConfigDrive;
use crate::config::embedded::area::{self, DriveFiles, Payload};
use crate::config::embedded::{self, kargs, Carried, Embedded, Layout};
use crate::config::{self, display_url, redact, EmbeddedSource, GatherOptions, NodeDoc};
use crate::error::{NoOrders, OrderError};
use crate::host::cmdline::{self as words, Key};
use anyhow::Context;
use serde_json::Value;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Largest configdrive or node file read (base64 of a 64 MiB drive included).
const MAX_INPUT: u64 = 96 * 1024 * 1024;

/// Arguments of `ocimetal iso`.
#[derive(Debug, clap::Args)]
pub struct IsoArgs {
    #[command(subcommand)]
    pub command: IsoCommand,
}

/// The `ocimetal iso` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum IsoCommand {
    /// Write a copy of the installer ISO that carries orders.
    Customize(CustomizeArgs),
    /// Print the orders an installer ISO carries (secrets redacted).
    Show(ShowArgs),
    /// Write a copy of the installer ISO without the orders it carries.
    Reset(ResetArgs),
}

/// Where a rewritten ISO goes.
#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// Write the result to OUT.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Rewrite the input ISO itself.
    #[arg(long, conflicts_with = "output")]
    pub in_place: bool,
    /// Overwrite an existing OUT, and replace orders the ISO already carries.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `ocimetal iso customize`.
#[derive(Debug, clap::Args)]
pub struct CustomizeArgs {
    /// A configdrive: a config-2 directory or ISO image, a file with Ironic's stored string
    /// (base64 of a gzipped config-2 image), or a JSON file with meta_data / user_data /
    /// network_data as `baremetal node deploy --config-drive` takes it.
    #[arg(long, value_name = "PATH")]
    pub configdrive: Option<PathBuf>,
    /// A node JSON document (Ironic's shape) to carry.
    #[arg(long, value_name = "FILE")]
    pub node: Option<PathBuf>,
    /// Kernel arguments for both boot menu entries, e.g.
    /// 'ocimetal.image=debian:13 ocimetal.root_device_hints="serial=A B"'.
    #[arg(long, value_name = "WORDS")]
    pub kargs: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The installer ISO (ocimetal-ramdisk.iso).
    pub iso: PathBuf,
}

/// Arguments of `ocimetal iso show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The installer ISO.
    pub iso: PathBuf,
}

/// Arguments of `ocimetal iso reset`.
#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    /// The installer ISO.
    pub iso: PathBuf,
}

/// Runs an `ocimetal iso` subcommand.
pub fn run(args: &IsoArgs) -> anyhow::Result<()> {
    match &args.command {
        IsoCommand::Customize(args) => customize(args),
        IsoCommand::Show(args) => show(args),
        IsoCommand::Reset(args) => reset(args),
    }
}

/// Opens an installer ISO: its layout and what it carries.
fn open(path: &Path) -> anyhow::Result<(Layout, Carried)> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|err| {
        OrderError::new(
            "ISO",
            format!("cannot open {name} ({err}); give the installer ISO"),
        )
    })?;
    let mut reader = std::io::BufReader::new(file);
    let layout = embedded::layout(&mut reader, &name)?;
    let carried = embedded::read_carried(&mut reader, &name)?;
    Ok((layout, carried))
}

fn customize(args: &CustomizeArgs) -> anyhow::Result<()> {
    if args.configdrive.is_none() && args.node.is_none() && args.kargs.is_none() {
        return Err(OrderError::new(
            "iso customize",
            "nothing to carry; give --configdrive, --node and/or --kargs",
        )
        .into());
    }
    let (layout, carried) = open(&args.iso)?;
    if (carried.payload.is_some() || !carried.kargs.is_empty()) && !args.output.force {
        return Err(OrderError::new(
            "ISO",
            format!(
                "{} already carries orders; add --force to replace them, or start from `ocimetal iso reset`",
                args.iso.display()
            ),
        )
        .into());
    }
    let target = target(&args.iso, &args.output)?;
    let drive = args
        .configdrive
        .as_deref()
        .map(read_configdrive)
        .transpose()?;
    let node = args.node.as_deref().map(read_node).transpose()?;
    let kargs = match &args.kargs {
        Some(text) => kargs::check(text, "--kargs")?,
        None => String::new(),
    };
    let payload = Payload {
        configdrive: drive.as_ref().map(DriveFiles::from_drive),
        node,
    };
    let field = match (&args.configdrive, &args.node) {
        (Some(_), _) => "--configdrive",
        _ => "--node",
    };
    let area = area::encode(&payload, layout.orders.1 as usize, field)?;
    check_as_booted(&area, &kargs)?;
    write(&args.iso, &target, &layout, &area, &kargs)?;
    println!(
        "wrote {}: {}",
        target.display(),
        describe(&Carried {
            payload: Some(payload).filter(|p| !p.is_empty()),
            kargs,
        })
    );
    Ok(())
}

/// Reads the orders back from the area as the ramdisk will, and checks them with the planner's
/// checks that need no disks. The command line's own node and configdrive (`ocimetal.node=`,
/// `ocimetal.configdrive=`) belong to the machine that boots and are not read here.
fn check_as_booted(area: &[u8], kargs: &str) -> anyhow::Result<()> {
    let origin = embedded::ORDERS_PATH;
    let embedded = match area::decode(area, origin)? {
        Some(payload) => Embedded::parse(&payload, origin)?,
        None => Embedded {
            origin: origin.to_string(),
            node: None,
            drive: None,
        },
    };
    let gathered = config::gather(&GatherOptions {
        cmdline: Some(kargs.to_string()),
        embedded: EmbeddedSource::Given(Box::new(embedded)),
        offline: true,
        ..GatherOptions::default()
    });
    match gathered {
        Ok(orders) => Ok(crate::plan::check_orders(&orders)?),
        // Kernel arguments such as console= alone give no orders; that is theirs to decide.
        Err(err) if err.downcast_ref::<NoOrders>().is_some() => Ok(()),
        Err(err) => Err(err),
    }
}

/// A configdrive in any of the shapes `--configdrive` takes.
fn read_configdrive(path: &Path) -> anyhow::Result<ConfigDrive> {
    const FIELD: &str = "--configdrive";
    let metadata = std::fs::metadata(path).map_err(|err| {
        OrderError::new(
            FIELD,
            format!("cannot use {} ({err}); give a config-2 directory, ISO image, Ironic's base64 string or a JSON file", path.display()),
        )
    })?;
    if !metadata.is_file() {
        return config::gather::read_path(path, FIELD);
    }
    let bytes = read_bounded(path, FIELD)?;
    Ok(ConfigDrive::from_bytes(
        bytes,
        &format!("{FIELD} {}", path.display()),
    )?)
}

/// A node document, checked; kept byte for byte.
fn read_node(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = read_bounded(path, "--node")?;
    NodeDoc::parse(&bytes, &path.display().to_string())?;
    Ok(bytes)
}

fn read_bounded(path: &Path, field: &str) -> Result<Vec<u8>, OrderError> {
    let cannot = |err: std::io::Error| {
        OrderError::new(field, format!("cannot read {} ({err})", path.display()))
    };
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|file| file.take(MAX_INPUT + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(OrderError::new(
            field,
            format!("{} is larger than {MAX_INPUT} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

fn show(args: &ShowArgs) -> anyhow::Result<()> {
    let (_, carried) = open(&args.iso)?;
    println!("{}: {}", args.iso.display(), describe(&carried));
    let Some(payload) = &carried.payload else {
        return Ok(());
    };
    let origin = format!("{}:{}", args.iso.display(), embedded::ORDERS_PATH);
    if let Some(node) = payload.node_doc(&origin)? {
        println!(
            "node: uuid={} image_source={} root_device={} configdrive={} image_pull_secret={}",
            node.uuid.as_deref().unwrap_or("none"),
            node.image_source
                .as_deref()
                .map_or("none".into(), display_url),
            node.root_device
                .as_ref()
                .map_or("none".into(), |map| Value::Object(map.clone()).to_string()),
            if node.configdrive.is_some() {
                "present"
            } else {
                "none"
            },
            if node.image_pull_secret.is_some() {
                "<redacted>"
            } else {
                "none"
            },
        );
    }
    if let Some(drive) = payload.drive(&origin)? {
        println!(
            "configdrive: meta_data={} user_data={} network_data={}",
            Value::Object(redact::redact_map(&drive.meta_data)),
            drive.user_data.as_ref().map_or("none".into(), |u| format!(
                "<redacted, {} bytes>",
                u.expose().len()
            )),
            if drive.network_data.is_some() {
                "present"
            } else {
                "none"
            },
        );
    }
    Ok(())
}

fn reset(args: &ResetArgs) -> anyhow::Result<()> {
    let (layout, carried) = open(&args.iso)?;
    let target = target(&args.iso, &args.output)?;
    let zeros = vec![0u8; layout.orders.1 as usize];
    write(&args.iso, &target, &layout, &zeros, "")?;
    println!(
        "wrote {}: carries nothing (was: {})",
        target.display(),
        describe(&carried)
    );
    Ok(())
}

/// One line on what an ISO carries, free of secrets.
fn describe(carried: &Carried) -> String {
    let mut parts = Vec::new();
    if let Some(payload) = &carried.payload {
        if let Some(drive) = &payload.configdrive {
            parts.push(format!(
                "configdrive (meta_data {} bytes, user_data {}, network_data {})",
                drive.meta_data.len(),
                drive
                    .user_data
                    .as_ref()
                    .map_or("none".into(), |u| format!("{} bytes", u.len())),
                if drive.network_data.is_some() {
                    "present"
                } else {
                    "none"
                },
            ));
        }
        if let Some(node) = &payload.node {
            parts.push(format!("node JSON ({} bytes)", node.len()));
        }
    }
    if !carried.kargs.is_empty() {
        parts.push(format!(
            "kernel arguments `{}`",
            redacted_kargs(&carried.kargs)
        ));
    }
    if parts.is_empty() {
        "carries no orders".to_string()
    } else {
        format!("carries {}", parts.join(", "))
    }
}

/// Kernel arguments as they may be printed: the webhook's header value hidden, URLs without
/// password or query.
fn redacted_kargs(kargs: &str) -> String {
    words::split_words(kargs)
        .into_iter()
        .map(|(param, value)| {
            let shown = match value {
                None => return param,
                Some(_)
                    if words::own_words(&param).first().and_then(|w| w.key())
                        == Some(Key::ReportAuth) =>
                {
                    "<redacted>".to_string()
                }
                Some(value) if value.contains("://") || value.contains('@') => display_url(&value),
                Some(value) => value,
            };
            if shown.contains(' ') {
                format!("{param}=\"{shown}\"")
            } else {
                format!("{param}={shown}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The file to write: OUT, or the input itself with `--in-place`; refused when that would
/// overwrite something not asked for.
fn target(input: &Path, output: &OutputArgs) -> Result<PathBuf, OrderError> {
    if output.in_place {
        return Ok(input.to_path_buf());
    }
    let Some(out) = &output.output else {
        return Err(OrderError::new(
            "-o",
            "missing; give -o OUT for the new ISO, or --in-place to rewrite the input",
        ));
    };
    if let (Ok(a), Ok(b)) = (std::fs::canonicalize(input), std::fs::canonicalize(out)) {
        if a == b {
            return Err(OrderError::new(
                "-o",
                format!(
                    "{} is the input ISO; use --in-place to rewrite it",
                    out.display()
                ),
            ));
        }
    }
    if out.exists() && !output.force {
        return Err(OrderError::new(
            "-o",
            format!("{} exists; add --force to overwrite it", out.display()),
        ));
    }
    Ok(out.clone())
}

/// Copies `input` to a temporary file next to `target`, rewrites the two areas there and
/// renames it over `target`.
fn write(
    input: &Path,
    target: &Path,
    layout: &Layout,
    area: &[u8],
    kargs: &str,
) -> anyhow::Result<()> {
    let mut source = File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let (offset, len) = layout.grub_cfg;
    let mut cfg = vec![0u8; len as usize];
    source.seek(SeekFrom::Start(offset))?;
    source.read_exact(&mut cfg)?;
    let cfg = kargs::write(&cfg, kargs).map_err(|why| {
        OrderError::new(
            format!("{}:{}", input.display(), embedded::GRUB_CFG_PATH),
            why,
        )
    })?;
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    source.seek(SeekFrom::Start(0))?;
    std::io::copy(&mut source, temp.as_file_mut())
        .with_context(|| format!("copying {}", input.display()))?;
    let file = temp.as_file_mut();
    file.seek(SeekFrom::Start(layout.orders.0))?;
    file.write_all(area)?;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(&cfg)?;
    file.sync_all()?;
    let mode = std::fs::metadata(input)?.permissions();
    std::fs::set_permissions(temp.path(), mode)?;
    temp.persist(target)
        .with_context(|| format!("writing {}", target.display()))?;
    Ok(())
}
