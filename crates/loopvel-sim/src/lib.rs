//! # loopvel-sim: Monte Carlo simulation of agent loops
//!
//! Brief overview. A [`spec::SimScenario`] (built from a scenario file by
//! `loopvel-scenario`) names the loop, the models and the policies. For each
//! policy, [`simulate`] runs `runs` independent loops:
//! [`engine`] plays one run turn by turn on a clock (sampled first-token
//! times, decode speeds, output lengths and test times; task difficulty drawn
//! per run; flaky tests, thrash, rate limits, budgets), and [`stats::Stats`]
//! folds each run into integer totals. The result is a [`SimReport`].
//!
//! Reproducibility: runs are played in fixed blocks of [`BLOCK`]; block `k` of
//! policy `p` draws from its own random stream, seeded from `(seed, p, k)`, and
//! all totals are integers, so the report is bit-for-bit the same for a given
//! seed whatever the number of threads.
//! Memory does not grow with the number of runs.
//!
//! Architecture invariant: no I/O. Parallelism comes from rayon's global pool
//! (the CLI sizes it).

pub mod engine;
pub mod hist;
pub mod sampler;
pub mod spec;
pub mod stats;

use rand::rngs::Xoshiro256PlusPlus;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::Serialize;

use engine::{LoopRt, ModelRt, Scratch};
use spec::{SimPolicy, SimScenario};
use stats::{Stats, Summary};

/// One policy's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyResult {
    /// `plain`, `best_of`, `race` or `escalate`.
    pub kind: &'static str,
    /// Models involved.
    pub models: Vec<String>,
    /// Candidates per turn (best-of-k).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
    /// Turns before escalating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<u32>,
    /// The statistics.
    #[serde(flatten)]
    pub summary: Summary,
    /// Success-by-time curve on the report's grid: `[t_s, F(t)]`, F = share of all runs passed by t.
    pub curve: Vec<[f64; 2]>,
    #[serde(skip)]
    stats: Stats,
}

/// The whole simulation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// Runs per policy.
    pub runs: u64,
    /// The seed.
    pub seed: u64,
    /// Turns simulated over all policies.
    pub turns_simulated: u64,
    /// Relative error of reported time quantiles and curve times.
    pub quantile_relative_error: f64,
    /// Plain loops, by model name.
    pub models: Vec<(String, PolicyResult)>,
    /// Other policies, by name.
    pub policies: Vec<(String, PolicyResult)>,
}

/// Runs per random stream. Fixed, so the blocks (and what they draw) do not
/// depend on the number of threads.
pub const BLOCK: u64 = 1024;

/// The random stream of block `block` of policy `policy`: SplitMix64 over the
/// three numbers, so that streams do not overlap in practice and do not
/// depend on which thread runs them.
pub fn stream(seed: u64, policy: u64, block: u64) -> Xoshiro256PlusPlus {
    #[inline]
    fn splitmix(z: u64) -> u64 {
        let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    // The state is four SplitMix64 outputs of the run's key, as Xoshiro's authors recommend.
    let key = splitmix(splitmix(splitmix(seed) ^ policy) ^ block);
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_exact_mut(8).enumerate() {
        chunk
            .copy_from_slice(&splitmix(key.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))).to_le_bytes());
    }
    Xoshiro256PlusPlus::from_seed(bytes)
}

fn simulate_policy(
    policy: &SimPolicy,
    index: u64,
    models: &[(String, ModelRt)],
    lp: &LoopRt,
    runs: u64,
    seed: u64,
) -> Stats {
    let rt = |name: &str| models.iter().find(|(n, _)| n == name).map(|(_, m)| m.clone());
    let (a, b) = match policy {
        SimPolicy::Plain { model } | SimPolicy::BestOf { model, .. } => (rt(model), None),
        SimPolicy::Race { a, b } => (rt(a), rt(b)),
        SimPolicy::Escalate { from, to, .. } => (rt(from), rt(to)),
    };
    let Some(a) = a else {
        return Stats::new(lp.max_turns);
    };
    let scores =
        a.has_scores() && b.as_ref().is_none_or(ModelRt::has_scores) && !matches!(policy, SimPolicy::Race { .. });
    let blocks = runs.div_ceil(BLOCK);
    (0..blocks as usize)
        .into_par_iter()
        .fold(
            || (Stats::new(lp.max_turns), Scratch::default()),
            |(mut stats, mut scratch), block| {
                // One random stream per fixed block of runs: which thread plays a
                // block never changes what it draws.
                let mut rng = stream(seed, index, block as u64);
                let first = block as u64 * BLOCK;
                for _ in first..(first + BLOCK).min(runs) {
                    let record = match (policy, &b) {
                        (SimPolicy::Plain { .. }, _) => engine::run_best_of(&a, lp, 1, &mut rng, &mut scratch),
                        (SimPolicy::BestOf { k, .. }, _) => engine::run_best_of(&a, lp, *k, &mut rng, &mut scratch),
                        (SimPolicy::Race { .. }, Some(b)) => engine::run_race(&a, b, lp, &mut rng, &mut scratch),
                        (SimPolicy::Escalate { after, .. }, Some(b)) => {
                            engine::run_escalate(&a, b, lp, *after, &mut rng, &mut scratch)
                        }
                        _ => engine::run_best_of(&a, lp, 1, &mut rng, &mut scratch),
                    };
                    stats.add(&record, scores.then_some(scratch.scores.as_slice()));
                }
                (stats, scratch)
            },
        )
        .map(|(stats, _)| stats)
        .reduce(|| Stats::new(lp.max_turns), Stats::merge)
}

/// Simulate every policy of the scenario, `runs` runs each.
pub fn simulate(scenario: &SimScenario, runs: u64, seed: u64, curve_points: usize) -> SimReport {
    let lp = LoopRt::new(&scenario.loop_profile);
    let tests = scenario.loop_profile.tests;
    // Samplers (and their quantile tables) once per model, in parallel.
    let models: Vec<(String, ModelRt)> =
        scenario.models.par_iter().map(|(name, m)| (name.clone(), ModelRt::new(m))).collect();
    let mut results: Vec<(String, PolicyResult)> = scenario
        .policies
        .iter()
        .enumerate()
        .map(|(i, policy)| {
            let stats = simulate_policy(policy, i as u64, &models, &lp, runs, seed);
            let (kind, models, k, after) = match policy {
                SimPolicy::Plain { model } => ("plain", vec![model.clone()], None, None),
                SimPolicy::BestOf { model, k } => ("best_of", vec![model.clone()], Some(*k), None),
                SimPolicy::Race { a, b } => ("race", vec![a.clone(), b.clone()], None, None),
                SimPolicy::Escalate { from, to, after } => {
                    ("escalate", vec![from.clone(), to.clone()], None, Some(*after))
                }
            };
            let result =
                PolicyResult { kind, models, k, after, summary: stats.summary(tests), curve: Vec::new(), stats };
            (policy.name(), result)
        })
        .collect();
    let grid = curve_grid(results.iter().map(|(_, r)| &r.stats), curve_points);
    for (_, r) in &mut results {
        r.curve = grid.iter().map(|&t| [t, r.stats.passed_by(t)]).collect();
    }
    let turns_simulated = results.iter().map(|(_, r)| r.stats.turns_simulated()).sum();
    let (models, policies) = results.into_iter().partition(|(_, r)| r.kind == "plain");
    SimReport { runs, seed, turns_simulated, quantile_relative_error: hist::RELATIVE_ERROR, models, policies }
}

/// `points` evenly spaced times from 0 to a little past the latest 99th
/// percentile of time to pass over all policies.
fn curve_grid<'a>(stats: impl Iterator<Item = &'a Stats>, points: usize) -> Vec<f64> {
    let end = stats.filter_map(|s| s.pass_time_quantile(0.99)).fold(0.0, f64::max) * 1.05;
    let points = points.max(2);
    if end <= 0.0 {
        return vec![0.0];
    }
    (0..points).map(|i| end * i as f64 / (points - 1) as f64).collect()
}

impl PolicyResult {
    /// Share of all runs that passed by `t` seconds (±0.5% in time).
    pub fn share_passed_by(&self, t: f64) -> f64 {
        self.stats.passed_by(t)
    }
}

impl SimReport {
    /// Every result, plain loops first.
    pub fn all(&self) -> impl Iterator<Item = &(String, PolicyResult)> {
        self.models.iter().chain(&self.policies)
    }
}

/// Which simulated model reaches green first, under the same rule as `calc`:
/// among models whose pass rate is within `margin` of the best, the lowest
/// mean time to pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimVerdict {
    /// The winning model.
    pub winner: Option<String>,
    /// The next model (competent first, then the rest).
    pub runner_up: Option<String>,
    /// Runner-up's mean time to pass over the winner's.
    pub ratio: Option<f64>,
    /// Models within the margin of the best pass rate.
    pub competent: Vec<String>,
    /// The quickest competent option across models and policies.
    pub best_policy: Option<String>,
    /// The verdict for people.
    pub text: String,
}

type Ranked<'a> = Vec<&'a (String, PolicyResult)>;

/// Results split into those within `margin` of the best pass rate and the rest, each by mean time to pass.
fn rank(results: &[(String, PolicyResult)], margin: f64) -> (Ranked<'_>, Ranked<'_>) {
    let best = results.iter().map(|(_, r)| r.summary.pass_rate).fold(0.0, f64::max);
    let by_mean = |v: &mut Ranked<'_>| {
        v.retain(|(_, r)| r.summary.mean_time_to_pass_s.is_some());
        v.sort_by(|a, b| {
            let m = |x: &PolicyResult| x.summary.mean_time_to_pass_s.unwrap_or(f64::INFINITY);
            m(&a.1).total_cmp(&m(&b.1))
        });
    };
    let (mut competent, mut rest): (Vec<_>, Vec<_>) =
        results.iter().partition(|(_, r)| r.summary.pass_rate >= best - margin);
    by_mean(&mut competent);
    by_mean(&mut rest);
    (competent, rest)
}

impl SimReport {
    /// The verdict under a pass-rate `margin` (e.g. 0.05).
    pub fn verdict(&self, margin: f64) -> SimVerdict {
        use loopvel_math::units::{factor, percent, seconds};
        let (competent, rest) = rank(&self.models, margin);
        let all: Vec<(String, PolicyResult)> = self.all().cloned().collect();
        let (best_all, _) = rank(&all, margin);
        let winner = competent.first().copied();
        let runner = competent.get(1).or_else(|| rest.first()).copied();
        let ratio = match (winner, runner) {
            (Some(w), Some(r)) => Some(
                r.1.summary.mean_time_to_pass_s.unwrap_or(f64::NAN)
                    / w.1.summary.mean_time_to_pass_s.unwrap_or(f64::NAN),
            ),
            _ => None,
        };
        let describe = |(n, r): &(String, PolicyResult)| {
            let s = &r.summary;
            format!(
                "{n} (pass rate {} ± {:.2}%, mean time to pass {} ± {})",
                percent(s.pass_rate),
                100.0 * s.pass_rate_se,
                s.mean_time_to_pass_s.map_or("n/a".into(), seconds),
                s.mean_time_to_pass_se_s.map_or("n/a".into(), seconds)
            )
        };
        let mut text = match (winner, runner) {
            (Some(w), Some(r)) if competent.len() > 1 => format!(
                "{} reaches green first: {} against {}, {} sooner.",
                w.0,
                describe(w),
                describe(r),
                ratio.map_or("?".into(), factor)
            ),
            (Some(w), Some(r)) => format!(
                "{} is the one to pick: {}. {} is left out of the race for speed: {}, more than {} points below the best.",
                w.0,
                describe(w),
                r.0,
                describe(r),
                (margin * 100.0).round()
            ),
            (Some(w), None) => format!("Only {}: {}.", w.0, describe(w)),
            _ => "No model passed any run.".to_string(),
        };
        if let Some(b) = best_all.first() {
            if Some(&b.0) != winner.map(|w| &w.0) {
                text.push_str(&format!(" Across policies, {} is quickest: {}.", b.0, describe(b)));
            }
        }
        text.push_str(" ± values are one Monte Carlo standard error.");
        SimVerdict {
            winner: winner.map(|w| w.0.clone()),
            runner_up: runner.map(|r| r.0.clone()),
            ratio,
            competent: competent.iter().map(|(n, _)| n.clone()).collect(),
            best_policy: best_all.first().map(|(n, _)| n.clone()),
            text,
        }
    }
}
