//! pass@k and pass^k per model: from `n` runs of each task, `c` of them
//! passing, the unbiased estimators of Chen et al. 2021 ("Evaluating Large
//! Language Models Trained on Code"), averaged over tasks, with intervals
//! that resample tasks and then runs within each task: runs of one task are
//! not independent (a task a model cannot solve fails every time), and the
//! question is about tasks like these.
//!
//! ```
//! use loopvel_analysis::passk::{pass_at_k, pass_hat_k};
//! // 5 runs, 2 passed: the chance that at least one of 2 fresh runs passes.
//! assert!((pass_at_k(5, 2, 2).unwrap() - 0.7).abs() < 1e-12);
//! // ... and that both do.
//! assert!((pass_hat_k(5, 2, 2).unwrap() - 0.1).abs() < 1e-12);
//! ```

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::interval::BOOTSTRAP_REPS;

/// pass@k from `n` runs with `c` passes: `1 − C(n−c, k) / C(n, k)`, in the
/// product form `1 − Π_{i=0}^{k−1} (n−c−i)/(n−i)`: k factors in [0, 1], so it
/// stays exact for large `n` and costs O(k), not O(c) (a report on thousands
/// of runs per task evaluates it millions of times in its bootstrap).
/// `None` when `k` is 0 or more than `n`.
pub fn pass_at_k(n: u64, c: u64, k: u64) -> Option<f64> {
    if k == 0 || k > n || c > n {
        return None;
    }
    if n - c < k {
        return Some(1.0);
    }
    Some(1.0 - (0..k).map(|i| (n - c - i) as f64 / (n - i) as f64).product::<f64>())
}

/// pass^k (all of k fresh runs pass) from `n` runs with `c` passes:
/// `C(c, k) / C(n, k)`, unbiased. `None` when `k` is 0 or more than `n`.
pub fn pass_hat_k(n: u64, c: u64, k: u64) -> Option<f64> {
    if k == 0 || k > n || c > n {
        return None;
    }
    Some((0..k).map(|i| (c as f64 - i as f64).max(0.0) / (n - i) as f64).product())
}

/// One task's runs of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCounts {
    /// Runs.
    pub runs: u64,
    /// Runs that passed.
    pub passes: u64,
}

/// pass@k and pass^k of one model for one k.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PassK {
    /// k.
    pub k: u64,
    /// Mean over tasks of the unbiased pass@k.
    pub pass_at_k: f64,
    /// 95% interval resampling tasks, then runs within tasks.
    pub pass_at_k_ci: Option<[f64; 2]>,
    /// Mean over tasks of the unbiased pass^k.
    pub pass_hat_k: f64,
    /// 95% interval resampling tasks, then runs within tasks.
    pub pass_hat_k_ci: Option<[f64; 2]>,
}

/// The mean over tasks of `estimator(n, c, k)`.
fn mean_over(tasks: &[TaskCounts], k: u64, estimator: fn(u64, u64, u64) -> Option<f64>) -> Option<f64> {
    let values: Vec<f64> = tasks.iter().filter_map(|t| estimator(t.runs, t.passes, k)).collect();
    (!values.is_empty() && values.len() == tasks.len()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The largest k shown: budgets of more than 10 parallel loops are rare, and
/// a database with thousands of runs per task would otherwise get a row per run.
pub const MAX_K: u64 = 10;

/// pass@k and pass^k for k = 1 … the fewest runs any task has (at most
/// [`MAX_K`]), with two-stage bootstrap intervals (tasks with replacement;
/// then each drawn task's runs with replacement, i.e. its passes drawn anew
/// from its rate).
pub fn pass_k_table(tasks: &[TaskCounts], seed: u64) -> Vec<PassK> {
    let Some(max_k) = tasks.iter().map(|t| t.runs).min().filter(|&k| k > 0).map(|k| k.min(MAX_K)) else {
        return Vec::new();
    };
    let ks: Vec<u64> = (1..=max_k).collect();
    // Each rep: one resampled set of tasks, every k and both estimators on it.
    let mut draws: Vec<Vec<(Option<f64>, Option<f64>)>> = Vec::with_capacity(BOOTSTRAP_REPS);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    for _ in 0..BOOTSTRAP_REPS {
        let sample: Vec<TaskCounts> = (0..tasks.len())
            .map(|_| {
                let t = &tasks[rng.random_range(0..tasks.len())];
                let rate = t.passes as f64 / t.runs as f64;
                // The task's runs drawn anew with replacement: their passes are Binomial(runs, rate),
                // one draw instead of one per run (thousands per task in large databases).
                let passes = rand_distr::Binomial::new(t.runs, rate).map_or(t.passes, |b| rng.sample(b));
                TaskCounts { runs: t.runs, passes }
            })
            .collect();
        draws.push(ks.iter().map(|&k| (mean_over(&sample, k, pass_at_k), mean_over(&sample, k, pass_hat_k))).collect());
    }
    let interval = crate::interval::percentile_95;
    // No task passed ever, or every run of every task did: resampling cannot
    // vary, and a zero-width interval would read as certainty. Wilson's over
    // tasks instead, as if each task's runs all agreed (see summary's rule).
    let (runs, passes) = tasks.iter().fold((0, 0), |(n, c), t| (n + t.runs, c + t.passes));
    let degenerate = passes == 0 || passes == runs;
    let interval = |values: Vec<f64>| {
        if degenerate {
            crate::summary::task_aware_rate(passes, runs, tasks.len(), None)
        } else {
            interval(values)
        }
    };
    ks.iter()
        .enumerate()
        .filter_map(|(i, &k)| {
            Some(PassK {
                k,
                pass_at_k: mean_over(tasks, k, pass_at_k)?,
                pass_at_k_ci: interval(draws.iter().filter_map(|d| d[i].0).collect()),
                pass_hat_k: mean_over(tasks, k, pass_hat_k)?,
                pass_hat_k_ci: interval(draws.iter().filter_map(|d| d[i].1).collect()),
            })
        })
        .collect()
}

/// pass@k within a wall-clock budget: k loops of the model started together
/// on a task, the chance that any is green by `budget_s`. From each task's
/// runs, the number that passed by then (`c_T`) in the same unbiased
/// estimator, averaged over tasks. `times[t]` holds task t's runs' times to
/// pass (`None` for a run that did not pass).
///
/// ```
/// use loopvel_analysis::passk::pass_at_k_within;
/// // One task, 4 runs: green at 10 s and 30 s, two never.
/// let task = vec![Some(10.0), Some(30.0), None, None];
/// assert_eq!(pass_at_k_within(&[task.clone()], 1, 5.0), Some(0.0));
/// assert_eq!(pass_at_k_within(&[task.clone()], 1, 20.0), Some(0.25));
/// assert!((pass_at_k_within(&[task], 2, 40.0).unwrap() - (1.0 - 1.0 / 6.0)).abs() < 1e-12);
/// ```
pub fn pass_at_k_within(times: &[Vec<Option<f64>>], k: u64, budget_s: f64) -> Option<f64> {
    let values: Vec<f64> = times
        .iter()
        .filter_map(|runs| {
            let n = runs.len() as u64;
            let c = runs.iter().filter(|t| t.is_some_and(|t| t <= budget_s)).count() as u64;
            pass_at_k(n, c, k)
        })
        .collect();
    (!values.is_empty() && values.len() == times.len()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `1 − C(n−c, k)/C(n, k)` with exact binomials (small n).
    fn closed_form(n: u64, c: u64, k: u64) -> f64 {
        fn binom(n: u64, k: u64) -> f64 {
            if k > n {
                return 0.0;
            }
            (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
        }
        1.0 - binom(n - c, k) / binom(n, k)
    }

    #[test]
    fn pass_at_k_equals_the_closed_form_including_n_minus_c_below_k() {
        for n in 1..=20u64 {
            for c in 0..=n {
                for k in 1..=n {
                    let got = pass_at_k(n, c, k).unwrap();
                    assert!((got - closed_form(n, c, k)).abs() < 1e-12, "n {n} c {c} k {k}: {got}");
                }
            }
        }
        assert_eq!(pass_at_k(5, 4, 2), Some(1.0), "n − c = 1 < k = 2: every pair holds a pass");
        assert_eq!(pass_at_k(5, 0, 3), Some(0.0));
        assert_eq!(pass_at_k(5, 2, 6), None);
        assert_eq!(pass_at_k(5, 2, 0), None);
        // pass@1 is the pass rate; pass^1 too.
        assert!((pass_at_k(7, 3, 1).unwrap() - 3.0 / 7.0).abs() < 1e-15);
        assert!((pass_hat_k(7, 3, 1).unwrap() - 3.0 / 7.0).abs() < 1e-15);
        assert_eq!(pass_hat_k(5, 2, 3), Some(0.0));
        assert_eq!(pass_hat_k(5, 5, 5), Some(1.0));
    }

    #[test]
    fn within_a_budget_pass_at_k_rises_with_time_to_the_untimed_figure() {
        let tasks: Vec<Vec<Option<f64>>> =
            vec![vec![Some(5.0), Some(50.0), None], vec![None, None, None], vec![Some(1.0), Some(2.0), Some(90.0)]];
        for k in 1..=3 {
            let mut last = 0.0;
            for t in [0.0, 1.0, 3.0, 10.0, 60.0, 100.0] {
                let v = pass_at_k_within(&tasks, k, t).unwrap();
                assert!(v >= last - 1e-15, "k {k}: not rising at {t} s");
                last = v;
            }
            // Past every time, it is plain pass@k.
            let untimed =
                (pass_at_k(3, 2, k).unwrap() + pass_at_k(3, 0, k).unwrap() + pass_at_k(3, 3, k).unwrap()) / 3.0;
            assert!((last - untimed).abs() < 1e-12);
        }
        assert_eq!(pass_at_k_within(&tasks, 4, 10.0), None, "k above the runs per task");
    }

    #[test]
    fn the_table_grows_with_k_and_its_intervals_hold_the_estimate() {
        let tasks: Vec<TaskCounts> =
            [0, 0, 1, 2, 5, 5, 3, 0, 1, 4, 0, 2].iter().map(|&c| TaskCounts { runs: 5, passes: c }).collect();
        let table = pass_k_table(&tasks, 7);
        assert_eq!(table.len(), 5);
        for w in table.windows(2) {
            assert!(w[1].pass_at_k >= w[0].pass_at_k && w[1].pass_hat_k <= w[0].pass_hat_k);
        }
        assert!((table[0].pass_at_k - 23.0 / 60.0).abs() < 1e-12);
        for row in &table {
            let [lo, hi] = row.pass_at_k_ci.unwrap();
            assert!(lo <= row.pass_at_k && row.pass_at_k <= hi, "{row:?}");
        }
        // Same seed, same intervals.
        assert_eq!(pass_k_table(&tasks, 7), table);
    }

    /// Tasks whose difficulty varies (beta over tasks), 12 tasks × 5 runs:
    /// how often the interval of pass@1 holds the true mean pass probability,
    /// against Wilson's on the pooled runs. `cargo test -p loopvel-analysis
    /// --release passk -- --ignored --nocapture` runs 1,000 repetitions.
    /// Coverage of the true mean pass rate by pass@1's interval, by the main
    /// table's (the clustered bootstrap over run indices, with its fallback
    /// where it cannot vary) and by Wilson's over runs.
    fn coverage(reps: u64) -> (f64, f64, f64) {
        let (mean, concentration) = (0.3, 1.5);
        let (a, b) = (mean * concentration, (1.0 - mean) * concentration);
        let beta = rand_distr::Beta::new(a, b).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2026);
        let (mut ours, mut table, mut wilson) = (0u64, 0u64, 0u64);
        let covers = |ci: Option<[f64; 2]>| u64::from(ci.is_some_and(|[lo, hi]| lo <= mean && mean <= hi));
        for rep in 0..reps {
            let tasks: Vec<TaskCounts> = (0..12)
                .map(|_| {
                    let p: f64 = rand_distr::Distribution::sample(&beta, &mut rng);
                    TaskCounts { runs: 5, passes: (0..5).filter(|_| rng.random::<f64>() < p).count() as u64 }
                })
                .collect();
            let pass_k = pass_k_table(&tasks, rep);
            ours += covers(pass_k.first().and_then(|r| r.pass_at_k_ci));
            let passed: Vec<f64> =
                tasks.iter().flat_map(|t| (0..5).map(move |i| if i < t.passes { 1.0 } else { 0.0 })).collect();
            let groups: Vec<Vec<u32>> = (0..12).map(|g| (g * 5..g * 5 + 5).collect()).collect();
            let [ci] = crate::interval::bootstrap_clustered(&groups, crate::interval::BOOTSTRAP_REPS, rep, |idx| {
                [crate::interval::mean(&idx.iter().map(|&i| passed[i as usize]).collect::<Vec<_>>())]
            });
            let passes: u64 = tasks.iter().map(|t| t.passes).sum();
            table += covers(crate::summary::task_aware_rate(passes, 60, 12, ci));
            wilson += covers(crate::interval::wilson(passes, 60).map(|(lo, hi)| [lo, hi]));
        }
        let share = |n: u64| n as f64 / reps as f64;
        (share(ours), share(table), share(wilson))
    }

    #[test]
    fn task_aware_intervals_cover_the_truth_where_wilson_does_not() {
        let (ours, table, wilson) = coverage(200);
        eprintln!(
            "coverage of the true mean over 200 repetitions: pass@1 {ours:.3}, report's pass rate {table:.3}, Wilson {wilson:.3}"
        );
        assert!(ours >= 0.90 && table >= 0.90, "task-aware coverage {ours}, {table}");
        assert!(ours > wilson && table > wilson, "task-aware {ours}, {table} against Wilson {wilson}");
    }

    #[test]
    #[ignore = "1,000 repetitions: run with --release -- --ignored --nocapture"]
    fn task_aware_intervals_cover_the_truth_1000_repetitions() {
        let (ours, table, wilson) = coverage(1000);
        println!(
            "coverage of the true mean over 1,000 repetitions: pass@1 {ours:.3}, report's pass rate {table:.3}, Wilson {wilson:.3}"
        );
        assert!(ours >= 0.93 && table >= 0.93, "task-aware coverage {ours}, {table}");
    }
}
