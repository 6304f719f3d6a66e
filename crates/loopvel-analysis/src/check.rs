//! `loopvel report --check`: are the intervals honest on this data?
//!
//! Split each model's runs at random into halves, estimate from one half, and
//! ask whether the other half's pass rate and mean time to pass land inside
//! the interval predicted for a new sample of that size. Repeated over many
//! seeded splits, the share that land inside should be near 95%; far below
//! means the intervals are too narrow for this data (for example, runs that
//! are not independent).
//!
//! The same check split *by task* fits on the runs of half the tasks and
//! predicts the pass rate of the other half's: the question users ask ("on
//! tasks like these") rather than "on these tasks again". A random split of
//! runs keeps every task on both sides and so cannot notice that tasks differ;
//! the split by task does, and its coverage falls below 95% when they do.
//!
//! The prediction intervals are for a second sample, not for the parameter:
//! pass rate `p̂ ± z·√(p̃(1−p̃)(1/n₁ + 1/n₂))` with the Agresti–Coull `p̃`
//! (so 0/n and n/n still give a width), mean time to pass
//! `m̂ ± t·s·√(1/k₁ + 1/k₂)` over the k passes of each half, with Student's
//! t for `k₁ − 1` degrees of freedom (a handful of passes gives a wide interval, as it should).

use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::interval::mean;
use crate::trace::Run;
use crate::Z95;

/// Coverage of one model's intervals over the splits.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Coverage {
    /// Model name.
    pub model: String,
    /// Splits tried.
    pub splits: usize,
    /// Splits where the held-out pass rate fell inside its predicted interval.
    pub pass_rate_inside: usize,
    /// Splits where both halves had at least 2 passes, so time to pass could be checked.
    pub time_checked: usize,
    /// Of those, splits where the held-out mean time to pass fell inside.
    pub time_inside: usize,
    /// Splits of the model's tasks into halves (needs at least 4 tasks).
    pub task_splits: usize,
    /// Of those, splits where the held-out tasks' pass rate fell inside the interval.
    pub task_pass_rate_inside: usize,
}

/// Hold-out coverage per model over `splits` seeded random halvings.
pub fn holdout(runs: &[Run], splits: usize, seed: u64) -> Vec<Coverage> {
    let names = crate::trace::model_names(runs);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    names
        .iter()
        .map(|name| {
            let mut mine: Vec<&Run> = runs.iter().filter(|r| r.model == *name).collect();
            let mut c = Coverage {
                model: name.to_string(),
                splits: 0,
                pass_rate_inside: 0,
                time_checked: 0,
                time_inside: 0,
                task_splits: 0,
                task_pass_rate_inside: 0,
            };
            if mine.len() < 4 {
                return c;
            }
            let mut tasks = crate::trace::task_names(mine.iter().copied());
            if tasks.len() >= 4 {
                for _ in 0..splits {
                    tasks.shuffle(&mut rng);
                    let fit_tasks = &tasks[..tasks.len() / 2];
                    let (fit, held): (Vec<&Run>, Vec<&Run>) =
                        mine.iter().partition(|r| fit_tasks.contains(&r.task.as_str()));
                    c.task_splits += 1;
                    c.task_pass_rate_inside += usize::from(inside_pass_rate(&fit, &held));
                }
            }
            for _ in 0..splits {
                mine.shuffle(&mut rng);
                let (fit, held) = mine.split_at(mine.len() / 2);
                c.splits += 1;
                if inside_pass_rate(fit, held) {
                    c.pass_rate_inside += 1;
                }
                if let Some(inside) = inside_mean_time(fit, held) {
                    c.time_checked += 1;
                    c.time_inside += usize::from(inside);
                }
            }
            c
        })
        .collect()
}

fn inside_pass_rate(fit: &[&Run], held: &[&Run]) -> bool {
    let (n1, n2) = (fit.len() as f64, held.len() as f64);
    let k1 = fit.iter().filter(|r| r.passed()).count() as f64;
    let k2 = held.iter().filter(|r| r.passed()).count() as f64;
    let p_hat = k1 / n1;
    let z2 = Z95 * Z95;
    let p_tilde = (k1 + z2 / 2.0) / (n1 + z2);
    let half = Z95 * (p_tilde * (1.0 - p_tilde) * (1.0 / n1 + 1.0 / n2)).sqrt();
    (k2 / n2 - p_hat).abs() <= half
}

fn inside_mean_time(fit: &[&Run], held: &[&Run]) -> Option<bool> {
    let times =
        |rs: &[&Run]| -> Vec<f64> { rs.iter().filter_map(|r| r.time_to_pass_s.filter(|_| r.passed())).collect() };
    let (a, b) = (times(fit), times(held));
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let m = mean(&a)?;
    let sd = (a.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (a.len() as f64 - 1.0)).sqrt();
    let t = statrs::distribution::StudentsT::new(0.0, 1.0, a.len() as f64 - 1.0)
        .map(|d| statrs::distribution::ContinuousCDF::inverse_cdf(&d, 0.975))
        .unwrap_or(Z95);
    let half = t * sd * (1.0 / a.len() as f64 + 1.0 / b.len() as f64).sqrt();
    Some((mean(&b)? - m).abs() <= half)
}
