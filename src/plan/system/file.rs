//! A file the installer writes into the target, as data.

use crate::config::Secret;
use serde::{Serialize, Serializer};
use std::path::{Path, PathBuf};

/// The content of a [`TargetFile`]; secrets stay wrapped until written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileContents {
    /// Content that may be printed.
    Plain(Vec<u8>),
    /// Content that must never reach a log or the plan (user_data).
    Secret(Secret),
}

impl FileContents {
    /// The bytes to write.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Plain(bytes) => bytes,
            Self::Secret(secret) => secret.expose(),
        }
    }

    /// True for [`FileContents::Secret`].
    pub fn is_secret(&self) -> bool {
        matches!(self, Self::Secret(_))
    }
}

/// A file to write into the installed system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFile {
    /// Path relative to the target root, e.g. `etc/fstab` (never absolute, never `..`).
    pub path: PathBuf,
    /// What to write.
    pub contents: FileContents,
    /// Permission bits, e.g. `0o600`.
    pub mode: u32,
}

impl TargetFile {
    /// A file with printable content.
    pub fn plain(path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>, mode: u32) -> Self {
        Self {
            path: path.into(),
            contents: FileContents::Plain(contents.into()),
            mode,
        }
    }

    /// A file whose content is a secret.
    pub fn secret(path: impl Into<PathBuf>, contents: Secret, mode: u32) -> Self {
        Self {
            path: path.into(),
            contents: FileContents::Secret(contents),
            mode,
        }
    }

    /// The content as text, for tests and plan previews of plain files (`None` for secrets).
    pub fn text(&self) -> Option<&str> {
        match &self.contents {
            FileContents::Plain(bytes) => std::str::from_utf8(bytes).ok(),
            FileContents::Secret(_) => None,
        }
    }
}

/// The plan lists files by their path in the installed system (`/etc/fstab`), mode and size;
/// contents are never serialised.
impl Serialize for TargetFile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("TargetFile", 4)?;
        st.serialize_field("path", &Path::new("/").join(&self.path))?;
        st.serialize_field("mode", &format!("{:04o}", self.mode))?;
        st.serialize_field("bytes", &self.contents.bytes().len())?;
        st.serialize_field("secret", &self.contents.is_secret())?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_path_mode_and_size_but_never_contents() {
        let file = TargetFile::secret(
            "var/lib/cloud/seed/nocloud-net/user-data",
            Secret::new(b"password: hunter2".to_vec()),
            0o600,
        );
        let json = serde_json::to_string(&file).expect("serialise");
        assert_eq!(
            json,
            r#"{"path":"/var/lib/cloud/seed/nocloud-net/user-data","mode":"0600","bytes":17,"secret":true}"#
        );
        assert!(!format!("{file:?}").contains("hunter2"));
        assert_eq!(file.contents.bytes(), b"password: hunter2");
        assert_eq!(file.text(), None);
        assert_eq!(
            TargetFile::plain("etc/hostname", "a\n", 0o644).text(),
            Some("a\n")
        );
    }
}
