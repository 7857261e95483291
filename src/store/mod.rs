//! The store: where images and container root filesystems live, as btrfs subvolumes.
//!
//! Images are read-only subvolumes under `<store>/images/<id>`; a container's rootfs is a writable snapshot
//! of its image under `<store>/containers/<name>`. `<store>` is `<root>/store`: a plain directory when the
//! root is already on btrfs, otherwise the mount point of `<root>/store.img`, a sparse btrfs image file the
//! daemon makes and loop-mounts itself.

mod btrfs;
mod buildcache;
mod copy;
mod import;
mod loopdev;
pub mod unpack;

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use crate::caller::Caller;
pub use buildcache::Base;
pub use copy::{tree_size, CopyError, Pass};

/// Why a store operation failed; one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot prepare the store directory {path}: {source}")]
    Prepare { path: PathBuf, source: io::Error },
    #[error("cannot create the btrfs image {path}: {source}")]
    CreateImageFile { path: PathBuf, source: io::Error },
    #[error("cannot loop-mount {image} at {target}: {source}")]
    Mount { image: PathBuf, target: PathBuf, source: io::Error },
    #[error("cannot create subvolume {path}: {source}")]
    CreateSubvolume { path: PathBuf, source: io::Error },
    #[error("cannot snapshot {from} to {to}: {source}")]
    Snapshot { from: PathBuf, to: PathBuf, source: io::Error },
    #[error("cannot delete subvolume {path}: {source}")]
    DeleteSubvolume { path: PathBuf, source: io::Error },
    #[error("cannot seal image {path}: {source}")]
    Seal { path: PathBuf, source: io::Error },
    #[error("cannot swap in the new version of image {path}: {source}")]
    Exchange { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Import(#[from] CopyError),
}

impl StoreError {
    fn source_io(&self) -> Option<&io::Error> {
        Some(match self {
            StoreError::Prepare { source, .. }
            | StoreError::CreateImageFile { source, .. }
            | StoreError::Mount { source, .. }
            | StoreError::CreateSubvolume { source, .. }
            | StoreError::Snapshot { source, .. }
            | StoreError::DeleteSubvolume { source, .. }
            | StoreError::Seal { source, .. }
            | StoreError::Exchange { source, .. } => source,
            StoreError::Import(_) => return None,
        })
    }

    /// The errno a write that hit this error returns: ENOSPC passes through, an import's errors have
    /// their own ([`CopyError::errno`]), the rest is EIO.
    pub fn errno(&self) -> i32 {
        if let StoreError::Import(e) = self {
            return e.errno();
        }
        match self.source_io().and_then(io::Error::raw_os_error) {
            Some(e @ (libc::ENOSPC | libc::EDQUOT)) => e,
            _ => libc::EIO,
        }
    }
}

/// The btrfs store of one daemon root.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// Set when the daemon loop-mounted the store itself (and so may unmount it).
    loop_mounted: bool,
    /// Images that have a spare snapshot ready at `containers/.warm-<id>`, and those one is being made
    /// for. A snapshot costs a btrfs transaction commit (milliseconds); taking a ready one is a rename,
    /// under this lock, which is never held across a snapshot.
    warm: Arc<Mutex<Warm>>,
    /// Held by a refill across its snapshot, and by an image's deletion or replacement across theirs: no
    /// spare is made of an image going away, so none outlives its image. Taken before `warm`.
    refills: Arc<Mutex<()>>,
    /// Refills and space reclaims running in the background; joined before the store is unmounted.
    background: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Store {
    /// Opens the store under `root`, creating and mounting the embedded btrfs image of `image_size` bytes
    /// when `root` is not on btrfs.
    pub fn open(root: &Path, image_size: u64) -> Result<Store, StoreError> {
        let dir = root.join("store");
        let prep = |path: &Path, e| StoreError::Prepare { path: path.to_path_buf(), source: e };
        std::fs::create_dir_all(&dir).map_err(|e| prep(&dir, e))?;
        let mut loop_mounted = false;
        if !btrfs::is_btrfs(&dir).map_err(|e| prep(&dir, e))? {
            let image = root.join("store.img");
            let created = loopdev::ensure_image(&image, image_size)
                .map_err(|e| StoreError::CreateImageFile { path: image.clone(), source: e })?;
            if created {
                info!(image = %image.display(), size = image_size, "created btrfs store image");
            }
            private(&image).map_err(|e| prep(&image, e))?;
            loopdev::mount_image(&image, &dir).map_err(|e| StoreError::Mount {
                image: image.clone(),
                target: dir.clone(),
                source: e,
            })?;
            info!(image = %image.display(), mount = %dir.display(), "mounted btrfs store");
            loop_mounted = true;
        } else if is_mount_point(&dir, root) {
            // A store left mounted by an earlier daemon whose containers were still running.
            info!(mount = %dir.display(), "reusing the btrfs store already mounted");
            // An older daemon may have mounted it without them.
            let flags = nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_BIND | loopdev::STORE_FLAGS;
            nix::mount::mount(None::<&str>, &dir, None::<&str>, flags, None::<&str>).map_err(|e| {
                StoreError::Mount { image: root.join("store.img"), target: dir.clone(), source: e.into() }
            })?;
            loop_mounted = true;
        }
        // Only the daemon looks inside: images and rootfs hold other people's files (a 0600 file of an image
        // is 0600 only while its directory can't be walked).
        private(&dir).map_err(|e| prep(&dir, e))?;
        for sub in ["images", "containers", "layers", "blobs", "volumes", "builds", "buildcache"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| prep(&p, e))?;
        }
        // Blobs are only ever temporary: what is there is what a cut pull left.
        if let Ok(entries) = std::fs::read_dir(dir.join("blobs")) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let (warm, refills, background) = (Arc::default(), Arc::default(), Mutex::default());
        Ok(Store { dir, loop_mounted, warm, refills, background })
    }

    /// Where the store's subvolumes live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The read-only subvolume of image `id`.
    pub fn image_path(&self, id: &str) -> PathBuf {
        self.dir.join("images").join(id)
    }

    /// The writable rootfs subvolume of container `name`.
    pub fn container_path(&self, name: &str) -> PathBuf {
        self.dir.join("containers").join(name)
    }

    fn staging_path(&self, kind: &str, id: &str) -> PathBuf {
        self.dir.join(kind).join(format!(".tmp-{id}"))
    }

    /// The read-only subvolume of the layer with chain id `chain` (`sha256:<hex>`).
    fn layer_path(&self, chain: &str) -> PathBuf {
        self.dir.join("layers").join(chain.trim_start_matches("sha256:"))
    }

    /// Whether the layer with chain id `chain` is stored.
    pub fn has_layer(&self, chain: &str) -> bool {
        self.layer_path(chain).is_dir()
    }

    /// A fresh temporary file for downloading blob `digest`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.join("blobs").join(format!("{}-{}", &hex[..hex.len().min(16)], crate::ids::new_id("")))
    }

    /// Makes layer `chain`: a writable snapshot of layer `parent` (or an empty subvolume for a base
    /// layer) that `apply` fills, sealed read-only under its chain id. Nothing is left if `apply` fails.
    /// A layer another pull finished meanwhile is kept, and this one dropped.
    pub fn add_layer<E: From<StoreError>>(
        &self,
        parent: Option<&str>,
        chain: &str,
        apply: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<(), E> {
        let hex = chain.trim_start_matches("sha256:");
        let tmp = self.staging_path("layers", &format!("{hex}-{}", crate::ids::new_id("")));
        self.snapshot_layer(parent, &tmp)?;
        let result = apply(&tmp).and_then(|()| {
            if self.has_layer(chain) {
                self.remove_subvolume(&tmp);
                return Ok(());
            }
            self.seal(&tmp, &self.layer_path(chain)).map_err(E::from)
        });
        if result.is_err() {
            self.remove_subvolume(&tmp);
            reclaim(&self.dir, None);
        }
        result
    }

    /// Makes `to` a writable snapshot of layer `layer`, or an empty subvolume when there is none.
    fn snapshot_layer(&self, layer: Option<&str>, to: &Path) -> Result<(), StoreError> {
        let to = to.to_path_buf();
        match layer {
            Some(chain) => {
                let from = self.layer_path(chain);
                btrfs::snapshot(&from, &to, false).map_err(|source| StoreError::Snapshot { from, to, source })
            }
            None => btrfs::create_subvolume(&to).map_err(|source| StoreError::CreateSubvolume { path: to, source }),
        }
    }

    /// Makes image `id` a read-only snapshot of layer `top` (an empty image when there is none).
    pub fn image_from_layer(&self, top: Option<&str>, id: &str) -> Result<(), StoreError> {
        let tmp = self.staging_path("images", id);
        self.snapshot_layer(top, &tmp)?;
        let sealed = self.seal(&tmp, &self.image_path(id));
        if sealed.is_err() {
            self.remove_subvolume(&tmp);
        }
        sealed
    }

    /// Deletes layer `chain`, if stored.
    pub fn delete_layer(&self, chain: &str) -> Result<(), StoreError> {
        self.delete_if_there(self.layer_path(chain))
    }

    /// The chain ids of the layers stored.
    pub fn layers(&self) -> Vec<String> {
        self.names_in("layers").into_iter().map(|n| format!("sha256:{n}")).collect()
    }

    /// The names under `<store>/<kind>`, less staging entries (`.tmp-...`, `.warm-...`).
    fn names_in(&self, kind: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join(kind)) else { return Vec::new() };
        entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect()
    }

    /// Deletes the subvolume at `path` if there is one there.
    fn delete_if_there(&self, path: PathBuf) -> Result<(), StoreError> {
        if !path.exists() {
            return Ok(());
        }
        self.delete(path)
    }

    /// Makes image `id` from a copy of `src`, read as `caller` (see [`copy`] and [`import`]); returns the
    /// content size in bytes. The image appears under its final name only when complete and read-only; on
    /// failure nothing is left. The copy runs on a thread of its own: the identity it takes on, and any
    /// panic, end with that thread.
    pub fn import_dir(&self, id: &str, src: &Path, caller: &Caller) -> Result<u64, StoreError> {
        let daemon_root = self.dir.parent().unwrap_or(&self.dir).to_path_buf();
        let source = on_own_thread(|| import::open_source(src, caller, &daemon_root))?;
        let tmp = self.staging_path("images", id);
        btrfs::create_subvolume(&tmp).map_err(|e| StoreError::CreateSubvolume { path: tmp.clone(), source: e })?;
        let result = on_own_thread(|| copy::copy_tree(&source, &tmp, caller).map(|stats| stats.bytes))
            .map_err(StoreError::from)
            .and_then(|bytes| self.seal(&tmp, &self.image_path(id)).map(|()| bytes));
        if result.is_err() {
            self.remove_subvolume(&tmp);
            // A failed import is often a full store: give the space back before answering.
            reclaim(&self.dir, None);
        }
        result
    }

    /// The subvolume of named volume `name`: its content, bind-mounted into containers.
    pub fn volume_path(&self, name: &str) -> PathBuf {
        self.dir.join("volumes").join(name)
    }

    /// The named volumes, by name.
    pub fn volumes(&self) -> Vec<String> {
        self.names_in("volumes")
    }

    /// Makes named volume `name`, an empty subvolume (one ioctl: there or not, never half made).
    pub fn create_volume(&self, name: &str) -> Result<(), StoreError> {
        let path = self.volume_path(name);
        btrfs::create_subvolume(&path).map_err(|source| StoreError::CreateSubvolume { path, source })
    }

    /// Deletes named volume `name` and its content.
    pub fn delete_volume(&self, name: &str) -> Result<(), StoreError> {
        self.delete(self.volume_path(name))
    }

    /// Stages a read-only snapshot of container `name`'s rootfs for a commit; returns where it is and the
    /// bytes of file content in it. Nothing is visible under `images/` yet.
    pub fn stage_commit(&self, name: &str) -> Result<(PathBuf, u64), StoreError> {
        let from = self.container_path(name);
        let tmp = self.staging_path("images", &crate::ids::new_id("commit-"));
        btrfs::snapshot(&from, &tmp, true).map_err(|source| StoreError::Snapshot { from, to: tmp.clone(), source })?;
        Ok((tmp.clone(), copy::tree_size(&tmp)))
    }

    /// Puts a staged commit in place as image `id`. A new id is a rename. An existing one is swapped with
    /// `renameat2(RENAME_EXCHANGE)`, so `images/<id>` is the old version or the new one at every moment,
    /// never missing; the old version (now at the staging path) is deleted after. Its spare snapshot goes
    /// too: it was of the old version.
    pub fn place_commit(&self, staged: &Path, id: &str, replace: bool) -> Result<(), StoreError> {
        let dest = self.image_path(id);
        let exchange = |e: io::Error| StoreError::Exchange { path: dest.clone(), source: e };
        if !replace {
            return std::fs::rename(staged, &dest).map_err(exchange);
        }
        // Held across the swap, so no spare of the old version is made meanwhile.
        let refills = lock(&self.refills);
        rustix::fs::renameat_with(rustix::fs::CWD, staged, rustix::fs::CWD, &dest, rustix::fs::RenameFlags::EXCHANGE)
            .map_err(|e| exchange(e.into()))?;
        if lock(&self.warm).ready.remove(id) {
            self.remove_subvolume(&self.warm_path(id));
        }
        drop(refills);
        self.delete(staged.to_path_buf())
    }

    /// Deletes a staged commit that will not be placed.
    pub fn discard(&self, staged: &Path) {
        self.remove_subvolume(staged);
    }

    /// Makes `tmp` read-only and moves it to `dest`.
    fn seal(&self, tmp: &Path, dest: &Path) -> Result<(), StoreError> {
        let seal = |e| StoreError::Seal { path: dest.to_path_buf(), source: e };
        btrfs::set_read_only(tmp, true).map_err(seal)?;
        std::fs::rename(tmp, dest).map_err(seal)
    }

    /// Makes the rootfs of container `name` a writable snapshot of image `image_id`: the image's spare
    /// snapshot when one is ready, a new one otherwise; then a new spare is made in the background.
    pub fn snapshot_image(&self, image_id: &str, name: &str) -> Result<(), StoreError> {
        let from = self.image_path(image_id);
        let to = self.container_path(name);
        let spare = self.warm_path(image_id);
        // Taken under the lock: the rename, so a refill never snapshots onto a spare still there.
        let took = {
            let mut warm = lock(&self.warm);
            warm.ready.remove(image_id) && std::fs::rename(&spare, &to).is_ok()
        };
        if !took {
            btrfs::snapshot(&from, &to, false).map_err(|e| StoreError::Snapshot { from, to, source: e })?;
        }
        // One refill per image at a time: a burst of starts makes one spare after another, not a thread each.
        if lock(&self.warm).refilling.insert(image_id.to_string()) {
            let (warm, refills) = (Arc::clone(&self.warm), Arc::clone(&self.refills));
            let (image, dir) = (image_id.to_string(), self.dir.clone());
            self.in_background(move || refill(&refills, &warm, &dir, &image));
        }
        Ok(())
    }

    fn warm_path(&self, image_id: &str) -> PathBuf {
        warm_path(&self.dir, image_id)
    }

    /// Deletes image `id`'s subvolume, and its spare snapshot.
    pub fn delete_image(&self, id: &str) -> Result<(), StoreError> {
        let _refills = lock(&self.refills);
        if lock(&self.warm).ready.remove(id) {
            self.remove_subvolume(&self.warm_path(id));
        }
        self.delete(self.image_path(id))
    }

    /// Deletes container `name`'s rootfs, if it has one.
    pub fn delete_container(&self, name: &str) -> Result<(), StoreError> {
        let path = self.container_path(name);
        if !path.exists() {
            return Ok(());
        }
        self.delete(path)
    }

    /// Deletes a subvolume with the subvolumes a container may have made inside it; its space is given back
    /// in the background.
    fn delete(&self, path: PathBuf) -> Result<(), StoreError> {
        let id = btrfs::subvolume_id(&path).ok();
        let nested = btrfs::delete_subvolume_tree(&path)
            .map_err(|e| StoreError::DeleteSubvolume { path: path.clone(), source: e })?;
        if nested > 0 {
            info!(path = %path.display(), nested, "deleted the subvolumes nested in it too");
        }
        let dir = self.dir.clone();
        self.in_background(move || reclaim(&dir, id));
        Ok(())
    }

    /// Runs `work` on a thread of its own, remembered so `close` can wait for it.
    fn in_background(&self, work: impl FnOnce() + Send + 'static) {
        let mut threads = lock(&self.background);
        threads.retain(|t| !t.is_finished());
        threads.push(std::thread::spawn(work));
    }

    /// Removes subvolumes no record owns: staging leftovers of an interrupted import or pull, and anything
    /// whose record is gone. `keep` says which names to keep in `images/`, `containers/` and `layers/`
    /// (there, by chain id hex).
    pub fn sweep(&self, keep: impl Fn(&str, &str) -> bool) {
        for kind in ["images", "containers", "layers"] {
            let Ok(entries) = std::fs::read_dir(self.dir.join(kind)) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !keep(kind, &name) {
                    warn!(kind, name, "removing leftover subvolume");
                    self.remove_subvolume(&entry.path());
                }
            }
        }
    }

    fn remove_subvolume(&self, path: &Path) {
        if let Err(e) = btrfs::delete_subvolume_tree(path) {
            warn!(path = %path.display(), error = %e, "cannot delete subvolume");
            let _ = std::fs::remove_dir_all(path);
        }
    }

    /// Unmounts the embedded store when the daemon mounted it and `unmount` is set (no container running).
    pub fn close(&self, unmount: bool) {
        if !self.loop_mounted {
            return;
        }
        if !unmount {
            info!(mount = %self.dir.display(), "containers still run: leaving the store mounted");
            return;
        }
        // A refill or reclaim still holding the store open would make the unmount fail with EBUSY.
        for thread in std::mem::take(&mut *lock(&self.background)) {
            let _ = thread.join();
        }
        // A container that just ended may still be dropping its copy of the store: retry a while.
        for attempt in 1..=40 {
            match nix::mount::umount2(&self.dir, nix::mount::MntFlags::empty()) {
                Ok(()) => {
                    info!(mount = %self.dir.display(), "unmounted btrfs store");
                    return;
                }
                Err(nix::Error::EBUSY) => {
                    warn!(mount = %self.dir.display(), attempt, "store busy; retrying the unmount");
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => {
                    warn!(mount = %self.dir.display(), error = %e, "cannot unmount btrfs store");
                    return;
                }
            }
        }
        warn!(mount = %self.dir.display(), "store still busy: detaching it lazily");
        let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Runs `work` on a scoped thread of its own and waits for it; a panic there is an error here.
fn on_own_thread<T: Send>(work: impl FnOnce() -> Result<T, CopyError> + Send) -> Result<T, CopyError> {
    std::thread::scope(|s| s.spawn(work).join()).unwrap_or(Err(CopyError::Aborted))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn warm_path(dir: &Path, image_id: &str) -> PathBuf {
    dir.join("containers").join(format!(".warm-{image_id}"))
}

/// Which images have a spare snapshot ready, and which have one being made.
#[derive(Debug, Default)]
struct Warm {
    ready: HashSet<String>,
    refilling: HashSet<String>,
}

/// Makes a spare snapshot of `image` unless one is ready. `refills` is held across the snapshot, so
/// `delete_image` can't run in between: a spare is made of an image that exists, and deleted with it;
/// `warm` only to look and to record it, so starts take spares meanwhile.
fn refill(refills: &Mutex<()>, warm: &Mutex<Warm>, dir: &Path, image: &str) {
    let _one = lock(refills);
    let done = |made: bool| {
        let mut warm = lock(warm);
        warm.refilling.remove(image);
        if made {
            warm.ready.insert(image.to_string());
        }
    };
    if lock(warm).ready.contains(image) || !dir.join("images").join(image).exists() {
        return done(false);
    }
    let spare = warm_path(dir, image);
    match btrfs::snapshot(&dir.join("images").join(image), &spare, false) {
        Ok(()) => done(true),
        Err(e) => {
            warn!(image, error = %e, "cannot make a spare snapshot");
            done(false)
        }
    }
}

/// Frees the space of a deleted subvolume now rather than at the next periodic commit (30 s). A commit
/// records the deletion and wakes the cleaner, which drops the subvolume; the extents it frees are usable
/// after one more commit. The cleaner can miss a wake-up (it may look before the deletion is recorded), so
/// while it has not dropped `deleted` (watched with Linux 6.8's wait, on a thread) the store is committed
/// every 50 ms, for up to 10 s; then once more. Older kernels get two commits, which is usually enough.
fn reclaim(dir: &Path, deleted: Option<u64>) {
    let sync = || {
        if let Err(e) = btrfs::sync(dir) {
            warn!(store = %dir.display(), error = %e, "cannot sync the store");
        }
    };
    sync();
    let Some(id) = deleted else { return sync() };
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let watched = dir.to_path_buf();
    std::thread::spawn(move || {
        let _ = done_tx.send(btrfs::wait_deleted(&watched, id));
    });
    for _ in 0..200 {
        match done_rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(Ok(true)) => break,
            Ok(Ok(false)) => {
                sync();
                break;
            }
            Ok(Err(e)) => {
                warn!(store = %dir.display(), error = %e, "cannot wait for a deleted subvolume");
                break;
            }
            Err(_) => sync(),
        }
    }
    sync();
}

/// Makes `path` the daemon's alone (0700 for a directory, 0600 for a file), whatever an older version left.
pub fn private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if std::fs::metadata(path)?.is_dir() { 0o700 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Whether `dir` is a mount point: a different device from its parent `root`.
fn is_mount_point(dir: &Path, root: &Path) -> bool {
    match (std::fs::metadata(dir), std::fs::metadata(root)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}
