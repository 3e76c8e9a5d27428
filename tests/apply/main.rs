//! Layer application on synthetic layers: semantics, confinement, and agreement with umoci.
//!
//! These tests need root (ownership, device nodes, `security.capability`).

mod fuzz;
mod hostile;
mod layers;
mod members;
mod support;
mod umoci;
mod whiteouts;
