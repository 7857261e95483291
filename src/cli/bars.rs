//! Per-layer progress bars of one pull, drawn from `images/pulls` lines (`REFERENCE LAYER DONE TOTAL
//! STATE`): `bocker pull` draws them on stdout, `bocker run` (pulling an image it doesn't have) on stderr,
//! as `docker run` does, so the container's output stays alone on stdout. On a terminal they are redrawn
//! in place; otherwise a line is printed when a layer changes state.

use std::collections::HashMap;
use std::io::{self, Write};

/// Where the bars go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Out {
    Stdout,
    Stderr,
}

pub(super) struct Bars {
    out: Out,
    tty: bool,
    drawn: usize,
    states: HashMap<String, String>,
}

impl Bars {
    pub(super) fn new(out: Out) -> Bars {
        let fd = if out == Out::Stdout { 1 } else { 2 };
        // SAFETY: isatty only inspects the descriptor.
        let tty = unsafe { libc::isatty(fd) } == 1;
        Bars { out, tty, drawn: 0, states: HashMap::new() }
    }

    /// Writes `text`; a closed stdout ends the process as every write to it does (see `say!`).
    fn write(&self, text: &str) {
        let written = match self.out {
            Out::Stdout => {
                let mut o = io::stdout().lock();
                o.write_all(text.as_bytes()).and_then(|()| o.flush())
            }
            Out::Stderr => io::stderr().lock().write_all(text.as_bytes()),
        };
        if let (Err(e), Out::Stdout) = (written, self.out) {
            super::stdout_failed(&e);
        }
    }

    /// After the pull: a `done` line for each of the image's layers whose end was not shown (a pull faster
    /// than the polls of `images/pulls`).
    pub(super) fn finish(&mut self, layers: &str) {
        let mut text = String::new();
        for digest in layers.lines() {
            if self.states.get(digest).map(String::as_str) != Some("done") {
                let short = digest.trim_start_matches("sha256:").get(..12).unwrap_or(digest);
                text.push_str(&format!("{short}: done\n"));
                self.states.insert(digest.to_string(), "done".into());
            }
        }
        if !text.is_empty() {
            self.write(&text);
        }
    }

    pub(super) fn show(&mut self, source: &str, pulls: &str) {
        let mut lines = Vec::new();
        let mut changes = String::new();
        for l in pulls.lines() {
            let w: Vec<&str> = l.split(' ').collect();
            let [reference, digest, done, total, state] = w.as_slice() else { continue };
            if *reference != source {
                continue;
            }
            let (done, total): (u64, u64) = (done.parse().unwrap_or(0), total.parse().unwrap_or(0));
            let short = digest.trim_start_matches("sha256:").get(..12).unwrap_or(digest);
            let filled = (done.min(total) * 30).checked_div(total).unwrap_or(30) as usize;
            lines.push(format!(
                "{short}: [{}{}] {:>7.1}/{:.1} MB {state}",
                "#".repeat(filled),
                " ".repeat(30 - filled),
                done as f64 / 1e6,
                total as f64 / 1e6
            ));
            if self.states.insert((*digest).to_string(), (*state).to_string()).as_deref() != Some(*state) {
                changes.push_str(&format!("{short}: {state}\n"));
            }
        }
        if !self.tty {
            if !changes.is_empty() {
                self.write(&changes);
            }
            return;
        }
        let mut text = String::new();
        if self.drawn > 0 {
            text.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for l in &lines {
            text.push_str(&format!("\x1b[2K{l}\n"));
        }
        self.drawn = lines.len();
        self.write(&text);
    }
}
