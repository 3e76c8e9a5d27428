//! Hostile layers: whatever they try, nothing outside the root changes.
//!
//! The root is `OUTER/root`; `OUTER` holds `sentinel`, `etc/passwd`, `victim/file` and a symlink.
//! Every test compares a full listing of `OUTER` (minus the root's contents) before and after.

use ocimetal::oci::apply::RefusedEntry;
use tar::EntryType;

use crate::support::{Fixture, Layer, Meta, Node};

/// Applies `layers`, then checks the outside is untouched; returns the result for more checks.
fn apply_hostile(fx: &Fixture, layers: &[Vec<u8>]) -> anyhow::Result<()> {
    let result = fx.apply(layers).map(drop);
    fx.assert_outer_unchanged();
    result
}

fn assert_refused(result: anyhow::Result<()>) {
    let err = result.expect_err("hostile layer accepted");
    assert!(
        err.downcast_ref::<RefusedEntry>().is_some(),
        "not a refusal: {err:#}"
    );
}

fn outer(fx: &Fixture) -> String {
    fx.outer.path().to_str().unwrap().to_owned()
}

#[test]
fn dot_dot_names_are_refused() {
    for name in [
        "../sentinel",
        "a/../../sentinel",
        "./..",
        "etc/../../../victim/file",
        "..",
    ] {
        let fx = Fixture::new();
        let layer = Layer::new()
            .member(
                EntryType::Regular,
                name.as_bytes(),
                None,
                b"pwned",
                Meta::mode(0o644),
            )
            .build();
        assert_refused(apply_hostile(&fx, &[layer]));
        fx.assert_tree(&[]);
    }
}

#[test]
fn dot_dot_in_long_names_is_refused() {
    let fx = Fixture::new();
    let name = format!("{}/../../../../sentinel", "x".repeat(150));
    let pax = Layer::new()
        .member(
            EntryType::Regular,
            name.as_bytes(),
            None,
            b"pwned",
            Meta::mode(0o644),
        )
        .build();
    assert_refused(apply_hostile(&fx, &[pax]));
    let mut gnu = Layer::new();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_size(5);
    header.set_mode(0o644);
    // The tar crate refuses to write `..` itself, so the GNU long name is written by hand.
    let mut long = tar::Header::new_gnu();
    long.set_entry_type(EntryType::GNULongName);
    long.set_size(name.len() as u64 + 1);
    long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    long.set_cksum();
    let mut data = name.as_bytes().to_vec();
    data.push(0);
    gnu = gnu.raw(&long, &data);
    header.as_old_mut().name[..5].copy_from_slice(b"short");
    header.set_cksum();
    let gnu = gnu.raw(&header, b"pwned").build();
    assert_refused(apply_hostile(&fx, &[gnu]));
}

#[test]
fn absolute_names_land_inside_the_root() {
    let fx = Fixture::new();
    let name = format!("{}/sentinel", outer(&fx));
    let layer = Layer::new()
        .member(
            EntryType::Regular,
            b"/escape-abs",
            None,
            b"abs",
            Meta::mode(0o644),
        )
        .member(
            EntryType::Regular,
            name.as_bytes(),
            None,
            b"pwned",
            Meta::mode(0o644),
        )
        .build();
    apply_hostile(&fx, &[layer]).unwrap();
    assert_eq!(std::fs::read(fx.path("escape-abs")).unwrap(), b"abs");
    let inside = fx.path(name.trim_start_matches('/'));
    assert_eq!(std::fs::read(inside).unwrap(), b"pwned");
}

#[test]
fn relative_symlinks_out_of_the_root_resolve_to_the_root() {
    let fx = Fixture::new();
    let layer = Layer::new()
        .symlink("up", "../../../../..")
        .file("up/sentinel", b"pwned")
        .dir("up/victim")
        .file("up/victim/file", b"pwned")
        .build();
    apply_hostile(&fx, &[layer]).unwrap();
    fx.assert_tree(&[
        ("up", Node::symlink("../../../../..")),
        ("sentinel", Node::file(b"pwned", 0o644)),
        ("victim", Node::dir(0o755)),
        ("victim/file", Node::file(b"pwned", 0o644)),
    ]);
}

#[test]
fn absolute_symlinks_resolve_inside_the_root() {
    let fx = Fixture::new();
    let layer = Layer::new()
        .symlink("slash", "/")
        .file("slash/etc/passwd", b"pwned")
        .symlink("host-outer", &outer(&fx))
        .build();
    // Through `host-outer` the path is OUTER *inside the root*, which does not exist there.
    let l2 = Layer::new().file("host-outer/sentinel", b"pwned").build();
    assert!(apply_hostile(&fx, &[layer, l2]).is_err());
    fx.assert_tree(&[
        ("slash", Node::symlink("/")),
        ("etc", Node::dir(0o755).any_mtime()),
        ("etc/passwd", Node::file(b"pwned", 0o644)),
        ("host-outer", Node::symlink(&outer(&fx))),
    ]);
}

#[test]
fn a_directory_swapped_for_a_symlink_in_the_same_layer_stays_confined() {
    let fx = Fixture::new();
    let layer = Layer::new()
        .dir("d")
        .file("d/a", b"a")
        .symlink("d", "../..")
        .file("d/sentinel", b"pwned")
        .whiteout("d/victim")
        .build();
    apply_hostile(&fx, &[layer]).unwrap();
    fx.assert_tree(&[
        ("d", Node::symlink("../..")),
        ("sentinel", Node::file(b"pwned", 0o644)),
    ]);
}

#[test]
fn a_directory_swapped_for_a_symlink_in_a_lower_layer_stays_confined() {
    let fx = Fixture::new();
    let l1 = Layer::new()
        .dir("victim")
        .file("victim/file", b"mine")
        .file("sentinel", b"mine")
        .build();
    let l2 = Layer::new()
        .symlink("lnk", "../../..")
        .symlink("abs", "/")
        .build();
    let l3 = Layer::new()
        .file("lnk/victim/file", b"pwned")
        .whiteout("abs/sentinel")
        .dir_with("lnk/victim", Meta::mode(0o700).owner(4242, 4242))
        .build();
    apply_hostile(&fx, &[l1, l2, l3]).unwrap();
    fx.assert_tree(&[
        ("victim", Node::dir(0o700).owner(4242, 4242)),
        ("victim/file", Node::file(b"pwned", 0o644)),
        ("lnk", Node::symlink("../../..")),
        ("abs", Node::symlink("/")),
    ]);
}

#[test]
fn the_final_component_is_never_followed() {
    let fx = Fixture::new();
    let sentinel = format!("{}/sentinel", outer(&fx));
    let l1 = Layer::new()
        .symlink("f", "../sentinel")
        .symlink("g", &sentinel)
        .symlink("d", "../victim")
        .symlink("h", "../sentinel")
        .symlink("x", "../sentinel")
        .build();
    // Each member replaces the symlink instead of writing through it.
    let l2 = Layer::new()
        .file_with("f", b"pwned", Meta::mode(0o777).owner(666, 666))
        .device(EntryType::Char, "g", 1, 3, Meta::mode(0o666))
        .dir_with("d", Meta::mode(0o777).owner(666, 666))
        .symlink_with(
            "h",
            "elsewhere",
            Meta::mode(0o777).xattr("trusted.pwned", b"1"),
        )
        .member(EntryType::Fifo, b"x", None, b"", Meta::mode(0o666))
        .build();
    apply_hostile(&fx, &[l1, l2]).unwrap();
    assert_eq!(
        crate::support::node_of(&fx.path("f")),
        Node::file(b"pwned", 0o777).owner(666, 666)
    );
    assert_eq!(
        crate::support::node_of(&fx.path("d")),
        Node::dir(0o777).owner(666, 666)
    );
    assert_eq!(
        crate::support::node_of(&fx.path("h")),
        Node::symlink("elsewhere").xattr("trusted.pwned", b"1")
    );
}

#[test]
fn hardlinks_cannot_reach_outside() {
    let fx = Fixture::new();
    let abs = format!("{}/sentinel", outer(&fx));
    assert_refused(apply_hostile(
        &fx,
        &[Layer::new().hardlink("h", "../sentinel").build()],
    ));
    // Resolved inside the root, these targets do not exist.
    assert!(apply_hostile(&fx, &[Layer::new().hardlink("h", &abs).build()]).is_err());
    assert!(apply_hostile(
        &fx,
        &[Layer::new()
            .symlink("up", "../..")
            .hardlink("h", "up/sentinel")
            .build()]
    )
    .is_err());
    assert!(apply_hostile(&fx, &[Layer::new().hardlink("h", "up").build()]).is_ok());
    // Through a symlink to the root, a hardlink reaches a file inside the root.
    let layer = Layer::new()
        .file("inside", b"in")
        .hardlink("h2", "up/inside")
        .build();
    apply_hostile(&fx, &[layer]).unwrap();
    assert_eq!(
        crate::support::inode(&fx.path("h2")),
        crate::support::inode(&fx.path("inside"))
    );
    // The outside sentinel still has one link.
    assert_eq!(
        crate::support::node_of(&fx.outer.path().join("sentinel")).nlink,
        1
    );
}

#[test]
fn hardlinks_to_the_root_or_a_directory_are_refused() {
    let fx = Fixture::new();
    assert_refused(apply_hostile(
        &fx,
        &[Layer::new().hardlink("h", "./").build()],
    ));
    let err =
        apply_hostile(&fx, &[Layer::new().dir("dir").hardlink("h", "dir").build()]).unwrap_err();
    assert!(format!("{err:#}").contains("is a directory"), "{err:#}");
}

#[test]
fn whiteouts_cannot_reach_outside() {
    let fx = Fixture::new();
    for name in [".wh..", ".wh...", "a/.wh.", ".wh..wh..opq/../.wh.sentinel"] {
        let layer = Layer::new()
            .member(
                EntryType::Regular,
                name.as_bytes(),
                None,
                b"",
                Meta::mode(0o644),
            )
            .build();
        assert_refused(apply_hostile(&fx, &[layer]));
    }
    let l1 = Layer::new()
        .file("sentinel", b"inside")
        .dir("victim")
        .file("victim/file", b"inside")
        .symlink("up", "../..")
        .symlink("abs", &outer(&fx))
        .build();
    let l2 = Layer::new()
        .whiteout("up/sentinel")
        .whiteout("abs/victim")
        .whiteout("up/link-to-sentinel")
        .opaque("abs")
        .build();
    apply_hostile(&fx, &[l1, l2]).unwrap();
    fx.assert_tree(&[
        ("up", Node::symlink("../..")),
        ("abs", Node::symlink(&outer(&fx))),
        ("victim", Node::dir(0o755)),
        ("victim/file", Node::file(b"inside", 0o644)),
    ]);
    // An opaque marker reached through a symlink to the root empties the root, nothing else.
    let l3 = Layer::new().opaque("up").build();
    apply_hostile(&fx, &[l3]).unwrap();
    fx.assert_tree(&[]);
}

#[test]
fn non_directories_cannot_name_the_root() {
    let fx = Fixture::new();
    // A regular member whose name ends in `/` is a directory (pre-POSIX convention), so the
    // regular-file cases use names without a trailing slash.
    for (kind, name) in [
        (EntryType::Regular, &b"."[..]),
        (EntryType::Regular, b"/."),
        (EntryType::Symlink, b"./"),
        (EntryType::Fifo, b"/"),
        (EntryType::Link, b"."),
    ] {
        let layer = Layer::new()
            .member(kind, name, Some(b"x"), b"", Meta::mode(0o644))
            .build();
        assert_refused(apply_hostile(&fx, &[layer]));
    }
    fx.assert_tree(&[]);
}

#[test]
fn symlink_loops_fail_without_escaping() {
    let fx = Fixture::new();
    let layer = Layer::new()
        .symlink("a", "b")
        .symlink("b", "a")
        .file("a/x", b"x")
        .build();
    assert!(apply_hostile(&fx, &[layer]).is_err());
}

/// A file system mounted for the duration of a test, unmounted even if the test fails.
struct Mounted(std::path::PathBuf);

impl Mounted {
    /// Mounts `fstype` at `at`; `None` (with a note) where mounting is not possible.
    fn new(fstype: &str, at: &std::path::Path) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", fstype, fstype])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount {fstype} here");
        }
        ok.then(|| Self(at.to_owned()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn magic_links_inside_the_root_are_not_followed() {
    // A layer cannot make /proc, but a root someone prepared might hold one: the resolution
    // neither follows magic links such as /proc/self/root nor enters the mount.
    let fx = Fixture::new();
    let Some(_proc) = Mounted::new("proc", &fx.path("proc")) else {
        return;
    };
    let layer = Layer::new()
        .file("proc/self/root/tmp/pwned-by-layer", b"pwned")
        .build();
    assert!(fx.apply(&[layer]).is_err());
    assert!(!std::path::Path::new("/tmp/pwned-by-layer").exists());
}

#[test]
fn mount_points_inside_the_root_are_never_entered() {
    let fx = Fixture::new();
    let mnt = fx.path("mnt");
    let Some(_tmpfs) = Mounted::new("tmpfs", &mnt) else {
        return;
    };
    std::fs::write(mnt.join("mounted-file"), b"keep").unwrap();
    std::fs::create_dir(mnt.join("mounted-dir")).unwrap();
    let listing = || {
        let mut all = crate::support::snapshot(&mnt);
        all.insert(".".into(), crate::support::node_of(&mnt));
        all
    };
    let before = listing();
    let attempts = [
        Layer::new().file("mnt/x", b"x").build(),
        Layer::new().file("mnt/mounted-file", b"pwned").build(),
        Layer::new()
            .dir_with("mnt", Meta::mode(0o700).owner(5, 5))
            .build(),
        Layer::new().whiteout("mnt/mounted-file").build(),
        Layer::new().opaque("mnt").build(),
        Layer::new().opaque("").build(),
        Layer::new().file("mnt", b"replace the mount point").build(),
        Layer::new()
            .symlink("m2", "/mnt")
            .file("m2/x", b"x")
            .build(),
        Layer::new().file("f", b"f").hardlink("mnt/h", "f").build(),
    ];
    for (i, layer) in attempts.into_iter().enumerate() {
        let err = fx
            .apply(&[layer])
            .expect_err("a layer went into a mount point");
        assert_eq!(
            listing(),
            before,
            "attempt {i} changed the mounted file system: {err:#}"
        );
    }
    fx.assert_outer_unchanged();
}

#[test]
fn nul_bytes_in_pax_names_and_targets_are_refused() {
    let fx = Fixture::new();
    let layer = Layer::new()
        .member(
            EntryType::Regular,
            b"x",
            None,
            b"",
            Meta::mode(0o644).pax("path", b"a\0/../../sentinel"),
        )
        .build();
    assert_refused(apply_hostile(&fx, &[layer]));
    let layer = Layer::new()
        .member(
            EntryType::Symlink,
            b"s",
            Some(b"t"),
            b"",
            Meta::mode(0o777).pax("linkpath", b"ok\0bad"),
        )
        .build();
    assert_refused(apply_hostile(&fx, &[layer]));
}

#[test]
fn members_that_cannot_be_written_faithfully_are_refused() {
    let fx = Fixture::new();
    let cases = [
        Layer::new().member(
            EntryType::Regular,
            b"sparse",
            None,
            b"",
            Meta::mode(0o644).pax("GNU.sparse.major", b"1"),
        ),
        Layer::new().member(
            EntryType::new(b'V'),
            b"volume-label",
            None,
            b"",
            Meta::mode(0o644),
        ),
        Layer::new().member(
            EntryType::new(b'D'),
            b"dumpdir",
            None,
            b"",
            Meta::mode(0o644),
        ),
        Layer::new().member(
            EntryType::Regular,
            b"big-uid",
            None,
            b"",
            Meta::mode(0o644).pax("uid", b"4294967296"),
        ),
        Layer::new().member(
            EntryType::Regular,
            b"minus-one",
            None,
            b"",
            Meta::mode(0o644).pax("gid", b"4294967295"),
        ),
        Layer::new().member(
            EntryType::Regular,
            b"x",
            None,
            b"",
            Meta::mode(0o644).xattr("user.a\0b", b"v"),
        ),
        Layer::new().member(
            EntryType::Symlink,
            b"no-target",
            Some(b""),
            b"",
            Meta::mode(0o777),
        ),
    ];
    for layer in cases {
        assert_refused(apply_hostile(&fx, &[layer.build()]));
    }
    fx.assert_tree(&[]);
}

/// Counts the bytes the applier reads.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

#[test]
fn oversized_extension_headers_are_refused_before_their_body_is_read() {
    use std::io::Read as _;
    for kind in [
        EntryType::XHeader,
        EntryType::XGlobalHeader,
        EntryType::GNULongName,
        EntryType::GNULongLink,
    ] {
        let fx = Fixture::new();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(1 << 30);
        header.as_old_mut().name[..12].copy_from_slice(b"PaxHeaders/x");
        header.set_cksum();
        // A short body: the stream ends long before the declared gibibyte.
        let mut short = Layer::new().raw(&header, &[b'7'; 64]).build();
        short.truncate(512 + 64);
        let mut applier = ocimetal::oci::apply::Applier::open(&fx.root).unwrap();
        let err = applier
            .apply_layer(&mut short.as_slice())
            .expect_err("oversized extension header accepted");
        let refused = err
            .downcast_ref::<RefusedEntry>()
            .unwrap_or_else(|| panic!("not a refusal: {err:#}"));
        assert_eq!(refused.member, "PaxHeaders/x");
        assert!(
            refused.reason.contains("1073741824 bytes") && refused.reason.contains("1024 KiB"),
            "{kind:?}: {err:#}"
        );
        // A body as long as declared: refused at its header, not read.
        let mut endless = Counted {
            inner: header.as_bytes().chain(std::io::repeat(b'7')),
            read: 0,
        };
        let err = applier.apply_layer(&mut endless).unwrap_err();
        assert!(err.downcast_ref::<RefusedEntry>().is_some(), "{err:#}");
        assert!(
            endless.read <= 2 << 20,
            "{kind:?}: read {} bytes",
            endless.read
        );
        fx.assert_outer_unchanged();
        fx.assert_tree(&[]);
    }
}

#[test]
fn extension_headers_up_to_the_cap_are_read() {
    let fx = Fixture::new();
    // A PAX header of nearly 1 MiB: one large extended attribute.
    let value = vec![b'v'; ocimetal::oci::apply::MAX_EXTENSION as usize - 100];
    let layer = Layer::new()
        .file_with(
            "big-xattr",
            b"x",
            Meta::mode(0o644).xattr("user.big", &value),
        )
        .build();
    let result = fx.apply(&[layer]);
    // Not every file system stores a value that large; either way it is not refused.
    if let Err(e) = result {
        assert!(e.downcast_ref::<RefusedEntry>().is_none(), "{e:#}");
    }
}
