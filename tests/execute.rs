//! The install runs the plan: a RAID1 plan executed against a recording host (every command,
//! mount, write and power action in order, nothing touched but a scratch target root) with
//! the image pulled for real from a local `docker-registry`.

#[path = "support/registry.rs"]
mod registry;

use ocimetal::arch::Arch;
use ocimetal::config::{gather, GatherOptions};
use ocimetal::host::exec::{display, CommandFailed, Output};
use ocimetal::host::Host;
use ocimetal::install::{partition::sgdisk_args, stack};
use ocimetal::plan::{self, render_summary, ImageFacts, Plan, PlanInput, Step};
use registry::{tar_layer, Entry, Flavour, Layer, Pusher, TestRegistry};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

const KERNEL: &str = "6.12.0-1-amd64";

/// One thing the installer did to the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// `step NAME` reported to the service manager: the executor began a step.
    Step(String),
    Run(String),
    Mount(String, PathBuf),
    Bind(PathBuf, PathBuf),
    Unmount(PathBuf),
    Write(PathBuf, u32),
    Remove(PathBuf),
    Rename(PathBuf, String),
    Sync(PathBuf),
    Wait(PathBuf),
    Power(String),
    /// A reported event: name, `start`/`finish`, result.
    Event(String, String, Option<String>),
}

/// A host that records every action. Commands succeed with the output a real machine would
/// give where the installer reads it (mdadm's scan, efibootmgr's entries); `grub-install`
/// leaves its loaders on the ESP. Commands starting with `fail_on` fail.
struct RecordingHost {
    root: PathBuf,
    sys: tempfile::TempDir,
    actions: Mutex<Vec<Action>>,
    events: Mutex<Vec<serde_json::Value>>,
    efi_entries: Mutex<Vec<String>>,
    fail_on: Option<String>,
    /// What mounting a device shows: (device, directory whose files appear at the target).
    filesystems: Vec<(String, PathBuf)>,
}

impl RecordingHost {
    fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            sys: tempfile::tempdir().unwrap(),
            actions: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
            efi_entries: Mutex::new(Vec::new()),
            fail_on: None,
            filesystems: Vec::new(),
        }
    }

    fn record(&self, action: Action) {
        self.actions.lock().unwrap().push(action);
    }

    fn actions(&self) -> Vec<Action> {
        self.actions.lock().unwrap().clone()
    }

    fn answer(&self, cmd: &Command) -> String {
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        match cmd.get_program().to_string_lossy().as_ref() {
            "mdadm" if args == ["--detail", "--scan"] => {
                "ARRAY /dev/md0 metadata=1.2 name=node:root UUID=1:2:3:4\n".to_string()
            }
            "efibootmgr" => {
                let mut entries = self.efi_entries.lock().unwrap();
                if let Some(at) = args.iter().position(|a| a == "-L") {
                    entries.push(args[at + 1].clone());
                }
                let mut text = String::from("BootCurrent: 0000\nBootOrder: 0000\n");
                for (n, label) in entries.iter().enumerate() {
                    text.push_str(&format!("Boot{:04X}* {label}\tHD(1)\n", n + 1));
                }
                text
            }
            "grub-install" => {
                let dir = args
                    .iter()
                    .find_map(|a| a.strip_prefix("--efi-directory="))
                    .expect("grub-install names its ESP");
                let esp = self.root.join(dir.trim_start_matches('/'));
                for loader in ["EFI/BOOT/BOOTX64.EFI", "EFI/debian/grubx64.efi"] {
                    let path = esp.join(loader);
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(path, "loader").unwrap();
                }
                String::new()
            }
            _ => String::new(),
        }
    }
}

impl Host for RecordingHost {
    fn run(&self, cmd: &mut Command) -> anyhow::Result<Output> {
        let line = display(cmd);
        self.record(Action::Run(line.clone()));
        if self.fail_on.as_deref().is_some_and(|f| line.starts_with(f)) {
            let tail = (1..=50).map(|n| format!("output line {n}")).collect();
            return Err(CommandFailed {
                command: line,
                status: "exit status: 1".into(),
                tail,
            }
            .into());
        }
        Ok(Output {
            stdout: self.answer(cmd),
            stderr: String::new(),
        })
    }

    fn run_streamed(&self, cmd: &mut Command) -> anyhow::Result<()> {
        self.run(cmd).map(|_| ())
    }

    fn mount(&self, source: &str, target: &Path, _: &str, _: Option<&str>) -> anyhow::Result<()> {
        std::fs::create_dir_all(target)?;
        if let Some((_, dir)) = self.filesystems.iter().find(|(dev, _)| dev == source) {
            copy_tree(dir, target);
        }
        self.record(Action::Mount(source.to_string(), target.to_path_buf()));
        Ok(())
    }

    fn bind(&self, source: &Path, target: &Path, _: bool) -> anyhow::Result<()> {
        self.record(Action::Bind(source.to_path_buf(), target.to_path_buf()));
        Ok(())
    }

    fn unmount(&self, target: &Path) -> anyhow::Result<()> {
        self.record(Action::Unmount(target.to_path_buf()));
        Ok(())
    }

    fn write_file(
        &self,
        root: &Path,
        rel: &Path,
        contents: &[u8],
        mode: u32,
    ) -> anyhow::Result<()> {
        self.record(Action::Write(root.join(rel), mode));
        ocimetal::host::confined::write(root, rel, contents, mode)
    }

    fn remove_file(&self, root: &Path, rel: &Path) -> anyhow::Result<()> {
        self.record(Action::Remove(root.join(rel)));
        ocimetal::host::confined::remove(root, rel)
    }

    fn rename_file(&self, root: &Path, dir: &Path, from: &str, to: &str) -> anyhow::Result<bool> {
        self.record(Action::Rename(root.join(dir).join(from), to.to_string()));
        ocimetal::host::confined::rename(root, dir, from, to)
    }

    fn sync_filesystem(&self, path: &Path) -> anyhow::Result<()> {
        self.record(Action::Sync(path.to_path_buf()));
        Ok(())
    }

    fn wait_for_device(&self, path: &Path, _: Duration) -> anyhow::Result<()> {
        self.record(Action::Wait(path.to_path_buf()));
        Ok(())
    }

    fn sys(&self) -> PathBuf {
        self.sys.path().to_path_buf()
    }

    fn mountinfo(&self) -> String {
        String::new()
    }

    fn secure_boot(&self) -> bool {
        false
    }

    fn kernel_cmdline(&self) -> String {
        "console=ttyS0,115200".to_string()
    }

    fn notify(&self, status: &str, _: bool) {
        if let Some(name) = status.strip_prefix("step ") {
            self.record(Action::Step(name.to_string()));
        }
    }

    fn start_power_unit(&self, unit: &str) -> anyhow::Result<()> {
        self.record(Action::Power(unit.to_string()));
        Ok(())
    }

    fn report(&self, event: &ocimetal::host::report::Event) {
        let json = serde_json::to_value(event).unwrap();
        let text = |key: &str| json[key].as_str().map(str::to_string);
        self.record(Action::Event(
            text("name").unwrap(),
            text("event_type").unwrap(),
            text("result"),
        ));
        self.events.lock().unwrap().push(json);
    }

    fn flush_reports(&self, _: Duration) {}
}

/// A Debian 13 image with a kernel and everything but cloud-init, so apt has one thing to do.
async fn push_image(registry: &TestRegistry) -> String {
    let wanted = ocimetal::plan::system::packages::packages_for(
        &ocimetal::plan::system::packages::OsRelease::parse("ID=debian\nVERSION_ID=\"13\"\n"),
        Arch::X86_64,
        ocimetal::plan::system::packages::PackageChoices::default(),
    )
    .unwrap();
    let status: String = wanted
        .iter()
        .filter(|p| *p != "cloud-init")
        .map(|p| format!("Package: {p}\nStatus: install ok installed\n\n"))
        .collect();
    let modules = format!("usr/lib/modules/{KERNEL}/");
    let kernel = format!("boot/vmlinuz-{KERNEL}");
    let tar = tar_layer(&[
        Entry::Dir("etc/"),
        Entry::File(
            "etc/os-release",
            b"PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nID=debian\nVERSION_ID=\"13\"\n",
        ),
        Entry::Dir("etc/default/"),
        Entry::File("etc/default/grub", b"GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n"),
        Entry::Dir("var/lib/dpkg/"),
        Entry::File("var/lib/dpkg/status", status.as_bytes()),
        Entry::Dir("boot/"),
        Entry::File(&kernel, b"kernel"),
        Entry::Dir(&modules),
    ]);
    let image = format!("{}/test/debian:13", registry.host());
    Pusher::new(&registry.host())
        .push_image(
            &image,
            &[Layer::gzip(tar)],
            ("linux", "amd64"),
            Flavour::Oci,
        )
        .await;
    image
}

/// Pushes `layers` (bottom first) as `test/NAME:1`; returns the reference.
async fn push_layers(registry: &TestRegistry, name: &str, layers: Vec<Layer>) -> String {
    let image = format!("{}/test/{name}:1", registry.host());
    Pusher::new(&registry.host())
        .push_image(&image, &layers, ("linux", "amd64"), Flavour::Oci)
        .await;
    image
}

/// A layer with Fedora's os-release, as Fedora lays it out.
fn fedora_layer() -> Layer {
    Layer::gzip(tar_layer(&[
        Entry::Dir("etc/"),
        Entry::Symlink("etc/os-release", "../usr/lib/os-release"),
        Entry::Dir("usr/"),
        Entry::Dir("usr/lib/"),
        Entry::File(
            "usr/lib/os-release",
            b"NAME=\"Fedora Linux\"\nID=fedora\nVERSION_ID=41\nPRETTY_NAME=\"Fedora Linux 41\"\n",
        ),
    ]))
}

/// Runs a forced RAID1 install of `image`; returns the host and the error.
async fn install_expecting_failure(
    registry: &TestRegistry,
    image: &str,
) -> (RecordingHost, anyhow::Error) {
    let plan = raid_plan(image, registry, "ocimetal.force");
    let root = tempfile::tempdir().unwrap();
    let host = RecordingHost::new(root.path());
    let root_path = root.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let result = ocimetal::install::execute(&plan, &host, &root_path);
        drop(root);
        (host, result.expect_err("the install fails"))
    })
    .await
    .unwrap()
}

/// Whether anything was done to a disk: a wipe, a partition table, an array, a volume or a
/// filesystem.
fn touched_a_disk(actions: &[Action]) -> bool {
    runs(actions).iter().any(|c| {
        ["sgdisk", "wipefs", "mdadm", "lvm", "mkfs", "dd"]
            .iter()
            .any(|tool| c.starts_with(tool))
    })
}

/// The result of step `name`'s finish event.
fn step_result(host: &RecordingHost, name: &str) -> Option<String> {
    host.actions().iter().find_map(|a| match a {
        Action::Event(event, kind, result)
            if event == &format!("ocimetal/{name}") && kind == "finish" =>
        {
            result.clone()
        }
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_that_is_not_debian_or_ubuntu_is_refused_before_the_wipe() {
    let registry = TestRegistry::start();
    let image = push_layers(&registry, "fedora", vec![fedora_layer()]).await;
    let (host, err) = install_expecting_failure(&registry, &image).await;

    let line = format!("{err:#}");
    assert!(line.starts_with("step validate failed: "), "{line}");
    assert!(line.contains(&image), "the image is named: {line}");
    assert!(line.contains("ID=fedora"), "its ID is named: {line}");
    assert!(line.ends_with("nothing was wiped"), "{line}");
    assert!(!line.contains('\n'));
    // An invalid order, as the same refusal after the pull is: exit status 2.
    let order = err
        .downcast_ref::<ocimetal::error::OrderError>()
        .expect("an order error");
    assert_eq!(order.field, "image");

    let actions = host.actions();
    let steps: Vec<String> = by_step(&actions).into_iter().map(|(n, _)| n).collect();
    assert_eq!(steps, ["validate"], "nothing runs after validate");
    assert!(!touched_a_disk(&actions), "{actions:?}");
    assert_eq!(step_result(&host, "validate").as_deref(), Some("FAIL"));

    // An image without any os-release is refused the same way.
    let bare = push_layers(
        &registry,
        "bare",
        vec![Layer::gzip(tar_layer(&[Entry::Dir("srv/")]))],
    )
    .await;
    let (host, err) = install_expecting_failure(&registry, &bare).await;
    let line = format!("{err:#}");
    assert!(
        line.contains(&bare) && line.contains("no /etc/os-release or /usr/lib/os-release"),
        "{line}"
    );
    assert!(line.ends_with("nothing was wiped"), "{line}");
    assert!(!touched_a_disk(&host.actions()));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_beyond_the_probes_reach_is_checked_after_the_pull() {
    let registry = TestRegistry::start();
    // Fedora at the bottom, under four layers that say nothing about os-release: the look
    // before the wipe reads four layers at most.
    let mut layers = vec![fedora_layer()];
    for n in 0..4 {
        let name = format!("srv/layer-{n}");
        layers.push(Layer::gzip(tar_layer(&[
            Entry::Dir("srv/"),
            Entry::File(&name, b"x"),
        ])));
    }
    let image = push_layers(&registry, "fedora-deep", layers).await;
    let (host, err) = install_expecting_failure(&registry, &image).await;

    assert_eq!(step_result(&host, "validate").as_deref(), Some("WARN"));
    let events = host.events.lock().unwrap().clone();
    let warning = events
        .iter()
        .find(|e| e["name"] == "ocimetal/validate" && e["event_type"] == "finish")
        .unwrap();
    let text = warning["description"].as_str().unwrap();
    assert!(
        text.contains("top 4 of the image's 5 layers") && text.ends_with("checked after the pull"),
        "{warning}"
    );
    // The install went on, and the same rule refused the image once it was on the disk.
    assert!(touched_a_disk(&host.actions()));
    let line = format!("{err:#}");
    assert!(line.starts_with("step packages failed: "), "{line}");
    assert!(line.contains("ID=fedora"), "{line}");
    let refusal = ocimetal::plan::system::packages::installable(
        &ocimetal::plan::system::packages::OsRelease::parse(
            "ID=fedora\nPRETTY_NAME=\"Fedora Linux 41\"\n",
        ),
    )
    .unwrap_err();
    assert!(line.contains(&refusal.problem), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_top_layer_that_cannot_be_read_fails_validate_before_the_wipe() {
    let registry = TestRegistry::start();
    let debian = tar_layer(&[Entry::File("etc/os-release", b"ID=debian\n")]);
    // Its digest is right; its content is not gzip.
    let broken = Layer {
        media_type: registry::media::OCI_GZIP,
        blob: b"this is not gzip".to_vec(),
        tar: Vec::new(),
    };
    let image = push_layers(&registry, "broken", vec![Layer::gzip(debian), broken]).await;
    let (host, err) = install_expecting_failure(&registry, &image).await;
    let line = format!("{err:#}");
    assert!(line.starts_with("step validate failed: "), "{line}");
    assert!(line.contains("layer 2 of 2"), "{line}");
    assert!(line.ends_with("nothing was wiped"), "{line}");
    assert!(!touched_a_disk(&host.actions()));
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The plan for two mirrored disks of the fixture inventory, with a configdrive.
fn raid_plan(image: &str, registry: &TestRegistry, extra_cmdline: &str) -> Plan {
    let drive = tempfile::tempdir().unwrap();
    let latest = drive.path().join("openstack/latest");
    std::fs::create_dir_all(&latest).unwrap();
    std::fs::write(
        latest.join("meta_data.json"),
        r#"{"uuid": "7d0c1a7e-1111-4222-8333-944455556666", "local-hostname": "node-7",
            "root_device_hints": "serial=S-ALPHA S-BRAVO"}"#,
    )
    .unwrap();
    std::fs::write(latest.join("user_data"), "#cloud-config\nruncmd: [true]\n").unwrap();
    let orders = gather(&GatherOptions {
        cmdline: Some(format!(
            "ocimetal.image={image} ocimetal.insecure_registry={} {extra_cmdline}",
            registry.host()
        )),
        node: None,
        configdrive: Some(drive.path().to_path_buf()),
        ..GatherOptions::default()
    })
    .unwrap();
    let inventory =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/orders/inventory.json");
    let devices = ocimetal::inventory::load_json(&inventory).unwrap();
    plan::plan(&PlanInput {
        orders: &orders,
        devices: &devices,
        arch: Arch::X86_64,
    })
    .unwrap()
}

/// The actions of each step (events aside), in order, keyed by the step's name.
fn by_step(actions: &[Action]) -> Vec<(String, Vec<Action>)> {
    let mut steps: Vec<(String, Vec<Action>)> = Vec::new();
    for action in actions {
        match action {
            Action::Step(name) => steps.push((name.clone(), Vec::new())),
            Action::Event(..) => {}
            other => steps
                .last_mut()
                .expect("nothing happens before the first step")
                .1
                .push(other.clone()),
        }
    }
    steps
}

fn runs(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Run(line) => Some(line.clone()),
            _ => None,
        })
        .collect()
}

/// The step names of the readable plan, as `ocimetal plan` prints them.
fn rendered_step_names(plan: &Plan) -> Vec<String> {
    let summary = render_summary(plan);
    summary
        .lines()
        .skip_while(|l| *l != "steps:")
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_install_runs_the_rendered_plan_step_by_step() {
    let registry = TestRegistry::start();
    let image = push_image(&registry).await;
    let plan = raid_plan(&image, &registry, "");
    let root = tempfile::tempdir().unwrap();
    let host = RecordingHost::new(root.path());
    let root_path = root.path().to_path_buf();
    let plan_for_install = plan.clone();
    let host = tokio::task::spawn_blocking(move || {
        ocimetal::install::execute(&plan_for_install, &host, &root_path).unwrap();
        host
    })
    .await
    .unwrap();

    let steps = by_step(&host.actions());
    let executed: Vec<&str> = steps.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(executed, rendered_step_names(&plan));
    let planned: Vec<&str> = plan.steps.iter().map(Step::name).collect();
    assert_eq!(executed, planned);

    // Each step did what its planned values say, and only that.
    let root = root.path();
    for ((name, actions), step) in steps.iter().zip(&plan.steps) {
        let commands = runs(actions);
        match step {
            Step::Wipe(wipe) => {
                let zapped: Vec<String> = commands
                    .iter()
                    .filter(|c| c.starts_with("sgdisk --zap-all"))
                    .cloned()
                    .collect();
                let expected: Vec<String> = wipe
                    .devices
                    .iter()
                    .map(|d| format!("sgdisk --zap-all {d}"))
                    .collect();
                assert_eq!(zapped, expected);
            }
            Step::Partition(partition) => {
                for layout in &partition.disks {
                    let sgdisk = format!("sgdisk {}", sgdisk_args(layout).join(" "));
                    assert!(commands.contains(&sgdisk), "{sgdisk} in {commands:?}");
                    for part in &layout.partitions {
                        assert!(actions.contains(&Action::Wait(PathBuf::from(&part.device))));
                    }
                }
            }
            Step::Raid(array) => {
                let create = format!("mdadm {}", stack::mdadm_create_args(array).join(" "));
                assert!(commands.contains(&create), "{create} in {commands:?}");
                assert!(create.contains("--metadata=1.2 --name=root --bitmap=internal"));
            }
            Step::Lvm(lvm) => {
                assert!(commands.contains(&format!(
                    "lvm lvcreate -y -W y -n {} -l {} {}",
                    lvm.lv, lvm.extents, lvm.vg
                )));
            }
            Step::Mkfs(mkfs) => {
                let expected: Vec<String> = mkfs
                    .filesystems
                    .iter()
                    .map(|fs| {
                        let (program, args) = stack::mkfs_command(fs);
                        format!("{program} {}", args.join(" "))
                    })
                    .collect();
                assert_eq!(commands, expected);
            }
            Step::Mount(mount) => {
                let expected: Vec<Action> = mount
                    .mounts
                    .iter()
                    .map(|p| {
                        Action::Mount(p.device.clone(), root.join(p.at.trim_start_matches('/')))
                    })
                    .collect();
                assert_eq!(actions, &expected);
            }
            Step::Packages(_) => {
                assert!(
                    commands
                        .iter()
                        .any(|c| c.starts_with("apt-get install") && c.ends_with(" cloud-init")),
                    "only the missing package is installed: {commands:?}"
                );
                // Services are held back while apt runs, and the guard is gone afterwards.
                let policy = root.join("usr/sbin/policy-rc.d");
                assert!(actions.contains(&Action::Write(policy.clone(), 0o755)));
                assert!(actions.contains(&Action::Remove(policy)));
            }
            Step::Files(planned) => {
                let written: Vec<PathBuf> = actions
                    .iter()
                    .filter_map(|a| match a {
                        Action::Write(path, _) => Some(path.clone()),
                        _ => None,
                    })
                    .collect();
                for file in &planned.files {
                    assert!(written.contains(&root.join(&file.path)), "{:?}", file.path);
                }
                for edited in ["etc/default/grub", "etc/mdadm/mdadm.conf"] {
                    assert!(written.contains(&root.join(edited)), "{edited}");
                }
                let grub = std::fs::read_to_string(root.join("etc/default/grub")).unwrap();
                assert!(
                    grub.contains("GRUB_TIMEOUT=5"),
                    "the image's own settings stay"
                );
                let mdadm = std::fs::read_to_string(root.join("etc/mdadm/mdadm.conf")).unwrap();
                assert!(mdadm.contains("ARRAY /dev/md0 metadata=1.2"), "{mdadm}");
            }
            Step::Initramfs(_) => {
                assert!(commands.contains(&format!("update-initramfs -c -k {KERNEL}")));
            }
            Step::Bootloader(bootloader) => {
                for install in &bootloader.installs {
                    let expected = format!(
                        "grub-install --target={} --efi-directory={} --bootloader-id=debian \
                         --no-nvram --force-extra-removable",
                        install.target, install.efi_directory
                    );
                    assert!(commands.contains(&expected), "{expected} in {commands:?}");
                }
                assert_eq!(commands.last().unwrap(), "update-grub");
            }
            Step::Record(record) => {
                // The record, then everything flushed, then each marker, flushed.
                let esps: Vec<PathBuf> = record
                    .markers
                    .iter()
                    .map(|esp| root.join(esp.trim_start_matches('/')))
                    .collect();
                let logs = root.join(&record.log_dir);
                let mut expected = vec![
                    Action::Write(root.join(&record.path), 0o644),
                    Action::Write(logs.join("plan.json"), 0o600),
                    Action::Write(logs.join("install.log"), 0o600),
                    Action::Write(logs.join("journal.json"), 0o600),
                    Action::Sync(root.to_path_buf()),
                ];
                expected.extend(esps.iter().map(|esp| Action::Sync(esp.clone())));
                for esp in &esps {
                    expected.push(Action::Write(esp.join("ocimetal/result.json"), 0o644));
                    expected.push(Action::Write(esp.join("ocimetal/deployment.json"), 0o644));
                    expected.push(Action::Sync(esp.clone()));
                }
                assert!(commands
                    .contains(&"journalctl -b -u ocimetal.service -o json --no-pager".to_string()));
                let kept: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(logs.join("plan.json")).unwrap())
                        .unwrap();
                assert_eq!(kept["image"], plan.image.to_string(), "the plan is kept");
                let durable: Vec<Action> = actions
                    .iter()
                    .filter(|a| matches!(a, Action::Write(..) | Action::Sync(_)))
                    .cloned()
                    .collect();
                assert_eq!(durable, expected, "markers last of all, on disk");
            }
            Step::Finish(finish) => {
                assert!(commands.contains(&format!("lvm vgchange -an {}", finish.vg)));
                let array = finish.raid.as_deref().unwrap();
                assert_eq!(commands.last().unwrap(), &format!("mdadm --stop {array}"));
                assert_eq!(
                    actions.iter().rfind(|a| matches!(a, Action::Unmount(_))),
                    Some(&Action::Unmount(root.to_path_buf())),
                    "the root is unmounted last"
                );
            }
            Step::EfiEntries(efi) => {
                let facts = ImageFacts {
                    os: Some(ocimetal::plan::system::packages::OsRelease::parse(
                        "ID=debian\n",
                    )),
                    shim_on_esp: Some(false),
                    ..ImageFacts::default()
                };
                let Step::EfiEntries(decided) = plan::refine(step, &facts).unwrap() else {
                    unreachable!()
                };
                for (entry, planned) in decided.entries.iter().zip(&efi.entries) {
                    assert_eq!(entry.loader, "\\EFI\\debian\\grubx64.efi");
                    let create = format!(
                        "efibootmgr -q -c -d {} -p {} -L {} -l {}",
                        planned.disk, planned.partition, planned.label, entry.loader
                    );
                    assert!(commands.contains(&create), "{create} in {commands:?}");
                }
                assert_eq!(commands.last().unwrap(), "efibootmgr -q -n 0001");
            }
            Step::Power(_) => assert_eq!(actions, &[Action::Power("reboot.target".into())]),
            _ => {}
        }
        assert_eq!(name, step.name());
    }
    let record = std::fs::read_to_string(root.join("etc/ocimetal/deployment.json")).unwrap();
    assert!(record.contains(&image), "{record}");

    // The webhook hears a start and a finish for every step, and for the whole install.
    let event = |name: &str, kind: &str, result: Option<&str>| {
        Action::Event(name.into(), kind.into(), result.map(str::to_string))
    };
    let mut expected = vec![event("ocimetal", "start", None)];
    for step in &plan.steps {
        if let Step::Power(_) = step {
            expected.push(event("ocimetal", "finish", Some("SUCCESS")));
        }
        let name = format!("ocimetal/{}", step.name());
        expected.push(event(&name, "start", None));
        expected.push(event(&name, "finish", Some("SUCCESS")));
    }
    let heard: Vec<Action> = host
        .actions()
        .into_iter()
        .filter(|a| matches!(a, Action::Event(..)))
        .collect();
    assert_eq!(heard, expected);
    let events = host.events.lock().unwrap();
    let last = events.iter().rfind(|e| e["name"] == "ocimetal").unwrap();
    let digest = last["record"]["digest"].as_str().unwrap();
    assert!(
        record.contains(digest) && digest.starts_with("sha256:"),
        "{last}"
    );
    assert_eq!(last["record"]["disks"][1]["serial"], "S-BRAVO");
    assert_eq!(
        last["durations"].as_array().unwrap().len(),
        plan.steps.len() - 1,
        "every step before the power action is timed"
    );
}

/// Runs a forced RAID1 plan (with `extra` orders) whose grub-install fails; returns the host,
/// the error line and the target root.
async fn install_failing_at_grub(extra: &str) -> (RecordingHost, String, tempfile::TempDir) {
    let registry = TestRegistry::start();
    let image = push_image(&registry).await;
    let plan = raid_plan(&image, &registry, &format!("ocimetal.force {extra}"));
    assert!(
        !plan.steps.iter().any(|s| matches!(s, Step::Reentry(_))),
        "ocimetal.force plans no re-entry check"
    );
    let root = tempfile::tempdir().unwrap();
    let mut host = RecordingHost::new(root.path());
    host.fail_on = Some("grub-install".into());
    let root_path = root.path().to_path_buf();
    let (host, result) = tokio::task::spawn_blocking(move || {
        let result = ocimetal::install::execute(&plan, &host, &root_path);
        (host, result)
    })
    .await
    .unwrap();
    (host, format!("{:#}", result.unwrap_err()), root)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_install_powers_off_when_ordered_and_only_after_reporting() {
    let (host, err, _root) = install_failing_at_grub("ocimetal.on_failure=poweroff").await;
    assert!(err.starts_with("step bootloader failed: "), "{err}");
    let actions = host.actions();
    assert_eq!(
        actions.last(),
        Some(&Action::Power("poweroff.target".into()))
    );
    let reported = actions
        .iter()
        .position(
            |a| matches!(a, Action::Event(name, _, Some(r)) if name == "ocimetal" && r == "FAIL"),
        )
        .unwrap();
    assert_eq!(reported, actions.len() - 2, "the failure is reported first");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_step_is_named_and_everything_is_undone() {
    let (host, err, root) = install_failing_at_grub("").await;
    assert!(err.starts_with("step bootloader failed: "), "{err}");

    let actions = host.actions();
    let failed_at = actions
        .iter()
        .position(|a| matches!(a, Action::Run(c) if c.starts_with("grub-install")))
        .unwrap();
    let after = &actions[failed_at + 1..];
    assert!(
        !after.iter().any(|a| matches!(a, Action::Step(_))),
        "no step runs after a failure"
    );
    assert!(!after.iter().any(|a| matches!(a, Action::Power(_))));
    let mounted: Vec<&PathBuf> = actions[..failed_at]
        .iter()
        .filter_map(|a| match a {
            Action::Mount(_, at) | Action::Bind(_, at) => Some(at),
            _ => None,
        })
        .collect();
    let unmounted: Vec<&PathBuf> = after
        .iter()
        .filter_map(|a| match a {
            Action::Unmount(at) => Some(at),
            _ => None,
        })
        .collect();
    let mut sorted = (mounted.clone(), unmounted.clone());
    sorted.0.sort();
    sorted.1.sort();
    assert_eq!(sorted.0, sorted.1, "every mount is undone, once");
    for (n, point) in unmounted.iter().enumerate() {
        assert!(
            !unmounted[..n]
                .iter()
                .any(|earlier| point.starts_with(earlier)),
            "{point:?} is unmounted before what holds it"
        );
    }
    let commands = runs(after);
    assert!(commands.contains(&"lvm vgchange -an vg_root".to_string()));
    assert_eq!(commands.last().unwrap(), "mdadm --stop /dev/md0");
    assert!(!root.path().join("etc/ocimetal/deployment.json").exists());

    for esp in ["boot/efi", "boot/efi2"] {
        let text =
            std::fs::read_to_string(root.path().join(esp).join("ocimetal/result.json")).unwrap();
        let result: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(result["result"], "FAIL", "{esp}");
        assert_eq!(result["step"], "bootloader");
        assert!(!root
            .path()
            .join(esp)
            .join("ocimetal/deployment.json")
            .exists());
    }

    let events = host.events.lock().unwrap();
    let step_end = &events[events.len() - 2];
    assert_eq!(step_end["name"], "ocimetal/bootloader");
    assert_eq!(step_end["result"], "FAIL");
    let last = events.last().unwrap();
    assert_eq!(last["name"], "ocimetal");
    assert_eq!(last["result"], "FAIL");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .starts_with("step bootloader failed: installing GRUB to /boot/efi: `grub-install"),
        "{last}"
    );
    let tail = last["output_tail"].as_array().unwrap();
    assert_eq!(tail.len(), 40, "the last 40 lines");
    assert_eq!(tail.last().unwrap(), "output line 50");
}

/// An ESP as an earlier install of `plan` left it, with a marker made from `orders_hash`.
fn deployed_esp(plan: &Plan, orders_hash: &str) -> tempfile::TempDir {
    let esp = tempfile::tempdir().unwrap();
    let record = ocimetal::plan::system::record::DeploymentRecord::new(
        reentry_step(plan).node_uuid.clone(),
        orders_hash.into(),
        ocimetal::plan::system::record::RecordedImage {
            reference: plan.image.to_string(),
            digest: "sha256:0".into(),
            platform: "linux/amd64".into(),
        },
        Vec::new(),
        std::time::SystemTime::now(),
        std::time::SystemTime::now(),
    );
    std::fs::create_dir_all(esp.path().join("ocimetal")).unwrap();
    std::fs::write(
        esp.path().join("ocimetal/deployment.json"),
        record.to_file().unwrap().contents.bytes(),
    )
    .unwrap();
    std::fs::create_dir_all(esp.path().join("EFI/debian")).unwrap();
    std::fs::write(esp.path().join("EFI/debian/shimx64.efi"), "shim").unwrap();
    esp
}

fn reentry_step(plan: &Plan) -> &plan::Reentry {
    plan.find(|s| match s {
        Step::Reentry(r) => Some(r),
        _ => None,
    })
    .expect("a reentry step")
}

/// The first disk died: the marker is on the second one only. The install boots it, making
/// the boot entry again (NVRAM has none), and touches no disk.
#[test]
fn a_deployed_node_boots_its_disk_and_gets_its_boot_entry_back() {
    let registry = TestRegistry::start();
    let plan = raid_plan("lab.invalid/debian:13", &registry, "");
    let reentry = reentry_step(&plan);
    let esps: Vec<String> = reentry.esps().into_iter().map(|(_, esp)| esp).collect();
    assert_eq!(esps[..2], ["/dev/sda1", "/dev/sdb1"]);
    let esp = deployed_esp(&plan, &reentry.orders_hash);
    let root = tempfile::tempdir().unwrap();
    let mut host = RecordingHost::new(root.path());
    host.filesystems = vec![("/dev/sdb1".into(), esp.path().to_path_buf())];
    ocimetal::install::execute(&plan, &host, root.path()).unwrap();

    let actions = host.actions();
    let steps: Vec<String> = by_step(&actions).into_iter().map(|(n, _)| n).collect();
    // Only the power action follows, outside the steps.
    assert_eq!(steps, ["reentry"]);
    let commands = runs(&actions);
    assert!(
        commands.iter().any(
            |c| c.starts_with("efibootmgr -q -c -d /dev/sdb -p 1 -L ocimetal EFI")
                && c.ends_with("-l \\EFI\\debian\\shimx64.efi")
        ),
        "{commands:?}"
    );
    assert!(commands
        .iter()
        .all(|c| !c.starts_with("sgdisk") && !c.starts_with("wipefs")));
    assert!(actions.contains(&Action::Power("reboot.target".into())));
    let events = host.events.lock().unwrap();
    let last = events.last().unwrap();
    assert!(
        last["description"]
            .as_str()
            .unwrap()
            .starts_with("already deployed"),
        "{last}"
    );
}

/// This node's disks hold a deployment from other orders: the install stops before the wipe
/// and says how to reinstall.
#[test]
fn a_deployed_node_with_other_orders_is_refused_not_wiped() {
    let registry = TestRegistry::start();
    let plan = raid_plan("lab.invalid/debian:13", &registry, "");
    let other = format!("{}{}", plan::reentry::ORDERS_HASH_PREFIX, "0".repeat(64));
    let esp = deployed_esp(&plan, &other);
    let root = tempfile::tempdir().unwrap();
    let mut host = RecordingHost::new(root.path());
    host.filesystems = vec![("/dev/sda1".into(), esp.path().to_path_buf())];
    let err = ocimetal::install::execute(&plan, &host, root.path()).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("other orders") && text.contains("ocimetal.force"),
        "{text}"
    );
    let actions = host.actions();
    let steps: Vec<String> = by_step(&actions).into_iter().map(|(n, _)| n).collect();
    assert_eq!(steps, ["reentry"]);
    assert!(runs(&actions)
        .iter()
        .all(|c| !c.starts_with("efibootmgr -q -c")));
    // With ocimetal.force the plan has no reentry step: it reinstalls.
    let forced = raid_plan("lab.invalid/debian:13", &registry, "ocimetal.force");
    assert!(forced
        .find(|s| match s {
            Step::Reentry(r) => Some(r),
            _ => None,
        })
        .is_none());
}

/// Orders that no longer fit the disks (one RAID1 member gone): the deployment on the
/// survivor is booted instead of failing in the ramdisk.
#[test]
fn orders_that_cannot_be_planned_still_boot_the_deployment_on_disk() {
    let registry = TestRegistry::start();
    let plan = raid_plan("lab.invalid/debian:13", &registry, "");
    let step = reentry_step(&plan).clone();
    let esp = deployed_esp(&plan, &step.orders_hash);
    let root = tempfile::tempdir().unwrap();
    let mut host = RecordingHost::new(root.path());
    host.filesystems = vec![("/dev/sdb1".into(), esp.path().to_path_buf())];
    let why = ocimetal::error::OrderError::new("root_device_hints", "no disk matches");
    let booted = ocimetal::install::boot_installed_instead(
        &host,
        &step,
        ocimetal::config::RebootAction::Reboot,
        &why,
    )
    .unwrap();
    assert!(booted);
    assert!(host
        .actions()
        .contains(&Action::Power("reboot.target".into())));
    // No marker anywhere: the planning error stands.
    let empty = RecordingHost::new(root.path());
    assert!(!ocimetal::install::boot_installed_instead(
        &empty,
        &step,
        ocimetal::config::RebootAction::Reboot,
        &why
    )
    .unwrap());
}

/// An EFI entry never points at a loader its ESP lacks: the removable-media loader, which
/// every ESP of ours has, takes its place.
#[test]
fn an_efi_entry_points_only_at_a_loader_the_esp_has() {
    let esp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(esp.path().join("EFI/BOOT")).unwrap();
    std::fs::write(esp.path().join("EFI/BOOT/BOOTX64.EFI"), "grub").unwrap();
    std::fs::create_dir_all(esp.path().join("EFI/debian")).unwrap();
    std::fs::write(esp.path().join("EFI/debian/grubx64.efi"), "grub").unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut host = RecordingHost::new(root.path());
    host.filesystems = vec![("/dev/vda1".into(), esp.path().to_path_buf())];
    let entry = |loader: &str| plan::BootEntry {
        label: "ocimetal EFI".into(),
        disk: "/dev/vda".into(),
        partition: 1,
        loader: loader.into(),
        without_shim: None,
    };
    let checked = ocimetal::install::efi::checked_entries(
        &host,
        &[
            entry("\\EFI\\debian\\shimx64.efi"),
            entry("\\EFI\\debian\\grubx64.efi"),
        ],
    );
    assert_eq!(checked[0].loader, "\\EFI\\BOOT\\BOOTX64.EFI");
    assert_eq!(checked[1].loader, "\\EFI\\debian\\grubx64.efi");
}

/// Orders that cannot be planned: the webhook hears the refusal with the error line, then the
/// ordered power action runs, and no disk is touched.
#[test]
fn refused_orders_are_reported_before_the_failure_action() {
    let root = tempfile::tempdir().unwrap();
    let host = RecordingHost::new(root.path());
    let why = ocimetal::error::OrderError::new(
        "root_device_hints",
        "no disk matches serial=NOPE; fix the hints",
    );
    ocimetal::install::refuse(
        &host,
        &why.to_string(),
        ocimetal::config::FailureAction::Poweroff,
    );
    let actions = host.actions();
    assert_eq!(
        actions,
        vec![
            Action::Event("ocimetal".into(), "finish".into(), Some("FAIL".into())),
            Action::Power("poweroff.target".into()),
        ]
    );
    let events = host.events.lock().unwrap();
    assert_eq!(events[0]["error"], why.to_string());
    assert!(events[0]["description"]
        .as_str()
        .unwrap()
        .starts_with("nothing touched: invalid order root_device_hints: "));

    let stay = RecordingHost::new(root.path());
    ocimetal::install::refuse(
        &stay,
        &why.to_string(),
        ocimetal::config::FailureAction::Stay,
    );
    assert!(!stay.actions().iter().any(|a| matches!(a, Action::Power(_))));
}

/// A dry run reports the whole plan, the same JSON that `ocimetal plan --json` prints.
#[test]
fn a_dry_run_reports_its_plan() {
    let registry = TestRegistry::start();
    let plan = raid_plan("lab.invalid/debian:13", &registry, "ocimetal.dry_run");
    let root = tempfile::tempdir().unwrap();
    let host = RecordingHost::new(root.path());
    ocimetal::install::report_dry_run(&host, &plan).unwrap();
    assert!(!touched_a_disk(&host.actions()));
    let events = host.events.lock().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["result"], "SUCCESS");
    assert_eq!(events[0]["plan"], serde_json::to_value(&plan).unwrap());
    assert_eq!(events[0]["plan"]["raid"], true);
}
