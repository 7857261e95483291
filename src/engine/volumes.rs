//! Named volumes (made and removed as subvolumes of the store), a container's volumes and `volumes-from`,
//! and the bind mounts a start makes of them.
//!
//! What a container's volume may be, checked when its `volumes` file is written and again at every start
//! (what a write can't know: `privileged` written since, a `volumes-from` container's volumes, a host path
//! changed since): a target under `/proc`, `/sys` or `/dev` only for a privileged container (a volume
//! there could cover what the runtime masks, or hand it a device), and a host source neither inside the
//! daemon's root (its store, records and logs) nor under its mount (the control tree, which drives the
//! daemon). Host sources are resolved to their real path for the check, and the container's pid 1 opens
//! exactly that path without following a symlink ([`crate::runtime`]'s bind mounts), so what is checked
//! is what is mounted. A host source that holds the daemon's root or mount (`/`, `/mnt`) is accepted,
//! but an empty read-only directory is mounted over each of them inside the volume ([`masks`]), so the
//! control tree and the store under it stay out of the container's reach.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tracing::info;

use super::records::ContainerRecord;
use super::state::State;
use super::{Changed, Engine, EventType};
use crate::error::Error;
use crate::model::{VolumeSource, VolumeSpec};
use crate::runtime::spec::BindMount;

/// The top directories of a container a volume may cover only when it is privileged.
const KERNEL_DIRS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// The daemon's own paths, which no volume may expose.
#[derive(Debug, Clone, Default)]
pub struct Protected {
    /// The daemon's root, resolved.
    pub root: Option<PathBuf>,
    /// The daemon's mount point, resolved.
    pub mount: Option<PathBuf>,
}

impl Protected {
    /// The daemon's root and mount point, resolved (as given when they don't exist yet).
    pub fn new(root: &Path, mount: &Path) -> Protected {
        let real = |p: &Path| Some(std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
        Protected { root: real(root), mount: real(mount) }
    }
}

/// The targets, inside the volume of real source `real` mounted at `target`, that cover the daemon's
/// root and mount point when the source holds them.
pub fn masks(real: &Path, target: &str, protected: &Protected) -> Vec<String> {
    [&protected.root, &protected.mount]
        .into_iter()
        .flatten()
        .filter_map(|p| p.strip_prefix(real).ok())
        .filter(|rel| !rel.as_os_str().is_empty())
        .map(|rel| format!("{}/{}", target.trim_end_matches('/'), rel.display()))
        .collect()
}

/// Refuses a target under `/proc`, `/sys` or `/dev` unless `privileged` (EPERM).
pub fn check_target(target: &str, privileged: bool) -> Result<(), Error> {
    let path = Path::new(target);
    match KERNEL_DIRS.iter().find(|d| path.starts_with(d)) {
        Some(dir) if !privileged => Err(Error::NotPermitted(format!(
            "volume target {target} is under {dir}: only a privileged container may mount there"
        ))),
        _ => Ok(()),
    }
}

/// The real path of host source `source`, refused (EPERM) when it lies inside the daemon's root or under
/// its mount point, also through another path to the mount's filesystem; ENOENT when it doesn't exist.
pub fn check_host_source(source: &Path, protected: &Protected) -> Result<PathBuf, Error> {
    let real = std::fs::canonicalize(source)
        .map_err(|e| Error::NotFound(format!("no host path '{}': {e}", source.display())))?;
    let refuse = |what: &str, path: &Path| {
        Error::NotPermitted(format!(
            "volume source '{}' is {what} {}: a container must not reach the daemon's own files",
            source.display(),
            path.display()
        ))
    };
    if let Some(root) = &protected.root {
        if real.starts_with(root) {
            return Err(refuse("inside the daemon's root", root));
        }
        // The same directory reached by another path (a bind mount of it, or of a parent): by inode.
        let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
        if let Some(root_id) = id(root) {
            if real.ancestors().any(|a| id(a) == Some(root_id)) {
                return Err(refuse("inside the daemon's root, by another path,", root));
            }
        }
    }
    if let Some(mount) = &protected.mount {
        if real.starts_with(mount) {
            return Err(refuse("under the daemon's mount", mount));
        }
        // The control filesystem has a device of its own: reached through any other path, it is the same.
        let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
        let fuse = dev(mount).filter(|d| Some(*d) != mount.parent().and_then(dev));
        if fuse.is_some() && dev(&real) == fuse {
            return Err(refuse("on the daemon's mount", mount));
        }
    }
    Ok(real)
}

/// A volume of a container about to start, as the state has it: its line, and for a named volume its
/// subvolume.
pub(super) struct PlannedVolume {
    spec: VolumeSpec,
    named: Option<PathBuf>,
}

impl Engine {
    pub(super) fn create_volume(&self, name: &str) -> Result<(), Error> {
        {
            let mut st = self.lock();
            if st.volumes.contains(name) || st.changing_volumes.contains_key(name) {
                return Err(Error::NameTaken { kind: "volume", name: name.to_string() });
            }
            st.changing_volumes.insert(name.to_string(), "being made");
        }
        let made = self.store.create_volume(name);
        let mut st = self.lock();
        st.changing_volumes.remove(name);
        made?;
        st.volumes.insert(name.to_string());
        st.notify(Changed::Volume(name.to_string()));
        drop(st);
        info!(volume = %name, "created volume");
        self.event(EventType::Volume, name, "create", &[]);
        Ok(())
    }

    /// Removes a named volume and its data; EBUSY while any container (in any state) names it.
    pub(super) fn remove_volume(&self, name: &str) -> Result<(), Error> {
        {
            let mut st = self.lock();
            if !st.volumes.contains(name) {
                return Err(Error::NoSuchVolume(name.to_string()));
            }
            if let Some(doing) = st.changing_volumes.get(name) {
                return Err(Error::Changing { what: format!("volume '{name}'"), doing });
            }
            let by: Vec<String> = st
                .containers
                .values()
                .filter(|c| {
                    c.record.volumes.iter().any(|v| v.source == VolumeSource::Named(name.to_string()))
                        || c.record.anonymous_volumes.iter().any(|(v, _)| v == name)
                })
                .map(|c| c.record.name.clone())
                .collect();
            if !by.is_empty() {
                return Err(Error::InUse { what: format!("volume '{name}'"), by });
            }
            st.changing_volumes.insert(name.to_string(), "being removed");
        }
        let removed = self.store.delete_volume(name);
        let mut st = self.lock();
        st.changing_volumes.remove(name);
        removed?;
        st.volumes.remove(name);
        st.notify(Changed::Volume(name.to_string()));
        drop(st);
        info!(volume = %name, "removed volume");
        self.event(EventType::Volume, name, "remove", &[]);
        Ok(())
    }

    /// Sets a stopped container's volumes; each named volume and host path must exist, no host path may
    /// lie in the daemon's own, and only a privileged container may mount under /proc, /sys or /dev.
    pub(super) fn set_volumes(&self, name: &str, volumes: Vec<VolumeSpec>) -> Result<(), Error> {
        self.check_sources(name, &volumes)?;
        self.configure(name, |r| r.volumes = volumes)
    }

    pub(super) fn check_sources(&self, name: &str, volumes: &[VolumeSpec]) -> Result<(), Error> {
        let privileged = {
            let st = self.view();
            for v in volumes {
                if let VolumeSource::Named(n) = &v.source {
                    if !st.volumes.contains(n) || st.changing_volumes.contains_key(n) {
                        return Err(Error::NoSuchVolume(n.clone()));
                    }
                }
            }
            st.container(name)?.record.security.privileged
        };
        // Outside the state lock: resolving a source under the mount comes back to this daemon.
        let protected = self.protected();
        for v in volumes {
            check_target(&v.target, privileged)?;
            if let VolumeSource::Host(p) = &v.source {
                check_host_source(p, &protected)?;
            }
        }
        Ok(())
    }

    /// Sets (or clears) the container whose volumes a stopped container mounts too.
    pub(super) fn set_volumes_from(&self, name: &str, from: Option<String>) -> Result<(), Error> {
        if let Some(from) = &from {
            if from == name {
                return Err(Error::Invalid(format!("container '{name}' can't take volumes from itself")));
            }
            self.view().container(from)?;
        }
        self.configure(name, |r| r.volumes_from = from)
    }

    /// The bind mounts of a container's volumes ([`ContainerRecord::mounted_volumes`]: its own win on a
    /// clash). Each is checked again as a write checks it, and its source
    /// resolved to the real path the container's pid 1 opens without following symlinks.
    pub(super) fn volume_plan(&self, st: &State, record: &ContainerRecord) -> Result<Vec<PlannedVolume>, Error> {
        let from = match &record.volumes_from {
            Some(from) => Some(
                &st.container(from)
                    .map_err(|_| {
                        Error::NotFound(format!(
                            "container '{}' takes volumes from '{from}', which is gone",
                            record.name
                        ))
                    })?
                    .record,
            ),
            None => None,
        };
        let specs = record.mounted_volumes(from);
        specs
            .into_iter()
            .map(|v| {
                let named = match &v.source {
                    VolumeSource::Host(_) => None,
                    VolumeSource::Named(n) if st.volumes.contains(n) => Some(self.store.volume_path(n)),
                    VolumeSource::Named(n) => return Err(Error::NoSuchVolume(n.clone())),
                };
                Ok(PlannedVolume { spec: v, named })
            })
            .collect()
    }

    /// The bind mounts of planned volumes, each checked on the file system again. Outside the state lock:
    /// resolving a source under the mount comes back to this daemon.
    pub(super) fn resolve_binds(&self, plan: Vec<PlannedVolume>, privileged: bool) -> Result<Vec<BindMount>, Error> {
        let protected = self.protected();
        let mut binds = Vec::new();
        for PlannedVolume { spec: v, named } in plan {
            check_target(&v.target, privileged)?;
            let source = match (&v.source, named) {
                (VolumeSource::Host(p), _) => check_host_source(p, &protected)?,
                (VolumeSource::Named(n), Some(path)) => std::fs::canonicalize(&path)
                    .map_err(|e| Error::NotFound(format!("volume '{n}' at {}: {e}", path.display())))?,
                (VolumeSource::Named(n), None) => return Err(Error::NoSuchVolume(n.clone())),
            };
            let masks = masks(&source, &v.target, &protected);
            binds.push(BindMount { source, target: v.target, readonly: v.readonly });
            if !masks.is_empty() {
                let empty = self.state_dir.join("empty");
                std::fs::create_dir_all(&empty).map_err(Error::record("the state directory empty"))?;
                for target in masks {
                    binds.push(BindMount { source: empty.clone(), target, readonly: true });
                }
            }
        }
        Ok(binds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_under_kernel_dirs_need_privileged() {
        for t in ["/proc", "/proc/sys", "/sys/kernel", "/dev", "/dev/shm/x"] {
            assert_eq!(check_target(t, false).unwrap_err().errno(), libc::EPERM, "{t}");
            assert!(check_target(t, true).is_ok(), "{t}");
        }
        for t in ["/data", "/procs", "/device", "/srv/proc"] {
            assert!(check_target(t, false).is_ok(), "{t}");
        }
    }

    #[test]
    fn a_source_holding_the_daemons_paths_gets_them_masked() {
        let p = Protected { root: Some("/var/lib/bocker".into()), mount: Some("/mnt/bocker".into()) };
        assert_eq!(masks(Path::new("/"), "/host", &p), ["/host/var/lib/bocker", "/host/mnt/bocker"]);
        assert_eq!(masks(Path::new("/mnt"), "/m/", &p), ["/m/bocker"]);
        assert!(masks(Path::new("/srv"), "/srv", &p).is_empty());
        assert!(masks(Path::new("/mnt/bo"), "/x", &p).is_empty());
    }

    #[test]
    fn sources_inside_the_daemons_paths_are_refused() {
        let dir = std::env::temp_dir().join(format!("bocker-volcheck-{}", std::process::id()));
        let (root, mount, other) = (dir.join("root"), dir.join("mnt"), dir.join("other"));
        for d in [root.join("store/x"), mount.clone(), other.clone()] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::os::unix::fs::symlink(root.join("store"), other.join("link")).unwrap();
        let p = Protected::new(&root, &mount);
        for bad in [root.clone(), root.join("store/x"), mount.clone(), other.join("link"), other.join("link/x")] {
            let e = check_host_source(&bad, &p).unwrap_err();
            assert_eq!(e.errno(), libc::EPERM, "{}", bad.display());
        }
        assert_eq!(check_host_source(&other, &p).unwrap(), std::fs::canonicalize(&other).unwrap());
        assert_eq!(check_host_source(&dir.join("none"), &p).unwrap_err().errno(), libc::ENOENT);
        // A sibling whose name only starts like the root's is not inside it.
        std::fs::create_dir_all(dir.join("rootless")).unwrap();
        assert!(check_host_source(&dir.join("rootless"), &p).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
