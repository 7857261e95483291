//! The walk of one source directory, by descriptors: each entry is looked up from its parent's
//! descriptor, one name at a time, never following a symlink, in name order (so a digest is stable),
//! and handed to a [`Sink`]: the writer that copies it, or the [`Hasher`] that digests it. `--exclude`
//! patterns leave entries (and whole directories) out before either sees them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};

use super::{CopyError, MAX_DEPTH};

/// What a walk hands each entry to. `Dir` is what the sink keeps for a directory it is inside.
pub(super) trait Sink {
    type Dir;
    /// A directory in the source: the sink's own for it, which its entries are handed with.
    fn enter_dir(&mut self, parent: &Self::Dir, name: &[u8], shown: &str, st: &Stat) -> Result<Self::Dir, CopyError>;
    /// After a directory's entries: its own metadata, last (writing inside changes its mtime).
    fn finish_dir(&mut self, dir: Self::Dir, st: &Stat) -> Result<(), CopyError>;
    /// A regular file, opened for reading; `st` is its descriptor's.
    fn file(&mut self, parent: &Self::Dir, name: &[u8], shown: &str, st: &Stat, file: File) -> Result<(), CopyError>;
    fn symlink(
        &mut self,
        parent: &Self::Dir,
        name: &[u8],
        shown: &str,
        st: &Stat,
        target: &[u8],
    ) -> Result<(), CopyError>;
    /// A device node or a fifo.
    fn special(&mut self, parent: &Self::Dir, name: &[u8], shown: &str, st: &Stat) -> Result<(), CopyError>;
}

/// The `--exclude` patterns.
pub(super) struct Excludes(Option<GlobSet>);

impl Excludes {
    pub(super) fn new(patterns: &[String]) -> Result<Excludes, CopyError> {
        if patterns.is_empty() {
            return Ok(Excludes(None));
        }
        let mut set = GlobSetBuilder::new();
        for pattern in patterns {
            let bad = |why: String| CopyError::Exclude { pattern: pattern.clone(), why };
            let trimmed = pattern.trim_start_matches("./").trim_start_matches('/');
            if trimmed.is_empty() {
                return Err(bad("it is empty".into()));
            }
            let glob = GlobBuilder::new(trimmed)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| bad(e.kind().to_string()))?;
            set.add(glob);
        }
        set.build()
            .map(|s| Excludes(Some(s)))
            .map_err(|e| CopyError::Exclude { pattern: patterns.join(" "), why: e.kind().to_string() })
    }

    pub(super) fn excluded(&self, path: &[u8]) -> bool {
        self.0.as_ref().is_some_and(|set| set.is_match(Path::new(OsStr::from_bytes(path))))
    }
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    if prefix.is_empty() {
        name.to_vec()
    } else {
        [prefix, b"/", name].concat()
    }
}

/// Hands every entry below the source directory `src` (at `rel` inside the source that is at `base`
/// beneath `from`) to `sink`, inside its `dst`.
pub(super) fn walk_dir<S: Sink>(
    sink: &mut S,
    excludes: &Excludes,
    base: &[u8],
    src: &OwnedFd,
    dst: &S::Dir,
    rel: &[u8],
    depth: usize,
) -> Result<(), CopyError> {
    let shown = |rel: &[u8]| {
        let full = join(base, rel);
        if full.is_empty() {
            ".".to_string()
        } else {
            String::from_utf8_lossy(&full).into_owned()
        }
    };
    if depth >= MAX_DEPTH {
        return Err(CopyError::TooDeep(shown(rel)));
    }
    let read_err = |rel: &[u8], e: Errno| CopyError::Source { path: shown(rel), source: e.into() };
    let mut names = list(src).map_err(|e| CopyError::Source { path: shown(rel), source: e })?;
    names.sort();
    for name in names {
        let child = join(rel, &name);
        if excludes.excluded(&child) || excludes.excluded(&join(base, &child)) {
            continue;
        }
        let name_os = OsStr::from_bytes(&name);
        let st = match rustix::fs::statat(src, name_os, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Removed since the listing.
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(read_err(&child, e)),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let sub = match rustix::fs::openat(src, name_os, flags, Mode::empty()) {
                    Ok(fd) => fd,
                    // Replaced since the stat: what is there now is not followed.
                    Err(Errno::LOOP | Errno::NOTDIR | Errno::NOENT) => continue,
                    Err(e) => return Err(read_err(&child, e)),
                };
                let sst = rustix::fs::fstat(&sub).map_err(|e| read_err(&child, e))?;
                let dir = sink.enter_dir(dst, &name, &shown(&child), &sst)?;
                walk_dir(sink, excludes, base, &sub, &dir, &child, depth + 1)?;
                sink.finish_dir(dir, &sst)?;
            }
            FileType::RegularFile => {
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC;
                let fd = match rustix::fs::openat(src, name_os, flags, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::LOOP | Errno::NOENT | Errno::NXIO) => continue,
                    Err(e) => return Err(read_err(&child, e)),
                };
                let fst = rustix::fs::fstat(&fd).map_err(|e| read_err(&child, e))?;
                if FileType::from_raw_mode(fst.st_mode) != FileType::RegularFile {
                    continue;
                }
                sink.file(dst, &name, &shown(&child), &fst, File::from(fd))?;
            }
            FileType::Symlink => {
                let target = match rustix::fs::readlinkat(src, name_os, Vec::new()) {
                    Ok(t) => t,
                    Err(Errno::INVAL | Errno::NOENT) => continue,
                    Err(e) => return Err(read_err(&child, e)),
                };
                sink.symlink(dst, &name, &shown(&child), &st, target.as_bytes())?;
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                sink.special(dst, &name, &shown(&child), &st)?;
            }
            // Sockets belong to a running process, not to an image.
            _ => {}
        }
    }
    Ok(())
}

pub(super) use crate::store::unpack::list;

/// The digest's sink: each entry's path (relative to its source), type and mode, size and content or
/// target, length-prefixed so that no two trees read alike. Times and owners are left out.
pub(super) struct Hasher(pub(super) Sha256, pub(super) HashMap<(u64, u64), Vec<u8>>);

impl Hasher {
    /// A digest of nothing yet; the map is where each multiply-linked file was first met.
    pub(super) fn new() -> Hasher {
        Hasher(Sha256::new(), HashMap::new())
    }

    fn bytes(&mut self, b: &[u8]) {
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
    }

    fn entry(&mut self, tag: u8, path: &[u8], st: &Stat) {
        self.0.update([tag]);
        self.bytes(path);
        self.0.update(st.st_mode.to_le_bytes());
    }

    /// A source as matched: its path beneath `from`.
    pub(super) fn top(&mut self, rel: &[u8], st: &Stat) {
        self.entry(b'T', rel, st);
    }
}

impl Sink for Hasher {
    /// The directory's path relative to its source.
    type Dir = Vec<u8>;

    fn enter_dir(&mut self, parent: &Vec<u8>, name: &[u8], _: &str, st: &Stat) -> Result<Vec<u8>, CopyError> {
        let path = join(parent, name);
        self.entry(b'D', &path, st);
        Ok(path)
    }

    fn finish_dir(&mut self, _: Vec<u8>, _: &Stat) -> Result<(), CopyError> {
        self.0.update(b"E");
        Ok(())
    }

    fn file(&mut self, parent: &Vec<u8>, name: &[u8], shown: &str, st: &Stat, mut file: File) -> Result<(), CopyError> {
        let path = join(parent, name);
        if st.st_nlink > 1 {
            // The copy keeps hard links: a tree of links and one of copies must differ.
            if let Some(first) = self.1.get(&(st.st_dev, st.st_ino)) {
                let first = first.clone();
                self.entry(b'L', &path, st);
                self.bytes(&first);
                return Ok(());
            }
            self.1.insert((st.st_dev, st.st_ino), path.clone());
        }
        self.entry(b'F', &path, st);
        self.0.update((st.st_size as u64).to_le_bytes());
        let mut buf = vec![0u8; 64 << 10];
        let mut total = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyError::Source { path: shown.to_string(), source: e }),
            };
            self.0.update(&buf[..n]);
            total += n as u64;
        }
        // What was read, in case the file changed size since its stat.
        self.0.update(total.to_le_bytes());
        Ok(())
    }

    fn symlink(&mut self, parent: &Vec<u8>, name: &[u8], _: &str, st: &Stat, target: &[u8]) -> Result<(), CopyError> {
        self.entry(b'L', &join(parent, name), st);
        self.bytes(target);
        Ok(())
    }

    fn special(&mut self, parent: &Vec<u8>, name: &[u8], _: &str, st: &Stat) -> Result<(), CopyError> {
        self.entry(b'N', &join(parent, name), st);
        self.0.update(st.st_rdev.to_le_bytes());
        Ok(())
    }
}
