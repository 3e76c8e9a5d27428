//! ocimetal: installs a Debian/Ubuntu OCI container image onto bare metal.
//!
//! Data flows one way: orders ([`config`]) and the disk inventory ([`inventory`]) go into the
//! pure planner ([`plan`]), whose list of typed steps the installer runs one by one
//! ([`install`]). [`host`] is the one room that touches the machine; [`oci`] pulls and applies
//! images on its own. docs/architecture.md maps the modules.

pub mod arch;
pub mod bounded;
pub mod cli;
pub mod config;
pub mod error;
pub mod hints;
pub mod host;
pub mod install;
pub mod inventory;
pub mod json_field;
pub mod logging;
pub mod oci;
pub mod plan;
