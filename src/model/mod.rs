//! The model types shared by the parser, the engine, its records and the FUSE side: a container's
//! status and its volumes. A leaf: it imports nothing of the crate.

mod status;
mod volume;

pub use status::ContainerStatus;
pub use volume::{VolumeSource, VolumeSpec};
