//! The same layers unpacked by `umoci raw unpack` and by us give the same tree, times of
//! directories included.

use std::fs;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::support::{snapshot, Fixture, Layer, Meta, Node, MTIME};

const CAP_NET_RAW: &[u8] = &[
    0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// Writes `blob` under `layout/blobs/sha256` and returns its descriptor fields.
fn put_blob(layout: &Path, blob: &[u8]) -> (String, usize) {
    let hex = hex::encode(Sha256::digest(blob));
    fs::write(layout.join("blobs/sha256").join(&hex), blob).unwrap();
    (format!("sha256:{hex}"), blob.len())
}

/// An OCI image layout with one manifest, tagged `test`, holding `layers` uncompressed.
fn write_layout(layout: &Path, layers: &[Vec<u8>]) {
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let descriptors: Vec<(String, usize)> = layers.iter().map(|l| put_blob(layout, l)).collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {
            "type": "layers",
            "diff_ids": descriptors.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>(),
        },
    });
    let (config_digest, config_size) = put_blob(layout, config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": descriptors.iter().map(|(digest, size)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest,
            "size": size,
        })).collect::<Vec<_>>(),
    });
    let (manifest_digest, manifest_size) = put_blob(layout, manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": { "org.opencontainers.image.ref.name": "test" },
        }],
    });
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
}

/// A small image touching every feature both implementations define the same way.
fn image() -> Vec<Vec<u8>> {
    let big: Vec<u8> = (0..2_500_000u32).map(|i| (i % 253) as u8).collect();
    let base = Layer::new()
        .dir("usr")
        .dir("usr/bin")
        .dir("usr/lib")
        .dir("usr/sbin")
        .symlink("bin", "usr/bin")
        .symlink("lib", "usr/lib")
        .symlink("sbin", "/usr/sbin")
        .dir("etc")
        .file("etc/hostname", b"base\n")
        .file_with(
            "etc/shadow",
            b"root:*:1::::::\n",
            Meta::mode(0o640).owner(0, 42),
        )
        .dir_with("tmp", Meta::mode(0o1777))
        .file_with("usr/bin/su", b"su", Meta::mode(0o4755))
        .file_with(
            "usr/bin/ping",
            b"ping",
            Meta::mode(0o755).xattr("security.capability", CAP_NET_RAW),
        )
        .file_with("usr/bin/gzip", b"gzip", Meta::mode(0o755))
        .hardlink("usr/bin/gunzip", "usr/bin/gzip")
        .file_with("usr/lib/big.so", &big, Meta::mode(0o644))
        .dir("dev")
        .device(EntryType::Char, "dev/null", 1, 3, Meta::mode(0o666))
        .device(
            EntryType::Block,
            "dev/loop0",
            7,
            0,
            Meta::mode(0o660).owner(0, 6),
        )
        .member(
            EntryType::Fifo,
            b"dev/initctl",
            None,
            b"",
            Meta::mode(0o600),
        )
        .dir_with("home", Meta::mode(0o755))
        .dir_with("home/user", Meta::mode(0o750).owner(1000, 1000))
        .file_with(
            "home/user/.bashrc",
            b"alias ll='ls -l'\n",
            Meta::mode(0o644).owner(1000, 1000),
        )
        .dir("opt")
        .dir("opt/app")
        .file("opt/app/a", b"a")
        .dir("opt/app/sub")
        .file("opt/app/sub/b", b"b")
        .dir("var")
        .dir("var/cache")
        .file("var/cache/old", b"old")
        .file("replace-me", b"file")
        .build();
    let second = Layer::new()
        .file("etc/.wh.hostname", b"")
        .dir("opt/app")
        .file("opt/app/.wh..wh..opq", b"")
        .file("opt/app/c", b"c")
        .file("var/.wh.cache", b"")
        .dir_with("replace-me", Meta::mode(0o700))
        .file("replace-me/inside", b"in")
        .file_with("bin/added", b"added", Meta::mode(0o755).owner(2, 3))
        .hardlink("sbin/gz", "usr/bin/gzip")
        .symlink("etc/alternatives", "/usr/share/alternatives")
        .file_with("etc/précis", "ünïcödé".as_bytes(), Meta::mode(0o600))
        .file_with(
            &format!("usr/lib/{}", "long".repeat(40)),
            b"long",
            Meta::mode(0o644),
        )
        .dir_with(
            "home/user",
            Meta::mode(0o700).owner(1000, 1000).mtime(MTIME + 60),
        )
        .file_with(
            "home/user/notes",
            b"n",
            Meta::mode(0o640)
                .owner(1000, 1000)
                .xattr("user.mime_type", b"text/plain")
                .pax("mtime", b"1600000000.25"),
        )
        .symlink_with(
            "home/user/link",
            "notes",
            Meta::mode(0o777).owner(1000, 1000),
        )
        .build();
    let third = Layer::new().file("replace-me", b"file again").build();
    vec![base, second, third]
}

#[test]
fn matches_umoci_raw_unpack() {
    if Command::new("umoci").arg("--version").output().is_err() {
        eprintln!("skipped: umoci is not installed");
        return;
    }
    let layers = image();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    write_layout(&layout, &layers);
    let theirs = work.path().join("umoci-rootfs");
    let out = Command::new("umoci")
        .args(["raw", "unpack", "--image"])
        .arg(format!("{}:test", layout.display()))
        .arg(&theirs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let fx = Fixture::new();
    fx.apply(&layers).unwrap();
    let ours = fx.tree();
    let theirs = snapshot(&theirs);

    let ours_paths: Vec<&String> = ours.keys().collect();
    let theirs_paths: Vec<&String> = theirs.keys().collect();
    assert_eq!(ours_paths, theirs_paths, "different paths");
    let differing: Vec<String> = ours
        .iter()
        .filter(|(path, node)| theirs[*path] != **node)
        .map(|(path, node)| format!("{path}:\n  ours   {node:?}\n  umoci  {:?}", theirs[path]))
        .collect();
    assert!(
        differing.is_empty(),
        "differs from umoci:\n{}",
        differing.join("\n")
    );

    // The comparison is only worth something if the tree has what the image promises.
    assert_eq!(ours["usr/bin/su"], Node::file(b"su", 0o4755));
    assert_eq!(
        ours["usr/bin/added"],
        Node::file(b"added", 0o755).owner(2, 3)
    );
    assert_eq!(ours["usr/sbin/gz"].nlink, 3);
    assert!(!ours.contains_key("etc/hostname") && !ours.contains_key("var/cache"));
    assert!(!ours.contains_key("opt/app/a") && ours.contains_key("opt/app/c"));
    assert_eq!(ours["replace-me"].mtime, Some((MTIME, 0)));
}
