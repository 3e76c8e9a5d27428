//! A path looked up in the tree the layers make, from the indexes of the topmost layers alone:
//! the topmost layer that says anything about the path (or hides it) decides, and a symlink or
//! hard link on the way is followed as the installed system would (`..` stops at the root).

use super::scan::{LayerIndex, Node, MAX_OS_RELEASE};

/// Links followed on the way at most (the kernel gives up after 40 symlinks).
const MAX_HOPS: usize = 40;

/// What the layers read say about a path, or about the os-release the installer would read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The content of the os-release file.
    Found(Vec<u8>),
    /// No regular file there (for the os-release: at neither path).
    Absent,
    /// A layer below those read may decide it.
    NeedMore,
    /// The layers read cannot tell, and why.
    Unknown(String),
}

/// What decides a path in the layers from `from` down.
enum Top<'a> {
    /// The node of the topmost layer that has one, and that layer.
    Node(usize, &'a Node),
    /// A layer above any node hides the path.
    Hidden,
    /// No layer has anything there.
    Nothing,
    /// The layers read have nothing there; a lower one may.
    NeedMore,
}

/// The first of `paths` that leads to a regular file in the tree `layers` make (topmost layer
/// first), as the installer reads os-release after the pull; `complete` when `layers` reach
/// down to the bottom layer.
pub(super) fn first_file(layers: &[LayerIndex], complete: bool, paths: &[&str]) -> Outcome {
    for path in paths {
        match resolve(layers, complete, path.as_bytes()) {
            Outcome::Absent => {}
            decided => return decided,
        }
    }
    Outcome::Absent
}

/// Follows `path` through the layers to what the installed system would open there.
fn resolve(layers: &[LayerIndex], complete: bool, path: &[u8]) -> Outcome {
    let mut components = follow(&[], path, &[]);
    // The topmost layer that counts: the link's own, for the target of a hard link.
    let mut from = 0;
    let mut hops = 0;
    'walk: loop {
        for depth in 1..=components.len() {
            let here = components[..depth].join(&b'/');
            let last = depth == components.len();
            let shown = || format!("/{}", String::from_utf8_lossy(&here));
            let (layer, node) = match topmost(layers, complete, from, &here) {
                Top::Node(layer, node) => (layer, node),
                Top::Hidden | Top::Nothing => return Outcome::Absent,
                Top::NeedMore => return Outcome::NeedMore,
            };
            let (target, start) = match node {
                Node::Dir if !last => continue,
                Node::OsRelease(content) if last => return Outcome::Found(content.clone()),
                Node::TooLarge(size) if last => {
                    return Outcome::Unknown(format!(
                        "{} holds {size} bytes, more than the {} KiB read",
                        shown(),
                        MAX_OS_RELEASE >> 10
                    ))
                }
                Node::File if last => {
                    return Outcome::Unknown(format!(
                        "{} is a file not named os-release, whose content is not read",
                        shown()
                    ))
                }
                Node::Symlink(target) => {
                    let rest = &components[depth..];
                    (follow(&components[..depth - 1], target, rest), 0)
                }
                // The file linked to, as the layers from the link's own down have it.
                Node::HardLink(target) if last => (follow(&[], target, &[]), layer),
                // Not a regular file, or not a directory above one.
                _ => return Outcome::Absent,
            };
            hops += 1;
            if hops > MAX_HOPS {
                return Outcome::Unknown(format!("more than {MAX_HOPS} links from {}", shown()));
            }
            components = target;
            from = start;
            continue 'walk;
        }
        // The root itself, through a link: a directory.
        return Outcome::Absent;
    }
}

/// The topmost node at `path` in the layers from `from` down, unless a layer above it hides it.
fn topmost<'a>(layers: &'a [LayerIndex], complete: bool, from: usize, path: &[u8]) -> Top<'a> {
    for (at, layer) in layers.iter().enumerate().skip(from) {
        if let Some(node) = layer.node(path) {
            return Top::Node(at, node);
        }
        if layer.hides(path) {
            return Top::Hidden;
        }
    }
    if complete {
        Top::Nothing
    } else {
        Top::NeedMore
    }
}

/// The components of `target` read from the directory `dir` (from the root when absolute;
/// `..` stops at the root), followed by `rest`.
fn follow(dir: &[Vec<u8>], target: &[u8], rest: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut components = if target.starts_with(b"/") {
        Vec::new()
    } else {
        dir.to_vec()
    };
    for component in target.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                components.pop();
            }
            name => components.push(name.to_vec()),
        }
    }
    components.extend_from_slice(rest);
    components
}
