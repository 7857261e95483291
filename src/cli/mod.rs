//! bocker's command line, driven through the mounted files only: every verb is a few reads and writes on
//! the mount, so anything the CLI can do, a shell can do with `echo` and `cat`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::registry::{familiar, normalize};
pub use attach::{AttachFlags, ExecOptions};
use bars::{Bars, Out};
pub use build::BuildOptions;
pub use events::EventsOptions;
pub use keys::DetachKeys;
pub use logs::{LogsOptions, Tail};
pub use network::NetworkCommand;
pub use run::RunOptions;

/// Why a verb failed, in bocker's words where bocker had them. The process exits 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("No image named '{0}' exists")]
    NoImage(String),
    #[error("No container named '{0}' exists")]
    NoContainer(String),
    #[error("No directory named '{0}' exists")]
    NoDirectory(String),
    #[error("Container '{0}' exists but is not running")]
    NotRunning(String),
    #[error("no bocker filesystem at {0}: is `bocker daemon` running? (set BOCKER_MOUNT to its mount)")]
    NotMounted(PathBuf),
    #[error("{0}")]
    Failed(String),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

/// Writes a line to stdout. A closed stdout (its pipe's reader gone: `bocker images | head -1`) ends the
/// process at once and quietly, with 0, as any Unix tool ends; another failure to write, with 1.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::say_line(format_args!($($arg)*))
    };
}

mod attach;
mod bars;
mod build;
mod events;
mod keys;
mod lifecycle;
mod logs;
mod network;
mod run;
mod run_limits;
mod session;
mod since;
mod terminal;

#[doc(hidden)]
pub fn say_line(line: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(line).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush()) {
        stdout_failed(&e);
    }
}

/// Ends the process after a failed write to stdout: 0 if it was closed, else 1 with a message.
pub fn stdout_failed(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    let _ = writeln!(io::stderr(), "cannot write to stdout: {e}");
    std::process::exit(1);
}

/// A failed copy to stdout (`io::copy` into it): a closed or failing stdout ends the process (see
/// [`stdout_failed`]); a failed read is `what`'s error.
fn copy_err(what: &'static str) -> impl FnOnce(io::Error) -> CliError {
    move |e| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            stdout_failed(&e);
        }
        CliError::Io { what: what.to_string(), source: e }
    }
}

impl CliError {
    /// bocker's own messages, which bocker echoed to stdout, where scripts written for it look for them
    /// (`[[ "$(bocker exec ID ps)" == "Container 'ID' exists but is not running" ]]`, as its tests do).
    /// Every other failure is told on stderr.
    pub fn on_stdout(&self) -> bool {
        matches!(
            self,
            CliError::NoImage(_) | CliError::NoContainer(_) | CliError::NoDirectory(_) | CliError::NotRunning(_)
        )
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> CliError {
    let what = what.into();
    move |source| CliError::Io { what, source }
}

/// The command line, bound to one mount.
pub struct Cli {
    mount: PathBuf,
}

impl Cli {
    pub fn new(mount: PathBuf) -> Result<Cli, CliError> {
        // Listed, not stat'ed: the mount of a daemon that died still answers stat from the kernel's cache.
        if !mount.join("README").is_file() || std::fs::read_dir(mount.join("containers")).is_err() {
            return Err(CliError::NotMounted(mount));
        }
        Ok(Cli { mount })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.mount.join(rel)
    }

    /// Writes `line` to a control file in one write, then reads the id it made on the same open file.
    fn submit(&self, rel: &str, line: &str) -> io::Result<String> {
        let mut f = OpenOptions::new().read(true).write(true).open(self.path(rel))?;
        let n = f.write(line.as_bytes())?;
        if n != line.len() {
            return Err(io::Error::other("short write"));
        }
        let mut id = String::new();
        f.read_to_string(&mut id)?;
        Ok(id.trim().to_string())
    }

    /// The last line of `errors` about `rel`, for a failure's message.
    fn why(&self, rel: &str, err: &io::Error) -> String {
        let errors = fs::read_to_string(self.path("errors")).unwrap_or_default();
        let tag = format!(" {rel} ");
        match errors.lines().rev().find(|l| l.contains(&tag)) {
            // time path ERRNO message
            Some(l) => l.splitn(4, ' ').nth(3).unwrap_or(l).to_string(),
            None => err.to_string(),
        }
    }

    /// `bocker init DIR`: prints `Created: img_...`.
    pub fn init(&self, dir: &Path) -> Result<i32, CliError> {
        let dir = dir
            .canonicalize()
            .ok()
            .filter(|d| d.is_dir())
            .ok_or_else(|| CliError::NoDirectory(dir.display().to_string()))?;
        let id = self
            .submit("images/import", &dir.display().to_string())
            .map_err(|e| CliError::Failed(self.why("images/import", &e)))?;
        say!("Created: {id}");
        Ok(0)
    }

    fn list(&self, dir: &str) -> Result<Vec<String>, CliError> {
        let mut names: Vec<String> = fs::read_dir(self.path(dir))
            .map_err(io_err(format!("cannot list {dir}")))?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // images/ holds the images and the names' tree.
            .filter(|n| dir != "images" || n.starts_with("img_"))
            .collect();
        names.sort();
        Ok(names)
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_default().trim_end().to_string()
    }

    /// `bocker pull NAME [TAG]` or `bocker pull REF`: a progress bar per layer while the files say the
    /// pull moves, then `Created: img_...`.
    pub fn pull(&self, words: &[String]) -> Result<i32, CliError> {
        let source = match words {
            [name, tag] if !tag.starts_with("platform=") => format!("{name}:{tag}"),
            _ => words.first().cloned().unwrap_or_default(),
        };
        let id = self.pull_showing(&words.join(" "), &source, Out::Stdout)?;
        say!("Created: {id}");
        Ok(0)
    }

    /// Writes `line` to `images/pull` and draws the bars of the pull of `source` on `out` until it ends;
    /// returns the image's id.
    fn pull_showing(&self, line: &str, source: &str, out: Out) -> Result<String, CliError> {
        let file = self.path("images/pull");
        let line = line.to_string();
        let worker = std::thread::spawn(move || -> io::Result<String> {
            let mut f = OpenOptions::new().read(true).write(true).open(file)?;
            f.write_all(line.as_bytes())?;
            let mut id = String::new();
            f.read_to_string(&mut id)?;
            Ok(id.trim().to_string())
        });
        let mut bars = Bars::new(out);
        while !worker.is_finished() {
            bars.show(source, &fs::read_to_string(self.path("images/pulls")).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(20));
        }
        let id = worker
            .join()
            .map_err(|_| CliError::Failed("the pull thread failed".into()))?
            .map_err(|e| CliError::Failed(self.why("images/pull", &e)))?;
        bars.finish(&self.read(&format!("images/{id}/layers")));
        Ok(id)
    }

    /// `bocker push IMAGE REF`: prints the pushed manifest's digest.
    pub fn push(&self, image: &str, reference: &str) -> Result<i32, CliError> {
        let digest =
            self.submit("images/push", &format!("{image} {reference}")).map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) if !self.has_image(image) => CliError::NoImage(image.to_string()),
                _ => CliError::Failed(self.why("images/push", &e)),
            })?;
        say!("Pushed: {reference}@{digest}");
        Ok(0)
    }

    /// `bocker images`: bocker's two columns exactly (scripts compare its header line); with `names`, a
    /// third, the names as Docker shows them (`alpine:latest`), comma-separated, or `<none>`.
    pub fn images(&self, names: bool) -> Result<i32, CliError> {
        say!("IMAGE_ID\t\tSOURCE{}", if names { "\t\tNAMES" } else { "" });
        for id in self.list("images")? {
            let source = self.read(&format!("images/{id}/source"));
            if !names {
                say!("{id}\t\t{source}");
                continue;
            }
            let names = self.read(&format!("images/{id}/names"));
            let names: Vec<&str> = names.lines().map(familiar).collect();
            let names = if names.is_empty() { "<none>".to_string() } else { names.join(",") };
            say!("{id}\t\t{source}\t\t{names}");
        }
        Ok(0)
    }

    /// `bocker tag IMAGE NAME`: NAME is IMAGE's now (and no other image's).
    pub fn tag(&self, image: &str, name: &str) -> Result<i32, CliError> {
        let rel = "images/tag";
        fs::write(self.path(rel), format!("{image} {name}")).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) if self.resolve(image).is_err() => CliError::NoImage(image.to_string()),
            _ => CliError::Failed(self.why(rel, &e)),
        })?;
        Ok(0)
    }

    /// The id of the image `image` names: an id, a name in any of Docker's forms, a unique id prefix, or the
    /// directory an image was imported from, as the daemon resolves them.
    fn resolve(&self, image: &str) -> Result<String, CliError> {
        let is_id = |s: &str| s.starts_with("img_") && !s.contains('/');
        if is_id(image) && self.path(&format!("images/{image}")).is_dir() {
            return Ok(image.to_string());
        }
        if let Ok(name) = normalize(image) {
            if let Ok(target) = fs::read_link(self.path(&format!("images/by-name/{name}"))) {
                if let Some(id) = target.file_name().map(|n| n.to_string_lossy().into_owned()) {
                    return Ok(id);
                }
            }
        }
        let ids = self.list("images")?;
        if is_id(image) {
            let found: Vec<&String> = ids.iter().filter(|id| id.starts_with(image)).collect();
            match found.as_slice() {
                [] => {}
                [one] => return Ok((*one).clone()),
                many => {
                    let many: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
                    return Err(CliError::Failed(format!(
                        "'{image}' is the start of more than one image's id ({}): give more of it",
                        many.join(", ")
                    )));
                }
            }
        }
        if image.starts_with('/') {
            if let Some(id) = ids.iter().find(|id| self.read(&format!("images/{id}/source")) == image) {
                return Ok(id.clone());
            }
        }
        Err(CliError::NoImage(image.to_string()))
    }

    /// `bocker inspect NAME|IMAGE...`: the `inspect.json` of each, as one JSON array (`docker inspect`'s
    /// output): a container by name first, else an image as every verb resolves one. What names nothing is
    /// left out with a message on stderr, and the command then exits 1, as Docker's.
    pub fn inspect(&self, what: &[String]) -> Result<i32, CliError> {
        let mut docs = Vec::new();
        let mut code = 0;
        for word in what {
            let container = !word.is_empty() && !word.contains('/') && word != "." && word != "..";
            let rel = if container && self.path(&format!("containers/{word}")).is_dir() {
                format!("containers/{word}/inspect.json")
            } else {
                match self.resolve(word) {
                    Ok(id) => format!("images/{id}/inspect.json"),
                    Err(e) => {
                        let why = match e {
                            CliError::NoImage(_) => format!("No such object: {word}"),
                            other => other.to_string(),
                        };
                        let _ = writeln!(io::stderr(), "Error: {why}");
                        code = 1;
                        continue;
                    }
                }
            };
            let text = match fs::read(self.path(&rel)) {
                Ok(text) => text,
                // Removed since it was found.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let _ = writeln!(io::stderr(), "Error: No such object: {word}");
                    code = 1;
                    continue;
                }
                Err(e) => return Err(io_err(format!("cannot read {rel}"))(e)),
            };
            let doc: serde_json::Value =
                serde_json::from_slice(&text).map_err(|e| CliError::Failed(format!("{rel} is not JSON: {e}")))?;
            docs.push(doc);
        }
        let text = serde_json::to_string_pretty(&docs).map_err(|e| CliError::Failed(e.to_string()))?;
        say!("{text}");
        Ok(code)
    }

    /// `bocker ps`.
    pub fn ps(&self) -> Result<i32, CliError> {
        say!("CONTAINER_ID\t\tCOMMAND");
        for name in self.list("containers")? {
            // What it runs: its entrypoint, then its arguments (bocker's images have no entrypoint).
            let words: Vec<String> = ["entrypoint", "cmd"]
                .iter()
                .map(|f| self.read(&format!("containers/{name}/{f}")))
                .filter(|w| !w.is_empty())
                .collect();
            say!("{name}\t\t{}", words.join(" "));
        }
        Ok(0)
    }

    fn has_image(&self, reference: &str) -> bool {
        self.resolve(reference).is_ok()
    }

    /// Copies a container's logs to stdout until it has exited; returns its exit code.
    fn follow(&self, id: &str) -> Result<i32, CliError> {
        self.follow_dir(&format!("containers/{id}"))
    }

    /// Copies `DIR/logs` to stdout until `DIR/status` says its process has ended; returns `DIR/exit_code`.
    fn follow_dir(&self, dir: &str) -> Result<i32, CliError> {
        self.copy_logs(dir, self.open_logs(dir)?)?;
        let code = self.read(&format!("{dir}/exit_code"));
        Ok(code.parse().unwrap_or(1))
    }

    fn open_logs(&self, dir: &str) -> Result<File, CliError> {
        File::open(self.path(&format!("{dir}/logs"))).map_err(io_err("cannot open the logs"))
    }

    /// Copies `logs` (`DIR/logs`, opened) to stdout until `DIR/status` says its process has ended (`exited`,
    /// or gone), then closes it. The file stays open throughout: its offsets count from the oldest byte kept
    /// when it was opened, so a rotation while it is read moves nothing under it.
    fn copy_logs(&self, dir: &str, mut logs: File) -> Result<(), CliError> {
        let mut out = io::stdout().lock();
        self.until_ended(dir, || {
            io::copy(&mut logs, &mut out).and_then(|_| out.flush()).map_err(copy_err("cannot read the logs"))
        })?;
        let _ = out.flush();
        Ok(())
    }

    /// Runs `step` until `DIR/status` says its process has ended, once more after that (so what it
    /// wrote last is taken): `stopping` and `committing` may still have a process writing; `exited` (or
    /// no status: the container was removed) has none.
    fn until_ended(&self, dir: &str, mut step: impl FnMut() -> Result<(), CliError>) -> Result<(), CliError> {
        let started = std::time::Instant::now();
        loop {
            let exited = matches!(self.read(&format!("{dir}/status")).as_str(), "exited" | "");
            step()?;
            if exited {
                return Ok(());
            }
            // Short commands end within milliseconds: poll finely at first, then ease off.
            let pause = if started.elapsed() < Duration::from_millis(100) { 1 } else { 20 };
            std::thread::sleep(Duration::from_millis(pause));
        }
    }

    /// `bocker exec [-i] [-t] [-d] ID CMD...`: runs in the running container, prints the output, returns
    /// the exit code. Words are taken as `run` takes them. Without -i or -t no terminal is needed: the
    /// output comes through the exec's logs; with them, through its socket (see `attach`). `-d` returns
    /// once it has started.
    pub fn exec(&self, id: &str, cmd: &[String], o: &ExecOptions) -> Result<i32, CliError> {
        if !self.path(&format!("containers/{id}")).is_dir() {
            return Err(CliError::NoContainer(id.to_string()));
        }
        if !o.detach {
            o.attach.check_terminal()?;
        }
        let argv: Vec<String> = match cmd {
            [one] if one.contains(char::is_whitespace) => vec!["/bin/sh".into(), "-c".into(), one.clone()],
            _ => cmd.to_vec(),
        };
        let rel = format!("containers/{id}/exec");
        let line = format!("{}{}", o.attach.exec_words(), shell_words::join(&argv));
        let n = self.submit(&rel, &line).map_err(|e| match e.raw_os_error() {
            Some(libc::ESRCH) => CliError::NotRunning(id.to_string()),
            _ => CliError::Failed(self.why(&rel, &e)),
        })?;
        let dir = format!("containers/{id}/execs/{n}");
        if o.detach {
            Ok(0)
        } else if o.attach.attaches() {
            self.attach_exec(&dir, &o.attach)
        } else {
            self.follow_dir(&dir)
        }
    }

    /// `bocker rm ID`: a container or an image.
    pub fn rm(&self, id: &str) -> Result<i32, CliError> {
        let rel = if self.path(&format!("images/{id}")).is_dir() {
            format!("images/{id}")
        } else if self.path(&format!("containers/{id}")).is_dir() {
            format!("containers/{id}")
        } else {
            return Err(CliError::NoContainer(id.to_string()));
        };
        fs::remove_dir(self.path(&rel)).map_err(|e| CliError::Failed(self.why(&rel, &e)))?;
        say!("Removed: {id}");
        Ok(0)
    }

    /// `bocker commit CONTAINER IMAGE`: bocker's `Removed: IMAGE` then `Created: IMAGE` when it replaces an
    /// existing image; `Created: ID` for a new one.
    pub fn commit(&self, container: &str, image: &str) -> Result<i32, CliError> {
        let dir = format!("containers/{container}");
        if !self.path(&dir).is_dir() {
            return Err(CliError::NoContainer(container.to_string()));
        }
        // An id (or a unique prefix of one) is replaced, as bocker did; a name makes a new image.
        let replacing = image.starts_with("img_") && self.resolve(image).is_ok_and(|id| id.starts_with(image));
        let rel = format!("{dir}/commit");
        let id = self.submit(&rel, image).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => CliError::NoImage(image.to_string()),
            _ => CliError::Failed(self.why(&rel, &e)),
        })?;
        if replacing {
            say!("Removed: {image}");
        }
        say!("Created: {id}");
        Ok(0)
    }

    /// `bocker rmi IMAGE`, as Docker's: a name is taken from its image (`Untagged: NAME`), and the image
    /// goes with its last name; an id (or unique prefix) removes the image (`Removed: ID`).
    pub fn rmi(&self, image: &str) -> Result<i32, CliError> {
        let id = self.resolve(image)?;
        let names = self.read(&format!("images/{id}/names"));
        let name = normalize(image).ok().filter(|n| names.lines().any(|l| l == n));
        if let Some(name) = &name {
            if names.lines().count() > 1 {
                let rel = "images/untag";
                fs::write(self.path(rel), name).map_err(|e| CliError::Failed(self.why(rel, &e)))?;
                say!("Untagged: {}", familiar(name));
                return Ok(0);
            }
        }
        let rel = format!("images/{id}");
        fs::remove_dir(self.path(&rel)).map_err(|e| CliError::Failed(self.why(&rel, &e)))?;
        if let Some(name) = &name {
            say!("Untagged: {}", familiar(name));
        }
        say!("Removed: {id}");
        Ok(0)
    }
}
