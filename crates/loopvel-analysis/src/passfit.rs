//! Maximum-likelihood fit of the pass-probability model of `calc`
//! (`p_first`, `p_retry`, `ceiling`, see `loopvel_math::hazard`) to runs,
//! with censoring, and profile-likelihood 95% intervals.
//!
//! A run either passed at turn `k`, with likelihood `c·p_f` (k = 1) or
//! `c·(1−p_f)(1−p_r)^(k−2)·p_r`, or stopped without passing after `m` turns
//! (turn budget, wall or cost budget, error), with likelihood
//! `1 − c + c·(1−p_f)(1−p_r)^(m−1)`: either the task was unsolvable or it was
//! solvable and had not passed yet.
//!
//! The fit is expectation–maximisation on "was this task solvable?": the
//! complete-data likelihood splits into three Bernoulli parts whose maximum is
//! a ratio of counts, so each step is exact, never leaves [0, 1], and reaches
//! the boundary (ceiling = 1, p_retry = 0) when the data put the maximum there,
//! where a gradient method on logits would not. No optimisation crate needed.

use crate::CHI2_1_95;

/// Runs summarised by how they ended: the sufficient statistics of the model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnOutcomes {
    /// `passed_at[k − 1]`: runs that passed at turn `k`.
    pub passed_at: Vec<u64>,
    /// `stopped_after[m]`: runs that stopped without passing after `m` turns.
    pub stopped_after: Vec<u64>,
}

impl TurnOutcomes {
    /// Counts one run: `Some(k)` passed at turn `k` (k ≥ 1), or `None` with the turns it ran.
    pub fn add(&mut self, passed_at_turn: Option<u32>, turns_run: u32) {
        match passed_at_turn {
            Some(k) if k >= 1 => bump(&mut self.passed_at, k as usize - 1),
            _ => bump(&mut self.stopped_after, turns_run as usize),
        }
    }

    /// Whether the data say anything about `p_retry`: some run reached a second turn.
    pub fn retries_seen(&self) -> bool {
        self.passed_at.iter().skip(1).any(|&n| n > 0) || self.stopped_after.iter().skip(2).any(|&n| n > 0)
    }

    /// Runs that passed.
    pub fn passes(&self) -> u64 {
        self.passed_at.iter().sum()
    }

    /// All runs.
    pub fn runs(&self) -> u64 {
        self.passes() + self.stopped_after.iter().sum::<u64>()
    }

    /// Log-likelihood of the model at `(p_first, p_retry, ceiling)`.
    pub fn log_likelihood(&self, p: Params) -> f64 {
        let mut ll = 0.0;
        for (i, &n) in self.passed_at.iter().enumerate() {
            if n > 0 {
                let k = i as i32 + 1;
                let f = if k == 1 { p.p_first } else { (1.0 - p.p_first) * (1.0 - p.p_retry).powi(k - 2) * p.p_retry };
                ll += n as f64 * (p.ceiling * f).ln();
            }
        }
        for (m, &n) in self.stopped_after.iter().enumerate() {
            if n > 0 {
                ll += n as f64 * (1.0 - p.ceiling + p.ceiling * solvable_survival(p, m)).ln();
            }
        }
        ll
    }
}

fn bump(v: &mut Vec<u64>, i: usize) {
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] += 1;
}

/// Chance a solvable task has not passed after `m` turns.
fn solvable_survival(p: Params, m: usize) -> f64 {
    if m == 0 {
        1.0
    } else {
        (1.0 - p.p_first) * (1.0 - p.p_retry).powi(m as i32 - 1)
    }
}

/// The model's three parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Chance the first attempt passes (solvable task).
    pub p_first: f64,
    /// Chance a later turn passes given no pass yet (solvable task).
    pub p_retry: f64,
    /// Share of tasks that can be solved at all.
    pub ceiling: f64,
}

impl Params {
    fn get(&self, which: Which) -> f64 {
        match which {
            Which::PFirst => self.p_first,
            Which::PRetry => self.p_retry,
            Which::Ceiling => self.ceiling,
        }
    }
    fn set(&mut self, which: Which, v: f64) {
        match which {
            Which::PFirst => self.p_first = v,
            Which::PRetry => self.p_retry = v,
            Which::Ceiling => self.ceiling = v,
        }
    }
}

/// One of the three parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// `p_first`.
    PFirst,
    /// `p_retry`.
    PRetry,
    /// `ceiling`.
    Ceiling,
}

/// The fit: estimates, log-likelihood at the maximum, and 95% profile intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct PassFit {
    /// Maximum-likelihood estimates.
    pub estimate: Params,
    /// Log-likelihood at the estimate.
    pub log_likelihood: f64,
    /// 95% profile-likelihood interval of `p_first`.
    pub p_first_ci: (f64, f64),
    /// 95% profile-likelihood interval of `p_retry`.
    pub p_retry_ci: (f64, f64),
    /// 95% profile-likelihood interval of `ceiling`.
    pub ceiling_ci: (f64, f64),
}

const MAX_STEPS: usize = 100_000;
const TOLERANCE: f64 = 1e-13;

/// Maximum-likelihood estimates alone (what a bootstrap needs); `None` without passes.
pub fn estimate(data: &TurnOutcomes) -> Option<Params> {
    if data.passes() == 0 {
        return None;
    }
    let start = Params { p_first: 0.5, p_retry: 0.5, ceiling: 0.99 };
    Some(maximise(data, start, None))
}

/// The fit with profile-likelihood intervals; `None` without passes (the
/// model is not identified: no pass says nothing about how fast passes come).
pub fn fit(data: &TurnOutcomes) -> Option<PassFit> {
    let estimate = estimate(data)?;
    let log_likelihood = data.log_likelihood(estimate);
    let ci = |w| profile_interval(data, estimate, log_likelihood, w);
    Some(PassFit {
        estimate,
        log_likelihood,
        p_first_ci: ci(Which::PFirst),
        p_retry_ci: ci(Which::PRetry),
        ceiling_ci: ci(Which::Ceiling),
    })
}

/// Expectation–(conditional) maximisation from `start`; `fixed` holds one
/// parameter where it is (the profile likelihood).
fn maximise(data: &TurnOutcomes, start: Params, fixed: Option<Which>) -> Params {
    let passes = data.passes() as f64;
    let first = data.passed_at.first().copied().unwrap_or(0) as f64;
    let runs = data.runs() as f64;
    // Trials at turns ≥ 2 among passes: a pass at turn k had k − 1 of them.
    let retry_trials_of_passes: f64 =
        data.passed_at.iter().enumerate().skip(1).map(|(i, &n)| n as f64 * i as f64).sum();
    let mut p = start;
    for _ in 0..MAX_STEPS {
        // E: chance each stopped run was on a solvable task.
        let (mut solvable, mut solvable_reached_1, mut solvable_retry_trials) = (0.0, 0.0, 0.0);
        for (m, &n) in data.stopped_after.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let s = p.ceiling * solvable_survival(p, m);
            let denom = 1.0 - p.ceiling + s;
            let w = if denom > 0.0 { s / denom } else { 1.0 };
            solvable += n as f64 * w;
            if m >= 1 {
                solvable_reached_1 += n as f64 * w;
            }
            if m >= 2 {
                solvable_retry_trials += n as f64 * w * (m - 1) as f64;
            }
        }
        // M: each parameter is a ratio of (expected) counts.
        let mut next = p;
        if fixed != Some(Which::Ceiling) {
            next.ceiling = (passes + solvable) / runs;
        }
        if fixed != Some(Which::PFirst) {
            let trials = passes + solvable_reached_1;
            if trials > 0.0 {
                next.p_first = first / trials;
            }
        }
        if fixed != Some(Which::PRetry) {
            let trials = retry_trials_of_passes + solvable_retry_trials;
            if trials > 0.0 {
                next.p_retry = (passes - first) / trials;
            }
        }
        let moved = (next.p_first - p.p_first)
            .abs()
            .max((next.p_retry - p.p_retry).abs())
            .max((next.ceiling - p.ceiling).abs());
        p = next;
        if moved < TOLERANCE {
            break;
        }
    }
    p
}

/// `{v : 2(ℓ̂ − ℓ_profile(v)) ≤ χ²₁(0.95)}`, found by bisection on each side
/// of the estimate; an end sits at 0 or 1 when the data cannot rule that out.
fn profile_interval(data: &TurnOutcomes, best: Params, best_ll: f64, which: Which) -> (f64, f64) {
    let deviance = |v: f64| {
        let mut start = best;
        start.set(which, v);
        let p = maximise(data, start, Some(which));
        let ll = data.log_likelihood(p);
        if ll.is_nan() {
            f64::INFINITY
        } else {
            2.0 * (best_ll - ll)
        }
    };
    let at = best.get(which);
    let end = |edge: f64| {
        if deviance(edge) <= CHI2_1_95 {
            return edge;
        }
        let (mut inside, mut outside) = (at, edge);
        for _ in 0..48 {
            let mid = 0.5 * (inside + outside);
            if deviance(mid) <= CHI2_1_95 {
                inside = mid;
            } else {
                outside = mid;
            }
        }
        0.5 * (inside + outside)
    };
    (end(0.0), end(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(passed_at: &[u64], stopped_after: &[u64]) -> TurnOutcomes {
        TurnOutcomes { passed_at: passed_at.to_vec(), stopped_after: stopped_after.to_vec() }
    }

    #[test]
    fn without_censoring_before_the_budget_the_fit_is_the_ratio_of_counts() {
        // Everyone passes: ceiling 1, p_first = 6/10, p_retry = 4 passes / (4 + 2) retry trials.
        let data = outcomes(&[6, 2, 2], &[]);
        let p = estimate(&data).unwrap();
        assert!((p.ceiling - 1.0).abs() < 1e-9);
        assert!((p.p_first - 0.6).abs() < 1e-9);
        assert!((p.p_retry - 4.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn the_estimate_is_a_maximum() {
        let data = outcomes(&[5, 3, 2, 1, 0], &[0, 0, 0, 0, 0, 6]);
        let fit = fit(&data).unwrap();
        let best = fit.log_likelihood;
        for d in [-0.01, 0.01] {
            for w in [Which::PFirst, Which::PRetry, Which::Ceiling] {
                let mut p = fit.estimate;
                p.set(w, (p.get(w) + d).clamp(0.0, 1.0));
                assert!(data.log_likelihood(p) <= best + 1e-9, "{w:?} {d}");
            }
        }
        for (ci, w) in
            [(fit.p_first_ci, Which::PFirst), (fit.p_retry_ci, Which::PRetry), (fit.ceiling_ci, Which::Ceiling)]
        {
            let v = fit.estimate.get(w);
            assert!(ci.0 <= v && v <= ci.1, "{w:?}: {ci:?} around {v}");
            assert!(ci.1 - ci.0 > 0.01, "{w:?}: an interval from 17 runs is not a point: {ci:?}");
        }
    }

    #[test]
    fn no_pass_means_no_fit() {
        assert_eq!(fit(&outcomes(&[], &[0, 0, 3])), None);
    }
}
