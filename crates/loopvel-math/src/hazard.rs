//! The pass-probability model, in closed form.
//!
//! A share `ceiling` of tasks can be solved at all. On a solvable task the
//! first attempt passes with chance `p_first`; each later turn, given no pass
//! yet, passes with chance `p_retry`. So
//! `P(pass by turn n) = ceiling·(1 − (1 − p_first)(1 − p_retry)^(n−1))`.
//!
//! Everything here is an exact sum of that distribution truncated at the
//! turn budget, written in closed form; [`crate::schedule`] computes the same
//! quantities by summing turn by turn, and the tests hold the two together.

use crate::{one_minus_pow_q, pow_q, ModelProfile};

/// Per-turn pass chances of one model on one kind of task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassModel {
    /// Chance the first attempt passes (solvable task).
    pub p_first: f64,
    /// Chance a later turn passes given no pass yet (solvable task).
    pub p_retry: f64,
    /// Share of tasks that can be solved at all.
    pub ceiling: f64,
}

impl PassModel {
    /// The quality fields of a model profile.
    pub fn of(model: &ModelProfile) -> Self {
        PassModel { p_first: model.p_first, p_retry: model.p_retry, ceiling: model.ceiling }
    }

    /// The same model running `k` candidates per turn; a turn passes when any does.
    /// The ceiling does not move: an unsolvable task stays unsolvable.
    pub fn best_of(self, k: u32) -> Self {
        PassModel {
            p_first: one_minus_pow_q(self.p_first, f64::from(k)),
            p_retry: one_minus_pow_q(self.p_retry, f64::from(k)),
            ceiling: self.ceiling,
        }
    }

    /// `P(pass by turn n)`; 0 for `n = 0`.
    ///
    /// ```
    /// use loopvel_math::hazard::PassModel;
    /// let m = PassModel { p_first: 0.5, p_retry: 0.5, ceiling: 1.0 };
    /// assert_eq!(m.pass_by_turn(2), 0.75);
    /// ```
    pub fn pass_by_turn(&self, n: u32) -> f64 {
        if n == 0 {
            return 0.0;
        }
        let miss_first = 1.0 - self.p_first;
        self.ceiling * (1.0 - miss_first * pow_q(self.p_retry, f64::from(n - 1)))
    }

    /// Chance that turn `n` (1-based) is started: the run has not passed in `n − 1` turns.
    pub fn still_running_at(&self, n: u32) -> f64 {
        1.0 - self.pass_by_turn(n.saturating_sub(1))
    }

    /// Chance the run passes on exactly turn `n`.
    pub fn pass_at_turn(&self, n: u32) -> f64 {
        match n {
            0 => 0.0,
            1 => self.ceiling * self.p_first,
            _ => self.ceiling * (1.0 - self.p_first) * pow_q(self.p_retry, f64::from(n - 2)) * self.p_retry,
        }
    }

    /// Pass rate within `max_turns`.
    pub fn pass_rate(&self, max_turns: u32) -> f64 {
        self.pass_by_turn(max_turns)
    }

    /// Mean number of turns to pass among runs that pass within `max_turns`;
    /// `None` when no run passes.
    ///
    /// Closed form: with `q = 1 − p_retry` and `M = max_turns − 1`,
    /// `Σ_{k=2}^{N} k·q^(k−2)·p_retry = G(M) + 1 − q^M` where
    /// `G(M) = Σ_{j=1}^{M} j·q^(j−1)·p_retry = (1 − q^M)/p_retry − M·q^M`.
    pub fn mean_turns_given_pass(&self, max_turns: u32) -> Option<f64> {
        let rate = self.pass_rate(max_turns);
        if rate <= 0.0 || max_turns == 0 {
            return None;
        }
        let m = f64::from(max_turns - 1);
        let p = self.p_retry;
        let later = if p > 0.0 {
            let g = one_minus_pow_q(p, m) / p - m * pow_q(p, m);
            g + one_minus_pow_q(p, m)
        } else {
            0.0
        };
        let numerator = self.ceiling * (self.p_first + (1.0 - self.p_first) * later);
        Some(numerator / rate)
    }

    /// The `level` quantile of turns to pass among runs that pass within
    /// `max_turns`: the least `k` whose conditional CDF
    /// `P(pass by k) / P(pass by max_turns)` reaches `level`. `None` when no
    /// run passes.
    pub fn turn_quantile_given_pass(&self, level: f64, max_turns: u32) -> Option<u32> {
        let rate = self.pass_rate(max_turns);
        if rate <= 0.0 || max_turns == 0 {
            return None;
        }
        let reaches = |k: u32| self.pass_by_turn(k) >= level * rate * (1.0 - 1e-12);
        if reaches(1) {
            return Some(1);
        }
        // (1 − p1)·q^(k−1) ≤ 1 − level·rate/ceiling  ⇔  k − 1 ≥ ln(R/(1 − p1)) / ln q.
        let allowed = 1.0 - level * rate / self.ceiling;
        let guess = if self.p_retry >= 1.0 {
            2
        } else if allowed <= 0.0 || self.p_retry <= 0.0 {
            max_turns
        } else {
            let x = (allowed / (1.0 - self.p_first)).ln() / (-self.p_retry).ln_1p();
            (1.0 + x.ceil().max(1.0)).min(f64::from(max_turns)) as u32
        };
        // The logarithms round; settle the boundary against the definition.
        let mut k = guess.clamp(1, max_turns);
        while k > 1 && reaches(k - 1) {
            k -= 1;
        }
        while k < max_turns && !reaches(k) {
            k += 1;
        }
        Some(k)
    }

    /// Expected number of turns a run takes (passed or not) within `max_turns`:
    /// `Σ_{t=1}^{N} P(turn t is started)`.
    pub fn expected_turns_run(&self, max_turns: u32) -> f64 {
        self.expected_sum_over_started_turns(max_turns, 1.0, 0.0)
    }

    /// Expected cost of one run, in US dollars, when turn `t` costs
    /// `usd_first + usd_growth·(t − 1)` (the prompt grows each turn):
    /// `Σ_{t=1}^{N} P(turn t is started)·(usd_first + usd_growth·(t − 1))`, summed in closed form.
    pub fn expected_usd_per_run(&self, max_turns: u32, usd_first: f64, usd_growth: f64) -> f64 {
        self.expected_sum_over_started_turns(max_turns, usd_first, usd_growth)
    }

    /// `Σ_{t=1}^{N} P(turn t started)·(a + b·(t − 1))` in closed form. For `t ≥ 2`,
    /// `P(turn t started) = (1 − C) + C·(1 − p1)·q^(t−2)`; the arithmetic and
    /// arithmetic-geometric series are summed exactly.
    fn expected_sum_over_started_turns(&self, max_turns: u32, a: f64, b: f64) -> f64 {
        if max_turns == 0 {
            return 0.0;
        }
        let n = f64::from(max_turns);
        let m = n - 1.0; // turns after the first
        let c = self.ceiling;
        let unsolvable = (1.0 - c) * (m * a + b * m * n / 2.0);
        let p = self.p_retry;
        // S0 = Σ_{j=0}^{M−1} q^j, S1 = Σ_{j=0}^{M−1} j·q^j.
        let (s0, s1) = if p > 0.0 {
            let s0 = one_minus_pow_q(p, m) / p;
            let s1 = if m >= 1.0 {
                let mm = m - 1.0;
                let g = one_minus_pow_q(p, mm) / p - mm * pow_q(p, mm);
                (1.0 - p) * g / p
            } else {
                0.0
            };
            (s0, s1)
        } else {
            (m, m * (m - 1.0) / 2.0)
        };
        let solvable = c * (1.0 - self.p_first) * ((a + b) * s0 + b * s1);
        a + unsolvable + solvable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute_mean_turns(m: &PassModel, n: u32) -> f64 {
        let mut num = 0.0;
        let mut den = 0.0;
        for k in 1..=n {
            let q = m.pass_at_turn(k);
            num += f64::from(k) * q;
            den += q;
        }
        num / den
    }

    fn brute_cost(m: &PassModel, n: u32, a: f64, b: f64) -> f64 {
        (1..=n).map(|t| m.still_running_at(t) * (a + b * f64::from(t - 1))).sum()
    }

    #[test]
    fn by_hand_two_turns() {
        // p1 = 0.5, p2 = 0.5, C = 1, N = 2: P(1) = .5, P(2) = .25, rate .75,
        // mean = (1·.5 + 2·.25)/.75 = 4/3.
        let m = PassModel { p_first: 0.5, p_retry: 0.5, ceiling: 1.0 };
        assert_eq!(m.pass_rate(2), 0.75);
        assert!((m.mean_turns_given_pass(2).unwrap() - 4.0 / 3.0).abs() < 1e-15);
        // Conditional CDF: k=1 → 2/3, k=2 → 1. P50 = 1, P90 = 2.
        assert_eq!(m.turn_quantile_given_pass(0.5, 2), Some(1));
        assert_eq!(m.turn_quantile_given_pass(0.9, 2), Some(2));
        // Turns run: 1 + P(still at 2) = 1.5. Cost with a = 1, b = 10: 1 + 0.5·11 = 6.5.
        assert!((m.expected_turns_run(2) - 1.5).abs() < 1e-15);
        assert!((m.expected_usd_per_run(2, 1.0, 10.0) - 6.5).abs() < 1e-12);
    }

    #[test]
    fn by_hand_with_ceiling() {
        // C = 0.5, p1 = 0.2, p2 = 0.5, N = 3.
        // P(1) = .1, P(2) = .5·.8·.5 = .2, P(3) = .5·.8·.25 = .1; rate = .4.
        let m = PassModel { p_first: 0.2, p_retry: 0.5, ceiling: 0.5 };
        assert!((m.pass_rate(3) - 0.4).abs() < 1e-15);
        assert!((m.mean_turns_given_pass(3).unwrap() - (0.1 + 0.4 + 0.3) / 0.4).abs() < 1e-14);
        // Started: t1 = 1, t2 = .9, t3 = .7 → 2.6 turns.
        assert!((m.expected_turns_run(3) - 2.6).abs() < 1e-14);
        // Cost a = 2, b = 1: 1·2 + .9·3 + .7·4 = 7.5
        assert!((m.expected_usd_per_run(3, 2.0, 1.0) - 7.5).abs() < 1e-13);
        // CDF given pass: .25, .75, 1 → P50 = 2, P90 = 3, P25 = 1.
        assert_eq!(m.turn_quantile_given_pass(0.25, 3), Some(1));
        assert_eq!(m.turn_quantile_given_pass(0.5, 3), Some(2));
        assert_eq!(m.turn_quantile_given_pass(0.9, 3), Some(3));
    }

    #[test]
    fn degenerate_models() {
        let never = PassModel { p_first: 0.0, p_retry: 0.0, ceiling: 1.0 };
        assert_eq!(never.pass_rate(15), 0.0);
        assert_eq!(never.mean_turns_given_pass(15), None);
        assert_eq!(never.turn_quantile_given_pass(0.5, 15), None);
        assert_eq!(never.expected_turns_run(15), 15.0);
        let sure = PassModel { p_first: 0.0, p_retry: 1.0, ceiling: 1.0 };
        assert_eq!(sure.mean_turns_given_pass(15), Some(2.0));
        assert_eq!(sure.turn_quantile_given_pass(0.9, 15), Some(2));
        assert_eq!(sure.expected_turns_run(15), 2.0);
        let one_shot_only = PassModel { p_first: 0.4, p_retry: 0.0, ceiling: 1.0 };
        assert_eq!(one_shot_only.mean_turns_given_pass(15), Some(1.0));
    }

    #[test]
    fn best_of_k_by_hand() {
        let m = PassModel { p_first: 0.5, p_retry: 0.2, ceiling: 0.9 }.best_of(2);
        assert!((m.p_first - 0.75).abs() < 1e-15);
        assert!((m.p_retry - 0.36).abs() < 1e-15);
        assert_eq!(m.ceiling, 0.9);
    }

    proptest! {
        #[test]
        fn closed_forms_agree_with_brute_sums(
            p1 in 0.0f64..=1.0, p2 in 0.001f64..=1.0, c in 0.01f64..=1.0, n in 1u32..60,
            a in 0.0f64..5.0, b in 0.0f64..5.0,
        ) {
            let m = PassModel { p_first: p1, p_retry: p2, ceiling: c };
            if m.pass_rate(n) > 1e-9 {
                let mean = m.mean_turns_given_pass(n).unwrap();
                prop_assert!((mean - brute_mean_turns(&m, n)).abs() < 1e-9 * mean.max(1.0));
            }
            let cost = m.expected_usd_per_run(n, a, b);
            let brute = brute_cost(&m, n, a, b);
            prop_assert!((cost - brute).abs() <= 1e-9 * brute.max(1.0), "{} vs {}", cost, brute);
        }

        #[test]
        fn quantile_is_the_least_turn_reaching_the_level(
            p1 in 0.0f64..=1.0, p2 in 0.0f64..=1.0, c in 0.01f64..=1.0, n in 1u32..60, level in 0.01f64..=1.0,
        ) {
            let m = PassModel { p_first: p1, p_retry: p2, ceiling: c };
            let rate = m.pass_rate(n);
            if rate > 1e-9 {
                let k = m.turn_quantile_given_pass(level, n).unwrap();
                let brute = (1..=n).find(|&k| m.pass_by_turn(k) >= level * rate * (1.0 - 1e-12)).unwrap();
                prop_assert_eq!(k, brute);
            }
        }

        #[test]
        fn pass_by_turn_is_a_cdf(p1 in 0.0f64..=1.0, p2 in 0.0f64..=1.0, c in 0.0f64..=1.0, n in 1u32..100) {
            let m = PassModel { p_first: p1, p_retry: p2, ceiling: c };
            prop_assert!(m.pass_by_turn(n + 1) >= m.pass_by_turn(n));
            prop_assert!(m.pass_by_turn(n) <= c + 1e-15);
            let summed: f64 = (1..=n).map(|k| m.pass_at_turn(k)).sum();
            prop_assert!((summed - m.pass_by_turn(n)).abs() < 1e-12);
        }
    }
}
