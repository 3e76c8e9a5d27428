//! ocimetal: installs a Debian/Ubuntu OCI container image onto bare metal.
//!
//! Data flows one way: orders ([`config`]) and the disk inventory ([`inventory`]) go into the
//! pure planner ([`plan`]), whose printable [`plan::Plan`] the installer executes step by step.

pub mod config;
pub mod error;
pub mod hints;
pub mod inventory;
pub mod oci;
pub mod plan;
pub mod storage;
pub mod target;
pub mod cli;
pub mod install;
pub mod logging;
pub mod systemd;
pub mod storage;
pub mod exec;
