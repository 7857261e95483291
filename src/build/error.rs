//! Why a build failed: one variant per step that can fail, each naming the Dockerfile's step and line, and
//! the errno the write to `images/build` returns for it.

use super::copy::CopyError;
use super::dockerfile::DockerfileError;

/// The errno of a build whose `RUN` step failed: the build was cancelled at that step.
pub const STEP_FAILED_ERRNO: i32 = libc::ECANCELED;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The errno of the read (ENOENT, EACCES...).
    #[error("cannot read the Dockerfile {path}: {source}")]
    ReadDockerfile { path: String, source: std::io::Error },
    /// EINVAL.
    #[error("Dockerfile {path}: {source}")]
    Dockerfile { path: String, source: DockerfileError },
    /// EINVAL.
    #[error(".dockerignore: {0}")]
    Ignore(String),
    /// EINVAL: `--target` names no stage.
    #[error("target stage '{0}' could not be found")]
    NoTarget(String),
    /// EINVAL: a value of a step that cannot be used (a substitution, a flag, a stage named).
    #[error("line {line}: {step}: {message}")]
    Step { step: String, line: usize, message: String },
    /// ENOENT: the base image is neither here nor could be pulled.
    #[error("line {line}: {step}: base image '{reference}': {message}")]
    Base { step: String, line: usize, reference: String, message: String, errno: i32 },
    /// The copy's errno (ENOENT for a source that isn't there).
    #[error("line {line}: {step}: {source}")]
    Copy { step: String, line: usize, source: CopyError },
    /// [`STEP_FAILED_ERRNO`]: the command of a `RUN` exited non-zero.
    #[error("line {line}: {step}: the command returned a non-zero code: {code}")]
    RunFailed { step: String, line: usize, code: i32 },
    /// The errno of the launch (ENOENT: no such executable).
    #[error("line {line}: {step}: {message}")]
    RunStart { step: String, line: usize, message: String, errno: i32 },
    /// The store's or the record's errno.
    #[error("line {line}: {step}: {message}")]
    Internal { step: String, line: usize, message: String, errno: i32 },
}

impl BuildError {
    pub fn errno(&self) -> i32 {
        match self {
            BuildError::ReadDockerfile { source, .. } => source.raw_os_error().unwrap_or(match source.kind() {
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => libc::EINVAL,
                _ => libc::EIO,
            }),
            BuildError::Dockerfile { .. } | BuildError::Ignore(_) | BuildError::NoTarget(_) => libc::EINVAL,
            BuildError::Step { .. } => libc::EINVAL,
            BuildError::Base { errno, .. }
            | BuildError::RunStart { errno, .. }
            | BuildError::Internal { errno, .. } => *errno,
            BuildError::Copy { source, .. } => source.errno(),
            BuildError::RunFailed { .. } => STEP_FAILED_ERRNO,
        }
    }
}
