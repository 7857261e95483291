//! A container's volumes as configured: where each one's content comes from and where it goes.

use std::path::PathBuf;

/// Where a volume's content comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeSource {
    /// A directory or file of the host, bind-mounted.
    Host(PathBuf),
    /// A named volume of `volumes/`.
    Named(String),
}

/// One line of a container's `volumes` file: `SOURCE:TARGET[:ro]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VolumeSpec {
    pub source: VolumeSource,
    /// An absolute path inside the container, without `..`.
    pub target: String,
    pub readonly: bool,
}

impl std::fmt::Display for VolumeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            VolumeSource::Host(p) => write!(f, "{}", p.display())?,
            VolumeSource::Named(n) => write!(f, "{n}")?,
        }
        write!(f, ":{}", self.target)?;
        if self.readonly {
            write!(f, ":ro")?;
        }
        Ok(())
    }
}
