//! Per-model limits shared by all loops: requests in flight and requests per second.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Limits requests to one model across threads, and holds its HTTP agent
/// (connection settings and TLS roots are built once, not per request).
#[derive(Debug)]
pub struct Limiter {
    pub(crate) agent: std::sync::OnceLock<ureq::Agent>,
    max_in_flight: u32,
    gap: Duration,
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug)]
struct State {
    in_flight: u32,
    next_start: Instant,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit<'a> {
    limiter: &'a Limiter,
    waited_s: f64,
}

impl Permit<'_> {
    /// Seconds spent waiting for this slot.
    pub fn waited_s(&self) -> f64 {
        self.waited_s
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.limiter.state.lock() {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.limiter.freed.notify_one();
    }
}

impl Limiter {
    /// At most `max_concurrent` requests at once and `rps` starts per second (`None`: no limit).
    pub fn new(max_concurrent: Option<u32>, rps: Option<f64>) -> Self {
        Limiter {
            agent: std::sync::OnceLock::new(),
            max_in_flight: max_concurrent.unwrap_or(u32::MAX).max(1),
            gap: rps.filter(|r| *r > 0.0).map_or(Duration::ZERO, |r| Duration::from_secs_f64(1.0 / r)),
            state: Mutex::new(State { in_flight: 0, next_start: Instant::now() }),
            freed: Condvar::new(),
        }
    }

    /// Wait for a slot and for the rate limit.
    pub fn acquire(&self) -> Permit<'_> {
        // Never cancelled, so always a permit.
        self.acquire_unless(&|| false).unwrap_or_else(|| Permit { limiter: self, waited_s: 0.0 })
    }

    /// [`Limiter::acquire`], giving up (`None`) once `cancelled` says so,
    /// checked every 100 ms of waiting: a signal must not wait out a long
    /// queue or a low `rps`.
    pub fn acquire_unless(&self, cancelled: &dyn Fn() -> bool) -> Option<Permit<'_>> {
        let start = Instant::now();
        let Ok(mut s) = self.state.lock() else { return Some(Permit { limiter: self, waited_s: 0.0 }) };
        while s.in_flight >= self.max_in_flight {
            if cancelled() {
                return None;
            }
            s = match self.freed.wait_timeout(s, Duration::from_millis(100)) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
        s.in_flight += 1;
        let now = Instant::now();
        let go = s.next_start.max(now);
        s.next_start = go + self.gap;
        drop(s);
        // The slot is held from here: a cancel returns it through the permit's drop.
        let mut permit = Permit { limiter: self, waited_s: 0.0 };
        while Instant::now() < go {
            if cancelled() {
                return None;
            }
            std::thread::sleep(go.saturating_duration_since(Instant::now()).min(Duration::from_millis(100)));
        }
        permit.waited_s = start.elapsed().as_secs_f64();
        Some(permit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_spaces_requests() {
        let l = Limiter::new(None, Some(20.0));
        let start = Instant::now();
        for _ in 0..5 {
            drop(l.acquire());
        }
        // Five starts 50 ms apart: the last at ≥ 200 ms.
        assert!(start.elapsed() >= Duration::from_millis(195), "{:?}", start.elapsed());
    }

    #[test]
    fn a_cancel_ends_the_wait_and_frees_the_slot() {
        let l = Limiter::new(Some(1), Some(0.01));
        let first = l.acquire();
        let start = Instant::now();
        // Waiting on the slot: cancelled within ~100 ms.
        assert!(l.acquire_unless(&|| start.elapsed() > Duration::from_millis(50)).is_none());
        assert!(start.elapsed() < Duration::from_secs(2));
        drop(first);
        // Waiting on the 100 s rate gap with the slot held: cancelled too, and the slot comes back.
        let start = Instant::now();
        assert!(l.acquire_unless(&|| start.elapsed() > Duration::from_millis(50)).is_none());
        assert_eq!(l.state.lock().unwrap().in_flight, 0);
    }

    #[test]
    fn concurrency_is_capped() {
        let l = std::sync::Arc::new(Limiter::new(Some(1), None));
        let a = l.acquire();
        let l2 = l.clone();
        let h = std::thread::spawn(move || l2.acquire().waited_s());
        std::thread::sleep(Duration::from_millis(100));
        drop(a);
        assert!(h.join().unwrap() >= 0.09);
    }
}
