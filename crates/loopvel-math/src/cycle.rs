//! Time per turn, and how much faster generation can speed up the loop at all.
//!
//! A turn is overhead + generation + tests. Only generation gets faster with a
//! faster model, so the loop obeys Amdahl's law: with generation time `g` and
//! verification time `v` (tests + overhead), a model `S` times faster speeds the
//! loop up by `(g + v) / (g / S + v)`, never more than `(g + v) / v`.

use crate::{LoopProfile, ModelProfile};

/// Generation time of one attempt on the first turn: first token (with the
/// first prompt's prefill), then the rest at decode speed, in seconds.
pub fn generation_s(model: &ModelProfile) -> f64 {
    generation_s_at(model, 1)
}

/// Generation time of an attempt on overall turn `turn`: the prompt's
/// prefill grows with it when the model has a prefill speed.
pub fn generation_s_at(model: &ModelProfile, turn: u32) -> f64 {
    model.ttft_s + model.prefill_s(turn) + model.output_tokens / model.tokens_per_s
}

/// Cycle time of overall turn `turn`, s.
pub fn cycle_s_at(model: &ModelProfile, lp: &LoopProfile, turn: u32) -> f64 {
    lp.overhead_s + generation_s_at(model, turn) + lp.test_s
}

/// Time from the start of the run to the end of turn `n` (turns `from..from+n`
/// of the prompt's growth), s: `n · cycle_s` when no prefill time grows.
pub fn elapsed_s(model: &ModelProfile, lp: &LoopProfile, first_turn: u32, n: u32) -> f64 {
    if model.prefill_s(1) == 0.0 && model.prefill_s(2) == 0.0 {
        return f64::from(n) * cycle_s(model, lp);
    }
    (first_turn..first_turn + n).map(|t| cycle_s_at(model, lp, t)).sum()
}

/// Verification time of one turn: tests plus fixed overhead, in seconds.
pub fn verification_s(lp: &LoopProfile) -> f64 {
    lp.test_s + lp.overhead_s
}

/// Cycle time c = overhead + ttft + output_tokens / tokens_per_s + test_s, in
/// seconds (of the first turn, when the prompt's prefill grows by turn).
pub fn cycle_s(model: &ModelProfile, lp: &LoopProfile) -> f64 {
    lp.overhead_s + generation_s(model) + lp.test_s
}

/// Loop speedup from a model `speedup` times faster at generating:
/// `(g + v) / (g / speedup + v)`.
///
/// ```
/// // 30 s of generation, 30 s of tests: a 10x faster model gives 60/33 = 1.82x.
/// let s = loopvel_math::cycle::amdahl_speedup(30.0, 30.0, 10.0);
/// assert!((s - 60.0 / 33.0).abs() < 1e-12);
/// ```
pub fn amdahl_speedup(generation_s: f64, verification_s: f64, speedup: f64) -> f64 {
    (generation_s + verification_s) / (generation_s / speedup + verification_s)
}

/// The limit of [`amdahl_speedup`] as the model becomes infinitely fast:
/// `(g + v) / v`; `None` when `v = 0` (then the speedup has no bound).
pub fn amdahl_limit(generation_s: f64, verification_s: f64) -> Option<f64> {
    if verification_s > 0.0 {
        Some((generation_s + verification_s) / verification_s)
    } else {
        None
    }
}

/// True when verification (tests + overhead) takes at least as long as
/// generation: then even an infinitely fast model at most halves the cycle,
/// and the tests, not the model, bound the loop.
pub fn is_verification_bound(generation_s: f64, verification_s: f64) -> bool {
    verification_s >= generation_s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lp(test_s: f64, overhead_s: f64) -> LoopProfile {
        LoopProfile { test_s, overhead_s, max_turns: 15, tests: 47, parallel_tests: true }
    }

    #[test]
    fn cycle_adds_the_four_parts() {
        let m = ModelProfile { ttft_s: 4.5, tokens_per_s: 80.0, output_tokens: 2000.0, ..ModelProfile::example() };
        // 0.2 + 4.5 + 2000/80 + 0.3 = 30.0
        assert!((cycle_s(&m, &lp(0.3, 0.2)) - 30.0).abs() < 1e-12);
        assert!((generation_s(&m) - 29.5).abs() < 1e-12);
        assert!((verification_s(&lp(0.3, 0.2)) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn amdahl_by_hand() {
        // g = 9, v = 1: 10x faster -> 10 / (0.9 + 1) = 5.263...
        assert!((amdahl_speedup(9.0, 1.0, 10.0) - 10.0 / 1.9).abs() < 1e-12);
        assert_eq!(amdahl_limit(9.0, 1.0), Some(10.0));
        assert_eq!(amdahl_limit(9.0, 0.0), None);
        // Speedup 1 changes nothing.
        assert!((amdahl_speedup(3.0, 7.0, 1.0) - 1.0).abs() < 1e-15);
        // Approaches the limit from below.
        assert!(amdahl_speedup(9.0, 1.0, 1e9) < 10.0);
        assert!(amdahl_speedup(9.0, 1.0, 1e9) > 9.9999);
    }

    #[test]
    fn verification_bound_when_tests_dominate() {
        assert!(is_verification_bound(2.7, 60.2));
        assert!(is_verification_bound(1.0, 1.0));
        assert!(!is_verification_bound(29.5, 0.5));
    }
}
