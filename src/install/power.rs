//! The end of an install: the installed kernel loaded for kexec, and the power action.

use super::bootloader::kernel_versions;
use crate::config::RebootAction;
use crate::host::exec::cmd;
use crate::host::Host;
use crate::plan::KexecLoad;
use anyhow::Context;
use std::path::Path;

/// Loads the newest installed kernel for `kexec`, with the console settings of this boot.
pub fn load_kexec(host: &dyn Host, root: &Path, step: &KexecLoad) -> anyhow::Result<String> {
    let version = kernel_versions(root)
        .pop()
        .context("no kernel to kexec into")?;
    let kernel = root.join(format!("boot/vmlinuz-{version}"));
    let initrd = root.join(format!("boot/initrd.img-{version}"));
    let cmdline = host.kernel_cmdline();
    let consoles = crate::host::cmdline::consoles(&cmdline);
    let append = format!("root={} ro {}", step.root, consoles.join(" "));
    host.run(&mut cmd(
        "kexec",
        [
            "-l".to_string(),
            kernel.display().to_string(),
            format!("--initrd={}", initrd.display()),
            format!("--append={}", append.trim()),
        ],
    ))?;
    Ok(version)
}

/// Reboots, powers off or kexecs through systemd, once nobody is logged in; `none` leaves
/// the machine as it is.
pub fn run(
    host: &dyn Host,
    action: RebootAction,
    kexec_version: Option<String>,
) -> anyhow::Result<()> {
    let unit = match action {
        RebootAction::None => {
            tracing::info!("done; ocimetal.reboot=none: leaving the machine as it is");
            return Ok(());
        }
        RebootAction::Reboot => "reboot.target",
        RebootAction::Poweroff => "poweroff.target",
        RebootAction::Kexec => "kexec.target",
    };
    if let Some(version) = &kexec_version {
        tracing::info!("kexec into {version}");
    }
    host.start_power_unit(unit)
}
