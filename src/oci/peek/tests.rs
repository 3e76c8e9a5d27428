use super::*;
use crate::oci::resolve::Compression;

const DEBIAN: &str = "ID=debian\nVERSION_ID=\"13\"\n";
const FEDORA: &str = "ID=fedora\nVERSION_ID=41\n";

/// One member of a synthetic layer.
enum M<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
}

fn tar(members: &[M<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for member in members {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        header.set_mode(0o644);
        header.set_size(0);
        match member {
            M::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .unwrap();
            }
            M::File(path, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, *data).unwrap();
            }
            M::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                builder.append_link(&mut header, path, target).unwrap();
            }
            M::HardLink(path, target) => {
                header.set_entry_type(tar::EntryType::Link);
                builder.append_link(&mut header, path, target).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// A Debian-style layer: `etc/os-release -> ../usr/lib/os-release`.
fn debian_base() -> Vec<u8> {
    tar(&[
        M::Dir("etc/"),
        M::Symlink("etc/os-release", "../usr/lib/os-release"),
        M::Dir("usr/"),
        M::Dir("usr/lib/"),
        M::File("usr/lib/os-release", DEBIAN.as_bytes()),
    ])
}

/// Runs the look over plain tar layers (bottom first, as a manifest lists them), the way
/// `read_os_release` does over downloads.
fn look(layers: &[Vec<u8>], limits: &PeekLimits) -> anyhow::Result<OsReleasePeek> {
    let mut look = Look::new(limits, layers.len());
    for (at, blob) in layers.iter().enumerate().rev() {
        if let Some(answer) = look.before() {
            return Ok(answer);
        }
        let mut budget = look.budget.clone();
        let scanned = scan::read_layer(Compression::None, &mut &blob[..], &mut budget);
        if let Some(answer) = look.after(at, "sha256:test", budget, scanned)? {
            return Ok(answer);
        }
    }
    Ok(look.exhausted())
}

fn peek(layers: &[Vec<u8>]) -> OsReleasePeek {
    look(layers, &PeekLimits::default()).unwrap()
}

fn found(text: &str) -> OsReleasePeek {
    OsReleasePeek::Found(text.to_string())
}

fn is_unknown(peek: &OsReleasePeek, says: &str) -> bool {
    matches!(peek, OsReleasePeek::Unknown(why) if why.contains(says))
}

#[test]
fn the_debian_symlink_to_usr_lib_os_release_is_followed() {
    assert_eq!(peek(&[debian_base()]), found(DEBIAN));
    let absolute = tar(&[
        M::Symlink("etc/os-release", "/usr/lib/os-release"),
        M::File("usr/lib/os-release", FEDORA.as_bytes()),
    ]);
    assert_eq!(peek(&[absolute]), found(FEDORA));
    // `..` stops at the root, as in the installed system.
    let climbing = tar(&[
        M::Symlink("etc/os-release", "../../../../usr/lib/os-release"),
        M::File("usr/lib/os-release", FEDORA.as_bytes()),
    ]);
    assert_eq!(peek(&[climbing]), found(FEDORA));
}

#[test]
fn a_symlink_in_the_top_layer_is_followed_into_a_lower_one() {
    let lower = tar(&[M::File("usr/lib/os-release", FEDORA.as_bytes())]);
    let upper = tar(&[
        M::Dir("etc/"),
        M::Symlink("etc/os-release", "../usr/lib/os-release"),
    ]);
    assert_eq!(peek(&[lower, upper]), found(FEDORA));
}

#[test]
fn a_symlinked_directory_on_the_way_is_followed() {
    let layer = tar(&[
        M::Symlink("etc", "private/etc"),
        M::File("private/etc/os-release", FEDORA.as_bytes()),
    ]);
    assert_eq!(peek(&[layer]), found(FEDORA));
}

#[test]
fn a_hard_link_has_its_targets_content() {
    let layer = tar(&[
        M::File("usr/lib/os-release", DEBIAN.as_bytes()),
        M::HardLink("etc/os-release", "usr/lib/os-release"),
    ]);
    assert_eq!(peek(&[layer]), found(DEBIAN));
}

#[test]
fn the_topmost_layer_that_has_it_wins_and_lower_ones_are_not_read() {
    let upper = tar(&[M::File("etc/os-release", DEBIAN.as_bytes())]);
    // Not a tar at all: reading it would fail.
    let unreadable = vec![0x55; 4096];
    assert_eq!(peek(&[unreadable, upper]), found(DEBIAN));
    // An upper layer without it defers to the one below.
    let lower = tar(&[M::File("etc/os-release", FEDORA.as_bytes())]);
    let unrelated = tar(&[M::Dir("srv/"), M::File("srv/app", b"x")]);
    assert_eq!(peek(&[lower, unrelated]), found(FEDORA));
    // The last member of a layer for a path wins within that layer.
    let twice = tar(&[
        M::File("etc/os-release", FEDORA.as_bytes()),
        M::File("etc/os-release", DEBIAN.as_bytes()),
    ]);
    assert_eq!(peek(&[twice]), found(DEBIAN));
}

#[test]
fn a_whiteout_of_os_release_in_an_upper_layer_leaves_it_absent() {
    let lower = tar(&[M::File("etc/os-release", DEBIAN.as_bytes())]);
    let upper = tar(&[M::Dir("etc/"), M::File("etc/.wh.os-release", b"")]);
    assert_eq!(peek(&[lower, upper]), OsReleasePeek::Absent);
    // Whiting out the file a symlink leads to leaves the symlink dangling.
    let upper = tar(&[M::Dir("usr/lib/"), M::File("usr/lib/.wh.os-release", b"")]);
    assert_eq!(peek(&[debian_base(), upper]), OsReleasePeek::Absent);
    // A whiteout of the directory above it too.
    let upper = tar(&[M::File(".wh.etc", b"")]);
    let lower = tar(&[M::File("etc/os-release", DEBIAN.as_bytes())]);
    assert_eq!(peek(&[lower, upper]), OsReleasePeek::Absent);
    // A whiteout never hides what its own layer puts there.
    let upper = tar(&[
        M::File("etc/.wh.os-release", b""),
        M::File("etc/os-release", FEDORA.as_bytes()),
    ]);
    assert_eq!(peek(&[debian_base(), upper]), found(FEDORA));
}

#[test]
fn an_opaque_etc_hides_the_lower_one_and_usr_lib_answers() {
    let lower = tar(&[
        M::File("etc/os-release", FEDORA.as_bytes()),
        M::File("usr/lib/os-release", DEBIAN.as_bytes()),
    ]);
    let upper = tar(&[
        M::Dir("etc/"),
        M::File("etc/.wh..wh..opq", b""),
        M::File("etc/hostname", b"node\n"),
    ]);
    assert_eq!(peek(&[lower, upper]), found(DEBIAN));
}

#[test]
fn an_image_without_one_is_absent_and_a_directory_does_not_count() {
    let layer = tar(&[M::Dir("etc/"), M::File("etc/hostname", b"x")]);
    assert_eq!(peek(&[layer]), OsReleasePeek::Absent);
    let dir = tar(&[M::Dir("etc/os-release/")]);
    assert_eq!(peek(&[dir]), OsReleasePeek::Absent);
    let dangling = tar(&[M::Symlink("etc/os-release", "../usr/lib/os-release")]);
    assert_eq!(peek(&[dangling]), OsReleasePeek::Absent);
}

#[test]
fn what_the_look_cannot_read_is_unknown() {
    let big = vec![b'#'; (scan::MAX_OS_RELEASE + 1) as usize];
    let layer = tar(&[M::File("etc/os-release", &big)]);
    assert!(is_unknown(&peek(&[layer]), "more than the 64 KiB read"));
    let elsewhere = tar(&[
        M::Symlink("etc/os-release", "../usr/share/base-files/release"),
        M::File("usr/share/base-files/release", DEBIAN.as_bytes()),
    ]);
    assert!(is_unknown(&peek(&[elsewhere]), "not named os-release"));
    let looping = tar(&[
        M::Symlink("etc/os-release", "os-release.d"),
        M::Symlink("etc/os-release.d", "os-release"),
    ]);
    assert!(is_unknown(&peek(&[looping]), "more than 40 links"));
}

#[test]
fn the_limits_leave_it_unknown() {
    let bottom = tar(&[M::File("etc/os-release", FEDORA.as_bytes())]);
    let unrelated = |n: usize| tar(&[M::File(&format!("srv/{n}"), b"x")]);
    let mut layers = vec![bottom];
    layers.extend((0..4).map(unrelated));
    let beyond = peek(&layers);
    assert!(
        is_unknown(&beyond, "top 4 of the image's 5 layers"),
        "{beyond:?}"
    );
    // One layer fewer and the bottom one is within reach.
    assert_eq!(peek(&layers[..4]), found(FEDORA));

    let bytes = PeekLimits {
        bytes: 64 << 10,
        ..PeekLimits::default()
    };
    let filler = vec![0u8; 100 << 10];
    let big = tar(&[
        M::File("srv/filler", &filler),
        M::File("etc/os-release", DEBIAN.as_bytes()),
    ]);
    let over = look(std::slice::from_ref(&big), &bytes).unwrap();
    assert!(
        is_unknown(&over, "uncompressed bytes allowed ran out"),
        "{over:?}"
    );
    assert_eq!(look(&[big], &PeekLimits::default()).unwrap(), found(DEBIAN));

    let members = PeekLimits {
        entries: 3,
        ..PeekLimits::default()
    };
    let many = tar(&[
        M::Dir("srv/"),
        M::File("srv/a", b""),
        M::File("srv/b", b""),
        M::File("etc/os-release", DEBIAN.as_bytes()),
    ]);
    let over = look(&[many], &members).unwrap();
    assert!(is_unknown(&over, "members allowed ran out"), "{over:?}");
}

#[test]
fn a_layer_the_applier_would_refuse_fails_the_look() {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(2);
    header.set_mode(0o644);
    header.as_gnu_mut().unwrap().name[..19].copy_from_slice(b"../etc/os-release\0\0");
    header.set_cksum();
    builder.append(&header, &b"x\n"[..]).unwrap();
    let escaping = builder.into_inner().unwrap();
    let err = look(&[escaping], &PeekLimits::default()).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.starts_with("layer 1 of 1 (sha256:test): "), "{text}");
    assert!(text.contains("`..`"), "{text}");

    let mut budget = Budget {
        bytes: 1 << 20,
        entries: 10,
    };
    let garbage = [
        0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x12,
    ];
    let bad_gzip = scan::read_layer(Compression::Gzip, &mut &garbage[..], &mut budget);
    assert!(matches!(bad_gzip, Err(Stop::Failed(_))), "{bad_gzip:?}");
}
