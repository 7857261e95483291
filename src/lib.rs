//! bockerfs: bocker's container runtime, in Rust, behind a FUSE control filesystem.
//!
//! The path from a write on the mount to a running container: [`fs`] turns the write into a typed
//! [`request::Request`]; [`engine`] checks it against the state it owns and calls [`store`] (btrfs
//! subvolumes and snapshots), [`cgroups`] (limits), [`runtime`] (a monitor process that sets up namespaces
//! and execs the command) and [`network`] (the bridge, veth pairs, NAT and port forwards). [`cli`] is bocker's command line, over the mounted files only.

pub mod attach;
pub mod build;
pub mod caller;
pub mod cgroups;
pub mod cli;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod fs;
pub mod ids;
pub mod json;
pub mod logs;
pub mod model;
pub mod network;
pub mod registry;
pub mod request;
pub mod runtime;
pub mod store;
pub mod times;
pub mod wal;

#[cfg(test)]
mod test_rng;
