//! Recorded runs as the statistics see them (read from the store by the CLI).

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// The tests went green.
    Pass,
    /// A budget ran out first.
    Fail,
    /// The run broke (provider error, sandbox error): censored where it stopped.
    Error,
}

/// One turn of a run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TurnTrace {
    /// 1-based turn number.
    pub turn: u32,
    /// Time to first token, s.
    pub ttft_s: Option<f64>,
    /// Decode speed, tokens/s.
    pub tokens_per_s: Option<f64>,
    /// Output tokens.
    pub output_tokens: Option<f64>,
    /// Time in the model call, s.
    pub model_s: f64,
    /// Time running the tests, s.
    pub test_s: f64,
    /// Time in the harness outside model and tests, s.
    pub overhead_s: f64,
    /// Time waiting on rate limits and retries, s.
    pub retry_wait_s: f64,
    /// Wall time of the turn, s.
    pub wall_s: f64,
    /// Cost of the turn, USD.
    pub usd: f64,
    /// Share of tests passing after the turn; `None` when no tests ran.
    pub score: Option<f64>,
    /// PASS, PARTIAL, FAIL, THRASH, ERROR.
    pub grade: String,
}

/// One recorded run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTrace {
    /// Store id of the run.
    pub run_id: i64,
    /// Task name.
    pub task: String,
    /// Model name.
    pub model: String,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Why it stopped: pass, max_turns, max_wall, max_usd, error.
    pub stop_reason: String,
    /// Wall time from start to green, s (passes only).
    pub time_to_pass_s: Option<f64>,
    /// Wall time of the whole run, s.
    pub wall_s: f64,
    /// Cost of the run, USD.
    pub usd: f64,
    /// The turns in order.
    pub turns: Vec<TurnTrace>,
}

impl RunTrace {
    /// Turns the run took.
    pub fn turn_count(&self) -> u32 {
        self.turns.len() as u32
    }

    /// True when it passed.
    pub fn passed(&self) -> bool {
        self.outcome == RunOutcome::Pass
    }

    /// Sum of one per-turn quantity.
    pub fn total(&self, part: impl Fn(&TurnTrace) -> f64) -> f64 {
        self.turns.iter().map(part).sum()
    }
}

/// The models of `runs`, in order of first appearance.
pub fn model_names(runs: &[RunTrace]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for r in runs {
        if !names.contains(&r.model.as_str()) {
            names.push(&r.model);
        }
    }
    names
}

/// The distinct tasks of `runs`, sorted by name (tables list tasks alphabetically).
pub fn task_names<'a>(runs: impl IntoIterator<Item = &'a RunTrace>) -> Vec<&'a str> {
    let mut names: Vec<&str> = runs.into_iter().map(|r| r.task.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
}
