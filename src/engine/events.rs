//! The daemon's stream of events, the `events` file at the root of the tree: one line per event, `TIME TYPE
//! NAME ACTION [KEY=VALUE...]`, as `docker events` reports them (TIME RFC 3339, UTC, to the nanosecond).
//!
//! The lines are kept as a container's output is ([`crate::logs`]): a directory of segments
//! (`<state>/events/`), bounded in size and count (the daemon's `--events-max-size` and
//! `--events-max-files`), each named by the offset of its first byte over the stream's life, so a reader
//! that holds `events` open reads on across rotations and a reader that opens it later sees what is kept.
//! Only the daemon writes it, one line per write, under its own lock (a leaf, never taken with the state
//! lock held: a write to disk is no pure work); each write is announced as [`Changed::Events`], so a poll
//! on an open `events` wakes. A failed write is logged and changes nothing else: an event is a report of
//! what was done, never a reason to refuse it. Events while no daemon runs are not seen, but for the exits
//! the next daemon finds at re-adoption: their `die` is written then, at that time.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::warn;

use super::{Changed, Engine};
use crate::logs::{LogLimits, Stream, Writer};

/// What an event is about: its TYPE column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Container,
    Image,
    Volume,
    Network,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Container => "container",
            EventType::Image => "image",
            EventType::Volume => "volume",
            EventType::Network => "network",
        }
    }
}

/// The writing end of the stream, opened when the engine is.
pub(super) struct Events {
    dir: PathBuf,
    limits: LogLimits,
    /// `None` until it could be opened (tried again at each event).
    writer: Mutex<Option<Writer>>,
    /// Containers whose events are held back: made by a `containers/run` whose start has not succeeded
    /// yet (a failed write changes nothing, the `events` file included).
    muted: Mutex<HashSet<String>>,
}

impl Events {
    pub(super) fn open(dir: &Path, limits: LogLimits) -> Events {
        let writer = Writer::open(dir, limits)
            .inspect_err(|e| warn!(dir = %dir.display(), error = %e, "cannot open the event stream"))
            .ok();
        Events { dir: dir.to_path_buf(), limits, writer: Mutex::new(writer), muted: Mutex::default() }
    }

    /// Appends the line `line` makes of the time now, taken under the lock: lines are in time order.
    fn append(&self, line: impl FnOnce(u64) -> String) -> Result<(), (crate::logs::LogError, String)> {
        let mut writer = lock(&self.writer);
        let line = line(now_ns());
        if writer.is_none() {
            *writer = Some(Writer::open(&self.dir, self.limits).map_err(|e| (e, line.clone()))?);
        }
        match writer.as_mut() {
            Some(w) => w.write(Stream::Stdout, line.as_bytes()).map_err(|e| (e, line)),
            None => Ok(()),
        }
    }
}

/// `value` as one word of an event's line: a backslash, whitespace and control characters as `\xHH`
/// (a backslash as `\x5c`), so a line splits at its spaces and a value never holds a newline.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '\\' || c.is_whitespace() || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\x{b:02x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One event's line, at `time_ns` (ns since the epoch), with its newline.
pub fn event_line(time_ns: u64, kind: EventType, name: &str, action: &str, attrs: &[(&str, &str)]) -> String {
    let mut line =
        format!("{} {} {} {}", crate::times::rfc3339_nanos(time_ns), kind.as_str(), escape(name), escape(action));
    for (key, value) in attrs {
        let _ = write!(line, " {}={}", escape(key), escape(value));
    }
    line.push('\n');
    line
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

impl Engine {
    /// Appends an event to the `events` file: `kind` NAME `action` and its `attrs` (`exit`, `signal`,
    /// ...), at the time of the call, and tells the tree (a poll on an open `events` wakes). Never called
    /// with the state lock held. A write that fails is logged.
    pub fn event(&self, kind: EventType, name: &str, action: &str, attrs: &[(&str, &str)]) {
        if kind == EventType::Container && lock(&self.events.muted).contains(name) {
            return;
        }
        if let Err((e, line)) = self.events.append(|now| event_line(now, kind, name, action, attrs)) {
            warn!(error = %e, event = %line.trim_end(), "cannot write an event");
            return;
        }
        self.notify(Changed::Events);
    }

    /// Holds back the events of container `name` (a `run`'s, until its start succeeds).
    pub(super) fn mute_events(&self, name: &str) {
        lock(&self.events.muted).insert(name.to_string());
    }

    /// Lets the events of container `name` through again; whether they were held back.
    pub(super) fn unmute_events(&self, name: &str) -> bool {
        lock(&self.events.muted).remove(name)
    }

    /// A container's event (see [`Engine::event`]).
    pub(super) fn container_event(&self, name: &str, action: &str, attrs: &[(&str, &str)]) {
        self.event(EventType::Container, name, action, attrs);
    }

    /// The directory of the event stream's segments (see [`crate::logs`]).
    pub fn events_path(&self) -> PathBuf {
        self.events.dir.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_time_type_name_action_and_escaped_attributes() {
        let line = event_line(1_700_000_000_123_456_789, EventType::Container, "web", "die", &[("exit", "3")]);
        assert_eq!(line, "2023-11-14T22:13:20.123456789Z container web die exit=3\n");
        let line = event_line(0, EventType::Image, "img_1", "import", &[("source", "/srv/my root\\fs\n")]);
        assert_eq!(line, "1970-01-01T00:00:00.000000000Z image img_1 import source=/srv/my\\x20root\\x5cfs\\x0a\n");
        assert_eq!(escape("é=ok"), "é=ok");
        assert_eq!(line.matches('\n').count(), 1);
    }
}
