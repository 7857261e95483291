//! What builds keep in the store: each build's copy of its context (for the build's length only), and the
//! step cache: one read-only subvolume per filesystem step, `buildcache/<key>`, a snapshot of its parent's
//! with the step applied. A step under way is a writable snapshot at `buildcache/.tmp-<key>-<rand>`,
//! sealed under its key when it succeeds and deleted when it fails; nothing half done is ever at a key.

use std::io;
use std::path::{Path, PathBuf};

use super::copy::{self, Filter};
use super::{btrfs, import, on_own_thread, reclaim, Store, StoreError};
use crate::caller::Caller;

/// What a step starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// An empty filesystem (`FROM scratch`).
    Scratch,
    /// Image `id`'s subvolume.
    Image(String),
    /// The cached step `key`.
    Step(String),
}

impl Store {
    /// The read-only subvolume of cached step `key`.
    pub fn step_path(&self, key: &str) -> PathBuf {
        self.dir.join("buildcache").join(key)
    }

    /// Whether step `key` is cached.
    pub fn has_step(&self, key: &str) -> bool {
        self.step_path(key).is_dir()
    }

    /// Where `base`'s files are (`None` for scratch: nothing).
    pub fn base_path(&self, base: &Base) -> Option<PathBuf> {
        match base {
            Base::Scratch => None,
            Base::Image(id) => Some(self.image_path(id)),
            Base::Step(key) => Some(self.step_path(key)),
        }
    }

    /// Starts step `key` on `base`: a writable snapshot of it (an empty subvolume for scratch), returned.
    pub fn begin_step(&self, base: &Base, key: &str) -> Result<PathBuf, StoreError> {
        let tmp = self.dir.join("buildcache").join(format!(".tmp-{key}-{}", crate::ids::new_id("")));
        match self.base_path(base) {
            Some(from) => btrfs::snapshot(&from, &tmp, false).map_err(|source| StoreError::Snapshot {
                from,
                to: tmp.clone(),
                source,
            })?,
            None => btrfs::create_subvolume(&tmp)
                .map_err(|source| StoreError::CreateSubvolume { path: tmp.clone(), source })?,
        }
        Ok(tmp)
    }

    /// Seals a step begun with [`Store::begin_step`] under its key; one another build sealed meanwhile is
    /// kept and this one dropped (false). With `replace`, this one takes the key's place in one rename
    /// (`RENAME_EXCHANGE`), so a build standing on the old one finds a step there at every moment.
    pub fn seal_step(&self, tmp: &Path, key: &str, replace: bool) -> Result<bool, StoreError> {
        let dest = self.step_path(key);
        if self.has_step(key) && !replace {
            self.remove_subvolume(tmp);
            return Ok(false);
        }
        let seal = |e: io::Error| StoreError::Seal { path: dest.clone(), source: e };
        let sealed = btrfs::set_read_only(tmp, true).map_err(seal).and_then(|()| {
            if !self.has_step(key) {
                return std::fs::rename(tmp, &dest).map_err(seal);
            }
            let flags = rustix::fs::RenameFlags::EXCHANGE;
            rustix::fs::renameat_with(rustix::fs::CWD, tmp, rustix::fs::CWD, &dest, flags).map_err(|e| seal(e.into()))
        });
        // Failed, or exchanged: what is at `tmp` now is not wanted.
        self.remove_subvolume(tmp);
        sealed.map(|()| true)
    }

    /// Drops a step that failed, and gives its space back.
    pub fn abort_step(&self, tmp: &Path) {
        self.remove_subvolume(tmp);
        reclaim(&self.dir, None);
    }

    /// Deletes cached step `key`.
    pub fn delete_step(&self, key: &str) -> Result<(), StoreError> {
        self.delete_if_there(self.step_path(key))
    }

    /// The keys of the cached steps.
    pub fn steps(&self) -> Vec<String> {
        self.names_in("buildcache")
    }

    /// Makes image `id` a read-only snapshot of `base` (an empty image for scratch).
    pub fn image_from_base(&self, base: &Base, id: &str) -> Result<(), StoreError> {
        let tmp = self.staging_path("images", &crate::ids::new_id(&format!("{id}-")));
        match self.base_path(base) {
            Some(from) => btrfs::snapshot(&from, &tmp, true).map_err(|source| StoreError::Snapshot {
                from,
                to: tmp.clone(),
                source,
            })?,
            None => {
                btrfs::create_subvolume(&tmp)
                    .map_err(|source| StoreError::CreateSubvolume { path: tmp.clone(), source })?;
                return self.seal(&tmp, &self.image_path(id)).inspect_err(|_| self.remove_subvolume(&tmp));
            }
        }
        std::fs::rename(&tmp, self.image_path(id)).map_err(|source| {
            self.remove_subvolume(&tmp);
            StoreError::Seal { path: self.image_path(id), source }
        })
    }

    /// Copies build context `src`, read as `caller`, into a subvolume of its own, without what `filter`
    /// leaves out; returns where it is. Deleted with [`Store::drop_context`] when the build ends.
    pub fn stage_context(&self, src: &Path, caller: &Caller, filter: Filter<'_>) -> Result<PathBuf, StoreError> {
        let daemon_root = self.dir.parent().unwrap_or(&self.dir).to_path_buf();
        let source = on_own_thread(|| import::open_source(src, caller, &daemon_root))?;
        let tmp = self.dir.join("builds").join(crate::ids::new_id("context-"));
        btrfs::create_subvolume(&tmp).map_err(|e| StoreError::CreateSubvolume { path: tmp.clone(), source: e })?;
        match on_own_thread(|| copy::copy_tree_filtered(&source, &tmp, caller, Some(filter))) {
            Ok(_) => Ok(tmp),
            Err(e) => {
                self.remove_subvolume(&tmp);
                Err(e.into())
            }
        }
    }

    /// Deletes a build's copy of its context.
    pub fn drop_context(&self, path: &Path) {
        self.remove_subvolume(path);
    }

    /// Removes what builds cut short left: contexts and steps under way (their processes ended first: see
    /// `engine::build::end_cut_steps`).
    pub fn sweep_builds(&self) {
        for (kind, all) in [("builds", true), ("buildcache", false)] {
            let Ok(entries) = std::fs::read_dir(self.dir.join(kind)) else { continue };
            for entry in entries.flatten() {
                if all || entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    self.remove_subvolume(&entry.path());
                }
            }
        }
    }
}
