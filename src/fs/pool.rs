//! A bounded pool of worker threads for the requests that may take long (writes, mkdir, rmdir: a pull, a
//! stop through its grace period). A FUSE thread hands the request over and goes back to serving `ls` and
//! `cat`; a flood of writes waits in a bounded queue instead of growing the daemon by a thread per write.
//! Workers are started as the load needs them, up to the bound, and stay for the next request.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A request to run: called with `Ok(())` on a worker, or with `Err(Full)` at once on the submitting thread
/// when the queue is at its bound (so it can still answer).
type Job = Box<dyn FnOnce(Result<(), Full>) + Send + 'static>;

/// The pool is full: `max_queued` requests already wait for a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    max_workers: usize,
    max_queued: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    workers: usize,
    idle: usize,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    pub fn new(max_workers: usize, max_queued: usize) -> Pool {
        let shared =
            Shared { state: Mutex::default(), work: Condvar::new(), max_workers: max_workers.max(1), max_queued };
        Pool { shared: Arc::new(shared) }
    }

    /// Runs `job(Ok(()))` on a worker, or `job(Err(Full))` here and now when `max_queued` jobs already wait.
    pub fn submit(&self, job: impl FnOnce(Result<(), Full>) + Send + 'static) {
        let mut st = lock(&self.shared);
        if st.queue.len() >= self.shared.max_queued {
            drop(st);
            return job(Err(Full));
        }
        st.queue.push_back(Box::new(job));
        if st.idle == 0 && st.workers < self.shared.max_workers {
            st.workers += 1;
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new().name("bocker-request".into()).spawn(move || worker(&shared));
            if spawned.is_err() {
                st.workers -= 1;
            }
        }
        drop(st);
        self.shared.work.notify_one();
    }

    /// Worker threads started so far.
    #[cfg(test)]
    pub fn workers(&self) -> usize {
        lock(&self.shared).workers
    }
}

fn worker(shared: &Shared) {
    let mut st = lock(shared);
    loop {
        if let Some(job) = st.queue.pop_front() {
            drop(st);
            // A panicking request must not take its worker (and the bound) with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(()))));
            st = lock(shared);
            continue;
        }
        st.idle += 1;
        st = shared.work.wait(st).unwrap_or_else(|e| e.into_inner());
        st.idle -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn runs_every_job_on_at_most_the_bound_of_workers() {
        let pool = Pool::new(3, 100);
        let (tx, rx) = mpsc::channel();
        for i in 0..50 {
            let tx = tx.clone();
            pool.submit(move |slot| {
                slot.unwrap();
                std::thread::sleep(Duration::from_millis(2));
                tx.send(i).unwrap();
            });
        }
        let mut got: Vec<i32> = (0..50).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
        got.sort();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
        assert!(pool.workers() <= 3, "{} workers", pool.workers());
    }

    #[test]
    fn a_full_queue_refuses_and_a_panic_keeps_the_worker() {
        let pool = Pool::new(1, 2);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        pool.submit(move |_| {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv();
        });
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        pool.submit(|_| panic!("a request that panics"));
        let (done_tx, done_rx) = mpsc::channel();
        pool.submit(move |slot| done_tx.send(slot).unwrap());
        let (full_tx, full_rx) = mpsc::channel();
        pool.submit(move |slot| full_tx.send(slot).unwrap());
        assert_eq!(full_rx.try_recv(), Ok(Err(Full)), "answered at once on this thread");
        release_tx.send(()).unwrap();
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(10)), Ok(Ok(())), "the job after the panic ran");
        assert_eq!(pool.workers(), 1);
    }
}
