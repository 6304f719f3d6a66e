//! A loop design: what the loop feeds back, what it re-sends and when it
//! starts over. An *arm* of an experiment is a named design (`[arms.NAME]` in
//! loopvel.toml, `run --arm NAME`); every run records the design it ran with.
//!
//! The default design is the loop as it always was (trimmed raw test output,
//! every file again after each turn, no restarts), and serialises to nothing,
//! so plans recorded before designs existed keep their keys.

use serde::{Deserialize, Serialize};

/// What the model is told after a turn's tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Feedback {
    /// The test output, trimmed to its head and tail.
    #[default]
    Raw,
    /// Only the failing tests: names, assertion messages, the lines they point
    /// at, read per report format (pytest, cargo, go, TAP, JUnit); the raw
    /// output when none can be read.
    Failures,
    /// The failures, plus the diff of the last edit and how the score moved.
    Targeted,
}

/// Which files follow the feedback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilesShown {
    /// Every visible file again after each turn.
    #[default]
    All,
    /// Only files whose content differs from what the model was last shown,
    /// so the conversation keeps a stable prefix a server can cache.
    Changed,
}

/// A loop design. Fields at their defaults are left out of the JSON.
// Flattened into the run options, so no deny_unknown_fields here: the config
// reader refuses unknown keys of an arm itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopDesign {
    /// What is fed back.
    #[serde(default, skip_serializing_if = "is_default")]
    pub feedback: Feedback,
    /// Which files are re-sent.
    #[serde(default, skip_serializing_if = "is_default")]
    pub files: FilesShown,
    /// After this many turns in a row that were THRASH or did not pass more
    /// tests than the best so far, reset the files to the best state so far
    /// (the task's own files if none was better) and begin the conversation
    /// afresh, with a note of what failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_after: Option<u32>,
    /// Sampling temperature of the first turn (over the model's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Added to the temperature after each THRASH turn (capped at 2); back
    /// to the first turn's after a turn that passed more tests than any before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_step: Option<f64>,
    /// Ask the model to reason about the failures before it edits, every turn.
    #[serde(default, skip_serializing_if = "is_default")]
    pub think_first: bool,
    /// Best-of-k within a turn: ask for this many replies to the same prompt
    /// at once, test each on its own copy of the files, keep the one that
    /// passes the most tests (the first on a tie). `None` (or 1): one reply.
    /// Not `best_of`: that name is the policy of k whole runs in `calc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<u32>,
}

/// Most replies a turn may ask for: each is paid for and tested at once.
pub const MAX_CANDIDATES: u32 = 16;

/// The instruction `think_first` adds to each prompt.
pub const THINK_FIRST: &str = "Before you edit, think it through in a few sentences: what do the failing tests \
expect, and why does the code not do it? Then give your edits.";

fn is_default<T: Default + PartialEq>(x: &T) -> bool {
    *x == T::default()
}

impl LoopDesign {
    /// True for the loop as it always was.
    pub fn is_default(&self) -> bool {
        *self == LoopDesign::default()
    }

    /// Replies asked for each turn (1 unless `candidates` says more).
    pub fn candidates_per_turn(&self) -> u32 {
        self.candidates.unwrap_or(1).max(1)
    }
}

/// The event a restart records on the turn after which it happened:
/// `restart after K turns without improvement: files reset to turn N's files
/// (P of T tests), conversation begun afresh` (or `to the task's own files`).
/// [`restart_target`] reads it back (`view` replays restarts with it).
pub fn restart_event(after: u32, to_turn: Option<u32>, passing: Option<(u32, u32)>) -> String {
    let to = match to_turn {
        Some(n) => {
            format!("turn {n}'s files{}", passing.map(|(p, t)| format!(" ({p} of {t} tests)")).unwrap_or_default())
        }
        None => "the task's own files".to_string(),
    };
    format!("restart after {after} turns without improvement: files reset to {to}, conversation begun afresh")
}

/// From a turn's event: `Some(Some(n))` when a restart reset the files to
/// turn n's, `Some(None)` to the task's own, `None` when it is no restart.
pub fn restart_target(event: &str) -> Option<Option<u32>> {
    let rest = event.strip_prefix("restart after ")?;
    let (_, to) = rest.split_once("files reset to ")?;
    if to.starts_with("the task's own files") {
        return Some(None);
    }
    let n = to.strip_prefix("turn ")?.split('\'').next()?.parse().ok()?;
    Some(Some(n))
}

/// Consecutive turns that did not improve, and the best state so far: when to restart.
#[derive(Debug, Clone, Default)]
pub struct RestartClock {
    stale: u32,
    best_passed: Option<u32>,
}

impl RestartClock {
    /// Counts a turn (`thrash`: graded THRASH; `passed`: tests passing after
    /// it, if counted). Returns `(improved, restart_now)`: whether this turn is
    /// the best so far, and whether `after` stale turns in a row were reached
    /// (the clock then starts over).
    pub fn tick(&mut self, thrash: bool, passed: Option<u32>, after: Option<u32>) -> (bool, bool) {
        let improved = !thrash && passed.is_some_and(|p| self.best_passed.is_none_or(|b| p > b));
        if improved {
            self.best_passed = passed;
            self.stale = 0;
        } else {
            self.stale += 1;
        }
        let restart = after.is_some_and(|k| k > 0 && self.stale >= k);
        if restart {
            self.stale = 0;
        }
        (improved, restart)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_design_serialises_to_nothing() {
        assert_eq!(serde_json::to_string(&LoopDesign::default()).unwrap(), "{}");
        let d = LoopDesign { feedback: Feedback::Targeted, restart_after: Some(2), ..LoopDesign::default() };
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, r#"{"feedback":"targeted","restart_after":2}"#);
        assert_eq!(serde_json::from_str::<LoopDesign>(&json).unwrap(), d);
    }

    #[test]
    fn restart_events_read_back() {
        let e = restart_event(2, Some(3), Some((4, 5)));
        assert!(e.contains("turn 3's files (4 of 5 tests)"), "{e}");
        assert_eq!(restart_target(&e), Some(Some(3)));
        assert_eq!(restart_target(&restart_event(2, None, None)), Some(None));
        assert_eq!(restart_target("something else"), None);
    }

    #[test]
    fn restarts_come_after_k_turns_without_improvement() {
        let mut c = RestartClock::default();
        assert_eq!(c.tick(false, Some(1), Some(2)), (true, false));
        assert_eq!(c.tick(true, Some(1), Some(2)), (false, false));
        assert_eq!(c.tick(false, Some(1), Some(2)), (false, true), "two stale turns: restart");
        assert_eq!(c.tick(false, Some(0), Some(2)), (false, false), "the count starts over");
        assert_eq!(c.tick(false, Some(2), Some(2)), (true, false));
        assert_eq!(c.tick(true, Some(2), None), (false, false), "no restart without a design that asks");
    }
}
