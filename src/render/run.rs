//! `loopvel run`'s output: a finished run in words, and the talk's table per model at the end.

use loopvel_analysis::plan_table::PlanRow;
use loopvel_harness::run::Progress;
use loopvel_math::units::{count, percent, seconds, tokens, tokens_per_s, usd};
use loopvel_record::RunSummary;

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
        (None, reason) if reason == summary.outcome.as_str() || reason == "pass" => format!("{head} ({wall})"),
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

/// The talk's table per model, from [`loopvel_analysis::plan_table::plan_rows`].
pub fn summary_table(rows: &[PlanRow], layout: Layout) -> String {
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
    for r in rows {
        t.row(vec![
            r.model.clone(),
            format!("{}/{}", r.passes, r.runs),
            r.one_shot.to_string(),
            // Type 7 interpolates: a median between 1 and 2 turns is 1.5 turns.
            opt(r.median_turns, |x| if x.fract() == 0.0 { count(x as u64, "turn") } else { format!("{x:.1} turns") }),
            opt(r.mean_time_to_pass_s, seconds),
            opt(r.p90_time_to_pass_s, seconds),
            opt(r.best_failed_score, percent),
            opt(r.mean_ttft_s, seconds),
            opt(r.mean_tokens_per_s, tokens_per_s),
            opt(r.test_share, percent),
            opt(r.usd_per_solved, usd),
        ]);
    }
    t.render(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(outcome: &str, stop: &str, turns: u32, error: Option<&str>) -> RunSummary {
        RunSummary {
            outcome: loopvel_record::Outcome::parse(outcome).unwrap(),
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
