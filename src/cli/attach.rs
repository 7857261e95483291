//! `bocker run -i -t`, `bocker exec -i -t` and `bocker attach`: the flags, and the sessions they start on
//! the monitor's socket (`containers/NAME/attach`, `execs/N/attach`), with what Docker prints and
//! returns at each end: the command's exit code; on the detach keys, 0 and nothing for `run`, "read
//! escape sequence" and 1 for `attach` and `exec`. A run whose socket is gone by the time the CLI comes
//! (its command ended at once) is followed through `logs`, as a run without these flags.

use std::fs::File;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use super::keys::DetachKeys;
use super::session::{self, Ended, Plan, SessionError};
use super::terminal;
use super::{Cli, CliError};
use crate::attach::{Connection, REPLAY, WANT_OUTPUT};

/// `-i`, `-t` and `--detach-keys`, as `run` and `exec` take them.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct AttachFlags {
    /// Keep the command's stdin open and send it this one (a run's `interactive` file); without it the
    /// command's stdin is /dev/null.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give the command a terminal (a run's `tty` file): in the foreground this terminal is raw while
    /// attached (with -i), and that one's size follows this one's window.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The keys that detach from a terminal (with -i and -t), leaving the command running: comma-separated
    /// single characters or ctrl-X (X one of a-z @ [ \ ] ^ _) [default: ctrl-p,ctrl-q].
    #[arg(long, value_name = "KEYS", value_parser = DetachKeys::parse)]
    pub detach_keys: Option<DetachKeys>,
}

/// `bocker exec`'s flags.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ExecOptions {
    #[command(flatten)]
    pub attach: AttachFlags,
    /// Start the command and return at once, printing nothing (its output is in execs/N/logs).
    #[arg(short = 'd', long)]
    pub detach: bool,
}

impl AttachFlags {
    /// Whether a run in the foreground goes through the socket.
    pub fn attaches(&self) -> bool {
        self.interactive || self.tty
    }

    /// Docker's check before anything is made: `-it` needs a terminal on stdin.
    pub fn check_terminal(&self) -> Result<(), CliError> {
        if self.interactive && self.tty && !terminal::stdin_is_terminal() {
            return Err(CliError::Failed("the input device is not a TTY".into()));
        }
        Ok(())
    }

    /// A session's plan: `attach` (a re-attach) nudges the window and leaves stdin open at its end.
    fn plan(&self, attach: bool) -> Plan {
        let keys = self.detach_keys.clone().unwrap_or_default();
        Plan { stdin: self.interactive, tty: self.tty, keys, nudge: attach, close_at_eof: !attach }
    }

    /// The options as the `exec` line takes them before the command's words.
    pub fn exec_words(&self) -> &'static str {
        match (self.interactive, self.tty) {
            (true, true) => "-it ",
            (true, false) => "-i ",
            (false, true) => "-t ",
            (false, false) => "",
        }
    }
}

/// How long a running command's socket may take to appear after its start.
const SOCKET_WAIT: Duration = Duration::from_secs(10);

/// Whether a connect failed because nothing serves the socket (the command ended, or never ran).
fn not_served(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ECONNREFUSED))
}

fn session_err(e: SessionError) -> CliError {
    CliError::Failed(e.to_string())
}

impl Cli {
    /// The foreground of a started `run -i`/`-t`: attached with the output written before this client
    /// came; `logs` (opened before the start) and the `ctl` that started it serve when the socket is
    /// gone already, when the command ended before the monitor took the hello (no output came: the
    /// logs have it all), or when the connection closes without an exit code.
    pub(super) fn attach_run(&self, dir: &str, flags: &AttachFlags, logs: File, ctl: File) -> Result<i32, CliError> {
        let Some(conn) = self.connect(dir, WANT_OUTPUT | REPLAY)? else { return self.wait_run(dir, logs, ctl) };
        let out = session::run(&conn, &flags.plan(false)).map_err(session_err)?;
        match out.ended {
            Ended::Exit(_) | Ended::Closed if !out.saw_output => self.wait_run(dir, logs, ctl),
            Ended::Exit(code) => Ok(code),
            Ended::Detached | Ended::StdoutClosed => Ok(0),
            Ended::Signalled(s) => Ok(terminal::die_of(s)),
            Ended::Closed => self.code_after_close(dir, Some(ctl)),
        }
    }

    /// The foreground of `exec -i`/`-t`, exec `dir` (`containers/NAME/execs/N`) having started; its
    /// `logs` serve as a run's do.
    pub(super) fn attach_exec(&self, dir: &str, flags: &AttachFlags) -> Result<i32, CliError> {
        let Some(conn) = self.connect(dir, WANT_OUTPUT | REPLAY)? else { return self.follow_dir(dir) };
        let out = session::run(&conn, &flags.plan(false)).map_err(session_err)?;
        match out.ended {
            Ended::Exit(_) | Ended::Closed if !out.saw_output => self.follow_dir(dir),
            ended => self.attached_end(dir, ended),
        }
    }

    /// `bocker attach NAME`: its output from now on, stdin when it is `interactive`, a raw terminal when
    /// it has a `tty` too; the container's exit code once it ends.
    pub fn attach(&self, name: &str, keys: Option<DetachKeys>) -> Result<i32, CliError> {
        let dir = format!("containers/{name}");
        if name.is_empty() || name.contains('/') || name == "." || name == ".." || !self.path(&dir).is_dir() {
            return Err(CliError::NoContainer(name.to_string()));
        }
        let flags = AttachFlags {
            interactive: self.read(&format!("{dir}/interactive")) == "true",
            tty: self.read(&format!("{dir}/tty")) == "true",
            detach_keys: keys,
        };
        flags.check_terminal()?;
        let stopped = || CliError::Failed("You cannot attach to a stopped container, start it first".into());
        match self.read(&format!("{dir}/status")).as_str() {
            "running" => {}
            "paused" => {
                return Err(CliError::Failed("You cannot attach to a paused container, unpause it first".into()))
            }
            _ => return Err(stopped()),
        }
        let Some(conn) = self.connect(&dir, WANT_OUTPUT)? else { return Err(stopped()) };
        let out = session::run(&conn, &flags.plan(true)).map_err(session_err)?;
        self.attached_end(&dir, out.ended)
    }

    /// Connects to `DIR/attach` and says hello with `flags`, waiting (up to [`SOCKET_WAIT`]) for a
    /// monitor that has not made its socket yet; `None` once `DIR/status` says the command has ended
    /// without one being served.
    fn connect(&self, dir: &str, flags: u8) -> Result<Option<Connection>, CliError> {
        let path = self.path(&format!("{dir}/attach"));
        let name = dir.trim_start_matches("containers/");
        let deadline = Instant::now() + SOCKET_WAIT;
        loop {
            match Connection::connect(&path, flags) {
                Ok(conn) => return Ok(Some(conn)),
                Err(e) if not_served(&e) => {
                    let status = self.read(&format!("{dir}/status"));
                    if status == "exited" || status.is_empty() {
                        return Ok(None);
                    }
                    if Instant::now() > deadline {
                        return Err(CliError::Failed(format!(
                            "cannot attach to {name}: nothing serves its socket ({e})"
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(CliError::Failed(format!("cannot attach to {name}: {e}"))),
            }
        }
    }

    /// What `attach` and `exec` return at a session's end.
    fn attached_end(&self, dir: &str, ended: Ended) -> Result<i32, CliError> {
        match ended {
            Ended::Exit(code) => Ok(code),
            Ended::Detached => {
                let _ = writeln!(io::stderr(), "read escape sequence");
                Ok(1)
            }
            Ended::StdoutClosed => Ok(0),
            Ended::Signalled(s) => Ok(terminal::die_of(s)),
            Ended::Closed => self.code_after_close(dir, None),
        }
    }

    /// The exit code once the monitor closed without sending it: the run's `ctl` answers it, else
    /// `exit_code`, once the command has ended (the daemon may record the end a moment after the monitor
    /// closed); else the session was lost while it runs.
    fn code_after_close(&self, dir: &str, ctl: Option<File>) -> Result<i32, CliError> {
        let lost = || {
            CliError::Failed(format!(
                "lost the connection to the monitor of {}; `bocker attach` may find it again",
                dir.trim_start_matches("containers/")
            ))
        };
        let deadline = Instant::now() + SOCKET_WAIT;
        loop {
            let status = self.read(&format!("{dir}/status"));
            if status == "exited" || status.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(lost());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(code) = ctl.and_then(super::run::code_on) {
            return Ok(code);
        }
        self.read(&format!("{dir}/exit_code")).parse().map_err(|_| lost())
    }
}
