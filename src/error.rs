//! Errors the operator must fix in their orders.
//!
//! An [`OrderError`] always names the field, the offending value and what would be valid, so
//! that the CLI can print it as one line and exit with status 2 before anything is touched.

use std::fmt;

/// An invalid order: which field, what is wrong with it, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct OrderError {
    /// Dotted path of the field, e.g. `meta_data.disk_wipe_mode` or `ocimetal.reboot`.
    pub field: String,
    /// What is wrong and what would be valid; already free of secrets.
    pub problem: String,
}

impl OrderError {
    /// Builds an error for `field` with a message saying what is wrong and what is valid.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, always: operators read this on a serial console.
        let problem = self.problem.replace('\n', " ");
        write!(f, "invalid order {}: {}", self.field, problem)
    }
}

/// No orders at all: no configdrive, no node document, and nothing on the kernel command line
/// that says what to install. Nothing is installed then (exit status 4), whatever the
/// defaults would be: a machine booted into the installer by mistake keeps its disks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no orders: found no config-2 medium, no node document (ocimetal.node=) and neither \
     ocimetal.image= nor ocimetal.root_device_hints= on the kernel command line; nothing was \
     touched. Give orders with a configdrive (Ironic, a config-2 stick, \
     ocimetal.configdrive_url=URL), ocimetal.node=URL, or ocimetal.image= and \
     ocimetal.root_device_hints= on the kernel command line"
)]
pub struct NoOrders;
