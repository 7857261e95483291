//! Change notices: the engine tells one listener (the FUSE side, which keeps the kernel's caches of the
//! tree) which object changed, after the change is published and before the request that made it
//! returns. The listener may be called with the engine's state lock held: it must neither block nor call
//! back into the engine (hand the notice to a thread of its own).

use std::sync::OnceLock;

use super::Engine;

/// An object whose files (content, size, existence) may read differently now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// A container: made, changed (record, status, error, limits) or removed.
    Container(String),
    /// An exec of a container: reserved, started, exited.
    Exec(String, u32),
    /// An image: added, replaced or removed.
    Image(String),
    /// A named volume: made or removed.
    Volume(String),
    /// A network: made, given a new subnet, or removed.
    Network(String),
    /// The `events` file grew by a line (see `events`).
    Events,
    /// A build: begun, its log grew, ended, removed.
    Build(u32),
}

/// Where change notices go.
pub type Listener = Box<dyn Fn(Changed) + Send + Sync>;

#[derive(Default)]
pub(super) struct Notices {
    listener: OnceLock<Listener>,
}

impl Engine {
    /// Names the one listener of change notices (the first call wins).
    pub fn on_change(&self, listener: Listener) {
        let _ = self.notices.listener.set(listener);
    }

    /// Tells the listener `what` changed.
    pub(super) fn notify(&self, what: Changed) {
        if let Some(listener) = self.notices.listener.get() {
            listener(what);
        }
    }
}
