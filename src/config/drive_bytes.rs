//! A configdrive handed over as one document (fetched from a URL, or a file), in any of the
//! forms Ironic accepts for `configdrive`:
//!
//! - an ISO 9660 image labelled `config-2`;
//! - the same image gzipped;
//! - a dictionary in JSON: `{"meta_data": …, "user_data": …, "network_data": …}`;
//! - the string Ironic stores: base64 of the gzipped image (line breaks allowed).
//!
//! The form is told by the content, never by a name or a header, and each form is read by
//! the reader [`ConfigDrive`] already has for it.

use super::configdrive::{ConfigDrive, MAX_IMAGE};
use crate::bounded::{self, Refused};
use crate::error::OrderError;
use crate::json_field::check_value_count;
use serde_json::Value;
use std::io::Cursor;

/// Largest configdrive document read from a URL, in any form (Ironic caps a configdrive at
/// 64 MiB).
pub const MAX_DRIVE_DOCUMENT: u64 = 64 * bounded::MIB;

/// Where an ISO 9660 image carries its first volume descriptor's identifier.
const ISO_MAGIC_AT: usize = 32769;
const ISO_MAGIC: &[u8] = b"CD001";
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// The forms a configdrive document comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveForm {
    /// An ISO 9660 image.
    Iso,
    /// A gzipped ISO 9660 image.
    GzipIso,
    /// A JSON dictionary with `meta_data`, `user_data`, `network_data`.
    Json,
    /// Ironic's stored string: base64 of a gzipped ISO image.
    Base64,
}

impl DriveForm {
    /// The form `bytes` have, by their content; `None` when they have none of them.
    pub fn of(bytes: &[u8]) -> Option<Self> {
        if bytes.get(ISO_MAGIC_AT..ISO_MAGIC_AT + ISO_MAGIC.len()) == Some(ISO_MAGIC) {
            return Some(Self::Iso);
        }
        if bytes.starts_with(GZIP_MAGIC) {
            return Some(Self::GzipIso);
        }
        let mut text = bytes.iter().filter(|b| !b.is_ascii_whitespace()).peekable();
        match text.peek() {
            None => None,
            Some(b'{') => Some(Self::Json),
            Some(_) => text
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
                .then_some(Self::Base64),
        }
    }
}

impl ConfigDrive {
    /// Reads a configdrive document in any of Ironic's forms (module docs); `origin` names it
    /// in errors and the log. Nothing of the content is quoted in an error: user_data is
    /// secret.
    pub fn from_bytes(bytes: Vec<u8>, origin: &str) -> Result<Self, OrderError> {
        match DriveForm::of(&bytes) {
            Some(DriveForm::Iso) => Self::from_iso(Cursor::new(bytes), origin),
            Some(DriveForm::GzipIso) => {
                let image = gunzip(&bytes, origin)?;
                drop(bytes);
                Self::from_iso(Cursor::new(image), origin)
            }
            Some(DriveForm::Json) => {
                check_value_count(&bytes, origin)?;
                let value: Value = serde_json::from_slice(&bytes).map_err(|err| {
                    OrderError::new(
                        origin,
                        format!(
                            "is not valid JSON ({err}); a configdrive in JSON is an object with \
                             meta_data, user_data and network_data"
                        ),
                    )
                })?;
                drop(bytes);
                Self::from_dict_with(&value, origin, |member| format!("{origin}: {member}"))
            }
            Some(DriveForm::Base64) => {
                // Only ASCII passed the check above.
                let text = String::from_utf8(bytes).unwrap_or_default();
                Self::from_ironic_string(text, origin)
            }
            None => Err(OrderError::new(
                origin,
                "is not a configdrive: neither an ISO 9660 image, a gzipped one, a JSON object \
                 with meta_data/user_data/network_data, nor base64 of a gzipped ISO image as \
                 Ironic stores it",
            )),
        }
    }
}

/// The image a gzip stream holds, at most [`MAX_IMAGE`].
fn gunzip(bytes: &[u8], origin: &str) -> Result<Vec<u8>, OrderError> {
    bounded::read_to_limit(flate2::read::GzDecoder::new(bytes), MAX_IMAGE).map_err(
        |refused| match refused {
            Refused::TooLarge(_) => OrderError::new(
                origin,
                "decompresses to more than 64 MiB; a configdrive must be smaller",
            ),
            other => OrderError::new(
                origin,
                format!("is gzip, but cannot be decompressed ({other}); expected a gzipped config-2 ISO image"),
            ),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::configdrive::tests::{ironic_string, iso_from_tree, write_tree};
    use serde_json::json;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    /// A config-2 ISO image with every file, or `None` without xorriso.
    fn sample_iso(dir: &std::path::Path) -> Option<Vec<u8>> {
        let tree = dir.join("tree");
        write_tree(
            &tree,
            &json!({"uuid": "u-7", "local-hostname": "n7"}),
            Some(b"#cloud-config\nsecret: ud-7\n"),
            Some(&json!({"links": []})),
        );
        iso_from_tree(&tree)
    }

    fn assert_sample(drive: &ConfigDrive, origin: &str) {
        assert_eq!(drive.meta_data["local-hostname"], "n7");
        assert_eq!(
            drive.user_data.as_ref().unwrap().expose(),
            b"#cloud-config\nsecret: ud-7\n"
        );
        assert_eq!(drive.network_data, Some(json!({"links": []})));
        assert_eq!(drive.origin, origin);
    }

    #[test]
    fn every_iso_form_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let Some(iso) = sample_iso(dir.path()) else {
            return;
        };
        let wrapped: String = ironic_string(&iso)
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
            .collect();
        for (form, bytes) in [
            (DriveForm::Iso, iso.clone()),
            (DriveForm::GzipIso, gzip(&iso)),
            (DriveForm::Base64, ironic_string(&iso).into_bytes()),
            (DriveForm::Base64, wrapped.into_bytes()),
        ] {
            assert_eq!(DriveForm::of(&bytes), Some(form));
            let drive = ConfigDrive::from_bytes(bytes, "cd-url").unwrap();
            assert_sample(&drive, "cd-url");
        }
    }

    #[test]
    fn the_json_form_is_read() {
        let doc = json!({
            "meta_data": {"uuid": "u-7", "local-hostname": "n7"},
            "user_data": "#cloud-config\nsecret: ud-7\n",
            "network_data": {"links": []}
        });
        let bytes = format!("\n  {doc}\n").into_bytes();
        assert_eq!(DriveForm::of(&bytes), Some(DriveForm::Json));
        let drive = ConfigDrive::from_bytes(bytes, "cd-url").unwrap();
        assert_sample(&drive, "cd-url");
        // A key of the wrong type is named after the document.
        let err = ConfigDrive::from_bytes(br#"{"meta_data": [1]}"#.to_vec(), "cd-url").unwrap_err();
        assert_eq!(err.field, "cd-url: meta_data");
        let err = ConfigDrive::from_bytes(br#"{"meta_data": "#.to_vec(), "cd-url").unwrap_err();
        assert_eq!(err.field, "cd-url");
        assert!(err.problem.contains("not valid JSON"), "{err}");
        // user_data within its limit, as everywhere.
        let big = json!({"user_data": "x".repeat((16 << 20) + 1)});
        let err = ConfigDrive::from_bytes(big.to_string().into_bytes(), "cd-url").unwrap_err();
        assert_eq!(err.field, "cd-url: user_data");
        assert!(err.problem.contains("larger than 16 MiB"), "{err}");
    }

    #[test]
    fn garbage_is_one_error_that_quotes_nothing() {
        for garbage in [
            b"".to_vec(),
            b"   \n".to_vec(),
            b"<html><body>secret-page</body></html>".to_vec(),
            b"[1, 2]".to_vec(),
            vec![0u8, 159, 146, 150, 7],
            b"plain words, secret-words".to_vec(),
        ] {
            assert_eq!(DriveForm::of(&garbage), None, "{garbage:?}");
            let err = ConfigDrive::from_bytes(garbage, "cd-url").unwrap_err();
            assert_eq!(err.field, "cd-url");
            assert!(err.problem.starts_with("is not a configdrive"), "{err}");
            assert!(!err.problem.contains("secret"), "{err}");
        }
    }

    #[test]
    fn broken_forms_say_what_is_wrong() {
        // Base64 letters, but not of gzip.
        let err = ConfigDrive::from_bytes(b"aGVsbG8gd29ybGQ=".to_vec(), "cd").unwrap_err();
        assert!(err.problem.contains("gzip"), "{err}");
        // Gzip of something that is no ISO image.
        let err = ConfigDrive::from_bytes(gzip(&[7u8; 40000]), "cd").unwrap_err();
        assert!(err.problem.contains("ISO 9660"), "{err}");
        // A gzip stream cut short.
        let mut cut = gzip(&[7u8; 40000]);
        cut.truncate(12);
        let err = ConfigDrive::from_bytes(cut, "cd").unwrap_err();
        assert!(err.problem.contains("cannot be decompressed"), "{err}");
        // More than 64 MiB once decompressed.
        let huge = gzip(&vec![0u8; (64 << 20) + 1]);
        let err = ConfigDrive::from_bytes(huge, "cd").unwrap_err();
        assert!(err.problem.contains("more than 64 MiB"), "{err}");
        // The magic of an ISO image with nothing valid around it.
        let mut fake = vec![0u8; 40000];
        fake[ISO_MAGIC_AT..ISO_MAGIC_AT + 5].copy_from_slice(ISO_MAGIC);
        let err = ConfigDrive::from_bytes(fake, "cd").unwrap_err();
        assert_eq!(err.field, "cd");
    }
}
