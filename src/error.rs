//! The one error type the engine returns, folding each module's errors, and its errno.

use crate::model::{ContainerStatus, Op};
use crate::registry::RegistryError;
use crate::request::ParseError;
use crate::runtime::RuntimeError;
use crate::store::StoreError;

/// Why a request failed. [`Error::errno`] is what the write on the mount returns; `Display` is the human
/// message that goes to the `error` file, the `errors` file and the daemon log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    /// EOPNOTSUPP (no freezer), ETIMEDOUT (not frozen in time), EIO: a pause or an unpause.
    #[error(transparent)]
    Freeze(#[from] crate::cgroups::FreezeError),
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    /// A build that failed (see [`crate::build::error::BuildError::errno`]).
    #[error(transparent)]
    Build(#[from] crate::build::error::BuildError),
    /// ENOENT: no build of that number.
    #[error("no build {0}")]
    NoSuchBuild(u32),
    /// EBUSY: a build that runs still.
    #[error("build {0} is running")]
    BuildRunning(u32),
    /// ENOENT: no container of that name.
    #[error("no container named '{0}'")]
    NoSuchContainer(String),
    /// ENOENT: no image of that name or id.
    #[error("no image named '{0}'")]
    NoSuchImage(String),
    /// EINVAL: an id prefix more than one image's id begins with.
    #[error("'{prefix}' is the start of more than one image's id ({}): give more of it", ids.join(", "))]
    Ambiguous { prefix: String, ids: Vec<String> },
    /// ENOENT: no named volume of that name.
    #[error("no volume named '{0}' (make it with mkdir volumes/{0})")]
    NoSuchVolume(String),
    /// ENOENT: no network of that name.
    #[error("no network named '{0}' (make it with mkdir networks/{0})")]
    NoSuchNetwork(String),
    /// ENOENT: a path (a volume's host source) that isn't there.
    #[error("{0}")]
    NotFound(String),
    /// EEXIST: the name is taken.
    #[error("a {kind} named '{name}' exists already")]
    NameTaken { kind: &'static str, name: String },
    /// EBUSY, or ESRCH for an operation that needs a process when none runs: the container's status
    /// doesn't allow the operation (see [`ContainerStatus::allows`]).
    #[error("{}", status.refusal(*op, name))]
    WrongState { name: String, status: ContainerStatus, op: Op },
    /// EBUSY: an image or volume that containers still name.
    #[error("{what} is used by container(s) {}", by.join(", "))]
    InUse { what: String, by: Vec<String> },
    /// EBUSY: an image or volume another request is changing right now.
    #[error("{what} is {doing}: try again when that ends")]
    Changing { what: String, doing: &'static str },
    /// EINVAL: a container that has no image yet, for an operation that needs its rootfs.
    #[error("container '{0}' has no image: write one to its image file first")]
    NoImage(String),
    /// EINVAL: well-formed, but not something that can be done.
    #[error("{0}")]
    Invalid(String),
    /// EACCES: the caller may not change the tree (neither root nor in the daemon's `--group`).
    #[error("{0}")]
    AccessDenied(String),
    /// EAGAIN: too many requests are in flight; try again.
    #[error("{0}")]
    Overloaded(String),
    /// EPERM: not an operation this tree offers.
    #[error("{0}")]
    NotPermitted(String),
    /// A write to a container's stdin could not be given to it: EBADF (not interactive), EPIPE (closed
    /// or not running), EAGAIN (its command isn't reading).
    #[error("{message}")]
    Stdin { errno: i32, message: String },
    /// A record could not be written: ENOSPC passes through, the rest is EIO.
    #[error("cannot write {what}: {source}")]
    Record { what: String, source: std::io::Error },
}

impl Error {
    /// The errno for a failed write on the mount.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Parse(ParseError::Limit(crate::cgroups::LimitError::Range { .. })) => libc::ERANGE,
            Error::Parse(ParseError::TooLong(_)) => libc::EFBIG,
            Error::Parse(ParseError::TimeoutRange(_)) => libc::ERANGE,
            Error::Parse(_) | Error::Invalid(_) => libc::EINVAL,
            Error::Cgroup(e) => e.errno(),
            Error::Freeze(e) => e.errno(),
            Error::Network(e) => e.errno(),
            Error::Build(e) => e.errno(),
            Error::NoSuchBuild(_) => libc::ENOENT,
            Error::BuildRunning(_) => libc::EBUSY,
            Error::Store(e) => e.errno(),
            Error::Runtime(e) => e.errno(),
            Error::Registry(e) => e.errno(),
            Error::NoSuchContainer(_)
            | Error::NoSuchImage(_)
            | Error::NoSuchVolume(_)
            | Error::NoSuchNetwork(_)
            | Error::NotFound(_) => libc::ENOENT,
            Error::NameTaken { .. } => libc::EEXIST,
            Error::WrongState { status, op, .. }
                if op.needs_process() && !status.has_process() && status.is_settled() =>
            {
                libc::ESRCH
            }
            Error::WrongState { .. } | Error::InUse { .. } | Error::Changing { .. } => libc::EBUSY,
            Error::NoImage(_) | Error::Ambiguous { .. } => libc::EINVAL,
            Error::NotPermitted(_) => libc::EPERM,
            Error::AccessDenied(_) => libc::EACCES,
            Error::Overloaded(_) => libc::EAGAIN,
            Error::Stdin { errno, .. } => *errno,
            Error::Record { source, .. } => match source.raw_os_error() {
                Some(e @ (libc::ENOSPC | libc::EDQUOT)) => e,
                _ => libc::EIO,
            },
        }
    }

    pub(crate) fn record(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Record { what, source }
    }
}

/// The symbolic name of an errno, as `errors` shows it (`EINVAL`).
pub fn errno_name(errno: i32) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(errno))
}
