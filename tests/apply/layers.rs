//! Several layers in sequence: type changes, merged `/usr`, links across layers.

use tar::EntryType;

use crate::support::{inode, Fixture, Layer, Meta, Node, What};

#[test]
fn file_becomes_dir_becomes_symlink_becomes_file() {
    let l1 = Layer::new().file("x", b"file").build();
    let l2 = Layer::new()
        .dir_with("x", Meta::mode(0o700))
        .file("x/inner", b"in")
        .build();
    let l3 = Layer::new().symlink("x", "target").build();
    let l4 = Layer::new()
        .file_with("x", b"file again", Meta::mode(0o600))
        .build();
    let fx = Fixture::new();

    fx.apply(std::slice::from_ref(&l1)).unwrap();
    fx.assert_tree(&[("x", Node::file(b"file", 0o644))]);

    let mut applier = ocimetal::oci::apply::Applier::open(&fx.root).unwrap();
    let stats = applier.apply_layer(&mut l2.as_slice()).unwrap();
    assert_eq!(stats.removed, 1);
    fx.assert_tree(&[
        ("x", Node::dir(0o700)),
        ("x/inner", Node::file(b"in", 0o644)),
    ]);

    let stats = applier.apply_layer(&mut l3.as_slice()).unwrap();
    assert_eq!(stats.removed, 2, "the directory and its file");
    fx.assert_tree(&[("x", Node::symlink("target"))]);

    applier.apply_layer(&mut l4.as_slice()).unwrap();
    fx.assert_tree(&[("x", Node::file(b"file again", 0o600))]);
}

#[test]
fn a_directory_over_a_directory_keeps_its_contents_and_takes_the_new_metadata() {
    let l1 = Layer::new()
        .dir_with("etc", Meta::mode(0o755))
        .file("etc/a", b"a")
        .dir("etc/sub")
        .file("etc/sub/b", b"b")
        .build();
    let l2 = Layer::new()
        .dir_with("etc", Meta::mode(0o750).owner(0, 4).mtime(42))
        .file("etc/c", b"c")
        .build();
    let fx = Fixture::new();
    let stats = fx.apply(&[l1, l2]).unwrap();
    assert_eq!(stats[1].removed, 0);
    fx.assert_tree(&[
        ("etc", Node::dir(0o750).owner(0, 4).mtime(42, 0)),
        ("etc/a", Node::file(b"a", 0o644)),
        ("etc/c", Node::file(b"c", 0o644)),
        ("etc/sub", Node::dir(0o755)),
        ("etc/sub/b", Node::file(b"b", 0o644)),
    ]);
}

#[test]
fn a_directory_replaces_a_symlink_to_a_directory_without_touching_the_target() {
    let l1 = Layer::new()
        .dir("real")
        .file("real/keep", b"k")
        .symlink("alias", "real")
        .build();
    let l2 = Layer::new()
        .dir_with("alias", Meta::mode(0o700))
        .file("alias/new", b"n")
        .build();
    let fx = Fixture::new();
    fx.apply(&[l1, l2]).unwrap();
    fx.assert_tree(&[
        ("real", Node::dir(0o755)),
        ("real/keep", Node::file(b"k", 0o644)),
        ("alias", Node::dir(0o700)),
        ("alias/new", Node::file(b"n", 0o644)),
    ]);
}

#[test]
fn non_directories_replace_whole_trees_and_every_kind() {
    let l1 = Layer::new()
        .dir("a")
        .dir("a/b")
        .file("a/b/c", b"c")
        .file("f", b"f")
        .symlink("s", "f")
        .member(EntryType::Fifo, b"p", None, b"", Meta::mode(0o644))
        .build();
    let l2 = Layer::new()
        .file("a", b"now a file")
        .device(EntryType::Char, "f", 1, 5, Meta::mode(0o600))
        .member(EntryType::Fifo, b"s", None, b"", Meta::mode(0o640))
        .symlink("p", "/dev/null")
        .build();
    let fx = Fixture::new();
    let stats = fx.apply(&[l1, l2]).unwrap();
    assert_eq!(stats[1].removed, 3 + 1 + 1 + 1);
    fx.assert_tree(&[
        ("a", Node::file(b"now a file", 0o644)),
        ("f", Node::special(What::Char(libc::makedev(1, 5)), 0o600)),
        ("s", Node::special(What::Fifo, 0o640)),
        ("p", Node::symlink("/dev/null")),
    ]);
}

#[test]
fn replacing_a_hardlinked_file_leaves_the_other_links_alone() {
    let l1 = Layer::new().file("a", b"shared").hardlink("b", "a").build();
    let l2 = Layer::new().file("a", b"new a").build();
    let fx = Fixture::new();
    fx.apply(&[l1, l2]).unwrap();
    fx.assert_tree(&[
        ("a", Node::file(b"new a", 0o644)),
        ("b", Node::file(b"shared", 0o644)),
    ]);
}

#[test]
fn hardlinks_to_files_of_earlier_layers() {
    let l1 = Layer::new()
        .file_with("usr/bin/perl5.36", b"perl", Meta::mode(0o755))
        .build();
    let l2 = Layer::new()
        .hardlink("usr/bin/perl", "usr/bin/perl5.36")
        .build();
    let fx = Fixture::new();
    fx.apply(&[l1, l2]).unwrap();
    assert_eq!(
        inode(&fx.path("usr/bin/perl")),
        inode(&fx.path("usr/bin/perl5.36"))
    );
    assert_eq!(
        crate::support::node_of(&fx.path("usr/bin/perl")),
        Node::file(b"perl", 0o755).nlink(2)
    );
}

#[test]
fn merged_usr_later_layers_land_under_usr() {
    let base = Layer::new()
        .dir("usr")
        .dir("usr/bin")
        .dir("usr/lib")
        .dir("usr/sbin")
        .symlink("bin", "usr/bin")
        .symlink("sbin", "/usr/sbin")
        .symlink("lib", "/usr/lib")
        .file("usr/bin/sh", b"sh")
        .build();
    let l2 = Layer::new()
        .file_with("bin/ls", b"ls", Meta::mode(0o755))
        .file("lib/x86_64/libc.so.6", b"libc")
        .hardlink("sbin/ls-link", "bin/ls")
        .symlink("sbin/init", "../lib/systemd/systemd")
        .build();
    let l3 = Layer::new().whiteout("bin/sh").build();
    let fx = Fixture::new();
    fx.apply(&[base, l2, l3]).unwrap();
    fx.assert_tree(&[
        ("bin", Node::symlink("usr/bin")),
        ("sbin", Node::symlink("/usr/sbin")),
        ("lib", Node::symlink("/usr/lib")),
        ("usr", Node::dir(0o755)),
        ("usr/bin", Node::dir(0o755)),
        ("usr/bin/ls", Node::file(b"ls", 0o755).nlink(2)),
        ("usr/lib", Node::dir(0o755)),
        ("usr/lib/x86_64", Node::dir(0o755).any_mtime()),
        ("usr/lib/x86_64/libc.so.6", Node::file(b"libc", 0o644)),
        ("usr/sbin", Node::dir(0o755)),
        ("usr/sbin/ls-link", Node::file(b"ls", 0o755).nlink(2)),
        ("usr/sbin/init", Node::symlink("../lib/systemd/systemd")),
    ]);
    fx.assert_outer_unchanged();
}

#[test]
fn a_missing_parent_behind_a_dangling_symlink_is_an_error() {
    let l1 = Layer::new().symlink("opt", "/nonexistent/opt").build();
    let l2 = Layer::new().file("opt/tool", b"t").build();
    let fx = Fixture::new();
    let err = fx.apply(&[l1, l2]).unwrap_err();
    assert!(format!("{err:#}").contains("dangling symlink"), "{err:#}");
    fx.assert_tree(&[("opt", Node::symlink("/nonexistent/opt"))]);
}

#[test]
fn a_member_under_a_file_is_an_error() {
    let l1 = Layer::new().file("etc", b"not a dir").build();
    let l2 = Layer::new().file("etc/passwd", b"x").build();
    let fx = Fixture::new();
    let err = fx.apply(&[l1, l2]).unwrap_err();
    assert!(format!("{err:#}").contains("not a directory"), "{err:#}");
}
