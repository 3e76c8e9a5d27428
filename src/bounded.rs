//! Limits on what is read from outside: files named by orders, files of a configdrive, HTTP
//! bodies, the number of values in a JSON document, and the text of an answer quoted in an
//! error.
//!
//! The installer runs in a small ramdisk. An input larger than it may be, one that never
//! ends (`/dev/zero`) or never starts (a FIFO with no writer) is refused with one line naming
//! it, before it can take the memory or the time the install needs. docs/orders.md and
//! docs/pull.md list the limits.

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

/// One mebibyte.
pub const MIB: u64 = 1 << 20;

/// How much of an error answer is read to quote from it.
const EXCERPT_READ: usize = 4096;
/// How long reading that much may take.
const EXCERPT_TIME: Duration = Duration::from_secs(10);
/// Characters of an answer quoted in an error line.
const EXCERPT_CHARS: usize = 200;

/// Why a bounded read refused its input; printed after the input's name.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// More bytes than the limit.
    #[error("is larger than {}", size(*.0))]
    TooLarge(u64),
    /// A FIFO, a device, a directory or a socket.
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    /// A symbolic link where none is followed.
    #[error("is a symbolic link (or lies behind one); links are not followed here")]
    Symlink,
    /// The read itself failed.
    #[error("cannot be read ({0})")]
    Io(#[from] io::Error),
}

impl Refused {
    /// The input does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io(err) if err.kind() == io::ErrorKind::NotFound)
    }
}

/// `limit` as people write it: `1 MiB`, `4096 bytes`.
pub fn size(limit: u64) -> String {
    if limit >= MIB && limit % MIB == 0 {
        format!("{} MiB", limit / MIB)
    } else {
        format!("{limit} bytes")
    }
}

/// All of `reader`, when it holds at most `limit` bytes.
///
/// The buffer is taken zeroed at its full size at once: the system backs only the pages
/// written, and no growing copy ever holds a read twice.
pub fn read_to_limit(mut reader: impl Read, limit: u64) -> Result<Vec<u8>, Refused> {
    let room = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let mut bytes = vec![0u8; room];
    let mut filled = 0;
    while filled < room {
        match reader.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err.into()),
        }
    }
    if filled as u64 > limit {
        return Err(Refused::TooLarge(limit));
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// The regular file at `path` (symlinks followed: the operator named it), at most `limit`
/// bytes. A FIFO is opened without waiting for a writer, then refused.
pub fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, Refused> {
    read_opened(open_regular(path)?, limit)
}

/// The regular file at `path` (symlinks followed: the operator named it), opened for reading.
/// A FIFO is opened without waiting for a writer, then refused.
pub fn open_regular(path: &Path) -> Result<File, Refused> {
    let fd = nix::fcntl::open(path, read_flags(), Mode::empty()).map_err(io::Error::from)?;
    regular(File::from(fd))
}

/// The regular file `rel` under the directory `dir`, at most `limit` bytes, resolved without
/// following any symlink and without leaving `dir`; `None` when it does not exist.
pub fn read_beneath(dir: &Path, rel: &Path, limit: u64) -> Result<Option<Vec<u8>>, Refused> {
    let root = nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)?;
    let how = OpenHow::new()
        .flags(read_flags() | OFlag::O_NOFOLLOW)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    match openat2(root.as_fd(), rel, how) {
        Ok(fd) => read_opened(regular(File::from(fd))?, limit).map(Some),
        Err(Errno::ENOENT) => Ok(None),
        Err(Errno::ELOOP) => Err(Refused::Symlink),
        Err(errno) => Err(Refused::Io(errno.into())),
    }
}

/// `file`, when it is a regular file.
fn regular(file: File) -> Result<File, Refused> {
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(Refused::NotRegular(kind_name(kind)));
    }
    Ok(file)
}

/// All of `file`, refused unread when its size is over `limit` (and still when it grows
/// past it while being read).
fn read_opened(file: File, limit: u64) -> Result<Vec<u8>, Refused> {
    if file.metadata()?.len() > limit {
        return Err(Refused::TooLarge(limit));
    }
    read_to_limit(file, limit)
}

/// Read-only, never waiting on a FIFO, never becoming the controlling terminal.
fn read_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC
}

/// "a FIFO", "a character device", "a directory" and so on.
pub fn kind_name(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// Why a bounded HTTP body was not read whole.
#[derive(Debug)]
pub enum BodyError {
    /// The server sent (or announced) more than the limit.
    TooLarge(u64),
    /// The connection failed meanwhile.
    Transport(reqwest::Error),
}

/// The whole body of `response`, when it is at most `limit` bytes; reading stops at the
/// first byte past the limit.
pub async fn read_body(response: &mut reqwest::Response, limit: u64) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The start of an error answer's body, as one short line for an error message: at most
/// 4 KiB are read, for at most 10 s; the rest is never downloaded.
pub async fn body_excerpt(mut response: reqwest::Response) -> String {
    let mut head = Vec::new();
    let _ = tokio::time::timeout(EXCERPT_TIME, async {
        while head.len() < EXCERPT_READ {
            match response.chunk().await {
                Ok(Some(chunk)) => head.extend_from_slice(&chunk),
                _ => break,
            }
        }
    })
    .await;
    excerpt(&head)
}

/// `bytes` as one line of at most 200 characters: control characters become spaces, runs of
/// white space one space, and a cut is marked with `…`.
pub fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut line = String::new();
    let mut chars = 0;
    let mut cut = false;
    for c in text.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if c.is_whitespace() && (line.is_empty() || line.ends_with(' ')) {
            continue;
        }
        if chars == EXCERPT_CHARS {
            cut = true;
            break;
        }
        line.push(if c.is_whitespace() { ' ' } else { c });
        chars += 1;
    }
    let mut line = line.trim_end().to_string();
    if cut {
        line.push('…');
    }
    line
}

/// Most values (objects, lists, strings, numbers) a JSON document from outside may hold. A
/// parsed value takes 32 bytes and more, so `[0,0,0,…]` would take 16 times its size; real
/// orders hold some hundreds.
pub const MAX_JSON_VALUES: usize = 100_000;

/// The JSON text holds more than [`MAX_JSON_VALUES`] values.
pub fn too_many_values(bytes: &[u8]) -> bool {
    value_count(bytes) > MAX_JSON_VALUES
}

/// An upper bound of the values in a JSON text: one, plus one per `[`, `{` and `,` outside
/// strings (every value but the first of a list or object follows a comma).
fn value_count(bytes: &[u8]) -> usize {
    let mut count = 1;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' | b',' => count += 1,
                _ => {}
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn excerpts_are_one_short_clean_line() {
        assert_eq!(
            excerpt(b"  bad\r\n request\x1b[31m!\t\0 "),
            "bad request [31m!"
        );
        let long = excerpt(&[b'x'; 10_000]);
        assert_eq!(long.chars().count(), 201);
        assert!(long.ends_with('…'));
        assert_eq!(excerpt(b"\xff\xfeok"), "\u{fffd}\u{fffd}ok");
        assert_eq!(excerpt(b""), "");
    }

    #[test]
    fn counts_json_values_outside_strings() {
        assert_eq!(value_count(b"{}"), 2);
        assert_eq!(value_count(br#"{"a":[1,2,3],"b":"x,[{\",y"}"#), 6);
        assert!(!too_many_values("[0]".repeat(1000).as_bytes()));
        assert!(too_many_values(
            format!("[{}0]", "0,".repeat(MAX_JSON_VALUES)).as_bytes()
        ));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(16 * MIB), "16 MiB");
        assert_eq!(size(4096), "4096 bytes");
    }

    #[test]
    fn files_are_read_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_file(&path, 5).unwrap(), b"12345");
        assert!(matches!(read_file(&path, 4), Err(Refused::TooLarge(4))));
        assert!(read_file(&dir.path().join("none"), 5)
            .unwrap_err()
            .is_not_found());
        // A device that never ends is refused before a byte is read.
        let err = read_file(Path::new("/dev/zero"), 5).unwrap_err();
        assert_eq!(err.to_string(), "is a character device, not a regular file");
        assert!(matches!(
            read_to_limit(io::repeat(0), 10),
            Err(Refused::TooLarge(10))
        ));
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let err = read_file(&fifo, 5).unwrap_err();
        assert_eq!(err.to_string(), "is a FIFO, not a regular file");
        let err = read_beneath(dir.path(), Path::new("fifo"), 5).unwrap_err();
        assert!(matches!(err, Refused::NotRegular("a FIFO")), "{err}");
    }

    #[test]
    fn reads_beneath_a_directory_follow_no_link() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        std::fs::write(root.join("real/sub/f"), b"data").unwrap();
        let rel = |p: &str| Path::new(p).to_path_buf();
        assert_eq!(
            read_beneath(root, &rel("real/sub/f"), 10).unwrap(),
            Some(b"data".to_vec())
        );
        assert_eq!(read_beneath(root, &rel("real/none"), 10).unwrap(), None);
        symlink("/dev/zero", root.join("real/zero")).unwrap();
        symlink("f", root.join("real/sub/g")).unwrap();
        symlink("real", root.join("link")).unwrap();
        for path in ["real/zero", "real/sub/g", "link/sub/f"] {
            let err = read_beneath(root, &rel(path), 10).unwrap_err();
            assert!(matches!(err, Refused::Symlink), "{path}: {err}");
        }
        assert!(read_beneath(root, &rel("../x"), 10).is_err());
        assert!(matches!(
            read_beneath(root, &rel("real/sub/f"), 3),
            Err(Refused::TooLarge(3))
        ));
        assert!(matches!(
            read_beneath(root, &rel("real"), 3),
            Err(Refused::NotRegular("a directory"))
        ));
    }
}
