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
        let start = Instant::now();
        let Ok(mut s) = self.state.lock() else { return Permit { limiter: self, waited_s: 0.0 } };
        while s.in_flight >= self.max_in_flight {
            s = match self.freed.wait(s) {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
        }
        s.in_flight += 1;
        let now = Instant::now();
        let go = s.next_start.max(now);
        s.next_start = go + self.gap;
        drop(s);
        if go > now {
            std::thread::sleep(go - now);
        }
        Permit { limiter: self, waited_s: start.elapsed().as_secs_f64() }
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
