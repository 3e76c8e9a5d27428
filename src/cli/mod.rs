//! The `plan`, `devices` and `install` subcommands: gather inputs, plan, print or execute;
//! `iso` writes and reads the orders an installer ISO carries.

pub mod iso;
mod render;

use crate::arch::Arch;
use crate::config::{self, EmbeddedSource, GatherOptions, Orders};
use crate::error::OrderError;
use crate::host::Host;
use crate::inventory::{self, BlockDevice, Excluded};
use crate::plan::{self, Plan, PlanInput};
use anyhow::Context;
use std::path::PathBuf;

/// Inputs shared by `plan` and `install`: where orders and disks come from.
#[derive(Debug, Default, clap::Args)]
pub struct SourceArgs {
    /// Node JSON document (Ironic's shape): a file path or an http(s) URL.
    #[arg(long, value_name = "FILE|URL")]
    pub node: Option<String>,
    /// A configdrive directory, ISO image or device instead of the `config-2` medium.
    #[arg(long, value_name = "DIR")]
    pub configdrive: Option<PathBuf>,
    /// Kernel command line to read instead of /proc/cmdline.
    #[arg(long, value_name = "STRING")]
    pub cmdline: Option<String>,
    /// An installer ISO whose carried orders to read instead of the boot medium's; its kernel
    /// arguments come first on the command line (and stand for /proc/cmdline without
    /// --cmdline).
    #[arg(long, value_name = "FILE")]
    pub iso: Option<PathBuf>,
    /// A JSON array of block devices (IPA's fields) instead of the live inventory.
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Target architecture (defaults to this machine's).
    #[arg(long, value_name = "x86_64|aarch64")]
    pub arch: Option<String>,
}

/// Arguments of `ocimetal plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Print one JSON object instead of the readable summary.
    #[arg(long)]
    pub json: bool,
    /// Also write every file the install would write under DIR (a new or empty directory),
    /// with a manifest of paths and modes.
    #[arg(long, value_name = "DIR")]
    pub render: Option<PathBuf>,
    /// With --render, also write the secrets the install would write (user_data).
    #[arg(long, requires = "render")]
    pub show_secrets: bool,
}

/// Arguments of `ocimetal devices`.
#[derive(Debug, clap::Args)]
pub struct DevicesArgs {
    /// Print a JSON array (IPA's field names) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Read this JSON array instead of the live machine.
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
}

/// Orders, disks and the plan made from them.
pub struct Decision {
    pub orders: Orders,
    pub excluded: Vec<Excluded>,
    pub plan: Plan,
}

/// Orders and disks, read but not yet planned.
pub struct Inputs {
    pub orders: Orders,
    pub arch: Arch,
    pub devices: Vec<BlockDevice>,
    pub excluded: Vec<Excluded>,
}

impl Inputs {
    fn plan(&self) -> Result<Plan, OrderError> {
        plan::plan(&PlanInput {
            orders: &self.orders,
            devices: &self.devices,
            arch: self.arch,
        })
    }

    fn decided(self, plan: Plan) -> Decision {
        // Only now: invalid orders are refused with one line and nothing before it.
        for warning in self.orders.warnings.iter().chain(&plan.warnings) {
            tracing::warn!("{warning}");
        }
        Decision {
            orders: self.orders,
            excluded: self.excluded,
            plan,
        }
    }
}

/// Gathers orders and the inventory, then plans. Touches no disk.
pub fn decide(sources: &SourceArgs) -> anyhow::Result<Decision> {
    let inputs = gather_inputs(sources)?;
    let plan = inputs.plan()?;
    Ok(inputs.decided(plan))
}

/// Gathers orders and the inventory. Touches no disk.
pub fn gather_inputs(sources: &SourceArgs) -> anyhow::Result<Inputs> {
    let (cmdline, embedded) = match &sources.iso {
        Some(path) => {
            let (embedded, kargs) = config::embedded::read_iso_file(path, "--iso")?;
            let cmdline = match &sources.cmdline {
                Some(text) => format!("{kargs} {text}"),
                None => kargs,
            };
            (Some(cmdline), EmbeddedSource::Given(Box::new(embedded)))
        }
        None => (sources.cmdline.clone(), EmbeddedSource::BootMedium),
    };
    let orders = config::gather(&GatherOptions {
        cmdline,
        node: sources.node.clone(),
        configdrive: sources.configdrive.clone(),
        embedded,
        offline: false,
    })?;
    let arch = match &sources.arch {
        Some(name) => Arch::parse(name).map_err(|_| {
            OrderError::new(
                "--arch",
                format!("{name:?} is not supported; use x86_64 or aarch64"),
            )
        })?,
        None => Arch::parse(std::env::consts::ARCH).map_err(|_| {
            OrderError::new(
                "arch",
                format!(
                    "this machine is {}; ocimetal installs x86_64 and aarch64 only",
                    std::env::consts::ARCH
                ),
            )
        })?,
    };
    let (devices, excluded) = load_devices(sources.inventory.as_ref())?;
    Ok(Inputs {
        orders,
        arch,
        devices,
        excluded,
    })
}

fn load_devices(inventory: Option<&PathBuf>) -> anyhow::Result<(Vec<BlockDevice>, Vec<Excluded>)> {
    match inventory {
        Some(path) => Ok((inventory::load_json(path)?, Vec::new())),
        None => {
            let scan = inventory::scan().context("reading the disk inventory")?;
            Ok((scan.devices, scan.excluded))
        }
    }
}

/// `ocimetal plan`: decide and print.
pub fn run_plan(args: &PlanArgs) -> anyhow::Result<()> {
    let decision = decide(&args.sources)?;
    let rendered = match &args.render {
        Some(dir) => Some((
            dir,
            render::render_into(&decision.plan, dir, args.show_secrets)?,
        )),
        None => None,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&decision.plan)?);
    } else {
        print!("{}", plan::render_summary(&decision.plan));
        for skipped in &decision.excluded {
            println!("not a candidate: {} ({})", skipped.name, skipped.reason);
        }
        if let Some((dir, count)) = rendered {
            println!(
                "rendered {count} files into {} (manifest {})",
                dir.display(),
                render::MANIFEST
            );
        }
    }
    Ok(())
}

/// `ocimetal devices`: the inventory as the planner sees it.
pub fn run_devices(args: &DevicesArgs) -> anyhow::Result<()> {
    let (devices, excluded) = load_devices(args.inventory.as_ref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&devices)?);
    } else {
        print!("{}", inventory::render_table(&devices, &excluded));
    }
    Ok(())
}

/// Arguments of `ocimetal install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
}

/// True when `ocimetal.debug` is on the kernel command line (read before logging starts).
pub fn debug_requested() -> bool {
    use crate::host::cmdline;
    cmdline::read().is_ok_and(|line| cmdline::flag(&line, cmdline::Key::Debug))
}

/// The live system, reporting events to `url` with `auth` as the `Authorization` header.
fn reporting_system(
    url: &str,
    auth: Option<&config::Secret>,
) -> anyhow::Result<crate::host::System> {
    let auth = auth.map(|a| String::from_utf8_lossy(a.expose()).into_owned());
    crate::host::System::reporting_to(url, auth)
}

/// Orders that cannot be read or merged, or no orders at all: the webhook and the failure
/// action named on the kernel command line (`cmdline`, else /proc/cmdline), the one source
/// that is parsed on its own, still apply, so that an operator who named a webhook learns why
/// nothing happened. Nothing was touched.
fn report_unreadable(cmdline: Option<&str>, err: &anyhow::Error) {
    let text = match cmdline {
        Some(text) => text.to_string(),
        None => match crate::host::cmdline::read() {
            Ok(text) => text,
            Err(_) => return,
        },
    };
    let Ok(orders) = config::cmdline::parse(&text) else {
        return;
    };
    let Some(url) = &orders.report_url else {
        return;
    };
    match reporting_system(url, orders.report_auth.as_ref()) {
        Ok(host) => crate::install::refuse(
            &host,
            &format!("{err:#}"),
            orders.on_failure.unwrap_or_default(),
        ),
        Err(report) => tracing::warn!("cannot report to the webhook: {report:#}"),
    }
}

/// `ocimetal install`: decide, log the plan, then execute it (or only print it on `dry_run`).
pub fn run_install(args: &InstallArgs) -> anyhow::Result<()> {
    crate::host::systemd::notify_status("reading orders", false);
    let inputs = match gather_inputs(&args.sources) {
        Ok(inputs) => inputs,
        Err(err) => {
            report_unreadable(args.sources.cmdline.as_deref(), &err);
            return Err(err);
        }
    };
    let host = match &inputs.orders.report_url {
        Some(url) => reporting_system(&url.value, inputs.orders.report_auth.as_ref())?,
        None => crate::host::System::default(),
    };
    let decision = match inputs.plan() {
        Ok(plan) => inputs.decided(plan),
        Err(err) => {
            let orders = &inputs.orders;
            if !orders.force && !orders.dry_run {
                if let Ok(step) = plan::reentry::reentry_step(orders, &inputs.devices, inputs.arch)
                {
                    if crate::install::boot_installed_instead(
                        &host,
                        &step,
                        orders.reboot.value,
                        &err,
                    )? {
                        return Ok(());
                    }
                }
            }
            crate::install::refuse(&host, &err.to_string(), orders.on_failure);
            return Err(err.into());
        }
    };
    tracing::info!("orders: {}", config::redacted_summary(&decision.orders));
    for line in plan::render_summary(&decision.plan).lines() {
        tracing::info!("plan: {line}");
    }
    if decision.orders.dry_run {
        // One machine-readable line for harnesses reading the console.
        println!("ocimetal-plan: {}", serde_json::to_string(&decision.plan)?);
        crate::install::report_dry_run(&host, &decision.plan)?;
        host.notify("dry run: plan printed, nothing touched", true);
        return Ok(());
    }
    crate::install::execute(
        &decision.plan,
        &host,
        std::path::Path::new(crate::install::TARGET_ROOT),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::report::test_webhook::receiver;

    /// Orders that cannot be read, and the absence of orders, reach the webhook named on the
    /// command line, with its authorization; a command line without a webhook reports nothing.
    #[test]
    fn unreadable_orders_are_reported_to_the_command_lines_webhook() {
        let (url, received) = receiver(0);
        let url = url.replace("user:pw@", "");
        report_unreadable(
            Some("ocimetal.image=debian:13"),
            &OrderError::new("meta_data.oci_image", "bad").into(),
        );
        let why = anyhow::Error::from(OrderError::new(
            "meta_data.disk_wipe_mode",
            "\"some\" is not a wipe mode; use all or target",
        ));
        report_unreadable(
            Some(&format!(
                "console=ttyS0 ocimetal.report_url={url} ocimetal.report_auth=Bearer-t0ken"
            )),
            &why,
        );
        let (auth, event) = received
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        assert_eq!(auth, "Bearer-t0ken");
        assert_eq!(event["name"], "ocimetal");
        assert_eq!(event["result"], "FAIL");
        assert_eq!(event["error"], format!("{why:#}"));
        assert!(received.try_recv().is_err(), "one event only");

        report_unreadable(
            Some(&format!("ocimetal.report_url={url}")),
            &crate::error::NoOrders.into(),
        );
        let (_, event) = received
            .recv_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        assert_eq!(event["result"], "FAIL");
        assert!(
            event["error"].as_str().unwrap().starts_with("no orders: "),
            "{event}"
        );
    }
}
