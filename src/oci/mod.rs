//! OCI registry pull and confined layer application.

pub mod apply;
pub mod cli;
