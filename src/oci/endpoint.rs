//! One place an image can be fetched from, and what can go wrong with one request to it:
//! shared by the registry set-up and retries ([`super::registry`]) and the HTTP requests
//! ([`super::http`]).

use super::pull_error::PullError;
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use std::time::Duration;

/// One place an image can be fetched from: a mirror or the origin registry.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// The reference, with the mirror set when this is a mirror.
    pub reference: Reference,
    /// Host[:port] actually contacted.
    pub host: String,
    /// Credentials for this endpoint.
    pub auth: RegistryAuth,
}

/// What went wrong with one request: worth retrying or not.
pub(crate) enum Failure {
    /// Worth another attempt; the registry may have said when (`Retry-After`).
    Transient(String, Option<Duration>),
    /// Not worth another attempt: the pull fails with this.
    Fatal(PullError),
}

/// Classifies a failure of oci-client's authentication (the `/v2/` challenge and the token
/// exchange) as transient (network, 5xx, 429) or fatal. oci-client does not hand back
/// response headers, so a `Retry-After` there cannot be read; the backoff stands in for it.
pub(crate) fn classify(err: OciDistributionError, endpoint: &Endpoint) -> Failure {
    let reference = endpoint.reference.whole();
    let registry = endpoint.host.clone();
    let not_found = || {
        Failure::Fatal(PullError::NotFound {
            reference: reference.clone(),
            registry: registry.clone(),
        })
    };
    let unauthorized = || {
        Failure::Fatal(PullError::Unauthorized {
            reference: reference.clone(),
            registry: registry.clone(),
        })
    };
    match err {
        OciDistributionError::RequestError(e) if e.is_builder() => {
            Failure::Fatal(PullError::Other {
                cause: one_line(&e),
                reference,
                registry,
            })
        }
        OciDistributionError::RequestError(e) => Failure::Transient(one_line(&e), None),
        OciDistributionError::IoError(e) => Failure::Transient(one_line(&e), None),
        OciDistributionError::ServerError { code, message, .. } => match code {
            429 | 500..=599 => Failure::Transient(format!("HTTP {code}"), None),
            404 => not_found(),
            401 | 403 => unauthorized(),
            _ => Failure::Fatal(PullError::Other {
                cause: format!("HTTP {code}: {}", first_line(&message)),
                reference,
                registry,
            }),
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            let has = |c: OciErrorCode| codes.contains(&&c);
            if has(OciErrorCode::Toomanyrequests) {
                Failure::Transient("HTTP 429 too many requests".to_string(), None)
            } else if has(OciErrorCode::Unauthorized) || has(OciErrorCode::Denied) {
                unauthorized()
            } else if has(OciErrorCode::ManifestUnknown)
                || has(OciErrorCode::NameUnknown)
                || has(OciErrorCode::BlobUnknown)
                || has(OciErrorCode::NotFound)
            {
                not_found()
            } else {
                let messages: Vec<&str> =
                    envelope.errors.iter().map(|e| e.message.as_str()).collect();
                Failure::Fatal(PullError::Other {
                    cause: first_line(&messages.join("; ")),
                    reference,
                    registry,
                })
            }
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => unauthorized(),
        OciDistributionError::DigestError(e) => Failure::Fatal(PullError::Verification {
            what: "manifest",
            digest: endpoint
                .reference
                .digest()
                .unwrap_or("(by tag)")
                .to_string(),
            problem: one_line(&e),
        }),
        other => Failure::Fatal(PullError::Other {
            cause: one_line(&other),
            reference,
            registry,
        }),
    }
}

/// An error and its sources on one line (reqwest hides "connection refused" in a source).
pub(crate) fn one_line(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    first_line(&text)
}

fn first_line(text: &str) -> String {
    text.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}
