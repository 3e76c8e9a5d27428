//! Running the built `ocimetal` binary on orders written to real files.

use base64::Engine;
use serde_json::Value;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The static fixtures: inventories, a node document, a configdrive tree.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/orders")
        .join(name)
}

/// What one run of the binary gave.
#[derive(Debug)]
pub struct Run {
    /// Exit status, `None` when a signal ended the process.
    pub code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Both streams, for checks that something appears in neither.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Asserts success and returns stdout parsed as the JSON plan.
    pub fn json(&self) -> Value {
        assert_eq!(self.code, Some(0), "expected success: {self:?}");
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("plan is not JSON ({e}): {self:?}"))
    }

    /// Asserts the invalid-orders contract: status 2, nothing on stdout, exactly one line on
    /// stderr starting with `ocimetal: invalid order FIELD`, mentioning every word of `mentions`.
    pub fn assert_refused(&self, field: &str, mentions: &[&str]) {
        assert_eq!(
            self.code,
            Some(2),
            "expected status 2 for {field}: {self:?}"
        );
        assert!(self.stdout.is_empty(), "nothing on stdout: {self:?}");
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "exactly one line on stderr: {:?}",
            self.stderr
        );
        let prefix = format!("ocimetal: invalid order {field}");
        assert!(
            self.stderr.starts_with(&prefix),
            "stderr names {field}: {:?}",
            self.stderr
        );
        for word in mentions {
            assert!(
                self.stderr.contains(word),
                "stderr mentions {word:?}: {:?}",
                self.stderr
            );
        }
    }
}

/// Runs the binary with a clean environment for logging: no journal, no log override.
pub fn ocimetal<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_ocimetal"))
        .args(args)
        .env_remove("OCIMETAL_LOG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("RUST_LOG")
        .output()
        .expect("running ocimetal");
    Run {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Where the configdrive of a scenario comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriveForm {
    /// A `config-2` directory tree, given with `--configdrive DIR`.
    #[default]
    Directory,
    /// An ISO 9660 image built with xorriso, given with `--configdrive FILE`.
    Iso,
    /// A directory named by `ocimetal.configdrive=` on the command line.
    CmdlineDirectory,
}

/// One set of orders: each part is written to its own file in a temporary directory and
/// handed to `ocimetal plan` the way an operator would.
#[derive(Debug, Clone)]
pub struct Orders {
    /// Node document written to `node.json` and passed with `--node`.
    pub node: Option<Value>,
    /// Raw node document text (e.g. invalid JSON), used instead of `node`.
    pub node_text: Option<Vec<u8>>,
    /// `meta_data.json` of a configdrive tree.
    pub meta_data: Option<Value>,
    /// Raw `meta_data.json` text, used instead of `meta_data`.
    pub meta_data_text: Option<Vec<u8>>,
    /// `user_data` of the configdrive tree.
    pub user_data: Option<String>,
    /// `network_data.json` of the configdrive tree.
    pub network_data: Option<Value>,
    pub drive_form: DriveForm,
    /// The kernel command line (`--cmdline`); never the host's.
    pub cmdline: String,
    /// Inventory fixture name.
    pub inventory: String,
    /// `--arch`; `None` leaves it to the binary.
    pub arch: Option<String>,
}

impl Default for Orders {
    fn default() -> Self {
        Self {
            node: None,
            node_text: None,
            meta_data: None,
            meta_data_text: None,
            user_data: None,
            network_data: None,
            drive_form: DriveForm::default(),
            cmdline: String::new(),
            inventory: "inventory.json".into(),
            arch: Some("x86_64".into()),
        }
    }
}

impl Orders {
    /// Orders from a node document alone.
    pub fn node(node: Value) -> Self {
        Self {
            node: Some(node),
            ..Self::default()
        }
    }

    /// Orders from a configdrive `meta_data` alone.
    pub fn meta(meta_data: Value) -> Self {
        Self {
            meta_data: Some(meta_data),
            ..Self::default()
        }
    }

    /// Orders from the kernel command line alone.
    pub fn cmdline(cmdline: &str) -> Self {
        Self {
            cmdline: cmdline.into(),
            ..Self::default()
        }
    }

    pub fn with_cmdline(mut self, cmdline: &str) -> Self {
        self.cmdline = cmdline.into();
        self
    }

    pub fn with_meta(mut self, meta_data: Value) -> Self {
        self.meta_data = Some(meta_data);
        self
    }

    pub fn with_inventory(mut self, name: &str) -> Self {
        self.inventory = name.into();
        self
    }

    /// Writes the files and runs `ocimetal plan` on them, with `--json` when asked.
    pub fn run(&self, json: bool) -> Run {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = self.write_args(dir.path());
        if json {
            args.push("--json".into());
        }
        ocimetal(&args)
    }

    /// Runs with `--json` and returns the parsed plan, asserting success.
    pub fn plan(&self) -> Value {
        self.run(true).json()
    }

    /// Writes every part under `dir`; returns the `plan` arguments naming them. An ISO needs
    /// xorriso: callers check [`have_xorriso`] first.
    pub fn write_args(&self, dir: &Path) -> Vec<String> {
        let mut args = vec![
            "plan".to_string(),
            "--inventory".into(),
            fixture(&self.inventory).display().to_string(),
        ];
        let mut cmdline = self.cmdline.clone();
        if let Some(arch) = &self.arch {
            args.extend(["--arch".into(), arch.clone()]);
        }
        let node_bytes = match (&self.node_text, &self.node) {
            (Some(text), _) => Some(text.clone()),
            (None, Some(node)) => Some(node.to_string().into_bytes()),
            (None, None) => None,
        };
        if let Some(bytes) = node_bytes {
            let path = dir.join("node.json");
            std::fs::write(&path, bytes).expect("writing node.json");
            args.extend(["--node".into(), path.display().to_string()]);
        }
        if self.meta_data.is_some() || self.meta_data_text.is_some() {
            let tree = dir.join("config-2");
            write_tree(
                &tree,
                self.meta_data_text
                    .clone()
                    .unwrap_or_else(|| self.meta_data.as_ref().unwrap().to_string().into_bytes()),
                self.user_data.as_deref(),
                self.network_data.as_ref(),
            );
            let drive = match self.drive_form {
                DriveForm::Directory | DriveForm::CmdlineDirectory => tree,
                DriveForm::Iso => {
                    let iso = dir.join("config-2.iso");
                    build_iso(&tree, &iso).expect("xorriso is present");
                    iso
                }
            };
            if self.drive_form == DriveForm::CmdlineDirectory {
                cmdline = format!("{cmdline} ocimetal.configdrive={}", drive.display());
            } else {
                args.extend(["--configdrive".into(), drive.display().to_string()]);
            }
        }
        args.extend(["--cmdline".into(), cmdline]);
        args
    }
}

/// Writes a `config-2` tree: `openstack/latest/{meta_data.json,user_data,network_data.json}`.
pub fn write_tree(
    root: &Path,
    meta_data: Vec<u8>,
    user_data: Option<&str>,
    network_data: Option<&Value>,
) {
    let latest = root.join("openstack/latest");
    std::fs::create_dir_all(&latest).expect("creating the tree");
    std::fs::write(latest.join("meta_data.json"), meta_data).expect("meta_data.json");
    if let Some(user_data) = user_data {
        std::fs::write(latest.join("user_data"), user_data).expect("user_data");
    }
    if let Some(network_data) = network_data {
        std::fs::write(latest.join("network_data.json"), network_data.to_string())
            .expect("network_data.json");
    }
}

/// True when xorriso can build ISO images here.
pub fn have_xorriso() -> bool {
    Command::new("xorriso")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds an ISO 9660 image labelled `config-2` from `tree` (Rock Ridge and Joliet, as
/// Ironic's builder writes it); `None` when xorriso is missing.
pub fn build_iso(tree: &Path, out: &Path) -> Option<()> {
    let status = Command::new("xorriso")
        .args([
            "-as", "mkisofs", "-quiet", "-V", "config-2", "-J", "-r", "-o",
        ])
        .arg(out)
        .arg(tree)
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    assert!(status.success(), "xorriso failed: {status}");
    Some(())
}

/// Ironic's stored form of a built drive: base64 of gzip of the ISO image.
pub fn ironic_string(bytes: &[u8]) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gzip"))
}

/// The string values of a JSON list, e.g. `disks` or `wipe`.
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// The first step named `name` in a JSON plan (`Null` when the plan has none).
pub fn step<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {plan}"))
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or(&Value::Null)
}

/// The paths of the files the plan's files step writes, as `/etc/hostname`.
pub fn file_paths(plan: &Value) -> Vec<String> {
    step(plan, "files")["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no files step in {plan}"))
        .iter()
        .map(|f| f["path"].as_str().expect("a path").to_string())
        .collect()
}

/// Serves every request on 127.0.0.1 with `head` and then `A`s, as long as the client reads;
/// returns the base URL.
pub fn flood_server(head: &'static str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let chunk = vec![b'A'; 1 << 16];
            if stream.write_all(head.as_bytes()).is_ok() {
                while stream.write_all(&chunk).is_ok() {}
            }
        }
    });
    base
}
