//! The OpenStack configdrive: `meta_data`, `user_data` and `network_data`, from every shape
//! it arrives in.
//!
//! - a dictionary in the node's `instance_info.configdrive` ([`ConfigDrive::from_dict`]);
//! - the string Ironic stores for a built drive: base64 of gzip of an ISO 9660 image
//!   ([`ConfigDrive::from_ironic_string`]);
//! - a `config-2` tree: a directory, an ISO image file, or a block device that
//!   [`crate::config::mount`] mounts read-only ([`ConfigDrive::from_dir`],
//!   [`ConfigDrive::from_iso`]);
//! - a document of any of Ironic's forms, as a URL or a file gives it: an ISO image, a
//!   gzipped one, a dictionary in JSON, or the stored string
//!   ([`ConfigDrive::from_bytes`], in [`super::drive_bytes`]).
//!
//! `vendor_data*` is ignored everywhere: the installer has no use for it.
//!
//! Every file is read within a limit ([`MAX_META_DATA`], [`MAX_USER_DATA`],
//! [`MAX_NETWORK_DATA`]); in a tree, only regular files are read and no symlink is followed.

use super::iso9660::IsoImage;
use super::Secret;
use crate::bounded::{self, Refused};
use crate::error::OrderError;
use crate::json_field::{not_an_object, optional_object, parse_object};
use serde_json::{Map, Value};
use std::io::{Cursor, Read, Seek};
use std::path::Path;

/// Where the OpenStack files live inside a `config-2` tree.
pub const LATEST: &str = "openstack/latest";

/// Largest decompressed configdrive we accept (Ironic caps the stored one at 64 MiB too).
pub const MAX_IMAGE: u64 = 64 * bounded::MIB;

/// Largest `meta_data.json` read.
pub const MAX_META_DATA: u64 = bounded::MIB;
/// Largest `user_data` read (cloud-init's own sources cap it lower still, EC2 at 16 KiB).
pub const MAX_USER_DATA: u64 = 16 * bounded::MIB;
/// Largest `network_data.json` read.
pub const MAX_NETWORK_DATA: u64 = bounded::MIB;

/// The files read from a `config-2` tree, with their limits.
const FILES: [(&str, u64); 3] = [
    ("meta_data.json", MAX_META_DATA),
    ("user_data", MAX_USER_DATA),
    ("network_data.json", MAX_NETWORK_DATA),
];

/// The configdrive's content, typed.
#[derive(Clone, Default, PartialEq)]
pub struct ConfigDrive {
    /// `meta_data.json` (Metal3 annotations and names arrive here).
    pub meta_data: Map<String, Value>,
    /// `user_data`, exactly as the drive carries it; a secret.
    pub user_data: Option<Secret>,
    /// `network_data.json`.
    pub network_data: Option<Value>,
    /// Where it was read from (a path, or the node field), for the log.
    pub origin: String,
}

impl std::fmt::Debug for ConfigDrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigDrive")
            .field("meta_data", &RedactedMap(&self.meta_data))
            .field("user_data", &self.user_data)
            .field("network_data", &self.network_data)
            .field("origin", &self.origin)
            .finish()
    }
}

/// Debug-prints a JSON map with secret-looking keys redacted.
pub(crate) struct RedactedMap<'a>(pub &'a Map<String, Value>);

impl std::fmt::Debug for RedactedMap<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", Value::Object(super::redact::redact_map(self.0)))
    }
}

impl ConfigDrive {
    /// Reads the dictionary form Ironic accepts in `instance_info.configdrive`; `field` is
    /// that field's name, for errors.
    pub fn from_dict(value: &Value, field: &str) -> Result<Self, OrderError> {
        Self::from_dict_with(value, field, |member| format!("{field}.{member}"))
    }

    /// [`Self::from_dict`] for a dictionary read from `origin`; `member` names one of its
    /// keys in errors (`instance_info.configdrive.meta_data`, `URL: meta_data`).
    pub(crate) fn from_dict_with(
        value: &Value,
        origin: &str,
        member: impl Fn(&str) -> String,
    ) -> Result<Self, OrderError> {
        let Value::Object(dict) = value else {
            return Err(OrderError::new(origin, "must be an object or a string"));
        };
        let meta_data = optional_object(dict.get("meta_data"), &member("meta_data"), "meta_data")?;
        let user_data =
            match dict.get("user_data") {
                None | Some(Value::Null) => None,
                Some(Value::String(text)) => Some(Secret::new(text.as_bytes())),
                // Ironic serialises a JSON user_data before building the drive; so do we.
                Some(value @ (Value::Object(_) | Value::Array(_))) => {
                    Some(Secret::new(serde_json::to_vec(value).unwrap_or_default()))
                }
                Some(_) => return Err(OrderError::new(
                    member("user_data"),
                    "must be a string or a JSON object/list (value not shown: user_data is secret)",
                )),
            };
        if user_data
            .as_ref()
            .is_some_and(|u| u.len() as u64 > MAX_USER_DATA)
        {
            return Err(OrderError::new(
                member("user_data"),
                format!("is larger than {}", bounded::size(MAX_USER_DATA)),
            ));
        }
        let network_data = match dict.get("network_data") {
            None | Some(Value::Null) => None,
            Some(value @ Value::Object(_)) => Some(value.clone()),
            Some(other) => {
                return Err(not_an_object(
                    other,
                    &member("network_data"),
                    "network_data",
                ))
            }
        };
        Ok(Self {
            meta_data,
            user_data,
            network_data,
            origin: origin.to_string(),
        })
    }

    /// Decodes Ironic's stored form: base64 of gzip of an ISO 9660 `config-2` image. The
    /// text is decoded as a stream into the image (at most 64 MiB), and its memory given
    /// back before the files are read from the image.
    pub fn from_ironic_string(text: String, field: &str) -> Result<Self, OrderError> {
        let base64 = base64::read::DecoderReader::new(
            SkipWhitespace(text.as_bytes().iter()),
            &base64::engine::general_purpose::STANDARD,
        );
        let iso = bounded::read_to_limit(flate2::read::GzDecoder::new(base64), MAX_IMAGE)
            .map_err(|refused| match refused {
                Refused::Io(err) if is_base64_error(&err) => OrderError::new(
                    field,
                    format!("is not valid base64 ({err}); expected base64 of a gzipped config-2 ISO image, a URL, or an object"),
                ),
                Refused::Io(err) => OrderError::new(
                    field,
                    format!("base64 content is not gzip ({err}); expected base64 of a gzipped config-2 ISO image"),
                ),
                _ => OrderError::new(
                    field,
                    "decompresses to more than 64 MiB; a configdrive must be smaller",
                ),
            })?;
        drop(text);
        Self::from_iso(Cursor::new(iso), field)
    }

    /// Reads a `config-2` ISO 9660 image; `origin` names it in errors and the log.
    pub fn from_iso<R: Read + Seek>(reader: R, origin: &str) -> Result<Self, OrderError> {
        let mut image = IsoImage::open(reader).map_err(|err| {
            OrderError::new(
                origin,
                format!("is not an ISO 9660 image ({err}); expected a config-2 image"),
            )
        })?;
        let [meta_data, user_data, network_data] = FILES.map(|(name, limit)| {
            image
                .read_file(&format!("{LATEST}/{name}"), limit)
                .map_err(|refused| refusal(origin, name, &refused))
        });
        // The image's memory is given back before the files are parsed.
        drop(image);
        Self::from_files(origin, meta_data?, user_data?, network_data?)
    }

    /// Reads a `config-2` directory tree (a mounted drive or a copy of one): regular files
    /// only, each within its limit, no symlink followed on the way.
    pub fn from_dir(dir: &Path) -> Result<Self, OrderError> {
        Self::from_dir_as(dir, &dir.display().to_string())
    }

    /// [`Self::from_dir`], naming the drive `origin` (the device a mount point shows).
    pub fn from_dir_as(dir: &Path, origin: &str) -> Result<Self, OrderError> {
        let [meta_data, user_data, network_data] = FILES.map(|(name, limit)| {
            bounded::read_beneath(dir, &Path::new(LATEST).join(name), limit)
                .map_err(|refused| refusal(origin, name, &refused))
        });
        Self::from_files(origin, meta_data?, user_data?, network_data?)
    }

    pub(crate) fn from_files(
        origin: &str,
        meta_data: Option<Vec<u8>>,
        user_data: Option<Vec<u8>>,
        network_data: Option<Vec<u8>>,
    ) -> Result<Self, OrderError> {
        let meta_data = meta_data.ok_or_else(|| {
            OrderError::new(
                origin,
                format!("has no {LATEST}/meta_data.json; a config-2 drive must carry one"),
            )
        })?;
        let meta_data = parse_object(
            &meta_data,
            &format!("{origin}:{LATEST}/meta_data.json"),
            "meta_data",
        )?;
        let network_data = match network_data {
            None => None,
            Some(bytes) => Some(Value::Object(parse_object(
                &bytes,
                &format!("{origin}:{LATEST}/network_data.json"),
                "network_data",
            )?)),
        };
        Ok(Self {
            meta_data,
            user_data: user_data.map(Secret::new),
            network_data,
            origin: origin.to_string(),
        })
    }
}

/// The bytes of a text, white space left out (Ironic's string may be wrapped over lines).
struct SkipWhitespace<'a>(std::slice::Iter<'a, u8>);

impl Read for SkipWhitespace<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.0.next() {
                Some(b) if b.is_ascii_whitespace() => {}
                Some(&b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        Ok(n)
    }
}

/// The error comes from decoding base64 (not from gzip).
fn is_base64_error(err: &std::io::Error) -> bool {
    err.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<base64::DecodeError>().is_some())
}

/// "`origin`: openstack/latest/`name` is larger than 16 MiB", and the like.
fn refusal(origin: &str, name: &str, refused: &Refused) -> OrderError {
    OrderError::new(origin, format!("{LATEST}/{name} {refused}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::Engine;
    use serde_json::json;
    use std::fs;
    use std::io::Write;
    use std::process::Command;

    /// Writes a config-2 tree under `root`.
    pub(crate) fn write_tree(
        root: &Path,
        meta: &Value,
        user_data: Option<&[u8]>,
        net: Option<&Value>,
    ) {
        let latest = root.join(LATEST);
        fs::create_dir_all(&latest).unwrap();
        fs::write(latest.join("meta_data.json"), meta.to_string()).unwrap();
        if let Some(user_data) = user_data {
            fs::write(latest.join("user_data"), user_data).unwrap();
        }
        if let Some(net) = net {
            fs::write(latest.join("network_data.json"), net.to_string()).unwrap();
        }
        fs::write(latest.join("vendor_data2.json"), "{\"ignored\": true}").unwrap();
        // Ironic also writes dated copies and an ec2 tree; they must not confuse us.
        let dated = root.join("openstack/2012-08-10");
        fs::create_dir_all(&dated).unwrap();
        fs::write(dated.join("meta_data.json"), "{\"old\": true}").unwrap();
    }

    /// Builds `config-2` ISO bytes from a tree with xorriso, or `None` when it is missing.
    pub(crate) fn iso_from_tree(root: &Path) -> Option<Vec<u8>> {
        let out = root.with_extension("iso");
        let status = Command::new("xorriso")
            .args([
                "-as", "mkisofs", "-quiet", "-V", "config-2", "-J", "-r", "-o",
            ])
            .arg(&out)
            .arg(root)
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Some(fs::read(&out).unwrap()),
            Ok(s) => panic!("xorriso failed: {s}"),
            Err(err) => {
                eprintln!("skipping: xorriso not available ({err})");
                None
            }
        }
    }

    /// base64(gzip(iso)), as Ironic stores a built configdrive.
    pub(crate) fn ironic_string(iso: &[u8]) -> String {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(iso).unwrap();
        base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())
    }

    fn sample_meta() -> Value {
        json!({"uuid": "u-1", "oci_image": "debian:13", "local-hostname": "node-1"})
    }

    #[test]
    fn dict_with_string_user_data() {
        let drive = ConfigDrive::from_dict(
            &json!({
                "meta_data": sample_meta(),
                "user_data": "#cloud-config\nruncmd: []\n",
                "network_data": {"links": []},
                "vendor_data": {"x": 1}
            }),
            "instance_info.configdrive",
        )
        .unwrap();
        assert_eq!(drive.meta_data["oci_image"], "debian:13");
        assert_eq!(
            drive.user_data.unwrap().expose(),
            b"#cloud-config\nruncmd: []\n"
        );
        assert_eq!(drive.network_data, Some(json!({"links": []})));
    }

    #[test]
    fn dict_with_json_user_data_is_serialised() {
        let drive = ConfigDrive::from_dict(
            &json!({"user_data": {"ignition": {"version": "3.2.0"}}}),
            "instance_info.configdrive",
        )
        .unwrap();
        let parsed: Value = serde_json::from_slice(drive.user_data.unwrap().expose()).unwrap();
        assert_eq!(parsed, json!({"ignition": {"version": "3.2.0"}}));
        assert!(drive.meta_data.is_empty());
        let drive = ConfigDrive::from_dict(&json!({"user_data": ["a", 1]}), "cd").unwrap();
        assert_eq!(drive.user_data.unwrap().expose(), br#"["a",1]"#);
    }

    #[test]
    fn dict_type_errors_name_the_field() {
        let err = ConfigDrive::from_dict(&json!({"meta_data": "x"}), "cd").unwrap_err();
        assert_eq!(err.field, "cd.meta_data");
        assert!(err.problem.contains("string \"x\"") && err.problem.contains("object"));
        let err = ConfigDrive::from_dict(&json!({"network_data": [1]}), "cd").unwrap_err();
        assert_eq!(err.field, "cd.network_data");
        let err = ConfigDrive::from_dict(&json!({"user_data": 12345}), "cd").unwrap_err();
        assert_eq!(err.field, "cd.user_data");
        assert!(
            !err.problem.contains("12345"),
            "user_data must not be echoed"
        );
        let err = ConfigDrive::from_dict(&json!(7), "cd").unwrap_err();
        assert_eq!(err.field, "cd");
    }

    #[test]
    fn reads_directory_tree() {
        let dir = tempfile::tempdir().unwrap();
        let net = json!({"links": [{"id": "eth0"}]});
        write_tree(
            dir.path(),
            &sample_meta(),
            Some(b"#cloud-config\n"),
            Some(&net),
        );
        let drive = ConfigDrive::from_dir(dir.path()).unwrap();
        assert_eq!(drive.meta_data, sample_meta().as_object().unwrap().clone());
        assert_eq!(drive.user_data.unwrap().expose(), b"#cloud-config\n");
        assert_eq!(drive.network_data, Some(net));
        assert_eq!(drive.origin, dir.path().display().to_string());
    }

    #[test]
    fn directory_without_optional_files() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), &json!({}), None, None);
        let drive = ConfigDrive::from_dir(dir.path()).unwrap();
        assert!(drive.user_data.is_none() && drive.network_data.is_none());
    }

    #[test]
    fn directory_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = ConfigDrive::from_dir(dir.path()).unwrap_err();
        assert!(err.problem.contains("meta_data.json"));
        write_tree(dir.path(), &json!([1, 2]), None, None);
        let err = ConfigDrive::from_dir(dir.path()).unwrap_err();
        assert!(err.field.ends_with("openstack/latest/meta_data.json"));
        assert!(err.problem.contains("a list"));
        fs::write(dir.path().join(LATEST).join("meta_data.json"), "{oops").unwrap();
        let err = ConfigDrive::from_dir(dir.path()).unwrap_err();
        assert!(err.problem.contains("not valid JSON"));
        fs::write(dir.path().join(LATEST).join("meta_data.json"), "{}").unwrap();
        fs::write(dir.path().join(LATEST).join("network_data.json"), "3").unwrap();
        let err = ConfigDrive::from_dir(dir.path()).unwrap_err();
        assert!(err.field.ends_with("network_data.json"));
    }

    #[test]
    fn reads_iso_image_and_ironic_string() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        let net = json!({"networks": []});
        write_tree(&tree, &sample_meta(), Some(b"secret-user-data"), Some(&net));
        let Some(iso) = iso_from_tree(&tree) else {
            return;
        };
        let drive = ConfigDrive::from_iso(Cursor::new(iso.clone()), "cd.iso").unwrap();
        assert_eq!(drive.meta_data["local-hostname"], "node-1");
        assert_eq!(
            drive.user_data.as_ref().unwrap().expose(),
            b"secret-user-data"
        );
        assert_eq!(drive.network_data, Some(net.clone()));

        let encoded = ironic_string(&iso);
        // Ironic's stored string may be wrapped over lines.
        let wrapped: String = encoded
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
            .collect();
        let drive = ConfigDrive::from_ironic_string(wrapped, "instance_info.configdrive").unwrap();
        assert_eq!(drive.meta_data["oci_image"], "debian:13");
        assert_eq!(drive.user_data.unwrap().expose(), b"secret-user-data");
        assert_eq!(drive.network_data, Some(net));
    }

    #[test]
    fn ironic_string_errors() {
        let field = "instance_info.configdrive";
        let err = ConfigDrive::from_ironic_string("!!not base64!!".into(), field).unwrap_err();
        assert_eq!(err.field, field);
        assert!(err.problem.contains("base64"));
        let not_gzip = base64::engine::general_purpose::STANDARD.encode(b"plain text");
        let err = ConfigDrive::from_ironic_string(not_gzip, field).unwrap_err();
        assert!(err.problem.contains("gzip"));
        let not_iso = ironic_string(&[0u8; 40000]);
        let err = ConfigDrive::from_ironic_string(not_iso, field).unwrap_err();
        assert!(err.problem.contains("ISO 9660"));
    }

    #[test]
    fn debug_redacts_user_data_and_secret_meta_data() {
        let drive = ConfigDrive::from_dict(
            &json!({"meta_data": {"admin_pass": "hunter2", "uuid": "u"}, "user_data": "topsecret"}),
            "cd",
        )
        .unwrap();
        let debug = format!("{drive:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("topsecret"),
            "{debug}"
        );
        assert!(debug.contains("\"uuid\":\"u\""));
    }
}
