//! Files written into the installed system, rendered by pure functions.

pub mod network;
pub mod packages;
pub mod yaml;
