//! `loopvel predict --check`: does `predict` say what then happens?
//!
//! Each split holds out part of the recorded runs — half of each task's runs
//! ("by run"), or half of the tasks with all their runs ("by task", the
//! question users ask of a new task) — fits on the rest exactly as `predict`
//! does (tasks then runs resampled, each resample refitted and simulated),
//! and predicts what the held-out part shows: its pass rate, its mean time
//! to pass, and its empirical best-of-k (the unbiased pass@k from each
//! held-out task's runs). The interval is a *prediction* interval for the
//! held-out statistic: per resample, held-out-sized data are drawn from the
//! fitted model — each held-out task solvable or not, its runs passing with
//! the simulated rate of a solvable task, the mean of the passing times as a
//! mean over the tasks that passed (passes of one task take alike times, and
//! tasks differ as much as the training tasks' mean first-turn times do) — so
//! it carries the fit's uncertainty and the held-out sample's own noise.
//! The share of splits whose observed value falls inside is the coverage; a
//! 95% interval should hold it about 95% of the time.
//!
//! The P90 time to pass is not checked: a held-out half holds a handful of
//! passes, and a P90 of five values is their maximum, not a percentile.

use loopvel_sim::spec::{SimLoop, SimPolicy, SimScenario};
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_distr::{Binomial, Distribution, Normal};

use crate::interval::mean;
use crate::passk::pass_at_k;
use crate::predict::{by_task, sim_model, Resampler};
use crate::trace::Run;

/// What the check is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckQuestion {
    /// Splits of each kind.
    pub splits: usize,
    /// Parameter resamples per split.
    pub resamples: usize,
    /// Simulated runs per resample.
    pub runs: u64,
    /// Seed of everything random.
    pub seed: u64,
    /// Turn budget per run.
    pub max_turns: u32,
    /// Wall-time budget per run, s.
    pub max_wall_s: Option<f64>,
}

/// How one held-out statistic fared over the splits.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PredictCoverage {
    /// The model.
    pub model: String,
    /// `plain` or `best_of_K`.
    pub policy: String,
    /// `pass rate`, `mean time to pass` or `pass@K`.
    pub metric: String,
    /// `runs` (half of each task's runs held out) or `tasks` (half of the tasks).
    pub split: String,
    /// Splits whose observed value fell inside the 95% prediction interval.
    pub inside: usize,
    /// Splits where the value could be checked (a mean time needs a held-out pass).
    pub checked: usize,
}

/// Held-out data drawn from one resample's fit.
struct Drawn {
    pass_rate: f64,
    mean_time: Option<f64>,
    pass_at_k: Option<f64>,
}

/// Per model, the held-out coverage of `predict`'s plain loop and best-of-k.
pub fn check(runs: &[Run], q: &CheckQuestion) -> Vec<PredictCoverage> {
    let mut out = Vec::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(q.seed);
    for model in crate::trace::model_names(runs) {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.model == model).collect();
        let tasks = by_task(&mine);
        for split in ["runs", "tasks"] {
            let mut tally: Vec<(String, String, usize, usize)> = Vec::new();
            for s in 0..q.splits {
                let (train, held) = split_runs(&tasks, split, &mut rng);
                if held.is_empty() || !train.iter().flatten().any(|r| r.passed()) {
                    continue;
                }
                let k = held.iter().map(Vec::len).min().unwrap_or(0).min(8) as u32;
                let predicted = predictive(model, &train, &held, k, q, q.seed ^ (s as u64 * 7919) ^ hash(split));
                let Some(predicted) = predicted else { continue };
                let held_runs: Vec<&Run> = held.iter().flatten().copied().collect();
                let passes: Vec<f64> =
                    held_runs.iter().filter(|r| r.passed()).filter_map(|r| r.time_to_pass_s).collect();
                let observed_rate = held_runs.iter().filter(|r| r.passed()).count() as f64 / held_runs.len() as f64;
                let observed_k = (k >= 2).then(|| held_pass_at_k(&held, k)).flatten();
                let metrics = [
                    ("plain".to_string(), "pass rate".to_string(), Some(observed_rate), predicted.pass_rate),
                    ("plain".to_string(), "mean time to pass".to_string(), mean(&passes), predicted.mean_time),
                    (format!("best_of_{k}"), format!("pass@{k}"), observed_k, predicted.pass_at_k),
                ];
                for (policy, metric, observed, interval) in metrics {
                    let (Some(o), Some([lo, hi])) = (observed, interval) else { continue };
                    let at = match tally.iter().position(|t| t.0 == policy && t.1 == metric) {
                        Some(i) => i,
                        None => {
                            tally.push((policy.clone(), metric.clone(), 0, 0));
                            tally.len() - 1
                        }
                    };
                    tally[at].3 += 1;
                    // A hair of slack for a value equal to an end, printed the same.
                    if o >= lo - 1e-9 && o <= hi + 1e-9 {
                        tally[at].2 += 1;
                    }
                }
            }
            out.extend(tally.into_iter().map(|(policy, metric, inside, checked)| PredictCoverage {
                model: model.to_string(),
                policy,
                metric,
                split: split.to_string(),
                inside,
                checked,
            }));
        }
    }
    out
}

fn hash(s: &str) -> u64 {
    crate::summary::seed_of(s, 5)
}

/// Training and held-out tasks: half of each task's runs, or half of the tasks.
type Split<'a> = (Vec<Vec<&'a Run>>, Vec<Vec<&'a Run>>);

fn split_runs<'a>(tasks: &[Vec<&'a Run>], how: &str, rng: &mut Xoshiro256PlusPlus) -> Split<'a> {
    if how == "tasks" {
        let mut order: Vec<usize> = (0..tasks.len()).collect();
        order.shuffle(rng);
        let (held, train) = order.split_at(tasks.len() / 2);
        return (train.iter().map(|&i| tasks[i].clone()).collect(), held.iter().map(|&i| tasks[i].clone()).collect());
    }
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for t in tasks {
        let mut runs = t.clone();
        runs.shuffle(rng);
        let (h, rest) = runs.split_at(runs.len() / 2);
        if !h.is_empty() {
            held.push(h.to_vec());
        }
        if !rest.is_empty() {
            train.push(rest.to_vec());
        }
    }
    (train, held)
}

/// The unbiased pass@k over held-out tasks, each with its own runs.
fn held_pass_at_k(held: &[Vec<&Run>], k: u32) -> Option<f64> {
    let values: Vec<f64> = held
        .iter()
        .filter_map(|t| pass_at_k(t.len() as u64, t.iter().filter(|r| r.passed()).count() as u64, u64::from(k)))
        .collect();
    mean(&values)
}

/// 95% prediction intervals of the held-out pass rate, mean time to pass and pass@k.
struct Predictive {
    pass_rate: Option<[f64; 2]>,
    mean_time: Option<[f64; 2]>,
    pass_at_k: Option<[f64; 2]>,
}

fn predictive(
    model: &str,
    train: &[Vec<&Run>],
    held: &[Vec<&Run>],
    k: u32,
    q: &CheckQuestion,
    seed: u64,
) -> Option<Predictive> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut drawn: Vec<Drawn> = Vec::new();
    let tests: Vec<f64> = train.iter().flatten().flat_map(|r| r.turns.iter().map(|t| t.test_s)).collect();
    let overheads: Vec<f64> =
        train.iter().flatten().flat_map(|r| r.turns.iter().map(|t| t.overhead_s + t.retry_wait_s)).collect();
    let resampler = Resampler::new(train.to_vec())?;
    for rep in 0..q.resamples.max(1) {
        let Some((sample, f)) = resampler.fit(rep, &mut rng) else { continue };
        let mut policies = vec![SimPolicy::Plain { model: model.to_string() }];
        if k >= 2 {
            policies.push(SimPolicy::BestOf { model: model.to_string(), k });
        }
        let scenario = SimScenario {
            loop_profile: SimLoop {
                test_s: loopvel_math::dist::Dist::constant(mean(&tests).unwrap_or(0.0)),
                overhead_s: mean(&overheads).unwrap_or(0.0).max(0.0),
                max_turns: q.max_turns,
                tests: 1,
                parallel_tests: true,
                flaky: 0.0,
                max_wall_s: q.max_wall_s,
                max_usd: None,
                restart_after: None,
            },
            models: vec![(model.to_string(), sim_model(&f))],
            policies,
        };
        let report = loopvel_sim::simulate(&scenario, q.runs, seed.wrapping_add(rep as u64 + 1), 2);
        let Some((_, plain)) = report.models.first() else { continue };
        let s = &plain.summary;
        let ceiling = f.pass.ceiling.max(1e-12);
        // A solvable task's run passes within the budget with this chance.
        let per_run = (s.pass_rate / ceiling).clamp(0.0, 1.0);
        let within = match (s.mean_time_to_pass_se_s, s.passes) {
            (Some(se), n) if n > 1 => se * (n as f64).sqrt(),
            _ => 0.0,
        };
        // Tasks differ in how long a turn takes (the reply a task calls for, its
        // tests; the simulator's times do not know tasks): the spread over the
        // training tasks of their mean first-turn time adds to it. Every run has
        // a first turn, so it is known where few tasks passed.
        let task_means: Vec<f64> = sample
            .iter()
            .filter_map(|t| mean(&t.iter().filter_map(|r| r.turns.first().map(|u| u.wall_s)).collect::<Vec<_>>()))
            .collect();
        let between = match (mean(&task_means), task_means.len()) {
            (Some(m), n) if n >= 2 => (task_means.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt(),
            _ => 0.0,
        };
        let time_sd = (within * within + between * between).sqrt();
        // Several held-out data sets per resample smooth the interval's ends.
        for _ in 0..10 {
            let mut passes_total = 0u64;
            let mut runs_total = 0u64;
            let mut tasks_passed = 0u64;
            let mut at_k = Vec::new();
            for t in held {
                let n = t.len() as u64;
                let solvable = rng.random::<f64>() < f.pass.ceiling;
                let c = if solvable { Binomial::new(n, per_run).map_or(0, |b| b.sample(&mut rng)) } else { 0 };
                passes_total += c;
                runs_total += n;
                tasks_passed += u64::from(c > 0);
                at_k.extend(pass_at_k(n, c, u64::from(k)));
            }
            let mean_time = s.mean_time_to_pass_s.filter(|_| passes_total > 0).map(|m| {
                // Passes of one task take alike times (its code, its reply's length): the
                // mean of the held-out passes varies as a mean over the tasks that passed.
                let sd = time_sd / (tasks_passed.max(1) as f64).sqrt();
                Normal::new(m, sd.max(1e-12)).map_or(m, |d| d.sample(&mut rng)).max(0.0)
            });
            drawn.push(Drawn {
                pass_rate: passes_total as f64 / runs_total.max(1) as f64,
                mean_time,
                pass_at_k: (k >= 2).then(|| mean(&at_k)).flatten(),
            });
        }
    }
    if drawn.is_empty() {
        return None;
    }
    let interval = |v: Vec<f64>| -> Option<[f64; 2]> {
        // A statistic undefined in most draws (no held-out pass) is not predicted.
        if v.len() * 2 < drawn.len() {
            return None;
        }
        crate::interval::percentile_95(v)
    };
    Some(Predictive {
        pass_rate: interval(drawn.iter().map(|d| d.pass_rate).collect()),
        mean_time: interval(drawn.iter().filter_map(|d| d.mean_time).collect()),
        pass_at_k: interval(drawn.iter().filter_map(|d| d.pass_at_k).collect()),
    })
}
