//! A cap on tar extension headers (PAX `x`/`g`, GNU long name `L` and long link `K`).
//!
//! The `tar` crate reads an extension header's whole body into memory before the member it
//! describes is seen, for whatever size the header declares: a small layer declaring a 1 GiB
//! PAX header would cost 1 GiB. [`ExtensionCap`] sits between the layer stream and the tar
//! reader, follows the archive's block structure as the bytes pass, and refuses an extension
//! header that declares more than [`MAX_EXTENSION`] bytes as soon as its header block has
//! passed, before any of its body is read.
//!
//! It only ever refuses, never changes a byte. When the stream stops looking like a tar
//! archive (a header block with a wrong checksum) it stops following it and leaves the error
//! to the tar reader; after the end-of-archive block it passes everything through.

use std::io::{self, Read};

use tar::{EntryType, Header};

use super::RefusedEntry;

/// Largest extension header body accepted. Real ones hold a path, a link target, times and a
/// few extended attributes (a large ACL or SELinux label is a few KiB).
pub const MAX_EXTENSION: u64 = 1 << 20;

const BLOCK: usize = 512;
/// Offset of the GNU sparse header's "more sparse headers follow" flag.
const GNU_IS_EXTENDED: usize = 482;
/// Offset of that flag in a GNU sparse extension block.
const GNU_EXT_IS_EXTENDED: usize = 504;

/// Where the stream is in the archive's structure.
enum State {
    /// Collecting a header block.
    Header,
    /// GNU sparse extension blocks, then `data` bytes of content.
    SparseExtensions { data: u64 },
    /// Content (or an extension body) and its padding to the next block.
    Body {
        remaining: u64,
        padding: u64,
        pax: bool,
    },
    /// Not (or no longer) followed: end of archive, or something the tar reader will refuse.
    PassThrough,
}

/// A reader that refuses oversized tar extension headers; see the module documentation.
pub struct ExtensionCap<R> {
    inner: R,
    state: State,
    block: [u8; BLOCK],
    filled: usize,
    /// Body of the current PAX local header (at most [`MAX_EXTENSION`] bytes), read for the
    /// `size` record that overrides the next member's header size.
    pax: Vec<u8>,
    /// Size given by the last PAX local header, for the next member.
    pax_size: Option<u64>,
}

impl<R: Read> ExtensionCap<R> {
    /// Follows the tar stream read from `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            state: State::Header,
            block: [0; BLOCK],
            filled: 0,
            pax: Vec::new(),
            pax_size: None,
        }
    }

    /// Advances the structure over `bytes`, which the tar reader is about to receive.
    fn follow(&mut self, mut bytes: &[u8]) -> Result<(), RefusedEntry> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::PassThrough => return Ok(()),
                State::Header | State::SparseExtensions { .. } => {
                    let take = (BLOCK - self.filled).min(bytes.len());
                    self.block[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
                    self.filled += take;
                    bytes = &bytes[take..];
                    if self.filled == BLOCK {
                        self.filled = 0;
                        self.next_block()?;
                    }
                }
                State::Body {
                    remaining,
                    padding,
                    pax,
                } => {
                    let take = (*remaining).min(bytes.len() as u64) as usize;
                    if *pax {
                        self.pax.extend_from_slice(&bytes[..take]);
                    }
                    *remaining -= take as u64;
                    bytes = &bytes[take..];
                    let pad = (*padding).min(bytes.len() as u64) as usize;
                    *padding -= pad as u64;
                    bytes = &bytes[pad..];
                    if *remaining == 0 && *padding == 0 {
                        if *pax {
                            self.pax_size = pax_size(&self.pax);
                            self.pax.clear();
                        }
                        self.state = State::Header;
                    }
                }
            }
        }
        Ok(())
    }

    /// A whole block has been collected: a header or a sparse extension block.
    fn next_block(&mut self) -> Result<(), RefusedEntry> {
        if let State::SparseExtensions { data } = self.state {
            let more = self.block[GNU_EXT_IS_EXTENDED] != 0;
            self.state = if more {
                State::SparseExtensions { data }
            } else {
                body(data, false)
            };
            return Ok(());
        }
        let header = Header::from_byte_slice(&self.block);
        let checksum_ok = header.cksum().is_ok_and(|sum| sum == checksum(&self.block));
        if self.block.iter().all(|&b| b == 0) || !checksum_ok {
            self.state = State::PassThrough;
            return Ok(());
        }
        let Ok(declared) = header.entry_size() else {
            self.state = State::PassThrough;
            return Ok(());
        };
        let kind = header.entry_type();
        let extension = kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink();
        if extension {
            if declared > MAX_EXTENSION {
                return Err(RefusedEntry::new(
                    &header.path_bytes(),
                    &format!(
                        "{} of {declared} bytes, more than the {} KiB allowed",
                        describe(kind),
                        MAX_EXTENSION / 1024
                    ),
                ));
            }
            self.state = body(declared, kind.is_pax_local_extensions());
            return Ok(());
        }
        let size = self.pax_size.take().unwrap_or(declared);
        self.state = if kind.is_gnu_sparse() && self.block[GNU_IS_EXTENDED] != 0 {
            State::SparseExtensions { data: size }
        } else {
            body(size, false)
        };
        Ok(())
    }
}

impl<R: Read> Read for ExtensionCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.follow(&buf[..n]).map_err(io::Error::other)?;
        Ok(n)
    }
}

/// The state for `size` bytes of body, padded to the next block.
fn body(size: u64, pax: bool) -> State {
    let padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
    if size == 0 {
        return State::Header;
    }
    State::Body {
        remaining: size,
        padding,
        pax,
    }
}

/// The header checksum as tar computes it: the checksum field counts as spaces.
fn checksum(block: &[u8; BLOCK]) -> u32 {
    block[..148]
        .iter()
        .chain(&block[156..])
        .map(|&b| u32::from(b))
        .sum::<u32>()
        + 8 * u32::from(b' ')
}

/// The `size` record of a PAX local header, as the tar reader applies it.
fn pax_size(records: &[u8]) -> Option<u64> {
    tar::PaxExtensions::new(records)
        .filter_map(Result::ok)
        .filter(|r| r.key_bytes() == b"size")
        .filter_map(|r| std::str::from_utf8(r.value_bytes()).ok()?.parse().ok())
        .last()
}

fn describe(kind: EntryType) -> &'static str {
    if kind.is_gnu_longname() {
        "GNU long name header"
    } else if kind.is_gnu_longlink() {
        "GNU long link header"
    } else {
        "PAX extension header"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8], chunk: usize) -> Result<Vec<u8>, String> {
        let mut cap = ExtensionCap::new(bytes);
        let mut out = Vec::new();
        let mut buf = vec![0; chunk];
        loop {
            match cap.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    fn header(kind: EntryType, name: &str, size: u64) -> Header {
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        h.set_path(name).unwrap();
        h.set_size(size);
        h.set_cksum();
        h
    }

    fn archive(parts: &[(Header, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (h, data) in parts {
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().next_multiple_of(BLOCK), 0);
        }
        out.resize(out.len() + 2 * BLOCK, 0);
        out
    }

    #[test]
    fn the_structure_is_followed_through_pax_sizes_whatever_the_read_sizes() {
        // The PAX `size` record overrides the member's header size (0 here): only by
        // following it is the oversized header after the content found.
        let record = b"13 size=1000\n".to_vec();
        let bytes = archive(&[
            (header(EntryType::Regular, "a", 700), vec![7; 700]),
            (header(EntryType::XHeader, "PaxHeaders/b", 13), record),
            (header(EntryType::Regular, "b", 0), vec![1; 1000]),
            (
                header(EntryType::XHeader, "big", MAX_EXTENSION + 1),
                Vec::new(),
            ),
        ]);
        for chunk in [1, 7, 512, 4096] {
            let err = read_all(&bytes, chunk).unwrap_err();
            assert!(err.contains("`big`"), "{err}");
        }
        let ordinary = archive(&[(header(EntryType::Regular, "a", 700), vec![7; 700])]);
        assert_eq!(read_all(&ordinary, 100).unwrap(), ordinary);
    }

    #[test]
    fn an_oversized_extension_header_is_refused_at_its_header() {
        for kind in [
            EntryType::XHeader,
            EntryType::XGlobalHeader,
            EntryType::GNULongName,
            EntryType::GNULongLink,
        ] {
            let mut bytes = header(kind, "big", 1 << 30).as_bytes().to_vec();
            bytes.extend_from_slice(&[b'x'; 100]);
            let err = read_all(&bytes, 4096).unwrap_err();
            assert!(
                err.contains("`big`") && err.contains("1073741824 bytes"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_cap_sized_extension_header_passes() {
        let bytes = archive(&[(
            header(EntryType::XHeader, "edge", MAX_EXTENSION),
            vec![b'x'; MAX_EXTENSION as usize],
        )]);
        assert_eq!(read_all(&bytes, 65536).unwrap(), bytes);
    }

    #[test]
    fn garbage_is_left_to_the_tar_reader() {
        let mut bytes = vec![1u8; BLOCK];
        bytes.extend_from_slice(header(EntryType::XHeader, "big", 1 << 30).as_bytes());
        assert_eq!(read_all(&bytes, 512).unwrap(), bytes);
    }
}
