//! What the steps of one install share: the host, the target root, the mounts and chroot
//! made so far, the storage stack to deactivate, the pull under way, and the facts read from
//! the target for the refinement of later steps.

use super::apt::has_kernel;
use super::chroot::Chroot;
use super::stack::mdadm_scan;
use crate::host::confined;
use crate::host::exec::cmd;
use crate::host::mount::MountStack;
use crate::host::Host;
use crate::oci::{PullReport, ResolvedImage};
use crate::plan::system::packages::OsRelease;
use crate::plan::{FileEdit, Finish, ImageFacts, Step};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Largest file read from the target (the dpkg database of a big image is a few MiB).
const TARGET_READ_LIMIT: u64 = 64 << 20;

/// Where the target's os-release is looked for, in order (os-release(5)); the check before
/// the wipe reads the image's layers for the same paths.
const OS_RELEASE_PATHS: [&str; 2] = crate::oci::peek::OS_RELEASE_PATHS;

/// Where the target's root filesystem is mounted during the install.
pub const TARGET_ROOT: &str = "/run/ocimetal/target";

/// The state of one install. Fields drop in declaration order: the chroot's mounts go before
/// the target's, and the storage stack is deactivated last.
pub struct Context<'h> {
    pub host: &'h dyn Host,
    pub root: PathBuf,
    pub facts: ImageFacts,
    pub started: SystemTime,
    /// The image as resolved by the validate step.
    pub resolved: Option<ResolvedImage>,
    /// The pull started by the validate step, waiting for the target.
    pub pull: Option<PendingPull>,
    /// The kernel version loaded for kexec.
    pub kexec: Option<String>,
    /// The plan, as kept in the installed system.
    pub plan_json: Vec<u8>,
    /// Target-relative mount points of the ESPs mounted so far.
    pub esps: Vec<PathBuf>,
    chroot: Option<Chroot<'h>>,
    pub mounts: MountStack<'h>,
    pub storage: StorageGuard<'h>,
    pub runtime: tokio::runtime::Runtime,
}

/// A pull whose layers download while the disks are prepared.
pub struct PendingPull {
    /// Hands the mounted target root to the pull.
    pub target_ready: std::sync::mpsc::Sender<PathBuf>,
    pub task: tokio::task::JoinHandle<anyhow::Result<PullReport>>,
}

impl<'h> Context<'h> {
    /// A fresh context for an install into `root`.
    pub fn new(host: &'h dyn Host, root: &Path, plan_json: Vec<u8>) -> anyhow::Result<Self> {
        Ok(Self {
            plan_json,
            esps: Vec::new(),
            host,
            root: root.to_path_buf(),
            facts: ImageFacts::default(),
            started: SystemTime::now(),
            resolved: None,
            pull: None,
            kexec: None,
            chroot: None,
            mounts: MountStack::new(host),
            storage: StorageGuard {
                host,
                vg: None,
                raid: None,
            },
            runtime: tokio::runtime::Runtime::new().context("starting the async runtime")?,
        })
    }

    /// The chroot into the target, entered on first use.
    pub fn chroot(&mut self) -> anyhow::Result<&Chroot<'h>> {
        if self.chroot.is_none() {
            self.chroot = Some(Chroot::enter(self.host, &self.root)?);
        }
        Ok(self.chroot.as_ref().expect("entered above"))
    }

    /// Leaves the chroot, if entered.
    pub fn leave_chroot(&mut self) -> anyhow::Result<()> {
        match self.chroot.take() {
            Some(chroot) => chroot.leave(),
            None => Ok(()),
        }
    }

    /// The finish step: unmounts everything, then deactivates the volume group and stops the
    /// array it names.
    pub fn finish(&mut self, step: &Finish) -> anyhow::Result<()> {
        self.leave_chroot()?;
        self.esps.clear();
        self.mounts.unmount_all()?;
        self.storage.vg = Some(step.vg.clone());
        self.storage.raid = step.raid.clone();
        self.storage.deactivate();
        Ok(())
    }

    /// The installed image's manifest digest, once resolved.
    pub fn image_digest(&self) -> &str {
        self.resolved
            .as_ref()
            .map_or("-", |r| r.manifest_digest.as_str())
    }

    /// Reads from the target the facts that `step`'s refinement needs.
    pub fn observe(&mut self, step: &Step) -> anyhow::Result<()> {
        match step {
            Step::Packages(_) => {
                self.facts.os = self.read_os_release()?;
                self.facts.dpkg_status = self.read("var/lib/dpkg/status")?.unwrap_or_default();
                self.facts.has_kernel = has_kernel(&self.root);
                self.facts.secure_boot = self.host.secure_boot();
            }
            Step::Files(files) => {
                for path in ImageFacts::paths_needed(step) {
                    match self.read(path)? {
                        Some(text) => self.facts.existing.insert(path.to_string(), text),
                        None => self.facts.existing.remove(path),
                    };
                }
                if files.edits.contains(&FileEdit::MdadmConf) {
                    self.facts.mdadm_scan = mdadm_scan(self.host)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A text file of the target, read as the installed system would resolve its path.
    fn read(&self, path: &str) -> anyhow::Result<Option<String>> {
        let bytes = confined::read(&self.root, Path::new(path), TARGET_READ_LIMIT)?;
        Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// The target's os-release as the installed system finds it: `/etc/os-release`, else
    /// `/usr/lib/os-release`; `None` when it has neither, which the refinement of the
    /// packages step refuses with the same words as the check before the wipe.
    fn read_os_release(&self) -> anyhow::Result<Option<OsRelease>> {
        for path in OS_RELEASE_PATHS {
            if let Some(text) = self.read(path)? {
                return Ok(Some(OsRelease::parse(&text)));
            }
        }
        Ok(None)
    }
}

/// Deactivates LVM and md after the install, and on the way out of a failed one, so the disks
/// are quiescent for the reboot or for inspection.
pub struct StorageGuard<'h> {
    host: &'h dyn Host,
    /// The volume group, once created.
    pub vg: Option<String>,
    /// The md array, once created.
    pub raid: Option<String>,
}

impl StorageGuard<'_> {
    fn deactivate(&mut self) {
        if let Some(vg) = self.vg.take() {
            self.host
                .run_tolerant(&mut cmd("lvm", ["vgchange", "-an", vg.as_str()]));
        }
        if let Some(array) = self.raid.take() {
            self.host
                .run_tolerant(&mut cmd("mdadm", ["--stop", array.as_str()]));
        }
    }
}

impl Drop for StorageGuard<'_> {
    fn drop(&mut self) {
        self.deactivate();
    }
}
