//! Files written into the installed system, rendered by pure functions.

pub mod boot;
pub mod cloud_init;
pub mod file;
pub mod files;
pub mod network;
pub mod packages;
pub mod record;
pub mod yaml;

pub use file::{FileContents, TargetFile};
