//! The installed system's files, rendered by pure functions from the plan, the orders and
//! what the image already holds: no I/O here, and every refusal is an [`OrderError`].
//!
//! [`OrderError`]: crate::error::OrderError

pub mod assemble;
pub mod boot;
pub mod cloud_init;
pub mod dpkg;
pub mod file;
pub mod files;
pub mod network;
pub mod packages;
pub mod record;
pub mod yaml;

pub use file::{FileContents, TargetFile};
