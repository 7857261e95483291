//! Dockerfile `COPY` and `ADD`, carried out from a build context (or another stage's rootfs) into a
//! rootfs directory, and the digest of what they take, for the step cache.
//!
//! Docker's rules: a source directory's contents are copied, not the directory; a file goes inside a
//! destination that ends in `/` or is a directory, else it becomes the destination; several sources (a
//! glob matching several counts) need a destination ending in `/`; missing parents of the destination
//! are made (0755); everything copied, and every directory made for it, is owned by root unless
//! `--chown`; files keep their modes (or take `--chmod`) and times; symlinks inside a copied tree stay
//! symlinks, hardlinks stay links. `ADD` unpacks a local tar (plain, gzip, zstd) into the destination.
//!
//! Nothing is looked up by a host path below the two roots. Each source is resolved with
//! `openat2(RESOLVE_IN_ROOT)` beneath `from` (a symlink, even an absolute one, stays inside it; a `..`
//! leaving it is refused before that), and each destination directory beneath `rootfs` the same way, so
//! a symlink planted in the image such as `etc -> /etc` leads to the rootfs's own `/etc`. Trees are
//! walked and written by descriptors, one name at a time, never following a symlink.

mod archive;
mod dest;
mod pattern;
#[cfg(test)]
mod tests;
mod walk;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use sha2::Digest as _;

use crate::runtime::user;
use crate::store::unpack::UnpackError;
use dest::Writer;
use walk::{Excludes, Hasher, Sink};

/// How deep a copied tree may go.
pub const MAX_DEPTH: usize = 256;

/// The most of `/etc/passwd` or `/etc/group` read for `--chown`.
const MAX_ID_FILE: u64 = 4 << 20;

/// The flags of a `COPY` or `ADD` step.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// `--chown=user[:group]`: names or ids, names resolved in the destination rootfs's `/etc/passwd`
    /// and `/etc/group`. A user without a group takes the same number as its gid (a name: its passwd
    /// group).
    pub chown: Option<String>,
    /// `--chmod=755`: an octal mode for every file and directory copied.
    pub chmod: Option<String>,
    /// `ADD`: unpack local tar archives instead of copying them.
    pub add: bool,
    /// `--exclude` patterns (globs, `**` allowed), matched against each entry's path relative to its
    /// source and relative to `from`.
    pub exclude: Vec<String>,
}

/// Why a `COPY` or `ADD` failed: one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("no source files were specified")]
    NoSources,
    #[error("{0}: remote sources (URLs, git repositories) are not supported here")]
    Url(String),
    #[error("forbidden path outside the build context: {0}")]
    Outside(String),
    #[error("syntax error in pattern '{0}'")]
    Pattern(String),
    #[error("bad --exclude pattern '{pattern}': {why}")]
    Exclude { pattern: String, why: String },
    #[error("bad --chmod '{0}': an octal mode such as 755 or 0644 is needed")]
    Chmod(String),
    #[error("bad --chown '{spec}': {why}")]
    Chown { spec: String, why: String },
    #[error("no source files were specified: '{0}' matches no files")]
    NoMatch(String),
    #[error("file not found in build context: {0}")]
    NotFound(String),
    #[error("when using COPY with more than one source file, the destination must be a directory and end with a / (not '{0}')")]
    MultipleToFile(String),
    #[error("bad file name '{0}' for a heredoc")]
    Name(String),
    #[error("cannot read {path}: {source}")]
    Source { path: String, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Dest { path: String, source: io::Error },
    #[error("{0} is more than {MAX_DEPTH} directories deep")]
    TooDeep(String),
    #[error("cannot unpack {path}: {source}")]
    Unpack { path: String, source: UnpackError },
}

impl CopyError {
    /// The errno the failure answers: ENOENT for what is missing, EINVAL for what is malformed or
    /// refused, EPERM for an archive reaching outside, the system's own for reads and writes.
    pub fn errno(&self) -> i32 {
        let of = |e: &io::Error| e.raw_os_error().unwrap_or(libc::EIO);
        match self {
            CopyError::NoMatch(_) | CopyError::NotFound(_) => libc::ENOENT,
            CopyError::Source { source, .. } | CopyError::Dest { source, .. } => of(source),
            CopyError::Unpack { source, .. } => source.io().map_or(libc::EPERM, of),
            CopyError::TooDeep(_) => libc::ELOOP,
            CopyError::NoSources
            | CopyError::Url(_)
            | CopyError::Outside(_)
            | CopyError::Pattern(_)
            | CopyError::Exclude { .. }
            | CopyError::Chmod(_)
            | CopyError::Chown { .. }
            | CopyError::MultipleToFile(_)
            | CopyError::Name(_) => libc::EINVAL,
        }
    }
}

/// Copies `sources` (relative to `from`; globs allowed: `*` `?` `[..]` per path component, as Go's
/// `filepath.Match`) to `dest` inside `rootfs`, where `dest` is absolute or relative to `workdir` (an
/// absolute path in the rootfs). Returns the bytes of file content copied (or unpacked).
pub fn copy(
    from: &Path,
    sources: &[String],
    rootfs: &Path,
    dest: &str,
    workdir: &str,
    opts: &CopyOptions,
) -> Result<u64, CopyError> {
    let excludes = Excludes::new(&opts.exclude)?;
    let chmod = parse_chmod(opts.chmod.as_deref())?;
    let matched = resolve_sources(from, sources, &excludes)?;
    let root = open_root(rootfs)?;
    let owner = owner(&root, opts.chown.as_deref())?;
    let (parts, explicit_dir) = dest_path(dest, workdir);
    if matched.len() > 1 && !explicit_dir {
        return Err(CopyError::MultipleToFile(dest.to_string()));
    }
    let mut writer = Writer::new(root, owner, chmod);
    for m in &matched {
        let kind = FileType::from_raw_mode(m.st.st_mode);
        if kind == FileType::Directory {
            let readable = reopen(&m.fd, &m.shown, OFlags::RDONLY | OFlags::DIRECTORY)?;
            let (dir, made) = writer.dest_dir(&parts)?;
            walk::walk_dir(&mut writer, &excludes, &m.rel, &readable, &dir, b"", 0)?;
            // The destination takes the source directory's metadata only when this copy made it.
            if made {
                writer.finish_dir(dir, &m.st)?;
            }
            continue;
        }
        let file = if kind == FileType::RegularFile { Some(m.open_file()?) } else { None };
        if let (true, Some(file)) = (opts.add, &file) {
            let found = archive::detect(file).map_err(|e| CopyError::Source { path: m.shown.clone(), source: e })?;
            if let Some(archive_kind) = found {
                let (dir, _) = writer.dest_dir(&parts)?;
                let bytes = archive::unpack(dir.fd(), file.try_clone().map_err(|e| m.read_err(e))?, archive_kind)
                    .map_err(|e| CopyError::Unpack { path: m.shown.clone(), source: e })?;
                writer.add_bytes(bytes);
                continue;
            }
        }
        let into_dir = explicit_dir || matched.len() > 1 || writer.is_dir(&parts);
        let (dir_parts, name) = match parts.split_last() {
            Some((name, parents)) if !into_dir => (parents, name.as_slice()),
            _ => (parts.as_slice(), m.name.as_slice()),
        };
        let (dir, _) = writer.dest_dir(dir_parts)?;
        match file {
            Some(file) => writer.file(&dir, name, &m.shown, &m.st, file)?,
            None => writer.special(&dir, name, &m.shown, &m.st)?,
        }
    }
    Ok(writer.bytes())
}

/// Writes a file (a `COPY` heredoc: `COPY <<EOF /etc/x`) named `name`, with content `body`, at `dest`
/// as [`copy`] would put a file of that name: mode 0644 unless `--chmod`, owned by root unless `--chown`.
pub fn write_file(
    rootfs: &Path,
    dest: &str,
    workdir: &str,
    name: &str,
    body: &[u8],
    opts: &CopyOptions,
) -> Result<(), CopyError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(CopyError::Name(name.to_string()));
    }
    let chmod = parse_chmod(opts.chmod.as_deref())?;
    let root = open_root(rootfs)?;
    let owner = owner(&root, opts.chown.as_deref())?;
    let (parts, explicit_dir) = dest_path(dest, workdir);
    let mut writer = Writer::new(root, owner, chmod);
    let into_dir = explicit_dir || writer.is_dir(&parts);
    let (dir_parts, file_name) = match parts.split_last() {
        Some((last, parents)) if !into_dir => (parents, last.as_slice()),
        _ => (parts.as_slice(), name.as_bytes()),
    };
    let (dir, _) = writer.dest_dir(dir_parts)?;
    writer.write_bytes(&dir, file_name, body)
}

/// A sha256 hex digest of everything [`copy`] with these arguments would take from `from`: each source
/// as written, each matched entry's path (relative to `from` at the top, to its source below), type,
/// mode, size and content (a symlink's target), and not times nor owners.
pub fn digest(from: &Path, sources: &[String], opts: &CopyOptions) -> Result<String, CopyError> {
    let excludes = Excludes::new(&opts.exclude)?;
    let matched = resolve_sources(from, sources, &excludes)?;
    let mut hasher = Hasher::new();
    for m in &matched {
        hasher.top(&m.rel, &m.st);
        match FileType::from_raw_mode(m.st.st_mode) {
            FileType::Directory => {
                let readable = reopen(&m.fd, &m.shown, OFlags::RDONLY | OFlags::DIRECTORY)?;
                walk::walk_dir(&mut hasher, &excludes, &m.rel, &readable, &Vec::new(), b"", 0)?;
            }
            FileType::RegularFile => hasher.file(&Vec::new(), &m.name, &m.shown, &m.st, m.open_file()?)?,
            _ => hasher.special(&Vec::new(), &m.name, &m.shown, &m.st)?,
        }
    }
    Ok(hex::encode(hasher.0.finalize()))
}

/// One source entry as matched: its path beneath `from`, its descriptor (`O_PATH`, symlinks followed
/// inside `from`) and what it is.
struct Matched {
    rel: Vec<u8>,
    /// The last component: the name a file source takes inside a destination directory.
    name: Vec<u8>,
    shown: String,
    fd: OwnedFd,
    st: Stat,
}

impl Matched {
    fn read_err(&self, e: impl Into<io::Error>) -> CopyError {
        CopyError::Source { path: self.shown.clone(), source: e.into() }
    }

    /// The regular file, opened for reading.
    fn open_file(&self) -> Result<File, CopyError> {
        let flags = OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK;
        Ok(File::from(reopen_file(&self.fd, &self.shown, flags)?))
    }
}

fn in_root() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

fn open_root(rootfs: &Path) -> Result<OwnedFd, CopyError> {
    rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| CopyError::Dest { path: "/".into(), source: e.into() })
}

/// `path` (components joined) resolved beneath `root` as if `root` were `/`.
fn open_in(root: &OwnedFd, path: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let path = if path.is_empty() { OsStr::new(".") } else { OsStr::from_bytes(path) };
    rustix::fs::openat2(root, path, flags | OFlags::CLOEXEC, Mode::empty(), in_root())
}

/// A directory source opened again for listing, through its own descriptor (no look-up by path).
fn reopen(fd: &OwnedFd, shown: &str, flags: OFlags) -> Result<OwnedFd, CopyError> {
    rustix::fs::openat(fd, ".", flags | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| CopyError::Source { path: shown.to_string(), source: e.into() })
}

/// A source file (an `O_PATH` descriptor) opened again with `flags` through its `/proc` magic link, so
/// no path is looked up again; refused if what opened is not the same inode.
fn reopen_file(fd: &OwnedFd, shown: &str, flags: OFlags) -> Result<OwnedFd, CopyError> {
    let err = |e: io::Error| CopyError::Source { path: shown.to_string(), source: e };
    let want = rustix::fs::fstat(fd).map_err(|e| err(e.into()))?;
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd));
    let file = rustix::fs::open(path.as_str(), flags | OFlags::CLOEXEC, Mode::empty()).map_err(|e| err(e.into()))?;
    let got = rustix::fs::fstat(&file).map_err(|e| err(e.into()))?;
    if (got.st_dev, got.st_ino) != (want.st_dev, want.st_ino) {
        return Err(err(io::Error::other("it changed while it was copied")));
    }
    Ok(file)
}

/// Whether a source names something remote, which only the engine may decide to fetch.
fn is_remote(source: &str) -> bool {
    let lower = source.to_ascii_lowercase();
    ["http://", "https://", "git://", "git@", "ssh://"].iter().any(|p| lower.starts_with(p))
}

/// A source's components below `from`, `.` dropped and `..` taken back, refused if it climbs out.
fn clean_source(source: &str) -> Result<Vec<Vec<u8>>, CopyError> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for part in source.as_bytes().split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop().ok_or_else(|| CopyError::Outside(source.to_string()))?;
            }
            p => parts.push(p.to_vec()),
        }
    }
    Ok(parts)
}

/// Every source matched beneath `from`, in order (a glob's matches sorted by name), excluded ones left
/// out.
fn resolve_sources(from: &Path, sources: &[String], excludes: &Excludes) -> Result<Vec<Matched>, CopyError> {
    if sources.is_empty() {
        return Err(CopyError::NoSources);
    }
    if let Some(url) = sources.iter().find(|s| is_remote(s)) {
        return Err(CopyError::Url(url.clone()));
    }
    let from_fd = rustix::fs::open(from, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| CopyError::Source { path: from.display().to_string(), source: e.into() })?;
    let mut matched = Vec::new();
    for source in sources {
        let parts = clean_source(source)?;
        let globbed = parts.iter().any(|p| pattern::has_meta(p));
        // A glob that matches nothing is no error while another source matches (`COPY package.json
        // yarn.lock* ./`, as Docker takes it); all of them matching nothing is.
        let paths = if globbed { expand(&from_fd, source, &parts)? } else { vec![parts.join(&b'/')] };
        for rel in paths {
            let shown = if rel.is_empty() { ".".to_string() } else { String::from_utf8_lossy(&rel).into_owned() };
            let fd = match open_in(&from_fd, &rel, OFlags::PATH) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR) => return Err(CopyError::NotFound(source.clone())),
                Err(e) => return Err(CopyError::Source { path: shown, source: e.into() }),
            };
            let st = rustix::fs::fstat(&fd).map_err(|e| CopyError::Source { path: shown.clone(), source: e.into() })?;
            let name = rel.rsplit(|b| *b == b'/').next().unwrap_or_default().to_vec();
            if !rel.is_empty() && (excludes.excluded(&rel) || excludes.excluded(&name)) {
                continue;
            }
            matched.push(Matched { rel, name, shown, fd, st });
        }
    }
    if matched.is_empty() && sources.iter().any(|s| s.bytes().any(|b| pattern::has_meta(&[b]))) {
        return Err(CopyError::NoMatch(sources.join(" ")));
    }
    Ok(matched)
}

/// The paths beneath `from` that the components `parts` (some of them patterns) match, as
/// `filepath.Glob` finds them: directories that cannot be read match nothing.
fn expand(from: &OwnedFd, source: &str, parts: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, CopyError> {
    let mut found: Vec<Vec<u8>> = vec![Vec::new()];
    for part in parts {
        let join = |prefix: &[u8], name: &[u8]| {
            if prefix.is_empty() {
                name.to_vec()
            } else {
                [prefix, b"/", name].concat()
            }
        };
        if !pattern::has_meta(part) {
            found = found.iter().map(|p| join(p, part)).collect();
            continue;
        }
        let mut next = Vec::new();
        for prefix in &found {
            let Ok(dir) = open_in(from, prefix, OFlags::RDONLY | OFlags::DIRECTORY) else { continue };
            let Ok(mut names) = walk::list(&dir) else { continue };
            names.sort();
            for name in names {
                if pattern::matches(part, &name).map_err(|_| CopyError::Pattern(source.to_string()))? {
                    next.push(join(prefix, &name));
                }
            }
        }
        // A bad pattern is an error even where no directory was there to match it against.
        pattern::matches(part, b"").map_err(|_| CopyError::Pattern(source.to_string()))?;
        found = next;
    }
    Ok(found)
}

/// `--chmod`'s octal mode.
fn parse_chmod(chmod: Option<&str>) -> Result<Option<u32>, CopyError> {
    let Some(text) = chmod else { return Ok(None) };
    let bad = || CopyError::Chmod(text.to_string());
    if text.is_empty() || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad());
    }
    match u32::from_str_radix(text, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(Some(mode)),
        _ => Err(bad()),
    }
}

/// The uid and gid `user[:group]` names in the rootfs at `rootfs` (its own `/etc/passwd` and `/etc/group`,
/// read inside it); numeric ids need neither. For what a `WORKDIR` makes.
pub fn resolve_owner(rootfs: &Path, user: &str) -> Result<(u32, u32), CopyError> {
    owner(&open_root(rootfs)?, Some(user))
}

/// The uid and gid everything copied is given: root's without `--chown`.
fn owner(root: &OwnedFd, chown: Option<&str>) -> Result<(u32, u32), CopyError> {
    let Some(spec) = chown else { return Ok((0, 0)) };
    let bad = |why: String| CopyError::Chown { spec: spec.to_string(), why };
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let number = |s: &str| s.parse::<u32>().ok().filter(|n| *n <= user::MAX_ID);
    // Ids alone need no files; a lone uid is its own gid too (Docker's rule).
    match (number(user_part), group_part.map(number)) {
        (Some(uid), None) => return Ok((uid, uid)),
        (Some(uid), Some(Some(gid))) => return Ok((uid, gid)),
        _ => {}
    }
    let passwd = read_id_file(root, b"etc/passwd").map_err(|e| bad(format!("/etc/passwd: {e}")))?;
    let group = read_id_file(root, b"etc/group").map_err(|e| bad(format!("/etc/group: {e}")))?;
    let ids = user::resolve(spec, &passwd, &group).map_err(bad)?;
    Ok((ids.uid, ids.gid))
}

/// A file of the rootfs (resolved inside it), empty if it is missing; only a regular file is read, and
/// only a regular file is ever opened for reading (an image's `/etc/passwd` may be a device node: its
/// driver's open must never run in the daemon).
fn read_id_file(root: &OwnedFd, path: &[u8]) -> io::Result<String> {
    let fd = match open_in(root, path, OFlags::PATH) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(String::new()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Err(io::Error::other("not a regular file"));
    }
    let shown = String::from_utf8_lossy(path).into_owned();
    let fd = reopen_file(&fd, &shown, OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK).map_err(|e| match e {
        CopyError::Source { source, .. } => source,
        other => io::Error::other(other.to_string()),
    })?;
    let mut bytes = Vec::new();
    File::from(fd).take(MAX_ID_FILE).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The destination's components inside the rootfs (`..` stops at its root), and whether it names a
/// directory explicitly (a trailing `/`, or `.`/`..` last).
fn dest_path(dest: &str, workdir: &str) -> (Vec<Vec<u8>>, bool) {
    let full = if dest.starts_with('/') { dest.to_string() } else { format!("{workdir}/{dest}") };
    let last = dest.rsplit('/').next().unwrap_or_default();
    let explicit_dir = dest.is_empty() || dest.ends_with('/') || last == "." || last == "..";
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for part in full.as_bytes().split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p.to_vec()),
        }
    }
    (parts, explicit_dir)
}
