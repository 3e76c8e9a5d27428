//! Builders for synthetic layers and exact snapshots of directory trees.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use ocimetal::oci::apply::{Applier, LayerStats};
use tar::{EntryType, Header};

/// Modification time every member gets unless a test says otherwise.
pub const MTIME: i64 = 1_600_000_000;

/// Header fields of one member.
#[derive(Debug, Clone)]
pub struct Meta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    /// Extra PAX records written before the member (xattrs, sub-second times...).
    pub pax: Vec<(String, Vec<u8>)>,
}

impl Meta {
    pub fn mode(mode: u32) -> Self {
        Self {
            mode,
            uid: 0,
            gid: 0,
            mtime: MTIME,
            pax: Vec::new(),
        }
    }

    pub fn owner(mut self, uid: u64, gid: u64) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn mtime(mut self, mtime: i64) -> Self {
        self.mtime = mtime;
        self
    }

    pub fn xattr(mut self, key: &str, value: &[u8]) -> Self {
        self.pax
            .push((format!("SCHILY.xattr.{key}"), value.to_vec()));
        self
    }

    pub fn pax(mut self, key: &str, value: &[u8]) -> Self {
        self.pax.push((key.to_owned(), value.to_vec()));
        self
    }
}

/// An uncompressed layer tar built in memory with raw headers, so that names the `tar` crate's
/// own builder would reject (`..`, absolute paths) can be written too.
pub struct Layer {
    ar: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Self {
        Self {
            ar: tar::Builder::new(Vec::new()),
        }
    }

    /// Appends one member. Names and link targets longer than the header fields go into PAX
    /// `path` / `linkpath` records.
    pub fn member(
        mut self,
        kind: EntryType,
        name: &[u8],
        link: Option<&[u8]>,
        data: &[u8],
        meta: Meta,
    ) -> Self {
        let mut header = Header::new_ustar();
        let mut pax: Vec<(String, Vec<u8>)> = meta.pax.clone();
        {
            let old = header.as_old_mut();
            if name.len() <= old.name.len() {
                old.name[..name.len()].copy_from_slice(name);
            } else {
                pax.push(("path".into(), name.to_vec()));
                old.name[..10].copy_from_slice(b"long-name!");
            }
            if let Some(link) = link {
                if link.len() <= old.linkname.len() {
                    old.linkname[..link.len()].copy_from_slice(link);
                } else {
                    pax.push(("linkpath".into(), link.to_vec()));
                    old.linkname[..10].copy_from_slice(b"long-link!");
                }
            }
        }
        header.set_entry_type(kind);
        header.set_mode(meta.mode);
        header.set_uid(meta.uid);
        header.set_gid(meta.gid);
        header.set_mtime(meta.mtime as u64);
        header.set_size(data.len() as u64);
        header.set_cksum();
        if !pax.is_empty() {
            self.ar
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .unwrap();
        }
        self.ar.append(&header, data).unwrap();
        self
    }

    pub fn file(self, name: &str, data: &[u8]) -> Self {
        self.file_with(name, data, Meta::mode(0o644))
    }

    pub fn file_with(self, name: &str, data: &[u8], meta: Meta) -> Self {
        self.member(EntryType::Regular, name.as_bytes(), None, data, meta)
    }

    pub fn dir(self, name: &str) -> Self {
        self.dir_with(name, Meta::mode(0o755))
    }

    pub fn dir_with(self, name: &str, meta: Meta) -> Self {
        self.member(EntryType::Directory, name.as_bytes(), None, b"", meta)
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.symlink_with(name, target, Meta::mode(0o777))
    }

    pub fn symlink_with(self, name: &str, target: &str, meta: Meta) -> Self {
        self.member(
            EntryType::Symlink,
            name.as_bytes(),
            Some(target.as_bytes()),
            b"",
            meta,
        )
    }

    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.member(
            EntryType::Link,
            name.as_bytes(),
            Some(target.as_bytes()),
            b"",
            Meta::mode(0o644),
        )
    }

    /// `.wh.NAME` next to `path`'s final component.
    pub fn whiteout(self, path: &str) -> Self {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let marker = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&marker, b"")
    }

    pub fn opaque(self, dir: &str) -> Self {
        let marker = if dir.is_empty() {
            ".wh..wh..opq".to_owned()
        } else {
            format!("{dir}/.wh..wh..opq")
        };
        self.file(&marker, b"")
    }

    pub fn device(
        mut self,
        kind: EntryType,
        name: &str,
        major: u32,
        minor: u32,
        meta: Meta,
    ) -> Self {
        let mut header = Header::new_ustar();
        header.set_path(name).unwrap();
        header.set_entry_type(kind);
        header.set_mode(meta.mode);
        header.set_uid(meta.uid);
        header.set_gid(meta.gid);
        header.set_mtime(meta.mtime as u64);
        header.set_size(0);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        header.set_cksum();
        self.ar.append(&header, &b""[..]).unwrap();
        self
    }

    /// Appends an already-made header and data verbatim.
    pub fn raw(mut self, header: &Header, data: &[u8]) -> Self {
        self.ar.append(header, data).unwrap();
        self
    }

    /// Direct access for members made with the `tar` crate's own builder (GNU long names).
    pub fn builder(&mut self) -> &mut tar::Builder<Vec<u8>> {
        &mut self.ar
    }

    pub fn build(self) -> Vec<u8> {
        self.ar.into_inner().unwrap()
    }
}

/// What a tree node is, with what distinguishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    Char(u64),
    Block(u64),
    Fifo,
    Socket,
}

/// One node of a snapshot. `mtime: None` in an expectation matches any time.
#[derive(Clone, PartialEq, Eq)]
pub struct Node {
    pub what: What,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Option<(i64, i64)>,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Link count of non-directories (0 for directories, whose count depends on subdirs).
    pub nlink: u64,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.what {
            What::File(c) if c.len() > 64 => format!("File({} bytes)", c.len()),
            What::File(c) => format!("File({:?})", String::from_utf8_lossy(c)),
            What::Symlink(t) => format!("Symlink({:?})", String::from_utf8_lossy(t)),
            other => format!("{other:?}"),
        };
        let xattrs: Vec<String> = self
            .xattrs
            .iter()
            .map(|(k, v)| format!("{}={:?}", String::from_utf8_lossy(k), v))
            .collect();
        write!(
            f,
            "{what} mode={:o} owner={}:{} mtime={:?} nlink={} xattrs={xattrs:?}",
            self.mode, self.uid, self.gid, self.mtime, self.nlink
        )
    }
}

impl Node {
    fn new(what: What, mode: u32) -> Self {
        let nlink = if what == What::Dir { 0 } else { 1 };
        Self {
            what,
            mode,
            uid: 0,
            gid: 0,
            mtime: Some((MTIME, 0)),
            xattrs: BTreeMap::new(),
            nlink,
        }
    }

    pub fn file(content: &[u8], mode: u32) -> Self {
        Self::new(What::File(content.to_vec()), mode)
    }

    pub fn dir(mode: u32) -> Self {
        Self::new(What::Dir, mode)
    }

    pub fn symlink(target: &str) -> Self {
        Self::new(What::Symlink(target.as_bytes().to_vec()), 0o777)
    }

    pub fn special(what: What, mode: u32) -> Self {
        Self::new(what, mode)
    }

    pub fn owner(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn mtime(mut self, secs: i64, nanos: i64) -> Self {
        self.mtime = Some((secs, nanos));
        self
    }

    pub fn any_mtime(mut self) -> Self {
        self.mtime = None;
        self
    }

    pub fn xattr(mut self, key: &str, value: &[u8]) -> Self {
        self.xattrs.insert(key.as_bytes().to_vec(), value.to_vec());
        self
    }

    pub fn nlink(mut self, nlink: u64) -> Self {
        self.nlink = nlink;
        self
    }

    fn matches(&self, actual: &Node) -> bool {
        let mut actual = actual.clone();
        if self.mtime.is_none() {
            actual.mtime = None;
        }
        *self == actual
    }
}

/// Every node below `dir` (not `dir` itself), by `/`-separated relative path; symlinks are not
/// followed.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let node = node_of(&path);
        let is_dir = node.what == What::Dir;
        out.insert(relative(base, &path), node);
        if is_dir {
            walk(base, &path, out);
        }
    }
}

fn relative(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Snapshot of a single path (not followed).
pub fn node_of(path: &Path) -> Node {
    let meta = fs::symlink_metadata(path).unwrap();
    let ft = meta.file_type();
    let what = if ft.is_file() {
        What::File(fs::read(path).unwrap())
    } else if ft.is_dir() {
        What::Dir
    } else if ft.is_symlink() {
        What::Symlink(fs::read_link(path).unwrap().as_os_str().as_bytes().to_vec())
    } else if ft.is_char_device() {
        What::Char(meta.rdev())
    } else if ft.is_block_device() {
        What::Block(meta.rdev())
    } else if ft.is_fifo() {
        What::Fifo
    } else {
        What::Socket
    };
    let nlink = if ft.is_dir() { 0 } else { meta.nlink() };
    Node {
        what,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: Some((meta.mtime(), meta.mtime_nsec())),
        xattrs: xattrs(path),
        nlink,
    }
}

/// Extended attributes of `path` itself (not followed).
pub fn xattrs(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 65536];
    // SAFETY: valid C string and buffer for the duration of the call.
    let len = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(len >= 0, "llistxattr {}", path.display());
    names.truncate(len as usize);
    let mut out = BTreeMap::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let key = CString::new(name).unwrap();
        let mut value = vec![0u8; 65536];
        // SAFETY: as above.
        let n = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                key.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert!(n >= 0, "lgetxattr {}", path.display());
        value.truncate(n as usize);
        out.insert(name.to_vec(), value);
    }
    out
}

/// Inode number of `path` itself.
pub fn inode(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap().ino()
}

/// An outer directory holding sentinels and the root layers are applied to.
pub struct Fixture {
    pub outer: tempfile::TempDir,
    pub root: PathBuf,
    before: BTreeMap<String, Node>,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    pub fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        let o = outer.path();
        fs::write(o.join("sentinel"), b"outside the root").unwrap();
        fs::create_dir(o.join("etc")).unwrap();
        fs::write(o.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::create_dir(o.join("victim")).unwrap();
        fs::write(o.join("victim/file"), b"victim").unwrap();
        std::os::unix::fs::symlink("sentinel", o.join("link-to-sentinel")).unwrap();
        let root = o.join("root");
        fs::create_dir(&root).unwrap();
        let mut fixture = Self {
            outer,
            root,
            before: BTreeMap::new(),
        };
        fixture.before = fixture.outer_listing();
        fixture
    }

    /// Everything outside the root, plus the root directory's own ownership and mode (its
    /// mtime legitimately changes when layers add entries).
    pub fn outer_listing(&self) -> BTreeMap<String, Node> {
        let mut all = snapshot(self.outer.path());
        all.retain(|path, _| !path.starts_with("root/"));
        if let Some(root) = all.get_mut("root") {
            root.mtime = None;
        }
        let own = node_of(self.outer.path());
        all.insert(".".into(), own);
        all
    }

    pub fn assert_outer_unchanged(&self) {
        self.assert_outer_unchanged_after("the layers");
    }

    pub fn assert_outer_unchanged_after(&self, what: &str) {
        let after = self.outer_listing();
        assert_eq!(
            self.before, after,
            "something outside the root changed after {what}"
        );
    }

    /// Applies `layers` in order with one applier.
    pub fn apply(&self, layers: &[Vec<u8>]) -> anyhow::Result<Vec<LayerStats>> {
        let mut applier = Applier::open(&self.root)?;
        layers
            .iter()
            .map(|layer| applier.apply_layer(&mut layer.as_slice()))
            .collect()
    }

    pub fn tree(&self) -> BTreeMap<String, Node> {
        snapshot(&self.root)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Asserts the root holds exactly `expected`.
    pub fn assert_tree(&self, expected: &[(&str, Node)]) {
        assert_tree_eq(&self.tree(), expected);
    }
}

/// Asserts `actual` holds exactly `expected`, reporting every difference.
pub fn assert_tree_eq(actual: &BTreeMap<String, Node>, expected: &[(&str, Node)]) {
    let expected: BTreeMap<String, Node> = expected
        .iter()
        .map(|(p, n)| (p.to_string(), n.clone()))
        .collect();
    let mut problems = Vec::new();
    for (path, want) in &expected {
        match actual.get(path) {
            None => problems.push(format!("missing  {path}: want {want:?}")),
            Some(got) if !want.matches(got) => problems.push(format!(
                "differs  {path}:\n    want {want:?}\n    got  {got:?}"
            )),
            Some(_) => {}
        }
    }
    for (path, got) in actual {
        if !expected.contains_key(path) {
            problems.push(format!("extra    {path}: {got:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "tree differs:\n{}",
        problems.join("\n")
    );
}
