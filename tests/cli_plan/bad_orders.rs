//! Invalid orders: status 2 and one line on stderr naming the field, the value and what
//! would be valid, for every source and every level of the documents.

use super::support::{fixture, ironic_string, ocimetal, Orders};
use serde_json::{json, Value};

const UUID: &str = "0e4d5b1a-9c1f-4f4e-8a55-3f1d2b9c0a11";

/// One refused set of orders and what its error must say.
struct Case {
    orders: Orders,
    /// The field the line starts with (`invalid order FIELD`).
    field: &'static str,
    /// Words the line must contain: the value and what would be valid.
    mentions: &'static [&'static str],
}

fn case(orders: Orders, field: &'static str, mentions: &'static [&'static str]) -> Case {
    Case {
        orders,
        field,
        mentions,
    }
}

fn node(info: Value) -> Orders {
    Orders::node(json!({"uuid": UUID, "instance_info": info}))
}

/// meta_data with an instance id and a hint that selects one disk, plus `extra`.
fn meta(extra: Value) -> Orders {
    let mut meta = json!({"uuid": UUID, "root_device_hints": "serial=S-ALPHA"});
    for (key, value) in extra.as_object().unwrap() {
        meta[key] = value.clone();
    }
    Orders::meta(meta)
}

/// Command-line orders on top of valid meta_data.
fn cmdline(line: &str) -> Orders {
    meta(json!({})).with_cmdline(line)
}

fn run_cases(cases: Vec<Case>) {
    for (index, case) in cases.into_iter().enumerate() {
        let run = case.orders.run(index % 2 == 0);
        run.assert_refused(case.field, case.mentions);
    }
}

#[test]
fn node_documents_of_the_wrong_shape() {
    let text = |bytes: &[u8]| Orders {
        node_text: Some(bytes.to_vec()),
        ..Orders::default()
    };
    run_cases(vec![
        case(
            text(b"{\"uuid\": "),
            "node JSON",
            &["not valid JSON", "Ironic node object"],
        ),
        case(text(b""), "node JSON", &["not valid JSON"]),
        case(text(b"\xff\xfe{}"), "node JSON", &["not valid JSON"]),
        case(
            Orders::node(json!([1, 2])),
            "node JSON",
            &["a list", "object"],
        ),
        case(
            Orders::node(json!("node")),
            "node JSON",
            &["string \"node\"", "object"],
        ),
        case(
            Orders::node(json!({"uuid": 7})),
            "uuid",
            &["number 7", "string"],
        ),
        case(
            Orders::node(json!({"instance_info": "oci://debian"})),
            "instance_info",
            &["string \"oci://debian\"", "object"],
        ),
        case(
            Orders::node(json!({"instance_info": [1]})),
            "instance_info",
            &["a list", "object"],
        ),
        case(
            node(json!({"image_source": {"url": "oci://x"}})),
            "instance_info.image_source",
            &["an object", "string"],
        ),
        case(
            node(json!({"root_device": "serial=S-ALPHA"})),
            "instance_info.root_device",
            &["string \"serial=S-ALPHA\"", "{\"serial\": \"s== A\"}"],
        ),
        case(
            node(json!({"root_device": ["S-ALPHA"]})),
            "instance_info.root_device",
            &["a list", "dictionary"],
        ),
        case(
            node(json!({"image_pull_secret": 12345})),
            "instance_info.image_pull_secret",
            &["must be a string"],
        ),
        case(
            node(json!({"configdrive": 42})),
            "instance_info.configdrive",
            &["number 42", "base64", "URL"],
        ),
        case(
            node(json!({"configdrive": true})),
            "instance_info.configdrive",
            &["boolean true"],
        ),
        case(
            node(json!({"configdrive": {"meta_data": ["uuid"]}})),
            "instance_info.configdrive.meta_data",
            &["a list", "object"],
        ),
        case(
            node(json!({"configdrive": {"user_data": 5}})),
            "instance_info.configdrive.user_data",
            &["string or a JSON object/list"],
        ),
        case(
            node(json!({"configdrive": {"network_data": "dhcp"}})),
            "instance_info.configdrive.network_data",
            &["string \"dhcp\"", "object"],
        ),
    ]);
}

#[test]
fn ironic_configdrive_strings_that_do_not_decode() {
    run_cases(vec![
        case(
            node(json!({"configdrive": "%%% not base64 %%%"})),
            "instance_info.configdrive",
            &["not valid base64", "gzipped config-2 ISO"],
        ),
        case(
            node(json!({"configdrive": "aGVsbG8gd29ybGQ="})),
            "instance_info.configdrive",
            &["not gzip", "gzipped config-2 ISO"],
        ),
        case(
            node(json!({"configdrive": ironic_string(b"plain text, no ISO")})),
            "instance_info.configdrive",
            &["ISO 9660", "config-2"],
        ),
        case(
            node(json!({"configdrive": ironic_string(&vec![0u8; 64 * 1024])})),
            "instance_info.configdrive",
            &["ISO 9660"],
        ),
    ]);
}

#[test]
fn meta_data_of_the_wrong_shape() {
    let text = |bytes: &[u8]| Orders {
        meta_data_text: Some(bytes.to_vec()),
        ..Orders::default()
    };
    run_cases(vec![
        case(
            text(b"{\"uuid\": \"x\","),
            "",
            &["meta_data.json", "not valid JSON"],
        ),
        case(
            text(b"[\"uuid\"]"),
            "",
            &["meta_data.json", "a list", "object"],
        ),
        case(
            meta(json!({"root_device_hints": 5})),
            "meta_data.root_device_hints",
            &["number 5", "serial=A [B]", "wwn=X [Y]"],
        ),
        case(
            meta(json!({"root_device_hints": {"serial": "S-ALPHA"}})),
            "meta_data.root_device_hints",
            &["an object", "serial=A [B]"],
        ),
        case(
            meta(json!({"root_device_hints": "model=SAMSUNG"})),
            "meta_data.root_device_hints",
            &["model=SAMSUNG", "serial=A [B]"],
        ),
        case(
            meta(json!({"root_device_hints": "serial="})),
            "meta_data.root_device_hints",
            &["serial=", "no value"],
        ),
        case(
            meta(json!({"oci_image": 13})),
            "meta_data.oci_image",
            &["number 13", "string"],
        ),
        case(
            meta(json!({"disk_wipe_mode": ["all"]})),
            "meta_data.disk_wipe_mode",
            &["a list", "string"],
        ),
        case(
            meta(json!({"disk_wipe_mode": "everything"})),
            "meta_data.disk_wipe_mode",
            &["\"everything\"", "all, target"],
        ),
        case(
            meta(json!({"local-hostname": {"name": "x"}})),
            "meta_data.local-hostname",
            &["an object", "string"],
        ),
        case(
            meta(json!({"local-hostname": "bad_host!"})),
            "meta_data.local-hostname",
            &["\"bad_host!\"", "letters, digits"],
        ),
        case(
            meta(json!({"hostname": "a..b"})),
            "meta_data.hostname",
            &["\"a..b\"", "host name"],
        ),
        case(
            meta(json!({"metal3-name": "-leading-hyphen"})),
            "meta_data.metal3-name",
            &["\"-leading-hyphen\""],
        ),
        case(
            meta(json!({"name": "x".repeat(64)})),
            "meta_data.name",
            &["63 characters"],
        ),
    ]);
}

#[test]
fn network_data_that_cannot_be_converted() {
    let with_network = |network: Value| {
        let mut orders = meta(json!({}));
        orders.network_data = Some(network);
        orders
    };
    run_cases(vec![
        case(
            with_network(json!({"links": "eth0"})),
            "network_data.links",
            &["list"],
        ),
        case(
            with_network(
                json!({"links": [{"id": "eth0", "type": "phy", "ethernet_mac_address": "not-a-mac"}]}),
            ),
            "network_data",
            &["not-a-mac"],
        ),
        case(
            node(
                json!({"configdrive": {"meta_data": {"uuid": UUID, "root_device_hints": "serial=S-ALPHA"}, "network_data": {"networks": 5}}}),
            ),
            "network_data.networks",
            &["list"],
        ),
    ]);
    // network_data.json that is not JSON at all.
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("cd");
    super::support::write_tree(
        &tree,
        json!({"uuid": UUID, "root_device_hints": "serial=S-ALPHA"})
            .to_string()
            .into_bytes(),
        None,
        None,
    );
    std::fs::write(tree.join("openstack/latest/network_data.json"), "{links").unwrap();
    let run = ocimetal(&[
        "plan",
        "--cmdline",
        "",
        "--arch",
        "x86_64",
        "--inventory",
        &fixture("inventory.json").display().to_string(),
        "--configdrive",
        &tree.display().to_string(),
    ]);
    run.assert_refused("", &["network_data.json", "not valid JSON"]);
}

#[test]
fn root_device_hints_that_select_no_disk_or_several() {
    run_cases(vec![
        case(
            node(json!({"root_device": {"colour": "red"}})),
            "instance_info.root_device",
            &["colour", "valid hints are", "serial", "wwn"],
        ),
        case(
            node(json!({"root_device": {"serial": 12345}})),
            "instance_info.root_device",
            &["serial", "12345"],
        ),
        case(
            node(json!({"root_device": {"size": "~= 400"}})),
            "instance_info.root_device",
            &["size", "~= 400", "integer"],
        ),
        // 480103981056 bytes are 447.13 GiB: `== 447` matches nothing, as in IPA.
        case(
            node(json!({"root_device": {"size": 447}})),
            "instance_info.root_device",
            &["no disk matches", "\"size\":\"== 447\""],
        ),
        case(
            node(json!({"root_device": {"size": 0}})),
            "instance_info.root_device",
            &["size", "positive integer"],
        ),
        case(
            node(json!({"root_device": {"rotational": "spinning"}})),
            "instance_info.root_device",
            &["rotational", "spinning", "true/false"],
        ),
        case(
            node(json!({"root_device": {"model": ">= 5"}})),
            "instance_info.root_device",
            &["model", "cannot be evaluated", "SAMSUNG"],
        ),
        // Not an operator: read as IPA reads it, `<` and a value that is not a number.
        case(
            node(json!({"root_device": {"serial": "<like> S-ALPHA"}})),
            "instance_info.root_device",
            &["serial", "cannot be evaluated", "not a number"],
        ),
        case(
            node(json!({"root_device": {"size": "<in> 447"}})),
            "instance_info.root_device",
            &["size", "<in> 447", "cannot be evaluated"],
        ),
        case(
            node(json!({"root_device": {"serial": "s=="}})),
            "instance_info.root_device",
            &["serial", "s=="],
        ),
        case(
            Orders::meta(json!({"uuid": UUID}))
                .with_cmdline("ocimetal.root_device_hints=serial=NO-SUCH-DISK"),
            "ocimetal.root_device_hints",
            &[
                "no disk matches",
                "no-such-disk",
                "/dev/sda",
                "S-ALPHA",
                "/dev/nvme0n1",
            ],
        ),
        case(
            Orders::meta(json!({"uuid": UUID}))
                .with_cmdline(r#"ocimetal.root_device_hints={"size":">= 100"}"#),
            "ocimetal.root_device_hints",
            &["3 disks match", "exactly one", "/dev/sdb"],
        ),
        case(
            Orders::meta(json!({"uuid": UUID}))
                .with_cmdline("ocimetal.root_device_hints={not-json"),
            "ocimetal.root_device_hints",
            &["{not-json", "JSON object"],
        ),
        case(
            Orders::meta(json!({"uuid": UUID}))
                .with_cmdline("ocimetal.root_device_hints=label=ROOT"),
            "ocimetal.root_device_hints",
            &["label=ROOT", "serial=A [B]"],
        ),
        case(
            meta(json!({"root_device_hints": "serial=S-ALPHA S-ALPHA"})),
            "meta_data.root_device_hints",
            &["/dev/sda", "two different disks"],
        ),
        case(
            meta(json!({"root_device_hints": "serial=S-ALPHA NO-SUCH-DISK"})),
            "meta_data.root_device_hints",
            &["no disk matches", "no-such-disk"],
        ),
        case(
            node(json!({"root_device": {"serial": "s== S-BRAVO S-BRAVO"}})),
            "instance_info.root_device",
            &["two different disks"],
        ),
    ]);
}

#[test]
fn disks_that_cannot_be_used() {
    run_cases(vec![
        // No hints and several disks: the message lists every candidate so a hint can be written.
        case(
            Orders::meta(json!({"uuid": UUID})),
            "root_device_hints",
            &[
                "3 disks are eligible",
                "serial=VALUE",
                "/dev/sda",
                "S-ALPHA",
                "/dev/sdb",
                "S-BRAVO",
                "/dev/nvme0n1",
                "S-NVME",
                "0x5000000000000aaa",
            ],
        ),
        case(
            Orders::meta(json!({"uuid": UUID})).with_inventory("inventory-small.json"),
            "root_device_hints",
            &["/dev/sda", "6442450944", "too small"],
        ),
        case(
            meta(json!({"root_device_hints": "serial=S-SMALL"}))
                .with_inventory("inventory-small.json"),
            "meta_data.root_device_hints",
            &["/dev/sda", "too small"],
        ),
    ]);
}

#[test]
fn command_line_orders() {
    run_cases(vec![
        case(
            cmdline("ocimetal.imgae=debian:13"),
            "ocimetal.imgae",
            &[
                "unknown key",
                "ocimetal.image",
                "ocimetal.root_device_hints",
            ],
        ),
        case(
            cmdline("ocimetal.image"),
            "ocimetal.image",
            &["needs a value"],
        ),
        case(
            cmdline("ocimetal.image=  "),
            "ocimetal.image",
            &["needs a value"],
        ),
        case(
            cmdline("ocimetal.image=x ocimetal.console=eth0"),
            "ocimetal.console",
            &["eth0", "ttyS1,115200"],
        ),
        case(
            cmdline("ocimetal.karg=a;reboot"),
            "ocimetal.karg",
            &["one kernel argument"],
        ),
        case(
            cmdline("\"ocimetal.ssh_key=hello world\""),
            "ocimetal.ssh_key",
            &["OpenSSH public key"],
        ),
        case(
            cmdline("ocimetal.ssh_server=maybe"),
            "ocimetal.ssh_server",
            &["maybe"],
        ),
        case(
            cmdline("ocimetal.on_failure=explode"),
            "ocimetal.on_failure",
            &["explode", "stay, poweroff, reboot"],
        ),
        case(
            cmdline("ocimetal.report_url=ftp://u:pw@hooks.lab/x"),
            "ocimetal.report_url",
            &["not an http(s) URL", "hooks.lab"],
        ),
        case(
            meta(json!({"ocimetal_report_url": "hooks.lab/events"})),
            "meta_data.ocimetal_report_url",
            &["not an http(s) URL"],
        ),
        case(
            node(json!({"ocimetal_report_url": 7})),
            "instance_info.ocimetal_report_url",
            &["number 7", "must be a string"],
        ),
        case(
            cmdline("ocimetal.reboot=later"),
            "ocimetal.reboot",
            &["\"later\"", "reboot, poweroff, kexec, none"],
        ),
        case(
            cmdline("ocimetal.disk_wipe_mode=some"),
            "ocimetal.disk_wipe_mode",
            &["\"some\"", "all, target"],
        ),
        case(
            cmdline("ocimetal.force=maybe"),
            "ocimetal.force",
            &["\"maybe\"", "=1/true/yes/on"],
        ),
        case(
            cmdline("ocimetal.dry-run=2"),
            "ocimetal.dry_run",
            &["\"2\""],
        ),
        case(
            cmdline("ocimetal.registry_mirror=docker.io"),
            "ocimetal.registry_mirror",
            &["docker.io", "REGISTRY=URL"],
        ),
        case(
            cmdline("ocimetal.registry_mirror=docker.io=ftp://mirror.lab"),
            "ocimetal.registry_mirror",
            &["ftp://mirror.lab", "http(s) URL"],
        ),
        case(
            cmdline("ocimetal.registry_mirror=docker.io/library=http://mirror.lab"),
            "ocimetal.registry_mirror",
            &["docker.io/library", "registry host"],
        ),
        case(
            cmdline("ocimetal.apt_proxy=proxy.lab:3142"),
            "ocimetal.apt_proxy",
            &["proxy.lab:3142", "http://"],
        ),
        case(
            Orders::cmdline("ocimetal.configdrive=/nonexistent/config-2"),
            "ocimetal.configdrive",
            &["/nonexistent/config-2"],
        ),
        // A per-machine URL is checked for its placeholders before anything is fetched.
        case(
            Orders::cmdline("ocimetal.node=http://127.0.0.1:9/nodes/{nic}.json"),
            "ocimetal.node",
            &["\"{nic}\"", "{mac}", "{system_uuid}"],
        ),
        case(
            Orders::cmdline("ocimetal.node=http://127.0.0.1:9/nodes/{mac.json"),
            "ocimetal.node",
            &["\"{mac.json\"", "not a placeholder"],
        ),
    ]);
}

#[test]
fn invalid_image_references() {
    run_cases(vec![
        case(
            cmdline(r#"ocimetal.image="debian 13""#),
            "ocimetal.image",
            &["\"debian 13\"", "debian:13"],
        ),
        case(
            cmdline("ocimetal.image=debian@sha256:abc"),
            "ocimetal.image",
            &["debian@sha256:abc", "sha256"],
        ),
        case(
            cmdline("ocimetal.image=Team/OS:1"),
            "ocimetal.image",
            &["\"Team/OS:1\"", "debian:13"],
        ),
        case(
            cmdline("ocimetal.image=registry.lab:5000/"),
            "ocimetal.image",
            &["registry.lab:5000/"],
        ),
        case(
            meta(json!({"oci_image": "debian:13:14"})),
            "meta_data.oci_image",
            &["debian:13:14"],
        ),
        case(
            node(json!({"image_source": "oci://-leading/x", "root_device": {"serial": "S-ALPHA"}})),
            "instance_info.image_source",
            &["-leading/x"],
        ),
    ]);
}

#[test]
fn command_options_that_name_nothing_usable() {
    let inventory = fixture("inventory.json").display().to_string();
    let base = |extra: &[&str]| {
        let mut args = vec![
            "plan".to_string(),
            "--cmdline".into(),
            "ocimetal.root_device_hints=serial=S-ALPHA".into(),
            "--inventory".into(),
            inventory.clone(),
            "--configdrive".into(),
            fixture("configdrive").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    ocimetal(&base(&["--arch", "riscv64"]))
        .assert_refused("--arch", &["\"riscv64\"", "x86_64 or aarch64"]);
    ocimetal(&base(&["--arch", ""])).assert_refused("--arch", &["x86_64 or aarch64"]);
    ocimetal(&base(&["--node", "/nonexistent/node.json"]))
        .assert_refused("--node", &["/nonexistent/node.json"]);
    let dir = tempfile::tempdir().unwrap();
    ocimetal(&base(&["--node", &dir.path().display().to_string()]))
        .assert_refused("--node", &[&dir.path().display().to_string()]);
    ocimetal(&base(&[
        "--node",
        &fixture("node-broken.json").display().to_string(),
    ]))
    .assert_refused("node JSON", &["node-broken.json", "not valid JSON"]);
    let mut args = base(&[]);
    args[2] = format!("ocimetal.node=/nonexistent/node.json {}", args[2]);
    ocimetal(&args).assert_refused("ocimetal.node", &["/nonexistent/node.json"]);
    ocimetal(&[
        "plan",
        "--cmdline",
        "",
        "--inventory",
        &inventory,
        "--configdrive",
        "/nonexistent/cd",
    ])
    .assert_refused("--configdrive", &["/nonexistent/cd", "config-2 directory"]);
    // A directory that is not a config-2 tree.
    ocimetal(&[
        "plan",
        "--cmdline",
        "",
        "--inventory",
        &inventory,
        "--configdrive",
        &dir.path().display().to_string(),
    ])
    .assert_refused("", &["meta_data.json"]);
    // A file that is not an ISO image.
    let not_iso = dir.path().join("cd.iso");
    std::fs::write(&not_iso, vec![7u8; 100_000]).unwrap();
    ocimetal(&[
        "plan",
        "--cmdline",
        "",
        "--inventory",
        &inventory,
        "--configdrive",
        &not_iso.display().to_string(),
    ])
    .assert_refused("", &["ISO 9660"]);
}

#[test]
fn malformed_inventories() {
    let dir = tempfile::tempdir().unwrap();
    let drive = fixture("configdrive").display().to_string();
    let cases: [(&str, &[u8], &str); 8] = [
        ("not-json.json", b"/dev/sda 480G", "expected value"),
        (
            "object.json",
            b"{\"name\": \"/dev/sda\"}",
            "expected a sequence",
        ),
        (
            "size.json",
            b"[{\"name\": \"/dev/sda\", \"size\": \"480 GB\"}]",
            "480 GB",
        ),
        (
            "negative.json",
            b"[{\"name\": \"/dev/sda\", \"size\": -1}]",
            "-1",
        ),
        (
            "name.json",
            b"[{\"name\": \"sda\", \"size\": 1}]",
            "\"sda\"",
        ),
        ("utf8.json", b"[\xff]", "UTF-8"),
        (
            "no-name.json",
            b"[{\"name\": \"/dev/\", \"size\": 1}]",
            "\"/dev/\"",
        ),
        (
            "twice.json",
            b"[{\"name\": \"/dev/sda\", \"size\": 1}, {\"name\": \"/dev/sda\", \"size\": 2}]",
            "repeats",
        ),
    ];
    for (name, text, mention) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let path = path.display().to_string();
        for command in ["plan", "devices"] {
            let mut args = vec![command, "--inventory", &path];
            if command == "plan" {
                args.extend(["--cmdline", "", "--configdrive", &drive]);
            }
            ocimetal(&args).assert_refused("--inventory", &[name, mention, "JSON array"]);
        }
    }
    ocimetal(&["devices", "--inventory", "/nonexistent/inventory.json"])
        .assert_refused("--inventory", &["/nonexistent/inventory.json"]);
    ocimetal(&[
        "plan",
        "--inventory",
        &fixture("inventory-malformed.json").display().to_string(),
        "--cmdline",
        "",
        "--configdrive",
        &drive,
    ])
    .assert_refused("--inventory", &["480 GB"]);
}

/// Warnings about orders that were ignored must not add lines to a refusal.
#[test]
fn refusal_stays_one_line_when_orders_were_also_ignored() {
    let orders = node(json!({
        "image_source": "http://images.lab/os.qcow2",
        "root_device": {"serial": "NO-SUCH-DISK"}
    }))
    .with_meta(json!({"uuid": UUID, "root_device_hints": "   "}));
    orders
        .run(false)
        .assert_refused("instance_info.root_device", &["no disk matches"]);
    let orders = node(json!({"image_source": "oci://", "root_device": {"serial": "S-ALPHA"}}))
        .with_cmdline("ocimetal.apt_proxy=ftp://proxy.lab");
    orders
        .run(true)
        .assert_refused("ocimetal.apt_proxy", &["ftp://proxy.lab"]);
}
