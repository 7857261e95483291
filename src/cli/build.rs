//! `bocker build`: `docker build`'s habits over `images/build` and `builds/<N>/`. The line goes to
//! `images/build` on a thread of its own (the write returns when the build ends); meanwhile the build's
//! `logs` are printed as they grow (`Step 3/12 : RUN ...`, ` ---> Using cache` for a cached step), then
//! `Created: img_...`, or the build's error and exit 1.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Cli, CliError};

/// `bocker build`'s options, Docker's names.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct BuildOptions {
    /// The Dockerfile: relative to the current directory (Docker's rule), default CONTEXT/Dockerfile,
    /// else CONTEXT/Containerfile.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// A name for the image (NAME[:TAG]); repeatable.
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// KEY=VALUE for an ARG of the Dockerfile, or KEY to take its value from this environment; repeatable.
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// The stage to build (by its AS name); the last one if none.
    #[arg(long)]
    pub target: Option<String>,
    /// Run every step, whatever is cached.
    #[arg(long)]
    pub no_cache: bool,
    /// The network of RUN steps: bridge (default) or none.
    #[arg(long)]
    pub network: Option<String>,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
}

impl Cli {
    /// `bocker build [OPTIONS] CONTEXT`.
    pub fn build(&self, context: &Path, opts: &BuildOptions) -> Result<i32, CliError> {
        let context = context
            .canonicalize()
            .ok()
            .filter(|d| d.is_dir())
            .ok_or_else(|| CliError::NoDirectory(context.display().to_string()))?;
        let mut words = vec![context.display().to_string()];
        if let Some(f) = &opts.file {
            let f = if f.is_absolute() { f.clone() } else { std::env::current_dir().unwrap_or_default().join(f) };
            words.extend(["-f".to_string(), f.display().to_string()]);
        }
        for t in &opts.tags {
            words.extend(["-t".to_string(), t.clone()]);
        }
        for a in &opts.build_args {
            let kv = match a.split_once('=') {
                Some(_) => a.clone(),
                // Docker's: a bare KEY takes its value from the client's environment, and is left out without one.
                None => match std::env::var(a) {
                    Ok(v) => format!("{a}={v}"),
                    Err(_) => continue,
                },
            };
            words.extend(["--build-arg".to_string(), kv]);
        }
        if let Some(t) = &opts.target {
            words.extend(["--target".to_string(), t.clone()]);
        }
        if opts.no_cache {
            words.push("--no-cache".into());
        }
        if let Some(n) = &opts.network {
            words.extend(["--network".to_string(), n.clone()]);
        }
        let line = shell_words::join(&words);
        let before = self.build_numbers().into_iter().max().unwrap_or(0);
        let file = self.path("images/build");
        let (done_tx, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let written = (|| -> io::Result<String> {
                let mut f = OpenOptions::new().read(true).write(true).open(file)?;
                f.write_all(line.as_bytes())?;
                let mut id = String::new();
                f.read_to_string(&mut id)?;
                Ok(id.trim().to_string())
            })();
            let _ = done_tx.send(written);
        });
        let ours = context.display().to_string();
        let mut build = None;
        // One open file of its logs, read as it grows: its offsets hold across rotations.
        let mut log: Option<fs::File> = None;
        let result = loop {
            // Woken by the build's end at once, else every 50 ms to print what its log gained.
            let finished = done.recv_timeout(Duration::from_millis(50));
            if build.is_none() {
                // Ours: the first one after those before it that builds this context.
                build = self
                    .build_numbers()
                    .into_iter()
                    .filter(|&n| n > before)
                    .find(|n| self.read(&format!("builds/{n}/context")) == ours);
            }
            if let (Some(n), false, None) = (build, opts.quiet, &log) {
                log = fs::File::open(self.path(&format!("builds/{n}/logs"))).ok();
            }
            if let Some(f) = log.as_mut() {
                print_more(f);
            }
            match finished {
                Ok(result) => break result,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(io::Error::other("the build's writer ended without an answer"))
                }
            }
        };
        match result {
            Ok(id) => {
                if opts.quiet {
                    say!("{id}");
                } else {
                    say!("Created: {id}");
                }
                Ok(0)
            }
            Err(e) => {
                let why = build
                    .map(|n| self.read(&format!("builds/{n}/error")))
                    .filter(|w| !w.is_empty())
                    .unwrap_or_else(|| self.why("images/build", &e));
                Err(CliError::Failed(why))
            }
        }
    }

    fn build_numbers(&self) -> Vec<u32> {
        fs::read_dir(self.path("builds"))
            .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
            .unwrap_or_default()
    }
}

/// Prints what open file `f` gained since the last read.
fn print_more(f: &mut fs::File) {
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() || buf.is_empty() {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(&buf).and_then(|()| out.flush()) {
        super::stdout_failed(&e);
    }
}
