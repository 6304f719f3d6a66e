//! The talk's napkin math: each turn fixes a share `r` of what is still broken.
//!
//! After the first attempt the score (share of tests passing) is `first_score`;
//! each later turn removes a share `r` of the remaining error, so after `n`
//! turns `s_n = 1 − (1 − first_score)(1 − r)^(n−1)`. With `tests` tests the
//! target is all of them passing: the remaining error must fall below `1/tests`.

/// Score after `n` turns (`n ≥ 1`): `1 − (1 − first_score)(1 − r)^(n−1)`.
///
/// ```
/// let s = loopvel_math::compounding::score_after(0.8, 0.2, 2);
/// assert!((s - 0.84).abs() < 1e-12);
/// ```
pub fn score_after(first_score: f64, r: f64, n: u64) -> f64 {
    1.0 - remaining_error(first_score, r, n)
}

fn remaining_error(first_score: f64, r: f64, n: u64) -> f64 {
    (1.0 - first_score) * crate::pow_q(r, n.saturating_sub(1) as f64)
}

/// Relative width within which an error counts as equal to the target, not
/// under it. Inputs are decimals (`first_score = 0.8`, `tests = 5`) that
/// binary floats cannot hold: `1 − 0.8` is 0.19999999999999996, under `1/5`
/// by rounding alone, which would meet the target a turn early. Rounding
/// moves a product of a few factors by ~1e-15 relative; 1e-9 settles every
/// such tie as the decimal definition does, and no real loop sits closer
/// than that to its target without being on it.
pub const TIE_TOLERANCE: f64 = 1e-9;

/// `error < target`, with errors within [`TIE_TOLERANCE`] of the target
/// counting as equal to it (the inequality is strict: a tie misses).
fn under(error: f64, target: f64) -> bool {
    error < target * (1.0 - TIE_TOLERANCE)
}

/// Turns to target `n*`: the least `n ≥ 1` with `(1 − s_n) < 1/tests`,
/// ties decided as the decimal inputs define them ([`TIE_TOLERANCE`]).
///
/// `None` when the target is never reached (`r = 0` and the first attempt
/// misses it). `tests = 0` means nothing to pass: one turn.
///
/// ```
/// // 1 − 0.8 is exactly 1/5 in decimals: a tie, so not met on turn 1.
/// assert_eq!(loopvel_math::compounding::turns_to_target(0.8, 0.5, 5), Some(2));
/// ```
///
/// ```
/// // The talk's fast model: 80% right first, 20% of the rest fixed per turn, 47 tests.
/// assert_eq!(loopvel_math::compounding::turns_to_target(0.8, 0.2, 47), Some(12));
/// ```
pub fn turns_to_target(first_score: f64, r: f64, tests: u32) -> Option<u64> {
    let target = target_error(tests);
    let e1 = 1.0 - first_score;
    if under(e1, target) {
        return Some(1);
    }
    if r <= 0.0 {
        return None;
    }
    if r >= 1.0 {
        return Some(2);
    }
    // (n−1)·ln(1−r) < −ln(tests·e1)  ⇔  n−1 > x,  x = ln(tests·e1) / −ln(1−r).
    let x = (f64::from(tests) * e1).ln() / -(-r).ln_1p();
    let mut n = if x.is_finite() {
        x.floor() as u64 + 2
    } else {
        return None;
    };
    // The logarithms round; settle the boundary against the defining inequality.
    while n > 1 && under(remaining_error(first_score, r, n - 1), target) {
        n -= 1;
    }
    while !under(remaining_error(first_score, r, n), target) {
        n += 1;
    }
    Some(n)
}

/// The error share that counts as "all tests pass": `1/tests`. With no tests
/// there is nothing to pass, so any error meets it (infinity).
pub fn target_error(tests: u32) -> f64 {
    if tests == 0 {
        f64::INFINITY
    } else {
        1.0 / f64::from(tests)
    }
}

/// Loop velocity: e-folds of error removed per second, `−ln(1 − r) / cycle_s`.
/// Infinite when `r = 1` (one turn removes all error).
pub fn loop_velocity_per_s(r: f64, cycle_s: f64) -> f64 {
    -(-r).ln_1p() / cycle_s
}

/// The least `r` that reaches the target within `turns` turns, as a
/// threshold: any `r` strictly above the returned value gets there
/// (the target inequality is strict). `Some(0.0)` when the first attempt
/// already meets the target; `None` when `turns = 0`, or `turns = 1` and the
/// first attempt misses.
pub fn r_needed_within(first_score: f64, tests: u32, turns: u64) -> Option<f64> {
    let target = target_error(tests);
    let e1 = 1.0 - first_score;
    if turns == 0 {
        return None;
    }
    if under(e1, target) {
        return Some(0.0);
    }
    if turns == 1 {
        return None;
    }
    // e1·(1−r)^(turns−1) < target  ⇔  r > 1 − (target/e1)^(1/(turns−1)).
    Some(1.0 - (target / e1).powf(1.0 / (turns - 1) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_decimal_ties_miss_the_target_as_the_definition_says() {
        // first_score 0.8, 5 tests: the remaining error 0.2 equals 1/5 — not under it.
        assert_eq!(turns_to_target(0.8, 0.5, 5), Some(2));
        // A tie on a later turn: 0.4 · 0.5 = 0.2 = 1/5 on turn 2, so turn 3.
        assert_eq!(turns_to_target(0.6, 0.5, 5), Some(3));
        // Every exact tie on the first turn in a grid of decimal inputs:
        // first_score = 1 − k/100 with tests = 100/k whole.
        let mut ties = 0;
        for k in 1..=99u32 {
            if 100 % k == 0 {
                let first_score = 1.0 - f64::from(k) / 100.0;
                let tests = 100 / k;
                assert_eq!(
                    turns_to_target(first_score, 0.5, tests),
                    Some(2),
                    "first_score {first_score}, {tests} tests"
                );
                assert_eq!(r_needed_within(first_score, tests, 1), None, "a tie on turn 1 does not meet it");
                ties += 1;
            }
        }
        assert!(ties >= 8, "{ties} ties tested");
        // Just under the target still meets it at once.
        assert_eq!(turns_to_target(0.8 + 1e-6, 0.5, 5), Some(1));
    }

    #[test]
    fn talk_fast_model_by_hand() {
        // 0.2·0.8^10 = 0.021475 ≥ 1/47 = 0.021277; 0.2·0.8^11 = 0.017180 < 1/47.
        assert!(0.2 * 0.8f64.powi(10) >= 1.0 / 47.0);
        assert!(0.2 * 0.8f64.powi(11) < 1.0 / 47.0);
        assert_eq!(turns_to_target(0.8, 0.2, 47), Some(12));
        assert!((score_after(0.8, 0.2, 12) - (1.0 - 0.2 * 0.8f64.powi(11))).abs() < 1e-15);
    }

    #[test]
    fn frontier_needs_two_turns() {
        // 1 − 0.95 = 0.05 ≥ 1/47; 0.05·0.1 = 0.005 < 1/47.
        assert_eq!(turns_to_target(0.95, 0.9, 47), Some(2));
    }

    #[test]
    fn edges() {
        assert_eq!(turns_to_target(0.99, 0.0, 47), Some(1));
        assert_eq!(turns_to_target(0.5, 0.0, 47), None);
        assert_eq!(turns_to_target(0.5, 1.0, 47), Some(2));
        assert_eq!(turns_to_target(0.0, 0.5, 0), Some(1));
        // One test: error must fall below 1, i.e. any score above 0.
        assert_eq!(turns_to_target(0.0, 0.5, 1), Some(2));
        assert_eq!(score_after(0.8, 0.2, 1), 0.8);
    }

    #[test]
    fn velocity_by_hand() {
        // −ln(0.8)/3 = 0.0743812...
        assert!((loop_velocity_per_s(0.2, 3.0) - 0.223_143_551_314_209_7 / 3.0).abs() < 1e-15);
        assert!(loop_velocity_per_s(1.0, 3.0).is_infinite());
        assert_eq!(loop_velocity_per_s(0.0, 3.0), 0.0);
    }

    #[test]
    fn r_needed_by_hand() {
        // Within 2 turns from 0.8 on 47 tests: r > 1 − (1/47/0.2) = 0.893617...
        let r = r_needed_within(0.8, 47, 2).unwrap();
        assert!((r - (1.0 - 1.0 / 47.0 / 0.2)).abs() < 1e-15);
        assert_eq!(turns_to_target(0.8, r + 1e-9, 47), Some(2));
        assert_eq!(turns_to_target(0.8, r - 1e-9, 47), Some(3));
        assert_eq!(r_needed_within(0.8, 47, 1), None);
        assert_eq!(r_needed_within(0.99, 47, 1), Some(0.0));
    }

    /// Brute force: step the error turn by turn.
    fn brute_turns(first_score: f64, r: f64, tests: u32) -> u64 {
        let target = 1.0 / f64::from(tests);
        let mut error = 1.0 - first_score;
        let mut n = 1;
        while error >= target {
            error *= 1.0 - r;
            n += 1;
        }
        n
    }

    proptest! {
        #[test]
        fn closed_form_agrees_with_brute_force(fs in 0.0f64..0.999, r in 0.01f64..1.0, tests in 1u32..5000) {
            prop_assert_eq!(turns_to_target(fs, r, tests), Some(brute_turns(fs, r, tests)));
        }

        #[test]
        fn score_rises_with_turns(fs in 0.0f64..1.0, r in 0.0f64..1.0, n in 1u64..200) {
            prop_assert!(score_after(fs, r, n + 1) >= score_after(fs, r, n));
            prop_assert!(score_after(fs, r, n) <= 1.0);
        }
    }
}
