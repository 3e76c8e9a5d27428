//! What one tar member asks for: type, ownership, mode, times and extended attributes.
//!
//! The `tar` crate already folds GNU long names, PAX `path`/`linkpath`/`size`/`uid`/`gid` into
//! the entry; the PAX records it leaves alone (sub-second times, `SCHILY.xattr.*`, sparse
//! markers) are read here.

use std::ffi::CString;
use std::io::Read;

use anyhow::Context as _;
use nix::sys::time::TimeSpec;
use tar::EntryType;

use super::RefusedEntry;

/// PAX record prefix carrying one extended attribute (as written by GNU tar, star, buildkit).
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";
/// PAX record prefix of the GNU sparse formats, whose data layout the `tar` crate does not
/// reassemble.
const PAX_SPARSE_PREFIX: &[u8] = b"GNU.sparse.";

/// What kind of filesystem object a member creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::oci) enum Kind {
    /// Regular file; its content follows in the stream.
    File,
    /// Directory.
    Dir,
    /// Symbolic link with its target, stored verbatim.
    Symlink(Vec<u8>),
    /// Hard link to another member name (resolved inside the root).
    HardLink(Vec<u8>),
    /// Character device with its `dev_t`.
    CharDevice(libc::dev_t),
    /// Block device with its `dev_t`.
    BlockDevice(libc::dev_t),
    /// Named pipe.
    Fifo,
}

/// Everything a member says about the object it creates, except file content.
#[derive(Debug, Clone)]
pub(in crate::oci) struct Member {
    /// Raw member name (PAX or GNU long name applied).
    pub(in crate::oci) name: Vec<u8>,
    pub(in crate::oci) kind: Kind,
    /// Permission bits including setuid, setgid and sticky.
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) atime: TimeSpec,
    pub(super) mtime: TimeSpec,
    /// Extended attributes in archive order.
    pub(super) xattrs: Vec<(CString, Vec<u8>)>,
}

/// Reads the member description of `entry`; `None` for members that describe nothing in the
/// tree (PAX global headers).
pub(in crate::oci) fn read_member<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> anyhow::Result<Option<Member>> {
    let header = entry.header();
    let entry_type = header.entry_type();
    if entry_type.is_pax_global_extensions() {
        return Ok(None);
    }
    let name = entry.path_bytes().into_owned();
    let refuse = |reason: &str| RefusedEntry::new(&name, reason);

    let kind = match entry_type {
        // Pre-POSIX archives mark directories only by a trailing slash.
        EntryType::Regular if name.ends_with(b"/") => Kind::Dir,
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Kind::File,
        EntryType::Directory => Kind::Dir,
        EntryType::Symlink | EntryType::Link => {
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| refuse("link member without a target"))?;
            if entry_type == EntryType::Symlink {
                Kind::Symlink(target)
            } else {
                Kind::HardLink(target)
            }
        }
        EntryType::Char | EntryType::Block => {
            let major = header.device_major().context("device major number")?;
            let minor = header.device_minor().context("device minor number")?;
            let (Some(major), Some(minor)) = (major, minor) else {
                return Err(refuse("device member without device numbers").into());
            };
            let dev = libc::makedev(major, minor);
            if entry_type == EntryType::Char {
                Kind::CharDevice(dev)
            } else {
                Kind::BlockDevice(dev)
            }
        }
        EntryType::Fifo => Kind::Fifo,
        other => {
            return Err(
                RefusedEntry::new(&name, &format!("unsupported member type {other:?}")).into(),
            );
        }
    };

    let fields = header.as_old();
    let mode = numeric(&fields.mode, header.mode().map(u64::from), "mode")? as u32 & 0o7777;
    let uid = numeric(&fields.uid, header.uid(), "uid")?;
    let uid = id_u32(uid).ok_or_else(|| refuse("uid does not fit 32 bits"))?;
    let gid = numeric(&fields.gid, header.gid(), "gid")?;
    let gid = id_u32(gid).ok_or_else(|| refuse("gid does not fit 32 bits"))?;
    let header_mtime = numeric(&fields.mtime, header.mtime(), "mtime")?;
    let header_mtime = i64::try_from(header_mtime).unwrap_or(i64::MAX);
    let mut mtime = TimeSpec::new(header_mtime, 0);
    let mut atime = None;
    let mut xattrs = Vec::new();

    if let Some(records) = entry.pax_extensions().context("PAX records")? {
        for record in records {
            let record = record.context("malformed PAX record")?;
            let key = record.key_bytes();
            let value = record.value_bytes();
            if let Some(xattr) = key.strip_prefix(PAX_XATTR_PREFIX) {
                let key =
                    CString::new(xattr).map_err(|_| refuse("xattr name contains a NUL byte"))?;
                xattrs.push((key, value.to_vec()));
            } else if key.starts_with(PAX_SPARSE_PREFIX) {
                return Err(refuse("PAX sparse files are not supported").into());
            } else if key == b"mtime" {
                mtime = pax_time(value).ok_or_else(|| refuse("malformed PAX mtime"))?;
            } else if key == b"atime" {
                atime = Some(pax_time(value).ok_or_else(|| refuse("malformed PAX atime"))?);
            }
        }
    }

    Ok(Some(Member {
        atime: atime.unwrap_or(mtime),
        name,
        kind,
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    }))
}

/// A numeric header field; an empty one (all NUL or spaces) reads as zero, as Go's
/// `archive/tar` (which writes most layers) reads it, where the `tar` crate reports an error.
fn numeric(raw: &[u8], parsed: std::io::Result<u64>, what: &str) -> anyhow::Result<u64> {
    match parsed {
        Ok(value) => Ok(value),
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        Err(e) => Err(e).context(what.to_owned()),
    }
}

/// A uid/gid as the kernel takes it; `u32::MAX` is `-1`, "leave unchanged", so it is refused.
fn id_u32(id: u64) -> Option<u32> {
    u32::try_from(id).ok().filter(|&id| id != u32::MAX)
}

/// Parses a PAX time: decimal seconds since the epoch, optionally negative and fractional.
fn pax_time(value: &[u8]) -> Option<TimeSpec> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    // Nanoseconds from at most nine fraction digits; further digits are below resolution.
    let nanos = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0i64, |acc, digit| acc * 10 + i64::from(digit - b'0'));
    Some(if !negative {
        TimeSpec::new(seconds, nanos)
    } else if nanos == 0 {
        TimeSpec::new(-seconds, 0)
    } else {
        TimeSpec::new(-seconds - 1, 1_000_000_000 - nanos)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(t: TimeSpec) -> (i64, i64) {
        (t.tv_sec(), t.tv_nsec())
    }

    #[test]
    fn pax_times_keep_nanoseconds_and_sign() {
        assert_eq!(parts(pax_time(b"1700000000").unwrap()), (1_700_000_000, 0));
        assert_eq!(
            parts(pax_time(b"1700000000.5").unwrap()),
            (1_700_000_000, 500_000_000)
        );
        assert_eq!(
            parts(pax_time(b"12.1234567891").unwrap()),
            (12, 123_456_789)
        );
        assert_eq!(parts(pax_time(b"-1.25").unwrap()), (-2, 750_000_000));
        assert_eq!(parts(pax_time(b"-3").unwrap()), (-3, 0));
    }

    #[test]
    fn malformed_pax_times_are_rejected() {
        for bad in [&b""[..], b".5", b"1e9", b"12.3x", b"--1", b"1.2.3"] {
            assert!(
                pax_time(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn empty_numeric_fields_read_as_zero() {
        let bad = || Err(std::io::Error::other("not a number"));
        assert_eq!(numeric(b"\0\0\0\0", bad(), "uid").unwrap(), 0);
        assert_eq!(numeric(b"   \0", bad(), "uid").unwrap(), 0);
        assert!(numeric(b"12x\0", bad(), "uid").is_err());
        assert_eq!(numeric(b"0000017\0", Ok(15), "uid").unwrap(), 15);
    }

    #[test]
    fn ids_must_fit_and_not_mean_unchanged() {
        assert_eq!(id_u32(0), Some(0));
        assert_eq!(id_u32(65_534), Some(65_534));
        assert_eq!(id_u32(u64::from(u32::MAX)), None);
        assert_eq!(id_u32(1 << 40), None);
    }
}
