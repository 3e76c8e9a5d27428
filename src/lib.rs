//! ocimetal: installs a Debian/Ubuntu OCI container image onto bare metal.
//!
//! Data flows one way: orders ([`config`]) and the disk inventory ([`inventory`]) go into the
//! pure planner ([`plan`]), whose printable [`plan::Plan`] the installer executes step by step
//! ([`install`]).

pub mod cli;
pub mod config;
pub mod error;
pub mod exec;
pub mod hints;
pub mod install;
pub mod inventory;
pub mod logging;
pub mod oci;
pub mod plan;
pub mod storage;
pub mod systemd;
pub mod target;
