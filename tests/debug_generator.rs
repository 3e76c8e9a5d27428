//! The ramdisk's debug generator (a shell script that runs before the installer) reads
//! `ocimetal.debug` exactly as the installer does: the same words turn it on and off.

use ocimetal::host::cmdline::{flag, Key};
use std::path::Path;
use std::process::Command;

/// Whether the generator writes the autologin drop-ins for this command line.
fn generator_says_debug(cmdline: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cmdline");
    std::fs::write(&file, format!("{cmdline}\n")).unwrap();
    let out = dir.path().join("out");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd/system-generators/ocimetal-debug-generator");
    let status = Command::new("sh")
        .arg(script)
        .arg(&out)
        .env("OCIMETAL_CMDLINE", &file)
        .status()
        .unwrap();
    assert!(status.success(), "{cmdline}");
    out.join("serial-getty@.service.d").exists()
}

#[test]
fn the_generator_and_the_installer_agree_on_every_flag_word() {
    let mut cases = vec![
        "quiet".to_string(),
        "ocimetal.debug".to_string(),
        "ocimetal.debug=maybe".to_string(),
        "ocimetal.debug=on ocimetal.debug=off".to_string(),
        "ocimetal.debug=off ocimetal.debug=maybe ocimetal.debug=On".to_string(),
    ];
    for word in ["1", "true", "yes", "on", "0", "false", "no", "off"] {
        cases.push(format!("ocimetal.debug={word}"));
        cases.push(format!("ocimetal.debug={}", word.to_uppercase()));
        cases.push(format!("ocimetal.debug ocimetal.debug={word}"));
    }
    for cmdline in cases {
        assert_eq!(
            generator_says_debug(&cmdline),
            flag(&cmdline, Key::Debug),
            "{cmdline}"
        );
    }
}
