//! Builds from a Dockerfile (`images/build`): each build's record under `builds/<N>/` (status, times,
//! the image or the error, its log), the bound on how many are kept, their removal, and the collection of
//! cached steps no image stands on. The steps themselves are `build_steps`; a `RUN` is `build_run`.
//!
//! A build is numbered and recorded before anything is read, so its record and log show every failure,
//! the Dockerfile's own included; a failed build adds no image and leaves only that record.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{Changed, Engine, EventType};
use crate::caller::Caller;
use crate::error::Error;
use crate::logs::{Stream, Writer};
use crate::request::BuildSpec;
use crate::{json, times};

/// How many finished builds are kept; the oldest go first.
pub const MAX_BUILDS: usize = 64;

/// How many cached steps no image stands on are kept for the next build (a failed build's steps, a
/// `--target` stage's, a removed image's) unless the daemon says (`--build-cache-steps`); past it the least
/// recently made go.
pub const LOOSE_STEPS: usize = 256;

/// And how many bytes of them (each counted at its whole tree's size, what it would take alone: an
/// overestimate, as snapshots share what they did not change) unless the daemon says
/// (`--build-cache-size`).
pub const LOOSE_BYTES: u64 = 10 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Running,
    Done,
    Failed,
}

impl BuildStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Running => "running",
            BuildStatus::Done => "done",
            BuildStatus::Failed => "failed",
        }
    }
}

/// A build's record, `builds/<N>/record.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    pub n: u32,
    pub status: BuildStatus,
    /// The image it made.
    #[serde(default)]
    pub image: Option<String>,
    pub context: String,
    /// The Dockerfile it read, as an absolute path.
    pub dockerfile: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error: String,
}

/// What a cached step records beside its subvolume, `buildcache/<key>.json` in the state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StepRecord {
    /// When it was made: the time its history entry and a rebuild's image carry.
    pub(super) created: String,
    /// Bytes of file content in it.
    pub(super) size: u64,
}

/// Where a build's `RUN` under way records its monitor, `builds/<N>/run/step.json`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct StepProcess {
    pub(super) monitor_pid: i32,
    pub(super) monitor_start: u64,
}

/// Ends the `RUN` steps of builds a dead daemon left running (their monitor killed, with its container)
/// and removes their cgroups: their snapshots are swept next, and their addresses are free again.
pub(super) fn end_cut_steps(state_dir: &Path, cgroups: &crate::cgroups::Cgroups) {
    let Ok(entries) = std::fs::read_dir(state_dir.join("builds")) else { return };
    for entry in entries.flatten() {
        let Some(n) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let step = entry.path().join("run/step.json");
        if let Ok(Some(p)) = json::read_json::<StepProcess>(&step) {
            if let Some(monitor) = crate::runtime::ProcessHandle::open(p.monitor_pid, p.monitor_start) {
                warn!(build = n, pid = p.monitor_pid, "ending the step of a build the last daemon left running");
                let _ = monitor.signal(nix::sys::signal::Signal::SIGKILL);
                monitor.wait_for_exit();
            }
            let _ = std::fs::remove_file(&step);
        }
        let _ = cgroups.remove(&format!(".build-{n}"));
    }
}

impl Engine {
    pub(super) fn build_dir(&self, n: u32) -> PathBuf {
        self.state_dir.join("builds").join(n.to_string())
    }

    pub(super) fn step_record_path(&self, key: &str) -> PathBuf {
        self.state_dir.join("buildcache").join(format!("{key}.json"))
    }

    /// Carries out a build; returns the id of the image it made. Its record says how it went either way.
    pub(super) fn build(self: &Arc<Self>, spec: &BuildSpec, caller: &Caller) -> Result<String, Error> {
        let n = self.begin_build(spec)?;
        info!(build = n, context = %spec.context.display(), uid = caller.uid, "build started");
        let result = self.run_build(n, spec, caller);
        let finished = times::now_rfc3339();
        let (status, image, error) = match &result {
            Ok(id) => (BuildStatus::Done, Some(id.clone()), String::new()),
            Err(e) => (BuildStatus::Failed, None, e.to_string()),
        };
        let line = match &result {
            Ok(id) => format!("Successfully built {id}\n"),
            Err(e) => format!("ERROR: {e}\n"),
        };
        self.build_log(n, &line);
        let mut record = self.view().builds.get(&n).map(|b| (**b).clone());
        if let Some(r) = record.as_mut() {
            r.status = status;
            r.image = image.clone();
            r.error = error;
            r.finished_at = Some(finished);
            if let Err(e) = json::write_json(&self.build_dir(n).join("record.json"), &*r) {
                warn!(build = n, error = %e, "cannot write the build's record");
            }
            let mut st = self.lock();
            st.builds.insert(n, Arc::new(r.clone()));
            st.notify(Changed::Build(n));
        }
        match &result {
            Ok(id) => {
                info!(build = n, image = %id, "build done");
                self.event(EventType::Image, id, "build", &[("build", &n.to_string())]);
            }
            Err(e) => warn!(build = n, error = %e, "build failed"),
        }
        self.collect_steps();
        result
    }

    /// Numbers and records a new build (and forgets the oldest finished ones past [`MAX_BUILDS`]).
    fn begin_build(&self, spec: &BuildSpec) -> Result<u32, Error> {
        let n = {
            let mut st = self.lock();
            let n = st.next_build.max(st.builds.keys().next_back().map_or(1, |last| last + 1));
            st.next_build = n + 1;
            n
        };
        let dockerfile = match &spec.file {
            Some(f) if f.starts_with('/') => PathBuf::from(f),
            Some(f) => spec.context.join(f),
            None => spec.context.join("Dockerfile"),
        };
        let record = BuildRecord {
            n,
            status: BuildStatus::Running,
            image: None,
            context: spec.context.display().to_string(),
            dockerfile: dockerfile.display().to_string(),
            tags: spec.tags.clone(),
            started_at: times::now_rfc3339(),
            finished_at: None,
            error: String::new(),
        };
        let dir = self.build_dir(n);
        std::fs::create_dir_all(&dir)
            .and_then(|()| json::write_json(&dir.join("record.json"), &record))
            .map_err(Error::record(format!("the record of build {n}")))?;
        let old: Vec<u32> = {
            let _gate = self.build_gate.lock().unwrap_or_else(|e| e.into_inner());
            let mut st = self.lock();
            st.builds.insert(n, Arc::new(record));
            st.notify(Changed::Build(n));
            let finished: Vec<u32> =
                st.builds.values().filter(|b| b.status != BuildStatus::Running).map(|b| b.n).collect();
            finished.iter().take(finished.len().saturating_sub(MAX_BUILDS)).copied().collect()
        };
        for old in old {
            let _ = self.remove_build(old);
        }
        Ok(n)
    }

    /// Appends `text` to build `n`'s log (headers and messages; a `RUN`'s monitor writes its output there
    /// itself, between them).
    pub(super) fn build_log(&self, n: u32, text: &str) {
        let written = Writer::open(&self.build_dir(n).join("log"), self.log_limits)
            .and_then(|mut w| w.write(Stream::Stdout, text.as_bytes()));
        if let Err(e) = written {
            warn!(build = n, error = %e, "cannot write the build's log");
        }
        self.notify(Changed::Build(n));
    }

    /// `rmdir builds/N`: forgets a finished build. EBUSY while it runs.
    pub(super) fn remove_build(&self, n: u32) -> Result<(), Error> {
        {
            let st = self.view();
            let b = st.builds.get(&n).ok_or(Error::NoSuchBuild(n))?;
            if b.status == BuildStatus::Running {
                return Err(Error::BuildRunning(n));
            }
        }
        std::fs::remove_dir_all(self.build_dir(n)).map_err(Error::record(format!("the record of build {n}")))?;
        let mut st = self.lock();
        st.builds.remove(&n);
        st.notify(Changed::Build(n));
        Ok(())
    }

    /// How many cached steps no image stands on are kept, and how many bytes of them.
    pub fn set_build_cache_bounds(&self, steps: usize, bytes: u64) {
        let _ = self.loose_steps.set((steps, bytes));
    }

    /// Deletes the cached steps no image stands on past the bounds (see [`LOOSE_STEPS`], [`LOOSE_BYTES`]),
    /// the least recently made first;
    /// never one a build under way may use (nothing is collected while one runs).
    pub(super) fn collect_steps(&self) {
        let _gate = self.build_gate.lock().unwrap_or_else(|e| e.into_inner());
        let st = self.view();
        if st.builds.values().any(|b| b.status == BuildStatus::Running) {
            return;
        }
        let kept: HashSet<&str> = st.images.values().flat_map(|i| i.record.steps.iter().map(String::as_str)).collect();
        let mut loose: Vec<(String, String, u64)> = self
            .store
            .steps()
            .into_iter()
            .filter(|k| !kept.contains(k.as_str()))
            .map(|k| {
                let record = json::read_json::<StepRecord>(&self.step_record_path(&k)).ok().flatten();
                let (created, size) = record.map_or((String::new(), u64::MAX), |r| (r.created, r.size));
                (k, created, size)
            })
            .collect();
        // Newest first: those are kept while both bounds hold.
        loose.sort_by(|a, b| b.1.cmp(&a.1));
        let (max_steps, max_bytes) = self.loose_steps.get().copied().unwrap_or((LOOSE_STEPS, LOOSE_BYTES));
        let mut bytes = 0u64;
        let over = loose.into_iter().enumerate().filter(|(i, (_, _, size))| {
            bytes = bytes.saturating_add(*size);
            *i >= max_steps || bytes > max_bytes
        });
        for (_, (key, _, _)) in over {
            match self.store.delete_step(&key) {
                Ok(()) => {
                    let _ = std::fs::remove_file(self.step_record_path(&key));
                }
                Err(e) => warn!(step = %key, error = %e, "cannot delete a cached step"),
            }
        }
    }

    /// The builds on disk, at open: one cut short by the daemon's end is failed.
    pub(super) fn load_builds(&self) -> Vec<BuildRecord> {
        let Ok(entries) = std::fs::read_dir(self.state_dir.join("builds")) else { return Vec::new() };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Some(n) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let path = self.build_dir(n).join("record.json");
            let Ok(Some(mut record)) = json::read_json::<BuildRecord>(&path) else { continue };
            if record.status == BuildStatus::Running {
                record.status = BuildStatus::Failed;
                record.error = "the daemon stopped during the build".into();
                record.finished_at = Some(times::now_rfc3339());
                let _ = json::write_json(&path, &record);
            }
            out.push(record);
        }
        out
    }
}
