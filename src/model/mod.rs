//! The model types shared by the parser, the engine, its records and the FUSE side: a container's
//! and an exec's status, the operations gated on them, and volumes. A leaf: it imports nothing of the crate.

mod status;
mod volume;

pub use status::{ContainerStatus, ExecStatus, Op};
pub use volume::{VolumeSource, VolumeSpec};
