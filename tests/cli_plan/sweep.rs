//! A seeded sweep of mangled orders: whatever the node JSON, meta_data or command line holds,
//! `ocimetal plan` answers with a plan (status 0) or one refusal line (status 2), never a
//! panic, another status or a signal.
//!
//! `OCIMETAL_SWEEP_SEED` and `OCIMETAL_SWEEP_CASES` override the fixed seed and case count
//! to explore further; a failure prints the seed, the case and its files.

use super::support::{build_iso, fixture, have_xorriso, ironic_string, ocimetal, Orders};
use serde_json::{json, Map, Value};

const DEFAULT_SEED: u64 = 0x0c1_3e7a1;
const DEFAULT_CASES: usize = 300;
const WORKERS: usize = 2;

/// xorshift64*: small, seedable, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

/// Strings that have tripped parsers somewhere. No http(s) URL: a node or configdrive URL
/// would be fetched.
fn nasty_strings() -> Vec<String> {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let mut pool: Vec<String> = [
        "",
        " ",
        "  \t",
        "oci://",
        "oci:// ",
        "oci://debian:13",
        "oci://Bad Ref",
        "debian:13",
        "debian",
        "UPPER/Case",
        "a b",
        "localhost:5000/x:1",
        "registry.lab:5000/",
        "registry.lab:5000/team/os:1.2",
        "serial=S-ALPHA",
        "serial=S-ALPHA S-BRAVO",
        "serial=S-ALPHA S-ALPHA",
        "serial=S-NVME",
        "wwn=0x5000000000000aaa",
        "serial=",
        "=",
        "==",
        "s==",
        "s== S-ALPHA",
        "s!= S-ALPHA",
        "<in> ALPHA",
        "<or> S-ALPHA <or> S-BRAVO",
        "<range-in> [1 2]",
        "<all-in> a b",
        ">= 100",
        "> 447",
        "= 400",
        "<",
        "<in>",
        "all",
        "target",
        "ALL",
        " Target ",
        "reboot",
        "poweroff",
        "kexec",
        "none",
        "-",
        "\"",
        "\"\"",
        "\\",
        "{",
        "}",
        "[]",
        "{}",
        "null",
        "true",
        "yes",
        "0",
        "-1",
        "1e308",
        "NaN",
        "inf",
        "ünïcødé",
        "😀",
        "\u{202e}rtl",
        "\t\n\r",
        "../../etc/passwd",
        "/nonexistent",
        ".",
        "%00",
        "%zz",
        "\u{7f}",
        "\u{1}",
        "a=b=c",
        "host-1",
        "-bad-",
        "a..b",
        "node.example.com.",
        "192.0.2.1",
        "2001:db8::1",
        "52:54:00:12:34:56",
        "52:54:00:12:34",
        "ftp://x",
        "docker.io=ftp://m",
        "docker.io",
        "eth0",
        "phy",
        "bond",
        "vlan",
        "ipv4",
        "ipv4_dhcp",
        "ipv6",
        "ipv6_slaac",
        "ipv6_dhcpv6-stateful",
        "dns",
        "255.255.255.0",
        "24",
        "/dev/sda",
        "S-ALPHA",
        "0x5000000000000bbb",
        "eui.36344730526001230025384500000001",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    pool.push("x".repeat(300));
    pool.push(format!("debian@{digest}"));
    pool.push(format!("debian:13@{digest}"));
    pool.push("é".repeat(70));
    pool
}

const KEYS: &[&str] = &[
    "uuid",
    "instance_info",
    "image_source",
    "root_device",
    "image_pull_secret",
    "configdrive",
    "meta_data",
    "user_data",
    "network_data",
    "vendor_data",
    "oci_image",
    "root_device_hints",
    "disk_wipe_mode",
    "local-hostname",
    "local_hostname",
    "hostname",
    "metal3-name",
    "name",
    "instance-id",
    "public_keys",
    "admin_pass",
    "links",
    "networks",
    "services",
    "routes",
    "id",
    "type",
    "link",
    "ethernet_mac_address",
    "mtu",
    "ip_address",
    "netmask",
    "gateway",
    "address",
    "bond_links",
    "bond_mode",
    "vlan_id",
    "vlan_link",
    "serial",
    "wwn",
    "size",
    "model",
    "rotational",
    "node",
    "",
    "zzz",
];

struct Generator {
    rng: Rng,
    strings: Vec<String>,
}

impl Generator {
    fn string(&mut self) -> String {
        let s = self.rng.pick(&self.strings);
        if self.rng.one_in(8) {
            format!("{s}{}", self.rng.pick(&self.strings))
        } else {
            s
        }
    }

    fn number(&mut self) -> Value {
        match self.rng.below(8) {
            0 => json!(0),
            1 => json!(-1),
            2 => json!(447),
            3 => json!(u64::MAX),
            4 => json!(i64::MIN),
            5 => json!(0.5),
            6 => json!(1e300),
            _ => json!(self.rng.next() % 5000),
        }
    }

    fn value(&mut self, depth: usize) -> Value {
        let kinds = if depth > 2 { 5 } else { 8 };
        match self.rng.below(kinds) {
            0 => Value::Null,
            1 => Value::Bool(self.rng.one_in(2)),
            2 => self.number(),
            3 | 4 => Value::String(self.string()),
            5 => Value::Array(
                (0..self.rng.below(4))
                    .map(|_| self.value(depth + 1))
                    .collect(),
            ),
            _ => {
                let mut map = Map::new();
                for _ in 0..self.rng.below(4) {
                    let key = self.rng.pick(KEYS).to_string();
                    let value = self.value(depth + 1);
                    map.insert(key, value);
                }
                Value::Object(map)
            }
        }
    }

    /// Replaces, removes or adds one value somewhere in `doc`.
    fn mutate(&mut self, doc: &mut Value) {
        let mut at = doc;
        // Walk down a random distance.
        loop {
            let descend = self.rng.below(3) != 0;
            let next_key = match &*at {
                Value::Object(map) if descend && !map.is_empty() => {
                    let keys: Vec<String> = map.keys().cloned().collect();
                    Some(self.rng.pick(&keys))
                }
                _ => None,
            };
            let next_index = match &*at {
                Value::Array(items) if descend && !items.is_empty() => {
                    Some(self.rng.below(items.len()))
                }
                _ => None,
            };
            at = match (next_key, next_index) {
                (Some(key), _) => at.get_mut(&key).expect("key exists"),
                (None, Some(index)) => at.get_mut(index).expect("index exists"),
                (None, None) => break,
            };
        }
        match (self.rng.below(3), &mut *at) {
            (0, Value::Object(map)) if !map.is_empty() => {
                let keys: Vec<String> = map.keys().cloned().collect();
                let key = self.rng.pick(&keys);
                map.remove(&key);
            }
            (1, Value::Object(map)) => {
                let key = self.rng.pick(KEYS).to_string();
                let value = self.value(1);
                map.insert(key, value);
            }
            _ => *at = self.value(1),
        }
    }

    /// A document after a few mutations, sometimes also broken as text.
    fn document(&mut self, base: &Value) -> (Option<Value>, Option<Vec<u8>>) {
        let mut doc = base.clone();
        for _ in 0..1 + self.rng.below(2) {
            self.mutate(&mut doc);
        }
        if !self.rng.one_in(8) {
            return (Some(doc), None);
        }
        let mut bytes = doc.to_string().into_bytes();
        let at = self.rng.below(bytes.len() + 1);
        match self.rng.below(3) {
            0 => bytes.truncate(at),
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, self.rng.pick(b"{\",\\\xff]0")),
        }
        (None, Some(bytes))
    }

    fn cmdline(&mut self) -> String {
        /// Every key with values it takes, so that whole lines are often valid and the
        /// planner behind them runs.
        const CMDLINE: &[(&str, &[&str])] = &[
            (
                "image",
                &["debian:13", "oci://debian:13", "localhost:5000/x:1"],
            ),
            (
                "root_device_hints",
                &[
                    "serial=S-ALPHA",
                    "\"serial=S-ALPHA S-BRAVO\"",
                    "wwn=0x5000000000000bbb",
                    "{\"size\":\">=800\"}",
                ],
            ),
            ("disk_wipe_mode", &["all", "target", "ALL"]),
            ("insecure_registry", &["10.0.2.2:5000", "a:1,b:2"]),
            (
                "registry_mirror",
                &["docker.io=http://10.0.2.2:5000", "quay.io=https://m.lab/"],
            ),
            ("reboot", &["reboot", "poweroff", "kexec", "none"]),
            ("force", &["1", "no"]),
            ("debug", &["0", "false"]),
            ("dry_run", &["yes"]),
            ("dry-run", &["TRUE"]),
            (
                "apt_proxy",
                &["http://proxy.lab:3142", "https://u:p@proxy.lab/"],
            ),
            ("auth_file", &["/etc/auth.json"]),
            ("ca_file", &["/etc/ca.pem"]),
            ("configdrive", &["/nonexistent"]),
            ("node", &["/nonexistent.json"]),
            ("imgae", &["debian"]),
            ("", &["x"]),
        ];
        let mut words = Vec::new();
        for _ in 0..1 + self.rng.below(5) {
            let (key, values) = self.rng.pick(CMDLINE);
            let word = match self.rng.below(8) {
                0 => self
                    .rng
                    .pick(&["quiet", "console=ttyS0,115200", "root=/dev/sda1", "\""])
                    .to_string(),
                1 => format!("ocimetal.{key}"),
                2 | 3 => {
                    let value = self.string();
                    match self.rng.below(4) {
                        0 => format!("ocimetal.{key}=\"{value}\""),
                        1 => format!("\"ocimetal.{key}={value}\""),
                        2 => format!("ocimetal.{key}=\"{value}"),
                        _ => format!("ocimetal.{key}={value}"),
                    }
                }
                _ => format!("ocimetal.{key}={}", self.rng.pick(values)),
            };
            words.push(word);
        }
        words.join(if self.rng.one_in(5) { "\t" } else { " " })
    }

    fn orders(&mut self) -> Orders {
        let base_node = json!({
            "uuid": "0e4d5b1a-9c1f-4f4e-8a55-3f1d2b9c0a11",
            "instance_info": {
                "image_source": "oci://debian:13",
                "root_device": {"serial": "s== S-ALPHA S-BRAVO", "size": ">= 100"},
                "image_pull_secret": "user:pass",
                "configdrive": {
                    "meta_data": {"uuid": "m-1", "local-hostname": "node-1", "disk_wipe_mode": "all"},
                    "user_data": "#cloud-config\n",
                    "network_data": {
                        "links": [
                            {"id": "eno1", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56", "mtu": 9000},
                            {"id": "bond0", "type": "bond", "bond_links": ["eno1"], "bond_mode": "802.3ad", "ethernet_mac_address": "52:54:00:12:34:57"},
                            {"id": "vlan10", "type": "vlan", "vlan_link": "bond0", "vlan_id": 10, "vlan_mac_address": "52:54:00:12:34:57"}
                        ],
                        "networks": [
                            {"id": "n4", "type": "ipv4", "link": "vlan10", "ip_address": "192.0.2.10", "netmask": "255.255.255.0",
                             "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"}]},
                            {"id": "n6", "type": "ipv6_slaac", "link": "eno1"}
                        ],
                        "services": [{"type": "dns", "address": "192.0.2.53"}]
                    }
                }
            }
        });
        let base_meta = json!({
            "uuid": "m-2",
            "local-hostname": "node-2",
            "metal3-name": "bmh-2",
            "oci_image": "debian:12",
            "root_device_hints": "serial=S-NVME",
            "disk_wipe_mode": "target",
            "public_keys": {"default": "ssh-ed25519 AAAA"}
        });
        let mut orders = Orders::default();
        if self.rng.one_in(2) {
            (orders.node, orders.node_text) = self.document(&base_node);
        }
        if self.rng.one_in(2) {
            (orders.meta_data, orders.meta_data_text) = self.document(&base_meta);
            if self.rng.one_in(2) {
                let base = &base_node["instance_info"]["configdrive"]["network_data"];
                let mut network = base.clone();
                for _ in 0..self.rng.below(3) {
                    self.mutate(&mut network);
                }
                orders.network_data = Some(network);
            }
        }
        if self.rng.one_in(2) {
            orders.cmdline = self.cmdline();
        }
        orders.inventory = match self.rng.below(10) {
            0 => "inventory-small.json",
            1 | 2 => "inventory-one.json",
            _ => "inventory.json",
        }
        .to_string();
        if self.rng.one_in(10) {
            orders.arch = Some(
                self.rng
                    .pick(&["aarch64", "arm64", "", "x86_64 "])
                    .to_string(),
            );
        }
        orders
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| {
        let v = v.trim();
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    })
}

#[test]
fn mangled_orders_never_crash() {
    let seed = env_number("OCIMETAL_SWEEP_SEED").unwrap_or(DEFAULT_SEED);
    let cases = env_number("OCIMETAL_SWEEP_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    let mut generator = Generator {
        rng: Rng::new(seed),
        strings: nasty_strings(),
    };
    let all: Vec<(usize, Orders, bool)> = (0..cases)
        .map(|index| (index, generator.orders(), generator.rng.one_in(2)))
        .collect();
    let outcomes: Vec<Result<Option<i32>, String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                let all = &all;
                scope.spawn(move || {
                    all.iter()
                        .skip(worker)
                        .step_by(WORKERS)
                        .map(|(index, orders, json)| check(seed, *index, orders, *json))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    let failures: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {cases} cases broke the contract; the first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let codes: Vec<Option<i32>> = outcomes.into_iter().flatten().collect();
    let planned = codes.iter().filter(|c| **c == Some(0)).count();
    let refused = codes.iter().filter(|c| **c == Some(2)).count();
    eprintln!("sweep seed {seed:#x}: {planned} planned, {refused} refused of {cases}");
    // The sweep must exercise both answers, or it is not testing much.
    if cases >= 100 {
        assert!(planned >= cases / 20, "{planned} of {cases} planned");
        assert!(refused >= cases / 20, "{refused} of {cases} refused");
    }
}

/// Runs one case; a broken contract is an error with everything needed to reproduce it.
fn check(seed: u64, index: usize, orders: &Orders, json: bool) -> Result<Option<i32>, String> {
    let run = orders.run(json);
    let describe = |problem: &str| {
        format!(
            "{problem}: seed {seed:#x} case {index} (--json {json}):\n  node: {:?}\n  node_text: {:?}\n  meta_data: {:?}\n  meta_data_text: {:?}\n  cmdline: {:?}\n  inventory: {}\n  arch: {:?}\n  status: {:?} signal: {:?}\n  stderr: {}",
            orders.node.as_ref().map(Value::to_string),
            orders.node_text.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()),
            orders.meta_data.as_ref().map(Value::to_string),
            orders.meta_data_text.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()),
            orders.cmdline,
            orders.inventory,
            orders.arch,
            run.code,
            run.signal,
            run.stderr,
        )
    };
    match run.code {
        Some(0) if run.stdout.is_empty() => Err(describe("empty plan")),
        Some(0) if json && serde_json::from_str::<Value>(&run.stdout).is_err() => {
            Err(describe("plan is not JSON"))
        }
        Some(0) => Ok(run.code),
        Some(2) if run.stderr.lines().count() != 1 => Err(describe("not one line")),
        Some(2) if !run.stderr.starts_with("ocimetal: invalid order ") => {
            Err(describe("not an order error"))
        }
        Some(2) if !run.stdout.is_empty() => Err(describe("stdout on refusal")),
        Some(2) => Ok(run.code),
        // No orders at all: one line, and only when nothing was ordered.
        Some(4) if run.stderr.lines().count() != 1 || !run.stdout.is_empty() => {
            Err(describe("no-orders not one line"))
        }
        Some(4) if !run.stderr.starts_with("ocimetal: no orders: ") => {
            Err(describe("status 4 without saying no orders"))
        }
        Some(4) if gives_orders(orders) => Err(describe("no orders although some were given")),
        Some(4) => Ok(run.code),
        _ => Err(describe("neither a plan nor a refusal")),
    }
}

/// Whether `orders` hold any source of orders: a node, a configdrive, or an
/// `ocimetal.image=` / `ocimetal.root_device_hints=` word.
fn gives_orders(orders: &Orders) -> bool {
    use ocimetal::host::cmdline::{own_words, Key};
    // The kernel's own word splitting decides what the command line holds.
    let says_what = own_words(&orders.cmdline)
        .into_iter()
        .any(|w| matches!(w.key(), Some(Key::Image | Key::RootDeviceHints)) && w.value.is_some());
    orders.node.is_some()
        || orders.node_text.is_some()
        || orders.meta_data.is_some()
        || orders.meta_data_text.is_some()
        || says_what
}

/// Damaged configdrive images, read by our own ISO 9660 reader from a file or from Ironic's
/// base64/gzip string: a plan or one refusal line, never a crash.
#[test]
fn damaged_configdrive_images_never_crash() {
    if !have_xorriso() {
        eprintln!("xorriso not found: no image to damage");
        return;
    }
    let seed = env_number("OCIMETAL_SWEEP_SEED").unwrap_or(DEFAULT_SEED);
    let cases = env_number("OCIMETAL_SWEEP_CASES").map_or(DEFAULT_CASES / 4, |n| n as usize / 4);
    let dir = tempfile::tempdir().expect("tempdir");
    let iso = dir.path().join("config-2.iso");
    build_iso(&fixture("configdrive"), &iso).expect("xorriso");
    let pristine = std::fs::read(&iso).expect("reading the image");
    // Volume descriptors start at sector 16; directories and small files follow closely.
    let hot = 16 * 2048..pristine.len().min(40 * 2048);
    let mut rng = Rng::new(seed ^ 0x150);
    let mut failures = Vec::new();
    let mut planned = 0;
    for index in 0..cases {
        let mut image = pristine.clone();
        match rng.below(5) {
            0 => image.truncate(rng.below(image.len())),
            _ => {
                for _ in 0..1 + rng.below(48) {
                    let at = if rng.one_in(8) {
                        rng.below(image.len())
                    } else {
                        hot.start + rng.below(hot.len())
                    };
                    // Sometimes a whole little-endian field: extents and sizes.
                    let width = if rng.one_in(3) { 4 } else { 1 };
                    let value = match rng.below(4) {
                        0 => 0,
                        1 => u32::MAX,
                        _ => rng.next() as u32,
                    };
                    for (offset, byte) in value.to_le_bytes().iter().take(width).enumerate() {
                        if let Some(slot) = image.get_mut(at + offset) {
                            *slot = *byte;
                        }
                    }
                }
            }
        }
        let inline = rng.one_in(2);
        let mut args = vec![
            "plan".to_string(),
            "--cmdline".into(),
            String::new(),
            "--arch".into(),
            "x86_64".into(),
            "--inventory".into(),
            fixture("inventory.json").display().to_string(),
        ];
        let damaged = dir.path().join(format!("damaged-{index}.iso"));
        if inline {
            let node =
                json!({"uuid": "u-1", "instance_info": {"configdrive": ironic_string(&image)}});
            std::fs::write(&damaged, node.to_string()).expect("writing the node");
            args.extend(["--node".into(), damaged.display().to_string()]);
        } else {
            std::fs::write(&damaged, &image).expect("writing the image");
            args.extend(["--configdrive".into(), damaged.display().to_string()]);
        }
        let run = ocimetal(&args);
        let fine = match run.code {
            Some(0) => {
                planned += 1;
                true
            }
            Some(2) => {
                run.stderr.lines().count() == 1
                    && run.stderr.starts_with("ocimetal: invalid order ")
            }
            _ => false,
        };
        if !fine {
            let kept = dir.path().join(format!("broke-{index}.iso"));
            std::fs::write(&kept, &image).expect("keeping the image");
            failures.push(format!(
                "seed {seed:#x} case {index} (inline {inline}): status {:?} signal {:?}: {}",
                run.code, run.signal, run.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("damaged images: {planned} of {cases} still planned");
}
