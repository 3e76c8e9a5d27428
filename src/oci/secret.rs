//! A value that must never reach a log, a plan or an error message: pull secrets here, and
//! every other secret of the orders too.

use serde::{Serialize, Serializer};
use std::fmt;

/// Wraps user_data, passwords and registry credentials: `Debug`, `Display` and `Serialize`
/// all print `<redacted>`; only [`Secret::expose`] gives the content.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Vec<u8>);

/// What every redacted value prints as.
pub const REDACTED: &str = "<redacted>";

impl Secret {
    /// Wraps raw bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The content, for writing it where it belongs (never for logging).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Content length in bytes, safe to log.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no content.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}
