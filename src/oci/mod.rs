//! OCI registry pull and confined layer application.

pub mod apply;
