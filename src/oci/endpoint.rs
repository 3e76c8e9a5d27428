//! One place an image can be fetched from, and what can go wrong with one request to it:
//! shared by the registry set-up and retries ([`super::registry`]) and the HTTP requests
//! ([`super::http`], [`super::token`]).

use super::pull_error::PullError;
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
