//! `loopvel run`'s output: a finished run in words, and the talk's table per model at the end.

use std::collections::HashMap;

use loopvel_harness::run::Progress;
use loopvel_math::units::{count, percent, seconds, tokens, tokens_per_s, usd};
use loopvel_provider::ModelConfig;
use loopvel_store::RunSummary;
use serde_json::{Map, Value};

use super::calc::opt;
use super::{Layout, Table};

/// How a run ended: `pass after 2 turns (5.34 s)`, `fail after 15 turns
/// (88.0 s, stopped by max_turns)`, `error after 1 turn (0.50 s: HTTP 401)`.
/// The stop reason is said only when it adds to the outcome.
pub fn outcome(summary: &RunSummary) -> String {
    let head = format!("{} after {}", summary.outcome, count(u64::from(summary.turns), "turn"));
    let wall = seconds(summary.wall_s);
    match (&summary.error, summary.stop_reason.as_str()) {
        (Some(e), _) => format!("{head} ({wall}: {e})"),
        (None, reason) if reason == summary.outcome || reason == "pass" => format!("{head} ({wall})"),
        (None, reason) => format!("{head} ({wall}, stopped by {reason})"),
    }
}

/// A run's spinner line while a turn is under way: `fizzbuzz × fast #1: turn 2: 153 tokens so far …`.
pub fn progress(label: &str, p: Progress) -> String {
    match p {
        Progress::Waiting { turn } => format!("{label}: turn {turn}: waiting for the first token …"),
        Progress::Generating { turn, tokens: n } => format!("{label}: turn {turn}: {} so far …", tokens(n as f64)),
        Progress::Testing { turn } => format!("{label}: turn {turn}: running the tests …"),
        Progress::Retrying { turn, wait } => format!("{label}: turn {turn}: {} …", waiting(&wait)),
    }
}

/// A retry wait as it begins: `HTTP 429: waiting 100 s before attempt 2 of 5`.
pub fn waiting(w: &loopvel_provider::Wait) -> String {
    format!("{}: waiting {} before attempt {} of {}", w.reason, seconds(w.wait_s), w.attempt + 1, w.of)
}

fn f(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn quantile(mut xs: Vec<f64>, q: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    Some(xs[rank - 1])
}

/// The talk's table per model, from the recorded runs and turns of a plan.
pub fn summary_table(
    models: &[ModelConfig],
    runs: &[Map<String, Value>],
    turns: &[Map<String, Value>],
    layout: Layout,
) -> String {
    let mut t = Table::new([
        "model",
        "runs passed",
        "one-shot passes",
        "median turns",
        "mean time to pass",
        "P90 time to pass",
        "best score of failed runs",
        "mean TTFT",
        "tokens/s",
        "test time share",
        "cost per solved",
    ])
    // Narrow: passes, turns, time and cost stay; the diagnostics need --wide.
    .secondary(&[2, 5, 6, 7, 8, 9]);
    let mut best_score: HashMap<i64, f64> = HashMap::new();
    for u in turns {
        if let (Some(id), Some(s)) = (u["run_id"].as_i64(), f(&u["score"])) {
            let e = best_score.entry(id).or_insert(0.0);
            *e = e.max(s);
        }
    }
    for m in models {
        let mine: Vec<&Map<String, Value>> = runs.iter().filter(|r| r["model"] == m.name.as_str()).collect();
        let my_turns: Vec<&Map<String, Value>> = turns.iter().filter(|r| r["model"] == m.name.as_str()).collect();
        let passes: Vec<&&Map<String, Value>> = mine.iter().filter(|r| r["outcome"] == "pass").collect();
        let one_shot = passes.iter().filter(|r| r["turns"].as_i64() == Some(1)).count();
        let times: Vec<f64> = passes.iter().filter_map(|r| f(&r["time_to_pass_s"])).collect();
        let turn_counts: Vec<f64> = passes.iter().filter_map(|r| f(&r["turns"])).collect();
        let failed_best = mine
            .iter()
            .filter(|r| r["outcome"] != "pass")
            .filter_map(|r| r["run_id"].as_i64().and_then(|id| best_score.get(&id)))
            .fold(None, |a: Option<f64>, b| Some(a.map_or(*b, |a| a.max(*b))));
        let mean = |xs: &[f64]| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
        let ttfts: Vec<f64> = my_turns.iter().filter_map(|u| f(&u["ttft_s"])).collect();
        let tps: Vec<f64> = my_turns.iter().filter_map(|u| f(&u["tokens_per_s"])).collect();
        let wall: f64 = mine.iter().filter_map(|r| f(&r["wall_s"])).sum();
        let test: f64 = mine.iter().filter_map(|r| f(&r["test_s"])).sum();
        let cost: f64 = mine.iter().filter_map(|r| f(&r["usd"])).sum();
        t.row(vec![
            m.name.clone(),
            format!("{}/{}", passes.len(), mine.len()),
            one_shot.to_string(),
            opt(quantile(turn_counts, 0.5), |x| count(x as u64, "turn")),
            opt(mean(&times), seconds),
            opt(quantile(times.clone(), 0.9), seconds),
            opt(failed_best, percent),
            opt(mean(&ttfts), seconds),
            opt(mean(&tps), tokens_per_s),
            if wall > 0.0 { percent(test / wall) } else { "n/a".into() },
            if passes.is_empty() { "n/a".into() } else { usd(cost / passes.len() as f64) },
        ]);
    }
    t.render(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(outcome: &str, stop: &str, turns: u32, error: Option<&str>) -> RunSummary {
        RunSummary {
            outcome: outcome.into(),
            stop_reason: stop.into(),
            turns,
            time_to_pass_s: None,
            wall_s: 5.34,
            model_s: 0.0,
            test_s: 0.0,
            overhead_s: 0.0,
            retry_wait_s: 0.0,
            input_tokens: 0,
            output_tokens: 0,
            usd: 0.0,
            error: error.map(String::from),
        }
    }

    #[test]
    fn the_outcome_is_said_once() {
        assert_eq!(outcome(&summary("pass", "pass", 1, None)), "pass after 1 turn (5.34 s)");
        assert_eq!(outcome(&summary("pass", "pass", 3, None)), "pass after 3 turns (5.34 s)");
        assert_eq!(
            outcome(&summary("fail", "max_turns", 15, None)),
            "fail after 15 turns (5.34 s, stopped by max_turns)"
        );
        assert_eq!(outcome(&summary("error", "error", 1, Some("HTTP 401"))), "error after 1 turn (5.34 s: HTTP 401)");
    }

    #[test]
    fn progress_lines_say_where_the_turn_is() {
        assert_eq!(
            progress("t × m #1", Progress::Waiting { turn: 2 }),
            "t × m #1: turn 2: waiting for the first token …"
        );
        assert_eq!(progress("t", Progress::Generating { turn: 1, tokens: 1 }), "t: turn 1: 1 token so far …");
        assert_eq!(progress("t", Progress::Generating { turn: 1, tokens: 1530 }), "t: turn 1: 1,530 tokens so far …");
        assert_eq!(progress("t", Progress::Testing { turn: 3 }), "t: turn 3: running the tests …");
        let wait = loopvel_provider::Wait { attempt: 1, of: 5, wait_s: 100.0, reason: "HTTP 429".into() };
        assert_eq!(
            progress("t", Progress::Retrying { turn: 2, wait }),
            "t: turn 2: HTTP 429: waiting 100 s before attempt 2 of 5 …"
        );
    }
}
