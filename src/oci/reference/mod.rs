//! Image references, parsed once and normalised the way Docker does it.

mod grammar;

use crate::error::OrderError;
use oci_client::Reference;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A parsed image reference. Docker short names get `docker.io` and `library/`, a missing tag
/// becomes `latest`, and a first component with a `.` or `:` or `localhost` is a registry.
/// It prints (and serialises) as the normalised form, `docker.io/library/ubuntu:24.04`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef(Reference);

/// Why a text is not an image reference (without the text itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidImageRef(String);

impl ImageRef {
    /// The registry host\[:port\], e.g. `docker.io`.
    pub fn registry(&self) -> &str {
        self.0.registry()
    }

    /// The repository, e.g. `library/ubuntu`.
    pub fn repository(&self) -> &str {
        self.0.repository()
    }

    /// The tag, when the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.0.tag()
    }

    /// The digest (`sha256:…`), when the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.0.digest()
    }

    /// The reference as the registry client takes it.
    pub fn as_reference(&self) -> &Reference {
        &self.0
    }
}

impl FromStr for ImageRef {
    type Err = InvalidImageRef;

    /// Parses a reference; surrounding whitespace is ignored.
    fn from_str(image: &str) -> Result<Self, Self::Err> {
        let reference = grammar::parse(image.trim()).map_err(|why| InvalidImageRef(why.into()))?;
        // Docker refuses upper case in repository names; registries would answer 404 or 400.
        if reference
            .repository()
            .chars()
            .any(|c| c.is_ascii_uppercase())
        {
            return Err(InvalidImageRef("repository names are lower case".into()));
        }
        Ok(Self(reference))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.whole())
    }
}

/// Serialises as the normalised form.
impl Serialize for ImageRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::as_text::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for ImageRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::as_text::deserialize(d)
    }
}

/// Parses an image reference (see [`ImageRef`]); an invalid one is an error on `image`.
pub fn parse_reference(image: &str) -> Result<Reference, OrderError> {
    parse_image(image).map(|image| image.0)
}

/// Parses an image reference into an [`ImageRef`]; an invalid one is an error on `image`.
pub fn parse_image(image: &str) -> Result<ImageRef, OrderError> {
    let trimmed = image.trim();
    trimmed.parse().map_err(|why: InvalidImageRef| {
        OrderError::new(
            "image",
            format!(
                "{trimmed:?} is not a valid image reference ({why}); expected e.g. ubuntu:24.04, \
                 registry.example.com:5000/team/image:tag or name@sha256:<64 hex digits>"
            ),
        )
    })
}

/// Normalises a reference: `ubuntu:24.04` → `docker.io/library/ubuntu:24.04`.
pub fn normalize_reference(image: &str) -> Result<String, OrderError> {
    parse_image(image).map(|image| image.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let cases = [
            ("ubuntu", "docker.io/library/ubuntu:latest".to_string()),
            ("ubuntu:24.04", "docker.io/library/ubuntu:24.04".to_string()),
            ("team/app:1", "docker.io/team/app:1".to_string()),
            ("localhost:5000/x", "localhost:5000/x:latest".to_string()),
            ("localhost/x:2", "localhost/x:2".to_string()),
            ("quay.io/a/b/c:3", "quay.io/a/b/c:3".to_string()),
            (
                &*format!("debian@{digest}"),
                format!("docker.io/library/debian@{digest}"),
            ),
            (
                &*format!("127.0.0.1:5000/d:13@{digest}"),
                format!("127.0.0.1:5000/d:13@{digest}"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_reference(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn rejects_invalid_references_with_an_order_error() {
        for bad in ["", "UPPER/case", "x@sha256:abc", "a b", "registry:5000/"] {
            let err = normalize_reference(bad).unwrap_err();
            assert_eq!(err.field, "image", "{bad}");
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn an_image_ref_serialises_as_its_normal_form_and_back() {
        let image: ImageRef = " debian:13 ".parse().unwrap();
        assert_eq!(image.to_string(), "docker.io/library/debian:13");
        assert_eq!(
            (image.registry(), image.repository()),
            ("docker.io", "library/debian")
        );
        assert_eq!((image.tag(), image.digest()), (Some("13"), None));
        let json = serde_json::to_string(&image).unwrap();
        assert_eq!(json, "\"docker.io/library/debian:13\"");
        assert_eq!(serde_json::from_str::<ImageRef>(&json).unwrap(), image);
        assert!(serde_json::from_str::<ImageRef>("\"a b\"").is_err());
    }
}
