//! `ocimetal plan --render DIR`: the files an install would write, written under DIR.

use super::support::{fixture, ocimetal, step};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn plan_and_render(dir: &Path, extra: &[&str]) -> super::support::Run {
    let inventory = fixture("inventory.json").display().to_string();
    let node = fixture("node.json").display().to_string();
    let dir = dir.display().to_string();
    let mut args = vec![
        "plan",
        "--arch",
        "x86_64",
        "--cmdline",
        "",
        "--inventory",
        &inventory,
        "--node",
        &node,
        "--render",
        &dir,
    ];
    args.extend(extra);
    ocimetal(&args)
}

fn manifest(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("ocimetal-render.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn every_planned_file_is_written_with_its_mode_and_secrets_only_when_asked() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("render");
    let run = plan_and_render(&dir, &["--json"]);
    let plan = run.json();
    let planned: Vec<&str> = step(&plan, "files")["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    let entries = manifest(&dir);
    let listed: Vec<&str> = entries
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed[..planned.len()],
        planned[..],
        "the plan's files, in order"
    );
    for edited in [
        "/etc/default/grub",
        "/etc/initramfs-tools/modules",
        "/etc/mdadm/mdadm.conf",
    ] {
        let entry = entries.iter().find(|e| e["path"] == edited).unwrap();
        assert_eq!(entry["edit"], true, "{edited}");
    }
    for entry in &entries {
        let path = dir.join(entry["path"].as_str().unwrap().trim_start_matches('/'));
        if entry["secret"] == true {
            assert_eq!(entry["written"], false);
            assert!(!path.exists(), "{path:?} is a secret");
            continue;
        }
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            format!("{:04o}", meta.permissions().mode() & 0o7777),
            entry["mode"]
        );
        assert_eq!(meta.len(), entry["bytes"].as_u64().unwrap(), "{path:?}");
    }
    let hosts = std::fs::read_to_string(dir.join("etc/hosts")).unwrap();
    assert!(hosts.contains("rack1-node7"), "{hosts}");
    let network =
        std::fs::read_to_string(dir.join("var/lib/cloud/seed/nocloud-net/network-config")).unwrap();
    assert!(network.contains("52:54:00:12:34:56"), "{network}");
    let user_data = dir.join("var/lib/cloud/seed/nocloud-net/user-data");
    assert!(!user_data.exists());

    let shown = work.path().join("shown");
    let run = plan_and_render(&shown, &["--show-secrets"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("rendered 14 files into"),
        "{}",
        run.stdout
    );
    let text =
        std::fs::read_to_string(shown.join("var/lib/cloud/seed/nocloud-net/user-data")).unwrap();
    assert!(text.contains("touch /run/from-node-json"), "{text}");
}

#[test]
fn a_directory_in_use_is_refused_and_left_alone() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("keep"), "mine").unwrap();
    let run = plan_and_render(work.path(), &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains("not empty"), "{run:?}");
    let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
    assert_eq!(left.len(), 1);
    let run = ocimetal(&["plan", "--show-secrets", "--cmdline", ""]);
    assert_eq!(run.code, Some(2), "--show-secrets needs --render: {run:?}");
}
