//! Whiteouts and opaque directories, across layers and within one layer in any order.

use crate::support::{Fixture, Layer, Meta, Node};

/// A lower layer with a file, a directory tree and a sibling to leave alone.
fn lower() -> Vec<u8> {
    Layer::new()
        .dir("etc")
        .file("etc/motd", b"motd")
        .file("etc/keep", b"keep")
        .dir("opt")
        .dir("opt/app")
        .dir("opt/app/lib")
        .file("opt/app/lib/a.so", b"a")
        .file("opt/app/run", b"run")
        .symlink("opt/app/current", "lib")
        .build()
}

#[test]
fn whiteouts_remove_files_and_whole_trees_of_lower_layers() {
    let l2 = Layer::new()
        .whiteout("etc/motd")
        .whiteout("opt/app")
        .whiteout("etc/never-existed")
        .build();
    let fx = Fixture::new();
    let stats = fx.apply(&[lower(), l2]).unwrap();
    assert_eq!(stats[1].whiteouts, 3);
    assert_eq!(stats[1].removed, 1 + 5);
    assert_eq!(stats[1].entries, 0);
    fx.assert_tree(&[
        ("etc", Node::dir(0o755)),
        ("etc/keep", Node::file(b"keep", 0o644)),
        ("opt", Node::dir(0o755)),
    ]);
}

#[test]
fn an_opaque_directory_hides_everything_below_it_from_lower_layers() {
    let l2 = Layer::new()
        .dir_with("opt/app", Meta::mode(0o750))
        .opaque("opt/app")
        .file("opt/app/fresh", b"fresh")
        .build();
    let fx = Fixture::new();
    let stats = fx.apply(&[lower(), l2]).unwrap();
    assert_eq!(stats[1].whiteouts, 1);
    fx.assert_tree(&[
        ("etc", Node::dir(0o755)),
        ("etc/motd", Node::file(b"motd", 0o644)),
        ("etc/keep", Node::file(b"keep", 0o644)),
        ("opt", Node::dir(0o755)),
        ("opt/app", Node::dir(0o750)),
        ("opt/app/fresh", Node::file(b"fresh", 0o644)),
    ]);
}

#[test]
fn whiteouts_after_members_of_the_same_layer_spare_them() {
    // Entries first, whiteouts last: only lower-layer content may go.
    let l2 = Layer::new()
        .file("etc/motd", b"new motd")
        .file("opt/app/lib/b.so", b"b")
        .whiteout("etc/motd")
        .whiteout("opt/app")
        .build();
    let fx = Fixture::new();
    fx.apply(&[lower(), l2]).unwrap();
    fx.assert_tree(&[
        ("etc", Node::dir(0o755)),
        ("etc/keep", Node::file(b"keep", 0o644)),
        ("etc/motd", Node::file(b"new motd", 0o644)),
        // `opt/app` and `opt/app/lib` stay as parents of this layer's file; what the lower
        // layer had in them is gone.
        ("opt", Node::dir(0o755)),
        ("opt/app", Node::dir(0o755)),
        ("opt/app/lib", Node::dir(0o755)),
        ("opt/app/lib/b.so", Node::file(b"b", 0o644)),
    ]);
}

#[test]
fn whiteouts_before_members_of_the_same_layer_give_the_same_tree() {
    let l2 = Layer::new()
        .whiteout("etc/motd")
        .whiteout("opt/app")
        .file("etc/motd", b"new motd")
        .file("opt/app/lib/b.so", b"b")
        .build();
    let fx = Fixture::new();
    fx.apply(&[lower(), l2]).unwrap();
    fx.assert_tree(&[
        ("etc", Node::dir(0o755)),
        ("etc/keep", Node::file(b"keep", 0o644)),
        ("etc/motd", Node::file(b"new motd", 0o644)),
        ("opt", Node::dir(0o755)),
        ("opt/app", Node::dir(0o755).any_mtime()),
        ("opt/app/lib", Node::dir(0o755).any_mtime()),
        ("opt/app/lib/b.so", Node::file(b"b", 0o644)),
    ]);
}

#[test]
fn an_opaque_marker_after_the_children_keeps_them_and_removes_the_lower_ones() {
    let l2 = Layer::new()
        .dir("opt/app")
        .file("opt/app/run", b"new run")
        .dir("opt/app/lib")
        .file("opt/app/lib/c.so", b"c")
        .opaque("opt/app")
        .build();
    let fx = Fixture::new();
    let stats = fx.apply(&[lower(), l2]).unwrap();
    // a.so and the `current` symlink (the old `run` was already replaced).
    assert_eq!(stats[1].removed, 1 + 2);
    fx.assert_tree(&[
        ("etc", Node::dir(0o755)),
        ("etc/motd", Node::file(b"motd", 0o644)),
        ("etc/keep", Node::file(b"keep", 0o644)),
        ("opt", Node::dir(0o755)),
        ("opt/app", Node::dir(0o755)),
        ("opt/app/run", Node::file(b"new run", 0o644)),
        ("opt/app/lib", Node::dir(0o755)),
        ("opt/app/lib/c.so", Node::file(b"c", 0o644)),
    ]);
}

#[test]
fn an_opaque_root_clears_every_lower_layer() {
    let l2 = Layer::new().file("new", b"n").opaque("").build();
    let fx = Fixture::new();
    fx.apply(&[lower(), l2]).unwrap();
    fx.assert_tree(&[("new", Node::file(b"n", 0o644))]);
    fx.assert_outer_unchanged();
}

#[test]
fn a_whiteout_hides_a_lower_entry_that_a_later_layer_recreates() {
    let l2 = Layer::new().whiteout("etc").build();
    let l3 = Layer::new().file("etc/motd", b"again").build();
    let fx = Fixture::new();
    fx.apply(&[lower(), l2, l3]).unwrap();
    fx.assert_tree(&[
        ("etc", Node::dir(0o755).any_mtime()),
        ("etc/motd", Node::file(b"again", 0o644)),
        ("opt", Node::dir(0o755)),
        ("opt/app", Node::dir(0o755)),
        ("opt/app/lib", Node::dir(0o755)),
        ("opt/app/lib/a.so", Node::file(b"a", 0o644)),
        ("opt/app/run", Node::file(b"run", 0o644)),
        ("opt/app/current", Node::symlink("lib")),
    ]);
}

#[test]
fn a_whiteout_in_a_missing_directory_is_a_no_op() {
    let l2 = Layer::new()
        .whiteout("nowhere/x")
        .opaque("also/nowhere")
        .build();
    let fx = Fixture::new();
    let stats = fx.apply(&[lower(), l2]).unwrap();
    assert_eq!(stats[1].whiteouts, 2);
    assert_eq!(stats[1].removed, 0);
    assert!(!fx.path("nowhere").exists() && !fx.path("also").exists());
}

#[test]
fn whiteouts_see_through_symlinked_parents_like_members_do() {
    let base = Layer::new()
        .dir("usr/bin")
        .symlink("bin", "usr/bin")
        .file("usr/bin/a", b"a")
        .file("usr/bin/b", b"b")
        .build();
    // The opaque marker names `bin`, which resolves to `usr/bin`; the file this layer writes
    // through `bin/` is recognised as its own.
    let l2 = Layer::new().file("bin/c", b"c").opaque("bin").build();
    let fx = Fixture::new();
    fx.apply(&[base, l2]).unwrap();
    fx.assert_tree(&[
        ("bin", Node::symlink("usr/bin")),
        ("usr", Node::dir(0o755).any_mtime()),
        ("usr/bin", Node::dir(0o755)),
        ("usr/bin/c", Node::file(b"c", 0o644)),
    ]);
}

#[test]
fn aufs_metadata_is_ignored() {
    let l2 = Layer::new()
        .file(".wh..wh.plnk/123.456", b"")
        .file(".wh..wh.aufs", b"")
        .build();
    let fx = Fixture::new();
    let stats = fx.apply(&[lower(), l2]).unwrap();
    assert_eq!(stats[1].skipped, 2);
    assert_eq!(stats[1].entries, 0);
    assert!(!fx.path(".wh..wh.plnk").exists() && !fx.path(".wh..wh.aufs").exists());
    assert!(fx.path("etc/motd").exists());
}
