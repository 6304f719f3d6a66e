//! The pass model of [`crate::passfit`] with tasks in it: a task is solvable
//! (chance `ceiling`) or not, and every run of a solvable task passes turn by
//! turn with `p_first`, then `p_retry`. Runs of one task share its
//! solvability, so a task that failed all five runs is likely unsolvable,
//! and one that passed once is solvable for sure: with several runs per task
//! the ceiling is pinned down, where the fit over exchangeable runs can only
//! trade it off against `p_first`.
//!
//! Fitted by expectation–maximisation on "is this task solvable?", as
//! `passfit` does per run: each step is a ratio of weighted counts. With one
//! run per task the two fits are the same.

use crate::passfit::Params;

/// One run as the pass model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    /// The turn it passed on, if it did.
    pub passed_at: Option<u32>,
    /// Turns it ran.
    pub turns: u32,
}

impl RunOutcome {
    /// Log-likelihood of this run on a solvable task.
    fn ln_solvable(self, p: Params) -> f64 {
        let ln = |x: f64| x.max(1e-300).ln();
        match self.passed_at {
            Some(1) => ln(p.p_first),
            Some(k) => ln(1.0 - p.p_first) + f64::from(k - 2) * ln(1.0 - p.p_retry) + ln(p.p_retry),
            None if self.turns == 0 => 0.0,
            None => ln(1.0 - p.p_first) + f64::from(self.turns - 1) * ln(1.0 - p.p_retry),
        }
    }

    /// First-turn attempts and passes, retry attempts and passes.
    fn counts(self) -> [f64; 4] {
        match self.passed_at {
            Some(1) => [1.0, 1.0, 0.0, 0.0],
            Some(k) => [1.0, 0.0, f64::from(k - 1), 1.0],
            None if self.turns == 0 => [0.0; 4],
            None => [1.0, 0.0, f64::from(self.turns - 1), 0.0],
        }
    }
}

/// The maximum-likelihood `(p_first, p_retry, ceiling)` over tasks, each a
/// list of its runs; `None` when no run passed. When no run reached a second
/// turn `p_retry` is not identified and is set to `p_first`.
///
/// ```
/// use loopvel_analysis::taskfit::{estimate, RunOutcome};
/// let pass = RunOutcome { passed_at: Some(1), turns: 1 };
/// let fail = RunOutcome { passed_at: None, turns: 3 };
/// // Two tasks always pass on turn 1, two never pass: half the tasks are solvable.
/// let tasks = vec![vec![pass; 5], vec![pass; 5], vec![fail; 5], vec![fail; 5]];
/// let p = estimate(&tasks).unwrap();
/// assert!((p.ceiling - 0.5).abs() < 1e-6 && p.p_first > 0.999);
/// ```
pub fn estimate(tasks: &[Vec<RunOutcome>]) -> Option<Params> {
    estimate_with(tasks, None)
}

/// [`estimate`] with the ceiling held at `ceiling` (when `Some`): the most
/// likely `p_first` and `p_retry` for that share of solvable tasks.
pub fn estimate_with(tasks: &[Vec<RunOutcome>], ceiling: Option<f64>) -> Option<Params> {
    let with_pass = tasks.iter().filter(|t| passed(t)).count();
    if with_pass == 0 {
        return None;
    }
    let start = ceiling.unwrap_or((with_pass as f64 / tasks.len() as f64).max(0.5)).clamp(1e-9, 1.0);
    let mut p = Params { p_first: 0.5, p_retry: 0.3, ceiling: start };
    let retries_seen = tasks.iter().flatten().any(|r| r.counts()[2] > 0.0);
    for _ in 0..2000 {
        let (mut weight, mut c) = (0.0, [0.0f64; 4]);
        for (t, w) in tasks.iter().zip(solvable_weights(tasks, p)) {
            weight += w;
            for r in t {
                for (acc, x) in c.iter_mut().zip(r.counts()) {
                    *acc += w * x;
                }
            }
        }
        let next = Params {
            ceiling: if ceiling.is_some() { p.ceiling } else { weight / tasks.len() as f64 },
            p_first: if c[0] > 0.0 { c[1] / c[0] } else { p.p_first },
            p_retry: if retries_seen && c[2] > 0.0 { c[3] / c[2] } else { p.p_retry },
        };
        let moved =
            (next.ceiling - p.ceiling).abs() + (next.p_first - p.p_first).abs() + (next.p_retry - p.p_retry).abs();
        p = next;
        if moved < 1e-12 {
            break;
        }
    }
    if !retries_seen {
        p.p_retry = p.p_first;
    }
    Some(p)
}

fn passed(t: &[RunOutcome]) -> bool {
    t.iter().any(|r| r.passed_at.is_some())
}

/// Per task, the chance that it is solvable under `p`: 1 once any run passed,
/// otherwise the posterior of "solvable" given its failed runs.
pub fn solvable_weights(tasks: &[Vec<RunOutcome>], p: Params) -> Vec<f64> {
    tasks
        .iter()
        .map(|t| {
            if passed(t) {
                return 1.0;
            }
            let ln_s = p.ceiling.max(1e-300).ln() + t.iter().map(|r| r.ln_solvable(p)).sum::<f64>();
            let ln_u = (1.0 - p.ceiling).max(1e-300).ln();
            let m = ln_s.max(ln_u);
            let (s, u) = ((ln_s - m).exp(), (ln_u - m).exp());
            s / (s + u)
        })
        .collect()
}

/// A draw of the share of solvable tasks from its posterior: which tasks are
/// solvable is drawn from `weights` (see [`solvable_weights`]), then the share
/// from Beta(solvable + ½, unsolvable + ½), Jeffreys' prior.
///
/// Why not the bootstrap: over a dozen tasks the share is a proportion of a
/// few units, and a percentile bootstrap of it is too narrow near 0 and 1
/// (3 of 12 solvable resamples to at most 6 of 12 about as often as the
/// truth of one half lies there); Jeffreys' interval is not
/// (`tests/predict_recovery.rs` measures both).
pub fn draw_ceiling(weights: &[f64], rng: &mut rand::rngs::Xoshiro256PlusPlus) -> f64 {
    use rand::RngExt;
    use rand_distr::Distribution;
    let solvable = weights.iter().filter(|&&w| rng.random::<f64>() < w).count() as f64;
    let unsolvable = weights.len() as f64 - solvable;
    match rand_distr::Beta::new(solvable + 0.5, unsolvable + 0.5) {
        Ok(b) => b.sample(rng),
        Err(_) => solvable / weights.len().max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn one_run_per_task_is_the_run_level_fit() {
        // The same likelihood as passfit's when every task has one run.
        let runs = [(Some(1), 1), (Some(3), 3), (None, 5), (None, 5), (Some(2), 2), (None, 2), (Some(1), 1)];
        let tasks: Vec<Vec<RunOutcome>> =
            runs.iter().map(|&(passed_at, turns)| vec![RunOutcome { passed_at, turns }]).collect();
        let ours = estimate(&tasks).unwrap();
        let mut outcomes = crate::passfit::TurnOutcomes::default();
        for &(passed_at, turns) in &runs {
            outcomes.add(passed_at, turns);
        }
        let theirs = crate::passfit::estimate(&outcomes).unwrap();
        let ll = |p| outcomes.log_likelihood(p);
        assert!((ll(ours) - ll(theirs)).abs() < 1e-6, "{ours:?} against {theirs:?}");
    }

    #[test]
    fn several_runs_per_task_pin_the_ceiling_down() {
        // 40 tasks, 30% solvable, p_first 0.6, p_retry 0.3, 5 runs each of up to 4 turns.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        let tasks: Vec<Vec<RunOutcome>> = (0..40)
            .map(|_| {
                let solvable = rng.random::<f64>() < 0.3;
                (0..5)
                    .map(|_| {
                        for turn in 1..=4u32 {
                            let p = if turn == 1 { 0.6 } else { 0.3 };
                            if solvable && rng.random::<f64>() < p {
                                return RunOutcome { passed_at: Some(turn), turns: turn };
                            }
                        }
                        RunOutcome { passed_at: None, turns: 4 }
                    })
                    .collect()
            })
            .collect();
        let p = estimate(&tasks).unwrap();
        assert!((p.ceiling - 0.3).abs() < 0.12, "{p:?}");
        assert!((p.p_first - 0.6).abs() < 0.15, "{p:?}");
        assert!(estimate(&[vec![RunOutcome { passed_at: None, turns: 2 }]]).is_none());
    }
}
