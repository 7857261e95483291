//! The model types shared by the parser, the engine, its records and the FUSE side: a container's
//! and an exec's status, the operations gated on them, volumes, restart policies, and what a container
//! keeps of its image's config. A leaf: it imports nothing of the crate.

mod image_config;
mod restart;
mod status;
mod volume;

pub use image_config::ImageConfig;
pub use restart::{next_delay, RestartPolicy};
pub use status::{ContainerStatus, ExecStatus, Op};
pub use volume::{VolumeSource, VolumeSpec};
