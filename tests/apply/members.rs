//! One layer, every member kind and every piece of metadata.

use ocimetal::oci::apply::LayerStats;
use tar::{EntryType, Header};

use crate::support::{inode, Fixture, Layer, Meta, Node, What, MTIME};

/// A `security.capability` value: v2, cap_net_raw permitted + effective.
const CAP_NET_RAW: &[u8] = &[
    0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[test]
fn regular_files_directories_and_ownership_are_exact() {
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 7).map(|i| (i % 251) as u8).collect();
    let layer = Layer::new()
        .dir("etc")
        .file("etc/hostname", b"box\n")
        .dir_with("home", Meta::mode(0o755))
        .dir_with(
            "home/user",
            Meta::mode(0o750).owner(1000, 1000).mtime(MTIME + 5),
        )
        .file_with(
            "home/user/.profile",
            b"PATH=/bin\n",
            Meta::mode(0o600).owner(1000, 1001),
        )
        .file_with(
            "usr/lib/big.bin",
            &big,
            Meta::mode(0o444).owner(70_000, 70_001),
        )
        .file_with("empty", b"", Meta::mode(0o000))
        .build();
    let fx = Fixture::new();
    let stats = fx.apply(&[layer]).unwrap();
    assert_eq!(
        stats[0],
        LayerStats {
            entries: 7,
            bytes: 4 + 10 + big.len() as u64,
            ..LayerStats::default()
        }
    );
    fx.assert_tree(&[
        ("etc", Node::dir(0o755)),
        ("etc/hostname", Node::file(b"box\n", 0o644)),
        ("home", Node::dir(0o755)),
        (
            "home/user",
            Node::dir(0o750).owner(1000, 1000).mtime(MTIME + 5, 0),
        ),
        (
            "home/user/.profile",
            Node::file(b"PATH=/bin\n", 0o600).owner(1000, 1001),
        ),
        // Parents the layer omits: root-owned 0755, created now.
        ("usr", Node::dir(0o755).any_mtime()),
        ("usr/lib", Node::dir(0o755).any_mtime()),
        (
            "usr/lib/big.bin",
            Node::file(&big, 0o444).owner(70_000, 70_001),
        ),
        ("empty", Node::file(b"", 0o000)),
    ]);
    fx.assert_outer_unchanged();
}

#[test]
fn setuid_setgid_and_sticky_bits_survive_chown() {
    let layer = Layer::new()
        .file_with("bin/su", b"su", Meta::mode(0o4755))
        .file_with("bin/mine", b"mine", Meta::mode(0o6711).owner(1000, 50))
        .file_with("bin/wall", b"wall", Meta::mode(0o2755).owner(0, 5))
        .dir_with("tmp", Meta::mode(0o1777))
        .dir_with("srv", Meta::mode(0o2775).owner(0, 100))
        .file_with("srv/inherits", b"x", Meta::mode(0o644).owner(7, 8))
        .build();
    let fx = Fixture::new();
    fx.apply(&[layer]).unwrap();
    fx.assert_tree(&[
        ("bin", Node::dir(0o755).any_mtime()),
        ("bin/su", Node::file(b"su", 0o4755)),
        ("bin/mine", Node::file(b"mine", 0o6711).owner(1000, 50)),
        ("bin/wall", Node::file(b"wall", 0o2755).owner(0, 5)),
        ("tmp", Node::dir(0o1777)),
        ("srv", Node::dir(0o2775).owner(0, 100)),
        // A setgid parent would hand its group down; the member's own gid wins.
        ("srv/inherits", Node::file(b"x", 0o644).owner(7, 8)),
    ]);
}

#[test]
fn extended_attributes_including_file_capabilities() {
    let layer = Layer::new()
        .file_with(
            "usr/bin/ping",
            b"ping",
            Meta::mode(0o755)
                .owner(0, 0)
                .xattr("security.capability", CAP_NET_RAW)
                .xattr("user.origin", b"test"),
        )
        .file_with(
            "usr/bin/capped-user",
            b"x",
            Meta::mode(0o4750)
                .owner(1000, 1000)
                .xattr("security.capability", CAP_NET_RAW),
        )
        .dir_with(
            "data",
            Meta::mode(0o700)
                .xattr("user.dir", b"yes")
                .xattr("trusted.t", b"\x00\x01"),
        )
        .symlink_with(
            "link",
            "data",
            Meta::mode(0o777).owner(5, 6).xattr("trusted.on-link", b"l"),
        )
        .member(
            EntryType::Fifo,
            b"fifo",
            None,
            b"",
            Meta::mode(0o620).xattr("trusted.f", b"f"),
        )
        .build();
    let fx = Fixture::new();
    fx.apply(&[layer]).unwrap();
    fx.assert_tree(&[
        ("usr", Node::dir(0o755).any_mtime()),
        ("usr/bin", Node::dir(0o755).any_mtime()),
        (
            "usr/bin/ping",
            Node::file(b"ping", 0o755)
                .xattr("security.capability", CAP_NET_RAW)
                .xattr("user.origin", b"test"),
        ),
        (
            "usr/bin/capped-user",
            Node::file(b"x", 0o4750)
                .owner(1000, 1000)
                .xattr("security.capability", CAP_NET_RAW),
        ),
        (
            "data",
            Node::dir(0o700)
                .xattr("user.dir", b"yes")
                .xattr("trusted.t", b"\x00\x01"),
        ),
        (
            "link",
            Node::symlink("data")
                .owner(5, 6)
                .xattr("trusted.on-link", b"l"),
        ),
        (
            "fifo",
            Node::special(What::Fifo, 0o620).xattr("trusted.f", b"f"),
        ),
    ]);
}

#[test]
fn symlinks_keep_their_targets_verbatim_and_are_never_followed() {
    let long_target = format!("/{}", "t".repeat(300));
    let layer = Layer::new()
        .symlink("abs", "/etc/passwd")
        .symlink("rel", "../../../../etc/shadow")
        .symlink("dangling", "nowhere/at/all")
        .symlink("dots", "./a/../b//c/")
        .symlink_with(
            "owned",
            "abs",
            Meta::mode(0o777).owner(33, 34).mtime(MTIME - 100),
        )
        .symlink("long", &long_target)
        .build();
    let fx = Fixture::new();
    fx.apply(&[layer]).unwrap();
    fx.assert_tree(&[
        ("abs", Node::symlink("/etc/passwd")),
        ("rel", Node::symlink("../../../../etc/shadow")),
        ("dangling", Node::symlink("nowhere/at/all")),
        ("dots", Node::symlink("./a/../b//c/")),
        (
            "owned",
            Node::symlink("abs").owner(33, 34).mtime(MTIME - 100, 0),
        ),
        ("long", Node::symlink(&long_target)),
    ]);
    fx.assert_outer_unchanged();
}

#[test]
fn hardlinks_share_the_inode_and_link_symlinks_themselves() {
    let layer = Layer::new()
        .file_with("bin/gzip", b"gzip", Meta::mode(0o755))
        .hardlink("bin/gunzip", "bin/gzip")
        .hardlink("./bin/zcat", "/bin/gzip")
        .symlink("sh", "bin/gzip")
        .hardlink("sh-link", "sh")
        .build();
    let fx = Fixture::new();
    let stats = fx.apply(&[layer]).unwrap();
    assert_eq!(stats[0].entries, 5);
    fx.assert_tree(&[
        ("bin", Node::dir(0o755).any_mtime()),
        ("bin/gzip", Node::file(b"gzip", 0o755).nlink(3)),
        ("bin/gunzip", Node::file(b"gzip", 0o755).nlink(3)),
        ("bin/zcat", Node::file(b"gzip", 0o755).nlink(3)),
        ("sh", Node::symlink("bin/gzip").nlink(2)),
        ("sh-link", Node::symlink("bin/gzip").nlink(2)),
    ]);
    assert_eq!(inode(&fx.path("bin/gzip")), inode(&fx.path("bin/gunzip")));
    assert_eq!(inode(&fx.path("bin/gzip")), inode(&fx.path("bin/zcat")));
    assert_eq!(inode(&fx.path("sh")), inode(&fx.path("sh-link")));
}

#[test]
fn a_repeated_hardlink_member_is_idempotent_and_a_hardlink_replaces_a_file() {
    let layer = Layer::new()
        .file("a", b"A")
        .file("b", b"B")
        .hardlink("c", "a")
        .hardlink("c", "a")
        .hardlink("b", "a")
        .build();
    let fx = Fixture::new();
    let stats = fx.apply(&[layer]).unwrap();
    assert_eq!(stats[0].removed, 1);
    fx.assert_tree(&[
        ("a", Node::file(b"A", 0o644).nlink(3)),
        ("b", Node::file(b"A", 0o644).nlink(3)),
        ("c", Node::file(b"A", 0o644).nlink(3)),
    ]);
}

#[test]
fn devices_and_fifos_carry_numbers_modes_and_owners() {
    let layer = Layer::new()
        .dir("dev")
        .device(EntryType::Char, "dev/null", 1, 3, Meta::mode(0o666))
        .device(
            EntryType::Char,
            "dev/tty0",
            4,
            0,
            Meta::mode(0o620).owner(0, 5),
        )
        .device(
            EntryType::Block,
            "dev/loop7",
            7,
            7,
            Meta::mode(0o660).owner(0, 6),
        )
        .device(
            EntryType::Block,
            "dev/big",
            259,
            1_048_575,
            Meta::mode(0o600),
        )
        .member(
            EntryType::Fifo,
            b"run/initctl",
            None,
            b"",
            Meta::mode(0o600).owner(1, 2),
        )
        .build();
    let fx = Fixture::new();
    fx.apply(&[layer]).unwrap();
    fx.assert_tree(&[
        ("dev", Node::dir(0o755)),
        (
            "dev/null",
            Node::special(What::Char(libc::makedev(1, 3)), 0o666),
        ),
        (
            "dev/tty0",
            Node::special(What::Char(libc::makedev(4, 0)), 0o620).owner(0, 5),
        ),
        (
            "dev/loop7",
            Node::special(What::Block(libc::makedev(7, 7)), 0o660).owner(0, 6),
        ),
        (
            "dev/big",
            Node::special(What::Block(libc::makedev(259, 1_048_575)), 0o600),
        ),
        ("run", Node::dir(0o755).any_mtime()),
        ("run/initctl", Node::special(What::Fifo, 0o600).owner(1, 2)),
    ]);
}

#[test]
fn long_pax_gnu_and_utf8_names() {
    let deep = format!("{}/{}", "d".repeat(120), "f".repeat(150));
    let gnu_name = format!("gnu/{}", "g".repeat(200));
    let mut layer = Layer::new()
        .file(&deep, b"pax path")
        .file("données/日本語.txt", "héllo".as_bytes())
        .symlink("ünï", "données/日本語.txt");
    // The tar crate's own builder writes GNU `L`/`K` long-name members for these.
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(0o640);
    header.set_mtime(MTIME as u64);
    header.set_size(3);
    layer
        .builder()
        .append_data(&mut header, &gnu_name, &b"gnu"[..])
        .unwrap();
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Symlink);
    header.set_mode(0o777);
    header.set_mtime(MTIME as u64);
    header.set_size(0);
    layer
        .builder()
        .append_link(&mut header, "gnu/long-link", &gnu_name)
        .unwrap();
    let fx = Fixture::new();
    fx.apply(&[layer.build()]).unwrap();
    fx.assert_tree(&[
        (&"d".repeat(120), Node::dir(0o755).any_mtime()),
        (&deep, Node::file(b"pax path", 0o644)),
        ("données", Node::dir(0o755).any_mtime()),
        ("données/日本語.txt", Node::file("héllo".as_bytes(), 0o644)),
        ("ünï", Node::symlink("données/日本語.txt")),
        ("gnu", Node::dir(0o755).any_mtime()),
        (&gnu_name, Node::file(b"gnu", 0o640)),
        ("gnu/long-link", Node::symlink(&gnu_name)),
    ]);
}

#[test]
fn directory_times_are_set_after_their_children_and_pax_times_keep_nanoseconds() {
    let layer = Layer::new()
        .dir_with("var", Meta::mode(0o755).mtime(1_000))
        .dir_with("var/log", Meta::mode(0o755).mtime(2_000))
        .file("var/log/syslog", b"log")
        .file_with(
            "var/precise",
            b"p",
            Meta::mode(0o644).pax("mtime", b"1600000000.123456789"),
        )
        .dir_with("var/log/apt", Meta::mode(0o755).mtime(3_000))
        .file("var/log/apt/history.log", b"h")
        .build();
    let fx = Fixture::new();
    fx.apply(&[layer]).unwrap();
    fx.assert_tree(&[
        ("var", Node::dir(0o755).mtime(1_000, 0)),
        ("var/log", Node::dir(0o755).mtime(2_000, 0)),
        ("var/log/syslog", Node::file(b"log", 0o644)),
        (
            "var/precise",
            Node::file(b"p", 0o644).mtime(MTIME, 123_456_789),
        ),
        ("var/log/apt", Node::dir(0o755).mtime(3_000, 0)),
        ("var/log/apt/history.log", Node::file(b"h", 0o644)),
    ]);
}

#[test]
fn the_root_entry_is_skipped_and_the_root_keeps_its_own_metadata() {
    let layer = Layer::new()
        .dir_with("./", Meta::mode(0o700).owner(1000, 1000))
        .dir_with("/", Meta::mode(0o700).owner(1000, 1000))
        .file("./etc/os-release", b"ID=debian\n")
        .member(
            EntryType::XGlobalHeader,
            b"pax_global_header",
            None,
            b"19 comment=ignored\n",
            Meta::mode(0o644),
        )
        .build();
    let fx = Fixture::new();
    let stats = fx.apply(&[layer]).unwrap();
    assert_eq!(stats[0].skipped, 3);
    assert_eq!(stats[0].entries, 1);
    fx.assert_outer_unchanged();
    fx.assert_tree(&[
        ("etc", Node::dir(0o755).any_mtime()),
        ("etc/os-release", Node::file(b"ID=debian\n", 0o644)),
    ]);
}

#[test]
fn the_whole_stream_is_consumed_past_the_end_of_archive() {
    let mut bytes = Layer::new().file("f", b"data").build();
    bytes.extend_from_slice(&[0u8; 10 * 512]);
    bytes.extend_from_slice(b"trailing bytes a registry blob may carry");
    let fx = Fixture::new();
    let mut applier = ocimetal::oci::apply::Applier::open(&fx.root).unwrap();
    let mut reader: &[u8] = &bytes;
    applier.apply_layer(&mut reader).unwrap();
    assert!(reader.is_empty(), "{} bytes left unread", reader.len());
}

#[test]
fn truncated_and_corrupt_streams_fail() {
    let whole = Layer::new().file("f", &[7u8; 4096]).build();
    let fx = Fixture::new();
    let mut applier = ocimetal::oci::apply::Applier::open(&fx.root).unwrap();
    let mut truncated: &[u8] = &whole[..512 + 1000];
    assert!(applier.apply_layer(&mut truncated).is_err());
    let mut corrupt = whole.clone();
    corrupt[148] ^= 0x11; // header checksum
    assert!(applier.apply_layer(&mut corrupt.as_slice()).is_err());
}

#[test]
fn opening_a_missing_or_non_directory_root_fails() {
    let fx = Fixture::new();
    assert!(ocimetal::oci::apply::Applier::open(&fx.root.join("missing")).is_err());
    assert!(ocimetal::oci::apply::Applier::open(&fx.outer.path().join("sentinel")).is_err());
}

#[test]
fn names_and_targets_need_not_be_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let layer = Layer::new()
        .member(
            EntryType::Regular,
            b"latin1-caf\xe9",
            None,
            b"bytes",
            Meta::mode(0o644),
        )
        .member(
            EntryType::Symlink,
            b"link",
            Some(b"latin1-caf\xe9"),
            b"",
            Meta::mode(0o777),
        )
        .build();
    let fx = Fixture::new();
    fx.apply(&[layer]).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"latin1-caf\xe9");
    assert_eq!(std::fs::read(fx.root.join(name)).unwrap(), b"bytes");
    assert_eq!(
        std::fs::read_link(fx.path("link"))
            .unwrap()
            .as_os_str()
            .as_bytes(),
        b"latin1-caf\xe9"
    );
}

/// Files are finished on other threads while later members go on: a later member that links,
/// replaces or re-lists a name must see the same tree as if each file were done at once.
#[test]
fn later_members_see_earlier_ones_finished() {
    // Listed first here and again at the end, with many files handed over in between.
    let mut layer = Layer::new()
        .dir_with("twice", Meta::mode(0o700).owner(5, 5))
        .dir("d");
    let mut expected = vec![("d", Node::dir(0o755))];
    let names: Vec<String> = (0..300).map(|i| format!("d/f{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let content = vec![i as u8; i * 997];
        layer = layer.file_with(name, &content, Meta::mode(0o640).owner(i as u64, 7));
    }
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    let layer = layer
        // A hard link to a file just handed over shares its finished inode.
        .hardlink("link", "d/f299")
        // A name replaced right after it was written.
        .file_with("d/f298", b"second", Meta::mode(0o600))
        .dir_with("d/f297", Meta::mode(0o711))
        // More content than all the hand-over buffers hold together.
        .file_with("big", &big, Meta::mode(0o644).owner(3, 3))
        // A directory listed twice: the later metadata wins.
        .dir_with("twice", Meta::mode(0o751).owner(6, 6))
        .build();
    let fx = Fixture::new();
    fx.apply(&[layer]).unwrap();
    let contents: Vec<Vec<u8>> = (0..300).map(|i| vec![i as u8; i * 997]).collect();
    for (i, name) in names.iter().enumerate().take(297) {
        let node = Node::file(&contents[i], 0o640).owner(i as u32, 7);
        expected.push((name, node));
    }
    expected.push(("d/f297", Node::dir(0o711)));
    expected.push(("d/f298", Node::file(b"second", 0o600)));
    let linked = Node::file(&contents[299], 0o640).owner(299, 7).nlink(2);
    expected.push(("d/f299", linked.clone()));
    expected.push(("link", linked));
    expected.push(("big", Node::file(&big, 0o644).owner(3, 3)));
    expected.push(("twice", Node::dir(0o751).owner(6, 6)));
    fx.assert_tree(&expected);
}
