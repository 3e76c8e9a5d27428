//! Differential test: our network_data conversion against cloud-init's own.
//!
//! Every fixture under `tests/fixtures/network_data/` is converted by
//! `ocimetal::plan::system::network` (and rendered by `ocimetal plan --render`, the file an
//! install writes) and by cloud-init's `convert_net_json` (run through
//! `tests/cloud_init_ref/convert.py`), and the two structures must be equal. cloud-init is
//! not installed for this: `tests/cloud_init_ref/fetch.sh` unpacks Debian's package into
//! `target/cloud-init-ref`. The YAML text we write is also read back with cloud-init's YAML
//! reader (PyYAML, YAML 1.1) and must give the same structure. Without it (or without a Python that can import it) the test says
//! why and passes without comparing.

use ocimetal::plan::system::network::convert_network_data;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cloud_init_pythonpath() -> PathBuf {
    std::env::var_os("OCIMETAL_CLOUD_INIT_PYTHONPATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            manifest_dir().join("target/cloud-init-ref/usr/lib/python3/dist-packages")
        })
}

fn python() -> String {
    std::env::var("OCIMETAL_PYTHON").unwrap_or_else(|_| {
        // Debian's interpreter is the one with Debian's python3-yaml and friends.
        if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3".into()
        } else {
            "python3".into()
        }
    })
}

/// Why the reference cannot run here, if it cannot.
fn reference_unavailable() -> Option<String> {
    let path = cloud_init_pythonpath();
    if !path.join("cloudinit/sources/helpers/openstack.py").exists() {
        return Some(format!(
            "cloud-init not found under {} (run tests/cloud_init_ref/fetch.sh)",
            path.display()
        ));
    }
    let probe = Command::new(python())
        .arg("-c")
        .arg("import cloudinit.sources.helpers.openstack")
        .env("PYTHONPATH", &path)
        .output();
    match probe {
        Err(e) => Some(format!("cannot run {}: {e}", python())),
        Ok(out) if !out.status.success() => Some(format!(
            "{} cannot import cloud-init: {}",
            python(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Ok(_) => None,
    }
}

fn cloud_init_convert(fixture: &Path) -> Value {
    run_reference(&[fixture.as_os_str()])
}

/// Our network-config file as cloud-init's YAML 1.1 reader reads it.
fn cloud_init_reads(yaml: &str) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("network-config");
    std::fs::write(&file, yaml).expect("write yaml");
    run_reference(&["--read-yaml".as_ref(), file.as_os_str()])
}

/// The netplan config cloud-init renders from our network-config on the installed system.
fn cloud_init_renders_netplan(yaml: &str) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("network-config");
    std::fs::write(&file, yaml).expect("write yaml");
    let text = run_reference_text(&["--render-netplan".as_ref(), file.as_os_str()]);
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("netplan YAML: {e}\n{text}"))
}

fn run_reference(args: &[&std::ffi::OsStr]) -> Value {
    serde_json::from_str(&run_reference_text(args)).expect("convert.py prints JSON")
}

fn run_reference_text(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(python())
        .arg(manifest_dir().join("tests/cloud_init_ref/convert.py"))
        .args(args)
        .env("PYTHONPATH", cloud_init_pythonpath())
        .output()
        .expect("run convert.py");
    assert!(
        out.status.success(),
        "cloud-init failed on {:?}: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn fixtures() -> Vec<PathBuf> {
    let dir = manifest_dir().join("tests/fixtures/network_data");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Our config as JSON, and the YAML text an install writes for it, as `ocimetal plan --render`
/// shows it for a configdrive carrying the fixture as its network_data.
fn ours(fixture: &Path) -> (Value, String) {
    let input: Value =
        serde_json::from_slice(&std::fs::read(fixture).expect("read fixture")).expect("json");
    let converted =
        convert_network_data(&input).unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
    let as_json = serde_json::to_value(&converted.config).expect("serialise");
    let yaml = rendered_network_config(fixture);
    assert_eq!(
        yaml,
        converted.config.to_yaml().expect("yaml"),
        "{}",
        fixture.display()
    );
    (as_json, yaml)
}

/// The network-config file `ocimetal plan --render` writes for a configdrive whose
/// network_data is `fixture`.
fn rendered_network_config(fixture: &Path) -> String {
    let work = tempfile::tempdir().expect("tempdir");
    let latest = work.path().join("drive/openstack/latest");
    std::fs::create_dir_all(&latest).expect("drive");
    std::fs::write(
        latest.join("meta_data.json"),
        r#"{"uuid": "3c1f7a52-6d1e-4f7b-9a55-0b2c4d6e8f10"}"#,
    )
    .expect("meta_data");
    std::fs::copy(fixture, latest.join("network_data.json")).expect("network_data");
    let out = work.path().join("render");
    let run = Command::new(env!("CARGO_BIN_EXE_ocimetal"))
        .args(["plan", "--arch", "x86_64", "--cmdline", "", "--inventory"])
        .arg(manifest_dir().join("tests/fixtures/orders/inventory-one.json"))
        .arg("--configdrive")
        .arg(work.path().join("drive"))
        .arg("--render")
        .arg(&out)
        .output()
        .expect("run ocimetal plan");
    assert!(
        run.status.success(),
        "{}: {}",
        fixture.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read_to_string(out.join("var/lib/cloud/seed/nocloud-net/network-config"))
        .expect("network-config rendered")
}

#[test]
fn yaml_we_write_reads_back_as_the_same_structure() {
    let files = fixtures();
    assert!(files.len() >= 8, "fixtures missing: {files:?}");
    for fixture in files {
        let (json, yaml) = ours(&fixture);
        let from_yaml: Value = serde_yaml::from_str(&yaml).expect("our YAML parses");
        assert_eq!(json, from_yaml, "{}", fixture.display());
    }
}

#[test]
fn conversion_matches_cloud_init() {
    if let Some(reason) = reference_unavailable() {
        println!("SKIPPED conversion_matches_cloud_init: {reason}");
        return;
    }
    let files = fixtures();
    for fixture in &files {
        let (ours, yaml) = ours(fixture);
        let theirs = cloud_init_convert(fixture);
        assert_eq!(
            ours,
            theirs,
            "{} differs from cloud-init:\nours:   {}\ntheirs: {}",
            fixture.display(),
            ours,
            theirs
        );
        assert_eq!(
            cloud_init_reads(&yaml),
            theirs,
            "{}: cloud-init reads our YAML differently:\n{yaml}",
            fixture.display()
        );
    }
    println!(
        "{} fixtures identical to cloud-init's conversion",
        files.len()
    );
}

#[test]
fn cloud_init_renders_our_config_to_netplan_matching_nics_by_mac() {
    if let Some(reason) = reference_unavailable() {
        println!("SKIPPED cloud_init_renders_our_config_to_netplan_matching_nics_by_mac: {reason}");
        return;
    }
    for fixture in fixtures() {
        let (ours, yaml) = ours(&fixture);
        let netplan = cloud_init_renders_netplan(&yaml);
        let network = &netplan["network"];
        let entries = ours["config"].as_array().expect("config list");
        for entry in entries {
            let name = entry["name"].as_str().unwrap_or_default();
            let context = format!("{}: {name}", fixture.display());
            match entry["type"].as_str() {
                Some("physical") => {
                    let eth = &network["ethernets"][name];
                    assert_eq!(
                        eth["match"]["macaddress"], entry["mac_address"],
                        "{context}"
                    );
                    assert_eq!(eth["set-name"].as_str(), Some(name), "{context}");
                }
                Some("bond") => {
                    let bond = &network["bonds"][name];
                    assert_eq!(bond["interfaces"], entry["bond_interfaces"], "{context}");
                }
                Some("vlan") => {
                    let vlan = &network["vlans"][name];
                    assert_eq!(vlan["id"], entry["vlan_id"], "{context}");
                    assert_eq!(vlan["link"], entry["vlan_link"], "{context}");
                }
                _ => {}
            }
        }
    }
}

#[test]
fn cloud_init_nocloud_reads_our_seed_as_the_configdrive_meant_it() {
    use ocimetal::config::Secret;
    use ocimetal::plan::system::cloud_init::{nocloud_seed, SeedInput};
    use ocimetal::plan::system::files::Hostname;

    if let Some(reason) = reference_unavailable() {
        println!("SKIPPED cloud_init_nocloud_reads_our_seed_as_the_configdrive_meant_it: {reason}");
        return;
    }
    let meta_data = serde_json::json!({
        "uuid": "0e7b8b6a-1111-4c3c-9d0e-6d2e5d9f4a10",
        "hostname": "node-0.example.com",
        "name": "node-0",
        "metal3-name": "node-0",
        "public_keys": {"default": "ssh-ed25519 AAAAC3Nza test@example"},
        "flag": "on",
        "mac": "52:54:00:12:34:56"
    });
    let user_data = Secret::new(b"#cloud-config\nruncmd:\n  - touch /marker\n".to_vec());
    let fixture = manifest_dir().join("tests/fixtures/network_data/metal3_bond_mtu_dns.json");
    let network_data: Value =
        serde_json::from_slice(&std::fs::read(&fixture).expect("fixture")).expect("json");
    let seed = nocloud_seed(&SeedInput {
        meta_data: meta_data.as_object().expect("object"),
        user_data: Some(&user_data),
        network_data: Some(&network_data),
        node_uuid: None,
        hostname: Some(&Hostname::parse("node-0", "hostname").expect("valid")),
        ssh_keys: &["ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB lab@desk".to_string()],
    })
    .expect("seed");

    let root = tempfile::tempdir().expect("tempdir");
    for file in &seed.files {
        let path = root.path().join(&file.path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, file.contents.bytes()).expect("write");
    }
    let read = run_reference(&["--read-seed".as_ref(), root.path().as_os_str()]);

    assert_eq!(
        read["datasource_list"],
        serde_json::json!(["NoCloud", "None"])
    );
    let md = &read["metadata"];
    assert_eq!(md["instance-id"], "0e7b8b6a-1111-4c3c-9d0e-6d2e5d9f4a10");
    assert_eq!(md["flag"], "on");
    assert_eq!(md["mac"], "52:54:00:12:34:56");
    assert_eq!(read["hostname"], "node-0");
    assert_eq!(
        read["public_keys"],
        serde_json::json!([
            "ssh-ed25519 AAAAC3Nza test@example",
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB lab@desk"
        ])
    );
    assert_eq!(
        read["userdata"],
        "#cloud-config\nruncmd:\n  - touch /marker\n"
    );
    assert_eq!(read["network_config"], cloud_init_convert(&fixture));
}

#[test]
fn awkward_strings_and_keys_read_back_identically_in_cloud_init() {
    if let Some(reason) = reference_unavailable() {
        println!("SKIPPED awkward_strings_and_keys_read_back_identically_in_cloud_init: {reason}");
        return;
    }
    let awkward = [
        "",
        " lead",
        "trail ",
        "- dash",
        "# hash",
        "a: b",
        "'single'",
        "\"double\"",
        "%percent",
        "@at",
        "`tick",
        "*star",
        "&amp",
        "!bang",
        "|pipe",
        ">gt",
        "?q",
        "{brace}",
        "[bracket]",
        "yes",
        "No",
        "ON",
        "off",
        "y",
        "n",
        "~",
        "null",
        "Null",
        "true",
        "0x1F",
        "0o17",
        "012",
        "1_000",
        "1e3",
        ".5",
        "1:20",
        "190:20:30",
        "52:54:00:00:00:01",
        "2001:db8::1",
        "2025-01-31",
        "2025-01-31T12:00:00Z",
        "tab\there",
        "new\nline",
        "cr\rreturn",
        "back\\slash",
        "bell\u{7}",
        "del\u{7f}",
        "nbsp\u{a0}",
        "ls\u{2028}ps\u{2029}",
        "bom\u{feff}",
        "é ü ß",
        "日本語",
        "emoji 🦀",
        "=",
        "<<",
        "---",
        "...",
    ];
    let mut map = serde_json::Map::new();
    for (i, s) in awkward.iter().enumerate() {
        map.insert(format!("k{i}"), Value::String((*s).to_string()));
        map.insert((*s).to_string(), Value::from(i));
    }
    map.insert("list".into(), Value::from(awkward.to_vec()));
    map.insert(
        "numbers".into(),
        serde_json::json!([0, -1, 1.5, 1e300, -2.5e-8, true, false]),
    );
    map.insert(
        "nested".into(),
        serde_json::json!({"a": [{"b": [[]], "c": {}}], "": "empty key"}),
    );
    let value = Value::Object(map);
    let yaml = ocimetal::plan::system::yaml::to_yaml(&value).expect("yaml");
    assert_eq!(cloud_init_reads(&yaml), value, "{yaml}");
}
