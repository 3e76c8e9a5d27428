//! Tar member names cleaned into root-relative paths, and whiteout recognition.
//!
//! Cleaning is lexical and only decides what a name *means*; confinement is the kernel's job
//! (every path is later resolved with `RESOLVE_IN_ROOT`). Names that cannot mean anything sane
//! inside a root are refused here so that a hostile layer fails loudly instead of landing
//! somewhere surprising.

use super::RefusedEntry;

/// Prefix of a whiteout file name (`.wh.NAME` hides `NAME` of lower layers).
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Prefix of AUFS metadata entries, which carry no meaning for a plain directory tree.
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// Marker that makes its directory opaque (hides everything lower layers put in it).
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// A member name as a `/`-separated path relative to the root, without `.`, empty or `..`
/// components; the empty path is the root itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::oci) struct CleanPath {
    bytes: Vec<u8>,
}

impl CleanPath {
    /// Cleans a raw member name: leading `/`, `./`, repeated and trailing slashes are dropped
    /// (an absolute name means the same thing as a relative one); `..` components and NUL
    /// bytes are refused.
    pub(in crate::oci) fn parse(raw: &[u8]) -> Result<Self, RefusedEntry> {
        if raw.contains(&0) {
            return Err(RefusedEntry::new(raw, "name contains a NUL byte"));
        }
        let mut bytes = Vec::with_capacity(raw.len());
        for component in raw.split(|&b| b == b'/') {
            match component {
                b"" | b"." => continue,
                b".." => return Err(RefusedEntry::new(raw, "name has a `..` component")),
                _ => {
                    if !bytes.is_empty() {
                        bytes.push(b'/');
                    }
                    bytes.extend_from_slice(component);
                }
            }
        }
        Ok(Self { bytes })
    }

    /// True for the root directory itself.
    pub(in crate::oci) fn is_root(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The whole path, `/`-separated.
    pub(in crate::oci) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The directory part (empty for a member directly under the root).
    pub(in crate::oci) fn parent(&self) -> &[u8] {
        match self.bytes.iter().rposition(|&b| b == b'/') {
            Some(slash) => &self.bytes[..slash],
            None => b"",
        }
    }

    /// The final component (empty for the root).
    pub(in crate::oci) fn name(&self) -> &[u8] {
        match self.bytes.iter().rposition(|&b| b == b'/') {
            Some(slash) => &self.bytes[slash + 1..],
            None => &self.bytes,
        }
    }

    /// What the final component says about whiteouts.
    pub(in crate::oci) fn whiteout(&self) -> Result<Whiteout<'_>, RefusedEntry> {
        let name = self.name();
        let in_meta_dir = self
            .parent()
            .split(|&b| b == b'/')
            .any(|c| c.starts_with(WHITEOUT_META_PREFIX));
        if in_meta_dir {
            return Ok(Whiteout::AufsMetadata);
        }
        if name == OPAQUE_MARKER {
            return Ok(Whiteout::Opaque);
        }
        if name.starts_with(WHITEOUT_META_PREFIX) {
            return Ok(Whiteout::AufsMetadata);
        }
        match name.strip_prefix(WHITEOUT_PREFIX) {
            None => Ok(Whiteout::None),
            Some(b"" | b"." | b"..") => Err(RefusedEntry::new(
                &self.bytes,
                "whiteout names no entry (empty, `.` or `..`)",
            )),
            Some(hidden) => Ok(Whiteout::Hide(hidden)),
        }
    }
}

/// Meaning of a member's final component with respect to whiteouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::oci) enum Whiteout<'a> {
    /// An ordinary member.
    None,
    /// `.wh.NAME`: hides `NAME` (and everything under it) of lower layers.
    Hide(&'a [u8]),
    /// `.wh..wh..opq`: hides everything lower layers put in the parent directory.
    Opaque,
    /// Other `.wh..wh.*` names and anything inside them: AUFS bookkeeping, ignored.
    AufsMetadata,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(raw: &str) -> String {
        String::from_utf8(CleanPath::parse(raw.as_bytes()).unwrap().bytes).unwrap()
    }

    #[test]
    fn absolute_dotted_and_repeated_slashes_are_relative_to_root() {
        assert_eq!(clean("/etc/passwd"), "etc/passwd");
        assert_eq!(clean("./usr//bin/./ls/"), "usr/bin/ls");
        assert_eq!(clean("./"), "");
        assert_eq!(clean("/"), "");
        assert!(CleanPath::parse(b".").unwrap().is_root());
    }

    #[test]
    fn dot_dot_and_nul_are_refused() {
        assert!(CleanPath::parse(b"../etc/passwd").is_err());
        assert!(CleanPath::parse(b"usr/../../x").is_err());
        assert!(CleanPath::parse(b"a/..").is_err());
        assert!(CleanPath::parse(b"a\0b").is_err());
        // `..` inside a longer component is an ordinary name.
        assert_eq!(clean("a/..b/c.."), "a/..b/c..");
    }

    #[test]
    fn parent_and_name_split_on_last_slash() {
        let p = CleanPath::parse(b"usr/lib/x.so").unwrap();
        assert_eq!(p.parent(), b"usr/lib");
        assert_eq!(p.name(), b"x.so");
        let top = CleanPath::parse(b"etc").unwrap();
        assert_eq!(top.parent(), b"");
        assert_eq!(top.name(), b"etc");
    }

    #[test]
    fn whiteouts_are_classified() {
        let kind = |raw: &str| {
            CleanPath::parse(raw.as_bytes())
                .unwrap()
                .whiteout()
                .map(|w| format!("{w:?}"))
        };
        assert_eq!(
            kind("a/.wh.b").unwrap(),
            format!("{:?}", Whiteout::Hide(b"b"))
        );
        assert_eq!(kind("a/.wh..wh..opq").unwrap(), "Opaque");
        assert_eq!(kind(".wh..wh.plnk").unwrap(), "AufsMetadata");
        assert_eq!(kind(".wh..wh.plnk/1.2").unwrap(), "AufsMetadata");
        assert_eq!(kind(".wh..wh.plnk/.wh..wh..opq").unwrap(), "AufsMetadata");
        assert_eq!(kind("a/b.wh.c").unwrap(), "None");
        assert!(kind("a/.wh.").is_err());
        assert!(kind("a/.wh..").is_err());
        assert!(kind("a/.wh...").is_err());
    }
}
