//! Everything `loopvel report` says about one model, computed from its runs.
//!
//! Rules kept throughout:
//! - a run that did not pass is censored where it stopped, never counted as
//!   "took the whole budget to pass";
//! - intervals resample tasks, then runs within each drawn task, because
//!   turns of one run are not independent and neither are runs of one task
//!   (a task a model cannot solve fails every time): the question users ask
//!   is how a model does on tasks like these, so tasks are the unit;
//! - where that resampling cannot vary (no run passed, or every run did) a
//!   rate's interval is Wilson's over tasks, as if each task's runs agreed
//!   entirely: the widest a task-aware interval can honestly be, never a
//!   zero-width one;
//! - every bootstrap is seeded from the model's name, so a report is
//!   reproducible byte for byte;
//! - with fewer than [`MIN_PASSES_TO_FIT`] passes the fitted pass and score
//!   parameters are left out, with a note saying why.

use crate::interval::{bootstrap_clustered, mean, quantile, quantile_select, quantile_sorted, wilson, BOOTSTRAP_REPS};
use crate::km::{KaplanMeier, Observation};
use crate::lognormal::LognormalFit;
use crate::passfit::{self, TurnOutcomes};
use crate::scorefit::{self, TurnSums};
use crate::trace::{Outcome, Run};
use crate::{Estimate, MIN_PASSES_TO_FIT};
use loopvel_record::Grade;

/// Resamples for the score-curve fit, which refits per resample.
const SCORE_BOOTSTRAP_REPS: usize = 200;

/// Passes and runs still going at one turn.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HazardRow {
    /// The turn.
    pub turn: u32,
    /// Runs that started this turn.
    pub at_risk: u64,
    /// Runs that passed on it.
    pub passed: u64,
    /// `passed / at_risk`.
    pub rate: f64,
    /// Task-aware 95% interval of the rate (tasks resampled, then runs).
    pub ci: Option<[f64; 2]>,
    /// Wilson 95% interval over runs, as if runs were independent.
    pub ci_wilson: Option<[f64; 2]>,
}

/// One turn number across a model's runs: how the turns recorded there were
/// graded and how fast the model answered them. Intervals resample tasks,
/// then runs within them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TurnRow {
    /// The turn.
    pub turn: u32,
    /// Turns recorded with this number (one per run that reached it).
    pub turns: u64,
    /// Of those, graded THRASH (fewer tests passing than before, or files back
    /// in a state already tried).
    pub thrash: u64,
    /// `thrash / turns`.
    pub thrash_share: Estimate,
    /// Mean time to first token, s (`None`: no turn reported one).
    pub ttft_s: Option<Estimate>,
    /// Mean prompt size, input tokens (`None`: none reported).
    pub input_tokens: Option<f64>,
    /// Share of the input tokens the server read from its prompt cache, over
    /// the turns whose server reported a count (`None`: none did).
    pub cached_share: Option<Estimate>,
}

/// Distribution of the score after `turn` turns over all runs (a run that
/// already stopped keeps its last score: 1 if it passed).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScoreRow {
    /// The turn.
    pub turn: u32,
    /// Median score.
    pub median: f64,
    /// 10th percentile.
    pub p10: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Mean score.
    pub mean: f64,
}

/// Where a turn's time goes: mean seconds per turn of each part.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TimeSplit {
    /// In the model call (TTFT + generation), s per turn.
    pub model_s: Estimate,
    /// Running the tests, s per turn.
    pub test_s: Estimate,
    /// Harness work outside model and tests, s per turn.
    pub overhead_s: Estimate,
    /// Waiting on rate limits and retries, s per turn.
    pub retry_wait_s: Estimate,
    /// Share of turn time spent in tests.
    pub test_share: f64,
    /// Share of turn time spent in the model.
    pub model_share: f64,
    /// True when the tests take longer than the model: speeding the model up cannot
    /// more than halve the turn (Amdahl).
    pub tests_bound: bool,
}

/// Fitted loop parameters, each with a 95% interval; `None` where the data are too few.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fit {
    /// Chance the first attempt passes (solvable task): censored MLE, profile interval.
    pub p_first: Option<Estimate>,
    /// Chance a later turn passes given no pass yet.
    pub p_retry: Option<Estimate>,
    /// Share of tasks solvable at all.
    pub ceiling: Option<Estimate>,
    /// Share of remaining failing tests fixed per turn (least squares, bootstrap interval).
    pub r: Option<Estimate>,
    /// Share of tests passing after the first attempt.
    pub first_score: Option<Estimate>,
    /// Median time to first token, s (lognormal fit).
    pub ttft_median_s: Option<Estimate>,
    /// 90th percentile time to first token, s.
    pub ttft_p90_s: Option<Estimate>,
    /// Median decode speed, tokens/s.
    pub tokens_per_s_median: Option<Estimate>,
    /// 90th percentile decode speed, tokens/s.
    pub tokens_per_s_p90: Option<Estimate>,
    /// Mean output tokens per turn.
    pub output_tokens_mean: Option<Estimate>,
    /// Mean cost per turn, USD.
    pub usd_per_turn: Option<Estimate>,
}

/// Prompt caching and what it saved, from the counts servers reported.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CacheUse {
    /// Turns whose server reported a cached-token count (0 included).
    pub turns_reporting: u64,
    /// Turns in all.
    pub turns: u64,
    /// Input tokens of the reporting turns.
    pub input_tokens: u64,
    /// Of those, read from the cache.
    pub cached_input_tokens: u64,
    /// Of those, written to the cache (Anthropic).
    pub cache_write_tokens: u64,
    /// `cached_input_tokens / input_tokens`, with a task-aware 95% interval.
    pub cached_share: Estimate,
    /// Spend as billed (cached tokens at the cached price), USD, all runs.
    pub usd: f64,
    /// Spend had every input token been billed at the uncached price, USD
    /// (turns recorded before loopvel kept this count as billed).
    pub usd_uncached: f64,
}

/// One model's report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelSummary {
    /// Model name.
    pub model: String,
    /// Distinct tasks it ran on.
    pub tasks: usize,
    /// Runs.
    pub runs: u64,
    /// Runs that passed.
    pub passes: u64,
    /// Runs that ended in an error (censored where they stopped).
    pub errors: u64,
    /// Share of runs that passed.
    pub pass_rate: f64,
    /// Task-aware 95% interval (tasks resampled, then runs within them).
    pub pass_rate_ci: Option<[f64; 2]>,
    /// Wilson 95% interval over runs, as if runs were independent: narrower
    /// than it should be when tasks differ; kept for comparison.
    pub pass_rate_ci_wilson: Option<[f64; 2]>,
    /// Share of runs that passed on the first turn.
    pub one_shot_rate: f64,
    /// Task-aware 95% interval.
    pub one_shot_rate_ci: Option<[f64; 2]>,
    /// Wilson 95% interval over runs.
    pub one_shot_rate_ci_wilson: Option<[f64; 2]>,
    /// Median turns among passes (the talk's "median 2 turns").
    pub median_turns: Option<f64>,
    /// Median turns to pass from Kaplan–Meier by turn (censoring-aware); `None` = not reached.
    pub km_median_turns: Option<f64>,
    /// Mean time to pass among passes, s.
    pub mean_time_to_pass_s: Option<f64>,
    /// Task-aware bootstrap 95% interval.
    pub mean_time_to_pass_ci: Option<[f64; 2]>,
    /// P90 time to pass among passes, s.
    pub p90_time_to_pass_s: Option<f64>,
    /// Task-aware bootstrap 95% interval.
    pub p90_time_to_pass_ci: Option<[f64; 2]>,
    /// Median time to pass from Kaplan–Meier (censoring-aware); `None` = not reached.
    pub km_median_time_to_pass_s: Option<f64>,
    /// Mean wall time per run, s.
    pub mean_run_wall_s: f64,
    /// Cost per solved task, USD (all spend / passes), bootstrap interval.
    pub usd_per_solved: Option<Estimate>,
    /// Prompt caching; `None` when no server reported a cached-token count.
    pub cache: Option<CacheUse>,
    /// Kaplan–Meier passed share by time: `[t_s, passed_share]`.
    pub km: Vec<[f64; 2]>,
    /// Its Greenwood 95% band: `[t_s, low, high]`.
    pub km_band: Vec<[f64; 3]>,
    /// Kaplan–Meier passed share by turn: `[turn, passed_share, low, high]`.
    pub km_turns: Vec<[f64; 4]>,
    /// Per-turn pass rate among runs still going.
    pub hazard: Vec<HazardRow>,
    /// THRASH share, first-token time and prompt cache by turn number.
    pub by_turn: Vec<TurnRow>,
    /// THRASH share of all turns (`None`: no turn recorded).
    pub thrash_share: Option<Estimate>,
    /// Score after each turn.
    pub score_by_turn: Vec<ScoreRow>,
    /// Where the time goes.
    pub time_split: TimeSplit,
    /// Fitted parameters.
    pub fit: Fit,
    /// pass@k and pass^k for k = 1 … the fewest runs of any task, mean over
    /// tasks, with intervals resampling tasks then runs ([`crate::passk`]).
    pub pass_k: Vec<crate::passk::PassK>,
    /// Each task's runs' times to pass (`None`: did not pass), for pass@k
    /// within a wall-clock budget ([`crate::passk::pass_at_k_within`]).
    #[serde(skip)]
    pub task_times: Vec<Vec<Option<f64>>>,
    /// What a reader should know: too few runs to fit, errors, censoring.
    pub notes: Vec<String>,
}

/// A run reduced to what the bootstraps resample.
#[derive(Debug, Clone, Copy)]
struct RunRow {
    passed: bool,
    one_shot: bool,
    time_to_pass_s: f64,
    turns: f64,
    model_s: f64,
    test_s: f64,
    overhead_s: f64,
    retry_wait_s: f64,
    usd: f64,
    output_tokens: f64,
    output_turns: f64,
    /// Input and cached input tokens of the turns that reported a cached count.
    cache_input_tokens: f64,
    cached_tokens: f64,
}

/// Summaries of every model in `runs`, in order of first appearance.
pub fn summarize(runs: &[Run]) -> Vec<ModelSummary> {
    let names = crate::trace::model_names(runs);
    names
        .iter()
        .map(|name| {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.model == *name).collect();
            summarize_model(name, &mine)
        })
        .collect()
}

/// One model on one task, for the by-task table: where a model wins and where not.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TaskCell {
    /// Model name.
    pub model: String,
    /// Runs of this model on the task.
    pub runs: u64,
    /// Runs that passed.
    pub passes: u64,
    /// Wilson 95% interval of the pass rate.
    pub pass_rate_ci: Option<[f64; 2]>,
    /// Mean time to pass over passing runs, s.
    pub mean_time_to_pass_s: Option<f64>,
    /// Seeded bootstrap 95% interval of that mean (over the passing runs).
    pub mean_time_to_pass_ci: Option<[f64; 2]>,
    /// The runs in this cell, by id (for their transcripts: `report --run ID --html FILE`).
    pub run_ids: Vec<i64>,
}

/// One task's row of the by-task table, one cell per model (in the order of
/// [`summarize`]; a model that never ran the task has `runs == 0`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TaskRow {
    /// Task name.
    pub task: String,
    /// Per model.
    pub cells: Vec<TaskCell>,
}

/// Pass counts and mean time to pass per task and model, tasks sorted by name.
///
/// Per-task samples are small (a handful of runs), so every cell carries its
/// interval; read a cell as "where", the per-model table as "how much".
pub fn by_task(runs: &[Run]) -> Vec<TaskRow> {
    let models = crate::trace::model_names(runs);
    let tasks = crate::trace::task_names(runs);
    tasks
        .iter()
        .map(|task| TaskRow {
            task: task.to_string(),
            cells: models
                .iter()
                .map(|model| {
                    let mine: Vec<&Run> = runs.iter().filter(|r| r.task == *task && r.model == *model).collect();
                    let n = mine.len() as u64;
                    let times: Vec<f64> = mine
                        .iter()
                        .filter(|r| r.passed())
                        .filter_map(|r| r.time_to_pass_s)
                        .filter(|t| t.is_finite())
                        .collect();
                    let passes = mine.iter().filter(|r| r.passed()).count() as u64;
                    // No interval from a single pass (it would have zero width), so no bootstrap either.
                    let mean_time_to_pass_ci = if times.len() >= 2 {
                        let seed = seed_of(&format!("{task}\u{1f}{model}"), 31);
                        crate::interval::bootstrap(&times, BOOTSTRAP_REPS, seed, mean).map(|(a, b)| [a, b])
                    } else {
                        None
                    };
                    TaskCell {
                        model: model.to_string(),
                        runs: n,
                        passes,
                        pass_rate_ci: wilson(passes, n).map(|(a, b)| [a, b]),
                        mean_time_to_pass_s: mean(&times),
                        mean_time_to_pass_ci,
                        run_ids: mine.iter().map(|r| r.run_id).collect(),
                    }
                })
                .collect(),
        })
        .collect()
}

/// A stable seed from a name (FNV-1a), so reports reproduce.
pub fn seed_of(name: &str, salt: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The pass-model counts of some runs.
pub fn turn_outcomes<'a>(runs: impl IntoIterator<Item = &'a Run>) -> TurnOutcomes {
    let mut t = TurnOutcomes::default();
    for r in runs {
        t.add(r.passed().then(|| r.turn_count()), r.turn_count());
    }
    t
}

/// One model's summary.
pub fn summarize_model(name: &str, runs: &[&Run]) -> ModelSummary {
    let n = runs.len() as u64;
    let passes = runs.iter().filter(|r| r.passed()).count() as u64;
    let errors = runs.iter().filter(|r| r.outcome == Outcome::Error).count() as u64;
    let one_shot = runs.iter().filter(|r| r.passed() && r.turn_count() == 1).count() as u64;
    let tasks = crate::trace::task_names(runs.iter().copied());
    let mut notes = Vec::new();

    let rows: Vec<RunRow> = runs
        .iter()
        .map(|r| {
            let outs: Vec<f64> = r.turns.iter().filter_map(|t| t.output_tokens.map(|n| n as f64)).collect();
            RunRow {
                passed: r.passed(),
                one_shot: r.passed() && r.turn_count() == 1,
                time_to_pass_s: r.time_to_pass_s.unwrap_or(f64::NAN),
                turns: f64::from(r.turn_count()),
                model_s: r.total(|t| t.model_s),
                test_s: r.total(|t| t.test_s),
                overhead_s: r.total(|t| t.overhead_s),
                retry_wait_s: r.total(|t| t.retry_wait_s),
                usd: r.usd,
                output_tokens: outs.iter().sum(),
                output_turns: outs.len() as f64,
                cache_input_tokens: r
                    .turns
                    .iter()
                    .filter(|t| t.cached_input_tokens.is_some())
                    .filter_map(|t| t.input_tokens)
                    .sum::<u64>() as f64,
                cached_tokens: r.turns.iter().filter_map(|t| t.cached_input_tokens).sum::<u64>() as f64,
            }
        })
        .collect();
    let seed = |salt| seed_of(name, salt);

    // Every run-level statistic from the same resamples (tasks, then runs
    // within them); index k of `stats`.
    let all: Vec<u32> = (0..rows.len() as u32).collect();
    let point = run_stats(&rows, &all);
    let groups: Vec<Vec<u32>> =
        tasks.iter().map(|t| (0..runs.len() as u32).filter(|&i| runs[i as usize].task == *t).collect()).collect();
    let cis = bootstrap_clustered(&groups, BOOTSTRAP_REPS, seed(1), |idx| run_stats(&rows, idx));
    let est = |k: usize| point[k].map(|v| Estimate::new(v, cis[k]));
    let per_turn = |k: usize| est(k).unwrap_or(Estimate { value: 0.0, ci: None });

    // Kaplan–Meier by time and by turn.
    let by_time: Vec<Observation> = runs
        .iter()
        .map(|r| Observation { time: r.time_to_pass_s.filter(|_| r.passed()).unwrap_or(r.wall_s), passed: r.passed() })
        .collect();
    let km_time = KaplanMeier::fit(&by_time);
    let by_turn: Vec<Observation> =
        runs.iter().map(|r| Observation { time: f64::from(r.turn_count()), passed: r.passed() }).collect();
    let km_turn = KaplanMeier::fit(&by_turn);

    // Hazard by turn, each turn's interval from the same task-then-run resamples.
    let max_turn = runs.iter().map(|r| r.turn_count()).max().unwrap_or(0);
    let hazard_of = |idx: &[u32]| -> Vec<Option<f64>> {
        let mut at_risk = vec![0u32; max_turn as usize + 1];
        let mut passed = vec![0u32; max_turn as usize + 1];
        for &i in idx {
            let r = runs[i as usize];
            at_risk[r.turn_count() as usize] += 1;
            if r.passed() {
                passed[r.turn_count() as usize] += 1;
            }
        }
        // Runs that reached turn k: those that stopped at k or later.
        let mut going = 0u32;
        let mut out = vec![None; max_turn as usize];
        for k in (1..=max_turn as usize).rev() {
            going += at_risk[k];
            out[k - 1] = (going > 0).then(|| f64::from(passed[k]) / f64::from(going));
        }
        out
    };
    let hazard_cis =
        crate::interval::bootstrap_clustered_many(&groups, BOOTSTRAP_REPS, seed(2), max_turn as usize, hazard_of);
    let hazard = (1..=max_turn)
        .map(|k| {
            let at_risk = runs.iter().filter(|r| r.turn_count() >= k).count() as u64;
            let passed = runs.iter().filter(|r| r.passed() && r.turn_count() == k).count() as u64;
            HazardRow {
                turn: k,
                at_risk,
                passed,
                rate: if at_risk > 0 { passed as f64 / at_risk as f64 } else { 0.0 },
                ci: task_aware_rate(
                    passed,
                    at_risk,
                    crate::trace::task_names(runs.iter().copied().filter(|r| r.turn_count() >= k)).len(),
                    hazard_cis[k as usize - 1],
                ),
                ci_wilson: wilson(passed, at_risk).map(|(a, b)| [a, b]),
            }
        })
        .collect();

    // THRASH share, first-token time and cache by turn number (and THRASH over all
    // turns, the last value), all from the same task-then-run resamples.
    let turn_stats = |idx: &[u32]| -> Vec<Option<f64>> {
        let width = max_turn as usize;
        let (mut n, mut thrash, mut ttft, mut ttft_n) =
            (vec![0u64; width], vec![0u64; width], vec![0.0; width], vec![0u64; width]);
        let (mut input, mut cached) = (vec![0u64; width], vec![0u64; width]);
        for &i in idx {
            for t in &runs[i as usize].turns {
                let Some(k) = (t.turn as usize).checked_sub(1).filter(|&k| k < width) else { continue };
                n[k] += 1;
                thrash[k] += u64::from(t.grade == Grade::Thrash);
                if let Some(s) = t.ttft_s {
                    ttft[k] += s;
                    ttft_n[k] += 1;
                }
                if let (Some(c), Some(all)) = (t.cached_input_tokens, t.input_tokens) {
                    cached[k] += c;
                    input[k] += all;
                }
            }
        }
        let share = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        let mut out = Vec::with_capacity(3 * width + 1);
        out.extend((0..width).map(|k| share(thrash[k], n[k])));
        out.extend((0..width).map(|k| (ttft_n[k] > 0).then(|| ttft[k] / ttft_n[k] as f64)));
        out.extend((0..width).map(|k| share(cached[k], input[k])));
        out.push(share(thrash.iter().sum(), n.iter().sum()));
        out
    };
    let turn_point = turn_stats(&all);
    let turn_cis = crate::interval::bootstrap_clustered_many(
        &groups,
        BOOTSTRAP_REPS,
        seed(5),
        3 * max_turn as usize + 1,
        turn_stats,
    );
    let w = max_turn as usize;
    let turn_est = |j: usize| turn_point[j].map(|v| Estimate::new(v, turn_cis[j]));
    let by_turn: Vec<TurnRow> = (1..=max_turn)
        .map(|k| {
            let at: Vec<&loopvel_record::Turn> =
                runs.iter().flat_map(|r| r.turns.iter()).filter(|t| t.turn == k).collect();
            let inputs: Vec<f64> = at.iter().filter_map(|t| t.input_tokens.map(|n| n as f64)).collect();
            let j = k as usize - 1;
            let thrash = at.iter().filter(|t| t.grade == Grade::Thrash).count() as u64;
            let tasks = crate::trace::task_names(runs.iter().copied().filter(|r| r.turn_count() >= k)).len();
            TurnRow {
                turn: k,
                turns: at.len() as u64,
                thrash,
                thrash_share: Estimate {
                    value: turn_point[j].unwrap_or(0.0),
                    ci: task_aware_rate(thrash, at.len() as u64, tasks, turn_cis[j]),
                },
                ttft_s: turn_est(w + j),
                input_tokens: mean(&inputs),
                cached_share: turn_est(2 * w + j),
            }
        })
        .collect();
    let all_turns: u64 = by_turn.iter().map(|t| t.turns).sum();
    let all_thrash: u64 = by_turn.iter().map(|t| t.thrash).sum();
    let thrash_share = turn_point[3 * w]
        .map(|v| Estimate { value: v, ci: task_aware_rate(all_thrash, all_turns, tasks.len(), turn_cis[3 * w]) });

    // Scores by turn, carried forward; the score fit uses the same carried values.
    let carried: Vec<Vec<f64>> = runs.iter().map(|r| carried_scores(r, max_turn)).collect();
    let score_by_turn = (1..=max_turn)
        .map(|k| {
            let mut at: Vec<f64> = carried.iter().map(|c| c[k as usize - 1]).collect();
            at.sort_by(f64::total_cmp);
            ScoreRow {
                turn: k,
                median: quantile_sorted(&at, 0.5).unwrap_or(0.0),
                p10: quantile_sorted(&at, 0.1).unwrap_or(0.0),
                p90: quantile_sorted(&at, 0.9).unwrap_or(0.0),
                mean: mean(&at).unwrap_or(0.0),
            }
        })
        .collect();

    // Time split.
    let model_s = per_turn(stat::MODEL_S);
    let test_s = per_turn(stat::TEST_S);
    let overhead_s = per_turn(stat::OVERHEAD_S);
    let retry_wait_s = per_turn(stat::RETRY_WAIT_S);
    let turn_total = model_s.value + test_s.value + overhead_s.value + retry_wait_s.value;
    let share = |x: f64| if turn_total > 0.0 { x / turn_total } else { 0.0 };
    let time_split = TimeSplit {
        test_share: share(test_s.value),
        model_share: share(model_s.value),
        tests_bound: test_s.value > model_s.value,
        model_s,
        test_s,
        overhead_s,
        retry_wait_s,
    };

    // Fits.
    let enough = passes >= MIN_PASSES_TO_FIT;
    if !enough {
        notes.push(format!(
            "{passes} passes (fewer than {MIN_PASSES_TO_FIT}): p_first, p_retry, ceiling, r and first_score are not fitted; run more replicates"
        ));
    }
    let outcomes = turn_outcomes(runs.iter().copied());
    let pass_fit = if enough { passfit::fit(&outcomes) } else { None };
    let retry_identified = outcomes.retries_seen();
    if pass_fit.as_ref().is_some_and(|f| f.estimate.p_retry < 0.01 && f.ceiling_ci.1 - f.ceiling_ci.0 > 0.5) {
        notes.push(
            "no run passed after its first turn, so p_first and ceiling trade off (only their product, the one-shot rate, is pinned down): their intervals are wide"
                .into(),
        );
    }
    if enough && !retry_identified {
        notes.push("no run reached a second turn, so p_retry is not estimated".into());
    }
    let score = if enough { score_fit_with_ci(&carried, &groups, seed(21)) } else { None };
    let ttft =
        LognormalFit::fit(&runs.iter().flat_map(|r| r.turns.iter().filter_map(|t| t.ttft_s)).collect::<Vec<_>>());
    let speed =
        LognormalFit::fit(&runs.iter().flat_map(|r| r.turns.iter().filter_map(|t| t.tokens_per_s)).collect::<Vec<_>>());
    let fit = Fit {
        p_first: pass_fit.as_ref().map(|f| Estimate::new(f.estimate.p_first, Some(f.p_first_ci))),
        p_retry: pass_fit
            .as_ref()
            .filter(|_| retry_identified)
            .map(|f| Estimate::new(f.estimate.p_retry, Some(f.p_retry_ci))),
        ceiling: pass_fit.as_ref().map(|f| Estimate::new(f.estimate.ceiling, Some(f.ceiling_ci))),
        r: score.map(|(f, r_ci, _)| Estimate::new(f.r, r_ci)),
        first_score: score.map(|(f, _, fs_ci)| Estimate::new(f.first_score, fs_ci)),
        ttft_median_s: ttft.map(|f| Estimate::new(f.median(), Some(f.median_ci()))),
        ttft_p90_s: ttft.map(|f| Estimate::new(f.p90(), Some(f.p90_ci()))),
        tokens_per_s_median: speed.map(|f| Estimate::new(f.median(), Some(f.median_ci()))),
        tokens_per_s_p90: speed.map(|f| Estimate::new(f.p90(), Some(f.p90_ci()))),
        output_tokens_mean: est(stat::OUTPUT_TOKENS),
        usd_per_turn: est(stat::USD_PER_TURN),
    };
    if errors > 0 {
        notes.push(format!(
            "{errors} {}",
            if errors == 1 {
                "run ended in an error; it counts as not passed, censored where it stopped"
            } else {
                "runs ended in an error; they count as not passed, censored where they stopped"
            }
        ));
    }
    let censored_by_wall = runs.iter().filter(|r| !r.passed() && r.stop_reason == "max_wall").count();
    if censored_by_wall > 0 {
        notes.push(format!(
            "{censored_by_wall} {} the wall-time budget (censored there)",
            if censored_by_wall == 1 { "run hit" } else { "runs hit" }
        ));
    }

    let pass_t: Vec<f64> =
        rows.iter().filter(|r| r.passed && r.time_to_pass_s.is_finite()).map(|r| r.time_to_pass_s).collect();
    // pass@k over tasks: each task's runs and passes.
    let per_task: Vec<crate::passk::TaskCounts> = tasks
        .iter()
        .map(|task| {
            let mine = runs.iter().filter(|r| r.task == *task);
            let (n, c) = mine.fold((0, 0), |(n, c), r| (n + 1, c + u64::from(r.passed())));
            crate::passk::TaskCounts { runs: n, passes: c }
        })
        .collect();
    let pass_k = crate::passk::pass_k_table(&per_task, seed(41));
    let task_times: Vec<Vec<Option<f64>>> = tasks
        .iter()
        .map(|task| runs.iter().filter(|r| r.task == *task).map(|r| r.time_to_pass_s.filter(|_| r.passed())).collect())
        .collect();
    ModelSummary {
        model: name.to_string(),
        tasks: tasks.len(),
        runs: n,
        passes,
        errors,
        pass_rate: if n > 0 { passes as f64 / n as f64 } else { 0.0 },
        pass_rate_ci: task_aware_rate(passes, n, tasks.len(), cis[stat::PASS_RATE]),
        pass_rate_ci_wilson: wilson(passes, n).map(|(a, b)| [a, b]),
        one_shot_rate: if n > 0 { one_shot as f64 / n as f64 } else { 0.0 },
        one_shot_rate_ci: task_aware_rate(one_shot, n, tasks.len(), cis[stat::ONE_SHOT_RATE]),
        one_shot_rate_ci_wilson: wilson(one_shot, n).map(|(a, b)| [a, b]),
        median_turns: quantile(
            &runs.iter().filter(|r| r.passed()).map(|r| f64::from(r.turn_count())).collect::<Vec<_>>(),
            0.5,
        ),
        km_median_turns: km_turn.median(),
        mean_time_to_pass_s: mean(&pass_t),
        // One pass gives a bootstrap interval of zero width, which would read as
        // certainty; with fewer than two passes there is no interval.
        mean_time_to_pass_ci: cis[stat::MEAN_TTP].filter(|_| pass_t.len() >= 2).map(|(a, b)| [a, b]),
        p90_time_to_pass_s: quantile(&pass_t, 0.9),
        p90_time_to_pass_ci: cis[stat::P90_TTP].filter(|_| pass_t.len() >= 2).map(|(a, b)| [a, b]),
        km_median_time_to_pass_s: km_time.median(),
        mean_run_wall_s: mean(&runs.iter().map(|r| r.wall_s).collect::<Vec<_>>()).unwrap_or(0.0),
        usd_per_solved: est(stat::USD_PER_SOLVED),
        cache: cache_use(runs, est(stat::CACHED_SHARE)),
        km: km_time.passed_steps().iter().map(|p| [p[0], p[1]]).collect(),
        km_band: km_time.passed_steps().iter().map(|p| [p[0], p[2], p[3]]).collect(),
        km_turns: km_turn.passed_steps(),
        hazard,
        by_turn,
        thrash_share,
        score_by_turn,
        time_split,
        fit,
        pass_k,
        task_times,
        notes,
    }
}

/// Cache counts over every turn of `runs`; `None` when no turn reported one.
fn cache_use(runs: &[&Run], cached_share: Option<Estimate>) -> Option<CacheUse> {
    let turns = runs.iter().flat_map(|r| r.turns.iter());
    let reporting: Vec<_> = turns.clone().filter(|t| t.cached_input_tokens.is_some()).collect();
    if reporting.is_empty() {
        return None;
    }
    Some(CacheUse {
        turns_reporting: reporting.len() as u64,
        turns: turns.clone().count() as u64,
        input_tokens: reporting.iter().filter_map(|t| t.input_tokens).sum(),
        cached_input_tokens: reporting.iter().filter_map(|t| t.cached_input_tokens).sum(),
        cache_write_tokens: turns.clone().filter_map(|t| t.cache_write_tokens).sum(),
        cached_share: cached_share?,
        usd: turns.clone().map(|t| t.usd).sum(),
        usd_uncached: turns.map(|t| t.usd_uncached.unwrap_or(t.usd)).sum(),
    })
}

/// A rate's task-aware interval: the clustered bootstrap's, or, where it
/// cannot vary (no run passed, or all did), Wilson's over the `tasks` as if
/// each task's runs all agreed — never a zero-width interval that would read
/// as certainty.
pub fn task_aware_rate(successes: u64, runs: u64, tasks: usize, bootstrapped: Option<(f64, f64)>) -> Option<[f64; 2]> {
    if runs == 0 {
        return None;
    }
    if successes == 0 || successes == runs {
        let t = tasks.max(1) as u64;
        return wilson(if successes == 0 { 0 } else { t }, t).map(|(a, b)| [a, b]);
    }
    bootstrapped.map(|(a, b)| [a, b])
}

/// Score after each turn `1..=horizon`: the run's own score while it ran,
/// then its last score (1 after a pass). A turn without tests keeps the
/// previous score (0 before any).
fn carried_scores(run: &Run, horizon: u32) -> Vec<f64> {
    let mut out = Vec::with_capacity(horizon as usize);
    let mut last = 0.0;
    for k in 1..=horizon {
        if let Some(t) = run.turns.get(k as usize - 1) {
            if let Some(s) = t.score {
                last = s;
            }
            if run.passed() && k == run.turn_count() {
                last = 1.0;
            }
        }
        out.push(last);
    }
    out
}

/// The compounding-curve fit on carried scores, with bootstrap intervals of `r` and `first_score`.
type ScoreFitCi = (scorefit::ScoreFit, Option<(f64, f64)>, Option<(f64, f64)>);

fn score_fit_with_ci(carried: &[Vec<f64>], groups: &[Vec<u32>], seed: u64) -> Option<ScoreFitCi> {
    let sums_of = |idx: &[u32]| -> Vec<TurnSums> {
        let mut s = Vec::new();
        for &i in idx {
            for (k, &v) in carried[i as usize].iter().enumerate() {
                scorefit::add_point(&mut s, k as u32 + 1, v);
            }
        }
        s
    };
    let all: Vec<u32> = (0..carried.len() as u32).collect();
    let best = scorefit::fit_sums(&sums_of(&all))?;
    let [r_ci, fs_ci] = bootstrap_clustered(groups, SCORE_BOOTSTRAP_REPS, seed, |idx| {
        let f = scorefit::fit_sums(&sums_of(idx));
        [f.map(|f| f.r), f.map(|f| f.first_score)]
    });
    Some((best, r_ci, fs_ci))
}

/// Indices of the run-level statistics [`run_stats`] returns.
mod stat {
    pub const MEAN_TTP: usize = 0;
    pub const P90_TTP: usize = 1;
    pub const MODEL_S: usize = 2;
    pub const TEST_S: usize = 3;
    pub const OVERHEAD_S: usize = 4;
    pub const RETRY_WAIT_S: usize = 5;
    pub const USD_PER_TURN: usize = 6;
    pub const OUTPUT_TOKENS: usize = 7;
    pub const USD_PER_SOLVED: usize = 8;
    pub const PASS_RATE: usize = 9;
    pub const ONE_SHOT_RATE: usize = 10;
    pub const CACHED_SHARE: usize = 11;
    pub const COUNT: usize = 12;
}

/// Every run-level statistic of the runs at `idx` (a resample, or all runs):
/// means over passes, and per-turn ratios of sums (runs weighted by their turns).
fn run_stats(rows: &[RunRow], idx: &[u32]) -> [Option<f64>; stat::COUNT] {
    let mut sums = [0.0f64; 9];
    let (mut cache_input, mut cached) = (0.0, 0.0);
    let mut pass_times = Vec::with_capacity(idx.len());
    let (mut turns, mut output_turns, mut passes, mut one_shots) = (0.0, 0.0, 0.0, 0.0);
    for &i in idx {
        let r = &rows[i as usize];
        if r.one_shot {
            one_shots += 1.0;
        }
        if r.passed {
            passes += 1.0;
            if r.time_to_pass_s.is_finite() {
                pass_times.push(r.time_to_pass_s);
            }
        }
        turns += r.turns;
        output_turns += r.output_turns;
        sums[stat::MODEL_S] += r.model_s;
        sums[stat::TEST_S] += r.test_s;
        sums[stat::OVERHEAD_S] += r.overhead_s;
        sums[stat::RETRY_WAIT_S] += r.retry_wait_s;
        sums[stat::USD_PER_TURN] += r.usd;
        sums[stat::OUTPUT_TOKENS] += r.output_tokens;
        cache_input += r.cache_input_tokens;
        cached += r.cached_tokens;
    }
    let per = |x: f64, n: f64| (n > 0.0).then(|| x / n);
    [
        mean(&pass_times),
        quantile_select(&mut pass_times, 0.9),
        per(sums[stat::MODEL_S], turns),
        per(sums[stat::TEST_S], turns),
        per(sums[stat::OVERHEAD_S], turns),
        per(sums[stat::RETRY_WAIT_S], turns),
        per(sums[stat::USD_PER_TURN], turns),
        per(sums[stat::OUTPUT_TOKENS], output_turns),
        per(sums[stat::USD_PER_TURN], passes),
        per(passes, idx.len() as f64),
        per(one_shots, idx.len() as f64),
        per(cached.min(cache_input), cache_input),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(task: &str, model: &str, time_to_pass_s: Option<f64>) -> Run {
        Run {
            run_id: 0,
            task: task.into(),
            model: model.into(),
            outcome: if time_to_pass_s.is_some() { Outcome::Pass } else { Outcome::Fail },
            stop_reason: if time_to_pass_s.is_some() { "pass".into() } else { "max_turns".into() },
            time_to_pass_s,
            wall_s: time_to_pass_s.unwrap_or(100.0),
            usd: 0.0,
            turns: Vec::new(),
            ..Run::default()
        }
    }

    #[test]
    fn by_task_counts_each_cell_and_leaves_unrun_cells_empty() {
        let runs = vec![
            run("b_task", "fast", Some(10.0)),
            run("b_task", "fast", Some(20.0)),
            run("b_task", "fast", None),
            run("b_task", "smart", None),
            run("a_task", "smart", Some(50.0)),
        ];
        let rows = by_task(&runs);
        assert_eq!(rows.iter().map(|r| r.task.as_str()).collect::<Vec<_>>(), ["a_task", "b_task"]);
        let a_fast = &rows[0].cells[0];
        assert_eq!((a_fast.model.as_str(), a_fast.runs, a_fast.passes), ("fast", 0, 0));
        assert_eq!(a_fast.pass_rate_ci, None);
        assert_eq!(a_fast.mean_time_to_pass_s, None);
        let b_fast = &rows[1].cells[0];
        assert_eq!((b_fast.runs, b_fast.passes), (3, 2));
        assert_eq!(b_fast.mean_time_to_pass_s, Some(15.0));
        let [lo, hi] = b_fast.mean_time_to_pass_ci.unwrap();
        assert!((10.0..=15.0).contains(&lo) && (15.0..=20.0).contains(&hi), "{lo}–{hi}");
        let [plo, phi] = b_fast.pass_rate_ci.unwrap();
        assert!(plo < 2.0 / 3.0 && 2.0 / 3.0 < phi);
        let b_smart = &rows[1].cells[1];
        assert_eq!((b_smart.runs, b_smart.passes, b_smart.mean_time_to_pass_s), (1, 0, None));
        let a_smart = &rows[0].cells[1];
        assert_eq!((a_smart.passes, a_smart.mean_time_to_pass_s, a_smart.mean_time_to_pass_ci), (1, Some(50.0), None));
    }

    #[test]
    fn by_turn_counts_thrash_and_averages_first_token_time_and_cache_per_turn_number() {
        use loopvel_record::Turn;
        let turn = |n: u32, grade: Grade, ttft: f64, cached: Option<u64>| Turn {
            turn: n,
            grade,
            ttft_s: Some(ttft),
            input_tokens: Some(1000),
            cached_input_tokens: cached,
            ..Turn::default()
        };
        // Four tasks, one run each: turn 1 never THRASH; turn 2 THRASH in 3 of 4; turn 3 only in two runs.
        let runs: Vec<Run> = (0..4)
            .map(|i| Run {
                task: format!("t{i}"),
                model: "m".into(),
                outcome: Outcome::Fail,
                wall_s: 10.0,
                turns: vec![
                    turn(1, Grade::Fail, 1.0, Some(0)),
                    turn(2, if i < 3 { Grade::Thrash } else { Grade::Partial }, 3.0, Some(500)),
                ]
                .into_iter()
                .chain((i < 2).then(|| turn(3, Grade::Thrash, 5.0 + f64::from(i), None)))
                .collect(),
                ..Run::default()
            })
            .collect();
        let refs: Vec<&Run> = runs.iter().collect();
        let s = summarize_model("m", &refs);
        let t = &s.by_turn;
        assert_eq!(
            t.iter().map(|r| (r.turn, r.turns, r.thrash)).collect::<Vec<_>>(),
            [(1, 4, 0), (2, 4, 3), (3, 2, 2)]
        );
        assert_eq!(t[1].thrash_share.value, 0.75);
        let [lo, hi] = t[0].thrash_share.ci.unwrap();
        assert!(lo == 0.0 && hi > 0.3, "none of 4 tasks is no certainty: {lo}–{hi}");
        assert_eq!(t[2].ttft_s.unwrap().value, 5.5);
        assert_eq!((t[0].cached_share.unwrap().value, t[1].cached_share.unwrap().value), (0.0, 0.5));
        assert_eq!(t[2].cached_share, None, "no server count on turn 3");
        assert_eq!(s.thrash_share.unwrap().value, 5.0 / 10.0);
    }
}
