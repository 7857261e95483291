//! One thread watching many processes: the pidfds of every process being followed (a container's monitor,
//! an exec's helper) in one epoll set. A pidfd turns readable once its process has exited; the thread then
//! hands that process's key to the callback it was started with. Adding a process is one `epoll_ctl` from
//! the adding thread on the shared set, which the kernel allows while the watcher sits in `epoll_wait`;
//! a process already gone when added is reported at once, its pidfd being readable from the start.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use tracing::error;

use super::{ProcessHandle, RuntimeError};

/// Followed processes, each reported once through the callback given to [`Watcher::start`].
pub struct Watcher<K> {
    shared: Arc<Shared<K>>,
}

struct Shared<K> {
    epoll: Epoll,
    watched: Mutex<Watched<K>>,
}

/// The pidfds in the set, by the token their epoll event carries, and what to report for each.
struct Watched<K> {
    next: u64,
    by_token: HashMap<u64, (ProcessHandle, K)>,
}

/// How many exits one `epoll_wait` takes at most; more are taken by the next.
const BATCH: usize = 64;

impl<K: Send + 'static> Watcher<K> {
    /// An empty set; nothing is reported before [`Watcher::start`].
    pub fn new() -> Result<Watcher<K>, RuntimeError> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| RuntimeError::WatcherSet(e.into()))?;
        let watched = Mutex::new(Watched { next: 0, by_token: HashMap::new() });
        Ok(Watcher { shared: Arc::new(Shared { epoll, watched }) })
    }

    /// Starts the one thread, which calls `exited(key)` for each followed process once it has ended.
    pub fn start(&self, exited: impl Fn(K) + Send + 'static) -> Result<(), RuntimeError> {
        let shared = Arc::clone(&self.shared);
        std::thread::Builder::new()
            .name("watcher".into())
            .spawn(move || shared.run(exited))
            .map(drop)
            .map_err(RuntimeError::WatcherThread)
    }

    /// Follows `process` until it exits, then reports `key`. Cheap, from any thread. When the set refuses
    /// it (`ENOSPC` past `max_user_watches`, `ENOMEM`), both come back with the reason.
    pub fn watch(&self, process: ProcessHandle, key: K) -> Result<(), (ProcessHandle, K, io::Error)> {
        let mut watched = self.shared.lock();
        let token = watched.next;
        watched.next += 1;
        // In the map before it is in the set: the watcher finds the entry of any event it gets.
        let (process, _) = watched.by_token.entry(token).or_insert((process, key));
        let added = self.shared.epoll.add(process.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token));
        match added {
            Ok(()) => Ok(()),
            Err(e) => {
                let (process, key) = watched.by_token.remove(&token).expect("inserted above");
                Err((process, key, e.into()))
            }
        }
    }

    /// How many processes are followed now.
    pub fn len(&self) -> usize {
        self.shared.lock().by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K> Shared<K> {
    fn lock(&self) -> MutexGuard<'_, Watched<K>> {
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self, exited: impl Fn(K)) {
        let mut events = [EpollEvent::empty(); BATCH];
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    // Not expected of a valid set and buffer; never spin on it.
                    error!(error = %e, "the watcher cannot wait on its epoll set");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            for event in &events[..n] {
                let Some((process, key)) = self.lock().by_token.remove(&event.data()) else { continue };
                // Out of the set before its pidfd closes (closing would drop it too), then reported.
                let _ = self.epoll.delete(process.as_fd());
                drop(process);
                exited(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::runtime::start_time;

    fn handle(child: &std::process::Child) -> ProcessHandle {
        let pid = child.id() as i32;
        ProcessHandle::open(pid, start_time(pid).unwrap()).unwrap()
    }

    #[test]
    fn reports_each_exit_once_on_one_thread_also_of_a_process_gone_before_it_was_added() {
        let watcher = Watcher::new().unwrap();
        let (tx, rx) = mpsc::channel();
        watcher.start(move |key: u32| tx.send((key, std::thread::current().id())).unwrap()).unwrap();
        let mut children: Vec<_> =
            (0..20).map(|_| std::process::Command::new("sleep").arg("30").spawn().unwrap()).collect();
        for (i, child) in children.iter().enumerate() {
            watcher.watch(handle(child), i as u32).map_err(|(_, _, e)| e).unwrap();
        }
        assert_eq!(watcher.len(), 20);
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "nothing has exited yet");
        // Exited and reaped before it is added: reported all the same.
        let mut quick = std::process::Command::new("true").spawn().unwrap();
        let early = handle(&quick);
        quick.wait().unwrap();
        watcher.watch(early, 100).map_err(|(_, _, e)| e).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap().0, 100);
        for child in &mut children {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let got: Vec<_> = (0..20).map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap()).collect();
        assert!(got.iter().all(|(_, t)| *t == got[0].1), "all on the one watcher thread");
        let mut keys: Vec<u32> = got.iter().map(|(k, _)| *k).collect();
        keys.sort();
        assert_eq!(keys, (0..20).collect::<Vec<_>>());
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "each once");
        assert!(watcher.is_empty());
    }
}
