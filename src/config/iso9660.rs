//! A small read-only ISO 9660 reader, enough to read files out of a `config-2` image.
//!
//! Names are taken from Rock Ridge (`NM`) entries of the primary volume when present, else
//! from the Joliet supplementary volume, else from the plain ISO names (without `;1`, compared
//! case-insensitively). Only what a configdrive needs is supported: no multi-extent files, no
//! interleaving. Sizes are bounded so a corrupt image cannot make us allocate without limit:
//! a file by the limit its reader gives, a directory by [`MAX_DIR`].

use crate::bounded::Refused;
use std::io::{self, Read, Seek, SeekFrom};

/// Logical block size of every ISO 9660 image we read.
const SECTOR: u64 = 2048;
/// Volume descriptors start at sector 16.
const FIRST_DESCRIPTOR: u64 = 16;
/// Give up on descriptor sets longer than this (real images have 2–4).
const MAX_DESCRIPTORS: u64 = 64;
/// Largest directory we read (a `config-2` directory holds a handful of entries; 1 MiB is
/// room for some 30,000).
const MAX_DIR: u64 = 1 << 20;
/// Longest chain of Rock Ridge continuation areas we follow.
const MAX_CONTINUATIONS: usize = 16;

/// One directory entry as we need it.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    extent: u32,
    size: u32,
    is_dir: bool,
}

/// Which naming a directory tree uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Naming {
    /// Primary volume: Rock Ridge names when present, else ISO names.
    Primary,
    /// Joliet supplementary volume: UCS-2 big-endian names.
    Joliet,
}

/// An opened ISO 9660 image.
pub struct IsoImage<R> {
    reader: R,
    primary_root: Entry,
    joliet_root: Option<Entry>,
}

impl<R: Read + Seek> IsoImage<R> {
    /// Reads the volume descriptors; fails when `reader` is not an ISO 9660 image.
    pub fn open(mut reader: R) -> io::Result<Self> {
        let mut primary_root = None;
        let mut joliet_root = None;
        for index in 0..MAX_DESCRIPTORS {
            let sector = read_at(
                &mut reader,
                (FIRST_DESCRIPTOR + index) * SECTOR,
                SECTOR as usize,
            )?;
            if &sector[1..6] != b"CD001" {
                return Err(invalid(
                    "no ISO 9660 volume descriptor (CD001) at sector 16",
                ));
            }
            match sector[0] {
                1 if primary_root.is_none() => primary_root = Some(root_record(&sector)?),
                2 if is_joliet(&sector) => joliet_root = Some(root_record(&sector)?),
                255 => break,
                _ => {}
            }
        }
        let primary_root = primary_root
            .ok_or_else(|| invalid("ISO 9660 image has no primary volume descriptor"))?;
        Ok(Self {
            reader,
            primary_root,
            joliet_root,
        })
    }

    /// The content of the regular file at `path` (components separated by `/`), or `None`
    /// when no such file exists; a file larger than `limit` is refused unread.
    pub fn read_file(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, Refused> {
        let Some((offset, size)) = self.locate(path)? else {
            return Ok(None);
        };
        if size > limit {
            return Err(Refused::TooLarge(limit));
        }
        Ok(Some(read_at(&mut self.reader, offset, size as usize)?))
    }

    /// Where the regular file at `path` lies in the image: its byte offset and length, or
    /// `None` when no such file exists. Its bytes can be rewritten in place without changing
    /// the directory (same length).
    pub fn locate(&mut self, path: &str) -> io::Result<Option<(u64, u64)>> {
        let mut trees = vec![(self.primary_root.clone(), Naming::Primary)];
        if let Some(joliet) = &self.joliet_root {
            trees.push((joliet.clone(), Naming::Joliet));
        }
        for (root, naming) in trees {
            if let Some(entry) = self.lookup(&root, naming, path)? {
                if entry.is_dir {
                    return Ok(None);
                }
                return Ok(Some((
                    u64::from(entry.extent) * SECTOR,
                    u64::from(entry.size),
                )));
            }
        }
        Ok(None)
    }

    fn lookup(&mut self, root: &Entry, naming: Naming, path: &str) -> io::Result<Option<Entry>> {
        let mut current = root.clone();
        for component in path.split('/').filter(|c| !c.is_empty()) {
            if !current.is_dir {
                return Ok(None);
            }
            let entries = self.read_dir(&current, naming)?;
            let found = entries.into_iter().find(|e| match naming {
                // Plain ISO names are upper case; Rock Ridge and Joliet keep the case.
                Naming::Primary => e.name == component || e.name.eq_ignore_ascii_case(component),
                Naming::Joliet => e.name == component,
            });
            match found {
                Some(entry) => current = entry,
                None => return Ok(None),
            }
        }
        Ok(Some(current))
    }

    fn read_extent(&mut self, entry: &Entry) -> io::Result<Vec<u8>> {
        read_at(
            &mut self.reader,
            u64::from(entry.extent) * SECTOR,
            entry.size as usize,
        )
    }

    fn read_dir(&mut self, dir: &Entry, naming: Naming) -> io::Result<Vec<Entry>> {
        if u64::from(dir.size) > MAX_DIR {
            return Err(invalid("ISO 9660 directory larger than 1 MiB"));
        }
        let data = self.read_extent(dir)?;
        let mut entries = Vec::new();
        let mut pos = 0usize;
        while pos < data.len() {
            let len = usize::from(data[pos]);
            if len == 0 {
                // Records never cross a sector boundary: the rest of this sector is padding.
                pos = (pos / SECTOR as usize + 1) * SECTOR as usize;
                continue;
            }
            let record = data
                .get(pos..pos + len)
                .ok_or_else(|| invalid("ISO 9660 directory record runs past its directory"))?;
            pos += len;
            let parsed = parse_record(record)?;
            if parsed.identifier == [0] || parsed.identifier == [1] {
                continue; // "." and ".."
            }
            let name = match naming {
                Naming::Joliet => joliet_name(parsed.identifier),
                Naming::Primary => match self.rock_ridge_name(parsed.system_use)? {
                    Some(name) => name,
                    None => iso_name(parsed.identifier),
                },
            };
            entries.push(Entry {
                name,
                extent: parsed.extent,
                size: parsed.size,
                is_dir: parsed.is_dir,
            });
        }
        Ok(entries)
    }

    /// Concatenates the `NM` entries of a record's System Use area (following `CE`
    /// continuation areas), or `None` when there are none.
    fn rock_ridge_name(&mut self, system_use: &[u8]) -> io::Result<Option<String>> {
        let mut name: Option<Vec<u8>> = None;
        let mut area = system_use.to_vec();
        for _ in 0..MAX_CONTINUATIONS {
            let mut continuation = None;
            let mut pos = 0usize;
            while pos + 4 <= area.len() {
                let signature = &area[pos..pos + 2];
                let len = usize::from(area[pos + 2]);
                if len < 4 || pos + len > area.len() {
                    break;
                }
                let body = &area[pos..pos + len];
                match signature {
                    b"NM" if len >= 5 => {
                        let flags = body[4];
                        // Flags 2 and 4 mean "." and ".."; they carry no name.
                        if flags & 0b110 == 0 {
                            name.get_or_insert_with(Vec::new)
                                .extend_from_slice(&body[5..]);
                        }
                    }
                    b"CE" if len >= 28 => {
                        let block = le_u32(&body[4..8]);
                        let offset = le_u32(&body[12..16]);
                        let length = le_u32(&body[20..24]);
                        continuation = Some((block, offset, length));
                    }
                    b"ST" => break,
                    _ => {}
                }
                pos += len;
            }
            match continuation {
                Some((block, offset, length)) if length <= SECTOR as u32 => {
                    let at = u64::from(block) * SECTOR + u64::from(offset);
                    area = read_at(&mut self.reader, at, length as usize)?;
                }
                _ => break,
            }
        }
        Ok(name.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// The fields of one directory record we use.
struct Record<'a> {
    extent: u32,
    size: u32,
    is_dir: bool,
    identifier: &'a [u8],
    system_use: &'a [u8],
}

fn parse_record(record: &[u8]) -> io::Result<Record<'_>> {
    if record.len() < 34 {
        return Err(invalid("ISO 9660 directory record shorter than 34 bytes"));
    }
    let name_len = usize::from(record[32]);
    let name_end = 33 + name_len;
    let identifier = record
        .get(33..name_end)
        .ok_or_else(|| invalid("ISO 9660 file identifier runs past its record"))?;
    // A padding byte follows identifiers of even length.
    let system_start = name_end + usize::from(name_len % 2 == 0);
    Ok(Record {
        extent: le_u32(&record[2..6]),
        size: le_u32(&record[10..14]),
        is_dir: record[25] & 0x02 != 0,
        identifier,
        system_use: record.get(system_start..).unwrap_or(&[]),
    })
}

/// The root directory record of a volume descriptor (offset 156).
fn root_record(descriptor: &[u8]) -> io::Result<Entry> {
    let record = parse_record(&descriptor[156..190])?;
    Ok(Entry {
        name: String::new(),
        extent: record.extent,
        size: record.size,
        is_dir: true,
    })
}

/// Joliet volumes announce themselves with a UCS-2 escape sequence (levels 1–3).
fn is_joliet(descriptor: &[u8]) -> bool {
    matches!(&descriptor[88..91], b"%/@" | b"%/C" | b"%/E")
}

fn joliet_name(identifier: &[u8]) -> String {
    let units: Vec<u16> = identifier
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect();
    strip_version(&String::from_utf16_lossy(&units)).to_string()
}

fn iso_name(identifier: &[u8]) -> String {
    let name = String::from_utf8_lossy(identifier);
    let name = strip_version(&name);
    // "FILE." is how a name without extension is recorded.
    name.strip_suffix('.').unwrap_or(name).to_string()
}

fn strip_version(name: &str) -> &str {
    match name.rfind(';') {
        Some(at) => &name[..at],
        None => name,
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn read_at<R: Read + Seek>(reader: &mut R, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    reader.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; len];
    reader.read_exact(&mut buf)?;
    Ok(buf)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;
    use std::io::Cursor;
    use std::path::Path;
    use std::process::Command;

    /// Builds an ISO from `dir` with `tool` and `args`; `None` (with a printed reason) when
    /// the tool is not installed.
    pub(crate) fn build_iso(tool: &str, args: &[&str], dir: &Path, out: &Path) -> Option<()> {
        let status = Command::new(tool)
            .args(args)
            .arg("-o")
            .arg(out)
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Some(()),
            Ok(s) => panic!("{tool} failed: {s}"),
            Err(err) => {
                eprintln!("skipping: {tool} not available ({err})");
                None
            }
        }
    }

    fn sample_tree(root: &Path) {
        let latest = root.join("openstack/latest");
        fs::create_dir_all(&latest).unwrap();
        fs::write(latest.join("meta_data.json"), br#"{"uuid":"u-1"}"#).unwrap();
        fs::write(latest.join("user_data"), b"#cloud-config\n").unwrap();
        fs::write(latest.join("a_rather_long_file_name_for_iso.json"), b"long").unwrap();
        // A directory with enough entries to span more than one sector.
        let many = root.join("many");
        fs::create_dir_all(&many).unwrap();
        for i in 0..120 {
            fs::write(
                many.join(format!("entry_number_{i:03}.txt")),
                format!("{i}"),
            )
            .unwrap();
        }
    }

    /// Limit of the reads in these tests.
    const LIMIT: u64 = 1 << 20;

    fn check_image(iso: &Path) {
        let bytes = fs::read(iso).unwrap();
        let mut image = IsoImage::open(Cursor::new(bytes)).unwrap();
        assert_eq!(
            image
                .read_file("openstack/latest/meta_data.json", LIMIT)
                .unwrap(),
            Some(br#"{"uuid":"u-1"}"#.to_vec())
        );
        assert_eq!(
            image
                .read_file("openstack/latest/user_data", LIMIT)
                .unwrap(),
            Some(b"#cloud-config\n".to_vec())
        );
        assert_eq!(
            image
                .read_file(
                    "openstack/latest/a_rather_long_file_name_for_iso.json",
                    LIMIT
                )
                .unwrap(),
            Some(b"long".to_vec())
        );
        assert_eq!(
            image.read_file("many/entry_number_117.txt", LIMIT).unwrap(),
            Some(b"117".to_vec())
        );
        assert_eq!(
            image.read_file("openstack/latest/missing", LIMIT).unwrap(),
            None
        );
        assert_eq!(image.read_file("openstack/latest", LIMIT).unwrap(), None);
        assert!(matches!(
            image.read_file("openstack/latest/user_data", 13),
            Err(Refused::TooLarge(13))
        ));
    }

    #[test]
    fn reads_xorriso_rock_ridge_and_joliet_image() {
        let dir = tempfile::tempdir().unwrap();
        sample_tree(&dir.path().join("tree"));
        let iso = dir.path().join("cd.iso");
        let args = ["-as", "mkisofs", "-quiet", "-V", "config-2", "-J", "-r"];
        if build_iso("xorriso", &args, &dir.path().join("tree"), &iso).is_some() {
            check_image(&iso);
        }
    }

    #[test]
    fn reads_joliet_only_image() {
        let dir = tempfile::tempdir().unwrap();
        sample_tree(&dir.path().join("tree"));
        let iso = dir.path().join("cd.iso");
        let args = ["-as", "mkisofs", "-quiet", "-V", "config-2", "-J"];
        if build_iso("xorriso", &args, &dir.path().join("tree"), &iso).is_some() {
            check_image(&iso);
        }
    }

    #[test]
    fn reads_rock_ridge_only_image() {
        let dir = tempfile::tempdir().unwrap();
        sample_tree(&dir.path().join("tree"));
        let iso = dir.path().join("cd.iso");
        let args = ["-as", "mkisofs", "-quiet", "-V", "config-2", "-r"];
        if build_iso("xorriso", &args, &dir.path().join("tree"), &iso).is_some() {
            check_image(&iso);
        }
    }

    #[test]
    fn reads_genisoimage_image_as_ironic_builds_it() {
        let dir = tempfile::tempdir().unwrap();
        sample_tree(&dir.path().join("tree"));
        let iso = dir.path().join("cd.iso");
        let args = [
            "-quiet",
            "-ldots",
            "-allow-lowercase",
            "-allow-multidot",
            "-l",
            "-publisher",
            "ironic",
            "-J",
            "-r",
            "-V",
            "config-2",
        ];
        if build_iso("genisoimage", &args, &dir.path().join("tree"), &iso).is_some() {
            check_image(&iso);
        }
    }

    #[test]
    fn follows_rock_ridge_continuation_areas_for_long_names() {
        // A 200-character name does not fit in a directory record: mkisofs moves the NM
        // entry into a continuation area (CE).
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(&tree).unwrap();
        let long = format!("{}.json", "n".repeat(195));
        fs::write(tree.join(&long), b"far").unwrap();
        let iso = dir.path().join("cd.iso");
        let args = ["-as", "mkisofs", "-quiet", "-V", "config-2", "-r"];
        if build_iso("xorriso", &args, &tree, &iso).is_none() {
            return;
        }
        let mut image = IsoImage::open(Cursor::new(fs::read(&iso).unwrap())).unwrap();
        assert_eq!(
            image.read_file(&long, LIMIT).unwrap(),
            Some(b"far".to_vec())
        );
    }

    #[test]
    fn rejects_data_that_is_not_iso9660() {
        let err = IsoImage::open(Cursor::new(vec![0u8; 64 * 1024]))
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let short = IsoImage::open(Cursor::new(vec![0u8; 100])).err().unwrap();
        assert_eq!(short.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn iso_names_lose_version_and_trailing_dot() {
        assert_eq!(iso_name(b"META_DAT.JSO;1"), "META_DAT.JSO");
        assert_eq!(iso_name(b"USER_DAT.;1"), "USER_DAT");
        assert_eq!(joliet_name(&[0, b'a', 0, b';', 0, b'1']), "a");
    }
}
