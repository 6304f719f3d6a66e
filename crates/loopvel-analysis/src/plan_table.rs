//! The table `loopvel run` prints at the end of a plan: per model, the
//! talk's figures (passes, one-shot passes, turns, time to pass, scores of
//! failed runs, TTFT, decode speed, test time share, cost per solved run).
//! Point figures over the plan's runs, with the same quantile definition as
//! `report` (type 7), so one plan never shows two different P90s.

use crate::interval::{mean, quantile};
use crate::trace::Run;

/// One model's row. Times in seconds, cost in US dollars, shares in 0–1.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    /// Model name.
    pub model: String,
    /// Runs recorded.
    pub runs: usize,
    /// Runs that passed.
    pub passes: usize,
    /// Runs that passed on their first turn.
    pub one_shot: usize,
    /// Median turns of the runs that passed.
    pub median_turns: Option<f64>,
    /// Mean time to pass.
    pub mean_time_to_pass_s: Option<f64>,
    /// 90th percentile of time to pass.
    pub p90_time_to_pass_s: Option<f64>,
    /// The best score any failed run reached.
    pub best_failed_score: Option<f64>,
    /// Mean time to first token over every turn.
    pub mean_ttft_s: Option<f64>,
    /// Mean decode speed over every turn, tokens/s.
    pub mean_tokens_per_s: Option<f64>,
    /// Share of all wall time spent in tests.
    pub test_share: Option<f64>,
    /// Total cost over runs that passed.
    pub usd_per_solved: Option<f64>,
}

/// One row per name in `models`, in that order, from `runs`.
///
/// ```
/// use loopvel_analysis::plan_table::plan_rows;
/// use loopvel_analysis::trace::{Outcome, Run};
/// let run = |t: f64| Run { model: "m".into(), outcome: Outcome::Pass, time_to_pass_s: Some(t), wall_s: t, ..Run::default() };
/// let rows = plan_rows(&[run(1.0), run(2.0), run(3.0)], &["m"]);
/// assert_eq!(rows[0].passes, 3);
/// assert_eq!(rows[0].p90_time_to_pass_s, Some(2.8)); // type 7: 2 + 0.8 × (3 − 2)
/// ```
pub fn plan_rows(runs: &[Run], models: &[&str]) -> Vec<PlanRow> {
    models
        .iter()
        .map(|&model| {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.model == model).collect();
            let passes: Vec<&&Run> = mine.iter().filter(|r| r.passed()).collect();
            let times: Vec<f64> = passes.iter().filter_map(|r| r.time_to_pass_s).collect();
            let turns: Vec<f64> = passes.iter().map(|r| f64::from(r.turn_count())).collect();
            let best_failed_score = mine
                .iter()
                .filter(|r| !r.passed())
                .flat_map(|r| r.turns.iter().filter_map(|t| t.score))
                .fold(None, |best: Option<f64>, s| Some(best.map_or(s, |b| b.max(s))));
            let all_turns = || mine.iter().flat_map(|r| r.turns.iter());
            let ttfts: Vec<f64> = all_turns().filter_map(|t| t.ttft_s).collect();
            let speeds: Vec<f64> = all_turns().filter_map(|t| t.tokens_per_s).collect();
            let wall: f64 = mine.iter().map(|r| r.wall_s).sum();
            let test: f64 = all_turns().map(|t| t.test_s).sum();
            let cost: f64 = mine.iter().map(|r| r.usd).sum();
            PlanRow {
                model: model.to_string(),
                runs: mine.len(),
                passes: passes.len(),
                one_shot: passes.iter().filter(|r| r.turn_count() == 1).count(),
                median_turns: quantile(&turns, 0.5),
                mean_time_to_pass_s: mean(&times),
                p90_time_to_pass_s: quantile(&times, 0.9),
                best_failed_score,
                mean_ttft_s: mean(&ttfts),
                mean_tokens_per_s: mean(&speeds),
                test_share: (wall > 0.0).then(|| test / wall),
                usd_per_solved: (!passes.is_empty()).then(|| cost / passes.len() as f64),
            }
        })
        .collect()
}
