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
        // A worker counts as idle until it has woken and taken a job: compare with what waits, not with 0.
        if st.queue.len() > st.idle && !spawn_worker(&self.shared, &mut st) && st.workers == 0 {
            // No thread could be started and none runs: no one would ever take it, so answer it now.
            let job = st.queue.pop_back();
            drop(st);
            if let Some(job) = job {
                job(Err(Full));
            }
            return;
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

/// Starts one more worker if the bound allows; false if none was started.
fn spawn_worker(shared: &Arc<Shared>, st: &mut State) -> bool {
    if st.workers >= shared.max_workers {
        return false;
    }
    let mine = Arc::clone(shared);
    match std::thread::Builder::new().name("bocker-request".into()).spawn(move || worker(&mine)) {
        Ok(_) => {
            st.workers += 1;
            true
        }
        Err(_) => false,
    }
}

fn worker(shared: &Arc<Shared>) {
    let mut st = lock(shared);
    loop {
        if let Some(job) = st.queue.pop_front() {
            drop(st);
            // A panicking request costs its own reply (EIO), not the daemon. The thread ends, though: a job
            // may have changed the thread's state (its file-system identity, say) before it panicked. A
            // fresh worker takes its place if requests wait.
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(()))));
            st = lock(shared);
            if ran.is_err() {
                st.workers -= 1;
                if st.queue.len() > st.idle {
                    spawn_worker(shared, &mut st);
                }
                return;
            }
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
    fn a_second_job_never_waits_behind_a_long_one_while_the_bound_allows_a_worker() {
        let pool = Pool::new(4, 100);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        // One worker, idle, then two jobs in a row: the first blocks, the second must still run.
        pool.submit(|_| {});
        std::thread::sleep(Duration::from_millis(50));
        pool.submit(move |_| {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv();
        });
        let (done_tx, done_rx) = mpsc::channel();
        pool.submit(move |slot| done_tx.send(slot).unwrap());
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(10)), Ok(Ok(())), "ran beside the blocked job");
        release_tx.send(()).unwrap();
    }

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
        assert!(pool.workers() <= 1);
    }
}
