//! Hints through the public API: every hint name, IPA's edge cases, RAID1 and selection.

use serde_json::{json, Map, Value};

use super::*;
use crate::config::{Source, Sourced};

const FIELD: &str = "instance_info.root_device";

/// 447.13 GiB, the usual "480 GB" SSD.
const SSD_BYTES: u64 = 480_103_981_056;

fn disk(name: &str, serial: &str) -> BlockDevice {
    BlockDevice {
        name: name.into(),
        size: SSD_BYTES,
        model: Some("Samsung SSD 860".into()),
        vendor: Some("ATA".into()),
        serial: Some(serial.into()),
        wwn: Some(format!("0x5000c500{serial}")),
        wwn_with_extension: Some(format!("0x5000c500{serial}ext")),
        wwn_vendor_extension: Some("0xext".into()),
        rotational: false,
        hctl: Some("1:0:0:0".into()),
        by_path: Some("/dev/disk/by-path/pci-0000:00:1f.2-ata-1".into()),
        tran: Some("sata".into()),
        logical_sectors: Some(512),
        physical_sectors: Some(4096),
    }
}

fn map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("test input must be an object, got {other}"),
    }
}

fn parse(value: Value) -> Result<RootDeviceHints, OrderError> {
    RootDeviceHints::parse(&HintsInput::Map(map(value)), FIELD)
}

fn hints(value: Value) -> RootDeviceHints {
    match parse(value.clone()) {
        Ok(h) => h,
        Err(e) => panic!("{value} should parse: {e}"),
    }
}

fn matches(value: Value, dev: &BlockDevice) -> bool {
    hints(value).matches(dev)
}

fn parse_error(value: Value) -> String {
    match parse(value.clone()) {
        Ok(h) => panic!("{value} should be refused, parsed as {h:?}"),
        Err(e) => {
            assert_eq!(e.field, FIELD);
            e.to_string()
        }
    }
}

#[test]
fn every_string_hint_name_matches_its_attribute() {
    let dev = disk("/dev/sda", "S1");
    for (name, value) in [
        ("model", "Samsung SSD 860"),
        ("vendor", "ATA"),
        ("serial", "S1"),
        ("wwn", "0x5000c500S1"),
        ("wwn_with_extension", "0x5000c500S1ext"),
        ("wwn_vendor_extension", "0xext"),
        ("name", "/dev/sda"),
        ("hctl", "1:0:0:0"),
        ("by_path", "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"),
        ("tran", "sata"),
    ] {
        assert!(matches(json!({ name: value }), &dev), "{name}={value}");
        assert!(!matches(json!({ name: "other" }), &dev), "{name}=other");
    }
}

#[test]
fn name_is_compared_as_listed_without_dev_prefix() {
    let dev = disk("/dev/sda", "S1");
    assert!(matches(json!({"name": "/dev/sda"}), &dev));
    assert!(!matches(json!({"name": "sda"}), &dev));
}

#[test]
fn strings_are_compared_lower_cased_on_both_sides() {
    let dev = disk("/dev/sda", "AbC123");
    assert!(matches(json!({"serial": "abc123"}), &dev));
    assert!(matches(json!({"serial": "ABC123"}), &dev));
    assert!(
        matches(json!({"serial": "S== aBc123"}), &dev),
        "operators are lower-cased too"
    );
    assert!(matches(json!({"model": "SAMSUNG ssd 860"}), &dev));
}

#[test]
fn values_with_spaces_are_quoted_on_both_sides() {
    let dev = disk("/dev/sda", "S1");
    assert!(matches(json!({"model": "s== Samsung SSD 860"}), &dev));
    assert!(matches(json!({"model": "<in> ssd 8"}), &dev));
    assert!(matches(
        json!({"model": "<or> foo bar <or> samsung ssd 860"}),
        &dev
    ));
    assert!(
        !matches(json!({"model": "Samsung  SSD 860"}), &dev),
        "two spaces are not one"
    );
    // Quoting decides ordering: ' ' is %20, which sorts before letters.
    assert!(matches(json!({"model": "s< samsunga"}), &dev));
}

#[test]
fn size_is_gib_compared_as_a_float() {
    let dev = disk("/dev/sda", "S1");
    assert!(
        !matches(json!({"size": 447}), &dev),
        "447.13 GiB is not == 447"
    );
    assert!(!matches(json!({"size": "447"}), &dev));
    assert!(matches(json!({"size": ">= 400"}), &dev));
    assert!(
        matches(json!({"size": "= 400"}), &dev),
        "= means >= in oslo"
    );
    assert!(!matches(json!({"size": "= 448"}), &dev));
    assert!(matches(json!({"size": "> 447"}), &dev));
    assert!(matches(json!({"size": "< 448"}), &dev));
    assert!(!matches(json!({"size": "<= 447"}), &dev));
    assert!(matches(json!({"size": "!= 447"}), &dev));
    assert!(matches(json!({"size": " >= 400 "}), &dev));
    let exact = BlockDevice {
        size: 447 << 30,
        ..dev.clone()
    };
    assert!(matches(json!({"size": 447}), &exact));
    assert!(matches(json!({"size": "== 447"}), &exact));
    assert!(matches(json!({"size": "<= 447"}), &exact));
}

#[test]
fn size_with_string_operators_keeps_python_meaning() {
    let dev = disk("/dev/sda", "S1");
    // A float never equals a str: s== never matches, s!= always does, <or> never does.
    assert!(!matches(json!({"size": "s== 447"}), &dev));
    assert!(matches(json!({"size": "s!= 447"}), &dev));
    assert!(!matches(json!({"size": "<or> 447 <or> 480"}), &dev));
    // Ordering a float against a str, or <in> on a float, raises in IPA.
    let h = hints(json!({"size": "<in> 4"}));
    assert!(try_find_devices_by_hints(std::slice::from_ref(&dev), &h).is_err());
    assert!(!h.matches(&dev));
    let h = hints(json!({"size": "s< 4"}));
    assert!(try_find_devices_by_hints(&[dev], &h).is_err());
}

#[test]
fn rotational_uses_strict_booleans() {
    let ssd = disk("/dev/sda", "S1");
    let hdd = BlockDevice {
        rotational: true,
        ..disk("/dev/sdb", "S2")
    };
    for yes in [
        json!(true),
        json!("yes"),
        json!("1"),
        json!("on"),
        json!("T"),
        json!(1),
    ] {
        assert!(matches(json!({ "rotational": yes }), &hdd), "{yes}");
        assert!(!matches(json!({ "rotational": yes }), &ssd), "{yes}");
    }
    for no in [
        json!(false),
        json!("no"),
        json!("0"),
        json!("off"),
        json!("F"),
        json!(0),
    ] {
        assert!(matches(json!({ "rotational": no }), &ssd), "{no}");
        assert!(!matches(json!({ "rotational": no }), &hdd), "{no}");
    }
    let err = parse_error(json!({"rotational": "maybe"}));
    assert!(err.contains("not a Boolean"), "{err}");
    parse_error(json!({"rotational": 2}));
    parse_error(json!({"rotational": null}));
}

#[test]
fn every_operator_on_strings() {
    let dev = disk("/dev/sda", "M");
    let cases = [
        ("s== m", true),
        ("s== n", false),
        ("s!= n", true),
        ("s!= m", false),
        ("s< n", true),
        ("s< m", false),
        ("s<= m", true),
        ("s<= l", false),
        ("s> l", true),
        ("s> m", false),
        ("s>= m", true),
        ("s>= n", false),
        ("<in> m", true),
        ("<in> x", false),
        ("<or> a <or> m", true),
        ("<or> a <or> b", false),
    ];
    for (expression, want) in cases {
        assert_eq!(
            matches(json!({ "serial": expression }), &dev),
            want,
            "{expression}"
        );
    }
}

#[test]
fn every_numeric_operator_on_strings() {
    let dev = BlockDevice {
        hctl: Some("10".into()),
        ..disk("/dev/sda", "S1")
    };
    let cases = [
        ("== 10", true),
        ("== 10.0", true),
        ("== 9", false),
        ("!= 9", true),
        ("!= 10", false),
        (">= 10", true),
        (">= 11", false),
        ("> 9", true),
        ("> 10", false),
        ("<= 10", true),
        ("<= 9", false),
        ("< 11", true),
        ("< 10", false),
        ("= 9", true),
        ("= 11", false),
    ];
    for (expression, want) in cases {
        assert_eq!(
            matches(json!({ "hctl": expression }), &dev),
            want,
            "{expression}"
        );
    }
    // A non-numeric attribute makes IPA raise rather than skip the disk.
    let h = hints(json!({"model": ">= 5"}));
    let err = try_find_devices_by_hints(std::slice::from_ref(&dev), &h).err();
    assert!(err.is_some_and(|e| e.device == "/dev/sda" && e.hint == "model"));
}

#[test]
fn all_in_and_range_in_never_evaluate() {
    let dev = disk("/dev/sda", "S1");
    for expression in ["<all-in> s1", "<range-in> [ 1 2 ]"] {
        let h = hints(json!({ "serial": expression }));
        assert!(try_find_devices_by_hints(std::slice::from_ref(&dev), &h).is_err());
    }
    // On size, <range-in> fails validation (brackets are not integers), <all-in> passes it.
    parse_error(json!({"size": "<range-in> [ 100 500 ]"}));
    let h = hints(json!({"size": "<all-in> 100"}));
    assert!(try_find_devices_by_hints(std::slice::from_ref(&dev), &h).is_err());
}

#[test]
fn missing_or_empty_attributes_never_match() {
    let dev = BlockDevice {
        serial: None,
        model: Some(String::new()),
        vendor: Some("   ".into()),
        ..disk("/dev/sda", "S1")
    };
    for h in [
        json!({"serial": "s!= abc"}),
        json!({"serial": "<in> on"}),
        json!({"serial": "none"}),
        json!({"model": "s!= abc"}),
        json!({"vendor": "s!= abc"}),
    ] {
        let parsed = hints(h.clone());
        assert_eq!(
            try_find_devices_by_hints(std::slice::from_ref(&dev), &parsed),
            Ok(vec![]),
            "{h}"
        );
    }
}

#[test]
fn a_device_must_satisfy_all_hints() {
    let a = disk("/dev/sda", "S1");
    let b = BlockDevice {
        rotational: true,
        ..disk("/dev/sdb", "S2")
    };
    let devices = [a, b];
    let h = hints(json!({"model": "<in> samsung", "rotational": false, "size": ">= 400"}));
    let found: Vec<&str> = find_devices_by_hints(&devices, &h)
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(found, ["/dev/sda"]);
    let h = hints(json!({"model": "<in> samsung", "size": ">= 500"}));
    assert!(find_devices_by_hints(&devices, &h).is_empty());
}

#[test]
fn device_values_go_through_the_grammar_too() {
    // IPA normalises device values like hints: one that is only an operator raises.
    let dev = BlockDevice {
        model: Some("==".into()),
        ..disk("/dev/sda", "S1")
    };
    let h = hints(json!({"model": "abc"}));
    assert!(try_find_devices_by_hints(std::slice::from_ref(&dev), &h).is_err());
    // A hint that already failed on an earlier key is not evaluated further.
    let h = hints(json!({"hctl": "x", "model": "abc"}));
    assert_eq!(
        try_find_devices_by_hints(std::slice::from_ref(&dev), &h),
        Ok(vec![])
    );
}

#[test]
fn invalid_hints_are_order_errors() {
    let err = parse_error(json!({"serial": "A", "colour": "blue"}));
    assert!(err.contains("colour"), "{err}");
    for name in HintName::ALL {
        assert!(err.contains(name.as_str()), "{err} lists {}", name.as_str());
    }
    assert!(parse_error(json!({"serial": 12345})).contains("not a string"));
    assert!(parse_error(json!({"model": null})).contains("not a string"));
    assert!(parse_error(json!({"serial": "   "})).contains("empty"));
    assert!(parse_error(json!({"serial": "s=="})).contains("not a valid expression"));
    assert!(parse_error(json!({"serial": "s== <x"})).contains("not a valid expression"));
    assert!(parse_error(json!({"size": 0})).contains("positive"));
    assert!(parse_error(json!({"size": "-5"})).contains("positive"));
    assert!(parse_error(json!({"size": ">= 0"})).contains("positive"));
    assert!(parse_error(json!({"size": 447.0})).contains("not an integer"));
    assert!(parse_error(json!({"size": "big"})).contains("not an integer"));
    assert!(parse_error(json!({"size": "> 1 2"})).contains("not an integer"));
    assert!(parse_error(json!({"size": ""})).contains("empty"));
    assert!(parse_error(json!({})).contains("empty"));
    let err = parse_error(json!({"serial": "a\nb", "size": "x"}));
    assert!(!err.contains('\n'));
}

#[test]
fn simplified_form_is_string_equality_on_serial_or_wwn() {
    let dev = disk("/dev/sda", "ABC123");
    let h = RootDeviceHints::parse(&HintsInput::Simplified("serial=abc123".into()), FIELD);
    assert!(h.as_ref().is_ok_and(|h| !h.is_raid1() && h.matches(&dev)));
    let h = RootDeviceHints::parse(
        &HintsInput::Simplified(" WWN = 0x5000c500ABC123".into()),
        FIELD,
    );
    assert!(h.is_ok_and(|h| h.matches(&dev)));
    let err = RootDeviceHints::parse(&HintsInput::Simplified("model=x".into()), FIELD).err();
    assert!(err.is_some_and(|e| e.field == FIELD && e.problem.contains("serial=VALUE")));
}

#[test]
fn two_serials_or_wwns_are_a_raid1_pair() {
    for input in [
        HintsInput::Simplified("serial=S1 S2".into()),
        HintsInput::Simplified("wwn=0x5000c500S1 0x5000c500S2".into()),
        HintsInput::Map(map(json!({"serial": "S1 S2"}))),
        HintsInput::Map(map(json!({"serial": "s== S1 S2", "size": ">= 400"}))),
    ] {
        let h = match RootDeviceHints::parse(&input, FIELD) {
            Ok(h) => h,
            Err(e) => panic!("{input:?}: {e}"),
        };
        assert!(h.is_raid1(), "{input:?}");
        let [primary, secondary] = h.slots() else {
            panic!("{input:?} should have two slots");
        };
        assert!(primary.try_matches(&disk("/dev/sda", "S1")) == Ok(true));
        assert!(primary.try_matches(&disk("/dev/sdb", "S2")) == Ok(false));
        assert!(secondary.try_matches(&disk("/dev/sdb", "S2")) == Ok(true));
    }
    // Any other operator keeps IPA's meaning: one value containing a space.
    let h = hints(json!({"serial": "<in> S1 S2"}));
    assert!(!h.is_raid1());
    let spaced = BlockDevice {
        serial: Some("xx s1 s2 yy".into()),
        ..disk("/dev/sda", "S1")
    };
    assert!(h.matches(&spaced));
}

fn sourced(input: HintsInput) -> Sourced<HintsInput> {
    Sourced::new(input, Source::MetaData, "meta_data.root_device_hints")
}

fn select(
    input: Option<HintsInput>,
    devices: &[BlockDevice],
) -> Result<TargetSelection, OrderError> {
    let sourced = input.map(sourced);
    select_targets(sourced.as_ref(), devices)
}

fn names(selection: &TargetSelection) -> Vec<&str> {
    selection.disks.iter().map(|d| d.name.as_str()).collect()
}

fn select_error(input: Option<HintsInput>, devices: &[BlockDevice]) -> OrderError {
    match select(input.clone(), devices) {
        Ok(s) => panic!("{input:?} should fail, chose {:?}", names(&s)),
        Err(e) => {
            assert!(!e.to_string().contains('\n'));
            e
        }
    }
}

fn three_disks() -> Vec<BlockDevice> {
    vec![
        disk("/dev/sda", "S1"),
        disk("/dev/sdb", "S2"),
        disk("/dev/nvme0n1", "S3"),
    ]
}

#[test]
fn select_one_disk_by_hint() {
    let devices = three_disks();
    let s = select(Some(HintsInput::Simplified("serial=S2".into())), &devices);
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names(&s), ["/dev/sdb"]);
    assert!(!s.raid);
    assert!(s.hints.is_some());
}

#[test]
fn select_raid1_pair_primary_first() {
    let devices = three_disks();
    let s = select(
        Some(HintsInput::Simplified("serial=S3 S1".into())),
        &devices,
    );
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names(&s), ["/dev/nvme0n1", "/dev/sda"]);
    assert!(s.raid);
}

#[test]
fn select_refuses_a_pair_on_one_disk() {
    let devices = three_disks();
    let e = select_error(
        Some(HintsInput::Map(map(json!({"serial": "S1 s1"})))),
        &devices,
    );
    assert_eq!(e.field, "meta_data.root_device_hints");
    assert!(e.problem.contains("two different disks"), "{e}");
}

#[test]
fn select_reports_no_match_with_candidates() {
    let devices = three_disks();
    let e = select_error(Some(HintsInput::Simplified("serial=S9".into())), &devices);
    assert_eq!(e.field, "meta_data.root_device_hints");
    assert!(e.problem.contains("no disk matches"), "{e}");
    assert!(e.problem.contains("s9"), "names the hint: {e}");
    for candidate in [
        "/dev/sda",
        "/dev/sdb",
        "/dev/nvme0n1",
        "\"S3\"",
        "447.1 GiB",
        "0x5000c500S1",
        "Samsung SSD 860",
    ] {
        assert!(e.problem.contains(candidate), "{e} lists {candidate}");
    }
    let e = select_error(
        Some(HintsInput::Simplified("serial=S1 S9".into())),
        &devices,
    );
    assert!(e.problem.contains("RAID1 secondary"), "{e}");
}

#[test]
fn select_reports_several_matches() {
    let devices = three_disks();
    let e = select_error(
        Some(HintsInput::Map(map(json!({"size": ">= 400"})))),
        &devices,
    );
    assert!(e.problem.contains("3 disks match"), "{e}");
    let e = select_error(
        Some(HintsInput::Map(map(json!({"name": "<in> /dev/sd"})))),
        &devices,
    );
    assert!(e.problem.contains("2 disks match"), "{e}");
    assert!(e.problem.contains("/dev/sda") && e.problem.contains("/dev/sdb"));
    assert!(
        !e.problem.contains("nvme0n1"),
        "lists only the matches: {e}"
    );
}

#[test]
fn select_reports_incomparable_hints() {
    let devices = three_disks();
    let e = select_error(
        Some(HintsInput::Map(map(json!({"model": ">= 5"})))),
        &devices,
    );
    assert_eq!(
        e.to_string(),
        "invalid order meta_data.root_device_hints: hint model >= 5 cannot be evaluated on \
         /dev/sda: its model is \"Samsung SSD 860\": \"samsung%20ssd%20860\" is not a number"
    );
}

#[test]
fn select_without_hints_takes_the_only_disk() {
    let devices = vec![disk("/dev/vda", "S1")];
    for input in [None, Some(HintsInput::Map(Map::new()))] {
        let s = select(input, &devices).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(&s), ["/dev/vda"]);
        assert!(!s.raid && s.hints.is_none());
    }
}

#[test]
fn select_without_hints_refuses_to_guess() {
    let e = select_error(None, &three_disks());
    assert!(e.problem.contains("3 disks are eligible"), "{e}");
    assert!(
        e.problem.contains("/dev/nvme0n1") && e.problem.contains("\"S2\""),
        "{e}"
    );
    let e = select_error(None, &[]);
    assert!(e.problem.contains("no eligible disk"), "{e}");
}

#[test]
fn parsed_hints_serialise_as_ipa_dictionaries() {
    let h = hints(json!({"serial": "A B", "size": 447, "rotational": "no"}));
    let shown = serde_json::to_value(&h).unwrap_or_default();
    assert_eq!(
        shown,
        json!({"slots": [
            {"rotational": false, "serial": "s== a", "size": "== 447"},
            {"rotational": false, "serial": "s== b", "size": "== 447"},
        ]})
    );
}
