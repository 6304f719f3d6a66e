//! How much faster, or how much better, a model would need to be to tie another.
//!
//! Speed break-evens scale `tokens_per_s` only (time to first token, tests and
//! overhead stay), so a model whose fixed parts alone exceed the target can
//! never tie by decoding faster: those answers are `None`.
//!
//! The quality break-even for the pass-probability model ties on wall time
//! per solved task (`expected_wall_s / pass_rate`), not on mean time to pass:
//! the mean among passes is not monotone in `p_retry` (at `p_retry = 0` only
//! quick first-turn passes remain, so it *falls*), so "the p_retry needed to
//! tie" on it is not well defined. Time per solved task counts failed runs
//! and falls steadily as `p_retry` rises.

use crate::compounding::{r_needed_within, turns_to_target};
use crate::cycle::cycle_s;
use crate::hazard::PassModel;
use crate::{LoopProfile, ModelProfile};

/// Factor on `tokens_per_s` that makes the model's cycle time `target_cycle_s`;
/// `None` when decoding speed cannot get there (no output tokens, or the fixed
/// parts of the cycle already take `target_cycle_s` or more).
///
/// ```
/// use loopvel_math::{breakeven::speed_factor_for_cycle, LoopProfile, ModelProfile};
/// let m = ModelProfile { ttft_s: 4.5, tokens_per_s: 80.0, output_tokens: 2000.0, ..ModelProfile::example() };
/// let lp = LoopProfile { test_s: 0.3, overhead_s: 0.2, max_turns: 15, tests: 47, parallel_tests: true };
/// // 30 s now; to get to 18 s the 25 s of decoding must shrink to 13 s: 25/13.
/// let f = speed_factor_for_cycle(&m, &lp, 18.0).unwrap();
/// assert!((f - 25.0 / 13.0).abs() < 1e-12);
/// ```
pub fn speed_factor_for_cycle(model: &ModelProfile, lp: &LoopProfile, target_cycle_s: f64) -> Option<f64> {
    let fixed = lp.overhead_s + model.ttft_s + lp.test_s;
    let decode_budget_s = target_cycle_s - fixed;
    if model.output_tokens <= 0.0 || decode_budget_s <= 0.0 || !decode_budget_s.is_finite() {
        return None;
    }
    Some(model.output_tokens / (model.tokens_per_s * decode_budget_s))
}

/// Factor on `a`'s `tokens_per_s` for its mean time to pass (within
/// `max_turns`) to equal `target_s`. Mean turns to pass do not depend on speed,
/// so the cycle must become `target_s / mean_turns`.
pub fn speed_factor_to_tie_mean_time(a: &ModelProfile, lp: &LoopProfile, target_s: f64) -> Option<f64> {
    let turns = PassModel::of(a).mean_turns_given_pass(lp.max_turns)?;
    speed_factor_for_cycle(a, lp, target_s / turns)
}

/// Factor on `a`'s `tokens_per_s` for its napkin-math time to target to equal `target_s`.
pub fn speed_factor_to_tie_time_to_target(a: &ModelProfile, lp: &LoopProfile, target_s: f64) -> Option<f64> {
    let turns = turns_to_target(a.first_score, a.r, lp.tests)?;
    speed_factor_for_cycle(a, lp, target_s / turns as f64)
}

/// The `r` that `a` needs, at its current speed, to reach the target within
/// `target_s` seconds (a threshold: any larger `r` does it). `None` when no `r`
/// can: not even one turn fits, or one turn fits and the first attempt misses.
pub fn r_to_tie_time_to_target(a: &ModelProfile, lp: &LoopProfile, target_s: f64) -> Option<f64> {
    let c = cycle_s(a, lp);
    // Tolerate rounding so that an exact tie counts as a tie.
    let turns_that_fit = (target_s / c * (1.0 + 1e-12)).floor();
    if !turns_that_fit.is_finite() || turns_that_fit < 1.0 {
        return None;
    }
    r_needed_within(a.first_score, lp.tests, turns_that_fit as u64)
}

/// Wall time per solved task, seconds: expected run time (passing or not) over pass rate.
pub fn time_per_solved_s(model: &ModelProfile, lp: &LoopProfile) -> Option<f64> {
    let pm = PassModel::of(model);
    let rate = pm.pass_rate(lp.max_turns);
    (rate > 0.0).then(|| pm.expected_turns_run(lp.max_turns) * cycle_s(model, lp) / rate)
}

/// The least `p_retry` at which `a`, at its current speed, spends no more wall
/// time per solved task than `target_s`. `Some(0.0)` when it already does with
/// `p_retry = 0`; `None` when even `p_retry = 1` is not enough.
pub fn p_retry_to_tie_time_per_solved(a: &ModelProfile, lp: &LoopProfile, target_s: f64) -> Option<f64> {
    let at = |p: f64| time_per_solved_s(&ModelProfile { p_retry: p, ..a.clone() }, lp).unwrap_or(f64::INFINITY);
    if at(1.0) > target_s {
        return None;
    }
    if at(0.0) <= target_s {
        return Some(0.0);
    }
    // Time per solved falls monotonically in p_retry: bisect.
    let (mut lo, mut hi) = (0.0, 1.0);
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if at(mid) <= target_s {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn talk_loop() -> LoopProfile {
        LoopProfile { test_s: 0.3, overhead_s: 0.2, max_turns: 15, tests: 47, parallel_tests: true }
    }

    fn frontier() -> ModelProfile {
        ModelProfile {
            ttft_s: 4.5,
            tokens_per_s: 80.0,
            output_tokens: 2000.0,
            first_score: 0.95,
            r: 0.9,
            p_first: 0.5,
            p_retry: 0.5,
            ceiling: 1.0,
            ..ModelProfile::example()
        }
    }

    #[test]
    fn speed_to_tie_time_to_target_by_hand() {
        // Frontier: 2 turns; to tie 36 s the cycle must be 18 s: decode 25 s → 13 s.
        let f = speed_factor_to_tie_time_to_target(&frontier(), &talk_loop(), 36.0).unwrap();
        assert!((f - 25.0 / 13.0).abs() < 1e-12);
        // To tie 9 s: cycle 4.5 s < fixed 5 s: impossible.
        assert_eq!(speed_factor_to_tie_time_to_target(&frontier(), &talk_loop(), 9.0), None);
    }

    #[test]
    fn speed_to_tie_mean_time_by_hand() {
        // p1 = p2 = .5, N = 15: mean turns = Σ k·.5^k / (1 − .5^15).
        let n = 15;
        let mean_turns: f64 = (1..=n).map(|k| f64::from(k) * 0.5f64.powi(k)).sum::<f64>() / (1.0 - 0.5f64.powi(n));
        let target = 40.0;
        let f = speed_factor_to_tie_mean_time(&frontier(), &talk_loop(), target).unwrap();
        let cycle = 5.0 + 2000.0 / (80.0 * f);
        assert!((cycle * mean_turns - target).abs() < 1e-9);
    }

    #[test]
    fn r_to_tie_by_hand() {
        // 36 s / 30 s → 1 turn fits; the first attempt (0.95) misses 1/47: no r helps.
        assert_eq!(r_to_tie_time_to_target(&frontier(), &talk_loop(), 36.0), None);
        // 60 s → 2 turns: r > 1 − (1/47)/0.05.
        let r = r_to_tie_time_to_target(&frontier(), &talk_loop(), 60.0).unwrap();
        assert!((r - (1.0 - (1.0 / 47.0) / 0.05)).abs() < 1e-12);
    }

    #[test]
    fn p_retry_to_tie_is_the_threshold() {
        let lp = talk_loop();
        let target = time_per_solved_s(&frontier(), &lp).unwrap();
        let p = p_retry_to_tie_time_per_solved(&frontier(), &lp, target).unwrap();
        assert!((p - 0.5).abs() < 1e-9, "{p}");
        assert_eq!(p_retry_to_tie_time_per_solved(&frontier(), &lp, 1.0), None);
        assert_eq!(p_retry_to_tie_time_per_solved(&frontier(), &lp, 1e6), Some(0.0));
    }
}
