//! The cache side of a build's steps: a step that changes files is looked up by its key and taken from
//! the cache, or carried out on a writable snapshot of its parent and sealed under its key; `COPY` and
//! `ADD` keyed by what they take; and the image made of the target stage's last step.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::build::StepRecord;
use super::build_steps::{base_id, digest, BuildRun, Built, StageState};
use super::{Engine, ImageRecord};
use crate::build::copy::{self as build_copy, CopyOptions};
use crate::build::dockerfile::{CopySource, CopySpec, Dockerfile, Step};
use crate::build::error::BuildError;
use crate::build::words;
use crate::error::Error;
use crate::store::Base;
use crate::{json, times};

impl BuildRun<'_> {
    /// A step that changes files, keyed by `parts` after its parent's key: from the cache, or `perform`ed
    /// on a snapshot of its parent and sealed. With `skip_if_dir`, nothing is done (false returned) when
    /// that directory is there already.
    pub(super) fn fs_step(
        &mut self,
        state: &mut StageState,
        step: &Step,
        parts: &[&str],
        perform: impl FnOnce(&Arc<Engine>, &Path) -> Result<(), Error>,
        skip_if_dir: Option<&str>,
    ) -> Result<bool, Error> {
        let store = &self.engine.store;
        if let (Some(dir), Some(root)) = (skip_if_dir, store.base_path(&state.base)) {
            if is_dir_in(&root, dir) {
                return Ok(false);
            }
        }
        let parent = base_id(&state.base);
        let mut all = vec![parent.as_str()];
        all.extend_from_slice(parts);
        let key = digest(&all);
        let record_path = self.engine.step_record_path(&key);
        if !self.spec.no_cache && store.has_step(&key) {
            self.log(" ---> Using cache\n");
            let record = json::read_json::<StepRecord>(&record_path).ok().flatten();
            state.created = record.map_or_else(|| sealed_at(&store.step_path(&key)), |r| r.created);
        } else {
            let internal = |e: &dyn std::fmt::Display, errno: i32| BuildError::Internal {
                step: step.text.clone(),
                line: step.line,
                message: e.to_string(),
                errno,
            };
            let tmp = store.begin_step(&state.base, &key).map_err(|e| internal(&e, e.errno()))?;
            if let Err(e) = perform(self.engine, &tmp) {
                store.abort_step(&tmp);
                return Err(e);
            }
            let record = StepRecord { created: times::now_rfc3339(), size: crate::store::tree_size(&tmp) };
            // With --no-cache, run anew: this result replaces the one cached.
            let won = store.seal_step(&tmp, &key, self.spec.no_cache).map_err(|e| internal(&e, e.errno()))?;
            if won {
                let saved = record_path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| json::write_json(&record_path, &record));
                if let Err(e) = saved {
                    tracing::warn!(step = %key, error = %e, "cannot write the record of a cached step");
                }
                state.created = record.created;
            } else {
                // Another build sealed it first: its time is the step's.
                let theirs = json::read_json::<StepRecord>(&record_path).ok().flatten();
                state.created = theirs.map_or_else(|| sealed_at(&store.step_path(&key)), |r| r.created);
            }
        }
        self.used.push(key.clone());
        state.base = Base::Step(key);
        Ok(true)
    }

    /// A `COPY` or `ADD` of stage `i`, keyed by the digest of what it takes (or by the stage or image it
    /// takes from, which never change).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn copy_step(
        &mut self,
        state: &mut StageState,
        step: &Step,
        c: &CopySpec,
        add: bool,
        df: &Dockerfile,
        i: usize,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), Error> {
        let bad = |message: String| BuildError::Step { step: step.text.clone(), line: step.line, message };
        let expand = |w: &str| words::expand(w, lookup, self.escape).map_err(|e| bad(e.to_string()));
        let mut paths = Vec::new();
        let mut heredocs = Vec::new();
        for s in &c.sources {
            match s {
                CopySource::Path(p) => paths.push(expand(p)?),
                CopySource::Heredoc(h) if h.expand => {
                    heredocs.push((h.name.clone(), expand_body(&h.content(), lookup)))
                }
                CopySource::Heredoc(h) => heredocs.push((h.name.clone(), h.content())),
            }
        }
        let dest = expand(&c.dest)?;
        if let Some(url) = paths.iter().find(|p| is_remote(p)) {
            return Err(
                bad(format!("'{url}': sources from a URL or git are not supported; copy from the context")).into()
            );
        }
        let chown = c.chown.as_deref().map(expand).transpose()?;
        let chmod = c.chmod.as_deref().map(expand).transpose()?;
        let (root, from_id): (PathBuf, Option<String>) = match &c.from {
            Some(f) => {
                let f = expand(f)?;
                let base = match BuildRun::stage_named(df, &f, i) {
                    Some(j) => self
                        .built
                        .get(&j)
                        .map(|b| b.base.clone())
                        .ok_or_else(|| bad(format!("stage '{f}' is not built")))?,
                    None => Base::Image(self.image(&f, step.line, &step.text)?.0),
                };
                let root =
                    self.engine.store.base_path(&base).ok_or_else(|| bad(format!("'{f}' has no files (scratch)")))?;
                (root, Some(base_id(&base)))
            }
            None => (self.context.clone(), None),
        };
        let opts = CopyOptions { chown: chown.clone(), chmod: chmod.clone(), add, exclude: c.exclude.clone() };
        let copy_err = |source| BuildError::Copy { step: step.text.clone(), line: step.line, source };
        let content = match &from_id {
            Some(id) => id.clone(),
            None if paths.is_empty() => String::new(),
            None => build_copy::digest(&root, &paths, &opts).map_err(copy_err)?,
        };
        let workdir =
            if state.config.working_dir.is_empty() { "/".to_string() } else { state.config.working_dir.clone() };
        let kind = if add { "ADD" } else { "COPY" };
        let (j_paths, j_heredocs, j_exclude) = (
            serde_json::json!(paths).to_string(),
            serde_json::json!(heredocs).to_string(),
            serde_json::json!(c.exclude).to_string(),
        );
        let (chown_s, chmod_s) = (chown.unwrap_or_default(), chmod.unwrap_or_default());
        let parts = [kind, &j_paths, &dest, &workdir, &chown_s, &chmod_s, &content, &j_heredocs, &j_exclude];
        self.fs_step(
            state,
            step,
            &parts,
            |_, tmp| {
                if !paths.is_empty() {
                    build_copy::copy(&root, &paths, tmp, &dest, &workdir, &opts).map_err(copy_err)?;
                }
                for (name, body) in &heredocs {
                    build_copy::write_file(tmp, &dest, &workdir, name, body.as_bytes(), &opts).map_err(copy_err)?;
                }
                Ok(())
            },
            None,
        )?;
        Ok(())
    }

    /// The image of the target stage: a read-only snapshot of its last step with the config the steps
    /// made. Its id is a digest of both, so the same build gives the same image, whose names move to it.
    pub(super) fn make_image(&mut self, built: Built) -> Result<String, Error> {
        // One at a time: two builds of one image make it once.
        let _making = self.engine.making_images.lock().unwrap_or_else(|e| e.into_inner());
        let Built { base, mut config } = built;
        if config.created.is_empty() {
            config.created = times::now_rfc3339();
        }
        let raw = config.to_json();
        let key = digest(&[&base_id(&base), &String::from_utf8_lossy(&raw)]);
        let id = format!("img_{}", &key[..12]);
        let engine = self.engine;
        if !engine.view().images.contains_key(&id) {
            engine.store.image_from_base(&base, &id)?;
            let size = match &base {
                Base::Scratch => 0,
                Base::Image(i) => engine.view().images.get(i).map_or(0, |i| i.record.size),
                Base::Step(k) => {
                    json::read_json::<StepRecord>(&engine.step_record_path(k)).ok().flatten().map_or(0, |r| r.size)
                }
            };
            let mut steps = self.used.clone();
            steps.sort();
            steps.dedup();
            let record = ImageRecord {
                id: id.clone(),
                source: self.spec.context.display().to_string(),
                names: Vec::new(),
                created: config.created.clone(),
                size,
                digest: None,
                layers: Vec::new(),
                chain: Vec::new(),
                steps,
            };
            engine.add_image(record, raw)?;
        }
        self.log(&format!(" ---> {id}\n"));
        if !self.spec.tags.is_empty() {
            engine.move_names(Some(&id), &self.spec.tags)?;
            for tag in &self.spec.tags {
                self.log(&format!("Successfully tagged {}\n", crate::registry::familiar(tag)));
            }
        }
        Ok(id)
    }
}

/// A `COPY <<EOF` body with its variables substituted (an unquoted delimiter): `$VAR` and `${VAR}`, as a
/// shell's here-document would; everything else, quotes included, as written.
fn expand_body(body: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) if is_name(&inner[..end]) => (&inner[..end], end + 2),
                _ => ("", 0),
            },
            None => {
                let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        if name.is_empty() || !is_name(name) {
            out.push('$');
            rest = after;
            continue;
        }
        out.push_str(&lookup(name).unwrap_or_default());
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

fn is_name(s: &str) -> bool {
    crate::request::valid_arg_name(s)
}

/// When a cached step whose record is lost was sealed: its root's mtime, which nothing changes after.
fn sealed_at(path: &Path) -> String {
    let modified = std::fs::metadata(path).and_then(|m| m.modified());
    modified
        .map_or_else(|_| crate::build::config::EPOCH.to_string(), |t| humantime::format_rfc3339_seconds(t).to_string())
}

/// Whether a source is remote: a URL or a git address.
fn is_remote(source: &str) -> bool {
    ["http://", "https://", "git@", "git://", "ssh://"].iter().any(|p| source.starts_with(p))
}

fn in_root(root: &Path, path: &str, flags: OFlags) -> rustix::io::Result<std::os::fd::OwnedFd> {
    let root_fd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    rustix::fs::openat2(&root_fd, rel, flags | OFlags::CLOEXEC, Mode::empty(), how)
}

/// Whether `dir` is a directory in the rootfs at `root`, resolved inside it.
fn is_dir_in(root: &Path, dir: &str) -> bool {
    in_root(root, dir, OFlags::PATH | OFlags::DIRECTORY).is_ok()
}

/// Makes directory `dir` (absolute in the rootfs at `root`) and what is missing above it, mode 0755 (owned
/// by `owner` if given, else root), every component resolved inside the rootfs: a symlink there leads
/// nowhere outside it.
pub(super) fn make_dir(root: &Path, dir: &str, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    let parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY;
    for i in 0..parts.len() {
        match in_root(root, &parts[..=i].join("/"), dir_flags) {
            Ok(_) => continue,
            Err(Errno::NOENT) => {
                let parent = in_root(root, &parts[..i].join("/"), dir_flags)?;
                match rustix::fs::mkdirat(&parent, parts[i], Mode::from_bits_truncate(0o755)) {
                    Ok(()) => {
                        if let Some((uid, gid)) = owner {
                            let (uid, gid) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
                            let flags = rustix::fs::AtFlags::SYMLINK_NOFOLLOW;
                            rustix::fs::chownat(&parent, parts[i], Some(uid), Some(gid), flags)?;
                        }
                    }
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
