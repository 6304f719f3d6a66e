//! Two models side by side on the same tasks: per task, the difference in
//! pass rate and in mean time to pass; overall, the mean difference over the
//! tasks both ran, with an interval that resamples tasks (the same tasks for
//! both models: paired) and then runs within each task; and an exact sign
//! test over the tasks where one passes more often.
//!
//! ```
//! use loopvel_analysis::compare::sign_test_p;
//! // 8 tasks favour A, 1 favours B: two-sided exact p = 20/512.
//! assert!((sign_test_p(8, 1) - 20.0 / 512.0).abs() < 1e-12);
//! ```

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::interval::{mean, BOOTSTRAP_REPS};
use crate::trace::Run;

/// Two-sided exact sign test: the chance, with no difference between the
/// models, of a split at least as uneven as `a` against `b` (ties left out).
pub fn sign_test_p(a: u64, b: u64) -> f64 {
    let n = a + b;
    if n == 0 {
        return 1.0;
    }
    let low = a.min(b);
    // P(X ≤ low) for X ~ Binomial(n, 1/2), doubled, at most 1; in logs so large n stays finite.
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0; // ln C(n, 0)
    let mut tail = 0.0;
    for i in 0..=low {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// One task, both models.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TaskDiff {
    /// Task name.
    pub task: String,
    /// A's passes and runs.
    pub a: [u64; 2],
    /// B's passes and runs.
    pub b: [u64; 2],
    /// A's pass rate minus B's.
    pub pass_rate_diff: f64,
    /// A's mean time to pass minus B's, s (both passed at least once).
    pub time_to_pass_diff_s: Option<f64>,
}

/// A against B.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Comparison {
    /// Model A.
    pub a: String,
    /// Model B.
    pub b: String,
    /// Per task both ran, by name.
    pub tasks: Vec<TaskDiff>,
    /// Mean over tasks of A's pass rate minus B's.
    pub pass_rate_diff: f64,
    /// 95%, paired: tasks resampled, then each model's runs within them.
    pub pass_rate_diff_ci: Option<[f64; 2]>,
    /// Mean over tasks both passed of A's mean time to pass minus B's, s.
    pub time_to_pass_diff_s: Option<f64>,
    /// 95%, paired: tasks resampled (those both passed).
    pub time_to_pass_diff_ci: Option<[f64; 2]>,
    /// Tasks where A passes more often.
    pub a_more: usize,
    /// Tasks where B passes more often.
    pub b_more: usize,
    /// Tasks with equal pass rates.
    pub tied: usize,
    /// Exact two-sided sign test over the untied tasks.
    pub sign_test_p: f64,
}

/// Compare `a` and `b` on the tasks both ran; `None` when they share none.
pub fn compare(runs: &[Run], a: &str, b: &str, seed: u64) -> Option<Comparison> {
    let stats = |model: &str, task: &str| -> ([u64; 2], Vec<f64>) {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.model == model && r.task == task).collect();
        let passes = mine.iter().filter(|r| r.passed()).count() as u64;
        let times = mine.iter().filter_map(|r| r.time_to_pass_s).collect();
        ([passes, mine.len() as u64], times)
    };
    let mut tasks: Vec<(TaskDiff, Vec<f64>, Vec<f64>)> = Vec::new();
    for task in crate::trace::task_names(runs) {
        let ((pa, ta), (pb, tb)) = (stats(a, task), stats(b, task));
        if pa[1] == 0 || pb[1] == 0 {
            continue;
        }
        let rate = |p: [u64; 2]| p[0] as f64 / p[1] as f64;
        let time_diff = mean(&ta).zip(mean(&tb)).map(|(x, y)| x - y);
        tasks.push((
            TaskDiff {
                task: task.to_string(),
                a: pa,
                b: pb,
                pass_rate_diff: rate(pa) - rate(pb),
                time_to_pass_diff_s: time_diff,
            },
            ta,
            tb,
        ));
    }
    if tasks.is_empty() {
        return None;
    }
    let diffs: Vec<f64> = tasks.iter().map(|t| t.0.pass_rate_diff).collect();
    let time_diffs: Vec<f64> = tasks.iter().filter_map(|t| t.0.time_to_pass_diff_s).collect();
    // Paired bootstrap: the same resampled tasks for both; within each, each model's runs anew.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let (mut rate_draws, mut time_draws) = (Vec::with_capacity(BOOTSTRAP_REPS), Vec::with_capacity(BOOTSTRAP_REPS));
    let redraw = |rng: &mut Xoshiro256PlusPlus, p: [u64; 2]| -> f64 {
        let rate = p[0] as f64 / p[1] as f64;
        (0..p[1]).filter(|_| rng.random::<f64>() < rate).count() as f64 / p[1] as f64
    };
    for _ in 0..BOOTSTRAP_REPS {
        let mut rate_sum = 0.0;
        let mut times = Vec::new();
        for _ in 0..tasks.len() {
            let (t, _, _) = &tasks[rng.random_range(0..tasks.len())];
            rate_sum += redraw(&mut rng, t.a) - redraw(&mut rng, t.b);
            if let Some(d) = t.time_to_pass_diff_s {
                times.push(d);
            }
        }
        rate_draws.push(rate_sum / tasks.len() as f64);
        if let Some(m) = mean(&times) {
            time_draws.push(m);
        }
    }
    let interval = crate::interval::percentile_95;
    let a_more = diffs.iter().filter(|d| **d > 0.0).count();
    let b_more = diffs.iter().filter(|d| **d < 0.0).count();
    Some(Comparison {
        a: a.to_string(),
        b: b.to_string(),
        pass_rate_diff: mean(&diffs).unwrap_or(0.0),
        pass_rate_diff_ci: interval(rate_draws),
        time_to_pass_diff_s: mean(&time_diffs),
        time_to_pass_diff_ci: if time_diffs.is_empty() { None } else { interval(time_draws) },
        a_more,
        b_more,
        tied: diffs.len() - a_more - b_more,
        sign_test_p: sign_test_p(a_more as u64, b_more as u64),
        tasks: tasks.into_iter().map(|t| t.0).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Outcome;

    #[test]
    fn the_sign_test_is_the_exact_binomial_tail() {
        assert_eq!(sign_test_p(0, 0), 1.0);
        assert!((sign_test_p(3, 0) - 0.25).abs() < 1e-12); // 2 · (1/8)
        assert!((sign_test_p(5, 5) - 1.0).abs() < 1e-12);
        // 10 against 2: 2 · (1 + 12 + 66) / 4096.
        assert!((sign_test_p(10, 2) - 2.0 * 79.0 / 4096.0).abs() < 1e-12);
        assert_eq!(sign_test_p(2, 10), sign_test_p(10, 2));
        assert!(sign_test_p(1000, 1000) > 0.9 && sign_test_p(1000, 0) < 1e-100);
    }

    #[test]
    fn a_model_that_passes_more_tasks_is_ahead_on_each_and_overall() {
        let run = |model: &str, task: &str, pass: bool, t: f64| Run {
            model: model.into(),
            task: task.into(),
            outcome: if pass { Outcome::Pass } else { Outcome::Fail },
            time_to_pass_s: pass.then_some(t),
            ..Run::default()
        };
        let mut runs = Vec::new();
        for task in ["t1", "t2", "t3", "t4"] {
            for i in 0..4 {
                runs.push(run("a", task, i < 3, 10.0));
                runs.push(run("b", task, i < 1, 30.0));
            }
        }
        runs.push(run("b", "only-b", true, 1.0));
        let c = compare(&runs, "a", "b", 1).unwrap();
        assert_eq!(c.tasks.len(), 4, "only the tasks both ran");
        assert!((c.pass_rate_diff - 0.5).abs() < 1e-12);
        assert_eq!((c.a_more, c.b_more, c.tied), (4, 0, 0));
        assert!((c.sign_test_p - 0.125).abs() < 1e-12);
        assert_eq!(c.time_to_pass_diff_s, Some(-20.0));
        let [lo, hi] = c.pass_rate_diff_ci.unwrap();
        assert!(lo > 0.0 && hi <= 1.0, "{lo}–{hi}");
        assert!(compare(&runs, "a", "nobody", 1).is_none());
    }
}
