//! `loopvel predict`: the fitted loop parameters, with their uncertainty,
//! through the simulator, to rank models and policies for a stated budget.
//!
//! Uncertainty: the runs of each model are resampled (bootstrap: tasks with
//! replacement, then each drawn task's runs with replacement, since runs of
//! one task are not independent) and every parameter refitted per resample; each resample becomes a simulator
//! scenario; each policy is simulated on it. A prediction interval is the
//! 2.5–97.5% range of a metric over resamples, so it carries both the
//! uncertainty of the fit and (a little) Monte Carlo noise.
//!
//! What is fitted per model (and refitted per resample):
//! - the pass model with tasks in it ([`crate::taskfit`]): a task is solvable
//!   or not, shared by every run of it, so best-of-k and escalations gain only
//!   on the tasks a model can solve at all;
//! - time by turn ([`crate::turntime`]): the prompt grows by turn, the first
//!   token waits for its prefill, and a passing reply has its own length, so a
//!   turn-1 pass costs a turn-1 time.
//!
//! Simplifications, stated so a reader can weigh them:
//! - cost per turn is the observed mean cost per turn of that model (prompt
//!   growth across turns is inside that mean, not modelled apart);
//! - retry waits are folded into the per-turn overhead;
//! - the test time is one lognormal fitted to all recorded test runs (the
//!   tests are the same whichever model wrote the code);
//! - turns beyond the most any recorded run took are an extrapolation of the
//!   fitted pass model, and the answer says so.

use loopvel_math::dist::Dist;
use loopvel_sim::spec::{Quality, SimLoop, SimModel, SimPolicy, SimScenario};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::interval::{mean, quantile_sorted};
use crate::lognormal::LognormalFit;
use crate::passfit;
use crate::summary::turn_outcomes;
use crate::taskfit::{self, RunOutcome};
use crate::trace::Run;
use crate::turntime::TurnTime;

/// What the user asks.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// Turn budget per run (default: the most turns any recorded run took).
    pub max_turns: Option<u32>,
    /// Wall-time budget per run, s.
    pub max_wall_s: Option<f64>,
    /// Cost budget per run, USD.
    pub max_usd: Option<f64>,
    /// Parameter resamples.
    pub resamples: usize,
    /// Simulated runs per policy and resample.
    pub runs: u64,
    /// Seed of everything random.
    pub seed: u64,
    /// Largest best-of-k.
    pub max_k: u32,
    /// Changes to the fitted world, applied to every resample.
    pub what_ifs: Vec<WhatIf>,
}

/// One what-if: set or scale one parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct WhatIf {
    /// `None` for the loop, or a model name.
    pub model: Option<String>,
    /// `tokens_per_s`, `ttft_s`, `output_tokens`, `usd_per_turn` (models), `test_s`, `overhead_s` (loop).
    pub field: String,
    /// The change.
    pub change: Change,
}

/// Set a value or multiply it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// Replace with this value.
    Set(f64),
    /// Multiply by this factor.
    Scale(f64),
}

/// Model fields a what-if may change.
pub const MODEL_FIELDS: [&str; 8] = [
    "tokens_per_s",
    "ttft_s",
    "prefill_tokens_per_s",
    "output_tokens",
    "usd_per_turn",
    "p_first",
    "p_retry",
    "ceiling",
];
/// Loop fields a what-if may change.
pub const LOOP_FIELDS: [&str; 2] = ["test_s", "overhead_s"];

/// A metric over resamples: median and 95% range.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Predicted {
    /// Median over resamples.
    pub value: f64,
    /// 2.5% and 97.5% points over resamples.
    pub interval: [f64; 2],
}

/// One policy's predictions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PolicyPrediction {
    /// Policy name, as `calc` and `simulate` name them.
    pub policy: String,
    /// Share of runs passing within the budget.
    pub pass_rate: Predicted,
    /// Mean time to pass among passes, s.
    pub mean_time_to_pass_s: Option<Predicted>,
    /// Cost per solved task, USD.
    pub usd_per_solved: Option<Predicted>,
    /// Share of resamples where this policy had the highest pass rate.
    pub best_pass_rate_share: f64,
    /// Share of resamples where it had the lowest mean time to pass.
    pub best_time_share: f64,
    /// Share of resamples where it had the lowest cost per solved task.
    pub best_cost_share: f64,
    /// Share of resamples where it tied for the highest pass rate (an exactly
    /// equal value: such a resample has no winner, so it counts in no `best_*_share`).
    pub tied_best_pass_rate_share: f64,
    /// Share of resamples where it tied for the lowest mean time to pass.
    pub tied_best_time_share: f64,
    /// Share of resamples where it tied for the lowest cost per solved task.
    pub tied_best_cost_share: f64,
}

/// One turn of a model's fitted time profile, beside what was recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TurnProfile {
    /// The turn.
    pub turn: u32,
    /// Fitted prompt tokens.
    pub input_tokens: f64,
    /// Fitted mean time to first token, s.
    pub ttft_s: f64,
    /// Fitted mean model time of a failing turn, s.
    pub model_s: f64,
    /// Recorded turns at this index.
    pub recorded: usize,
    /// Their mean time to first token, s.
    pub recorded_ttft_s: Option<f64>,
    /// Their mean model time, s.
    pub recorded_model_s: Option<f64>,
}

/// Per-model facts that shape the answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelFacts {
    /// Model name.
    pub model: String,
    /// Fitted pass model over tasks: `[p_first, p_retry, ceiling]`.
    pub pass_model: [f64; 3],
    /// Fitted prompt processing speed, tokens/s (`None`: no growth of the first token's wait with the prompt).
    pub prefill_tokens_per_s: Option<f64>,
    /// Fitted mean output tokens of failing and of passing turns.
    pub output_tokens: [Option<f64>; 2],
    /// Time by turn, fitted and recorded.
    pub turns: Vec<TurnProfile>,
    /// The recorded runs' pass rate (the plain loop, as run).
    pub observed_pass_rate: f64,
    /// The recorded runs' mean time to pass, s.
    pub observed_mean_time_to_pass_s: Option<f64>,
    /// Fitted model time per turn (TTFT + generation), s.
    pub model_s_per_turn: f64,
    /// Test time per turn, s.
    pub test_s_per_turn: f64,
    /// True when tests take longer than the model: the tests bound this loop.
    pub tests_bound: bool,
    /// Most the turn can shrink if the model became infinitely fast (Amdahl), as a factor.
    pub amdahl_limit: Option<f64>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// Every policy, in the order simulated.
    pub policies: Vec<PolicyPrediction>,
    /// Best policy by pass rate (median), by mean time to pass, by cost per solved task.
    pub best_pass_rate: Option<String>,
    /// Lowest mean time to pass.
    pub best_time: Option<String>,
    /// Lowest cost per solved task.
    pub best_cost: Option<String>,
    /// Policies tied with `best_pass_rate` in every resample (exactly equal
    /// and best together): a tie, not a winner.
    pub best_pass_rate_tied_with: Vec<String>,
    /// Policies tied with `best_time` in every resample.
    pub best_time_tied_with: Vec<String>,
    /// Policies tied with `best_cost` in every resample.
    pub best_cost_tied_with: Vec<String>,
    /// Per-model facts.
    pub models: Vec<ModelFacts>,
    /// Turn budget used.
    pub max_turns: u32,
    /// Caveats: extrapolation, models left out.
    pub notes: Vec<String>,
}

/// Why a prediction cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredictError(pub String);

impl std::fmt::Display for PredictError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One model's parameters as fitted from one (re)sample of its runs.
#[derive(Debug, Clone)]
pub(crate) struct Fitted {
    pub(crate) pass: passfit::Params,
    pub(crate) time: TurnTime,
    pub(crate) usd_per_turn: f64,
}

fn outcomes(tasks: &[Vec<&Run>]) -> Vec<Vec<RunOutcome>> {
    tasks
        .iter()
        .map(|t| {
            t.iter()
                .map(|r| RunOutcome { passed_at: r.passed().then(|| r.turn_count()), turns: r.turn_count() })
                .collect()
        })
        .collect()
}

/// The fit over tasks, each a list of its runs (a task drawn twice in a
/// resample is two tasks). No run reaching turn 2 leaves `p_retry` at `p_first`.
pub(crate) fn fit_runs(tasks: &[Vec<&Run>]) -> Option<Fitted> {
    fit_runs_with(tasks, None)
}

/// [`fit_runs`] with the share of solvable tasks held at `ceiling` when given.
fn fit_runs_with(tasks: &[Vec<&Run>], ceiling: Option<f64>) -> Option<Fitted> {
    let pass = taskfit::estimate_with(&outcomes(tasks), ceiling)?;
    let time = TurnTime::fit(tasks.iter().flatten().copied())?;
    let usd_per_turn = mean(&tasks.iter().flatten().flat_map(|r| r.turns.iter().map(|t| t.usd)).collect::<Vec<_>>())?;
    Some(Fitted { pass, time, usd_per_turn })
}

/// One model's recorded tasks, and how each resample of them is fitted.
///
/// Resample 0 is the data as recorded. Every other resample draws tasks, then
/// runs within each drawn task ([`pick`]), and refits everything from them but
/// the share of solvable tasks: that is drawn from its posterior given the
/// recorded tasks ([`taskfit::draw_ceiling`]), and the rest is fitted with it
/// held. A percentile bootstrap of a proportion over a dozen tasks is too
/// narrow near 0 and 1, and best-of-k's pass rate is nearly that proportion:
/// measured by `tests/predict_recovery.rs`, best-of-4's interval held the
/// truth 91.5% of the time when the ceiling was bootstrapped with the rest.
pub(crate) struct Resampler<'a> {
    tasks: Vec<Vec<&'a Run>>,
    solvable: Vec<f64>,
}

impl<'a> Resampler<'a> {
    /// `None` when the recorded runs cannot be fitted.
    pub(crate) fn new(tasks: Vec<Vec<&'a Run>>) -> Option<Self> {
        let recorded = outcomes(&tasks);
        let p = taskfit::estimate(&recorded)?;
        let solvable = taskfit::solvable_weights(&recorded, p);
        Some(Resampler { tasks, solvable })
    }

    /// Resample `rep`'s tasks and their fit (`None`: this resample cannot be fitted).
    pub(crate) fn fit(&self, rep: usize, rng: &mut Xoshiro256PlusPlus) -> Option<(Vec<Vec<&'a Run>>, Fitted)> {
        let sample = pick(&self.tasks, rep, rng);
        // Every task passed at least once: no evidence of an unsolvable task, and the
        // share is held at 1, as the modified Jeffreys interval puts its upper end at 1
        // when every unit succeeded (Brown, Cai & DasGupta 2001). Drawing it below 1
        // would also split policies that are equal here (every one passes every
        // solvable task) by Monte Carlo noise alone, naming a winner that is not one.
        let informative = self.solvable.iter().any(|w| *w < 1.0);
        let ceiling = (rep > 0 && informative).then(|| taskfit::draw_ceiling(&self.solvable, rng));
        let f = fit_runs_with(&sample, ceiling)?;
        Some((sample, f))
    }
}

/// A model's runs as its tasks, each a list of its runs.
pub(crate) fn by_task<'a>(runs: &[&'a Run]) -> Vec<Vec<&'a Run>> {
    crate::trace::task_names(runs.iter().copied())
        .iter()
        .map(|t| runs.iter().copied().filter(|r| r.task == *t).collect())
        .collect()
}

fn lognormal_dist(f: &LognormalFit, scale: f64) -> Dist {
    let (median, p90) = (f.median() * scale, f.p90() * scale);
    if (p90 - median).abs() <= f64::EPSILON * median.abs() {
        Dist::constant(median)
    } else {
        Dist::LogNormal { median, p90 }
    }
}

fn apply(value: f64, change: Option<Change>) -> f64 {
    match change {
        None => value,
        Some(Change::Set(v)) => v,
        Some(Change::Scale(f)) => value * f,
    }
}

/// Predicts for every model in `runs` with enough passes to fit.
pub fn predict(runs: &[Run], q: &Question) -> Result<Prediction, PredictError> {
    let names = crate::trace::model_names(runs);
    for w in &q.what_ifs {
        if let Some(m) = &w.model {
            if !names.contains(&m.as_str()) {
                return Err(PredictError(format!(
                    "--what-if names model {m:?}, which has no runs in the database; models: {}",
                    names.join(", ")
                )));
            }
        }
    }
    let mut notes = Vec::new();
    let by_model: Vec<(String, Vec<&Run>, Resampler)> = names
        .iter()
        .filter_map(|name| {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.model == *name).collect();
            let passes = mine.iter().filter(|r| r.passed()).count() as u64;
            if passes < crate::MIN_PASSES_TO_FIT {
                notes.push(format!(
                    "{name} left out: {passes} passes, fewer than the {} needed to fit it",
                    crate::MIN_PASSES_TO_FIT
                ));
                None
            } else if let Some(resampler) = Resampler::new(by_task(&mine)).filter(|r| fit_runs(&r.tasks).is_some()) {
                if !turn_outcomes(mine.iter().copied()).retries_seen() {
                    notes.push(format!("{name}: no run reached a second turn; p_retry is assumed equal to p_first"));
                }
                Some((name.to_string(), mine, resampler))
            } else {
                // Enough passes, but no spread to fit times from (e.g. every reply
                // arrived in one chunk, so no decode speed was measured).
                notes.push(format!(
                    "{name} left out: its turns lack the time to first token or decode speed (two or more measured \
                     turns are needed) to simulate its loop"
                ));
                None
            }
        })
        .collect();
    if by_model.is_empty() {
        return Err(PredictError(format!(
            "no model can be fitted ({}); record more runs (loopvel run --runs N) before predicting",
            notes.join("; ")
        )));
    }
    let observed_max = runs.iter().map(|r| r.turn_count()).max().unwrap_or(1);
    let max_turns = q.max_turns.unwrap_or(observed_max).max(1);
    if max_turns > observed_max {
        notes.push(format!(
            "a budget of {max_turns} turns is beyond the {observed_max} any recorded run took: the pass model is extrapolated"
        ));
    }
    let test_times: Vec<f64> = runs.iter().flat_map(|r| r.turns.iter().map(|t| t.test_s)).collect();
    let overheads: Vec<f64> = runs.iter().flat_map(|r| r.turns.iter().map(|t| t.overhead_s + t.retry_wait_s)).collect();
    let all: Vec<&Run> = runs.iter().collect();
    let policies = policy_list(&by_model.iter().map(|(n, ..)| n.clone()).collect::<Vec<_>>(), max_turns, q.max_k);

    let loop_change =
        |field: &str| q.what_ifs.iter().rev().find(|w| w.model.is_none() && w.field == field).map(|w| w.change);
    let model_change = |name: &str, field: &str| {
        q.what_ifs.iter().rev().find(|w| w.model.as_deref() == Some(name) && w.field == field).map(|w| w.change)
    };

    // Resample 0 is the data as recorded; the rest are bootstrap resamples.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(q.seed);
    let mut per_policy: Vec<Vec<[f64; 3]>> = vec![Vec::new(); policies.len()];
    let mut facts = Vec::new();
    let all_tasks = by_task(&all);
    for rep in 0..q.resamples.max(1) {
        let mut models = Vec::new();
        let mut complete = true;
        for (name, mine, resampler) in &by_model {
            let Some((_, f)) = resampler.fit(rep, &mut rng) else {
                complete = false;
                break;
            };
            let c = |field: &str| model_change(name, field);
            let (model, scales) = build_model(&f, &c);
            let Scales { ttft: ttft_scale, speed: speed_scale, output: out_scale } = scales;
            if rep == 0 {
                // The recorded mean split into first-token and generation time (the
                // lognormal means overstate it when a few long prompts make a heavy tail).
                let turns: Vec<_> = mine.iter().flat_map(|r| r.turns.iter()).collect();
                let ttft_mean = mean(&turns.iter().filter_map(|t| t.ttft_s).collect::<Vec<_>>()).unwrap_or(0.0);
                let gen_mean =
                    mean(&turns.iter().map(|t| (t.model_s - t.ttft_s.unwrap_or(0.0)).max(0.0)).collect::<Vec<_>>())
                        .unwrap_or(0.0)
                        * out_scale;
                let model_s = ttft_mean * ttft_scale + gen_mean / speed_scale;
                let test = apply(mean(&test_times).unwrap_or(0.0), loop_change("test_s"));
                let profile = (1..=max_turns)
                    .map(|n| {
                        let at: Vec<_> = turns.iter().filter(|t| t.turn == n).collect();
                        TurnProfile {
                            turn: n,
                            input_tokens: f.time.input_of_turn(n),
                            ttft_s: f.time.ttft_of_turn(n),
                            model_s: f.time.model_s_of_turn(n, false),
                            recorded: at.len(),
                            recorded_ttft_s: mean(&at.iter().filter_map(|t| t.ttft_s).collect::<Vec<_>>()),
                            recorded_model_s: mean(&at.iter().map(|t| t.model_s).collect::<Vec<_>>()),
                        }
                    })
                    .collect();
                let passing: Vec<f64> = mine.iter().filter(|r| r.passed()).filter_map(|r| r.time_to_pass_s).collect();
                facts.push(ModelFacts {
                    model: name.clone(),
                    pass_model: [f.pass.p_first, f.pass.p_retry, f.pass.ceiling],
                    prefill_tokens_per_s: f.time.prefill_tokens_per_s,
                    output_tokens: [Some(f.time.output_tokens), f.time.output_tokens_on_pass],
                    turns: profile,
                    observed_pass_rate: mine.iter().filter(|r| r.passed()).count() as f64 / mine.len().max(1) as f64,
                    observed_mean_time_to_pass_s: mean(&passing),
                    model_s_per_turn: model_s,
                    test_s_per_turn: test,
                    tests_bound: test > model_s,
                    amdahl_limit: loopvel_math::cycle::amdahl_limit(model_s, test),
                });
            }
            models.push((name.clone(), model));
        }
        if !complete {
            continue;
        }
        let sample_all: Vec<&Run> = pick(&all_tasks, rep, &mut rng).into_iter().flatten().collect();
        let tests_fit =
            LognormalFit::fit(&sample_all.iter().flat_map(|r| r.turns.iter().map(|t| t.test_s)).collect::<Vec<_>>());
        let test_s = match (tests_fit, loop_change("test_s")) {
            (_, Some(Change::Set(v))) => Dist::constant(v),
            (Some(f), ch) => lognormal_dist(&f, apply(1.0, ch)),
            (None, ch) => Dist::constant(apply(mean(&test_times).unwrap_or(0.0), ch)),
        };
        let scenario = SimScenario {
            loop_profile: SimLoop {
                test_s,
                overhead_s: apply(mean(&overheads).unwrap_or(0.0), loop_change("overhead_s")).max(0.0),
                max_turns,
                tests: 1,
                parallel_tests: true,
                flaky: 0.0,
                max_wall_s: q.max_wall_s,
                max_usd: q.max_usd,
                restart_after: None,
            },
            models,
            policies: policies.clone(),
        };
        let report = loopvel_sim::simulate(&scenario, q.runs, q.seed.wrapping_add(rep as u64), 2);
        // The report keeps the scenario's order, plain loops apart from the rest;
        // match by position because escalations differing only in `after` share a name.
        let (mut plain, mut other) = (report.models.iter(), report.policies.iter());
        for (i, p) in policies.iter().enumerate() {
            let found = if matches!(p, SimPolicy::Plain { .. }) { plain.next() } else { other.next() };
            if let Some((_, r)) = found {
                let s = &r.summary;
                per_policy[i].push([
                    s.pass_rate,
                    s.mean_time_to_pass_s.unwrap_or(f64::NAN),
                    s.usd_per_solved.unwrap_or(f64::NAN),
                ]);
            }
        }
    }
    let expand = expansion(crate::trace::task_names(runs.iter()).len());
    Ok(assemble(&policies, &per_policy, facts, max_turns, notes, expand))
}

/// How much a percentile interval from resampling `tasks` tasks is widened
/// about its median: `sqrt(n/(n−1)) · t(0.975, n−1) / z(0.975)`, the
/// "expanded percentile" interval (Hesterberg 2015, "What Teachers Should
/// Know About the Bootstrap"). A percentile bootstrap over a dozen tasks runs
/// narrow — the resampled spread is (n−1)/n of the real one, and a normal
/// quantile stands where a t quantile belongs: measured by
/// `tests/predict_recovery.rs`, 40 resamples over 12 tasks held the true pass
/// rate 87.5% of the time instead of 95%. 1 with fewer than 2 tasks.
fn expansion(tasks: usize) -> f64 {
    if tasks < 2 {
        return 1.0;
    }
    let n = tasks as f64;
    let t = statrs::distribution::StudentsT::new(0.0, 1.0, n - 1.0)
        .map(|d| statrs::distribution::ContinuousCDF::inverse_cdf(&d, 0.975))
        .unwrap_or(1.959_964);
    (n / (n - 1.0)).sqrt() * t / 1.959_964
}

/// How a model's what-ifs scale its times and its replies.
#[derive(Debug, Clone, Copy)]
struct Scales {
    ttft: f64,
    speed: f64,
    output: f64,
}

/// The simulator's model from a fit, with what-ifs `c(field)` applied.
fn build_model(f: &Fitted, c: &dyn Fn(&str) -> Option<Change>) -> (SimModel, Scales) {
    let speed_scale = apply(
        1.0,
        c("tokens_per_s").map(|ch| match ch {
            Change::Scale(x) => Change::Scale(x),
            Change::Set(v) => Change::Scale(v / f.time.speed.median()),
        }),
    );
    let ttft_scale = apply(
        1.0,
        c("ttft_s").map(|ch| match ch {
            Change::Scale(x) => Change::Scale(x),
            Change::Set(v) => Change::Scale(v / f.time.ttft_of_turn(1).max(1e-9)),
        }),
    );
    let prefill_changed = c("prefill_tokens_per_s").is_some();
    let prefill = f.time.prefill_tokens_per_s.map(|p| apply(p, c("prefill_tokens_per_s"))).or_else(|| {
        c("prefill_tokens_per_s").and_then(|ch| match ch {
            Change::Set(v) => Some(v),
            Change::Scale(_) => None,
        })
    });
    // An output what-if scales passing and failing replies alike.
    let out_scale = apply(
        1.0,
        c("output_tokens").map(|ch| match ch {
            Change::Scale(x) => Change::Scale(x),
            Change::Set(v) => Change::Scale(v / f.time.output_tokens.max(1e-9)),
        }),
    );
    let output_tokens = f.time.output_tokens * out_scale;
    let usd_per_turn = apply(f.usd_per_turn, c("usd_per_turn"));
    let model = SimModel {
        // The profile by turn as recorded; a what-if on ttft_s or the speed scales every turn's.
        // A prefill what-if replaces it with the fitted line: the fixed part plus the prompt's prefill.
        ttft_s: lognormal_dist(&f.time.ttft_fixed, ttft_scale),
        ttft_by_turn: if prefill_changed {
            Vec::new()
        } else {
            f.time.ttft_by_turn.iter().map(|l| lognormal_dist(l, ttft_scale)).collect()
        },
        tokens_per_s_by_turn: f.time.speed_by_turn.iter().map(|l| lognormal_dist(l, speed_scale)).collect(),
        prefill_tokens_per_s: if prefill_changed { prefill.filter(|p| *p > 0.0).map(|p| p / ttft_scale) } else { None },
        // Reply lengths vary (and with them a turn's time): lognormals of the recorded lengths.
        output_tokens_on_pass: f.time.output_tokens_on_pass.map(|n| match &f.time.output_spread_on_pass {
            Some(l) => lognormal_dist(l, out_scale),
            None => Dist::constant((n * out_scale).max(0.0)),
        }),
        tokens_per_s: lognormal_dist(&f.time.speed, speed_scale),
        output_tokens: match &f.time.output_spread {
            Some(l) => lognormal_dist(l, out_scale),
            None => Dist::constant(output_tokens.max(0.0)),
        },
        input_tokens: f.time.input_tokens,
        input_growth_tokens: f.time.input_growth_tokens,
        usd_per_mtok_in: 0.0,
        // The observed mean cost per turn, spread over the output tokens.
        usd_per_mtok_out: if output_tokens > 0.0 { usd_per_turn * 1e6 / output_tokens } else { 0.0 },
        // The observed cost per turn is as billed: caching is already in it.
        cached_share: 0.0,
        usd_per_mtok_cached_in: 0.0,
        quality: Quality::Hazard {
            p_first: Dist::constant(apply(f.pass.p_first, c("p_first")).clamp(0.0, 1.0)),
            p_retry: Dist::constant(apply(f.pass.p_retry, c("p_retry")).clamp(0.0, 1.0)),
            ceiling: apply(f.pass.ceiling, c("ceiling")).clamp(0.0, 1.0),
        },
        thrash: 0.0,
        rate_limit_rps: None,
        max_concurrent: None,
        profile: None,
    };
    (model, Scales { ttft: ttft_scale, speed: speed_scale, output: out_scale })
}

/// The simulator's model from a fit, as fitted (`predict --check`).
pub(crate) fn sim_model(f: &Fitted) -> SimModel {
    build_model(f, &|_| None).0
}

/// The tasks as recorded for resample 0, otherwise a resample of tasks, then
/// of the runs within each drawn task (see [`crate::interval::bootstrap_clustered`]).
pub(crate) fn pick<'a>(groups: &[Vec<&'a Run>], rep: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<Vec<&'a Run>> {
    if rep == 0 || groups.is_empty() {
        return groups.to_vec();
    }
    (0..groups.len())
        .map(|_| {
            let g = &groups[rng.random_range(0..groups.len())];
            (0..g.len()).map(|_| g[rng.random_range(0..g.len())]).collect()
        })
        .collect()
}

fn assemble(
    policies: &[SimPolicy],
    per_policy: &[Vec<[f64; 3]>],
    facts: Vec<ModelFacts>,
    max_turns: u32,
    notes: Vec<String>,
    expand: f64,
) -> Prediction {
    let reps = per_policy.iter().map(Vec::len).min().unwrap_or(0);
    let mut wins = vec![[0usize; 3]; policies.len()];
    let mut ties = vec![[0usize; 3]; policies.len()];
    // Per resample and metric, the policies that tied for best (empty: one winner).
    let mut tied_sets: Vec<[Vec<usize>; 3]> = Vec::with_capacity(reps);
    // `rep` indexes the inner vector of every policy at once, not one slice.
    #[allow(clippy::needless_range_loop)]
    for rep in 0..reps {
        let mut tied_here: [Vec<usize>; 3] = Default::default();
        for (metric, higher_better) in [(0, true), (1, false), (2, false)] {
            let best = (0..policies.len()).filter(|&i| per_policy[i][rep][metric].is_finite()).max_by(|&a, &b| {
                let (x, y) = (per_policy[a][rep][metric], per_policy[b][rep][metric]);
                if higher_better {
                    x.total_cmp(&y)
                } else {
                    y.total_cmp(&x)
                }
            });
            // A tie (every local model costs $0, two policies at 100%) has no winner.
            let tied = best.is_some_and(|b| {
                (0..policies.len()).any(|i| i != b && per_policy[i][rep][metric] == per_policy[b][rep][metric])
            });
            if let Some(i) = best.filter(|_| !tied) {
                wins[i][metric] += 1;
            }
            if let Some(b) = best.filter(|_| tied) {
                let top = per_policy[b][rep][metric];
                for i in (0..policies.len()).filter(|&i| per_policy[i][rep][metric] == top) {
                    ties[i][metric] += 1;
                    tied_here[metric].push(i);
                }
            }
        }
        tied_sets.push(tied_here);
    }
    let summarize = |values: Vec<f64>| -> Option<Predicted> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        // A metric undefined in most resamples (no passes) is not predicted.
        if v.len() * 2 < reps.max(1) {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let value = quantile_sorted(&v, 0.5)?;
        let (lo, hi) = (quantile_sorted(&v, 0.025)?, quantile_sorted(&v, 0.975)?);
        // Expanded about the median (see `expansion`); a rate stays in [0, 1], a time or cost ≥ 0.
        let (lo, hi) = (value - expand * (value - lo), value + expand * (hi - value));
        Some(Predicted { value, interval: [lo.max(0.0), hi] })
    };
    let share = |w: usize| if reps > 0 { w as f64 / reps as f64 } else { 0.0 };
    let rows: Vec<PolicyPrediction> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| PolicyPrediction {
            policy: label(p),
            pass_rate: summarize(per_policy[i].iter().map(|m| m[0]).collect())
                .map(|mut p| {
                    p.interval[1] = p.interval[1].min(1.0);
                    p
                })
                .unwrap_or(Predicted { value: 0.0, interval: [0.0, 0.0] }),
            mean_time_to_pass_s: summarize(per_policy[i].iter().map(|m| m[1]).collect()),
            usd_per_solved: summarize(per_policy[i].iter().map(|m| m[2]).collect()),
            best_pass_rate_share: share(wins[i][0]),
            best_time_share: share(wins[i][1]),
            best_cost_share: share(wins[i][2]),
            tied_best_pass_rate_share: share(ties[i][0]),
            tied_best_time_share: share(ties[i][1]),
            tied_best_cost_share: share(ties[i][2]),
        })
        .collect();
    // A tie is exact equality, the same rule that denies a resample its winner:
    // the policies tied for best together with `best` in every resample.
    let tied_with = |best: &Option<String>, metric: usize| -> Vec<String> {
        let Some(b) = best.as_ref().and_then(|n| rows.iter().position(|r| &r.policy == n)) else {
            return Vec::new();
        };
        if reps == 0 {
            return Vec::new();
        }
        (0..policies.len())
            .filter(|&i| i != b && tied_sets.iter().all(|t| t[metric].contains(&b) && t[metric].contains(&i)))
            .map(|i| rows[i].policy.clone())
            .collect()
    };
    let best_by = |key: &dyn Fn(&PolicyPrediction) -> Option<f64>, higher: bool| -> Option<String> {
        // Reversed so that among equal medians the first listed (the simplest policy) is named.
        rows.iter()
            .rev()
            .filter_map(|r| key(r).map(|v| (r, v)))
            .max_by(|a, b| if higher { a.1.total_cmp(&b.1) } else { b.1.total_cmp(&a.1) })
            .map(|(r, _)| r.policy.clone())
    };
    let best_pass_rate = best_by(&|r| Some(r.pass_rate.value), true);
    let best_time = best_by(&|r| r.mean_time_to_pass_s.map(|p| p.value), false);
    let best_cost = best_by(&|r| r.usd_per_solved.map(|p| p.value), false);
    Prediction {
        best_pass_rate_tied_with: tied_with(&best_pass_rate, 0),
        best_time_tied_with: tied_with(&best_time, 1),
        best_cost_tied_with: tied_with(&best_cost, 2),
        best_pass_rate,
        best_time,
        best_cost,
        policies: rows,
        models: facts,
        max_turns,
        notes,
    }
}

/// A policy's name in answers: `simulate`'s, with the switch turn for escalations.
pub fn label(p: &SimPolicy) -> String {
    match p {
        SimPolicy::Escalate { from, to, after } => format!("escalate({from}->{to} after {after})"),
        other => other.name(),
    }
}

/// Plain loops, best-of-k for k in {2, 3, 4, 6, 8} up to `max_k`, every race of
/// two, and every escalation from one model to another after m turns (m from 1
/// to `max_turns − 1`, at most 4 switch points spread over the budget).
pub fn policy_list(models: &[String], max_turns: u32, max_k: u32) -> Vec<SimPolicy> {
    let mut out: Vec<SimPolicy> = models.iter().map(|m| SimPolicy::Plain { model: m.clone() }).collect();
    for m in models {
        for k in [2u32, 3, 4, 6, 8].into_iter().filter(|&k| k <= max_k) {
            out.push(SimPolicy::BestOf { model: m.clone(), k });
        }
    }
    for (i, a) in models.iter().enumerate() {
        for b in &models[i + 1..] {
            out.push(SimPolicy::Race { a: a.clone(), b: b.clone() });
        }
    }
    let switches: Vec<u32> = {
        let mut s: Vec<u32> = (1..max_turns).collect();
        if s.len() > 4 {
            let n = s.len();
            s = (0..4).map(|i| s[i * (n - 1) / 3]).collect();
            s.dedup();
        }
        s
    };
    for a in models {
        for b in models {
            if a != b {
                for &after in &switches {
                    out.push(SimPolicy::Escalate { from: a.clone(), to: b.clone(), after });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(name: &str) -> SimPolicy {
        SimPolicy::Plain { model: name.into() }
    }

    #[test]
    fn policies_equal_in_every_resample_are_a_tie_not_a_winner() {
        let policies = [plain("a"), plain("b"), plain("c")];
        // Pass rate: a and b always 1.0, c lower. Time: a wins twice, ties with b once.
        let per_policy = vec![
            vec![[1.0, 10.0, 0.0], [1.0, 10.0, 0.0], [1.0, 12.0, 0.0]],
            vec![[1.0, 11.0, 0.0], [1.0, 11.0, 0.0], [1.0, 12.0, 0.0]],
            vec![[0.5, 20.0, 0.0], [0.6, 20.0, 0.0], [0.4, 20.0, 0.0]],
        ];
        let p = assemble(&policies, &per_policy, Vec::new(), 3, Vec::new(), 1.0);
        assert_eq!(p.best_pass_rate.as_deref(), Some("a"), "the first of equals is named");
        assert_eq!(p.best_pass_rate_tied_with, ["b"]);
        assert_eq!(p.policies[0].best_pass_rate_share, 0.0);
        assert_eq!(p.policies[0].tied_best_pass_rate_share, 1.0);
        assert_eq!(p.policies[2].tied_best_pass_rate_share, 0.0);
        assert_eq!(p.best_time.as_deref(), Some("a"));
        assert!(p.best_time_tied_with.is_empty(), "a tie in one resample of three is not a tie");
        assert!((p.policies[0].best_time_share - 2.0 / 3.0).abs() < 1e-12);
        assert!((p.policies[0].tied_best_time_share - 1.0 / 3.0).abs() < 1e-12);
        // Every policy costs the same: all three tie.
        assert_eq!(p.best_cost_tied_with.len(), 2);
    }
}
