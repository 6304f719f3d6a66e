//! One pool of worker threads for every command that plays runs (`run`,
//! `replay`): a queue of jobs, `workers` threads taking them in order, and a
//! stop when a job says so or a signal reached loopvel.

use std::collections::VecDeque;
use std::sync::Mutex;

/// What a worker does after a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Take the next job.
    Continue,
    /// Take no more (this worker): the store failed, or the run was interrupted.
    Stop,
}

/// Work through `jobs` on up to `workers` threads (never more threads than
/// jobs), each calling `work` on one job at a time, in queue order. No job is
/// taken once a signal reached loopvel ([`loopvel_sandbox::interrupted`]).
/// Returns when every thread has stopped.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use loopvel_harness::pool::{work_through, Next};
/// let sum = AtomicU32::new(0);
/// work_through((1..=10).collect(), 3, |n: u32| {
///     sum.fetch_add(n, Ordering::SeqCst);
///     Next::Continue
/// });
/// assert_eq!(sum.into_inner(), 55);
/// ```
pub fn work_through<J: Send>(jobs: Vec<J>, workers: usize, work: impl Fn(J) -> Next + Sync) {
    let threads = workers.min(jobs.len()).max(1);
    let queue = Mutex::new(jobs.into_iter().collect::<VecDeque<J>>());
    let take = || queue.lock().ok().filter(|_| !loopvel_sandbox::interrupted()).and_then(|mut q| q.pop_front());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(job) = take() {
                    if work(job) == Next::Stop {
                        break;
                    }
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_ends_that_worker_only_and_every_other_job_still_runs() {
        let done = Mutex::new(Vec::new());
        work_through((0..20).collect(), 2, |n: u32| {
            done.lock().unwrap().push(n);
            if n == 3 {
                Next::Stop
            } else {
                Next::Continue
            }
        });
        let mut done = done.into_inner().unwrap();
        done.sort_unstable();
        assert_eq!(done, (0..20).collect::<Vec<_>>());
    }
}
