//! Hostile inputs: symlinks out of a configdrive, FIFOs, devices, files too large, JSON of
//! too many values. Each is refused quickly with status 2 and one line naming the file, and
//! `ocimetal plan` stays within 128 MiB of memory whatever it is given.

use super::peak::{self, MAX_RSS_KIB};
use super::support::{fixture, flood_server, ironic_string, write_tree};
use nix::sys::stat::Mode;
use serde_json::json;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

/// What a refusal may take on a loaded machine.
const QUICK: Duration = Duration::from_secs(20);

/// Runs `ocimetal plan ARGS --inventory … --cmdline ''`, measured.
fn plan(args: &[&str]) -> peak::Run {
    let mut measured = peak::measured(env!("CARGO_BIN_EXE_ocimetal"));
    measured
        .command()
        .arg("plan")
        .args(args)
        .arg("--inventory")
        .arg(fixture("inventory.json"))
        .args(["--cmdline", "", "--arch", "x86_64"])
        .env_remove("OCIMETAL_LOG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("RUST_LOG");
    measured.run()
}

/// Status 2, one line starting `ocimetal: invalid order FIELD` and mentioning each of
/// `mentions`, within [`QUICK`] and 128 MiB.
fn assert_refused(run: &peak::Run, field: &str, mentions: &[&str]) {
    eprintln!(
        "{field}: {:?}, peak RSS {} KiB: {}",
        run.took, run.max_rss_kib, run.stderr
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    let prefix = format!("ocimetal: invalid order {field}");
    assert!(run.stderr.starts_with(&prefix), "{run:?}");
    for word in mentions {
        assert!(run.stderr.contains(word), "mentions {word:?}: {run:?}");
    }
    assert!(run.took < QUICK, "{run:?}");
    assert!(run.max_rss_kib <= MAX_RSS_KIB, "{run:?}");
}

/// A valid `config-2` tree under `dir/name`.
fn tree(dir: &Path, name: &str) -> String {
    let root = dir.join(name);
    write_tree(
        &root,
        json!({"uuid": "u", "root_device_hints": "serial=S-ALPHA"})
            .to_string()
            .into_bytes(),
        Some("#cloud-config\n"),
        Some(&json!({"links": [], "networks": [], "services": []})),
    );
    root.display().to_string()
}

fn latest(root: &str) -> std::path::PathBuf {
    Path::new(root).join("openstack/latest")
}

/// A sparse file of `len` bytes: its size is what a reader meets, not the disk it takes.
fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600)).unwrap();
}

/// Replaces `latest/name` with a symlink to `target`.
fn link(latest: &Path, name: &str, target: &str) {
    std::fs::remove_file(latest.join(name)).unwrap();
    symlink(target, latest.join(name)).unwrap();
}

/// What a case does to a good tree's `openstack/latest`.
type Spoil<'a> = Box<dyn Fn(&Path) + 'a>;

#[test]
fn configdrive_files_that_are_links_fifos_or_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let many = format!("{{\"uuid\": [{}0]}}", "0,".repeat(400_000));
    // Each case: how the tree is spoilt, which document the line names, what it says.
    let cases: Vec<(&str, Spoil<'_>, &str, &str)> = vec![
        (
            "zero",
            Box::new(|l| link(l, "user_data", "/dev/zero")),
            "",
            "openstack/latest/user_data is a symbolic link",
        ),
        (
            // Even a link that stays inside the drive is not followed.
            "inside",
            Box::new(|l| link(l, "network_data.json", "meta_data.json")),
            "",
            "openstack/latest/network_data.json is a symbolic link",
        ),
        (
            "moved",
            Box::new(|l| {
                let elsewhere = l.with_file_name("elsewhere");
                std::fs::rename(l, &elsewhere).unwrap();
                symlink(&elsewhere, l).unwrap();
            }),
            "",
            "openstack/latest/meta_data.json is a symbolic link (or lies behind one)",
        ),
        (
            "fifo",
            Box::new(|l| {
                std::fs::remove_file(l.join("meta_data.json")).unwrap();
                mkfifo(&l.join("meta_data.json"));
            }),
            "",
            "openstack/latest/meta_data.json is a FIFO, not a regular file",
        ),
        (
            "large",
            Box::new(|l| sparse(&l.join("user_data"), 1 << 30)),
            "",
            "openstack/latest/user_data is larger than 16 MiB",
        ),
        (
            "meta",
            Box::new(|l| sparse(&l.join("meta_data.json"), (1 << 20) + 1)),
            "",
            "openstack/latest/meta_data.json is larger than 1 MiB",
        ),
        (
            // Small, but it would take 16 times its size parsed.
            "values",
            Box::new(|l| std::fs::write(l.join("meta_data.json"), &many).unwrap()),
            ":openstack/latest/meta_data.json",
            "more than 100000 JSON values",
        ),
    ];
    for (name, spoil, document, says) in cases {
        let root = tree(dir.path(), name);
        spoil(&latest(&root));
        let field = format!("{root}{document}");
        assert_refused(&plan(&["--configdrive", &root]), &field, &[says]);
    }
}

#[test]
fn named_files_that_are_fifos_devices_or_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let fifo = fifo.display().to_string();
    let big = dir.path().join("node.json");
    sparse(&big, 1 << 30);
    let big = big.display().to_string();

    let fifo_text = format!("{fifo} is a FIFO, not a regular file");
    let big_text = format!("{big} is larger than 16 MiB");
    for option in ["--configdrive", "--node"] {
        for (path, says) in [
            (fifo.as_str(), fifo_text.as_str()),
            ("/dev/zero", "/dev/zero is a character device"),
        ] {
            assert_refused(&plan(&[option, path]), option, &[says]);
        }
    }
    assert_refused(&plan(&["--node", &big]), "--node", &[&big_text]);
}

/// The ISO image, under `dir`, of a good tree changed by `change` (given the tree's root);
/// `None` without xorriso.
fn iso_image(dir: &Path, change: impl FnOnce(&str)) -> Option<std::path::PathBuf> {
    if !super::support::have_xorriso() {
        eprintln!("skipping: no xorriso");
        return None;
    }
    let root = tree(dir, "tree");
    change(&root);
    let iso = dir.join("cd.iso");
    super::support::build_iso(Path::new(&root), &iso).unwrap();
    Some(iso)
}

#[test]
fn an_iso_image_with_a_file_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let Some(iso) = iso_image(dir.path(), |root| {
        std::fs::write(latest(root).join("user_data"), vec![b'#'; (16 << 20) + 1]).unwrap();
    }) else {
        return;
    };
    let iso = iso.display().to_string();
    assert_refused(
        &plan(&["--configdrive", &iso]),
        &iso,
        &["openstack/latest/user_data is larger than 16 MiB"],
    );
}

#[test]
fn an_inline_configdrive_at_the_limits_stays_within_memory() {
    let dir = tempfile::tempdir().unwrap();
    // user_data and meta_data at their limits, padded to the largest image; user_data
    // random enough that the node document nears its own limit.
    let mut user_data = b"#cloud-config\n".to_vec();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    while user_data.len() < 11 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        user_data.extend_from_slice(&state.to_le_bytes());
    }
    user_data.resize(16 << 20, b'#');
    let mut meta = json!({"uuid": "u", "root_device_hints": "serial=S-ALPHA"}).to_string();
    meta.pop();
    meta.push_str(", \"pad\": \"");
    meta.push_str(&"p".repeat((1 << 20) - meta.len() - 2));
    meta.push_str("\"}");
    let Some(iso) = iso_image(dir.path(), |root| {
        std::fs::write(latest(root).join("user_data"), &user_data).unwrap();
        std::fs::write(latest(root).join("meta_data.json"), &meta).unwrap();
        std::fs::write(Path::new(root).join("padding"), vec![0u8; 46 << 20]).unwrap();
    }) else {
        return;
    };
    let image = std::fs::read(&iso).unwrap();
    assert!(
        image.len() > 62 << 20 && image.len() <= 64 << 20,
        "{}",
        image.len()
    );
    let node = dir.path().join("node.json");
    let doc = json!({"uuid": "u", "instance_info": {"configdrive": ironic_string(&image)}});
    let doc = doc.to_string();
    assert!(
        doc.len() > 14 << 20 && doc.len() <= 16 << 20,
        "{}",
        doc.len()
    );
    std::fs::write(&node, doc).unwrap();

    let run = plan(&["--node", &node.display().to_string()]);
    eprintln!(
        "a 64 MiB configdrive inline in a 15 MiB node document: {:?}, peak RSS {} KiB, status {}: {:.300}",
        run.took, run.max_rss_kib, run.code, run.stderr
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.max_rss_kib <= MAX_RSS_KIB, "{run:?}");

    // One byte more of image and the string is refused, still within memory.
    let mut larger = image;
    larger.resize((64 << 20) + 1, 0);
    let doc = json!({"uuid": "u", "instance_info": {"configdrive": ironic_string(&larger)}});
    std::fs::write(&node, doc.to_string()).unwrap();
    assert_refused(
        &plan(&["--node", &node.display().to_string()]),
        "instance_info.configdrive",
        &["decompresses to more than 64 MiB"],
    );
}

/// `run` failed to fetch the `what` at `url` as larger than `limit`: status 1, one line,
/// quickly, in bounded memory.
fn assert_too_large_at(run: &peak::Run, what: &str, url: &str, limit: &str) {
    eprintln!(
        "{what} at {url}: {:?}, peak RSS {} KiB: {}",
        run.took, run.max_rss_kib, run.stderr
    );
    assert_eq!(run.code, 1, "{run:?}");
    let line = format!("ocimetal: fetching the {what} from {url}: document larger than {limit}");
    assert_eq!(run.stderr, line);
    assert!(
        run.took < QUICK && run.max_rss_kib <= MAX_RSS_KIB,
        "{run:?}"
    );
}

#[test]
fn documents_at_urls_that_never_end() {
    // No length announced: the body is read up to the limit, then refused.
    let base = flood_server("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    let url = format!("{base}/node.json");
    assert_too_large_at(&plan(&["--node", &url]), "node JSON", &url, "16 MiB");

    // A length over the limit is refused before the body is read.
    let base = flood_server("HTTP/1.1 200 OK\r\nContent-Length: 4294967296\r\n\r\n");
    let url = format!("{base}/cd");
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("node.json");
    let doc = json!({"uuid": "u", "instance_info": {"configdrive": url}});
    std::fs::write(&node, doc.to_string()).unwrap();
    let run = plan(&["--node", &node.display().to_string()]);
    assert_too_large_at(&run, "configdrive", &url, "64 MiB");
}

#[test]
fn values_with_line_breaks_and_terminal_escapes_stay_one_plain_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path(), "escapes");
    let meta = json!({"uuid": "u", "disk_wipe_mode": "all\u{1b}[2J\r\nnext"});
    std::fs::write(latest(&root).join("meta_data.json"), meta.to_string()).unwrap();
    let run = plan(&["--configdrive", &root]);
    assert_refused(&run, "meta_data.disk_wipe_mode", &["all [2J  next"]);
    assert!(!run.stderr.chars().any(char::is_control), "{run:?}");
}
