//! Differential test: our hint matcher against ironic-python-agent's `find_devices_by_hints`.
//!
//! Generates seeded random disks and hint dictionaries (operators, odd spacing, case,
//! invalid values), evaluates them here and with IPA (tests/hints_vs_ipa.py), and reports
//! every disagreement. Skips, saying why, when Python or IPA is not available; install it with
//! `pip install ironic-python-agent`. `OCIMETAL_IPA_PYTHON` picks the interpreter,
//! `HINTS_DIFF_SEED` and `HINTS_DIFF_CASES` the cases.
//!
//! One deliberate difference is kept out of the comparison: IPA turns a missing attribute
//! (`None`) into the string "none", which `s!= X` then selects; ours never matches it. Missing
//! attributes are therefore given to IPA as empty strings, which IPA also never matches.

use std::process::Command;

use ocimetal::hints::{try_find_devices_by_hints, RootDeviceHints};
use ocimetal::inventory::BlockDevice;
use serde_json::{json, Map, Value};

/// splitmix64: small, seeded, good enough to spread cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Attribute values shared by disks and hints, so that hints often hit.
const WORDS: &[&str] = &[
    "ABC123",
    "abc123",
    "S1",
    "s2",
    "Samsung SSD 860",
    "samsung  ssd 860",
    "QEMU HARDDISK",
    "0x5000c500a1b2c3d4",
    "1:0:0:0",
    "/dev/disk/by-path/pci-0000:00:1f.2-ata-1",
    "sata",
    "nvme",
    "10",
    "2.5",
    "-3",
    "a b",
    "A B",
    "",
];

/// Values that stress the grammar and the number parsing.
const ODD_WORDS: &[&str] = &[
    "1_0", "nan", "inf", "1e3", "x<in>y", "s=x", "s== x", "<in> x", "<or> a", "==", "=5", "é",
    "ÄÖ", "[1]", "a\u{b}b", "a\tb", "1__0", "ſ",
];

const OPERATORS: &[&str] = &[
    "=",
    "==",
    "!=",
    ">=",
    ">",
    "<=",
    "<",
    "s==",
    "s!=",
    "s>=",
    "s>",
    "s<=",
    "s<",
    "<in>",
    "<or>",
    "<all-in>",
    "<range-in>",
    "S==",
    "<IN>",
];

const STRING_HINTS: &[&str] = &[
    "model",
    "vendor",
    "serial",
    "wwn",
    "wwn_with_extension",
    "wwn_vendor_extension",
    "name",
    "hctl",
    "by_path",
    "tran",
];

const SIZES: &[u64] = &[
    0,
    1,
    1 << 30,
    10 << 30,
    447 << 30,
    480_103_981_056,
    500_107_862_016,
    2_000_398_934_016,
];

fn word(rng: &mut Rng) -> String {
    let pool = if rng.chance(15) { ODD_WORDS } else { WORDS };
    let w = rng.pick(pool).to_string();
    match rng.below(4) {
        0 => w.to_uppercase(),
        1 => format!(" {w} "),
        _ => w,
    }
}

fn device(rng: &mut Rng) -> BlockDevice {
    let attr = |rng: &mut Rng| (!rng.chance(15)).then(|| word(rng));
    BlockDevice {
        name: rng
            .pick(&["/dev/sda", "/dev/sdb", "/dev/nvme0n1", "sda", "10"])
            .to_string(),
        size: if rng.chance(20) {
            rng.next() % (1 << 45)
        } else {
            *rng.pick(SIZES)
        },
        model: attr(rng),
        vendor: attr(rng),
        serial: attr(rng),
        wwn: attr(rng),
        wwn_with_extension: attr(rng),
        wwn_vendor_extension: attr(rng),
        rotational: rng.chance(50),
        hctl: attr(rng),
        by_path: attr(rng),
        tran: attr(rng),
        logical_sectors: Some(512),
        physical_sectors: Some(4096),
    }
}

/// A hint expression: mostly the common forms, sometimes odd spacing or odd grammar.
fn expression(rng: &mut Rng, value: &mut dyn FnMut(&mut Rng) -> String) -> String {
    let op = rng.pick(OPERATORS).to_string();
    let gap = rng.pick(&[" ", "", "  ", "\t"]).to_string();
    match rng.below(20) {
        0..=6 => value(rng),
        7..=9 => format!("{}{gap}{}", rng.pick(&["s==", "S==", "s!="]), value(rng)),
        10 => format!("<in> {}", value(rng)),
        11 => format!("<or> {} <or> {}", value(rng), value(rng)),
        12..=14 => format!("{op}{gap}{}", value(rng)),
        15 => format!("{op}{gap}"),
        16 => format!("{op}{gap}{} {op} {}", value(rng), value(rng)),
        17 => format!(
            "<range-in> {} {} {} {}",
            rng.pick(&["[", "("]),
            value(rng),
            value(rng),
            rng.pick(&["]", ")"])
        ),
        _ => format!("{} {}", value(rng), value(rng)),
    }
}

/// The attribute `name` of one of the case's disks, when it has one.
fn attribute(devices: &[BlockDevice], name: &str, rng: &mut Rng) -> Option<String> {
    let dev = rng.pick(devices);
    let value = serde_json::to_value(dev).ok()?;
    let text = value.get(name)?.as_str()?.to_string();
    Some(match rng.below(4) {
        0 => text.to_uppercase(),
        1 if text.len() > 2 => text.chars().skip(1).collect(),
        _ => text,
    })
}

fn string_hint(rng: &mut Rng, devices: &[BlockDevice], name: &str) -> Value {
    let mut value = |rng: &mut Rng| match rng.chance(60) {
        true => attribute(devices, name, rng).unwrap_or_else(|| word(rng)),
        false => word(rng),
    };
    match rng.below(30) {
        0 => json!(rng.below(100)),
        1 => Value::Null,
        _ => Value::String(expression(rng, &mut value)),
    }
}

fn size_hint(rng: &mut Rng, devices: &[BlockDevice]) -> Value {
    // Whole GiB around the disks' sizes, so that every comparison goes both ways.
    let mut number = |rng: &mut Rng| {
        if rng.chance(80) {
            let gib = rng.pick(devices).size >> 30;
            (gib + rng.below(3) as u64).saturating_sub(1).to_string()
        } else {
            rng.pick(&["0", "-5", "1_000", "4.5", "big", "007", "1e3"])
                .to_string()
        }
    };
    match rng.below(10) {
        0 => json!(rng.pick(&[1, 10, 400, 447, 448, 465, 0])),
        1 if rng.chance(30) => {
            json!(rng.pick(&[json!(447.0), json!(true), Value::Null, json!([447])]))
        }
        _ => {
            let op = rng
                .pick(&["", "==", ">=", "<=", ">", "<", "!=", "="])
                .to_string();
            if rng.chance(70) {
                Value::String(format!("{op} {}", number(rng)))
            } else {
                Value::String(expression(rng, &mut number))
            }
        }
    }
}

fn rotational_hint(rng: &mut Rng) -> Value {
    rng.pick(&[
        json!(true),
        json!(false),
        json!(true),
        json!(false),
        json!("yes"),
        json!("No"),
        json!("1"),
        json!("0"),
        json!(" ON "),
        json!("off"),
        json!("t"),
        json!("F"),
        json!("y"),
        json!("n"),
        json!(1),
        json!(0),
        json!("maybe"),
        json!(2),
        json!(1.0),
        Value::Null,
        json!(""),
    ])
    .clone()
}

fn hints(rng: &mut Rng, devices: &[BlockDevice]) -> Map<String, Value> {
    let mut map = Map::new();
    for _ in 0..=rng.below(3) {
        let (name, value) = match rng.below(12) {
            0..=1 => ("size".to_string(), size_hint(rng, devices)),
            2 => ("rotational".to_string(), rotational_hint(rng)),
            3 if rng.chance(10) => (rng.pick(&["colour", "SERIAL"]).to_string(), json!("x")),
            _ => {
                let name = rng.pick(STRING_HINTS).to_string();
                let value = string_hint(rng, devices, &name);
                (name, value)
            }
        };
        map.insert(name, value);
    }
    map
}

/// A disk as IPA's `BlockDevice.serialize()` gives it, missing strings as "" (see above).
fn ipa_device(dev: &BlockDevice) -> Value {
    let mut value = serde_json::to_value(dev).unwrap_or_default();
    if let Value::Object(fields) = &mut value {
        for key in STRING_HINTS {
            if fields.get(*key).is_some_and(Value::is_null) {
                fields.insert(key.to_string(), json!(""));
            }
        }
    }
    value
}

/// What we make of a case, in the shape tests/hints_vs_ipa.py prints.
fn ours(devices: &[BlockDevice], map: &Map<String, Value>) -> Value {
    let parsed = match RootDeviceHints::parse_ipa(map, "root_device") {
        Ok(parsed) => parsed,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    match try_find_devices_by_hints(devices, &parsed) {
        Ok(found) => {
            let indices: Vec<usize> = found
                .iter()
                .filter_map(|f| devices.iter().position(|d| std::ptr::eq(d, *f)))
                .collect();
            json!({ "matches": indices })
        }
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn hints_agree_with_ironic_python_agent() {
    let seed = env_number("HINTS_DIFF_SEED", 20_240_611);
    let count = env_number("HINTS_DIFF_CASES", 3000);
    let mut rng = Rng(seed);
    let cases: Vec<(Vec<BlockDevice>, Map<String, Value>)> = (0..count)
        .map(|_| {
            let devices: Vec<BlockDevice> = (0..=rng.below(4)).map(|_| device(&mut rng)).collect();
            let hints = hints(&mut rng, &devices);
            (devices, hints)
        })
        .collect();
    let for_ipa: Vec<Value> = cases
        .iter()
        .map(|(devices, map)| {
            json!({
                "devices": devices.iter().map(ipa_device).collect::<Vec<_>>(),
                "hints": map,
            })
        })
        .collect();

    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("cases.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&for_ipa).expect("cases serialise"),
    )
    .expect("write cases");
    let python = std::env::var("OCIMETAL_IPA_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hints_vs_ipa.py");
    let output = match Command::new(&python).arg(script).arg(&path).output() {
        Ok(output) => output,
        Err(e) => {
            println!("skipping the comparison with IPA: cannot run {python}: {e}");
            return;
        }
    };
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("IPA results are JSON");
    if let Some(reason) = answer.get("skip") {
        println!("skipping the comparison with IPA: {reason}");
        return;
    }
    let theirs = answer.as_array().expect("one result per case");
    assert_eq!(theirs.len(), cases.len());

    let mut disagreements = Vec::new();
    let mut errors = std::collections::BTreeMap::<String, usize>::new();
    let mut matched = 0;
    for (((devices, map), ipa), case) in cases.iter().zip(theirs).zip(&for_ipa) {
        let ours = ours(devices, map);
        let same = match (ours.get("matches"), ipa.get("matches")) {
            (Some(a), Some(b)) => a == b,
            (None, None) => true, // both refuse; the messages differ by design
            _ => false,
        };
        if let Some(error) = ipa.get("error").and_then(Value::as_str) {
            let kind = error.split(':').next().unwrap_or(error).to_string();
            *errors.entry(kind).or_default() += 1;
        }
        matched += usize::from(
            ipa.get("matches")
                .and_then(Value::as_array)
                .is_some_and(|m| !m.is_empty()),
        );
        if !same {
            disagreements.push(format!("case {case}\n  ours: {ours}\n  IPA:  {ipa}"));
        }
    }
    println!(
        "{} cases (seed {seed}): IPA matched some disk in {matched}, raised {errors:?}; {} disagreements",
        cases.len(),
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements with IPA, first ones:\n{}",
        disagreements.len(),
        disagreements
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
