//! One layer's tar stream read for what decides where the image's os-release is, keeping
//! little: every symlink and hard link with its target, every file named `os-release` with
//! its content (at most [`MAX_OS_RELEASE`] bytes), whiteouts and opaque markers, and of
//! everything else only its kind under a 64-bit hash of its path. Members are read with the
//! applier's own header and path rules, so a layer the applier would refuse is refused here.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufRead, Read};

use anyhow::Context as _;

use crate::oci::apply::{
    read_member, refusal_or_read_error, CleanPath, ExtensionCap, Kind, Whiteout,
};
use crate::oci::inflate::decompressed;
use crate::oci::resolve::Compression;

/// Largest os-release kept; a real one is well under 1 KiB.
pub(super) const MAX_OS_RELEASE: u64 = 64 << 10;

/// The name whose regular files are kept with their content.
pub(super) const OS_RELEASE: &[u8] = b"os-release";

/// What one layer puts at a path, as far as finding os-release goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    /// A directory, listed or made for a member under it.
    Dir,
    /// A regular file named `os-release`, with its content.
    OsRelease(Vec<u8>),
    /// A regular file named `os-release` larger than [`MAX_OS_RELEASE`], with its size.
    TooLarge(u64),
    /// Any other regular file; its content is not kept.
    File,
    /// A symlink and its target as stored.
    Symlink(Vec<u8>),
    /// A hard link to the member name it gives, cleaned.
    HardLink(Vec<u8>),
    /// A device or FIFO.
    Special,
}

/// Nodes kept by path hash alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plain {
    Dir,
    File,
    Special,
}

impl Plain {
    fn node(self) -> &'static Node {
        match self {
            Self::Dir => &Node::Dir,
            Self::File => &Node::File,
            Self::Special => &Node::Special,
        }
    }
}

/// What one layer says about the paths that matter, the last member for a path winning.
#[derive(Debug, Default)]
pub(super) struct LayerIndex {
    /// Links and os-release files, by cleaned path.
    named: HashMap<Vec<u8>, Node>,
    /// Everything else, by path hash: a few bytes a member, whatever the layer holds.
    plain: HashMap<u64, Plain>,
    hasher: RandomState,
    /// Paths hidden from lower layers by `.wh.NAME`.
    hidden: HashSet<Vec<u8>>,
    /// Directories whose lower-layer contents are hidden (`.wh..wh..opq`).
    opaque: HashSet<Vec<u8>>,
}

impl LayerIndex {
    /// What this layer puts at `path`, if anything.
    pub(super) fn node(&self, path: &[u8]) -> Option<&Node> {
        self.named
            .get(path)
            .or_else(|| self.plain.get(&self.hash(path)).map(|p| p.node()))
    }

    /// Whether this layer hides what lower layers put at `path`: a whiteout of it or of a
    /// directory above it, an opaque directory above it, or a non-directory above it.
    pub(super) fn hides(&self, path: &[u8]) -> bool {
        self.opaque.contains(&b""[..])
            || self.hidden.contains(path)
            || ancestors(path).any(|above| {
                self.hidden.contains(above)
                    || self.opaque.contains(above)
                    || self.node(above).is_some_and(|node| *node != Node::Dir)
            })
    }

    fn hash(&self, path: &[u8]) -> u64 {
        self.hasher.hash_one(path)
    }

    fn insert(&mut self, path: &[u8], node: Node) {
        let plain = match node {
            Node::Dir => Some(Plain::Dir),
            Node::File => Some(Plain::File),
            Node::Special => Some(Plain::Special),
            _ => None,
        };
        let hash = self.hash(path);
        match plain {
            Some(plain) => {
                self.named.remove(path);
                self.plain.insert(hash, plain);
            }
            None => {
                self.plain.remove(&hash);
                self.named.insert(path.to_vec(), node);
            }
        }
    }

    /// Records `dir` and the directories above it as directories where this layer has nothing
    /// else there: the applier makes them for a member below them.
    fn note_parents(&mut self, dir: &[u8]) {
        if dir.is_empty() {
            return;
        }
        for path in ancestors(dir).chain(std::iter::once(dir)) {
            if self.node(path).is_none() {
                self.insert(path, Node::Dir);
            }
        }
    }
}

/// The directories above `path` (`a`, `a/b` for `a/b/c`), outermost first.
fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(|(at, _)| &path[..at])
}

/// How much the examined layers may still take, together.
#[derive(Debug, Clone)]
pub(super) struct Budget {
    /// Uncompressed bytes left.
    pub(super) bytes: u64,
    /// Members left.
    pub(super) entries: u64,
}

/// Why a layer was not read to its end.
#[derive(Debug)]
pub(super) enum Stop {
    /// The budget ran out: the answer is not known.
    Limit(String),
    /// The layer cannot be read (or the applier would refuse it).
    Failed(anyhow::Error),
}

/// Reads one layer blob from `raw` to its end (the end of a verified download), indexing its
/// members and charging its uncompressed bytes and members to `budget`.
pub(super) fn read_layer(
    compression: Compression,
    raw: &mut dyn BufRead,
    budget: &mut Budget,
) -> Result<LayerIndex, Stop> {
    let mut over = false;
    let indexed = {
        let tar = decompressed(compression, &mut *raw).map_err(Stop::Failed)?;
        let mut metered = Metered {
            inner: tar,
            left: &mut budget.bytes,
            over: &mut over,
        };
        index(&mut metered, &mut budget.entries)
    };
    let index = match indexed {
        Err(_) if over => {
            return Err(Stop::Limit(
                "the uncompressed bytes allowed ran out".to_string(),
            ))
        }
        other => other?,
    };
    io::copy(raw, &mut io::sink())
        .context("reading the rest of the layer")
        .map_err(Stop::Failed)?;
    Ok(index)
}

/// Indexes the members of an uncompressed layer, then reads it to its end.
fn index(tar: &mut dyn Read, entries: &mut u64) -> Result<LayerIndex, Stop> {
    let mut index = LayerIndex::default();
    // Members come grouped by directory: the parents are noted once per group.
    let mut last_dir: Option<Vec<u8>> = None;
    let mut archive = tar::Archive::new(ExtensionCap::new(tar));
    let members = archive
        .entries()
        .context("reading layer tar")
        .map_err(Stop::Failed)?;
    for entry in members {
        let mut entry = entry.map_err(|e| Stop::Failed(refusal_or_read_error(e)))?;
        if *entries == 0 {
            return Err(Stop::Limit("the layer members allowed ran out".to_string()));
        }
        *entries -= 1;
        add_member(&mut index, &mut entry, &mut last_dir).map_err(Stop::Failed)?;
    }
    io::copy(&mut archive.into_inner(), &mut io::sink())
        .context("reading the end of the layer stream")
        .map_err(Stop::Failed)?;
    Ok(index)
}

fn add_member<R: Read>(
    index: &mut LayerIndex,
    entry: &mut tar::Entry<'_, R>,
    last_dir: &mut Option<Vec<u8>>,
) -> anyhow::Result<()> {
    let Some(member) = read_member(entry)? else {
        return Ok(());
    };
    let path = CleanPath::parse(&member.name)?;
    match path.whiteout()? {
        Whiteout::None => {}
        Whiteout::Hide(hidden) => {
            let mut whole = path.parent().to_vec();
            if !whole.is_empty() {
                whole.push(b'/');
            }
            whole.extend_from_slice(hidden);
            index.hidden.insert(whole);
            return Ok(());
        }
        Whiteout::Opaque => {
            index.opaque.insert(path.parent().to_vec());
            return Ok(());
        }
        Whiteout::AufsMetadata => return Ok(()),
    }
    if path.is_root() {
        return Ok(());
    }
    if last_dir.as_deref() != Some(path.parent()) {
        index.note_parents(path.parent());
        *last_dir = Some(path.parent().to_vec());
    }
    let node = match member.kind {
        Kind::File if path.name() == OS_RELEASE => {
            let size = entry.size();
            if size > MAX_OS_RELEASE {
                Node::TooLarge(size)
            } else {
                let mut content = Vec::with_capacity(size as usize);
                entry
                    .read_to_end(&mut content)
                    .context("reading os-release from the layer")?;
                Node::OsRelease(content)
            }
        }
        Kind::File => Node::File,
        Kind::Dir => Node::Dir,
        Kind::Symlink(target) => Node::Symlink(target),
        Kind::HardLink(target) => Node::HardLink(CleanPath::parse(&target)?.as_bytes().to_vec()),
        Kind::CharDevice(_) | Kind::BlockDevice(_) | Kind::Fifo => Node::Special,
    };
    index.insert(path.as_bytes(), node);
    Ok(())
}

/// Counts the bytes read through it against what is left, and fails once they run out.
struct Metered<'a, R> {
    inner: R,
    left: &'a mut u64,
    over: &'a mut bool,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.checked_sub(n as u64) {
            Some(left) => {
                *self.left = left;
                Ok(n)
            }
            None => {
                *self.left = 0;
                *self.over = true;
                Err(io::Error::other("the uncompressed bytes allowed ran out"))
            }
        }
    }
}
