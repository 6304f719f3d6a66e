//! # loopvel-record: what a run and a turn are
//!
//! One vocabulary for every crate that touches a run: the harness fills a
//! [`Turn`] as a turn ends and a [`RunSummary`] as a run ends, the store
//! writes and reads them, the statistics read [`Run`]s with their turns.
//! Grades and outcomes are enums, never strings, so a misspelt `"PASS"`
//! cannot compile.
//!
//! Architecture invariant: plain data, no I/O, no dependency but serde.
//!
//! ```
//! use loopvel_record::{Grade, Outcome};
//! assert_eq!(Grade::parse("THRASH"), Some(Grade::Thrash));
//! assert_eq!(Outcome::Pass.as_str(), "pass");
//! assert_eq!(serde_json::to_string(&Grade::Partial).unwrap(), "\"PARTIAL\"");
//! ```

use serde::{Deserialize, Serialize};

/// How a turn went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Grade {
    /// All tests pass.
    Pass,
    /// Some pass, and no fewer than the turn before.
    Partial,
    /// None pass, no edit was applied, or the tests crashed or timed out.
    #[default]
    Fail,
    /// Fewer pass than the turn before, or the files returned to a state already tested.
    Thrash,
}

impl Grade {
    /// Every grade, best first.
    pub const ALL: [Grade; 4] = [Grade::Pass, Grade::Partial, Grade::Fail, Grade::Thrash];

    /// The grade's name, as stored and printed: `PASS`, `PARTIAL`, `FAIL`, `THRASH`.
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::Pass => "PASS",
            Grade::Partial => "PARTIAL",
            Grade::Fail => "FAIL",
            Grade::Thrash => "THRASH",
        }
    }

    /// The grade a stored name stands for.
    pub fn parse(name: &str) -> Option<Grade> {
        Grade::ALL.into_iter().find(|g| g.as_str() == name)
    }
}

impl std::fmt::Display for Grade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The tests went green.
    Pass,
    /// A budget ran out first (turns, wall time, cost).
    #[default]
    Fail,
    /// The run broke (a provider error, a test command that cannot start):
    /// censored where it stopped, and played again on resume.
    Error,
    /// A signal ended loopvel during the run. Never stored as a finished
    /// run's outcome: the run is marked interrupted and played again.
    Interrupted,
}

impl Outcome {
    /// The outcome's name, as stored and printed: `pass`, `fail`, `error`, `interrupted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Error => "error",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// The outcome a stored name stands for.
    pub fn parse(name: &str) -> Option<Outcome> {
        [Outcome::Pass, Outcome::Fail, Outcome::Error, Outcome::Interrupted].into_iter().find(|o| o.as_str() == name)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One turn: what the harness records as it ends and what reports read
/// back. Times in seconds, cost in US dollars.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Turn {
    /// Turn number, 1-based.
    pub turn: u32,
    /// When the turn started, seconds after the run started.
    pub started_s: f64,
    /// Time to first content token.
    pub ttft_s: Option<f64>,
    /// Model time: request sent to last token (the successful attempt's).
    pub model_s: f64,
    /// Output tokens (`None` in records that lack them).
    pub output_tokens: Option<u64>,
    /// Whether `output_tokens` is an estimate (the server sent no usage).
    pub output_tokens_estimated: bool,
    /// Input tokens (every prompt token, cached or not).
    pub input_tokens: Option<u64>,
    /// Of `input_tokens`, those the server read from its prompt cache;
    /// `None` when it did not say (or the record is older than the field).
    #[serde(default)]
    pub cached_input_tokens: Option<u64>,
    /// Of `input_tokens`, those written to the prompt cache (Anthropic).
    #[serde(default)]
    pub cache_write_tokens: Option<u64>,
    /// Output tokens per second after the first token.
    pub tokens_per_s: Option<f64>,
    /// Waiting on rate limits and retries.
    pub retry_wait_s: f64,
    /// Edits applied.
    pub edits_applied: u32,
    /// Edits refused.
    pub edits_refused: u32,
    /// Why edits were refused, or why there were none.
    pub refusals: Vec<String>,
    /// Test time.
    pub test_s: f64,
    /// Tests passing.
    pub tests_passed: Option<u32>,
    /// Tests found.
    pub tests_total: Option<u32>,
    /// `tests_passed / tests_total`; `None` when no tests were counted.
    pub score: Option<f64>,
    /// How the turn went.
    pub grade: Grade,
    /// Harness time: wall − model − test − waiting.
    pub overhead_s: f64,
    /// Wall time of the turn.
    pub wall_s: f64,
    /// Cost of the turn.
    pub usd: f64,
    /// What the turn would have cost with every input token at the uncached
    /// price; `None` in records older than the field.
    #[serde(default)]
    pub usd_uncached: Option<f64>,
    /// What the loop did between this turn and the next beyond feeding back
    /// (a restart: files reset, conversation begun afresh); empty in most turns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

/// How a run ended, as the loop reports it. Times in seconds, cost in US dollars.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunSummary {
    /// How it ended.
    pub outcome: Outcome,
    /// `pass`, `max_turns`, `max_wall`, `max_usd`, `error` (and, for replays, `recording_ended`).
    pub stop_reason: String,
    /// Turns taken.
    pub turns: u32,
    /// Time to pass; `None` unless passed.
    pub time_to_pass_s: Option<f64>,
    /// Wall time.
    pub wall_s: f64,
    /// Model time (generation).
    pub model_s: f64,
    /// Test time.
    pub test_s: f64,
    /// Harness overhead.
    pub overhead_s: f64,
    /// Waiting on rate limits and retries.
    pub retry_wait_s: f64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost.
    pub usd: f64,
    /// What went wrong, for `error`.
    pub error: Option<String>,
}

/// A finished run with its turns, as stored: what reports, predictions and
/// replays read.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Run {
    /// The run's id in its store.
    pub run_id: i64,
    /// Its plan's id.
    pub plan_id: i64,
    /// Task name.
    pub task: String,
    /// Hash of the task's files when it ran.
    pub task_files_hash: String,
    /// Model name.
    pub model: String,
    /// Replicate, from 0.
    pub replicate: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it stopped.
    pub stop_reason: String,
    /// Wall time from start to green, s (passes only).
    pub time_to_pass_s: Option<f64>,
    /// Wall time of the whole run, s.
    pub wall_s: f64,
    /// Cost, USD.
    pub usd: f64,
    /// The sandbox level its tests ran at (`None`: recorded before loopvel recorded it).
    pub sandbox: Option<String>,
    /// The turns in order.
    pub turns: Vec<Turn>,
}

impl Run {
    /// Turns the run took.
    pub fn turn_count(&self) -> u32 {
        self.turns.len() as u32
    }

    /// True when it passed.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }

    /// Sum of one per-turn quantity.
    pub fn total(&self, part: impl Fn(&Turn) -> f64) -> f64 {
        self.turns.iter().map(part).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_none() {
        for g in Grade::ALL {
            assert_eq!(Grade::parse(g.as_str()), Some(g));
            assert_eq!(serde_json::to_string(&g).unwrap(), format!("\"{g}\""));
        }
        for o in [Outcome::Pass, Outcome::Fail, Outcome::Error, Outcome::Interrupted] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
        assert_eq!(Grade::parse("pass"), None);
        assert_eq!(Outcome::parse("PASS"), None);
    }
}
