//! The steps of a build, in order: the Dockerfile read and parsed, the context copied (less what
//! `.dockerignore` leaves out), the stages the target needs, and each step of each, from the cache when
//! it holds the step's key, else carried out on a writable snapshot of the step before and sealed under
//! that key. The image is a read-only snapshot of the target's last step, with the config the steps made.
//!
//! A step's key is a digest of its parent's and of everything its result depends on: the instruction with
//! its values substituted, the environment, user, working directory, shell and network a `RUN` runs with,
//! and the content and metadata of what a `COPY` or `ADD` takes. Steps that change only the config
//! (`ENV`, `LABEL`, `CMD`...) have no snapshot of their own: they reach the keys of later steps through
//! the environment, user and directory those run with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::build_cache::make_dir;
use super::Engine;
use crate::build::config::{BuildConfig, History};
use crate::build::dockerfile::{self, CommandForm, Dockerfile, Instruction, Stage, Step};
use crate::build::error::BuildError;
use crate::build::ignore::Ignore;
use crate::build::values::{command, exposed_port, healthcheck, join_dir};
use crate::build::words;
use crate::caller::Caller;
use crate::error::Error;
use crate::ids;
use crate::network::NetworkMode;
use crate::registry::PullSpec;
use crate::request::BuildSpec;
use crate::store::{Base, Pass};

/// The most bytes a Dockerfile or a `.dockerignore` may hold.
const MAX_DOCKERFILE: u64 = 1 << 20;

/// A stage once built: its last step's files and its config.
#[derive(Clone)]
pub(super) struct Built {
    pub(super) base: Base,
    pub(super) config: BuildConfig,
}

/// A stage being built.
pub(super) struct StageState {
    pub(super) base: Base,
    pub(super) config: BuildConfig,
    /// The build arguments in scope, with their values (`None`: declared, no value).
    args: BTreeMap<String, Option<String>>,
    /// Whether this stage set CMD (an ENTRYPOINT then keeps it; else it clears the base's).
    cmd_set: bool,
    /// When its files were last changed: the time of the history entries of steps that don't.
    pub(super) created: String,
}

/// One build under way.
pub(super) struct BuildRun<'a> {
    pub(super) engine: &'a Arc<Engine>,
    pub(super) n: u32,
    pub(super) spec: &'a BuildSpec,
    /// The build's copy of its context.
    pub(super) context: PathBuf,
    pub(super) escape: char,
    total: usize,
    done: usize,
    /// The cached steps the image is made of (all its stages').
    pub(super) used: Vec<String>,
    global_args: BTreeMap<String, Option<String>>,
    consumed: BTreeSet<String>,
    pub(super) built: BTreeMap<usize, Built>,
}

pub(super) fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

pub(super) fn base_id(base: &Base) -> String {
    match base {
        Base::Scratch => "scratch".into(),
        Base::Image(id) => format!("image:{id}"),
        Base::Step(key) => key.clone(),
    }
}

impl Engine {
    /// The steps of build `n`; returns the image's id.
    pub(super) fn run_build(self: &Arc<Self>, n: u32, spec: &BuildSpec, caller: &Caller) -> Result<String, Error> {
        let (path, text) = self.read_dockerfile(spec, caller)?;
        let df = dockerfile::parse(&text)
            .map_err(|source| BuildError::Dockerfile { path: path.display().to_string(), source })?;
        let ignore = self.read_ignore(spec, &path, caller)?;
        let filter = move |rel: &[u8], is_dir: bool| {
            let rel = String::from_utf8_lossy(rel);
            match ignore.excludes(&rel) {
                false => Pass::Copy,
                true if is_dir && ignore.may_include_below(&rel) => Pass::Descend,
                true => Pass::Skip,
            }
        };
        let context = self.store.stage_context(&spec.context, caller, &filter)?;
        let mut run = BuildRun {
            engine: self,
            n,
            spec,
            context: context.clone(),
            escape: df.escape,
            total: 0,
            done: 0,
            used: Vec::new(),
            global_args: BTreeMap::new(),
            consumed: BTreeSet::new(),
            built: BTreeMap::new(),
        };
        let result = run.all(&df);
        self.store.drop_context(&context);
        self.lock().reserved.retain(|name, _| !name.starts_with(&format!(".build-{n}-")));
        result
    }

    /// The Dockerfile, read as the caller: `-f` (absolute, or in the context), else `Dockerfile`, else
    /// `Containerfile` in the context.
    fn read_dockerfile(&self, spec: &BuildSpec, caller: &Caller) -> Result<(PathBuf, String), Error> {
        let candidates: Vec<PathBuf> = match &spec.file {
            Some(f) if f.starts_with('/') => vec![PathBuf::from(f)],
            Some(f) => vec![spec.context.join(f)],
            None => vec![spec.context.join("Dockerfile"), spec.context.join("Containerfile")],
        };
        let mut last = None;
        for path in candidates {
            match read_as(caller, &path)? {
                Ok(text) => return Ok((path, text)),
                // Only a missing Dockerfile lets a Containerfile stand in; one that can't be read fails.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => last = Some((path, e)),
                Err(source) => {
                    return Err(BuildError::ReadDockerfile { path: path.display().to_string(), source }.into())
                }
            }
        }
        let (path, source) =
            last.unwrap_or_else(|| (spec.context.join("Dockerfile"), std::io::ErrorKind::NotFound.into()));
        Err(BuildError::ReadDockerfile { path: path.display().to_string(), source }.into())
    }

    /// The ignore rules: `<Dockerfile>.dockerignore` beside the Dockerfile, else the context's
    /// `.dockerignore`, else none.
    fn read_ignore(&self, spec: &BuildSpec, dockerfile: &Path, caller: &Caller) -> Result<Ignore, Error> {
        let beside = PathBuf::from(format!("{}.dockerignore", dockerfile.display()));
        for path in [beside, spec.context.join(".dockerignore")] {
            match read_as(caller, &path)? {
                Ok(text) => return Ignore::parse(&text).map_err(|e| BuildError::Ignore(e.to_string()).into()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(BuildError::ReadDockerfile { path: path.display().to_string(), source }.into())
                }
            }
        }
        Ignore::parse("").map_err(|e| BuildError::Ignore(e.to_string()).into())
    }
}

/// Reads a text file of at most [`MAX_DOCKERFILE`] bytes as `caller`: the outer error is the identity's,
/// the inner the read's. A regular file only, opened without blocking (a FIFO would hold the build for
/// ever) and through no magic link (`/proc/self/...` is the daemon's).
fn read_as(caller: &Caller, path: &Path) -> Result<std::io::Result<String>, Error> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use std::io::Read;
    let read = || -> std::io::Result<String> {
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat2(rustix::fs::CWD, path, flags, Mode::empty(), ResolveFlags::NO_MAGICLINKS)?;
        let file = std::fs::File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
        }
        let mut text = String::new();
        file.take(MAX_DOCKERFILE + 1).read_to_string(&mut text)?;
        if text.len() as u64 > MAX_DOCKERFILE {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "more than 1 MiB"));
        }
        Ok(text)
    };
    std::thread::scope(|s| s.spawn(|| caller.access(read)).join())
        .map_err(|_| Error::Invalid("the read of the Dockerfile stopped on an internal error".into()))?
        .map_err(|e| Error::Invalid(e.to_string()))
}

impl BuildRun<'_> {
    pub(super) fn log(&self, text: &str) {
        self.engine.build_log(self.n, text);
    }

    fn all(&mut self, df: &Dockerfile) -> Result<String, Error> {
        // BuildKit's automatic platform arguments: this host's, for FROM lines and for a stage that declares one.
        let arch = crate::build::config::host_arch();
        for (k, v) in [
            ("TARGETPLATFORM", format!("linux/{arch}")),
            ("TARGETOS", "linux".into()),
            ("TARGETARCH", arch.into()),
            ("TARGETVARIANT", String::new()),
            ("BUILDPLATFORM", format!("linux/{arch}")),
            ("BUILDOS", "linux".into()),
            ("BUILDARCH", arch.into()),
            ("BUILDVARIANT", String::new()),
        ] {
            self.global_args.insert(k.into(), Some(v));
        }
        for decl in &df.global_args {
            let value = match self.spec.build_args.iter().rev().find(|(k, _)| *k == decl.name) {
                Some((_, v)) => {
                    self.consumed.insert(decl.name.clone());
                    Some(v.clone())
                }
                None => match &decl.default {
                    Some(d) => Some(self.expand_global(d, 0, "ARG")?),
                    None => None,
                },
            };
            self.global_args.insert(decl.name.clone(), value);
        }
        let target = match &self.spec.target {
            Some(t) => df
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t.as_str()))
                .ok_or_else(|| BuildError::NoTarget(t.clone()))?,
            None => df.stages.len().saturating_sub(1),
        };
        let needed = self.needed(df, target)?;
        self.total = needed.iter().map(|&i| df.stages[i].steps.len() + 1).sum();
        for &i in &needed {
            let built = self.stage(df, i)?;
            self.built.insert(i, built);
        }
        let unused: Vec<&str> = self
            .spec
            .build_args
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !self.consumed.contains(*k))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !unused.is_empty() {
            self.log(&format!("[Warning] One or more build-args [{}] were not consumed\n", unused.join(" ")));
        }
        let built = self.built.get(&target).cloned().ok_or_else(|| BuildError::NoTarget(format!("{target}")))?;
        self.make_image(built)
    }

    fn expand_global(&self, word: &str, line: usize, step: &str) -> Result<String, BuildError> {
        let args = &self.global_args;
        let lookup = |name: &str| args.get(name).cloned().flatten();
        words::expand(word, &lookup, self.escape).map_err(|e| BuildError::Step {
            step: step.to_string(),
            line,
            message: e.to_string(),
        })
    }

    /// The base of stage `i` as its FROM names it, substituted with the global arguments.
    fn base_name(&self, stage: &Stage) -> Result<String, BuildError> {
        self.expand_global(&stage.base, stage.line, &stage.text)
    }

    /// The stage a name (`--from`, `FROM`) refers to among those before `before`: by name or by number.
    pub(super) fn stage_named(df: &Dockerfile, name: &str, before: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(i) = df.stages[..before].iter().position(|s| s.name.as_deref() == Some(lower.as_str())) {
            return Some(i);
        }
        name.parse::<usize>().ok().filter(|&i| i < before)
    }

    /// The stages `target` needs, in order: itself, its base stage and the stages it copies from, theirs.
    fn needed(&self, df: &Dockerfile, target: usize) -> Result<Vec<usize>, BuildError> {
        let mut need = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !need.insert(i) {
                continue;
            }
            let stage = &df.stages[i];
            if let Some(j) = Self::stage_named(df, &self.base_name(stage)?, i) {
                todo.push(j);
            }
            for step in &stage.steps {
                if let Instruction::Copy(c) | Instruction::Add(c) = &step.instruction {
                    if let Some(from) = &c.from {
                        let from = self.expand_global(from, step.line, &step.text)?;
                        if let Some(j) = Self::stage_named(df, &from, i) {
                            todo.push(j);
                        }
                    }
                }
            }
        }
        Ok(need.into_iter().collect())
    }

    fn header(&mut self, text: &str) {
        self.done += 1;
        self.log(&format!("Step {}/{} : {}\n", self.done, self.total, text));
    }

    /// Builds stage `i`.
    fn stage(&mut self, df: &Dockerfile, i: usize) -> Result<Built, Error> {
        let stage = &df.stages[i];
        self.header(&stage.text);
        let name = self.base_name(stage)?;
        if let Some(p) = &stage.platform {
            let p = self.expand_global(p, stage.line, &stage.text)?;
            let host = format!("linux/{}", crate::build::config::host_arch());
            if p != host {
                return Err(BuildError::Step {
                    step: stage.text.clone(),
                    line: stage.line,
                    message: format!("platform {p} is not this host's ({host})"),
                }
                .into());
            }
        }
        let (base, config, from_image) = match Self::stage_named(df, &name, i) {
            Some(j) => {
                let b = self.built.get(&j).cloned().ok_or_else(|| BuildError::NoTarget(name.clone()))?;
                (b.base, b.config, false)
            }
            None if name.eq_ignore_ascii_case("scratch") => (Base::Scratch, BuildConfig::scratch(), false),
            None => {
                let (id, raw) = self.image(&name, stage.line, &stage.text)?;
                (Base::Image(id), BuildConfig::from_image(&raw), true)
            }
        };
        let mut config = config;
        if config.env_value("PATH").is_none() {
            // As BuildKit: every stage has a PATH (`ENV PATH=$PATH:/app` on scratch means something).
            config.set_env("PATH", crate::runtime::init::DEFAULT_PATH);
        }
        let created = config.created.clone();
        let mut state = StageState { base, config, args: BTreeMap::new(), cmd_set: false, created };
        if from_image && !state.config.on_build.is_empty() {
            let triggers = std::mem::take(&mut state.config.on_build);
            for trigger in triggers {
                let parsed =
                    dockerfile::parse(&format!("FROM scratch\n{trigger}\n")).map_err(|e| BuildError::Step {
                        step: stage.text.clone(),
                        line: stage.line,
                        message: format!("ONBUILD trigger '{trigger}' of the base image: {e}"),
                    })?;
                let steps: Vec<Step> = parsed.stages.into_iter().flat_map(|s| s.steps).collect();
                if steps.len() != 1 {
                    return Err(BuildError::Step {
                        step: stage.text.clone(),
                        line: stage.line,
                        message: format!("ONBUILD trigger '{trigger}' of the base image is not one instruction"),
                    }
                    .into());
                }
                for mut step in steps {
                    step.line = stage.line;
                    self.log(&format!(" ---> Running ONBUILD trigger {}\n", step.text));
                    self.step(&mut state, &step, df, i)?;
                }
            }
        }
        for step in &stage.steps {
            self.header(&step.text);
            self.step(&mut state, step, df, i)?;
        }
        Ok(Built { base: state.base, config: state.config })
    }

    /// Finds image `name` here, else pulls it; held for this build against removal.
    pub(super) fn image(&mut self, name: &str, line: usize, step: &str) -> Result<(String, Vec<u8>), Error> {
        let reserve = |e: &Arc<Engine>| -> Result<(String, Vec<u8>), Error> {
            let mut st = e.lock();
            let image = st.usable_image(name)?;
            let found = (image.record.id.clone(), image.config_raw.clone());
            let key = format!(".build-{}-{}", self.n, ids::new_id(""));
            st.reserved.insert(key, Some(found.0.clone()));
            Ok(found)
        };
        let base_err = |message: String, errno: i32| BuildError::Base {
            step: step.to_string(),
            line,
            reference: name.to_string(),
            message,
            errno,
        };
        match reserve(self.engine) {
            Err(Error::NoSuchImage(_)) => {
                let spec = PullSpec::for_run(name)
                    .ok_or_else(|| base_err("no such image here, and not a reference to pull".into(), libc::ENOENT))?;
                self.log(&format!(" ---> Pulling {name}\n"));
                self.engine.pull(&spec).map_err(|e| {
                    let errno = if e.errno() == libc::EINVAL { libc::EINVAL } else { libc::ENOENT };
                    base_err(format!("not here, and the pull failed: {e}"), errno)
                })?;
                reserve(self.engine).map_err(|e| base_err(e.to_string(), e.errno()).into())
            }
            other => other.map_err(|e| base_err(e.to_string(), e.errno()).into()),
        }
    }
}

impl BuildRun<'_> {
    /// Carries out one step of stage `i` on `state`.
    fn step(&mut self, state: &mut StageState, step: &Step, df: &Dockerfile, i: usize) -> Result<(), Error> {
        let bad = |message: String| BuildError::Step { step: step.text.clone(), line: step.line, message };
        let lookup_env = state.config.env.clone();
        let lookup_args = state.args.clone();
        let lookup = move |name: &str| {
            lookup_env
                .iter()
                .find_map(|e| e.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
                .or_else(|| lookup_args.get(name).cloned().flatten())
        };
        let escape = self.escape;
        let expand = |w: &str| words::expand(w, &lookup, escape).map_err(|e| bad(e.to_string()));
        let mut empty_layer = true;
        match &step.instruction {
            Instruction::Arg(decls) => {
                for d in decls {
                    let value = match self.spec.build_args.iter().rev().find(|(k, _)| *k == d.name) {
                        Some((_, v)) => {
                            self.consumed.insert(d.name.clone());
                            Some(v.clone())
                        }
                        None => match &d.default {
                            Some(def) => Some(expand(def)?),
                            None => self.global_args.get(&d.name).cloned().flatten(),
                        },
                    };
                    state.args.insert(d.name.clone(), value);
                }
            }
            Instruction::Env(pairs) => {
                let pairs: Vec<(String, String)> =
                    pairs.iter().map(|(k, v)| Ok((expand(k)?, expand(v)?))).collect::<Result<_, BuildError>>()?;
                for (k, v) in pairs {
                    state.config.set_env(&k, &v);
                }
            }
            Instruction::Label(pairs) => {
                for (k, v) in pairs {
                    state.config.labels.insert(expand(k)?, expand(v)?);
                }
            }
            Instruction::Maintainer(_) => {}
            Instruction::User(u) => state.config.user = expand(u)?,
            Instruction::Stopsignal(s) => {
                let s = expand(s)?;
                crate::request::parse_signal(&s).map_err(|_| bad(format!("unknown signal '{s}'")))?;
                state.config.stop_signal = s;
            }
            Instruction::Cmd(c) => {
                state.config.cmd = Some(command(c, &state.config));
                state.cmd_set = true;
            }
            Instruction::Entrypoint(c) => {
                state.config.entrypoint = Some(command(c, &state.config));
                if !state.cmd_set {
                    state.config.cmd = None;
                }
            }
            Instruction::Shell(argv) => {
                if argv.is_empty() {
                    return Err(bad("SHELL needs at least one word".into()).into());
                }
                state.config.shell = Some(argv.clone());
            }
            Instruction::Expose(ports) => {
                for p in ports {
                    for p in words::expand_words(p, &lookup, escape).map_err(|e| bad(e.to_string()))? {
                        state.config.exposed_ports.insert(exposed_port(&p).map_err(bad)?);
                    }
                }
            }
            Instruction::Volume(paths) => {
                for p in paths {
                    let p = expand(p)?;
                    if p.is_empty() {
                        return Err(bad("VOLUME needs a path".into()).into());
                    }
                    state.config.volumes.insert(p);
                }
            }
            Instruction::Healthcheck(check) => state.config.healthcheck = Some(healthcheck(check.as_ref())),
            Instruction::Onbuild(inner) => state.config.on_build.push(inner.text.clone()),
            Instruction::Workdir(w) => {
                let w = expand(w)?;
                let dir = join_dir(&state.config.working_dir, &w);
                state.config.working_dir = dir.clone();
                // Made as BuildKit makes it: owned by the USER of the moment.
                let user = state.config.user.clone();
                empty_layer = !self.fs_step(
                    state,
                    step,
                    &["WORKDIR", &dir, &user],
                    |_, root| {
                        let owner = match user.as_str() {
                            "" => None,
                            u => Some(crate::build::copy::resolve_owner(root, u).map_err(|e| bad(e.to_string()))?),
                        };
                        make_dir(root, &dir, owner).map_err(|e| bad(format!("cannot make {dir}: {e}")).into())
                    },
                    Some(&dir),
                )?;
            }
            Instruction::Run(r) => {
                empty_layer = false;
                let argv = match &r.command {
                    CommandForm::Exec(v) => v.clone(),
                    CommandForm::Shell(_) => {
                        let mut argv = state.config.shell();
                        argv.push(r.shell_script().unwrap_or_default());
                        argv
                    }
                };
                let network = match r.network.as_deref() {
                    None | Some("default") => self.spec.network.clone(),
                    Some("none") => NetworkMode::None,
                    Some(other) => {
                        return Err(bad(format!("RUN --network={other} is not supported (none or default)")).into())
                    }
                };
                let mut env = state.config.env.clone();
                for (k, v) in &state.args {
                    if let (Some(v), None) = (v, state.config.env_value(k)) {
                        env.push(format!("{k}={v}"));
                    }
                }
                if !env.iter().any(|e| e.starts_with("PATH=")) {
                    env.push(format!("PATH={}", crate::runtime::init::DEFAULT_PATH));
                }
                let workdir = if state.config.working_dir.is_empty() {
                    "/".to_string()
                } else {
                    state.config.working_dir.clone()
                };
                let user = state.config.user.clone();
                let key_argv = json!(argv).to_string();
                let key_env = json!(env).to_string();
                let net = format!("{network:?}");
                let parts = ["RUN", &key_argv, &key_env, &user, &workdir, &net];
                let (n, line, text) = (self.n, step.line, step.text.clone());
                self.fs_step(
                    state,
                    step,
                    &parts,
                    |engine, root| {
                        make_dir(root, &workdir, None).map_err(|e| bad(format!("cannot make {workdir}: {e}")))?;
                        engine.run_step(n, root, argv, env, &user, &workdir, network, line, &text)
                    },
                    None,
                )?;
            }
            Instruction::Copy(c) | Instruction::Add(c) => {
                empty_layer = false;
                let add = matches!(step.instruction, Instruction::Add(_));
                self.copy_step(state, step, c, add, df, i, &lookup)?;
            }
        }
        let created = state.created.clone();
        state.config.history.push(History { created: created.clone(), created_by: step.text.clone(), empty_layer });
        state.config.created = created;
        Ok(())
    }
}
