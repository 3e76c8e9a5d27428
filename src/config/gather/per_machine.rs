//! Order documents at URLs that may be per-machine templates: `ocimetal.node=`,
//! `ocimetal.configdrive_url=` and `ocimetal.user_data_url=` share one way of filling in the
//! placeholders, of passing over candidates answered 404, and of fetching (retries while the
//! network comes up, time and size limits: [`fetch`]).

use super::super::configdrive::{ConfigDrive, MAX_USER_DATA};
use super::super::drive_bytes::MAX_DRIVE_DOCUMENT;
use super::super::node::{self, NodeDoc};
use super::super::placeholders::{self, MachineFacts};
use super::super::{fetch, Secret};
use std::cell::OnceCell;
use std::path::Path;

/// The order that names a configdrive document by URL.
pub const CONFIGDRIVE_URL: &str = "ocimetal.configdrive_url";
/// The order that names the user_data by URL.
pub const USER_DATA_URL: &str = "ocimetal.user_data_url";

/// What fills in the placeholders: this machine's facts, read once and only when a template
/// needs them (or given, in tests).
#[derive(Debug, Default)]
pub struct Machine(OnceCell<MachineFacts>);

impl Machine {
    /// Facts given instead of read from `/sys` and `/proc`.
    #[cfg(test)]
    pub fn with(facts: MachineFacts) -> Self {
        Self(OnceCell::from(facts))
    }

    fn facts(&self) -> &MachineFacts {
        self.0
            .get_or_init(|| MachineFacts::read(Path::new("/sys"), Path::new("/proc")))
    }
}

/// What `location` (named by `field`) gives this machine. A per-machine URL template is tried
/// candidate by candidate (one per NIC for `{mac}`): a candidate answered 404 is passed over,
/// and when every one is, the answer is `None`. Anything else is loaded as named, where a 404
/// is an error like any other. `what` names the document in the log.
pub fn first_found<T>(
    location: &str,
    field: &str,
    what: &str,
    machine: &Machine,
    load: impl Fn(&str) -> anyhow::Result<T>,
) -> anyhow::Result<Option<T>> {
    if !(placeholders::is_template(location) && fetch::is_url(location)) {
        return load(location).map(Some);
    }
    for url in placeholders::expand(location, machine.facts(), field)? {
        match load(&url) {
            Ok(found) => {
                tracing::info!("{what} from {}", fetch::display_url(&url));
                return Ok(Some(found));
            }
            Err(err) if err.chain().any(|e| e.is::<fetch::NotFound>()) => {
                tracing::info!("no {what} at {}", fetch::display_url(&url));
            }
            Err(err) => return Err(err),
        }
    }
    Ok(None)
}

/// The node document `ocimetal.node=` gives this machine.
pub fn node(location: &str, machine: &Machine) -> anyhow::Result<Option<NodeDoc>> {
    first_found(location, "ocimetal.node", "node document", machine, |at| {
        node::load(at, "ocimetal.node")
    })
}

/// The configdrive `ocimetal.configdrive_url=` gives this machine, in any of Ironic's forms.
/// A document that is no configdrive is an invalid order naming the key and the URL.
pub fn configdrive(template: &str, machine: &Machine) -> anyhow::Result<Option<ConfigDrive>> {
    first_found(template, CONFIGDRIVE_URL, "configdrive", machine, |url| {
        let what = format!("configdrive ({CONFIGDRIVE_URL})");
        let bytes = fetch::fetch(url, &what, MAX_DRIVE_DOCUMENT)?;
        let origin = format!("{CONFIGDRIVE_URL} {}", fetch::display_url(url));
        Ok(ConfigDrive::from_bytes(bytes, &origin)?)
    })
}

/// The user_data `ocimetal.user_data_url=` gives this machine, kept byte for byte and never
/// shown; with the URL it came from, as it may be logged.
pub fn user_data(template: &str, machine: &Machine) -> anyhow::Result<Option<(Secret, String)>> {
    first_found(template, USER_DATA_URL, "user_data", machine, |url| {
        let what = format!("user_data ({USER_DATA_URL})");
        let bytes = fetch::fetch(url, &what, MAX_USER_DATA)?;
        Ok((Secret::new(bytes), fetch::display_url(url)))
    })
}
