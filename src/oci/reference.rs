//! Image references, normalised the way Docker does it.

use crate::error::OrderError;
use oci_client::Reference;

/// Parses an image reference: Docker short names get `docker.io` and `library/`, a missing
/// tag becomes `latest`, and a first component with a `.` or `:` or `localhost` is a registry.
pub fn parse_reference(image: &str) -> Result<Reference, OrderError> {
    let trimmed = image.trim();
    let invalid = |why: String| {
        OrderError::new(
            "image",
            format!(
                "{trimmed:?} is not a valid image reference ({why}); expected e.g. ubuntu:24.04, \
                 registry.example.com:5000/team/image:tag or name@sha256:<64 hex digits>"
            ),
        )
    };
    let reference = trimmed
        .parse::<Reference>()
        .map_err(|err| invalid(err.to_string()))?;
    // Docker refuses upper case in repository names; registries would answer 404 or 400.
    if reference
        .repository()
        .chars()
        .any(|c| c.is_ascii_uppercase())
    {
        return Err(invalid("repository names are lower case".into()));
    }
    Ok(reference)
}

/// Normalises a reference: `ubuntu:24.04` → `docker.io/library/ubuntu:24.04`.
pub fn normalize_reference(image: &str) -> Result<String, OrderError> {
    parse_reference(image).map(|r| r.whole())
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
}
