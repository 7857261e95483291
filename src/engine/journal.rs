//! The error journal: a failed request's message goes to its container's `error`, to the bounded
//! `errors` file (a line each: time, path, errno, message) and to the daemon log.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use tracing::warn;

use super::Engine;
use crate::error::{errno_name, Error};
use crate::model::ContainerStatus;
use crate::times;

/// The size past which `errors` starts afresh.
pub(super) const ERRORS_MAX: u64 = 1 << 20;

/// The longest message (or path) an `error` or `errors` line holds.
pub(super) const MESSAGE_MAX: usize = 1024;

/// `s` cut to [`MESSAGE_MAX`] bytes at a character boundary. Messages quote little of their input already;
/// this bounds the rest (an nft or registry message, a long path).
pub(super) fn bounded(s: &str) -> String {
    let kept = crate::request::prefix(s, MESSAGE_MAX);
    if kept.len() == s.len() {
        s.to_string()
    } else {
        format!("{kept}...")
    }
}

impl Engine {
    pub(super) fn failed(&self, path: &str, object: Option<&str>, error: &Error) {
        let errno = errno_name(error.errno());
        let message = bounded(&error.to_string().replace('\n', " "));
        let path = bounded(path);
        warn!(path, errno = %errno, message = %message, "request failed");
        if let Some(name) = object {
            self.set_error(name, &message);
        }
        let _guard = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        let file = self.errors_file();
        // Bounded: past ERRORS_MAX the file starts afresh, the full one kept as errors.1 (for the daemon's log).
        if std::fs::metadata(&file).is_ok_and(|m| m.len() >= ERRORS_MAX) {
            let _ = std::fs::rename(&file, file.with_extension("1"));
        }
        let entry = format!("{} {path} {errno} {message}\n", times::now_rfc3339());
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&file)
            .and_then(|mut f| f.write_all(entry.as_bytes()));
        if let Err(e) = appended {
            warn!(error = %e, "cannot append to the errors file");
        }
    }

    /// Sets container `name`'s `error` (empty after a write that succeeded), unless it is being removed.
    pub(super) fn set_error(&self, name: &str, message: &str) {
        let unchanged = |c: &super::state::Container| c.record.error == message;
        if self.view().containers.get(name).is_none_or(|c| unchanged(c)) {
            return;
        }
        let Ok(held) = self.writing(name) else { return };
        let saved = self.commit_record(
            &held,
            name,
            |c, r| {
                if c.status() == ContainerStatus::Removing {
                    return Err(Error::Invalid("being removed".into()));
                }
                r.error = message.to_string();
                Ok(())
            },
            |_| {},
        );
        // A record that can't be written (the very failure reported, often) still shows why: in memory
        // only, until its next save.
        if let Err(Error::Record { .. }) = saved {
            let mut st = self.lock();
            if let Ok(c) = st.container_mut(name) {
                c.record.error = message.to_string();
                st.notify(super::Changed::Container(name.to_string()));
            }
        }
    }
}
