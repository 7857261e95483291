//! Pulling images from OCI registries (Docker Hub, ghcr.io, quay.io, one on localhost) through the
//! `oci-client` crate, and pushing local images back.
//!
//! A pull resolves the reference to a manifest (picking this host's platform from an index), checks the
//! config, downloads the missing layers in parallel to temporary blob files (digest checked as they
//! stream, never a whole layer in memory), then applies them in order, each into a btrfs subvolume
//! snapshotted from its parent's (named by chain id), so images that share a base share it on disk.

mod auth;
mod pull;
mod push;
mod reference;

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use oci_client::errors::{OciDistributionError, OciErrorCode};

pub use pull::Pulled;
pub use push::PushSource;
pub use reference::{familiar, normal_form, normalize, Platform, PullSpec, PushSpec};

use crate::store::StoreError;

/// Why a pull or push failed; one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("bad reference '{0}': an image name is Docker's [REGISTRY/]REPO[:TAG], in lower case (a-z 0-9 . _ -)")]
    Reference(String),
    #[error("bad platform '{0}': use OS/ARCH[/VARIANT], like linux/arm64/v8")]
    Platform(String),
    #[error("{reference}: {source}")]
    Manifest { reference: String, source: OciDistributionError },
    #[error("{reference}: no {wanted} image in the index (it has: {available})")]
    NoPlatform { reference: String, wanted: String, available: String },
    #[error("unsupported media type {0}")]
    MediaType(String),
    #[error("bad image config: {0}")]
    Config(String),
    #[error("blob {digest}: {source}")]
    Blob { digest: String, source: OciDistributionError },
    #[error("blob {digest}: {source}")]
    Download { digest: String, source: io::Error },
    #[error("{what} has {size} bytes, over the limit of {limit}")]
    TooBig { what: String, size: u64, limit: u64 },
    #[error("blob {digest} is not the {size} bytes its descriptor says (got {actual})")]
    SizeMismatch { digest: String, size: u64, actual: String },
    #[error("blob {digest} does not match its digest (got {actual})")]
    DigestMismatch { digest: String, actual: String },
    #[error("layer {digest}: its content does not match the config's diff id {diff_id}")]
    DiffIdMismatch { digest: String, diff_id: String },
    #[error("layer {digest}: {source}")]
    Layer { digest: String, source: crate::store::unpack::UnpackError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("push of {reference}: {source}")]
    Push { reference: String, source: OciDistributionError },
    #[error("cannot read the image to push: {0}")]
    PushSource(io::Error),
    /// The HTTP client can't be made: no CA certificate on the system (install ca-certificates), say.
    #[error("cannot make the registry client: {0}")]
    Client(OciDistributionError),
}

impl RegistryError {
    /// The errno of a failed write to `images/pull` or `images/push`.
    pub fn errno(&self) -> i32 {
        match self {
            RegistryError::Reference(_) | RegistryError::Platform(_) => libc::EINVAL,
            RegistryError::Manifest { source, .. }
            | RegistryError::Blob { source, .. }
            | RegistryError::Push { source, .. } => classify(source),
            RegistryError::NoPlatform { .. } | RegistryError::MediaType(_) => libc::EOPNOTSUPP,
            RegistryError::TooBig { .. } => libc::EFBIG,
            RegistryError::Config(_)
            | RegistryError::SizeMismatch { .. }
            | RegistryError::DigestMismatch { .. }
            | RegistryError::DiffIdMismatch { .. } => libc::EREMOTEIO,
            RegistryError::Download { source, .. } => io_errno(source),
            RegistryError::Layer { source, .. } => match source {
                crate::store::unpack::UnpackError::Unsafe { .. } => libc::EPERM,
                other => other.io().map_or(libc::EREMOTEIO, io_errno),
            },
            RegistryError::Store(e) => e.errno(),
            RegistryError::PushSource(e) => io_errno(e),
            RegistryError::Client(_) => libc::EIO,
        }
    }
}

/// ENOSPC and the network errors pass through; anything else from a stream is the registry's fault.
fn io_errno(e: &io::Error) -> i32 {
    match e.raw_os_error() {
        Some(
            code @ (libc::ENOSPC
            | libc::EDQUOT
            | libc::ECONNREFUSED
            | libc::ECONNRESET
            | libc::ETIMEDOUT
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH),
        ) => code,
        _ => match e.kind() {
            io::ErrorKind::ConnectionRefused => libc::ECONNREFUSED,
            io::ErrorKind::ConnectionReset => libc::ECONNRESET,
            io::ErrorKind::TimedOut => libc::ETIMEDOUT,
            io::ErrorKind::HostUnreachable => libc::EHOSTUNREACH,
            io::ErrorKind::NetworkUnreachable => libc::ENETUNREACH,
            io::ErrorKind::StorageFull => libc::ENOSPC,
            _ => libc::EREMOTEIO,
        },
    }
}

/// The errno for what the registry client reports.
fn classify(e: &OciDistributionError) -> i32 {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => libc::ENOENT,
        OciDistributionError::AuthenticationFailure(_) | OciDistributionError::UnauthorizedError { .. } => libc::EACCES,
        OciDistributionError::ServerError { code: 401 | 403, .. } => libc::EACCES,
        OciDistributionError::ServerError { code: 404, .. } => libc::ENOENT,
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                libc::ENOENT
            } else if codes.iter().any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied)) {
                libc::EACCES
            } else {
                libc::EREMOTEIO
            }
        }
        OciDistributionError::UnsupportedMediaTypeError(_)
        | OciDistributionError::IncompatibleLayerMediaTypeError(_) => libc::EOPNOTSUPP,
        OciDistributionError::RequestError(r) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(r);
            while let Some(s) = source {
                if let Some(io) = s.downcast_ref::<io::Error>() {
                    let errno = io_errno(io);
                    if errno != libc::EREMOTEIO {
                        return errno;
                    }
                }
                source = s.source();
            }
            if r.is_timeout() {
                libc::ETIMEDOUT
            } else if r.is_connect() {
                libc::ECONNREFUSED
            } else {
                libc::EREMOTEIO
            }
        }
        OciDistributionError::IoError(io) => io_errno(io),
        _ => libc::EREMOTEIO,
    }
}

/// Per-layer progress of the pulls under way, for the `images/pulls` file.
#[derive(Default)]
pub struct Progress {
    next: AtomicU64,
    pulls: Mutex<BTreeMap<u64, PullProgress>>,
}

struct PullProgress {
    reference: String,
    layers: Vec<LayerProgress>,
}

/// One layer of a pull: its digest, bytes done (shared with the download) and total, and its state.
#[derive(Clone)]
pub struct LayerProgress {
    pub digest: String,
    pub total: u64,
    pub done: Arc<AtomicU64>,
    pub state: Arc<Mutex<&'static str>>,
}

impl LayerProgress {
    pub fn set(&self, state: &'static str) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }
}

impl Progress {
    fn begin(&self, reference: &str) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, PullProgress { reference: reference.to_string(), layers: Vec::new() });
        id
    }

    fn add_layer(&self, pull: u64, digest: &str, total: u64, state: &'static str) -> LayerProgress {
        let layer = LayerProgress {
            digest: digest.to_string(),
            total,
            done: Arc::new(AtomicU64::new(0)),
            state: Arc::new(Mutex::new(state)),
        };
        if let Some(p) = self.lock().get_mut(&pull) {
            p.layers.push(layer.clone());
        }
        layer
    }

    fn end(&self, pull: u64) {
        self.lock().remove(&pull);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, PullProgress>> {
        self.pulls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `REFERENCE LAYER-DIGEST DONE TOTAL STATE`, a line per layer of each pull under way.
    pub fn render(&self) -> Vec<u8> {
        let mut out = String::new();
        for p in self.lock().values() {
            for l in &p.layers {
                let state = *l.state.lock().unwrap_or_else(|e| e.into_inner());
                let done = l.done.load(Ordering::Relaxed);
                out.push_str(&format!("{} {} {done} {} {state}\n", p.reference, l.digest, l.total));
            }
        }
        out.into_bytes()
    }
}

/// The registry client side of the daemon: its own async runtime, the insecure registries it may use
/// plain HTTP with, and the progress of pulls under way.
pub struct Registry {
    runtime: tokio::runtime::Runtime,
    insecure: Vec<String>,
    pub progress: Progress,
}

impl Registry {
    pub fn new(insecure: Vec<String>) -> io::Result<Registry> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("registry")
            .enable_all()
            .build()?;
        Ok(Registry { runtime, insecure, progress: Progress::default() })
    }

    /// A client for `registry`; an error rather than reqwest's panic where TLS can't be set up (a
    /// system without CA certificates).
    fn client(&self, registry: &str) -> Result<oci_client::Client, RegistryError> {
        let mut config = oci_client::client::ClientConfig::default();
        if reference::is_loopback(registry) || self.insecure.iter().any(|r| r == registry) {
            config.protocol = oci_client::client::ClientProtocol::HttpsExcept(vec![registry.to_string()]);
        }
        oci_client::Client::try_from(config).map_err(RegistryError::Client)
    }

    /// Pulls `spec` into `store`; `known` says whether an image id exists already (then nothing is
    /// downloaded beyond the manifest and config).
    pub fn pull(
        &self,
        spec: &PullSpec,
        store: &crate::store::Store,
        known: &dyn Fn(&str) -> bool,
    ) -> Result<Pulled, RegistryError> {
        let registry = spec.reference.resolve_registry().to_string();
        let client = self.client(&registry)?;
        let auth = auth::lookup(&registry);
        let id = self.progress.begin(&spec.source);
        let result = self.runtime.block_on(pull::pull(&client, &auth, spec, store, &self.progress, id, known));
        self.progress.end(id);
        result
    }

    /// Pushes a local image to `spec.reference`; returns the manifest digest.
    pub fn push(&self, spec: &PushSpec, source: &PushSource) -> Result<String, RegistryError> {
        let registry = spec.reference.resolve_registry().to_string();
        let client = self.client(&registry)?;
        let auth = auth::lookup(&registry);
        self.runtime.block_on(push::push(&client, &auth, spec, source))
    }
}
