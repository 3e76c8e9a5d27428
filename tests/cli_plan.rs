//! End-to-end tests of `ocimetal plan` and `ocimetal devices`: the built binary reads orders
//! from real files (node JSON, configdrive directory or ISO, `--cmdline`) and a disk inventory
//! fixture, never the live machine's disks.
//!
//! - `priorities`: which order wins, the JSON plan's keys, normalised references, `--arch`,
//!   the documented examples, `ocimetal devices`;
//! - `bad_orders`: every kind of invalid order gives status 2 and one line naming the field;
//! - `hostile`: links, FIFOs, devices and files too large are refused quickly, in bounded
//!   memory;
//! - `render`: `--render DIR` writes the files an install would write, secrets only on request;
//! - `secrets`: user_data, passwords, pull secrets and URL credentials are never printed;
//! - `sweep`: a seeded generator of mangled orders never makes the binary crash;
//! - `urls`: `ocimetal.configdrive_url=` and `ocimetal.user_data_url=` served over HTTP.

#[path = "cli_plan/bad_orders.rs"]
mod bad_orders;
#[path = "cli_plan/hostile.rs"]
mod hostile;
#[path = "support/peak.rs"]
mod peak;
#[path = "cli_plan/priorities.rs"]
mod priorities;
#[path = "cli_plan/render.rs"]
mod render;
#[path = "cli_plan/secrets.rs"]
mod secrets;
#[path = "cli_plan/support.rs"]
mod support;
#[path = "cli_plan/sweep.rs"]
mod sweep;
#[path = "cli_plan/urls.rs"]
mod urls;
