//! `ocimetal pull` as a command: exit status and one-line errors.

#[path = "support/registry.rs"]
mod registry;

use registry::TestRegistry;
use std::process::Command;

fn ocimetal_pull(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ocimetal"))
        .arg("pull")
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn invalid_orders_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("root");
    let dest = dest.to_str().unwrap();
    for args in [
        vec!["Bad Reference", dest],
        vec!["--platform", "amd64", "debian", dest],
        vec!["--registry-mirror", "nonsense", "debian", dest],
        vec!["--ca-file", "/nonexistent/ca.pem", "debian", dest],
        vec!["--auth-file", "/nonexistent/config.json", "debian", dest],
    ] {
        let (code, stderr) = ocimetal_pull(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("ocimetal: invalid order"), "{stderr}");
    }
    assert!(
        !dir.path().join("root").exists(),
        "nothing is created before validation"
    );
}

#[test]
fn unknown_image_exits_1_with_one_line_and_creates_nothing() {
    let registry = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("root");
    let image = format!("{}/nope/nothing:1", registry.host());
    let host = registry.host();
    let (code, stderr) =
        ocimetal_pull(&["--insecure-registry", &host, &image, dest.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr,
        format!("ocimetal: image {image} not found on {host}")
    );
    assert!(!dest.exists());
}
