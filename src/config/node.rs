//! Orders from an Ironic node document (`GET /v1/nodes/{uuid}` or IPA's lookup answer).
//!
//! Only the fields the installer uses are read: `uuid` and, in `instance_info`,
//! `image_source`, `root_device`, `image_pull_secret` and `configdrive`.

use super::configdrive::ConfigDrive;
use super::drive_bytes::MAX_DRIVE_DOCUMENT;
use super::fetch;
use super::Secret;
use crate::bounded;
use crate::error::OrderError;
use crate::json_field::{check_value_count, describe, not_an_object, optional_string};
use serde_json::{Map, Value};

/// The node's `instance_info.configdrive`, as far as it can be read without the network.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeConfigDrive {
    /// A dictionary, or a built drive decoded from its base64/gzip/ISO string.
    Inline(ConfigDrive),
    /// A URL Ironic was given instead of the content; fetch it, then decode it.
    Url(String),
}

/// The node fields the installer uses, typed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeDoc {
    /// Node UUID.
    pub uuid: Option<String>,
    /// `instance_info.image_source`, trimmed (any scheme; the merge keeps only `oci://`).
    pub image_source: Option<String>,
    /// `instance_info.root_device`, when a non-empty dictionary.
    pub root_device: Option<Map<String, Value>>,
    /// `instance_info.image_pull_secret`.
    pub image_pull_secret: Option<Secret>,
    /// `instance_info.configdrive`.
    pub configdrive: Option<NodeConfigDrive>,
    /// `instance_info.ocimetal_report_url`.
    pub report_url: Option<String>,
}

/// The field name used in errors about the configdrive.
const CONFIGDRIVE: &str = "instance_info.configdrive";

/// Largest node document read, file or URL (with a built configdrive inline: its text is
/// base64 of gzip, a few KiB for most drives).
pub const MAX_NODE_JSON: u64 = 16 * bounded::MIB;

impl NodeDoc {
    /// Parses a node document; `origin` (a path or URL) names it in errors.
    ///
    /// IPA's lookup answer wraps the node as `{"node": {...}, "config": {...}}`; both shapes
    /// are accepted.
    pub fn parse(text: &[u8], origin: &str) -> Result<Self, OrderError> {
        Self::from_value(Self::json(text, origin)?, origin)
    }

    /// The JSON of a node document, checked to hold a sane number of values.
    fn json(text: &[u8], origin: &str) -> Result<Value, OrderError> {
        check_value_count(text, origin)?;
        serde_json::from_slice(text).map_err(|err| {
            OrderError::new(
                origin,
                format!("is not valid JSON ({err}); expected an Ironic node object"),
            )
        })
    }

    /// [`Self::parse`] on the parsed JSON; its strings are used where they are, not copied
    /// (an inline configdrive may take megabytes).
    fn from_value(value: Value, origin: &str) -> Result<Self, OrderError> {
        let Value::Object(mut top) = value else {
            return Err(OrderError::new(
                origin,
                format!(
                    "{} is not a JSON object; expected an Ironic node object",
                    describe(&value)
                ),
            ));
        };
        if !top.contains_key("instance_info") {
            if let Some(Value::Object(node)) = top.remove("node") {
                top = node;
            }
        }
        Self::from_object(top)
    }

    fn from_object(mut node: Map<String, Value>) -> Result<Self, OrderError> {
        let uuid = optional_string(node.get("uuid"), "uuid")?;
        let mut info = match node.remove("instance_info") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(other) => return Err(not_an_object(&other, "instance_info", "instance_info")),
        };
        let image_source = optional_string(info.get("image_source"), "instance_info.image_source")?;
        let root_device = match info.get("root_device") {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) if map.is_empty() => None,
            Some(Value::Object(map)) => Some(map.clone()),
            Some(other) => {
                return Err(OrderError::new(
                    "instance_info.root_device",
                    format!(
                        "{} is not a dictionary; root_device must be an object like {{\"serial\": \"s== A\"}}",
                        describe(other)
                    ),
                ))
            }
        };
        let image_pull_secret = match info.get("image_pull_secret") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(Secret::new(s.trim().as_bytes())),
            Some(_) => {
                return Err(OrderError::new(
                    "instance_info.image_pull_secret",
                    "must be a string (value not shown: it is secret)",
                ))
            }
        };
        let configdrive = match info.remove("configdrive") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) if fetch::is_url(&s) => {
                Some(NodeConfigDrive::Url(s.trim().to_string()))
            }
            Some(Value::String(s)) => Some(NodeConfigDrive::Inline(
                ConfigDrive::from_ironic_string(s, CONFIGDRIVE)?,
            )),
            Some(value @ Value::Object(_)) => Some(NodeConfigDrive::Inline(
                ConfigDrive::from_dict(&value, CONFIGDRIVE)?,
            )),
            Some(other) => {
                return Err(OrderError::new(
                    CONFIGDRIVE,
                    format!(
                        "{} is neither an object nor a string; use a dictionary with meta_data/user_data/network_data, base64 of a gzipped config-2 ISO, or a URL",
                        describe(&other)
                    ),
                ))
            }
        };
        let report_url = optional_string(
            info.get("ocimetal_report_url"),
            "instance_info.ocimetal_report_url",
        )?
        .map(|url| super::cmdline::check_http_url("instance_info.ocimetal_report_url", &url))
        .transpose()?;
        Ok(Self {
            uuid,
            image_source,
            root_device,
            image_pull_secret,
            configdrive,
            report_url,
        })
    }
}

/// Reads a node document from a file path or an http(s) URL; `field` is the order that named
/// it (`--node`, `ocimetal.node`).
///
/// A URL that cannot be fetched is an error with context; a file that cannot be read (the
/// operator named the wrong path) and a document with wrong content are [`OrderError`]s
/// (inside the `anyhow::Error`).
pub fn load(location: &str, field: &str) -> anyhow::Result<NodeDoc> {
    let location = location.trim();
    let (bytes, origin) = if fetch::is_url(location) {
        (
            fetch::fetch(location, "node JSON", MAX_NODE_JSON)?,
            fetch::display_url(location),
        )
    } else {
        let bytes = bounded::read_file(location.as_ref(), MAX_NODE_JSON).map_err(|refused| {
            OrderError::new(
                field,
                format!(
                    "the node JSON {location} {refused}; give a node JSON file or an http(s) URL"
                ),
            )
        })?;
        (bytes, location.to_string())
    };
    let origin = format!("node JSON {origin}");
    let value = NodeDoc::json(&bytes, &origin)?;
    // The text's memory is given back before an inline configdrive is decoded.
    drop(bytes);
    Ok(NodeDoc::from_value(value, &origin)?)
}

/// Fetches and reads a configdrive Ironic was given as a URL: any of the forms
/// [`ConfigDrive::from_bytes`] reads, within the same limit as `ocimetal.configdrive_url=`.
pub fn fetch_configdrive(url: &str) -> anyhow::Result<ConfigDrive> {
    let bytes = fetch::fetch(url, "configdrive", MAX_DRIVE_DOCUMENT)?;
    let origin = format!("{CONFIGDRIVE} {}", fetch::display_url(url));
    Ok(ConfigDrive::from_bytes(bytes, &origin)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::configdrive::tests::{ironic_string, iso_from_tree, write_tree};
    use crate::config::fetch::tests::serve;
    use serde_json::json;

    fn parse(value: Value) -> Result<NodeDoc, OrderError> {
        NodeDoc::parse(value.to_string().as_bytes(), "node")
    }

    #[test]
    fn reads_the_fields_we_use() {
        let node = parse(json!({
            "uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123",
            "driver": "ipmi",
            "instance_info": {
                "image_source": " oci://debian:13 ",
                "root_device": {"serial": "s== S1 S2"},
                "image_pull_secret": "user:pass",
                "configdrive": {"meta_data": {"uuid": "m"}, "user_data": "ud"}
            }
        }))
        .unwrap();
        assert_eq!(
            node.uuid.as_deref(),
            Some("1be26c0b-03f2-4d2e-ae87-c02d7f33c123")
        );
        assert_eq!(node.image_source.as_deref(), Some("oci://debian:13"));
        assert_eq!(node.root_device.unwrap()["serial"], "s== S1 S2");
        assert_eq!(node.image_pull_secret.unwrap().expose(), b"user:pass");
        let Some(NodeConfigDrive::Inline(drive)) = node.configdrive else {
            panic!("expected an inline configdrive");
        };
        assert_eq!(drive.meta_data["uuid"], "m");
        assert_eq!(drive.origin, "instance_info.configdrive");
    }

    #[test]
    fn empty_node_and_lookup_wrapper() {
        assert_eq!(parse(json!({})).unwrap(), NodeDoc::default());
        let node =
            parse(json!({"node": {"uuid": "u", "instance_info": {}}, "config": {}})).unwrap();
        assert_eq!(node.uuid.as_deref(), Some("u"));
        let node = parse(json!({"instance_info": {"root_device": {}, "configdrive": ""}})).unwrap();
        assert_eq!(node, NodeDoc::default());
    }

    #[test]
    fn configdrive_string_is_decoded_or_kept_as_url() {
        let node =
            parse(json!({"instance_info": {"configdrive": "https://swift/cd?temp_url_sig=x"}}))
                .unwrap();
        assert_eq!(
            node.configdrive,
            Some(NodeConfigDrive::Url(
                "https://swift/cd?temp_url_sig=x".into()
            ))
        );
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        write_tree(&tree, &json!({"oci_image": "debian:12"}), Some(b"ud"), None);
        let Some(iso) = iso_from_tree(&tree) else {
            return;
        };
        let node = parse(json!({"instance_info": {"configdrive": ironic_string(&iso)}})).unwrap();
        let Some(NodeConfigDrive::Inline(drive)) = node.configdrive else {
            panic!("expected an inline configdrive");
        };
        assert_eq!(drive.meta_data["oci_image"], "debian:12");
        assert_eq!(drive.user_data.unwrap().expose(), b"ud");
    }

    #[test]
    fn wrong_types_are_order_errors_naming_the_field() {
        let cases = [
            (json!([1]), "node", "a list"),
            (json!({"uuid": 5}), "uuid", "number 5"),
            (
                json!({"instance_info": "x"}),
                "instance_info",
                "string \"x\"",
            ),
            (
                json!({"instance_info": {"image_source": 1}}),
                "instance_info.image_source",
                "number 1",
            ),
            (
                json!({"instance_info": {"root_device": "serial=A"}}),
                "instance_info.root_device",
                "dictionary",
            ),
            (
                json!({"instance_info": {"configdrive": 42}}),
                "instance_info.configdrive",
                "neither an object nor a string",
            ),
            (
                json!({"instance_info": {"configdrive": "%%%"}}),
                "instance_info.configdrive",
                "base64",
            ),
            (
                json!({"instance_info": {"configdrive": {"meta_data": []}}}),
                "instance_info.configdrive.meta_data",
                "a list",
            ),
        ];
        for (value, field, problem) in cases {
            let err = parse(value.clone()).unwrap_err();
            assert_eq!(err.field, field, "{value}");
            assert!(err.problem.contains(problem), "{value}: {}", err.problem);
        }
        let err = NodeDoc::parse(b"{not json", "node JSON x").unwrap_err();
        assert_eq!(err.field, "node JSON x");
        assert!(err.problem.contains("not valid JSON"));
    }

    #[test]
    fn pull_secret_of_wrong_type_is_not_echoed() {
        let err = parse(json!({"instance_info": {"image_pull_secret": {"auths": {"r": "tok3n"}}}}))
            .unwrap_err();
        assert_eq!(err.field, "instance_info.image_pull_secret");
        assert!(!err.to_string().contains("tok3n"));
    }

    #[test]
    fn loads_from_file_and_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.json");
        std::fs::write(&path, json!({"uuid": "from-file"}).to_string()).unwrap();
        let node = load(path.to_str().unwrap(), "--node").unwrap();
        assert_eq!(node.uuid.as_deref(), Some("from-file"));

        let base = serve(vec![
            (
                "/node.json",
                200,
                json!({"uuid": "from-url"}).to_string().into_bytes(),
            ),
            ("/bad.json", 200, b"[]".to_vec()),
        ]);
        let node = load(&format!("{base}/node.json"), "--node").unwrap();
        assert_eq!(node.uuid.as_deref(), Some("from-url"));
        let err = load(&format!("{base}/bad.json"), "--node").unwrap_err();
        assert!(err.downcast_ref::<OrderError>().is_some(), "{err:#}");
        let err = load(&format!("{base}/absent.json"), "--node").unwrap_err();
        assert!(format!("{err:#}").contains("404"));
        let err = load("/nonexistent/node.json", "ocimetal.node").unwrap_err();
        let order = err
            .downcast_ref::<OrderError>()
            .expect("a wrong path is an order error");
        assert_eq!(order.field, "ocimetal.node");
        assert!(order.problem.contains("/nonexistent/node.json"), "{order}");
    }

    #[test]
    fn fetches_configdrive_url() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        write_tree(&tree, &json!({"local-hostname": "h"}), None, None);
        let Some(iso) = iso_from_tree(&tree) else {
            return;
        };
        let base = serve(vec![("/cd", 200, ironic_string(&iso).into_bytes())]);
        let drive = fetch_configdrive(&format!("{base}/cd?temp_url_sig=abc")).unwrap();
        assert_eq!(drive.meta_data["local-hostname"], "h");
        assert!(!drive.origin.contains("abc"));
        // The other forms of a configdrive document too.
        let dict = json!({"meta_data": {"local-hostname": "h2"}}).to_string();
        let base = serve(vec![
            ("/iso", 200, iso),
            ("/json", 200, dict.into_bytes()),
            ("/html", 200, b"<html>sig=abc</html>".to_vec()),
        ]);
        let drive = fetch_configdrive(&format!("{base}/iso")).unwrap();
        assert_eq!(drive.meta_data["local-hostname"], "h");
        let drive = fetch_configdrive(&format!("{base}/json")).unwrap();
        assert_eq!(drive.meta_data["local-hostname"], "h2");
        let err = fetch_configdrive(&format!("{base}/html?temp_url_sig=abc")).unwrap_err();
        let order = err.downcast_ref::<OrderError>().expect("an order error");
        assert_eq!(
            order.field,
            format!("instance_info.configdrive {base}/html?redacted")
        );
        assert!(order.problem.starts_with("is not a configdrive"), "{order}");
    }
}
