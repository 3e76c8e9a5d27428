//! Pull failures the caller may want to tell apart, each printed as one line.

use super::platform::Platform;

/// Why a pull failed. Messages name the registry, image or digest, never credentials.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The registry has no such repository, tag or digest.
    #[error("image {reference} not found on {registry}")]
    NotFound {
        /// Normalised reference.
        reference: String,
        /// Registry (or mirror) asked.
        registry: String,
    },
    /// The registry refused the credentials (or wants some). Docker Hub answers so for a
    /// repository that does not exist, too.
    #[error(
        "registry {registry} refused access to {reference}: check the image name, and the auth file or pull secret"
    )]
    Unauthorized {
        /// Normalised reference.
        reference: String,
        /// Registry (or mirror) asked.
        registry: String,
    },
    /// The index offers no manifest for the wanted platform.
    #[error("image {reference} has no {wanted} variant; it has: {}", list(offered))]
    NoSuchPlatform {
        /// Normalised reference.
        reference: String,
        /// What was asked for.
        wanted: Platform,
        /// What the index offers (attestations left out).
        offered: Vec<Platform>,
    },
    /// A blob or manifest did not match its digest or size.
    #[error("{what} {digest} failed verification: {problem}")]
    Verification {
        /// `layer`, `config` or `manifest`.
        what: &'static str,
        /// The expected digest.
        digest: String,
        /// What differed.
        problem: String,
    },
    /// The registry could not be reached or kept failing.
    #[error("registry {registry} unavailable after {attempts} attempt(s): {cause}")]
    Unavailable {
        /// Registry (or mirror) asked.
        registry: String,
        /// Attempts made.
        attempts: u32,
        /// Last failure, one line.
        cause: String,
    },
    /// Anything else the registry answered that makes the image unusable.
    #[error("cannot pull {reference} from {registry}: {cause}")]
    Other {
        /// Normalised reference.
        reference: String,
        /// Registry (or mirror) asked.
        registry: String,
        /// One line.
        cause: String,
    },
}

fn list(platforms: &[Platform]) -> String {
    if platforms.is_empty() {
        return "no platform entries".to_string();
    }
    platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
