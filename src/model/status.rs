//! The life cycle of a container.

use serde::{Deserialize, Serialize};

/// `created` (configured, never started), `running`, `exited`. An exited container can start again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    Created,
    Running,
    Exited,
}

impl ContainerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Exited => "exited",
        }
    }

    pub fn can_start(self) -> bool {
        matches!(self, ContainerStatus::Created | ContainerStatus::Exited)
    }

    pub fn can_delete(self) -> bool {
        self != ContainerStatus::Running
    }

    /// `cmd` and `env` change for the next start; not under a running process.
    pub fn can_configure(self) -> bool {
        self != ContainerStatus::Running
    }

    /// The image is the rootfs: fixed once the container has run.
    pub fn can_change_image(self) -> bool {
        self == ContainerStatus::Created
    }

    pub fn can_signal(self) -> bool {
        self == ContainerStatus::Running
    }
}

#[cfg(test)]
mod tests {
    use super::ContainerStatus::*;

    #[test]
    fn transitions() {
        assert!(Created.can_start() && Exited.can_start() && !Running.can_start());
        assert!(Created.can_delete() && Exited.can_delete() && !Running.can_delete());
        assert!(Created.can_change_image() && !Exited.can_change_image() && !Running.can_change_image());
        assert!(Running.can_signal() && !Created.can_signal() && !Exited.can_signal());
        assert!(!Running.can_configure() && Exited.can_configure());
    }
}
